//! The JSON documents this device publishes: status, events and command results.
//!
//! Field names are the contract in INTERFACES.md; extra fields are fine, renames are
//! not. Nothing here ever holds a secret: status carries destination *names*, not
//! URLs or keys.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// `P/D/status`, retained, latest wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Status {
    /// `standby`, `connecting`, `live`, `reconnecting`, `error`.
    pub state: String,
    pub device_id: String,
    pub uptime_s: u64,
    pub version: String,
    pub config_version: u64,
    pub video: VideoStatus,
    pub destinations: Vec<DestinationStatus>,
    pub scale: ScaleStatus,
    pub recording: RecordingStatus,
    pub cpu_temp_c: Option<f64>,
    pub throttled: Option<String>,
    pub uplink_addr: Option<String>,
    /// What is broken now, by part (`capture`, `gpio`, `scale`), with why;
    /// absent on a healthy box. The box keeps retrying each.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub errors: std::collections::BTreeMap<String, String>,
    /// How long the driver's loop was busy in its longest turn (a stall of
    /// buttons, commands and the watchdog).
    #[serde(default, rename = "loop")]
    pub loop_turns: LoopStatus,
    /// Filled in by the MQTT client itself just before publishing; whatever the
    /// caller put here is overwritten.
    #[serde(default)]
    pub mqtt: MqttStats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct VideoStatus {
    pub encoder: String,
    pub fps: f64,
    pub bitrate_kbps: u32,
    pub dropped_frames: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DestinationStatus {
    pub name: String,
    pub state: String,
    /// Measured send rate.
    pub bitrate_kbps: u32,
    /// What the encoder aims at (adaptive bitrate follows the slowest link).
    #[serde(default)]
    pub target_kbps: u32,
    pub reconnects: u32,
    /// Why adaptive bitrate holds the encoder back for this link, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub congestion: Option<String>,
    /// SRT's own view of the connection (SRT destinations that are up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srt: Option<SrtStatus>,
    /// Why the last attempt failed (e.g. `Unacceptable TLS certificate`), an
    /// excerpt; absent while it never failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// SRT's counters since the connection began, and its round trip now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SrtStatus {
    pub rtt_ms: u32,
    pub packets_sent: u64,
    /// Reported lost by the server (then sent again, or dropped).
    pub packets_lost: u64,
    /// Given up as too late to play: what viewers never got.
    pub packets_dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ScaleStatus {
    pub weight_kg: Option<f64>,
    pub stable: bool,
    /// A serial scale's line format (`scale.serial_format`, or what `auto`
    /// recognised) and speed; absent until known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
}

/// The driver loop's longest turns: since the last status, and since start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LoopStatus {
    pub max_turn_ms: u64,
    /// What that turn did: the input that woke the loop (`media:camera_lost`,
    /// `mqtt`, `timer`...) and the periodic work in it (`+health`, `+status`).
    pub max_turn_what: String,
    pub max_turn_ms_total: u64,
    pub max_turn_what_total: String,
    pub turns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RecordingStatus {
    pub used_bytes: u64,
    pub free_bytes: u64,
}

/// The event queue as the technician should see it: a backlog or drops mean
/// the broker was out of reach for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MqttStats {
    pub events_queued: u64,
    pub events_dropped: u64,
    /// Commands refused by the rate limiter since start.
    #[serde(default)]
    pub commands_limited: u64,
    /// `config/desired` messages dropped by the rate limiter since start (a
    /// retained one comes again at the next connection).
    #[serde(default)]
    pub desired_dropped: u64,
}

/// `P/D/events`: `{"type", "ts", ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC.
    pub ts: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Event {
    /// An event of `kind` stamped now.
    pub fn now(kind: impl Into<String>) -> Self {
        Event {
            kind: kind.into(),
            ts: rfc3339_utc(SystemTime::now()),
            fields: Map::new(),
        }
    }

    /// Adds one field; `type` and `ts` cannot be overridden this way.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if key != "type" && key != "ts" {
            self.fields.insert(key.to_string(), value.into());
        }
        self
    }
}

/// `P/D/cmd/result`: `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmdResult {
    pub id: Option<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CmdResult {
    pub fn from_result(id: Option<String>, outcome: Result<Value, String>) -> Self {
        match outcome {
            Ok(v) => CmdResult {
                id,
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => CmdResult {
                id,
                ok: false,
                result: None,
                error: Some(e),
            },
        }
    }
}

/// `2026-11-25T22:09:28Z` (second precision is plenty for a technician).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil: avoids a date crate for one formatter.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2000-02-29 is a leap day in a century divisible by 400.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3600 + 61);
        assert_eq!(rfc3339_utc(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(rfc3339_utc(t), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn destination_status_shows_srt_only_when_there_is_some() {
        let rtmp = DestinationStatus {
            name: "douyin".into(),
            state: "up".into(),
            ..Default::default()
        };
        let v = serde_json::to_value(&rtmp).unwrap();
        assert!(
            v.get("srt").is_none() && v.get("congestion").is_none(),
            "{v}"
        );
        let srt = DestinationStatus {
            congestion: Some("SRT dropped late packets".into()),
            srt: Some(SrtStatus {
                rtt_ms: 150,
                packets_sent: 900,
                packets_lost: 2,
                packets_dropped: 4,
            }),
            ..rtmp
        };
        let v = serde_json::to_value(&srt).unwrap();
        assert_eq!(v["srt"]["packets_dropped"], 4);
        assert_eq!(v["congestion"], "SRT dropped late packets");
        let back: DestinationStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back, srt);
    }

    #[test]
    fn event_serializes_type_ts_and_fields_flat() {
        let e = Event {
            kind: "product_tagged".into(),
            ts: "T".into(),
            fields: Map::new(),
        }
        .with("product_id", "mussels")
        .with("type", "hijack");
        let v: Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "product_tagged");
        assert_eq!(v["ts"], "T");
        assert_eq!(v["product_id"], "mussels");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn cmd_result_has_result_or_error() {
        let ok = serde_json::to_value(CmdResult::from_result(Some("1".into()), Ok(Value::from(3))))
            .unwrap();
        assert_eq!(ok, serde_json::json!({"id": "1", "ok": true, "result": 3}));
        let err = serde_json::to_value(CmdResult::from_result(None, Err("nope".into()))).unwrap();
        assert_eq!(
            err,
            serde_json::json!({"id": null, "ok": false, "error": "nope"})
        );
    }

    #[test]
    fn status_has_the_interface_fields() {
        let v = serde_json::to_value(Status::default()).unwrap();
        for k in [
            "state",
            "device_id",
            "uptime_s",
            "version",
            "config_version",
            "video",
            "destinations",
            "scale",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        for k in ["encoder", "fps", "bitrate_kbps"] {
            assert!(v["video"].get(k).is_some(), "missing video.{k}");
        }
        assert!(v["scale"].get("weight_kg").is_some());
        assert!(v["scale"].get("stable").is_some());
    }
}
