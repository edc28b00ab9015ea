//! Tare offset and calibration factor, kept across restarts in the state
//! directory as a small JSON file.
//!
//! `grams = (raw − offset) × factor`. Raw is HX711 counts or, for serial and
//! simulated scales, grams already (factor 1). The file is written atomically
//! (temp file, fsync, rename, fsync of the folder) so a power cut leaves the old
//! or the new calibration, never half of one. A missing file gives the
//! defaults; a corrupt one gives the defaults and a warning — never a panic.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// File name under `<state_dir>/scale/`.
pub const FILE_NAME: &str = "calibration.json";

/// A calibration may change the factor by at most this ratio (either way)
/// without `"force": true`: a wrong known weight, a hand on the pan or a typo
/// then cannot quietly make every price on a show wrong.
pub const MAX_FACTOR_RATIO: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Raw value of the empty pan (tare).
    pub offset: f64,
    /// Grams per raw unit.
    pub factor: f64,
    /// Whether `factor` came from a known weight (the HX711 needs that; serial
    /// scales report grams and do not).
    #[serde(default)]
    pub calibrated: bool,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            offset: 0.0,
            factor: 1.0,
            calibrated: false,
        }
    }
}

impl Calibration {
    pub fn grams(&self, raw: f64) -> f64 {
        (raw - self.offset) * self.factor
    }

    pub fn is_sane(&self) -> bool {
        self.offset.is_finite() && self.factor.is_finite() && self.factor != 0.0
    }
}

/// Whether going from `old` to `new` needs `force`: when the scale was
/// calibrated and the factor moves by more than [`MAX_FACTOR_RATIO`] either
/// way (or changes sign). The first calibration of a scale is free: its
/// factor was nominal. The error says what would happen and how to insist.
pub fn check_change(old: &Calibration, new: &Calibration, force: bool) -> Result<(), String> {
    if !new.is_sane() {
        return Err("the factor must be a finite number other than 0".into());
    }
    if force || !old.calibrated || !old.is_sane() {
        return Ok(());
    }
    let ratio = new.factor / old.factor;
    if !(1.0 / MAX_FACTOR_RATIO..=MAX_FACTOR_RATIO).contains(&ratio) {
        return Err(format!(
            "refused: the factor would go from {} to {} (x{ratio:.3}); a change of more than x{MAX_FACTOR_RATIO} or under x{} needs \"force\": true",
            old.factor,
            new.factor,
            1.0 / MAX_FACTOR_RATIO
        ));
    }
    Ok(())
}

/// Where the calibration lives for a given state directory.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join("scale").join(FILE_NAME)
}

/// The stored calibration, or the defaults. The `String` is a warning for the
/// log when the file exists but could not be used.
pub fn load(path: &Path) -> (Calibration, Option<String>) {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (Calibration::default(), None)
        }
        Err(e) => {
            return (
                Calibration::default(),
                Some(format!(
                    "cannot read scale calibration {}: {e}; using defaults",
                    path.display()
                )),
            )
        }
    };
    match serde_json::from_str::<Calibration>(&text) {
        Ok(c) if c.is_sane() => (c, None),
        Ok(_) => (
            Calibration::default(),
            Some(format!(
                "scale calibration {} has a zero or non-finite factor; using defaults (calibrate again)",
                path.display()
            )),
        ),
        Err(e) => (
            Calibration::default(),
            Some(format!(
                "scale calibration {} is corrupt ({e}); using defaults (calibrate again)",
                path.display()
            )),
        ),
    }
}

/// Writes `cal` to `path` atomically, creating the folder if needed.
pub fn save(path: &Path, cal: &Calibration) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent folder", path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    let body = serde_json::to_vec_pretty(cal).context("encoding the calibration")?;
    {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&body)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    // The rename itself is durable only once the folder is synced.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let cal = Calibration {
            offset: 8123.5,
            factor: 0.00214,
            calibrated: true,
        };
        save(&path, &cal).unwrap();
        assert_eq!(load(&path), (cal, None));
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
    }

    #[test]
    fn missing_is_silent_defaults_and_corrupt_is_defaults_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        assert_eq!(load(&path), (Calibration::default(), None));
        for bad in [
            "{not json",
            "",
            r#"{"offset": 1.0}"#,
            r#"{"offset": 1.0, "factor": 0.0}"#,
        ] {
            fs::write(&path, bad).unwrap();
            let (c, warn) = load(&path);
            assert_eq!(c, Calibration::default());
            assert!(warn.is_some_and(|w| w.contains("c.json")), "{bad}");
        }
    }

    #[test]
    fn large_factor_changes_need_force() {
        let cal = |factor, calibrated| Calibration {
            offset: 10.0,
            factor,
            calibrated,
        };
        let old = cal(2.0, true);
        for ok in [2.0, 4.0, 1.0, 3.1, 1.2] {
            assert!(check_change(&old, &cal(ok, true), false).is_ok(), "{ok}");
        }
        for far in [4.01, 0.99, 100.0, -2.0, 0.001] {
            let e = check_change(&old, &cal(far, true), false).unwrap_err();
            assert!(e.contains("force"), "{far}: {e}");
            assert!(check_change(&old, &cal(far, true), true).is_ok(), "{far}");
        }
        // The first calibration starts from a nominal factor: free.
        assert!(check_change(&cal(1.0, false), &cal(1e-4, true), false).is_ok());
        // Never to nothing, even forced.
        assert!(check_change(&old, &cal(0.0, true), true).is_err());
        assert!(check_change(&old, &cal(f64::NAN, true), true).is_err());
    }

    #[test]
    fn grams_applies_offset_then_factor() {
        let c = Calibration {
            offset: 1000.0,
            factor: 0.5,
            calibrated: true,
        };
        assert_eq!(c.grams(3000.0), 1000.0);
        assert_eq!(Calibration::default().grams(1250.0), 1250.0);
    }
}
