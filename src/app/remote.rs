//! The technician's link, seen from the driver: MQTT settings from the config,
//! show events as MQTT events, the status payload, and the commands that need
//! work off the driver's thread (snapshot, probe).
//!
//! Streaming never depends on MQTT: every call here returns at once, and with
//! `mqtt.enabled = false` nothing is started.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::mpsc::Receiver;

use crate::config::Config;
use crate::media::capture::Snapshotter;
use crate::mqtt::payloads::Event;
use crate::mqtt::{Incoming, IncomingCommand, MqttHandle, MqttSettings, Protocol};
use crate::scale::Calibration;
use crate::show::ShowEvent;

use super::selling::CalChange;

/// A snapshot must fit in an MQTT answer a phone can show: under 100 KB.
const SNAPSHOT_MAX_BYTES: usize = 100 * 1024;

pub fn start(config: &Config) -> Result<Option<(MqttHandle, Receiver<Incoming>)>> {
    if !config.mqtt.enabled {
        return Ok(None);
    }
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
    s.protocol = if m.protocol == "v5" {
        Protocol::V5
    } else {
        Protocol::V4
    };
    s.hass_discovery = m.hass_discovery;
    s.fleet_groups = config.fleet.groups.clone();
    crate::mqtt::spawn(s).map(Some)
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
