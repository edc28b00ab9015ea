//! The technician's link, seen from the driver: MQTT settings from the config,
//! show events as MQTT events, the status payload, and the commands that need
//! work off the driver's thread (snapshot, probe).
//!
//! Streaming never depends on MQTT: every call here returns at once, and with
//! `mqtt.enabled = false` nothing is started.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::mpsc::Receiver;

use crate::config::{Config, MqttConfig};
use crate::fleet::{Action, Reported};
use crate::media::capture::Snapshotter;
use crate::mqtt::payloads::Event;
use crate::mqtt::{Incoming, IncomingCommand, MqttHandle, MqttSettings};
use crate::scale::Calibration;
use crate::show::ShowEvent;

use super::selling::CalChange;
use super::Driver;

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

/// The MQTT form of a show event; `None` for those only the log needs.
pub fn event(e: &ShowEvent) -> Option<Event> {
    Some(match e {
        ShowEvent::LiveStarted { show_id } => {
            Event::now("live_started").with("show_id", show_id.as_str())
        }
        ShowEvent::LiveStopped { show_id, reason } => Event::now("live_stopped")
            .with("show_id", show_id.as_str())
            .with("reason", reason.as_str()),
        ShowEvent::DestinationDown { name, reason } => Event::now("destination_down")
            .with("name", name.as_str())
            .with("reason", reason.as_str()),
        ShowEvent::DestinationUp { name } => {
            Event::now("destination_up").with("name", name.as_str())
        }
        ShowEvent::Error { what } => Event::now("error").with("what", what.as_str()),
        ShowEvent::StateChanged { from, to } => Event::now("state_changed")
            .with("from", from.as_str())
            .with("to", to.as_str()),
        ShowEvent::Ack => Event::now("button_pressed").with("button", "go_live"),
        ShowEvent::ProductPressed { product_id, .. } => {
            Event::now("button_pressed").with("button", format!("product:{product_id}"))
        }
    })
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

/// `{"cmd": "set_calibration", …}` that puts `cal` back; `force`, because an
/// undo must not be refused for the size of the change it reverts.
fn calibration_undo(cal: &Calibration) -> Value {
    json!({
        "cmd": "set_calibration",
        "args": {
            "offset": cal.offset,
            "factor": cal.factor,
            "calibrated": cal.calibrated,
            "force": true,
        }
    })
}

/// Answers a tare, calibration or undo, and tells `P/D/events` what changed:
/// `calibration_changed` with `old`, `new` and `undo` (the command that puts
/// the old one back).
pub fn calibration_changed(
    mqtt: &MqttHandle,
    cmd: &IncomingCommand,
    cause: &str,
    outcome: Result<CalChange, String>,
) {
    match outcome {
        Ok(change) => {
            tracing::info!(
                cause,
                old_offset = change.old.offset,
                old_factor = change.old.factor,
                new_offset = change.new.offset,
                new_factor = change.new.factor,
                "scale calibration changed"
            );
            mqtt.event(
                Event::now("calibration_changed")
                    .with("cause", cause)
                    .with("old", json!(change.old))
                    .with("new", json!(change.new))
                    .with("undo", calibration_undo(&change.old)),
            );
            mqtt.reply(cmd, Ok(json!(change.new)));
        }
        Err(e) => mqtt.reply(cmd, Err(e)),
    }
}

/// `log_level_changed` with `old`, `new` and `undo`.
pub fn log_level_event(change: &crate::logging::LevelChange) -> Event {
    Event::now("log_level_changed")
        .with("old", change.old.as_str())
        .with("new", change.new.as_str())
        .with(
            "undo",
            json!({ "cmd": "set_log_level", "args": { "level": change.old } }),
        )
}

// ---------------------------------------------------------------------------
// New MQTT settings on trial
// ---------------------------------------------------------------------------

/// How long new MQTT settings from a push have to connect before the box
/// rolls them back and stays on the old ones.
pub const MQTT_TRIAL: Duration = Duration::from_secs(30);

/// A second link, with the pushed `[mqtt]`, connecting beside the one in use.
pub struct MqttTrial {
    /// The new link, or why it could not even start (rolled back at the
    /// next health tick, outside the push being applied).
    link: std::result::Result<(MqttHandle, Receiver<Incoming>), String>,
    deadline: Instant,
    /// The new settings; `Driver::config.mqtt` keeps the old ones until the swap.
    mqtt: MqttConfig,
    /// `applied`, told once the new link is up (on it).
    reported: Reported,
}

impl Driver {
    /// The MQTT part of a live push. `config` is the pushed config; while the
    /// new settings are on trial its `[mqtt]` is set back to the running one
    /// (the rest applies at once). Returns the report for the caller to
    /// confirm and publish now, or `None` when this took care of it: the
    /// trial holds it until the new link is up (then `applied`) or its
    /// deadline (then `rolled_back`).
    pub(super) fn apply_mqtt(
        &mut self,
        config: &mut Config,
        reported: Reported,
        now: Instant,
    ) -> Option<Reported> {
        if let Some(old) = self.mqtt_trial.take() {
            tracing::warn!("a newer push replaces the MQTT settings on trial");
            drop(old);
        }
        let current = match (&self.mqtt, config.mqtt.enabled) {
            (Some(current), true) => current.clone(),
            // No link to keep talking over: nothing to try, start it as before.
            (None, _) => {
                self.start_plainly(config);
                return Some(reported);
            }
            // MQTT switched off: say so on the link, then let it go.
            (Some(_), false) => {
                self.confirm_and_report(&reported);
                // Retired, not dropped: the report goes out before the goodbye.
                if let Some(old) = self.mqtt.take() {
                    old.retire(true);
                }
                return None;
            }
        };
        let new_mqtt = config.mqtt.clone();
        config.mqtt = self.config.mqtt.clone();
        let link = crate::mqtt::client::spawn_trial(settings_with(config, &new_mqtt), &current)
            .map_err(|e| format!("the new MQTT settings cannot be used: {e:#}"));
        if link.is_ok() {
            tracing::info!(url = %crate::excerpt::excerpt(&new_mqtt.url), "new MQTT settings on trial; the old link stays until they connect");
        }
        self.mqtt_trial = Some(MqttTrial {
            link,
            deadline: now + MQTT_TRIAL,
            mqtt: new_mqtt,
            reported,
        });
        None
    }

    fn start_plainly(&mut self, config: &Config) {
        match start(config) {
            Ok(Some((h, rx))) => {
                self.mqtt = Some(h);
                self.new_incoming = Some(rx);
            }
            Ok(None) => self.mqtt = None,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "new MQTT settings not applied")
            }
        }
    }

    fn confirm_and_report(&mut self, reported: &Reported) {
        if let Some(f) = &self.fleet {
            if let Err(e) = f.confirm_running() {
                tracing::warn!(error = %format!("{e:#}"), "last known good not saved");
            }
        }
        self.report(reported);
    }

    /// Swaps to the trial link once it has connected; rolls it back at its
    /// deadline. Called from the health tick.
    pub(super) fn check_mqtt_trial(&mut self, now: Instant) {
        let Some(trial) = &self.mqtt_trial else {
            return;
        };
        let connected = trial.link.as_ref().is_ok_and(|(h, _)| h.is_connected());
        if !connected && trial.link.is_ok() && now < trial.deadline {
            return;
        }
        let Some(trial) = self.mqtt_trial.take() else {
            return;
        };
        let (handle, incoming) = match trial.link {
            Ok(link) if connected => link,
            Ok(_) => {
                return self.roll_back_mqtt(&format!(
                    "the new MQTT settings did not connect within {} s",
                    MQTT_TRIAL.as_secs()
                ))
            }
            Err(why) => return self.roll_back_mqtt(&why),
        };
        let old = &self.config.mqtt;
        // Another broker or prefix: the old availability topic says offline;
        // the same one: the new link has said online there already.
        let say_offline =
            (&old.url, &old.topic_prefix) != (&trial.mqtt.url, &trial.mqtt.topic_prefix);
        if let Some(old_link) = self.mqtt.replace(handle.clone()) {
            old_link.retire(say_offline);
        }
        handle.promote();
        self.new_incoming = Some(incoming);
        tracing::info!(url = %crate::excerpt::excerpt(&trial.mqtt.url), "new MQTT settings connected; the old link is closed");
        self.config.mqtt = trial.mqtt;
        self.confirm_and_report(&trial.reported);
        self.publish_status(now);
    }

    /// The pushed MQTT settings failed: back to the last good config (whose
    /// `[mqtt]` is the one still running), reported `rolled_back` on the old link.
    fn roll_back_mqtt(&mut self, why: &str) {
        tracing::error!("{why}; rolling back");
        match self.fleet.as_mut().and_then(|f| f.roll_back(why)) {
            // The push changed only what applies live (that is why it was
            // tried live), so going back applies live too: no pipeline rebuild.
            Some((reported, Action::Restart(config) | Action::ApplyLive(config))) => {
                self.apply_live(*config, reported)
            }
            Some((reported, Action::None)) => self.report(&reported),
            None => tracing::error!("nothing to roll back to; the old MQTT link stays"),
        }
    }
}

/// The link settings for `config` with `mqtt` in place of its own `[mqtt]`.
fn settings_with(config: &Config, mqtt: &MqttConfig) -> MqttSettings {
    let mut c = config.clone();
    c.mqtt = mqtt.clone();
    settings(&c)
}
