//! Pure decisions about a pushed layer: whether the device takes it
//! ([`Acceptor::check`]), what config results ([`effective`]), and whether the
//! difference can be applied without cutting a show ([`diff_class`]).

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use super::envelope::{verify, Envelope};
use crate::config::{self, Config, Problem};
pub use crate::mqtt::topics::ConfigSource as Source;

/// Whose signatures the device takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// No `fleet.trusted_keys_file` and no `fleet.allow_unsigned`: every push
    /// is refused. Any client of the broker could otherwise re-point a
    /// destination at its own server, keep the box's stream key and cut the
    /// show to receive it.
    Refuse,
    /// `fleet.allow_unsigned = true` without trusted keys (labs only):
    /// unsigned pushes are taken, logged loudly.
    Open,
    /// Only envelopes signed by one of these. Empty means the configured file
    /// could not be read: every push is rejected (fail closed).
    Keys(Vec<VerifyingKey>),
}

impl Trust {
    /// The trust the config asks for; a relative `trusted_keys_file` is read
    /// from `config_dir`. An unreadable file gives `Keys(vec![])` and the error,
    /// never `Open`.
    pub fn load(fleet: &config::FleetConfig, config_dir: &Path) -> (Trust, Option<anyhow::Error>) {
        let Some(file) = fleet.trusted_keys_file.as_deref() else {
            let trust = if fleet.allow_unsigned {
                Trust::Open
            } else {
                Trust::Refuse
            };
            return (trust, None);
        };
        match super::keys::read_public_keys(&config_dir.join(file)) {
            Ok(keys) => (Trust::Keys(keys), None),
            Err(e) => (Trust::Keys(Vec::new()), Some(e)),
        }
    }
}

/// Why a push was not taken; `field` is the envelope field or config key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub field: Option<String>,
}

impl Rejection {
    pub fn new(reason: impl Into<String>, field: Option<&str>) -> Self {
        Rejection {
            reason: reason.into(),
            field: field.map(str::to_string),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// The key under which a source's applied version is kept (`device`, `group:<name>`).
pub fn source_key(source: &Source) -> String {
    match source {
        Source::Device => "device".into(),
        Source::Group(g) => format!("group:{g}"),
    }
}

/// Who the device is and what it already runs.
#[derive(Debug, Clone)]
pub struct Acceptor {
    pub device_id: String,
    /// From the local file only: a layer cannot change membership.
    pub groups: Vec<String>,
    pub trust: Trust,
    /// Last version taken per [`source_key`].
    pub applied_versions: BTreeMap<String, u64>,
}

impl Acceptor {
    /// Ok when `env`, arriving on `source`'s topic, is addressed to this device
    /// (or a group it is in), signed as [`Trust`] requires, in a format whose
    /// signature covers what it asks (`apply`), and newer than the version this source
    /// last gave. Checked in that order.
    pub fn check(&self, source: &Source, env: &Envelope) -> Result<(), Rejection> {
        self.check_origin(source, env)?;
        self.check_newer(source, env)
    }

    /// [`Acceptor::check`] without the version: whether `env` comes from
    /// someone this box takes pushes from.
    pub fn check_origin(&self, source: &Source, env: &Envelope) -> Result<(), Rejection> {
        let expected = match source {
            Source::Device => self.device_id.clone(),
            Source::Group(g) => {
                if !self.groups.contains(g) {
                    return Err(Rejection::new(
                        format!("this device is not in group {}", crate::excerpt::excerpt(g)),
                        Some("target"),
                    ));
                }
                format!("group:{g}")
            }
        };
        if env.target != expected {
            return Err(Rejection::new(
                format!(
                    "addressed to {:?}, expected {expected:?}",
                    crate::excerpt::excerpt(&env.target)
                ),
                Some("target"),
            ));
        }
        match &self.trust {
            Trust::Refuse => {
                return Err(Rejection::new(
                    "this box trusts no signing key, so it takes no pushes: set \
                     fleet.trusted_keys_file in its own file (or fleet.allow_unsigned = true, labs only)",
                    Some("fleet.trusted_keys_file"),
                ))
            }
            Trust::Open => {
                if env.is_signed() {
                    tracing::warn!(
                        "no trusted keys configured: the signature of a {} push is not checked",
                        source_key(source)
                    );
                } else {
                    tracing::warn!(
                        "taking an UNSIGNED {} push: configure fleet.trusted_keys_file",
                        source_key(source)
                    );
                }
            }
            Trust::Keys(keys) => {
                verify(env, keys).map_err(|e| Rejection::new(e.to_string(), Some("signature")))?
            }
        }
        // After the trust: a box that takes no pushes says so first.
        env.check_format()
            .map_err(|(field, why)| Rejection::new(why, Some(field)))?;
        Ok(())
    }

    /// Ok when `env` is newer than the version `source` last gave.
    pub fn check_newer(&self, source: &Source, env: &Envelope) -> Result<(), Rejection> {
        if let Some(&running) = self.applied_versions.get(&source_key(source)) {
            if env.version <= running {
                return Err(Rejection::new(
                    format!("version {} is not newer than {running}", env.version),
                    Some("version"),
                ));
            }
        }
        Ok(())
    }
}

/// Top-level keys a layer may not set: identity and trust come from the local
/// file, or a group push could rename every box in it or change who may sign.
const LOCAL_ONLY: &[&str] = &["device_id", "fleet"];

/// Ok when the layer text is TOML that sets no local-only key.
pub fn check_layer(config_text: &str) -> Result<(), Rejection> {
    let table: toml::Table = toml::from_str(config_text).map_err(|e| {
        Rejection::new(
            format!(
                "layer is not valid TOML: {}",
                crate::excerpt::excerpt_n(e.message(), 160)
            ),
            Some("config"),
        )
    })?;
    for key in LOCAL_ONLY {
        if table.contains_key(*key) {
            return Err(Rejection::new(
                "set only in the device's own file, not by a fleet push",
                Some(key),
            ));
        }
    }
    Ok(())
}

/// The layers pushed so far: group name → TOML, and the device's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerTexts {
    pub groups: BTreeMap<String, String>,
    pub device: Option<String>,
}

/// The config in force: defaults < `file_src` < the groups' layers in the order
/// the file lists them < the device layer. Layers of groups the file no longer
/// lists are left out. Stream keys resolve against `config_dir`.
pub fn effective(
    file_src: &str,
    layers: &LayerTexts,
    config_dir: &Path,
) -> Result<Config, Vec<Problem>> {
    let file = config::load_str(file_src)?;
    let ordered: Vec<&str> = file
        .fleet
        .groups
        .iter()
        .filter_map(|g| layers.groups.get(g).map(String::as_str))
        .chain(layers.device.as_deref())
        .collect();
    config::check_layers(file_src, &ordered, config_dir)
}

/// How much a change disturbs a running show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeClass {
    None,
    /// Applied to the running pipeline (bitrate, products, ...).
    Live,
    /// The pipeline must be rebuilt: waits for the show to end unless `apply: now`.
    NeedsRestart,
    /// Hardware opened once at start (GPIO pins, the scale, product buttons):
    /// a rebuild would leave the old hardware running, so the change is kept
    /// `pending` until the daemon restarts and opens the new hardware.
    NeedsDaemonRestart,
}

/// Key paths whose change needs no rebuild, by prefix. Anything not listed
/// needs one: a new field is safe by default.
const LIVE: &[&str] = &[
    "video.bitrate_kbps",
    "video.min_bitrate_kbps",
    "products",
    "live.autostart",
    "live.reconnect_cap_ms",
    "recording.max_gb",
    "recording.min_free_mb",
    "mqtt",
    "fleet",
];

/// Key paths of hardware the daemon opens at start, by prefix.
const HARDWARE: &[&str] = &["gpio", "scale", "products[].button_pin"];

fn under(path: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// The class of one changed key path.
pub fn class_of(path: &str) -> ChangeClass {
    if under(path, HARDWARE) {
        ChangeClass::NeedsDaemonRestart
    } else if under(path, LIVE) {
        ChangeClass::Live
    } else {
        ChangeClass::NeedsRestart
    }
}

/// Key paths that differ between `old` and `new`; arrays count as one value.
pub fn changed_paths(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    match (serde_json::to_value(old), serde_json::to_value(new)) {
        (Ok(a), Ok(b)) => diff_values("", &a, &b, &mut out),
        _ => out.push(String::new()),
    }
    // Secrets serialize redacted, so a changed stream key is invisible above.
    if old.destinations != new.destinations && !out.iter().any(|p| p == "destinations") {
        out.push("destinations".into());
    }
    // `products` is one value above (live: the catalogue), but its buttons
    // are GPIO lines opened at start.
    let buttons = |c: &Config| -> Vec<(String, Option<u8>)> {
        c.products
            .iter()
            .map(|p| (p.id.clone(), p.button_pin))
            .filter(|(_, pin)| pin.is_some())
            .collect()
    };
    if buttons(old) != buttons(new) {
        out.push("products[].button_pin".into());
    }
    out
}

/// The changed paths of `class`, for a report that says why.
pub fn paths_of_class(old: &Config, new: &Config, class: ChangeClass) -> Vec<String> {
    changed_paths(old, new)
        .into_iter()
        .filter(|p| class_of(p) == class)
        .collect()
}

fn diff_values(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff_values(&sub, va, vb, out),
                    _ => out.push(sub),
                }
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

/// The most disruptive class among the changes from `old` to `new`.
pub fn diff_class(old: &Config, new: &Config) -> ChangeClass {
    changed_paths(old, new)
        .iter()
        .map(|p| class_of(p))
        .max()
        .unwrap_or(ChangeClass::None)
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
