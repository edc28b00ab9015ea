//! farmcast: appliance firmware that puts a farmer's produce on shopping livestreams.
//!
//! The crate is split by concern; a reader should find the room for a change from
//! the module names alone:
//! - [`config`]: the TOML file, its validation and its error messages.
//! - [`show`]: the pure state machine of a show (no I/O, time passed in).
//! - [`gpio`]: buttons and lights behind narrow traits, `rppal` and `sim` back ends.
//! - [`media`]: GStreamer at the edge: capture, encode, destinations, probe.
//! - [`recording`]: segment files on the box and their disk budget.
//! - [`mqtt`]: status, events and commands for field technicians.
//! - [`backoff`]: the one capped, jittered retry delay (a leaf).
//! - [`excerpt`]: bounded echoes of text that came from outside.
//! - [`utc`]: wall-clock instants as UTC text (a leaf).
//! - [`tcp_nodelay`]: Nagle off on the daemon's TCP connections, rtmp2sink's included (a leaf).
//! - [`app`]: the driver that wires the pure core to the edges.

pub mod app;
pub mod appliance;
pub mod backoff;
pub mod config;
pub mod excerpt;
pub mod fleet;
pub mod gpio;
pub mod logging;
pub mod media;
pub mod mqtt;
pub mod products;
pub mod provision;
pub mod recording;
pub mod scale;
pub mod show;
pub mod tcp_nodelay;
pub mod utc;
pub mod web;
