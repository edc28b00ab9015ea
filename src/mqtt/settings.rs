//! The client's settings: where the broker is, who we are, where the event
//! queue lives. Paths, never secrets.

use super::queue::DEFAULT_CAP;
use std::path::PathBuf;
use std::time::Duration;

/// `mqtt.protocol`, as the config parsed it: `V4` is MQTT 3.1.1.
pub use crate::config::MqttProtocol as Protocol;

/// Everything the client needs. Holds paths, never secrets: the password is read
/// from `password_file` when connecting, so `Debug` shows nothing to hide.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub url: String,
    pub topic_prefix: String,
    pub device_id: String,
    /// Defaults to the device id when a password file is given.
    pub username: Option<String>,
    /// A file holding only the password (a trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// PEM CA bundle for mqtts://; the system bundle when `None`.
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub keep_alive: Duration,
    pub protocol: Protocol,
    /// Where the event queue lives (`events.jsonl`).
    pub state_dir: PathBuf,
    /// Fleet groups whose `P/fleet/<group>/config/desired` to follow.
    pub fleet_groups: Vec<String>,
    pub hass_discovery: bool,
    pub event_queue_cap: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// `farmcast-<device_id>` when `None`.
    pub client_id: Option<String>,
}

impl MqttSettings {
    /// The MQTT client id this link connects with.
    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("farmcast-{}", self.device_id))
    }
}

impl MqttSettings {
    pub fn new(
        url: &str,
        topic_prefix: &str,
        device_id: &str,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        MqttSettings {
            url: url.into(),
            topic_prefix: topic_prefix.into(),
            device_id: device_id.into(),
            username: None,
            password_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive: Duration::from_secs(30),
            protocol: Protocol::V4,
            state_dir: state_dir.into(),
            fleet_groups: Vec::new(),
            hass_discovery: true,
            event_queue_cap: DEFAULT_CAP,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            client_id: None,
        }
    }
}
