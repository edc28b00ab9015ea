//! The technician's link at the shell: MQTT settings from the config, the
//! link and a trial link beside it, and the commands that need work off the
//! loop's thread (snapshot, probe, logs).
//!
//! Streaming never depends on MQTT: every call here returns at once, and with
//! `mqtt.enabled = false` nothing is started.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::mpsc::Receiver;

use crate::config::{Config, MqttConfig};
use crate::media::capture::Snapshotter;
use crate::mqtt::payloads::{Event, EventBody};
use crate::mqtt::{Incoming, IncomingCommand, MqttHandle, MqttSettings};

/// A snapshot must fit in an MQTT answer a phone can show: under 100 KB.
const SNAPSHOT_MAX_BYTES: usize = 100 * 1024;

pub fn start(config: &Config) -> Result<Option<(MqttHandle, Receiver<Incoming>)>> {
    if !config.mqtt.enabled {
        return Ok(None);
    }
    crate::mqtt::spawn(settings(config)).map(Some)
}

fn settings(config: &Config) -> MqttSettings {
    let m = &config.mqtt;
    let mut s = MqttSettings::new(
        &m.url,
        &m.topic_prefix,
        &config.device_id,
        PathBuf::from(&config.state_dir).join("mqtt"),
    );
    s.username = m.username.clone();
    s.password_file = m.password_file.as_ref().map(PathBuf::from);
    s.ca_file = m.ca_file.as_ref().map(PathBuf::from);
    s.client_cert = m.client_cert.as_ref().map(PathBuf::from);
    s.client_key = m.client_key.as_ref().map(PathBuf::from);
    s.keep_alive = Duration::from_secs(m.keep_alive_s);
    s.protocol = m.protocol;
    s.hass_discovery = m.hass_discovery;
    s.fleet_groups = config.fleet.groups.clone();
    s
}

/// Answer `snapshot` from a blocking thread: JPEG, base64, under 100 KB.
pub fn snapshot(mqtt: MqttHandle, cmd: IncomingCommand, snap: Option<Snapshotter>) {
    tokio::task::spawn_blocking(move || {
        let outcome = match snap {
            None => Err("no picture: the capture is not running".to_string()),
            Some(snap) => [640u32, 480, 320]
                .into_iter()
                .map(|w| snap.jpeg(w))
                .find(|r| r.as_ref().map_or(true, |j| j.len() <= SNAPSHOT_MAX_BYTES))
                .unwrap_or_else(|| Err(anyhow::anyhow!("the picture does not fit in 100 KB")))
                .map(|jpeg| {
                    json!({
                        "content_type": "image/jpeg",
                        "bytes": jpeg.len(),
                        "jpeg_base64": base64::engine::general_purpose::STANDARD.encode(&jpeg),
                    })
                })
                .map_err(|e| format!("{e:#}")),
        };
        mqtt.reply(&cmd, outcome);
    });
}

/// Answer `probe` from a blocking thread (it opens devices).
pub fn probe(mqtt: MqttHandle, cmd: IncomingCommand) {
    tokio::task::spawn_blocking(move || {
        let outcome = crate::media::probe::probe()
            .map_err(|e| format!("{e:#}"))
            .and_then(|r| serde_json::to_value(r).map_err(|e| e.to_string()));
        mqtt.reply(&cmd, outcome);
    });
}

/// The `logs` command's answer: the newest `lines` that fit in `budget`
/// bytes of JSON (the broker's packet limit), the oldest left out first.
pub fn logs(lines: usize, budget: usize) -> Value {
    // The envelope around the lines: `{"id":…,"ok":true,"result":{"lines":[…],"cut":…}}`.
    const ENVELOPE: usize = 256;
    let kept = crate::logging::last_lines(lines, budget.saturating_sub(ENVELOPE));
    let cut = kept.len() < lines;
    json!({ "lines": kept, "cut": cut })
}

/// `log_level_changed` with `old`, `new` and `undo`.
pub fn log_level_event(change: &crate::logging::LevelChange) -> Event {
    Event::now(EventBody::LogLevelChanged {
        old: change.old.clone(),
        new: change.new.clone(),
        undo: json!({ "cmd": "set_log_level", "args": { "level": change.old } }),
    })
}

// ---------------------------------------------------------------------------
// The link and new settings on trial
// ---------------------------------------------------------------------------

/// The MQTT link in use and, while pushed settings are tried, a second one
/// connecting beside it. Handles only: when to try, swap or give up is the
/// core's (`appliance::fleet`).
#[derive(Default)]
pub struct Links {
    pub current: Option<MqttHandle>,
    trial: Option<(MqttHandle, Receiver<Incoming>)>,
    /// A new link's receiver, for the loop to swap in.
    pub new_incoming: Option<Receiver<Incoming>>,
}

impl Links {
    /// Start the link for `config` (none when MQTT is off). The show goes on
    /// without it when it cannot start.
    pub fn start(&mut self, config: &Config) {
        match start(config) {
            Ok(Some((h, rx))) => {
                if let Some(old) = self.current.replace(h) {
                    old.retire(false);
                }
                self.new_incoming = Some(rx);
            }
            Ok(None) => self.current = None,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "MQTT not started; the box streams without it")
            }
        }
    }

    /// Connect a second link with `mqtt` beside the running one. `Err` is
    /// the core's answer at once: the settings cannot even be tried.
    pub fn try_settings(&mut self, config: &Config, mqtt: &MqttConfig) -> Result<(), String> {
        self.trial = None;
        let settings = settings_with(config, mqtt);
        let link = match &self.current {
            Some(current) => crate::mqtt::client::spawn_trial(settings, current),
            // No link to keep talking over (it never started): start plainly.
            None => crate::mqtt::spawn(settings),
        };
        let link = link.map_err(|e| format!("the new MQTT settings cannot be used: {e:#}"))?;
        self.trial = Some(link);
        Ok(())
    }

    /// The trial link has connected (polled at the health tick).
    pub fn trial_connected(&self) -> bool {
        self.trial.as_ref().is_some_and(|(h, _)| h.is_connected())
    }

    pub fn promote(&mut self, say_offline: bool) {
        let Some((handle, incoming)) = self.trial.take() else {
            return;
        };
        if let Some(old) = self.current.replace(handle.clone()) {
            old.retire(say_offline);
        }
        handle.promote();
        self.new_incoming = Some(incoming);
    }

    pub fn drop_trial(&mut self) {
        self.trial = None;
    }

    /// Stop the link after what is queued on it went out.
    pub fn retire(&mut self) {
        if let Some(old) = self.current.take() {
            old.retire(true);
        }
    }
}

/// The link settings for `config` with `mqtt` in place of its own `[mqtt]`.
fn settings_with(config: &Config, mqtt: &MqttConfig) -> MqttSettings {
    let mut c = config.clone();
    c.mqtt = mqtt.clone();
    settings(&c)
}
