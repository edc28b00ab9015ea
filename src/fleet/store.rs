//! The fleet state on disk: `STATE/fleet/layers.json` (the pushed envelopes
//! in force) and `STATE/fleet/last_good.json` (the local file's text and the
//! layers that last ran). Each is one file written atomically, so the set of
//! layers changes all at once or not at all.
//!
//! Two small files beside them: `versions.json`, the highest version taken per
//! source, written after every `layers.json` and read even when that one is
//! damaged, so a box that lost its layers still refuses old signed envelopes;
//! and `rejected.json`, the last [`REJECTED_KEPT`] rejected envelopes by hash
//! with their reports, so a retained bad push is not checked again at every
//! restart or reconnect.
//!
//! [`write_atomic`]: temporary file in the same directory, write, fsync,
//! rename over the target, fsync the directory. A power cut at any step leaves
//! either the old or the new file, whole. File operations go through [`Disk`]
//! so tests can cut the power after any step ([`super::sim_disk`]).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::accept::{source_key, LayerTexts, Source};
use super::envelope::Envelope;

/// The few file operations an atomic write needs.
pub trait Disk {
    /// The file's bytes, `None` when it does not exist.
    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>>;
    /// Creates or truncates `path` and writes `bytes` (not yet durable).
    fn write_new(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes the file's content durable.
    fn sync_file(&self, path: &Path) -> std::io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Makes the directory's entries (creations, renames) durable.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(bytes)
    }

    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        // fsync flushes the inode whichever descriptor asks.
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old or new content.
pub fn write_atomic(disk: &dyn Disk, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    disk.write_new(&tmp, bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    disk.sync_file(&tmp)
        .with_context(|| format!("cannot fsync {}", tmp.display()))?;
    disk.rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    disk.sync_dir(dir)
        .with_context(|| format!("cannot fsync the directory {}", dir.display()))
}

/// The envelopes in force, one per source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layers {
    #[serde(default)]
    pub groups: BTreeMap<String, Envelope>,
    #[serde(default)]
    pub device: Option<Envelope>,
    /// Highest version ever taken per source key, kept through rollbacks so a
    /// push that was rolled back cannot be replayed, even after a reboot.
    #[serde(default)]
    pub high_water: BTreeMap<String, u64>,
}

impl Layers {
    pub fn get(&self, source: &Source) -> Option<&Envelope> {
        match source {
            Source::Device => self.device.as_ref(),
            Source::Group(g) => self.groups.get(g),
        }
    }

    /// A copy with `env` in place of `source`'s layer.
    pub fn with(&self, source: &Source, env: Envelope) -> Layers {
        let mut next = self.clone();
        let seen = next.high_water.entry(source_key(source)).or_insert(0);
        *seen = (*seen).max(env.version);
        match source {
            Source::Device => next.device = Some(env),
            Source::Group(g) => {
                next.groups.insert(g.clone(), env);
            }
        }
        next
    }

    /// The TOML of each layer, for [`super::accept::effective`].
    pub fn texts(&self) -> LayerTexts {
        LayerTexts {
            groups: self
                .groups
                .iter()
                .map(|(g, e)| (g.clone(), e.config.clone()))
                .collect(),
            device: self.device.as_ref().map(|e| e.config.clone()),
        }
    }

    /// Highest version taken per source key, for the acceptor's replay check.
    pub fn versions(&self) -> BTreeMap<String, u64> {
        let groups = self
            .groups
            .iter()
            .map(|(g, e)| (source_key(&Source::Group(g.clone())), e.version));
        let device = self
            .device
            .iter()
            .map(|e| (source_key(&Source::Device), e.version));
        let mut out = self.high_water.clone();
        for (k, v) in groups.chain(device) {
            let seen = out.entry(k).or_insert(0);
            *seen = (*seen).max(v);
        }
        out
    }

    /// Raises the high-water marks to `versions`' where those are higher.
    pub fn raise_high_water(&mut self, versions: &BTreeMap<String, u64>) {
        for (k, v) in versions {
            let seen = self.high_water.entry(k.clone()).or_insert(0);
            *seen = (*seen).max(*v);
        }
    }

    /// Raises this one's high-water marks to `other`'s where those are higher.
    pub fn keep_high_water(&mut self, other: &Layers) {
        for (k, v) in other.versions() {
            let seen = self.high_water.entry(k).or_insert(0);
            *seen = (*seen).max(v);
        }
    }
}

/// How many rejected envelopes are remembered.
pub const REJECTED_KEPT: usize = 16;

/// A rejected envelope: the SHA-256 of its payload, the fingerprint of the
/// state it was judged against (the local file, the layers, the trust), and
/// the report it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectedEntry {
    pub payload: String,
    pub context: String,
    pub reported: super::reported::Reported,
}

/// What last ran: the local file as it was and the layers over it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastGood {
    pub file: String,
    pub layers: Layers,
}

/// The `STATE/fleet` directory.
pub struct Store {
    dir: PathBuf,
    disk: Box<dyn Disk + Send>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// `state_dir/fleet` on the real disk, created if missing.
    pub fn open(state_dir: &Path) -> anyhow::Result<Store> {
        let dir = state_dir.join("fleet");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Store::with_disk(dir, Box::new(RealDisk)))
    }

    /// `dir` (the fleet directory itself) on any [`Disk`].
    pub fn with_disk(dir: PathBuf, disk: Box<dyn Disk + Send>) -> Store {
        Store { dir, disk }
    }

    pub fn layers_path(&self) -> PathBuf {
        self.dir.join("layers.json")
    }

    pub fn last_good_path(&self) -> PathBuf {
        self.dir.join("last_good.json")
    }

    pub fn versions_path(&self) -> PathBuf {
        self.dir.join("versions.json")
    }

    pub fn rejected_path(&self) -> PathBuf {
        self.dir.join("rejected.json")
    }

    /// The highest version taken per source key, from `versions.json`.
    pub fn load_versions(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(self.read_json(&self.versions_path())?.unwrap_or_default())
    }

    /// The remembered rejections, oldest first.
    pub fn load_rejected(&self) -> anyhow::Result<Vec<RejectedEntry>> {
        Ok(self.read_json(&self.rejected_path())?.unwrap_or_default())
    }

    pub fn save_rejected(&self, entries: &[RejectedEntry]) -> anyhow::Result<()> {
        self.write_json(&self.rejected_path(), &entries)
    }

    /// Layers taken but waiting for the daemon to restart (hardware), per
    /// source key: reported `applied` once a restart has put them in force.
    pub fn load_awaiting_restart(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(self
            .read_json(&self.dir.join("awaiting_restart.json"))?
            .unwrap_or_default())
    }

    pub fn save_awaiting_restart(&self, awaiting: &BTreeMap<String, u64>) -> anyhow::Result<()> {
        self.write_json(&self.dir.join("awaiting_restart.json"), awaiting)
    }

    /// The layers in force; none when nothing was ever pushed.
    pub fn load_layers(&self) -> anyhow::Result<Layers> {
        Ok(self.read_json(&self.layers_path())?.unwrap_or_default())
    }

    /// Writes the layers, then their high-water marks to `versions.json`
    /// (never lowering one already there). In that order: a power cut between
    /// the two leaves layers whose own marks are the higher, and start takes
    /// the highest of both.
    pub fn save_layers(&self, layers: &Layers) -> anyhow::Result<()> {
        self.write_json(&self.layers_path(), layers)?;
        let mut versions = self.load_versions().unwrap_or_default();
        for (k, v) in layers.versions() {
            let seen = versions.entry(k).or_insert(0);
            *seen = (*seen).max(v);
        }
        // The layers are written and carry their own marks: a failure here
        // only weakens the backup, and must not make the push look refused.
        if let Err(e) = self.write_json(&self.versions_path(), &versions) {
            tracing::warn!("{e:#}");
        }
        Ok(())
    }

    pub fn load_last_good(&self) -> anyhow::Result<Option<LastGood>> {
        self.read_json(&self.last_good_path())
    }

    /// Records `file` and `layers` as what last ran well.
    pub fn promote_last_good(&self, file: &str, layers: &Layers) -> anyhow::Result<()> {
        let good = LastGood {
            file: file.to_string(),
            layers: layers.clone(),
        };
        self.write_json(&self.last_good_path(), &good)
    }

    /// Puts the last good layers back in force, keeping the high-water marks
    /// of the layers they replace; `None` when there is no last good.
    pub fn rollback(&self) -> anyhow::Result<Option<LastGood>> {
        self.rollback_or(None)
    }

    /// As [`Store::rollback`]; with no last good recorded yet, goes back to
    /// `fallback` (the local file with no layers: what the box ran before any
    /// push).
    pub fn rollback_or(&self, fallback: Option<LastGood>) -> anyhow::Result<Option<LastGood>> {
        let Some(mut good) = self.load_last_good()?.or(fallback) else {
            return Ok(None);
        };
        if let Ok(current) = self.load_layers() {
            good.layers.keep_high_water(&current);
        }
        self.save_layers(&good.layers)?;
        Ok(Some(good))
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> anyhow::Result<Option<T>> {
        let Some(bytes) = self
            .disk
            .read(path)
            .with_context(|| format!("cannot read {}", path.display()))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is damaged", path.display()))
    }

    fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(value).context("cannot serialize the fleet state")?;
        write_atomic(self.disk.as_ref(), path, &bytes)
    }
}
