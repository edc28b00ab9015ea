//! Status, events and commands for field technicians over MQTT.
//!
//! Contract: streaming never depends on MQTT. [`client::spawn`] returns a cheap
//! [`client::MqttHandle`] whose methods never block or wait for the broker, and a
//! receiver of what arrives ([`client::Incoming`]: commands and desired configs).
//! Events go through a bounded on-disk queue ([`queue`]) and are delivered in
//! order, at least once, after any outage. Topics live in [`topics`], payloads in
//! [`payloads`], command parsing in [`commands`].

pub mod board;
pub mod client;
pub mod commands;
pub mod hass;
mod link;
pub mod payloads;
pub mod queue;
pub mod settings;
mod task;
pub mod topics;

pub use client::{spawn, Incoming, IncomingCommand, MqttHandle, MqttSettings, Protocol};
pub use link::parse_url;
pub(crate) use link::{read_password, tls_config};
