//! Fleet configuration at the driver's edge: what config the daemon starts
//! with (the local file plus the stored layers, or the last known good), and
//! the reports and events a push produces.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::Config;
use crate::fleet::reported::{Reported, Status};
use crate::fleet::session::Session;
use crate::fleet::store::Store;
use crate::mqtt::payloads::Event;

pub struct Loaded {
    pub config: Config,
    /// `None` when the state directory cannot hold fleet layers: the box then
    /// runs its local file and rejects pushes.
    pub session: Option<Session>,
    /// A `rolled_back` report to publish once MQTT is up.
    pub reported: Option<Reported>,
}

/// The config to start with. A local file that does not load falls back to
/// the last known good (and says so); with nothing good at all, every problem
/// is logged with its line and the daemon does not start.
pub fn load(path: &Path) -> Result<Loaded> {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("{file}: cannot read: {e}");
            String::new()
        }
    };
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    // The state directory is named in the file itself; a broken file means the default.
    let state_dir = crate::config::load_str(&text)
        .map(|c| c.state_dir)
        .unwrap_or_else(|_| Config::default().state_dir);
    let store = match Store::open(Path::new(&state_dir)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "fleet layers cannot be kept; pushes will be rejected");
            return match crate::config::check_file(path) {
                Ok(config) => Ok(Loaded {
                    config,
                    session: None,
                    reported: None,
                }),
                Err(problems) => fail(&file, &problems),
            };
        }
    };
    match Session::start(store, text, dir) {
        Ok(started) => {
            for w in &started.warnings {
                tracing::warn!("{file}: {w}");
            }
            Ok(Loaded {
                config: started.session.config().clone(),
                session: Some(started.session),
                reported: started.reported,
            })
        }
        Err(problems) => fail(&file, &problems),
    }
}

fn fail(file: &str, problems: &[crate::config::Problem]) -> Result<Loaded> {
    for p in problems {
        tracing::error!("{}", p.in_file(file));
    }
    bail!(
        "{file}: {} problem(s) in the configuration and no last known good to fall back to; nothing started (run `farmcast check-config {file}`)",
        problems.len()
    )
}

/// The event a fleet report is told with on `P/D/events`.
pub fn event(r: &Reported) -> Event {
    let kind = match r.status {
        Status::Applied => "config_applied",
        Status::Pending => "config_pending",
        Status::Rejected => "config_rejected",
        Status::RolledBack => "config_rolled_back",
    };
    let mut ev = Event::now(kind).with("hash", r.hash.as_str());
    if let Some(v) = r.version {
        ev = ev.with("version", v);
    }
    if let Some(e) = &r.error {
        ev = ev.with("error", e.as_str());
    }
    if let Some(f) = &r.field {
        ev = ev.with("field", f.as_str());
    }
    ev
}
