//! Commands from `P/D/cmd`: parsing and rate limiting, no I/O.
//!
//! A command is `{"id": "...", "cmd": "...", "args": {...}}`. Anything else is a
//! typed [`CommandError`]; the id is kept whenever it could be read, so that the
//! caller can still answer on `cmd/result`. The [`RateLimiter`] takes the time as an
//! argument so it can be tested without sleeping.

use crate::excerpt::excerpt;
use serde_json::{json, Map, Value};
use std::time::Instant;
use thiserror::Error;

/// Larger payloads are refused unread.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// `logs` never returns more lines than this.
pub const MAX_LOG_LINES: usize = 1000;
pub const DEFAULT_LOG_LINES: usize = 100;
/// Ids and product ids are short words; longer ones are refused, so that
/// nothing a client sends is echoed (answers, logs, events) at full length.
pub const MAX_ID_BYTES: usize = 128;

/// Every command name the device knows, as a technician types it.
pub const KNOWN_COMMANDS: &[&str] = &[
    "go_live",
    "end_show",
    "tag_product",
    "tare",
    "calibrate_scale",
    "set_calibration",
    "snapshot",
    "probe",
    "restart_pipeline",
    "reconnect_now",
    "set_log_level",
    "logs",
    "set_pairing_code",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: Option<String>,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommandKind {
    GoLive,
    EndShow,
    TagProduct {
        product_id: String,
    },
    Tare,
    /// `force`: accept a factor more than ×2 or under ×0.5 of the current one.
    CalibrateScale {
        known_kg: f64,
        force: bool,
    },
    /// Puts back a calibration (the `undo` of a `calibration_changed` event).
    SetCalibration {
        offset: f64,
        factor: f64,
        calibrated: bool,
        force: bool,
    },
    Snapshot,
    Probe,
    RestartPipeline,
    ReconnectNow,
    SetLogLevel {
        level: String,
    },
    Logs {
        lines: usize,
    },
    /// A new code for the phone page (`docs/web.md`); never echoed.
    SetPairingCode {
        code: crate::config::secret::Secret,
    },
}

impl CommandKind {
    /// The wire name (`go_live`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::GoLive => "go_live",
            CommandKind::EndShow => "end_show",
            CommandKind::TagProduct { .. } => "tag_product",
            CommandKind::Tare => "tare",
            CommandKind::CalibrateScale { .. } => "calibrate_scale",
            CommandKind::SetCalibration { .. } => "set_calibration",
            CommandKind::Snapshot => "snapshot",
            CommandKind::Probe => "probe",
            CommandKind::RestartPipeline => "restart_pipeline",
            CommandKind::ReconnectNow => "reconnect_now",
            CommandKind::SetLogLevel { .. } => "set_log_level",
            CommandKind::Logs { .. } => "logs",
            CommandKind::SetPairingCode { .. } => "set_pairing_code",
        }
    }

    fn args(&self) -> Value {
        match self {
            CommandKind::TagProduct { product_id } => json!({ "product_id": product_id }),
            CommandKind::CalibrateScale { known_kg, force } => {
                json!({ "known_kg": known_kg, "force": force })
            }
            CommandKind::SetCalibration {
                offset,
                factor,
                calibrated,
                force,
            } => json!({
                "offset": offset,
                "factor": factor,
                "calibrated": calibrated,
                "force": force,
            }),
            CommandKind::SetLogLevel { level } => json!({ "level": level }),
            CommandKind::Logs { lines } => json!({ "lines": lines }),
            _ => json!({}),
        }
    }
}

impl Command {
    /// The command as it travels on `P/D/cmd` (what Home Assistant buttons send).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(id) = &self.id {
            m.insert("id".into(), Value::from(id.clone()));
        }
        m.insert("cmd".into(), Value::from(self.kind.name()));
        m.insert("args".into(), self.kind.args());
        Value::Object(m)
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum CommandError {
    #[error("command too large ({0} bytes, at most {MAX_COMMAND_BYTES})")]
    TooLarge(usize),
    #[error("command is not JSON: {0}")]
    NotJson(String),
    #[error("command must be a JSON object")]
    NotObject,
    #[error("command has no \"cmd\" string")]
    MissingCmd,
    #[error("unknown command {name:?}; known: {known}", name = .0, known = .1.join(", "))]
    UnknownCmd(String, Vec<String>),
    #[error("bad args for {cmd}: {why}")]
    BadArgs { cmd: String, why: String },
    #[error("rate limited")]
    RateLimited,
    #[error("command id too long ({0} bytes, at most {MAX_ID_BYTES})")]
    IdTooLong(usize),
}

/// A refused command, with its id when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub id: Option<String>,
    pub error: CommandError,
}

/// Parses one `P/D/cmd` payload. Never panics, whatever the bytes.
pub fn parse(payload: &[u8]) -> Result<Command, Rejected> {
    let reject = |id: Option<String>, error| Rejected { id, error };
    if payload.len() > MAX_COMMAND_BYTES {
        // Read only the id, so that the refusal can still be matched to its request
        // (the broker already bounds the packet size).
        #[derive(serde::Deserialize)]
        struct IdOnly {
            id: Option<Value>,
        }
        let id = serde_json::from_slice::<IdOnly>(payload)
            .ok()
            .and_then(|o| id_of(o.id.as_ref()));
        return Err(reject(id, CommandError::TooLarge(payload.len())));
    }
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| reject(None, CommandError::NotJson(excerpt(&e.to_string()))))?;
    let Value::Object(obj) = v else {
        return Err(reject(None, CommandError::NotObject));
    };
    if let Some(Value::String(long)) = obj.get("id").filter(|_| id_of(obj.get("id")).is_none()) {
        return Err(reject(None, CommandError::IdTooLong(long.len())));
    }
    let id = id_of(obj.get("id"));
    let Some(name) = obj.get("cmd").and_then(Value::as_str) else {
        return Err(reject(id, CommandError::MissingCmd));
    };
    let empty = Map::new();
    let args = match obj.get("args") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(a)) => a,
        Some(_) => return Err(reject(id, bad(name, "args must be an object"))),
    };
    match parse_kind(name, args) {
        Ok(kind) => Ok(Command { id, kind }),
        Err(e) => Err(reject(id, e)),
    }
}

/// A string id as is, a numeric one as text; anything else is no id. An
/// over-long id is refused by [`parse`]; here (the too-large path) it is
/// dropped.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if s.len() > MAX_ID_BYTES => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn bad(cmd: &str, why: &str) -> CommandError {
    CommandError::BadArgs {
        cmd: excerpt(cmd),
        why: why.to_string(),
    }
}

fn parse_kind(name: &str, args: &Map<String, Value>) -> Result<CommandKind, CommandError> {
    Ok(match name {
        "go_live" => CommandKind::GoLive,
        "end_show" => CommandKind::EndShow,
        "tare" => CommandKind::Tare,
        "snapshot" => CommandKind::Snapshot,
        "probe" => CommandKind::Probe,
        "restart_pipeline" => CommandKind::RestartPipeline,
        "reconnect_now" => CommandKind::ReconnectNow,
        "tag_product" => match args.get("product_id").and_then(Value::as_str) {
            Some(p) if !p.is_empty() && p.len() <= MAX_ID_BYTES => CommandKind::TagProduct {
                product_id: p.to_string(),
            },
            _ => {
                return Err(bad(
                    name,
                    "product_id must be a non-empty string of at most 128 bytes",
                ))
            }
        },
        "calibrate_scale" => match args.get("known_kg").and_then(Value::as_f64) {
            Some(k) if k.is_finite() && k > 0.0 => CommandKind::CalibrateScale {
                known_kg: k,
                force: force(name, args)?,
            },
            _ => return Err(bad(name, "known_kg must be a number above 0")),
        },
        "set_calibration" => {
            let num = |key: &str| {
                args.get(key)
                    .and_then(Value::as_f64)
                    .filter(|v| v.is_finite())
            };
            let (Some(offset), Some(factor)) = (num("offset"), num("factor")) else {
                return Err(bad(name, "offset and factor must be numbers"));
            };
            if factor == 0.0 {
                return Err(bad(name, "factor must not be 0"));
            }
            let calibrated = match args.get("calibrated") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad(name, "calibrated must be true or false")),
            };
            CommandKind::SetCalibration {
                offset,
                factor,
                calibrated,
                force: force(name, args)?,
            }
        }
        "set_log_level" => match args.get("level").and_then(Value::as_str) {
            Some(l) if !l.trim().is_empty() && l.len() <= 1024 => CommandKind::SetLogLevel {
                level: l.trim().to_string(),
            },
            _ => {
                return Err(bad(
                    name,
                    "level must be a filter such as \"info\" or \"farmcast=debug\"",
                ))
            }
        },
        "logs" => match args.get("lines") {
            None | Some(Value::Null) => CommandKind::Logs {
                lines: DEFAULT_LOG_LINES,
            },
            Some(v) => match v.as_u64() {
                // More than the cap is answered with the cap: the technician still gets logs.
                Some(n) if n >= 1 => CommandKind::Logs {
                    lines: (n.min(MAX_LOG_LINES as u64)) as usize,
                },
                _ => return Err(bad(name, "lines must be a whole number from 1 to 1000")),
            },
        },
        "set_pairing_code" => match args.get("code").and_then(Value::as_str) {
            Some(c)
                if (6..=64).contains(&c.chars().count())
                    && !c.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                CommandKind::SetPairingCode {
                    code: crate::config::secret::Secret::new(c),
                }
            }
            _ => return Err(bad(name, "code must be 6 to 64 characters without spaces")),
        },
        other => {
            return Err(CommandError::UnknownCmd(
                excerpt(other),
                KNOWN_COMMANDS.iter().map(|s| s.to_string()).collect(),
            ))
        }
    })
}

/// The optional `force` flag of the scale commands.
fn force(name: &str, args: &Map<String, Value>) -> Result<bool, CommandError> {
    match args.get("force") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(name, "force must be true or false")),
    }
}

/// Token bucket: `rate` commands per second on average, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(10.0, 20.0)
    }
}

impl RateLimiter {
    pub fn new(rate_per_s: f64, burst: f64) -> Self {
        RateLimiter {
            rate: rate_per_s.max(0.0),
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            last: None,
        }
    }

    /// Takes one token at `now` if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn err(p: &str) -> Rejected {
        parse(p.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_the_interface_examples() {
        let c = parse(br#"{"id": "42", "cmd": "go_live", "args": {}}"#).unwrap();
        assert_eq!(
            c,
            Command {
                id: Some("42".into()),
                kind: CommandKind::GoLive
            }
        );
        let c = parse(br#"{"cmd": "tag_product", "args": {"product_id": "mussels"}}"#).unwrap();
        assert_eq!(
            c.kind,
            CommandKind::TagProduct {
                product_id: "mussels".into()
            }
        );
        assert_eq!(c.id, None);
        let c = parse(br#"{"id": 7, "cmd": "logs"}"#).unwrap();
        assert_eq!(
            c,
            Command {
                id: Some("7".into()),
                kind: CommandKind::Logs { lines: 100 }
            }
        );
        let c = parse(br#"{"cmd": "logs", "args": {"lines": 5000}}"#).unwrap();
        assert_eq!(c.kind, CommandKind::Logs { lines: 1000 });
    }

    #[test]
    fn errors_are_typed_and_keep_the_id() {
        assert!(matches!(err("{").error, CommandError::NotJson(_)));
        assert_eq!(err("[1]").error, CommandError::NotObject);
        let r = err(r#"{"id": "a"}"#);
        assert_eq!(
            (r.id.as_deref(), r.error),
            (Some("a"), CommandError::MissingCmd)
        );
        let r = err(r#"{"id": "b", "cmd": "self_destruct"}"#);
        assert_eq!(r.id.as_deref(), Some("b"));
        match r.error {
            CommandError::UnknownCmd(name, known) => {
                assert_eq!(name, "self_destruct");
                assert!(known.iter().any(|k| k == "go_live"));
            }
            e => panic!("unexpected {e:?}"),
        }
        let r = err(r#"{"id": "c", "cmd": "calibrate_scale", "args": {"known_kg": -1}}"#);
        assert!(
            matches!(r.error, CommandError::BadArgs { ref cmd, .. } if cmd == "calibrate_scale")
        );
        assert!(matches!(
            err(r#"{"cmd": "go_live", "args": 3}"#).error,
            CommandError::BadArgs { .. }
        ));
        assert!(matches!(
            err(r#"{"cmd": "logs", "args": {"lines": 0}}"#).error,
            CommandError::BadArgs { .. }
        ));
        let big = format!(
            r#"{{"id": "d", "cmd": "go_live", "pad": "{}"}}"#,
            "x".repeat(MAX_COMMAND_BYTES)
        );
        let r = err(&big);
        assert!(matches!(r.error, CommandError::TooLarge(_)));
        assert_eq!(r.id.as_deref(), Some("d"));
    }

    #[test]
    fn outside_text_is_never_echoed_at_full_length() {
        let junk = "j".repeat(60_000);
        let r = err(&format!(r#"{{"id": "{junk}", "cmd": "go_live"}}"#));
        assert_eq!(r.id, None);
        assert_eq!(r.error, CommandError::IdTooLong(60_000));
        let r = err(&format!(r#"{{"id": "e", "cmd": "{junk}", "args": 3}}"#));
        assert!(r.error.to_string().len() < 200, "{}", r.error);
        let r = err(&format!(r#"{{"id": "e", "cmd": "{junk}"}}"#));
        assert!(r.error.to_string().len() < 400, "{}", r.error);
        let r = err(&format!(
            r#"{{"id": "e", "cmd": "tag_product", "args": {{"product_id": "{junk}"}}}}"#
        ));
        assert!(r.error.to_string().len() < 200, "{}", r.error);
        let r = err(&format!(r#"{{"id": "e", "cmd": "{junk}"#));
        assert!(r.error.to_string().len() < 200, "{}", r.error);
    }

    /// Every command, every argument any command reads, 60 KB of junk in
    /// it: whatever comes back (an error or a command) holds at most a
    /// bounded echo of it.
    #[test]
    fn junk_in_any_argument_of_any_command_is_never_echoed_whole() {
        let junk = "j".repeat(60_000);
        let keys = [
            "product_id",
            "known_kg",
            "force",
            "offset",
            "factor",
            "calibrated",
            "level",
            "lines",
            "anything",
        ];
        for name in KNOWN_COMMANDS {
            for key in keys {
                let payload = json!({"id": "j", "cmd": name, "args": {key: junk}}).to_string();
                match parse(payload.as_bytes()) {
                    Err(r) => {
                        assert!(
                            !matches!(r.error, CommandError::TooLarge(_)),
                            "{name}.{key}: the junk must reach the parser"
                        );
                        let text = r.error.to_string();
                        assert!(text.len() < 600, "{name}.{key}: {} bytes", text.len());
                        assert_eq!(r.id.as_deref(), Some("j"));
                    }
                    Ok(c) => {
                        let echo = c.to_json().to_string();
                        assert!(echo.len() < 2_000, "{name}.{key}: {} bytes", echo.len());
                    }
                }
            }
        }
    }

    #[test]
    fn scale_commands_take_force_and_set_calibration_restores() {
        let c = parse(br#"{"cmd": "calibrate_scale", "args": {"known_kg": 2, "force": true}}"#)
            .unwrap();
        assert_eq!(
            c.kind,
            CommandKind::CalibrateScale {
                known_kg: 2.0,
                force: true
            }
        );
        let c =
            parse(br#"{"cmd": "set_calibration", "args": {"offset": 500, "factor": 1}}"#).unwrap();
        assert_eq!(
            c.kind,
            CommandKind::SetCalibration {
                offset: 500.0,
                factor: 1.0,
                calibrated: true,
                force: false
            }
        );
        for bad in [
            r#"{"cmd": "set_calibration", "args": {"offset": 1}}"#,
            r#"{"cmd": "set_calibration", "args": {"offset": 1, "factor": 0}}"#,
            r#"{"cmd": "calibrate_scale", "args": {"known_kg": 1, "force": "yes"}}"#,
        ] {
            assert!(
                matches!(err(bad).error, CommandError::BadArgs { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn rate_limiter_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10.0, 20.0);
        let allowed = (0..30).filter(|_| rl.allow(t0)).count();
        assert_eq!(allowed, 20);
        // 0.5 s later, five more tokens have arrived.
        let t1 = t0 + Duration::from_millis(500);
        let allowed = (0..30).filter(|_| rl.allow(t1)).count();
        assert_eq!(allowed, 5);
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| rl.allow(t2)).count(), 20);
    }

    fn kind_strategy() -> impl Strategy<Value = CommandKind> {
        prop_oneof![
            Just(CommandKind::GoLive),
            Just(CommandKind::EndShow),
            "[a-z0-9_-]{1,20}".prop_map(|p| CommandKind::TagProduct { product_id: p }),
            Just(CommandKind::Tare),
            // Whole grams: serde_json parses short decimals exactly, not every f64.
            (1u32..1_000_000, any::<bool>()).prop_map(|(g, force)| CommandKind::CalibrateScale {
                known_kg: f64::from(g) / 1000.0,
                force,
            }),
            (
                -100_000i32..100_000,
                1u32..100_000,
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(o, f, calibrated, force)| CommandKind::SetCalibration {
                    offset: f64::from(o),
                    factor: f64::from(f) / 1000.0,
                    calibrated,
                    force,
                }),
            Just(CommandKind::Snapshot),
            Just(CommandKind::Probe),
            Just(CommandKind::RestartPipeline),
            Just(CommandKind::ReconnectNow),
            "[a-z=,]{1,20}".prop_map(|l| CommandKind::SetLogLevel { level: l }),
            (1usize..=1000).prop_map(|n| CommandKind::Logs { lines: n }),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_json_like(s in r#"\{("(id|cmd|args)": ?("[a-z_]{0,12}"|[0-9]{1,3}|\{\}|null|\[\]),? ?){0,4}\}"#) {
            let _ = parse(s.as_bytes());
        }

        #[test]
        fn valid_commands_round_trip(id in proptest::option::of("[ -~]{0,16}"), kind in kind_strategy()) {
            let c = Command { id, kind };
            let bytes = serde_json::to_vec(&c.to_json()).unwrap();
            prop_assert_eq!(parse(&bytes).unwrap(), c);
        }
    }
}
