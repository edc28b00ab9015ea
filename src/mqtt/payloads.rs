//! The JSON documents this device publishes: status, events and command results.
//!
//! Field names are the contract in INTERFACES.md; extra fields are fine, renames are
//! not. Nothing here ever holds a secret: status carries destination *names*, not
//! URLs or keys.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::SystemTime;
use time::format_description::FormatItem;
use time::macros::format_description;

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
    /// Tags and what they sold for, since the daemon started.
    #[serde(default)]
    pub sales: SalesStatus,
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

/// Tags since the daemon started: counts by product, amounts by currency.
/// Only configured products and currencies appear, so the maps stay small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SalesStatus {
    pub tags: u64,
    #[serde(default)]
    pub by_product: std::collections::BTreeMap<String, u64>,
    /// The tagged prices summed, by currency: for graphs, not for books (the
    /// show's `sales.jsonl` has every exact price).
    #[serde(default)]
    pub amount: std::collections::BTreeMap<String, f64>,
}

impl SalesStatus {
    pub fn record(&mut self, product_id: &str, currency: &str, price: &str) {
        self.tags += 1;
        *self.by_product.entry(product_id.to_string()).or_default() += 1;
        if let Ok(p) = price.parse::<f64>() {
            *self.amount.entry(currency.to_string()).or_default() += p;
        }
    }
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

/// `P/D/events`: `{"type", "ts", ...fields}`. One variant per event type,
/// so that what each carries is written down once, here (and in
/// INTERFACES.md / README's event table).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// RFC 3339, UTC.
    pub ts: String,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    LiveStarted {
        show_id: String,
    },
    LiveStopped {
        show_id: String,
        reason: String,
    },
    DestinationUp {
        name: String,
    },
    DestinationDown {
        name: String,
        reason: String,
    },
    StateChanged {
        from: String,
        to: String,
    },
    /// `go_live`, or `product:<id>`.
    ButtonPressed {
        button: String,
    },
    Error {
        what: String,
        /// The part at fault (`gpio`, `scale`), when one is.
        #[serde(skip_serializing_if = "Option::is_none")]
        part: Option<String>,
    },
    ProductTagged {
        #[serde(flatten)]
        record: crate::products::tag::TagRecord,
        show_id: Option<String>,
        show_offset_s: Option<f64>,
    },
    CalibrationChanged {
        cause: String,
        old: crate::scale::Calibration,
        new: crate::scale::Calibration,
        /// The command that puts the old calibration back.
        undo: Value,
    },
    LogLevelChanged {
        old: String,
        new: String,
        undo: Value,
    },
    ConfigApplied(ConfigReport),
    ConfigPending(ConfigReport),
    ConfigRejected(ConfigReport),
    ConfigRolledBack(ConfigReport),
}

/// What the `config_*` events carry (the `config/reported` message in short).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigReport {
    pub hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Event {
    /// An event stamped now.
    pub fn now(body: EventBody) -> Self {
        Event::at(body, SystemTime::now())
    }

    /// An event stamped with a wall clock read elsewhere (the core reads none).
    pub fn at(body: EventBody, wall: SystemTime) -> Self {
        Event {
            ts: rfc3339_utc(wall),
            body,
        }
    }

    /// The wire `type`.
    pub fn kind(&self) -> &'static str {
        match &self.body {
            EventBody::LiveStarted { .. } => "live_started",
            EventBody::LiveStopped { .. } => "live_stopped",
            EventBody::DestinationUp { .. } => "destination_up",
            EventBody::DestinationDown { .. } => "destination_down",
            EventBody::StateChanged { .. } => "state_changed",
            EventBody::ButtonPressed { .. } => "button_pressed",
            EventBody::Error { .. } => "error",
            EventBody::ProductTagged { .. } => "product_tagged",
            EventBody::CalibrationChanged { .. } => "calibration_changed",
            EventBody::LogLevelChanged { .. } => "log_level_changed",
            EventBody::ConfigApplied(_) => "config_applied",
            EventBody::ConfigPending(_) => "config_pending",
            EventBody::ConfigRejected(_) => "config_rejected",
            EventBody::ConfigRolledBack(_) => "config_rolled_back",
        }
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
/// Clamped to 1970 and the year 9999 (see [`crate::utc`]).
pub fn rfc3339_utc(t: SystemTime) -> String {
    const RFC3339: &[FormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    crate::utc::format(t, RFC3339)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2000-02-29 is a leap day in a century divisible by 400.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3600 + 61);
        assert_eq!(rfc3339_utc(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(rfc3339_utc(t), "2026-12-31T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_600);
        assert_eq!(rfc3339_utc(t), "2027-01-01T00:00:00Z");
        // 2100 is no leap year.
        let t = UNIX_EPOCH + Duration::from_secs(4_107_542_400);
        assert_eq!(rfc3339_utc(t), "2100-03-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
        let t = UNIX_EPOCH + Duration::from_secs(i64::MAX as u64);
        assert_eq!(rfc3339_utc(t), "9999-12-31T23:59:59Z");
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
    fn events_serialize_type_ts_and_fields_flat() {
        let e = Event {
            ts: "T".into(),
            body: EventBody::Error {
                what: "scale: gone".into(),
                part: None,
            },
        };
        let v: Value = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "error", "ts": "T", "what": "scale: gone"})
        );
        assert_eq!(e.kind(), "error");
        let c = Event {
            ts: "T".into(),
            body: EventBody::ConfigRolledBack(ConfigReport {
                hash: "h".into(),
                version: Some(3),
                error: Some("no standby".into()),
                field: None,
                note: None,
            }),
        };
        let v: Value = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "config_rolled_back", "ts": "T", "hash": "h", "version": 3, "error": "no standby"})
        );
        assert_eq!(c.kind(), "config_rolled_back");
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
