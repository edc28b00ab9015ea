//! Writing a validated bundle into the config folder, and wiping it off the
//! boot partition.
//!
//! All files are first written as temp files next to their targets (mode
//! 0600 while being written, then 0640 and the `farmcast` group, fsynced);
//! only when every one is on disk are they renamed into place, keys first,
//! config last. A failure before the renames leaves the folder as it was.

use std::fs::{self, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::bundle::Bundle;
use super::{ProvisionError, CONFIG_NAME, KEYS_DIR};

const FILE_MODE: u32 = 0o640;
const DIR_MODE: u32 = 0o750;
/// Previous config, kept for a technician who needs to roll back by hand.
const PREVIOUS_SUFFIX: &str = ".previous";

/// Who owns the installed files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Leave owner and group as created (tests, or not root).
    Unchanged,
    /// root:`gid` (the `farmcast` group), so the daemon can read but not write.
    RootAndGroup(u32),
}

impl Ownership {
    /// root:farmcast when running as root and the group exists.
    pub fn detect() -> Ownership {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ownership::Unchanged;
        }
        // SAFETY: the name is a NUL-terminated literal; the returned record
        // is read at once, before any other getgr* call could reuse it.
        let group = unsafe { libc::getgrnam(c"farmcast".as_ptr()) };
        if group.is_null() {
            eprintln!(
                "farmcast provision: no group `farmcast` (is the package installed?); \
                 files stay root-only and the daemon will not be able to read them"
            );
            return Ownership::Unchanged;
        }
        // SAFETY: non-null pointer to a struct group owned by libc.
        Ownership::RootAndGroup(unsafe { (*group).gr_gid })
    }

    fn apply(&self, path: &Path) -> io::Result<()> {
        match self {
            Ownership::Unchanged => Ok(()),
            Ownership::RootAndGroup(gid) => std::os::unix::fs::chown(path, Some(0), Some(*gid)),
        }
    }
}

/// Installs the bundle; returns the names of the key files written.
pub(super) fn install(
    bundle: &Bundle,
    etc: &Path,
    owner: &Ownership,
) -> Result<Vec<String>, ProvisionError> {
    let fail = |dir: &Path| {
        let dir = dir.to_path_buf();
        move |source| ProvisionError::Install { dir, source }
    };
    ensure_dir(etc, None).map_err(fail(etc))?;
    let keys_dir = etc.join(KEYS_DIR);
    if !bundle.keys.is_empty() {
        ensure_dir(&keys_dir, Some(owner)).map_err(fail(&keys_dir))?;
    }

    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let staging = (|| -> io::Result<()> {
        for (name, bytes) in &bundle.keys {
            let target = keys_dir.join(name);
            staged.push((write_temp(&target, bytes, owner)?, target));
        }
        let target = etc.join(CONFIG_NAME);
        staged.push((
            write_temp(&target, bundle.config.as_bytes(), owner)?,
            target,
        ));
        Ok(())
    })();
    if let Err(e) = staging {
        for (tmp, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
        return Err(ProvisionError::Install {
            dir: etc.to_path_buf(),
            source: e,
        });
    }

    let config_target = etc.join(CONFIG_NAME);
    if config_target.is_file() {
        let previous = etc.join(format!("{CONFIG_NAME}{PREVIOUS_SUFFIX}"));
        let _ = fs::remove_file(&previous);
        // A hard link keeps the old file's mode and group; best effort only.
        let _ = fs::hard_link(&config_target, &previous);
    }
    for (i, (tmp, target)) in staged.iter().enumerate() {
        if let Err(e) = fs::rename(tmp, target) {
            for (rest, _) in staged.iter().skip(i) {
                let _ = fs::remove_file(rest);
            }
            return Err(ProvisionError::Install {
                dir: etc.to_path_buf(),
                source: e,
            });
        }
    }
    for dir in [&keys_dir, etc] {
        if dir.is_dir() {
            let _ = fs::File::open(dir).and_then(|d| d.sync_all());
        }
    }
    Ok(bundle.keys.iter().map(|(n, _)| n.clone()).collect())
}

fn ensure_dir(dir: &Path, owner: Option<&Ownership>) -> io::Result<()> {
    if !dir.is_dir() {
        fs::create_dir_all(dir)?;
    }
    // Only the keys folder is tightened; the config folder belongs to the
    // package (root:farmcast 0750 set by postinst) and may be a test's tmp dir.
    if let Some(owner) = owner {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
        owner.apply(dir)?;
    }
    Ok(())
}

/// `dir/.NAME.provision-tmp`, written, owned, 0640, fsynced.
fn write_temp(target: &Path, bytes: &[u8], owner: &Ownership) -> io::Result<PathBuf> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = target.with_file_name(format!(".{name}.provision-tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = (|| {
        f.write_all(bytes)?;
        owner.apply(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Overwrites with zeros, then removes, the config, every file in `keys/`
/// and the `keys/` folder on the boot partition. Returns what could not be
/// removed (relative names).
pub(super) fn remove_bundle(boot: &Path) -> Vec<String> {
    let mut leftovers = Vec::new();
    let config = boot.join(CONFIG_NAME);
    if fs::symlink_metadata(&config).is_ok() && wipe(&config).is_err() {
        leftovers.push(CONFIG_NAME.to_string());
    }
    let keys = boot.join(KEYS_DIR);
    if fs::symlink_metadata(&keys).is_ok_and(|m| m.is_dir()) {
        if let Ok(entries) = fs::read_dir(&keys) {
            for entry in entries.flatten() {
                let path = entry.path();
                let gone = match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
                    _ => wipe(&path),
                };
                if gone.is_err() {
                    leftovers.push(format!(
                        "{KEYS_DIR}/{}",
                        entry.file_name().to_string_lossy()
                    ));
                }
            }
        }
        if fs::remove_dir(&keys).is_err() && leftovers.is_empty() {
            leftovers.push(format!("{KEYS_DIR}/"));
        }
    }
    let _ = fs::File::open(boot).and_then(|d| d.sync_all());
    leftovers
}

/// Zeros over the file's length, fsync, truncate, unlink. A symlink is only
/// unlinked (never follow it to overwrite something else).
fn wipe(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_file() {
        // Overwrite failures are not fatal: removal matters more.
        let _ = (|| -> io::Result<()> {
            let mut f = OpenOptions::new().write(true).open(path)?;
            let zeros = [0u8; 8192];
            let mut left = meta.len();
            f.rewind()?;
            while left > 0 {
                let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
                f.write_all(zeros.get(..n).unwrap_or(&zeros))?;
                left -= n as u64;
            }
            f.sync_all()?;
            f.set_len(0)?;
            f.sync_all()
        })();
    }
    fs::remove_file(path)
}
