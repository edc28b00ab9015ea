//! The fleet steps in the order the daemon needs them: start from what is on
//! disk (falling back to the last known good), take or reject each push, hold
//! a rebuild back until the show ends, roll back when a config fails.
//!
//! The session owns the store and the layers; the daemon owns the pipeline.
//! Each call returns the [`Reported`] to publish (retained) and an [`Action`]
//! for the pipeline. Nothing is written before a push passed every check.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use super::accept::{
    check_layer, diff_class, effective, paths_of_class, source_key, Acceptor, ChangeClass, Source,
    Trust,
};
use super::envelope::{parse, Envelope};
use super::reported::{Reported, Status};
use super::store::{Layers, RejectedEntry, Store, REJECTED_KEPT};
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
    /// Layers taken that wait for a daemon restart (hardware), by source key.
    awaiting_restart: BTreeMap<String, u64>,
    /// Why the stored layers are not all in force until a restart.
    restart_note: Option<(String, Option<String>)>,
    /// The last rejected envelopes, so a retained bad push is answered from
    /// memory instead of being checked again.
    rejected: Vec<RejectedEntry>,
    /// How many envelopes went through the checks (the memory's witness).
    validations: u64,
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

/// Why a push that needs a new pipeline is `pending` during a show.
const SHOW_NOTE: &str = "waits for the show to end (or a v2 envelope with apply: now)";

fn restart_note(paths: &[String]) -> String {
    format!(
        "stored; in force after the daemon restarts (hardware is opened at start): {}",
        paths.join(", ")
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The problems for a report or a log line: the first few, each bounded
/// (key names and values in them came from a push), and how many more.
fn join(problems: &[Problem]) -> String {
    const SHOWN: usize = 5;
    let bounded = |t: &str| crate::excerpt::excerpt_n(t, 160);
    let mut out = problems
        .iter()
        .take(SHOWN)
        .map(|p| match (p.path.is_empty(), p.line) {
            (true, _) => bounded(&p.message),
            (false, Some(line)) => {
                format!("{} (line {line}): {}", first_path(p), bounded(&p.message))
            }
            (false, None) => format!("{}: {}", first_path(p), bounded(&p.message)),
        })
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > SHOWN {
        out.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    out
}

/// A problem's key path, bounded: an unknown key's name is the pusher's text.
fn first_path(p: &Problem) -> String {
    crate::excerpt::excerpt(&p.path)
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
        let mut stored = store.load_layers().unwrap_or_else(|e| {
            warnings.push(format!("{e:#}"));
            Layers::default()
        });
        // Layers that cannot be read must not make the box forget which
        // versions it took: an old signed envelope would be replayable.
        match store.load_versions() {
            Ok(versions) => stored.raise_high_water(&versions),
            Err(e) => warnings.push(format!("{e:#}")),
        }
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
                    .with_error(why.clone(), first_problems.first().map(first_path));
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

    /// The local file is missing, unreadable or empty: run the last known good
    /// (its file and layers) as it was. `None` when there is none, or it no
    /// longer loads; the daemon then does not start.
    pub fn start_last_good(store: Store, config_dir: PathBuf) -> Option<Started> {
        let mut warnings = Vec::new();
        let good = match store.load_last_good() {
            Ok(g) => g?,
            Err(e) => {
                tracing::error!("{e:#}");
                return None;
            }
        };
        let mut layers = good.layers;
        if let Ok(stored) = store.load_layers() {
            layers.keep_high_water(&stored);
        }
        match store.load_versions() {
            Ok(versions) => layers.raise_high_water(&versions),
            Err(e) => warnings.push(format!("{e:#}")),
        }
        let config = match effective(&good.file, &layers.texts(), &config_dir) {
            Ok(c) => c,
            Err(ps) => {
                tracing::error!("the last known good does not load: {}", join(&ps));
                return None;
            }
        };
        Some(Started {
            session: Session::new(store, config_dir, good.file, layers, config),
            reported: None,
            warnings,
        })
    }

    fn new(
        store: Store,
        config_dir: PathBuf,
        file_src: String,
        layers: Layers,
        config: Config,
    ) -> Session {
        let (trust, err) = Trust::load(&config.fleet, &config_dir);
        match (&trust, err) {
            (_, Some(e)) => tracing::error!("fleet pushes will all be rejected: {e:#}"),
            (Trust::Refuse, None) => tracing::info!(
                "no fleet.trusted_keys_file: fleet pushes are refused (fleet.allow_unsigned = true takes unsigned ones, labs only)"
            ),
            (Trust::Open, None) => {
                tracing::warn!("fleet.allow_unsigned: ANY broker client can push this box's config")
            }
            (Trust::Keys(_), None) => {}
        }
        let acceptor = Acceptor {
            device_id: config.device_id.clone(),
            groups: config.fleet.groups.clone(),
            trust,
            applied_versions: layers.versions(),
        };
        let rejected = store.load_rejected().unwrap_or_else(|e| {
            tracing::warn!("forgetting earlier rejected pushes: {e:#}");
            Vec::new()
        });
        let awaiting_restart = store.load_awaiting_restart().unwrap_or_default();
        Session {
            store,
            config_dir,
            file_src,
            running_layers: layers.clone(),
            layers,
            running: config,
            pending: None,
            acceptor,
            awaiting_restart,
            restart_note: None,
            rejected,
            validations: 0,
        }
    }

    /// How many payloads were checked in full since start (memory hits and
    /// held envelopes are not).
    pub fn validations(&self) -> u64 {
        self.validations
    }

    /// What a rejection depended on besides the payload: the local file, the
    /// layers (versions included) and the trusted keys. A remembered rejection
    /// counts only while these are the same.
    fn context(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.file_src.as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(&self.layers).unwrap_or_default());
        h.update([0]);
        match &self.acceptor.trust {
            Trust::Refuse => h.update(b"refuse"),
            Trust::Open => h.update(b"open"),
            Trust::Keys(keys) => keys.iter().for_each(|k| h.update(k.as_bytes())),
        }
        hex(&h.finalize())
    }

    fn remember_rejection(&mut self, payload: &str, context: String, reported: &Reported) {
        self.rejected.retain(|e| e.payload != payload);
        self.rejected.push(RejectedEntry {
            payload: payload.to_string(),
            context,
            reported: reported.clone(),
        });
        let excess = self.rejected.len().saturating_sub(REJECTED_KEPT);
        self.rejected.drain(..excess);
        if let Err(e) = self.store.save_rejected(&self.rejected) {
            tracing::warn!("rejected push not remembered across restarts: {e:#}");
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
    /// nothing to do and nothing to report. Not when it waited for a restart
    /// that has happened since: that one is reported `applied` now.
    pub fn is_current(&self, source: &Source, payload: &[u8]) -> bool {
        let Ok(env) = parse(payload) else {
            return false;
        };
        let awaited = self.awaiting_restart.get(&source_key(source)) == Some(&env.version)
            && self.restart_note.is_none();
        self.layers.get(source) == Some(&env) && !awaited
    }

    /// Takes or rejects a push that arrived on `source`'s topic. A payload
    /// rejected before against the same state is answered from memory.
    pub fn handle(
        &mut self,
        source: &Source,
        payload: &[u8],
        show_live: bool,
    ) -> (Reported, Action) {
        let digest = hex(&Sha256::digest(payload));
        let context = self.context();
        if let Some(e) = self
            .rejected
            .iter()
            .find(|e| e.payload == digest && e.context == context)
        {
            return (e.reported.clone(), Action::None);
        }
        self.validations += 1;
        let (reported, action, deterministic) = self.judge(source, payload, show_live);
        if reported.status == Status::Rejected && deterministic {
            self.remember_rejection(&digest, context, &reported);
        }
        (reported, action)
    }

    /// The checks and what follows; the flag is false for a rejection that
    /// may not happen again (the disk failed).
    fn judge(
        &mut self,
        source: &Source,
        payload: &[u8],
        show_live: bool,
    ) -> (Reported, Action, bool) {
        let env = match parse(payload) {
            Ok(env) => env,
            Err(e) => {
                let r = Reported::new(None, Status::Rejected, "").with_error(e.to_string(), None);
                return (r, Action::None, true);
            }
        };
        let reject = |error: String, field: Option<String>| {
            (
                Reported::new(Some(env.version), Status::Rejected, &env.config)
                    .with_error(error, field),
                Action::None,
                true,
            )
        };
        if let Err(r) = self.acceptor.check_origin(source, &env) {
            return reject(r.reason, r.field);
        }
        if let Some(held) = self.layers.get(source) {
            if (held.version, &held.target, &held.config) == (env.version, &env.target, &env.config)
            {
                // The same signed layer again with another (signed) `apply`.
                let (r, a) = self.resend(source, env, show_live);
                return (r, a, true);
            }
        }
        if let Err(r) = self
            .acceptor
            .check_newer(source, &env)
            .and_then(|()| check_layer(&env.config))
        {
            return reject(r.reason, r.field);
        }
        let layers = self.layers.with(source, env.clone());
        let config = match effective(&self.file_src, &layers.texts(), &self.config_dir) {
            Ok(c) => c,
            Err(ps) => return reject(join(&ps), ps.first().map(first_path)),
        };
        if let Err(e) = self.store.save_layers(&layers) {
            let (r, a, _) = reject(format!("{e:#}"), None);
            return (r, a, false);
        }
        self.acceptor.applied_versions = layers.versions();
        self.layers = layers;
        let reported = |status| Reported::new(Some(env.version), status, &env.config);
        let class = diff_class(&self.running, &config);
        if class != ChangeClass::NeedsDaemonRestart {
            self.set_awaiting(source, None);
        }
        match class {
            ChangeClass::NeedsDaemonRestart => {
                // The old pins and scale keep running until the daemon
                // restarts; nothing of this push is in force before then, and
                // the last known good stays what ran.
                self.pending = None;
                let paths = paths_of_class(&self.running, &config, class);
                let note = restart_note(&paths);
                let field = paths.first().cloned();
                self.restart_note = Some((note.clone(), field.clone()));
                self.set_awaiting(source, Some(env.version));
                (
                    reported(Status::Pending).with_note(note, field),
                    Action::None,
                    true,
                )
            }
            ChangeClass::NeedsRestart if show_live && !env.apply_now() => {
                self.pending = Some(Pending {
                    config,
                    version: env.version,
                    text: env.config.clone(),
                });
                self.restart_note = None;
                let r = reported(Status::Pending).with_note(SHOW_NOTE, None);
                (r, Action::None, true)
            }
            class => {
                self.pending = None;
                self.restart_note = None;
                self.running = config.clone();
                self.running_layers = self.layers.clone();
                let action = match class {
                    ChangeClass::None => Action::None,
                    ChangeClass::Live => Action::ApplyLive(Box::new(config)),
                    _ => Action::Restart(Box::new(config)),
                };
                (reported(Status::Applied), action, true)
            }
        }
    }

    /// The layer this source already gave, sent again with a different
    /// (signed) `apply` or format: acted on, never silently dropped. An
    /// `apply: now` cuts the show for a layer held back for it; otherwise the
    /// report says where the layer stands.
    fn resend(&mut self, source: &Source, env: Envelope, show_live: bool) -> (Reported, Action) {
        let in_force = self.running_layers.get(source).map(|e| e.version) == Some(env.version);
        let apply_now = env.apply_now();
        // Keep what was sent last, so the retained copy is recognised as held.
        let layers = self.layers.with(source, env.clone());
        if layers != self.layers && self.store.save_layers(&layers).is_ok() {
            if in_force {
                self.running_layers = self.running_layers.with(source, env.clone());
            }
            self.layers = layers;
        }
        let reported = |status| Reported::new(Some(env.version), status, &env.config);
        if in_force {
            self.set_awaiting(source, None);
            return (reported(Status::Applied), Action::None);
        }
        if let Some((note, field)) = &self.restart_note {
            return (
                reported(Status::Pending).with_note(note, field.clone()),
                Action::None,
            );
        }
        match self.pending.take() {
            Some(p) if apply_now || !show_live => {
                self.running = p.config.clone();
                self.running_layers = self.layers.clone();
                (reported(Status::Applied), Action::Restart(Box::new(p.config)))
            }
            Some(p) => {
                self.pending = Some(p);
                (reported(Status::Pending).with_note(SHOW_NOTE, None), Action::None)
            }
            // Held but neither running nor waiting: the start fell back past it.
            None => (
                reported(Status::Rejected).with_error(
                    "this version was taken before but is not in force (the box fell back); push a newer version",
                    Some("version".into()),
                ),
                Action::None,
            ),
        }
    }

    fn set_awaiting(&mut self, source: &Source, version: Option<u64>) {
        let key = source_key(source);
        let before = self.awaiting_restart.clone();
        match version {
            Some(v) => self.awaiting_restart.insert(key, v),
            None => self.awaiting_restart.remove(&key),
        };
        if before != self.awaiting_restart {
            if let Err(e) = self.store.save_awaiting_restart(&self.awaiting_restart) {
                tracing::warn!("{e:#}");
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
        if let Ok(Some(good)) = self.store.load_last_good() {
            let same = |a: &Layers, b: &Layers| (&a.groups, &a.device) == (&b.groups, &b.device);
            if good.file == self.file_src && same(&good.layers, &self.running_layers) {
                // Already recorded (a box running its last known good): no write.
                return Ok(());
            }
        }
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
        self.restart_note = None;
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

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
