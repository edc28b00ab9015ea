//! Opens the buttons and lights `gpio.backend` names and the scale
//! `scale.kind` names. When to try again after a failure is the core's
//! (`appliance::parts`); this only opens.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::Config;
use crate::gpio::{self, Led, RawEdge, SimEvent};
use crate::scale::sim::SimScaleFeed;
use crate::scale::{RawReading, Scale};

pub struct Lights {
    pub tally: Box<dyn Led>,
    pub status: Option<Box<dyn Led>>,
}

/// The lights of a box whose GPIO is not open (yet): writes go nowhere.
pub struct NullLed;

impl Led for NullLed {
    fn set(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
}

/// Opens the GPIO back end and starts its buttons.
pub fn open_gpio(
    config: &Config,
    edges: UnboundedSender<RawEdge>,
    sim: UnboundedSender<SimEvent>,
) -> Result<Lights> {
    let hw = gpio::open(gpio::Setup {
        gpio: &config.gpio,
        products: &config.products,
        sim_events: Some(sim),
    })
    .with_context(|| format!("gpio.backend = \"{}\"", config.gpio.backend))?;
    hw.buttons.start(edges).context("starting the buttons")?;
    Ok(Lights {
        tally: hw.tally,
        status: hw.status,
    })
}

/// Opens the scale `scale.kind` names and starts its readings; the scale's
/// machine goes to the core, the feed of a simulated scale stays here.
/// `Ok(None)` for `none`.
pub fn open_scale(
    config: &Config,
    readings: UnboundedSender<RawReading>,
    now: Instant,
) -> Result<Option<(Scale, Option<SimScaleFeed>)>> {
    let opened = crate::scale::open(&config.scale, Path::new(&config.state_dir), now)
        .with_context(|| format!("scale.kind = \"{}\"", config.scale.kind))?;
    let Some((opened, scale)) = opened else {
        return Ok(None);
    };
    opened
        .source
        .start(readings)
        .context("starting the scale")?;
    Ok(Some((scale, opened.sim_feed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_leds_accept_writes() {
        assert!(NullLed.set(true).is_ok());
    }
}
