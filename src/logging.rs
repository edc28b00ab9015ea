//! Logging: to journald when systemd started us (it sets `JOURNAL_STREAM`),
//! to the terminal otherwise. `RUST_LOG` sets the level (`info` by default);
//! technicians can change it at run time (`set_log_level`) and read the last
//! lines (`logs`) over MQTT, so they need not SSH in.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, Result};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{
    layer::SubscriberExt, reload, util::SubscriberInitExt, EnvFilter, Registry,
};

/// Lines kept for the `logs` command.
pub const RING_LINES: usize = 1000;

type Ring = Arc<Mutex<VecDeque<String>>>;

pub struct LogControl {
    filter: reload::Handle<EnvFilter, Registry>,
    ring: Ring,
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let ring: Ring = Arc::new(Mutex::new(VecDeque::with_capacity(RING_LINES)));
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
        });
    }
}

/// Change the level at run time, e.g. `debug` or `info,farmcast::media=trace`.
pub fn set_level(spec: &str) -> Result<()> {
    check_spec(spec)?;
    let control = CONTROL
        .get()
        .ok_or_else(|| anyhow!("logging is not initialised"))?;
    let filter = EnvFilter::try_new(spec).map_err(|e| anyhow!("bad log level {spec:?}: {e}"))?;
    control.filter.reload(filter).map_err(|e| anyhow!("{e}"))
}

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// EnvFilter reads a word that is not a level as a target name, which would
/// silently switch all logging off; accept only levels and `module=level`.
fn check_spec(spec: &str) -> Result<()> {
    let hint =
        "use a level (error, warn, info, debug, trace, off) or module=level, comma separated";
    if spec.trim().is_empty() {
        return Err(anyhow!("empty log level; {hint}"));
    }
    for directive in spec.split(',').map(str::trim) {
        let (target, level) = match directive.split_once('=') {
            Some((t, l)) => (Some(t), l),
            None => (None, directive),
        };
        let target_ok = target.is_none_or(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        });
        if !target_ok || !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(anyhow!("bad log level {directive:?}; {hint}"));
        }
    }
    Ok(())
}

/// The last `n` log lines, oldest first.
pub fn last_lines(n: usize) -> Vec<String> {
    let Some(control) = CONTROL.get() else {
        return Vec::new();
    };
    let Ok(ring) = control.ring.lock() else {
        return Vec::new();
    };
    ring.iter()
        .skip(ring.len().saturating_sub(n))
        .cloned()
        .collect()
}

#[derive(Clone)]
struct RingWriter(Ring);

/// One event's formatted text; pushed into the ring when the event is done.
struct RingLine {
    ring: Ring,
    buf: Vec<u8>,
}

impl Write for RingLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RingLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        if let Ok(mut ring) = self.ring.lock() {
            for line in text.lines().filter(|l| !l.is_empty()) {
                if ring.len() >= RING_LINES {
                    ring.pop_front();
                }
                ring.push_back(line.to_string());
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_spec;

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
}
