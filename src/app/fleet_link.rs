//! Fleet configuration at the driver's edge: what config the daemon starts
//! with (the local file plus the stored layers, or the last known good), and
//! the reports and events a push produces.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;

use super::{media_ctl, Driver, TRIAL};
use crate::show::{Input, Show, ShowSettings, State};

use crate::config::Config;
use crate::fleet::reported::{Reported, Status};
use crate::fleet::session::Session;
use crate::fleet::store::{RealDisk, Store};
use crate::fleet::NoUsableConfig;
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
/// the last known good (and says so); a file that is missing, unreadable or
/// empty never means "run the built-in defaults": the last known good runs,
/// and with none the daemon does not start ([`NoUsableConfig`], its own exit
/// status so that systemd does not restart it in a loop).
pub fn load(path: &Path) -> Result<Loaded> {
    let file = path.display().to_string();
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let text = match read_real_file(path) {
        Ok(t) => t,
        Err(why) => return run_last_good(&file, &why, dir),
    };
    // What `check-config` warns about (a table switched off, unsigned pushes
    // allowed) is said at every start too, where a technician reads the log.
    for w in crate::config::check_sources(&[&text], crate::config::Depth::Load).warnings {
        tracing::warn!("{}", w.in_file(&file));
    }
    // The state directory is named in the file itself, read on its own so
    // that a problem elsewhere in the file (a number out of range) does not
    // send the box to another folder's last known good; a file that is not
    // TOML at all means systemd's StateDirectory or the default.
    let state_dir = match toml::from_str::<toml::Table>(&text) {
        Ok(t) => match t.get("state_dir").and_then(|v| v.as_str()) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(Config::default().state_dir),
        },
        Err(_) => fallback_state_dir(),
    };
    let store = match Store::open(&state_dir) {
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

/// The file's text when it is a real config: readable, and setting at least
/// one key. A missing file, a directory or dangling link in its place, bad
/// permissions and an empty (or comment-only) file are all `Err(why)`.
fn read_real_file(path: &Path) -> std::result::Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it ({e})"))?;
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    match toml::from_str::<toml::Table>(&text) {
        Ok(table) if table.is_empty() => Err("the file sets no key".into()),
        _ => Ok(text),
    }
}

/// Where the last known good lives when the file cannot say: systemd's
/// `$STATE_DIRECTORY` (the unit's `StateDirectory=`), else the default.
fn fallback_state_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .and_then(|v| std::env::split_paths(&v).next())
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(Config::default().state_dir))
}

/// The local file is no config at all: run the last known good, in one
/// error line; with none, stop with one.
fn run_last_good(file: &str, why: &str, dir: PathBuf) -> Result<Loaded> {
    let fleet_dir = fallback_state_dir().join("fleet");
    // Not `Store::open`: nothing is created where nothing was kept.
    let store = Store::with_disk(fleet_dir.clone(), Box::new(RealDisk));
    let lkg = store.last_good_path();
    let Some(started) = Session::start_last_good(store, dir) else {
        return Err(NoUsableConfig(format!(
            "{file}: {why}, and there is no last known good configuration ({}): nothing started",
            lkg.display()
        ))
        .into());
    };
    tracing::error!(
        "{file}: {why}; running the last known good configuration from {} (device {})",
        lkg.display(),
        crate::excerpt::excerpt(&started.session.config().device_id)
    );
    for w in &started.warnings {
        tracing::warn!("{}: {w}", lkg.display());
    }
    Ok(Loaded {
        config: started.session.config().clone(),
        session: Some(started.session),
        reported: started.reported,
    })
}

fn fail(file: &str, problems: &[crate::config::Problem]) -> Result<Loaded> {
    for p in problems {
        tracing::error!("{}", p.in_file(file));
    }
    Err(NoUsableConfig(format!(
        "{file}: {} problem(s) in the configuration and no last known good to fall back to; nothing started (run `farmcast check-config {file}`)",
        problems.len()
    ))
    .into())
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
    if let Some(n) = &r.note {
        ev = ev.with("note", n.as_str());
    }
    ev
}

impl Driver {
    pub(super) fn report(&self, r: &crate::fleet::Reported) {
        match r.status {
            crate::fleet::Status::Rejected | crate::fleet::Status::RolledBack => {
                tracing::warn!(status = ?r.status, error = ?r.error, field = ?r.field, version = ?r.version, "config")
            }
            _ => {
                tracing::info!(status = ?r.status, version = ?r.version, note = ?r.note, field = ?r.field, "config")
            }
        }
        if let Some(m) = &self.mqtt {
            m.report_config(r.to_json());
            m.event(event(r));
        }
    }

    /// A signed config pushed by a fleet manager (device or group layer).
    pub(super) fn on_push(&mut self, source: &crate::fleet::Source, payload: &[u8]) {
        let live = self.show.state().in_show();
        let Some(session) = &mut self.fleet else {
            let r = crate::fleet::Reported::new(None, crate::fleet::Status::Rejected, "")
                .with_error(
                    "this box cannot keep fleet layers (see its log: state_dir)",
                    None,
                );
            return self.report(&r);
        };
        if session.is_current(source, payload) {
            tracing::debug!(?source, "desired config already held");
            return;
        }
        let (reported, action) = session.handle(source, payload, live);
        self.fleet_action(reported, action, Instant::now());
    }

    pub(super) fn show_ended(&mut self, now: Instant) {
        if let Some((reported, action)) = self.fleet.as_mut().and_then(|f| f.show_ended()) {
            self.fleet_action(reported, action, now);
        }
    }

    /// Reports and carries out a session's answer. A live apply reports
    /// itself: new MQTT settings are `applied` only once they have connected.
    fn fleet_action(&mut self, reported: Reported, action: crate::fleet::Action, now: Instant) {
        match action {
            crate::fleet::Action::None => self.report(&reported),
            crate::fleet::Action::ApplyLive(config) => self.apply_live(*config, reported),
            crate::fleet::Action::Restart(config) => {
                self.report(&reported);
                self.rebuild(*config, now)
            }
        }
    }

    /// Changes that need no new pipeline: bitrate, products, overlay, MQTT.
    pub(super) fn apply_live(&mut self, mut config: Config, reported: Reported) {
        if (config.video.bitrate_kbps, config.video.min_bitrate_kbps)
            != (
                self.config.video.bitrate_kbps,
                self.config.video.min_bitrate_kbps,
            )
        {
            self.abr = super::abr_for(&config, &self.media.encoder_name);
            if let Some(c) = self.media.capture() {
                c.set_bitrate(config.video.bitrate_kbps);
            }
        }
        crate::web::products::apply_saved(&mut config);
        self.selling.update_catalog(&config);
        // New MQTT settings go on trial beside the running link (remote.rs),
        // which then holds the report until they connect or roll back.
        let reported = if config.mqtt != self.config.mqtt {
            self.apply_mqtt(&mut config, reported, Instant::now())
        } else {
            Some(reported)
        };
        self.config = config;
        let Some(reported) = reported else { return };
        if let Some(f) = &self.fleet {
            if let Err(e) = f.confirm_running() {
                tracing::warn!(error = %format!("{e:#}"), "last known good not saved");
            }
        }
        self.report(&reported);
    }

    /// Changes that need a new pipeline (camera, encoder, destinations): tear
    /// down, build again, and keep the config on trial until standby.
    fn rebuild(&mut self, mut config: Config, now: Instant) {
        crate::web::products::apply_saved(&mut config);
        let was_on_air = self.show.state().in_show();
        tracing::info!(was_on_air, "new configuration: rebuilding the pipeline");
        self.media.shutdown();
        self.media =
            media_ctl::MediaCtl::new(&config, self.media_tx.clone(), self.disk_work.clone());
        let mut settings = ShowSettings::from_live(&config.live);
        // A show cut for an `apply: now` push goes back on air by itself.
        settings.autostart = config.live.autostart || was_on_air;
        self.show = Show::new(settings, super::enabled_destinations(&config), now);
        self.abr = super::abr_for(&config, &self.media.encoder_name);
        self.selling.update_catalog(&config);
        self.config = config;
        self.trial = Some(now + TRIAL);
        self.pending.push_back(Input::Tick);
    }

    /// The config the box started with becomes the last known good the
    /// first time it reaches standby (no rollback at boot: a camera that is
    /// unplugged at power-on is not the config's fault). Called at the very
    /// state change, before any later input: a push that arrives right after
    /// standby must not be saved as last known good in its place. Never while
    /// pushed MQTT settings are on trial: what runs then is not yet known good.
    pub(super) fn confirm_start(&mut self) {
        let state = self.show.state();
        if self.start_confirmed
            || self.mqtt_trial.is_some()
            || !(state == State::Standby || state.in_show())
        {
            return;
        }
        self.start_confirmed = true;
        if let Some(f) = &self.fleet {
            if let Err(e) = f.confirm_running() {
                tracing::warn!(error = %format!("{e:#}"), "last known good not saved");
            }
        }
    }

    /// A config on trial is kept once the box reaches standby (or goes on
    /// air) and rolled back when the deadline passes first.
    pub(super) fn check_trial(&mut self, now: Instant) {
        let state = self.show.state();
        self.confirm_start();
        let Some(deadline) = self.trial else { return };
        if state == State::Standby || state.in_show() {
            self.trial = None;
            if let Some(f) = &self.fleet {
                match f.confirm_running() {
                    Ok(()) => tracing::info!("new configuration confirmed"),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "last known good not saved")
                    }
                }
            }
        } else if now >= deadline {
            self.trial = None;
            let why = format!(
                "the box did not reach standby within {} s with the new configuration (state {})",
                TRIAL.as_secs(),
                state.as_str()
            );
            tracing::error!("{why}; rolling back");
            match self.fleet.as_mut().and_then(|f| f.roll_back(&why)) {
                Some((reported, action)) => {
                    self.fleet_action(reported, action, now);
                    // The last good config is not on trial again: it ran before.
                    self.trial = None;
                }
                None => tracing::error!("nothing to roll back to; the box keeps retrying"),
            }
        }
    }
}
