//! The fleet steps in the order the daemon needs them: start from what is on
//! disk (falling back to the last known good), take or reject each push, hold
//! a rebuild back until the show ends, roll back when a config fails.
//!
//! The session owns the store and the layers; the daemon owns the pipeline.
//! Each call returns the [`Reported`] to publish (retained) and an [`Action`]
//! for the pipeline. Nothing is written before a push passed every check.

use std::path::PathBuf;

use super::accept::{check_layer, diff_class, effective, Acceptor, ChangeClass, Source, Trust};
use super::envelope::parse;
use super::reported::{Reported, Status};
use super::store::{Layers, Store};
use crate::config::{Config, Problem};

/// What the daemon does with the pipeline after a fleet step.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    /// Apply to the running pipeline without a rebuild (bitrate, products...).
    ApplyLive(Box<Config>),
    /// Rebuild the pipeline with this config now.
    Restart(Box<Config>),
}

/// A stored push waiting for the show to end.
#[derive(Debug, Clone)]
struct Pending {
    config: Config,
    version: u64,
    text: String,
}

#[derive(Debug)]
pub struct Session {
    store: Store,
    config_dir: PathBuf,
    /// The local file's text in force (the last good copy if the file broke).
    file_src: String,
    /// Layers on disk, pending ones included.
    layers: Layers,
    /// Layers the running config was made from.
    running_layers: Layers,
    running: Config,
    pending: Option<Pending>,
    acceptor: Acceptor,
}

/// The result of [`Session::start`].
#[derive(Debug)]
pub struct Started {
    pub session: Session,
    /// `rolled_back` to publish when start had to fall back.
    pub reported: Option<Reported>,
    /// What went wrong on the way, for the log.
    pub warnings: Vec<String>,
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match (p.path.is_empty(), p.line) {
            (true, _) => p.message.clone(),
            (false, Some(line)) => format!("{} (line {line}): {}", p.path, p.message),
            (false, None) => format!("{}: {}", p.path, p.message),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Session {
    /// Loads the config in force: the local file with the stored layers; if that
    /// fails, the last good layers over the file, then the last good file and
    /// layers, then the file alone. Err only when nothing loads.
    pub fn start(
        store: Store,
        file_src: String,
        config_dir: PathBuf,
    ) -> Result<Started, Vec<Problem>> {
        let mut warnings = Vec::new();
        let stored = store.load_layers().unwrap_or_else(|e| {
            warnings.push(format!("{e:#}"));
            Layers::default()
        });
        let first = effective(&file_src, &stored.texts(), &config_dir);
        let first_problems = match first {
            Ok(config) => {
                let session = Session::new(store, config_dir, file_src, stored, config);
                return Ok(Started {
                    session,
                    reported: None,
                    warnings,
                });
            }
            Err(ps) => ps,
        };
        let why = format!("the stored config does not load: {}", join(&first_problems));
        warnings.push(why.clone());
        let good = store.load_last_good().unwrap_or_else(|e| {
            warnings.push(format!("{e:#}"));
            None
        });
        let mut candidates = Vec::new();
        if let Some(g) = good {
            candidates.push((file_src.clone(), g.layers.clone(), "the last good layers"));
            candidates.push((g.file, g.layers, "the last good file and layers"));
        }
        candidates.push((
            file_src.clone(),
            Layers::default(),
            "the local file without pushed layers",
        ));
        for (src, mut layers, what) in candidates {
            layers.keep_high_water(&stored);
            if let Ok(config) = effective(&src, &layers.texts(), &config_dir) {
                if let Err(e) = store.save_layers(&layers) {
                    warnings.push(format!("{e:#}"));
                }
                warnings.push(format!("fell back to {what}"));
                let (version, text) = match &layers.device {
                    Some(e) => (Some(e.version), e.config.as_str()),
                    None => (None, ""),
                };
                let reported = Reported::new(version, Status::RolledBack, text)
                    .with_error(why.clone(), first_problems.first().map(|p| p.path.clone()));
                let session = Session::new(store, config_dir, src, layers, config);
                return Ok(Started {
                    session,
                    reported: Some(reported),
                    warnings,
                });
            }
        }
        Err(first_problems)
    }

    fn new(
        store: Store,
        config_dir: PathBuf,
        file_src: String,
        layers: Layers,
        config: Config,
    ) -> Session {
        let (trust, err) = Trust::load(&config.fleet, &config_dir);
        if let Some(e) = err {
            tracing::error!("fleet pushes will all be rejected: {e:#}");
        }
        let acceptor = Acceptor {
            device_id: config.device_id.clone(),
            groups: config.fleet.groups.clone(),
            trust,
            applied_versions: layers.versions(),
        };
        Session {
            store,
            config_dir,
            file_src,
            running_layers: layers.clone(),
            layers,
            running: config,
            pending: None,
            acceptor,
        }
    }

    /// The config the pipeline should be running.
    pub fn config(&self) -> &Config {
        &self.running
    }

    /// Version of the device layer in force (`config_version` in status).
    pub fn config_version(&self) -> u64 {
        self.running_layers.device.as_ref().map_or(0, |e| e.version)
    }

    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether `payload` is the envelope this box already holds for `source`
    /// (a retained desired config delivered again after every reconnect):
    /// nothing to do and nothing to report.
    pub fn is_current(&self, source: &Source, payload: &[u8]) -> bool {
        let Ok(env) = parse(payload) else {
            return false;
        };
        let held = match source {
            Source::Device => self.layers.device.as_ref(),
            Source::Group(g) => self.layers.groups.get(g),
        };
        held.is_some_and(|h| {
            h.version == env.version && h.config == env.config && h.target == env.target
        })
    }

    /// Takes or rejects a push that arrived on `source`'s topic.
    pub fn handle(
        &mut self,
        source: &Source,
        payload: &[u8],
        show_live: bool,
    ) -> (Reported, Action) {
        let env = match parse(payload) {
            Ok(env) => env,
            Err(e) => {
                let r = Reported::new(None, Status::Rejected, "").with_error(e.to_string(), None);
                return (r, Action::None);
            }
        };
        let reject = |error: String, field: Option<String>| {
            (
                Reported::new(Some(env.version), Status::Rejected, &env.config)
                    .with_error(error, field),
                Action::None,
            )
        };
        if let Err(r) = self
            .acceptor
            .check(source, &env)
            .and_then(|()| check_layer(&env.config))
        {
            return reject(r.reason, r.field);
        }
        let layers = self.layers.with(source, env.clone());
        let config = match effective(&self.file_src, &layers.texts(), &self.config_dir) {
            Ok(c) => c,
            Err(ps) => return reject(join(&ps), ps.first().map(|p| p.path.clone())),
        };
        if let Err(e) = self.store.save_layers(&layers) {
            return reject(format!("{e:#}"), None);
        }
        self.acceptor.applied_versions = layers.versions();
        self.layers = layers;
        let reported = |status| Reported::new(Some(env.version), status, &env.config);
        match diff_class(&self.running, &config) {
            ChangeClass::NeedsRestart if show_live && !env.apply_now() => {
                self.pending = Some(Pending {
                    config,
                    version: env.version,
                    text: env.config.clone(),
                });
                (reported(Status::Pending), Action::None)
            }
            class => {
                self.pending = None;
                self.running = config.clone();
                self.running_layers = self.layers.clone();
                let action = match class {
                    ChangeClass::None => Action::None,
                    ChangeClass::Live => Action::ApplyLive(Box::new(config)),
                    ChangeClass::NeedsRestart => Action::Restart(Box::new(config)),
                };
                (reported(Status::Applied), action)
            }
        }
    }

    /// The show ended: a held-back push is applied now.
    pub fn show_ended(&mut self) -> Option<(Reported, Action)> {
        let p = self.pending.take()?;
        self.running = p.config.clone();
        self.running_layers = self.layers.clone();
        let r = Reported::new(Some(p.version), Status::Applied, &p.text);
        Some((r, Action::Restart(Box::new(p.config))))
    }

    /// The pipeline runs well with [`Session::config`]: keep it as last good.
    pub fn confirm_running(&self) -> anyhow::Result<()> {
        self.store
            .promote_last_good(&self.file_src, &self.running_layers)
    }

    /// The running config failed (`why`): go back to the last good one.
    /// `None` when there is nothing to go back to.
    pub fn roll_back(&mut self, why: &str) -> Option<(Reported, Action)> {
        // A box that never confirmed a config goes back to its own file alone.
        let local_only = super::store::LastGood {
            file: self.file_src.clone(),
            layers: Layers::default(),
        };
        let good = match self.store.rollback_or(Some(local_only)) {
            Ok(Some(g)) => g,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!("cannot roll back: {e:#}");
                return None;
            }
        };
        let config = effective(&self.file_src, &good.layers.texts(), &self.config_dir)
            .or_else(|_| {
                let c = effective(&good.file, &good.layers.texts(), &self.config_dir)?;
                self.file_src = good.file.clone();
                Ok::<_, Vec<Problem>>(c)
            })
            .ok()?;
        self.pending = None;
        // Versions stay at the highest seen, so the failed push cannot be replayed.
        self.layers = good.layers.clone();
        self.running_layers = good.layers;
        self.running = config.clone();
        let (version, text) = match &self.layers.device {
            Some(e) => (Some(e.version), e.config.clone()),
            None => (None, String::new()),
        };
        let r = Reported::new(version, Status::RolledBack, &text).with_error(why, None);
        Some((r, Action::Restart(Box::new(config))))
    }
}
