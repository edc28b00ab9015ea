//! `enforce` against a real directory tree with fake segment files.

use super::*;
use crate::config::RecordingConfig;
use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn write_seg(dir: &Path, n: u32, size: usize, mtime_s: u64) -> anyhow::Result<std::path::PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(format!("seg-{n:05}.ts"));
    fs::write(&path, vec![0u8; size])?;
    File::options()
        .write(true)
        .open(&path)?
        .set_modified(UNIX_EPOCH + Duration::from_secs(mtime_s))?;
    Ok(path)
}

fn cfg(root: &Path, max_gb: f64, min_free_mb: u64) -> RecordingConfig {
    RecordingConfig {
        dir: root.to_string_lossy().into_owned(),
        max_gb,
        min_free_mb,
        ..RecordingConfig::default()
    }
}

#[test]
fn enforce_removes_oldest_past_segments_and_empty_dirs() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let t0 = 1_795_644_603;
    let old = show_dir(root, UNIX_EPOCH + Duration::from_secs(t0), &show_id(1));
    let mid = show_dir(
        root,
        UNIX_EPOCH + Duration::from_secs(t0 + 100),
        &show_id(2),
    );
    let cur_name = show_dir_name(UNIX_EPOCH + Duration::from_secs(t0 + 200), &show_id(3));
    let cur = root.join(&cur_name);

    let o1 = write_seg(&old, 1, 300, t0 + 10)?;
    let o2 = write_seg(&old, 2, 300, t0 + 20)?;
    let m1 = write_seg(&mid, 1, 300, t0 + 110)?;
    let c1 = write_seg(&cur, 1, 300, t0 + 210)?;
    let c2 = write_seg(&cur, 2, 300, t0 + 220)?;
    // Not segments: left alone and not counted.
    fs::write(mid.join("notes.txt"), b"keep me")?;
    fs::write(root.join("stray.ts"), vec![0u8; 10_000])?;

    // 1500 bytes against a ~1000-byte budget: the two oldest go (600 bytes).
    let report = enforce(root, Some(&cur_name), &cfg(root, 1e-6, 0))?;
    assert_eq!(report.removed, vec![o1.clone(), o2]);
    assert_eq!(report.freed_bytes, 600);
    assert_eq!(report.used_bytes, 900);
    assert!(!report.over_budget, "{report:?}");
    assert!(!old.exists(), "empty past show dir should be removed");
    assert!(m1.exists() && c1.exists() && c2.exists());
    assert!(mid.join("notes.txt").exists());
    assert!(root.join("stray.ts").exists());

    let (used, free) = disk_usage(root);
    assert_eq!(used, 900);
    assert!(free > 0);

    // Running again changes nothing: the budget holds.
    let again = enforce(root, Some(&cur_name), &cfg(root, 1e-6, 0))?;
    assert!(again.removed.is_empty());
    Ok(())
}

#[test]
fn current_show_alone_over_budget_is_reported_not_deleted() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let past = root.join("2026-01-01T00-00-00Z_show-0001");
    let cur_name = "2026-01-02T00-00-00Z_show-0002";
    let cur = root.join(cur_name);
    let p1 = write_seg(&past, 1, 100, 1_000)?;
    let c1 = write_seg(&cur, 1, 5_000, 2_000)?;

    let report = enforce(root, Some(cur_name), &cfg(root, 1e-6, 0))?;
    assert_eq!(report.removed, vec![p1]);
    assert!(report.over_budget);
    assert_eq!(report.used_bytes, 5_000);
    assert!(c1.exists());

    // An empty directory of the current show must survive too: splitmuxsink
    // may be about to open its next file there.
    let cur_empty_name = "2026-01-03T00-00-00Z_show-0003";
    fs::create_dir_all(root.join(cur_empty_name))?;
    let report = enforce(root, Some(cur_empty_name), &cfg(root, 100.0, 0))?;
    assert!(report.removed.is_empty());
    assert!(root.join(cur_empty_name).exists());
    Ok(())
}

#[test]
fn min_free_floor_forces_deletion_of_past_shows() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let a = write_seg(&root.join("a"), 1, 10, 1)?;
    let b = write_seg(&root.join("b"), 1, 10, 2)?;
    // No disk has u64::MAX/1e6 MB free: everything past goes, and it is reported.
    let report = enforce(root, Some("b"), &cfg(root, 1000.0, u64::MAX))?;
    assert_eq!(report.removed, vec![a]);
    assert!(report.over_budget);
    assert!(b.exists());
    Ok(())
}

#[test]
fn scan_of_missing_root_is_empty_and_usage_still_measures() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("not/yet/made");
    assert!(scan(&root)?.is_empty());
    let (used, free) = disk_usage(&root);
    assert_eq!(used, 0);
    assert_eq!(free, free_space(tmp.path())?);
    Ok(())
}

#[test]
fn scan_skips_symlinks() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let real = write_seg(&root.join("a"), 1, 10, 1)?;
    std::os::unix::fs::symlink(&real, root.join("a/seg-00002.ts"))?;
    let segs = scan(root)?;
    assert_eq!(segs.len(), 1);
    assert_eq!(segs.first().map(|s| s.show.as_str()), Some("a"));
    assert_eq!(segs.first().map(|s| s.size_bytes), Some(10));
    assert!(segs.iter().all(|s| s.modified < SystemTime::now()));
    Ok(())
}

#[test]
fn budget_conversions() {
    let with_gb = |max_gb| RecordingConfig {
        max_gb,
        ..RecordingConfig::default()
    };
    assert_eq!(budget_bytes(&with_gb(8.0)), 8_000_000_000);
    assert_eq!(budget_bytes(&with_gb(0.0)), 0);
    assert_eq!(budget_bytes(&with_gb(f64::NAN)), u64::MAX);
    assert_eq!(budget_bytes(&with_gb(-1.0)), u64::MAX);
    assert_eq!(budget_bytes(&with_gb(f64::INFINITY)), u64::MAX);
    let floor = RecordingConfig {
        min_free_mb: u64::MAX,
        ..RecordingConfig::default()
    };
    assert_eq!(min_free_bytes(&floor), u64::MAX);
    assert_eq!(min_free_bytes(&RecordingConfig::default()), 512_000_000);
}
