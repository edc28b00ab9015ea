//! Opens the buttons and lights `gpio.backend` names and starts their edges
//! flowing into the driver.

use anyhow::{Context, Result};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::Config;
use crate::gpio::{self, Led, RawEdge, SimEvent};

pub struct Lights {
    pub tally: Box<dyn Led>,
    pub status: Option<Box<dyn Led>>,
}

pub fn start(
    config: &Config,
    edges: UnboundedSender<RawEdge>,
    sim: UnboundedSender<SimEvent>,
) -> Result<Lights> {
    let hw = gpio::open(gpio::Setup {
        gpio: &config.gpio,
        products: &config.products,
        sim_events: Some(sim),
    })
    .with_context(|| format!("gpio.backend = {:?}", config.gpio.backend))?;
    hw.buttons.start(edges).context("starting the buttons")?;
    Ok(Lights {
        tally: hw.tally,
        status: hw.status,
    })
}
