//! The file-system edge of the budget: find segments, measure the disk, delete.
//!
//! [`enforce`] is blocking I/O; call it from `tokio::task::spawn_blocking` at
//! show start and whenever splitmuxsink closes a segment. It never touches the
//! current show's files or directory, and a file that vanished meanwhile is
//! not an error (a technician may be cleaning up by hand).

use std::ffi::CString;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use super::budget::{plan_cleanup, SegmentInfo};
use super::naming::{is_segment_name, next_segment_index};
use crate::config::RecordingConfig;

/// What [`enforce`] did, for logs, status and an `error` event when over budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    pub removed: Vec<PathBuf>,
    pub freed_bytes: u64,
    pub disk_free_bytes: u64,
    /// Bytes of segments left under the root.
    pub used_bytes: u64,
    /// Still over the budget or under the free-space floor after cleanup:
    /// only the current show (or something outside our root) is left to blame.
    pub over_budget: bool,
}

/// The budget in bytes (decimal GB, as disks are sold). `max_gb = 0` keeps no
/// past show. A NaN or negative figure (validation rejects both) means no
/// budget rather than "delete everything": the free-space floor still guards
/// the disk, and a recording lost cannot be had back.
pub fn budget_bytes(cfg: &RecordingConfig) -> u64 {
    if cfg.max_gb.is_nan() || cfg.max_gb < 0.0 {
        u64::MAX
    } else {
        // `as` saturates: +inf and figures beyond u64 become u64::MAX.
        (cfg.max_gb * 1e9) as u64
    }
}

/// The free-space floor in bytes (decimal MB).
pub fn min_free_bytes(cfg: &RecordingConfig) -> u64 {
    cfg.min_free_mb.saturating_mul(1_000_000)
}

/// Every segment file (`ROOT/<show>/seg-NNNNN.ts`) under `root`.
///
/// A missing root is an empty list (nothing recorded yet). Symlinks are not
/// followed, and entries that disappear while scanning are skipped.
pub fn scan(root: &Path) -> anyhow::Result<Vec<SegmentInfo>> {
    let shows = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    let mut out = Vec::new();
    for show in shows {
        let show = show.with_context(|| format!("reading {}", root.display()))?;
        let Ok(ft) = show.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let Some(show_name) = show.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let files = match std::fs::read_dir(show.path()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", show.path().display())),
        };
        for file in files.flatten() {
            let name = file.file_name();
            if !name.to_str().is_some_and(is_segment_name) {
                continue;
            }
            // DirEntry::metadata does not follow symlinks.
            let Ok(meta) = file.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let Ok(modified) = meta.modified() else {
                continue;
            };
            out.push(SegmentInfo {
                path: file.path(),
                show: show_name.clone(),
                size_bytes: meta.len(),
                modified,
            });
        }
    }
    Ok(out)
}

/// The segment number a recorder starting in `show_dir` should begin at
/// ([`next_segment_index`] of what is there); 1 when the folder is missing or
/// unreadable (the recorder creates it, or fails and says why).
pub fn next_segment_in(show_dir: &Path) -> u32 {
    let names: Vec<String> = std::fs::read_dir(show_dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    next_segment_index(names.iter().map(String::as_str))
}

/// Bytes available to an unprivileged user on the file system holding `path`.
pub fn free_space(path: &Path) -> anyhow::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("path with NUL byte: {}", path.display()))?;
    // SAFETY: `c` is a valid NUL-terminated string and `st` a properly sized,
    // zero-initialised out-parameter that statvfs fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statvfs {}", path.display()));
    }
    #[allow(clippy::useless_conversion)] // the field widths differ by target
    let (avail, frsize) = (u64::from(st.f_bavail), u64::from(st.f_frsize));
    Ok(avail.saturating_mul(frsize))
}

/// Free space at `path`, or at its nearest existing ancestor when the
/// recordings directory has not been created yet.
fn free_space_near(path: &Path) -> anyhow::Result<u64> {
    let mut p = path;
    loop {
        if p.exists() {
            return free_space(p);
        }
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => bail!("no existing directory above {}", path.display()),
        }
    }
}

/// `(used_bytes, free_bytes)` for status; a figure that cannot be measured is
/// logged and reported as 0 rather than failing the status message.
pub fn disk_usage(root: &Path) -> (u64, u64) {
    let used = match scan(root) {
        Ok(segs) => segs
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.size_bytes)),
        Err(e) => {
            tracing::warn!("recording disk usage: {e:#}");
            0
        }
    };
    let free = free_space_near(root).unwrap_or_else(|e| {
        tracing::warn!("recording free space: {e:#}");
        0
    });
    (used, free)
}

/// Apply the budget under `root`: delete what [`plan_cleanup`] says, then
/// remove show directories left empty (never the current show's, which
/// splitmuxsink may be about to write into).
///
/// `current_show` is the show directory's name, as
/// [`super::naming::show_dir_name`] returns it.
pub fn enforce(
    root: &Path,
    current_show: Option<&str>,
    cfg: &RecordingConfig,
) -> anyhow::Result<CleanupReport> {
    let segments = scan(root)?;
    let free = free_space_near(root)?;
    let budget = budget_bytes(cfg);
    let min_free = min_free_bytes(cfg);
    let plan = plan_cleanup(&segments, current_show, budget, free, min_free);

    // By path, once: looking each planned file up in the list was quadratic,
    // minutes for a season of 100,000 segments.
    let sizes: std::collections::HashMap<&Path, u64> = segments
        .iter()
        .map(|s| (s.path.as_path(), s.size_bytes))
        .collect();
    let mut removed = Vec::new();
    let mut freed = 0u64;
    for path in plan {
        let size = sizes.get(path.as_path()).copied().unwrap_or(0);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                freed = freed.saturating_add(size);
                removed.push(path);
            }
            // Gone already: someone else freed it; it no longer counts either.
            Err(e) if e.kind() == ErrorKind::NotFound => freed = freed.saturating_add(size),
            // Keep going: one stuck file must not stop the rest of the cleanup.
            Err(e) => tracing::warn!("removing {}: {e}", path.display()),
        }
    }
    remove_empty_show_dirs(root, current_show);

    let used = segments
        .iter()
        .fold(0u64, |a, s| a.saturating_add(s.size_bytes))
        .saturating_sub(freed);
    // Measure again: the disk is shared with logs and the OS.
    let disk_free = free_space_near(root).unwrap_or_else(|_| free.saturating_add(freed));
    let over_budget = used > budget || disk_free < min_free;
    if !removed.is_empty() {
        tracing::info!(
            files = removed.len(),
            freed_bytes = freed,
            "recordings: removed oldest segments of past shows"
        );
    }
    if over_budget {
        tracing::warn!(
            used_bytes = used,
            budget_bytes = budget,
            disk_free_bytes = disk_free,
            "recordings over budget after cleanup; the show goes on"
        );
    }
    Ok(CleanupReport {
        removed,
        freed_bytes: freed,
        disk_free_bytes: disk_free,
        used_bytes: used,
        over_budget,
    })
}

fn remove_empty_show_dirs(root: &Path, current_show: Option<&str>) {
    let Ok(shows) = std::fs::read_dir(root) else {
        return;
    };
    for show in shows.flatten() {
        if show.file_type().map_or(true, |t| !t.is_dir()) {
            continue;
        }
        if show
            .file_name()
            .to_str()
            .is_some_and(|n| Some(n) == current_show)
        {
            continue;
        }
        // remove_dir fails on a non-empty directory, which is what we want.
        let _ = std::fs::remove_dir(show.path());
    }
}
