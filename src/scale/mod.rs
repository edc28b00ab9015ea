//! The weighing scale: back ends behind one trait, chosen by `scale.kind`,
//! plus the pure filtering that turns their readings into a weight that is
//! stable and trustworthy, or clearly not.
//!
//! - [`filter`] (pure): median against spikes, settle detector.
//! - [`state`] (pure): [`Scale`] — readings in, [`ScaleState`] and error
//!   events out; tare and calibration.
//! - [`calibration`]: the tare offset and factor, saved atomically in the state
//!   directory.
//! - Back ends ([`find`], one per [`ScaleKind`]): `none`; `sim` (fed by the sim
//!   socket's `weight` line, always compiled); `serial` (USB-serial scales,
//!   parsers in [`serial_parse`]); `hx711` (a load-cell amplifier bit-banged
//!   through rppal, protocol in [`hx711`]).
//!
//! **Driver contract:** [`open`] once; call [`Opened::source`]'s
//! [`ScaleSource::start`] *inside the tokio runtime* with the sender of an
//! unbounded channel of [`RawReading`]s; feed each to [`Scale::handle`], call
//! [`Scale::handle_timeout`] at [`Scale::poll_timeout`], and publish
//! [`Scale::poll_event`]s as `error` events. For `sim`, pass the socket's
//! `weight` values to [`Opened::sim_feed`]. After [`Scale::tare`] or
//! [`Scale::calibrate`], save the returned calibration with
//! [`calibration::save`] at [`Opened::calibration_path`].

pub mod calibration;
pub mod filter;
pub mod hx711;
mod hx711_pi;
mod serial;
pub mod serial_detect;
pub mod serial_formats;
pub mod serial_parse;
pub mod sim;
pub mod state;
pub mod weight;

use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::config::schema::ScaleConfig;
use crate::config::ScaleKind;
pub use calibration::Calibration;
pub use serial::{probe as probe_serial, SerialProbe};
pub use sim::{SimScale, SimScaleFeed};
pub use state::{Scale, ScaleError, ScaleEvent, ScaleState, Settings};
pub use weight::Weight;

/// What the back end says about a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flags {
    Stable,
    /// The scale itself says the reading is moving.
    Unstable,
    /// Over capacity or under zero: the value means nothing.
    Overload,
}

/// One reading from a back end, before filtering.
#[derive(Debug, Clone, PartialEq)]
pub enum RawReading {
    /// A sample: HX711 counts, or grams from serial and simulated scales (the
    /// calibration maps both to grams).
    Grams {
        value: f64,
        at: Instant,
        flags: Flags,
    },
    /// The back end is up but sends nothing usable (garbage, saturation, a
    /// chip that does not answer); the text is for people.
    Error(String),
    /// The device went away; the back end keeps trying to reopen it.
    Disconnected,
    /// A serial scale's line format (named, or recognised by `auto`) and the
    /// speed it is read at; for status.
    Format {
        format: crate::config::scale_serial::SerialFormat,
        baud: u32,
    },
}

/// Something that delivers raw readings.
pub trait ScaleSource: Send {
    /// Starts delivering readings into `tx` until `tx`'s receiver is dropped.
    /// Must be called inside a tokio runtime.
    fn start(self: Box<Self>, tx: UnboundedSender<RawReading>) -> anyhow::Result<()>;
}

/// A back end, opened.
pub struct Opened {
    pub source: Box<dyn ScaleSource>,
    /// Only for `sim`: where the socket's `weight` values go.
    pub sim_feed: Option<SimScaleFeed>,
    /// Whether raw values need a calibration with a known weight (HX711).
    pub needs_calibration: bool,
}

pub type Builder = fn(&ScaleConfig) -> anyhow::Result<Opened>;

/// The back end `scale.kind` names (`none` and `sim` need no hardware). A
/// `match` rather than a table: a new [`ScaleKind`] word cannot compile
/// without its back end.
pub fn find(kind: ScaleKind) -> Builder {
    match kind {
        ScaleKind::None => build_none,
        ScaleKind::Sim => sim::build,
        ScaleKind::Serial => serial::build,
        ScaleKind::Hx711 => hx711_pi::build,
    }
}

/// Opens the back end `scale.kind` names and builds the filter around it, with
/// the calibration stored under `state_dir` (a corrupt file is logged and
/// replaced by defaults). `None` when `scale.kind = "none"`.
pub fn open(
    cfg: &ScaleConfig,
    state_dir: &Path,
    now: Instant,
) -> anyhow::Result<Option<(Opened, Scale)>> {
    if cfg.kind == ScaleKind::None {
        return Ok(None);
    }
    let opened = find(cfg.kind)(cfg)?;
    let (cal, warning) = calibration::load(&calibration_path(state_dir));
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    let scale = Scale::new(
        Settings::from_config(cfg, opened.needs_calibration),
        cal,
        now,
    );
    Ok(Some((opened, scale)))
}

/// Where the calibration is kept.
pub fn calibration_path(state_dir: &Path) -> PathBuf {
    calibration::path_in(state_dir)
}

fn build_none(_: &ScaleConfig) -> anyhow::Result<Opened> {
    struct NoScale;
    impl ScaleSource for NoScale {
        fn start(self: Box<Self>, _tx: UnboundedSender<RawReading>) -> anyhow::Result<()> {
            Ok(())
        }
    }
    Ok(Opened {
        source: Box::new(NoScale),
        sim_feed: None,
        needs_calibration: false,
    })
}

#[cfg(test)]
mod tests;
