//! Buttons and lights behind narrow traits, with one back end per `gpio.backend` word.
//!
//! - [`buttons`] (pure): raw edges → debounced `Short` / `Long` presses.
//! - [`tally`] (pure): light patterns and which state shows which.
//! - Back ends ([`find`], one per [`GpioBackend`]): `rppal` drives real pins on a
//!   Raspberry Pi; `sim` needs no hardware (a Unix socket the test harness talks
//!   to) and is always compiled, so every build can run.
//!
//! **Driver contract:** build the hardware with [`open`] (or [`find`] then call the
//! builder), call [`ButtonInput::start`] once *inside the tokio runtime* with the
//! sender of an unbounded channel of [`RawEdge`]s, feed every received edge to a
//! [`buttons::Buttons`] classifier (calling its `handle_timeout` at its
//! `poll_timeout`), and pass the resulting presses to the show. LEDs are set by
//! the driver from [`tally::level`] of the pattern the show asks for.

pub mod buttons;
mod pi;
pub mod sim;
pub mod sim_parse;
pub mod tally;

use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::config::schema::{GpioConfig, ProductConfig};
use crate::config::GpioBackend;
pub use buttons::{ButtonEvent, ButtonId, PressKind};
pub use sim::SimEvent;
pub use tally::Pattern;

/// A raw level change of one button, as read from the pin (not yet debounced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEdge {
    pub button: ButtonId,
    pub pressed: bool,
    pub at: Instant,
}

/// Something that delivers raw button edges.
pub trait ButtonInput: Send {
    /// Starts delivering edges into `tx` until `tx`'s receiver is dropped. Must be
    /// called inside a tokio runtime.
    fn start(self: Box<Self>, tx: UnboundedSender<RawEdge>) -> anyhow::Result<()>;
}

/// One LED.
pub trait Led: Send {
    fn set(&mut self, on: bool) -> anyhow::Result<()>;
}

/// The buttons and lights of one box.
pub struct Hardware {
    pub buttons: Box<dyn ButtonInput>,
    pub tally: Box<dyn Led>,
    /// The optional fault LED (`gpio.status_led_pin`; always present in `sim`).
    pub status: Option<Box<dyn Led>>,
}

/// What a back end is built from.
pub struct Setup<'a> {
    pub gpio: &'a GpioConfig,
    pub products: &'a [ProductConfig],
    /// Where the `sim` back end sends `weight` and `camera` commands; `None`
    /// answers them with an error.
    pub sim_events: Option<UnboundedSender<SimEvent>>,
}

pub type Builder = fn(Setup<'_>) -> anyhow::Result<Hardware>;

/// The back end `gpio.backend` names. A `match` rather than a table: a new
/// [`GpioBackend`] word cannot compile without its back end.
pub fn find(backend: GpioBackend) -> Builder {
    match backend {
        GpioBackend::Rppal => pi::build,
        GpioBackend::Sim => sim::build,
    }
}

/// Builds the back end `gpio.backend` names.
pub fn open(setup: Setup<'_>) -> anyhow::Result<Hardware> {
    find(setup.gpio.backend)(setup)
}
