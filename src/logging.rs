//! Logging: to journald when systemd started us (it sets `JOURNAL_STREAM`),
//! to the terminal otherwise. `RUST_LOG` sets the level (`info` by default);
//! technicians can change it at run time (`set_log_level`) and read the last
//! lines (`logs`) over MQTT, so they need not SSH in.
//!
//! The ring behind `logs` is bounded in bytes, not lines: a line can echo
//! outside text, and a thousand lines of a 64 KB target were 64 MB of memory
//! and an answer no broker would carry. Each line is cut at [`LINE_MAX_BYTES`],
//! the whole ring at [`RING_BYTES`], oldest lines leaving first.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, Result};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{
    layer::SubscriberExt, reload, util::SubscriberInitExt, EnvFilter, Registry,
};

/// Bytes the `logs` ring keeps, at most (its lines' text).
pub const RING_BYTES: usize = 256 * 1024;
/// A longer line is cut to this many bytes (on a character) and marked.
pub const LINE_MAX_BYTES: usize = 2 * 1024;
/// The level when `RUST_LOG` says nothing usable.
const DEFAULT_LEVEL: &str = "info";

/// Lines, oldest first, and the sum of their lengths.
#[derive(Default)]
struct RingBuf {
    lines: VecDeque<String>,
    bytes: usize,
}

impl RingBuf {
    fn push(&mut self, line: &str) {
        self.push_sized(line, line.len());
    }

    /// `line` was `original` bytes before the writer stopped keeping them.
    fn push_sized(&mut self, line: &str, original: usize) {
        let line = cap_line(line, original);
        while !self.lines.is_empty() && self.bytes + line.len() > RING_BYTES {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len();
            }
        }
        self.bytes += line.len();
        self.lines.push_back(line);
    }

    /// The newest lines, at most `n` of them and at most `max_bytes` of text
    /// (counted as the JSON string each becomes), oldest first.
    fn last(&self, n: usize, max_bytes: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut used: usize = 0;
        for line in self.lines.iter().rev().take(n) {
            // The line as a JSON string (escapes included), and its comma.
            let cost = serde_json::to_string(line).map_or(usize::MAX, |j| j.len() + 1);
            if used.saturating_add(cost) > max_bytes {
                break;
            }
            used += cost;
            out.push(line.clone());
        }
        out.reverse();
        out
    }
}

/// `line`, cut to [`LINE_MAX_BYTES`] on a character boundary, with the size
/// of the original when cut.
fn cap_line(line: &str, original: usize) -> String {
    if line.len() <= LINE_MAX_BYTES && original <= line.len() {
        return line.to_string();
    }
    let mut end = line.len().min(LINE_MAX_BYTES - 32);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… (line of {} bytes cut)",
        &line[..end],
        original.max(line.len())
    )
}

type Ring = Arc<Mutex<RingBuf>>;

pub struct LogControl {
    filter: reload::Handle<EnvFilter, Registry>,
    ring: Ring,
    /// The spec in force, for the old value of a `set_log_level` (and its undo).
    current: Mutex<String>,
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

pub fn init() {
    let env = std::env::var("RUST_LOG").ok();
    let (filter, spec) = match env.as_deref().map(|s| (s, EnvFilter::try_new(s))) {
        Some((s, Ok(f))) => (f, s.to_string()),
        _ => (EnvFilter::new(DEFAULT_LEVEL), DEFAULT_LEVEL.to_string()),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let ring: Ring = Arc::new(Mutex::new(RingBuf::default()));
    let ring_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_target(false)
        .with_writer(RingWriter(ring.clone()));
    let registry = tracing_subscriber::registry().with(filter).with(ring_layer);
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| tracing_journald::layer().ok())
        .flatten();
    let ok = match journald {
        Some(j) => registry.with(j).try_init().is_ok(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    // Colours only for a person at a terminal, not in files and pipes.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false),
            )
            .try_init()
            .is_ok(),
    };
    if ok {
        let _ = CONTROL.set(LogControl {
            filter: handle,
            ring,
            current: Mutex::new(spec),
        });
    }
}

/// A level change that took effect: what was in force before (to undo it
/// with) and what is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelChange {
    pub old: String,
    pub new: String,
}

/// Change the level at run time, e.g. `debug` or `info,farmcast::media=trace`.
/// A spec that would drop the daemon's errors is refused.
pub fn set_level(spec: &str) -> Result<LevelChange> {
    check_spec(spec)?;
    keeps_errors(spec)?;
    let control = CONTROL
        .get()
        .ok_or_else(|| anyhow!("logging is not initialised"))?;
    let filter = EnvFilter::try_new(spec)
        .map_err(|e| anyhow!("bad log level {}: {e}", crate::excerpt::excerpt(spec)))?;
    control.filter.reload(filter).map_err(|e| anyhow!("{e}"))?;
    let mut current = control
        .current
        .lock()
        .map_err(|_| anyhow!("log level lock poisoned"))?;
    let old = std::mem::replace(&mut *current, spec.to_string());
    Ok(LevelChange {
        old,
        new: spec.to_string(),
    })
}

/// The spec in force (`info` before logging starts).
pub fn current_level() -> String {
    CONTROL
        .get()
        .and_then(|c| c.current.lock().ok().map(|s| s.clone()))
        .unwrap_or_else(|| DEFAULT_LEVEL.to_string())
}

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
/// Our events' targets are module paths under this.
const OUR_TARGET: &str = "farmcast";

/// EnvFilter reads a word that is not a level as a target name, which would
/// silently switch all logging off; accept only levels and `module=level`.
fn check_spec(spec: &str) -> Result<()> {
    let hint = "use a level (error, warn, info, debug, trace) or module=level, comma separated";
    if spec.trim().is_empty() {
        return Err(anyhow!("empty log level; {hint}"));
    }
    for directive in spec.split(',').map(str::trim) {
        let (target, level) = split_directive(directive);
        let target_ok = target.is_none_or(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        });
        if !target_ok || !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(anyhow!(
                "bad log level {}; {hint}",
                crate::excerpt::excerpt(directive)
            ));
        }
    }
    Ok(())
}

fn split_directive(directive: &str) -> (Option<&str>, &str) {
    match directive.split_once('=') {
        Some((t, l)) => (Some(t), l),
        None => (None, directive),
    }
}

/// Errors are how a box says what is wrong; a technician's level change must
/// not hide them. EnvFilter takes, for a target, the directive with the
/// longest target that is a prefix of it (no directive at all: nothing is
/// logged), so: the directive that governs `farmcast` must not be `off`, nor
/// may any directive for a module inside it.
fn keeps_errors(spec: &str) -> Result<()> {
    let mut governing: Option<(usize, &str)> = None;
    for directive in spec.split(',').map(str::trim) {
        let (target, level) = split_directive(directive);
        let off = level.eq_ignore_ascii_case("off");
        let t = target.unwrap_or("");
        if OUR_TARGET.starts_with(t) {
            if governing.is_none_or(|(len, _)| t.len() >= len) {
                governing = Some((t.len(), level));
            }
        } else if off && t.starts_with(OUR_TARGET) {
            return Err(anyhow!(
                "refused: {} would silence the errors of {}; the lowest level is error",
                crate::excerpt::excerpt(directive),
                crate::excerpt::excerpt(t)
            ));
        }
    }
    match governing {
        Some((_, level)) if !level.eq_ignore_ascii_case("off") => Ok(()),
        Some(_) => Err(anyhow!(
            "refused: {} would silence the box's errors; the lowest level is error",
            crate::excerpt::excerpt(spec)
        )),
        None => Err(anyhow!(
            "refused: {} sets no level for the box itself ({OUR_TARGET}), which would silence its errors; add a level, e.g. \"info,{}\"",
            crate::excerpt::excerpt(spec),
            crate::excerpt::excerpt(spec)
        )),
    }
}

/// The last `n` log lines, oldest first, at most `max_bytes` of JSON text.
pub fn last_lines(n: usize, max_bytes: usize) -> Vec<String> {
    let Some(control) = CONTROL.get() else {
        return Vec::new();
    };
    let Ok(ring) = control.ring.lock() else {
        return Vec::new();
    };
    ring.last(n, max_bytes)
}

#[derive(Clone)]
struct RingWriter(Ring);

/// One event's formatted text; pushed into the ring when the event is done.
struct RingLine {
    ring: Ring,
    buf: Vec<u8>,
    /// Bytes written, kept or not.
    total: usize,
}

impl Write for RingLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        // Past a line's cap the rest is counted, not kept.
        let room = (LINE_MAX_BYTES * 2).saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        self.total += data.len();
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RingLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let cut = self.total > self.buf.len();
        if let Ok(mut ring) = self.ring.lock() {
            for (i, line) in lines.iter().enumerate() {
                if cut && i + 1 == lines.len() {
                    ring.push_sized(line, self.total);
                } else {
                    ring.push(line);
                }
            }
        }
    }
}

impl<'a> MakeWriter<'a> for RingWriter {
    type Writer = RingLine;

    fn make_writer(&'a self) -> Self::Writer {
        RingLine {
            ring: self.0.clone(),
            buf: Vec::new(),
            total: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_levels_and_module_levels_pass() {
        for ok in [
            "debug",
            "INFO",
            "info,farmcast::media=trace",
            "off",
            "warn, rumqttc=error",
        ] {
            assert!(check_spec(ok).is_ok(), "{ok}");
        }
        for bad in [
            "not a level!!",
            "",
            "loud",
            "farmcast=",
            "=debug",
            "a b=info",
            "info,,debug",
        ] {
            assert!(check_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_cannot_be_silenced() {
        for ok in [
            "error",
            "info",
            "off,farmcast=error",
            "info,rumqttc=off",
            "warn,farmcast::media=trace",
            "farm=off,farmcast=warn",
        ] {
            assert!(keeps_errors(ok).is_ok(), "{ok}");
        }
        for bad in [
            "off",
            "OFF",
            "info,off",
            "info,farmcast=off",
            "info,farmcast::mqtt=off",
            "info,farm=off",
            "farmcast::media=trace",
            "rumqttc=debug",
        ] {
            let e = keeps_errors(bad).unwrap_err().to_string();
            assert!(e.contains("refused"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_ring_is_bounded_in_bytes_and_cuts_long_lines() {
        let mut ring = RingBuf::default();
        let long = "x".repeat(65_536);
        for _ in 0..1_100 {
            ring.push(&long);
        }
        assert!(ring.bytes <= RING_BYTES, "{}", ring.bytes);
        assert_eq!(
            ring.bytes,
            ring.lines.iter().map(String::len).sum::<usize>()
        );
        let line = ring.lines.back().unwrap();
        assert!(line.len() <= LINE_MAX_BYTES, "{}", line.len());
        assert!(line.ends_with("(line of 65536 bytes cut)"), "{line}");
        // Multi-byte text is cut on a character.
        ring.push(&"猕".repeat(2_000));
        assert!(ring.lines.back().unwrap().starts_with('猕'));
    }

    #[test]
    fn escapes_count_against_the_budget() {
        let mut ring = RingBuf::default();
        for _ in 0..50 {
            ring.push(&"\u{1b}\"\\".repeat(300));
        }
        let some = ring.last(1000, 10_000);
        let json = serde_json::to_string(&some).unwrap();
        assert!(!some.is_empty() && json.len() <= 10_000, "{}", json.len());
    }

    #[test]
    fn last_lines_fit_the_byte_budget_newest_kept() {
        let mut ring = RingBuf::default();
        for i in 0..100 {
            ring.push(&format!("line {i:03} {}", "y".repeat(100)));
        }
        let all = ring.last(1000, usize::MAX);
        assert_eq!(all.len(), 100);
        let some = ring.last(1000, 1_000);
        assert!(!some.is_empty() && some.len() < 100);
        assert!(some.last().unwrap().starts_with("line 099"));
        let json = serde_json::to_string(&some).unwrap();
        assert!(json.len() <= 1_000, "{}", json.len());
        assert_eq!(ring.last(3, usize::MAX).len(), 3);
    }
}
