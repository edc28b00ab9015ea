//! Reading the provisioning bundle off the boot partition and validating it.
//!
//! The bundle is `farmcast.toml` plus, optionally, regular files in `keys/`.
//! Everything is read into memory once (small size limits), so what is
//! validated is exactly what gets installed. Dot files (macOS leaves
//! `._name` files on FAT) are ignored and removed with the bundle.

use std::path::{Component, Path, PathBuf};

use super::{ProvisionError, CONFIG_NAME, INSTALLED_ETC, KEYS_DIR};
use crate::config::{self, line_of, load_str, resolve_keys, Problem};

/// A config file is a few KB; anything this large was copied by mistake.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Stream keys, passwords, PEM keys and certificates.
const MAX_KEY_BYTES: u64 = 64 * 1024;
const MAX_KEYS: usize = 64;

/// The bundle in memory. `Debug` is not derived: it holds secrets.
pub(super) struct Bundle {
    pub(super) config: String,
    /// (file name, contents), sorted by name.
    pub(super) keys: Vec<(String, Vec<u8>)>,
}

pub(super) fn read(boot: &Path) -> Result<Bundle, ProvisionError> {
    let config_bytes = read_limited(&boot.join(CONFIG_NAME), MAX_CONFIG_BYTES)?;
    let config = String::from_utf8(config_bytes).map_err(|_| {
        ProvisionError::Bundle(format!(
            "{CONFIG_NAME} is not UTF-8 text; save it as UTF-8 (plain text) and copy it again"
        ))
    })?;
    let keys_dir = boot.join(KEYS_DIR);
    let mut keys = Vec::new();
    match std::fs::symlink_metadata(&keys_dir) {
        Err(_) => {}
        Ok(m) if !m.is_dir() => {
            return Err(ProvisionError::Bundle(format!(
                "{KEYS_DIR} on the boot partition must be a folder of key files"
            )))
        }
        Ok(_) => {
            let entries = std::fs::read_dir(&keys_dir).map_err(|e| {
                ProvisionError::Bundle(format!("cannot list {}: {e}", keys_dir.display()))
            })?;
            for entry in entries {
                let entry = entry.map_err(|e| {
                    ProvisionError::Bundle(format!("cannot list {}: {e}", keys_dir.display()))
                })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                if !is_safe_key_name(&name) {
                    return Err(ProvisionError::Bundle(format!(
                        "{KEYS_DIR}/{name}: a key file name may hold only letters, digits, '.', '-' and '_'"
                    )));
                }
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).map_err(|e| {
                    ProvisionError::Bundle(format!("cannot read {KEYS_DIR}/{name}: {e}"))
                })?;
                if !meta.is_file() {
                    return Err(ProvisionError::Bundle(format!(
                        "{KEYS_DIR}/{name} is not a plain file; put only key files in {KEYS_DIR}/"
                    )));
                }
                keys.push((name, read_limited(&path, MAX_KEY_BYTES)?));
                if keys.len() > MAX_KEYS {
                    return Err(ProvisionError::Bundle(format!(
                        "more than {MAX_KEYS} files in {KEYS_DIR}/"
                    )));
                }
            }
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Bundle { config, keys })
}

/// Reads a regular file of at most `limit` bytes; symlinks are refused (FAT
/// has none, so one means the boot folder is not what we think it is).
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ProvisionError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| ProvisionError::Bundle(format!("cannot read {name}: {e}")))?;
    if !meta.is_file() {
        return Err(ProvisionError::Bundle(format!(
            "{name} is not a plain file"
        )));
    }
    if meta.len() > limit {
        return Err(ProvisionError::Bundle(format!(
            "{name} is {} bytes; the limit is {limit}",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| ProvisionError::Bundle(format!("cannot read {name}: {e}")))
}

pub(super) fn is_safe_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Validates the bundle as `check-config` would once it is installed into
/// `etc`; returns the device id. Stream key files are read from the bundle
/// when it carries them, from `etc` otherwise.
pub(super) fn validate(bundle: &Bundle, boot: &Path, etc: &Path) -> Result<String, ProvisionError> {
    let invalid = |problems: Vec<Problem>| ProvisionError::Invalid {
        file: CONFIG_NAME.to_string(),
        problems,
    };
    let mut config = load_str(&bundle.config).map_err(invalid)?;
    for dest in &mut config.destinations {
        if let Some(file) = dest.key_file.as_deref() {
            let resolved = key_source(file, etc, boot, |n| bundle.keys.iter().any(|(k, _)| k == n));
            dest.key_file = Some(resolved.to_string_lossy().into_owned());
        }
    }
    // Validated as written, before the key files fill in `key`: otherwise a
    // `key_file` would read as "both `key` and `key_file`".
    let mut problems = config::validate(&config);
    problems.extend(resolve_keys(&mut config, etc));
    problems.extend(mqtt_files(&config.mqtt, bundle, boot, etc));
    if problems.is_empty() {
        return Ok(config.device_id);
    }
    for p in &mut problems {
        if p.line.is_none() {
            p.line = line_of(&bundle.config, &p.path);
        }
    }
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Err(invalid(problems))
}

/// The box's MQTT credentials travel in the bundle's `keys/` beside the
/// stream keys (per-device password, CA, client certificate, see
/// docs/security.md): each file `[mqtt]` names must be in the bundle or
/// already installed, or the box would come up unable to reach its
/// technicians. A password file must hold a password. Contents are never
/// quoted.
fn mqtt_files(mqtt: &config::MqttConfig, bundle: &Bundle, boot: &Path, etc: &Path) -> Vec<Problem> {
    // Checked whether or not MQTT is switched on: a file named is meant.
    let mut problems = Vec::new();
    for (key, file) in [
        ("mqtt.password_file", &mqtt.password_file),
        ("mqtt.ca_file", &mqtt.ca_file),
        ("mqtt.client_cert", &mqtt.client_cert),
        ("mqtt.client_key", &mqtt.client_key),
    ] {
        let Some(file) = file.as_deref().filter(|f| !f.trim().is_empty()) else {
            continue;
        };
        let source = key_source(file, etc, boot, |n| bundle.keys.iter().any(|(k, _)| k == n));
        let in_bundle = source.starts_with(boot);
        let bytes = if in_bundle {
            let name = source.file_name().map(|n| n.to_string_lossy().into_owned());
            bundle
                .keys
                .iter()
                .find(|(k, _)| Some(k) == name.as_ref())
                .map(|(_, b)| b.len())
        } else if Path::new(file).starts_with(INSTALLED_ETC) || Path::new(file).is_relative() {
            std::fs::metadata(&source).ok().map(|m| m.len() as usize)
        } else {
            // Outside the config folder: the box's own business (e.g. the
            // system CA bundle); not ours to check here.
            continue;
        };
        match bytes {
            None => problems.push(Problem::new(
                key,
                format!(
                    "{file} is neither in the bundle's {KEYS_DIR}/ nor installed; copy it into {KEYS_DIR}/ beside farmcast.toml"
                ),
            )),
            Some(0) => problems.push(Problem::new(key, format!("{file} is empty"))),
            Some(_) => {}
        }
    }
    problems
}

/// Where a `key_file` will be read from once installed: a path into the
/// config folder's `keys/` (absolute under `/etc/farmcast` or `etc`, or
/// relative) names the bundle's copy when the bundle has that file; any other
/// path under `/etc/farmcast` is looked up in `etc`; anything else as written.
pub(super) fn key_source(
    key_file: &str,
    etc: &Path,
    boot: &Path,
    in_bundle: impl Fn(&str) -> bool,
) -> PathBuf {
    let p = Path::new(key_file);
    let rel = if p.is_absolute() {
        match p
            .strip_prefix(INSTALLED_ETC)
            .or_else(|_| p.strip_prefix(etc))
        {
            Ok(r) => r.to_path_buf(),
            Err(_) => return p.to_path_buf(),
        }
    } else {
        p.to_path_buf()
    };
    // `..` could step out of keys/; such a path is left to the plain lookup.
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    let mut parts = rel.iter();
    if let (true, Some(dir), Some(name), None) = (plain, parts.next(), parts.next(), parts.next()) {
        if dir == KEYS_DIR {
            let name = name.to_string_lossy();
            if in_bundle(&name) {
                return boot.join(KEYS_DIR).join(name.as_ref());
            }
        }
    }
    etc.join(rel)
}
