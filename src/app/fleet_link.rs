//! Fleet configuration at the shell's edge: what config the daemon starts
//! with (the local file plus the stored layers, or the last known good), and
//! the session that keeps the layers on disk, asked by the core.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::appliance::{FleetAnswer, FleetOp};
use crate::config::Config;
use crate::fleet::reported::Reported;
use crate::fleet::session::Session;
use crate::fleet::store::{RealDisk, Store};
use crate::fleet::NoUsableConfig;

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

/// The farmer's product edits from the phone page are a layer over all
/// others (docs/web.md): every config the session hands out gets them.
fn with_local_edits(action: crate::fleet::Action) -> crate::fleet::Action {
    use crate::fleet::Action;
    match action {
        Action::ApplyLive(mut c) => {
            crate::web::products::apply_saved(&mut c);
            crate::web::push::apply_saved_servers(&mut c);
            Action::ApplyLive(c)
        }
        Action::Restart(mut c) => {
            crate::web::products::apply_saved(&mut c);
            crate::web::push::apply_saved_servers(&mut c);
            Action::Restart(c)
        }
        Action::None => Action::None,
    }
}

/// Carry out the core's question to the fleet session (the layers on
/// disk); its answer goes back to the core.
pub fn ask(session: &mut Option<Session>, op: FleetOp) -> Option<FleetAnswer> {
    let session = session.as_mut()?;
    let step = |session: &Session, (reported, action)| FleetAnswer::Step {
        reported,
        action: with_local_edits(action),
        config_version: session.config_version(),
    };
    match op {
        FleetOp::Handle {
            source,
            payload,
            live,
        } => {
            if session.is_current(&source, &payload) {
                tracing::debug!(?source, "desired config already held");
                return Some(FleetAnswer::Current);
            }
            let answer = session.handle(&source, &payload, live);
            Some(step(session, answer))
        }
        FleetOp::ShowEnded => {
            let answer = session.show_ended()?;
            Some(step(session, answer))
        }
        FleetOp::ConfirmRunning => {
            if let Err(e) = session.confirm_running() {
                tracing::warn!(error = %format!("{e:#}"), "last known good not saved");
            }
            None
        }
        FleetOp::RollBack(why) => Some(match session.roll_back(&why) {
            Some(answer) => step(session, answer),
            None => FleetAnswer::NothingToRollBack,
        }),
    }
}
