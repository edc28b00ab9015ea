//! The one table of what every number in the config may be.
//!
//! Each numeric key has a row here: its smallest and largest accepted value,
//! its unit and why the bounds are what they are. Validation walks this table
//! (for a loaded file, a merged fleet push or a provisioning bundle alike), and
//! a unit test walks every numeric leaf of the schema and fails when one has
//! no row, so a new numeric key cannot arrive unbounded. The bounds are also
//! what keeps run-time arithmetic safe: a value that passes is small enough
//! for `Instant + Duration`, `* 1024` and the like.

use serde_json::Value;

/// One numeric key's accepted values. `path` is the key path with `[]` for
/// "every element" (`products[].button_pin`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub path: &'static str,
    pub min: f64,
    pub max: f64,
    /// Appended to numbers in messages (`" ms"`).
    pub unit: &'static str,
    /// Why the bounds are these; printed after the range.
    pub why: &'static str,
}

const fn r(path: &'static str, min: f64, max: f64, unit: &'static str, why: &'static str) -> Range {
    Range {
        path,
        min,
        max,
        unit,
        why,
    }
}

const PIN: &str = "a BCM GPIO number on the 40-pin header";

/// Every numeric key, in the order of the file's tables.
pub const RANGES: &[Range] = &[
    r("video.width", 160.0, 3840.0, " pixels", "QQVGA to 4K"),
    r("video.height", 120.0, 2160.0, " pixels", "QQVGA to 4K"),
    r(
        "video.framerate",
        1.0,
        60.0,
        " fps",
        "what cameras and platforms take",
    ),
    r(
        "video.bitrate_kbps",
        100.0,
        50_000.0,
        " kbps",
        "what ingest servers take",
    ),
    r(
        "video.min_bitrate_kbps",
        100.0,
        50_000.0,
        " kbps",
        "below 100 nothing is recognisable",
    ),
    r(
        "video.keyframe_interval_s",
        1.0,
        10.0,
        " s",
        "platforms want 1 to 4",
    ),
    r(
        "audio.bitrate_kbps",
        32.0,
        320.0,
        " kbps",
        "AAC's useful span",
    ),
    r(
        "audio.offset_ms",
        -5000.0,
        5000.0,
        " ms",
        "no camera lags its sound by more",
    ),
    r(
        "live.reconnect_cap_ms",
        100.0,
        60_000.0,
        " ms",
        "a viewer waits no longer",
    ),
    r(
        "live.destination_queue_ms",
        200.0,
        30_000.0,
        " ms",
        "memory of a 1 GB board",
    ),
    r(
        "live.destination_queue_kb",
        256.0,
        262_144.0,
        " KiB",
        "memory of a 1 GB board",
    ),
    r(
        "live.recording_queue_ms",
        500.0,
        60_000.0,
        " ms",
        "memory of a 1 GB board",
    ),
    r(
        "live.recording_queue_kb",
        256.0,
        262_144.0,
        " KiB",
        "memory of a 1 GB board",
    ),
    r(
        "recording.segment_s",
        10.0,
        3600.0,
        " s",
        "at most one segment is lost to a crash",
    ),
    r(
        "recording.max_gb",
        0.001,
        1_000_000.0,
        " GB",
        "1 MB to 1 PB",
    ),
    r(
        "recording.min_free_mb",
        0.0,
        1_000_000.0,
        " MB",
        "up to 1 TB kept free",
    ),
    r("gpio.go_live_pin", 0.0, 27.0, "", PIN),
    r("gpio.tally_led_pin", 0.0, 27.0, "", PIN),
    r("gpio.status_led_pin", 0.0, 27.0, "", PIN),
    r(
        "gpio.debounce_ms",
        1.0,
        500.0,
        " ms",
        "a press lasts about 100 ms",
    ),
    r(
        "gpio.long_press_ms",
        500.0,
        10_000.0,
        " ms",
        "a farmer holds a button no longer",
    ),
    r(
        "scale.settle_ms",
        50.0,
        10_000.0,
        " ms",
        "800 suits produce",
    ),
    r("scale.tolerance_g", 0.0, 1000.0, " g", "5 suits produce"),
    r(
        "scale.resolution_g",
        1.0,
        1000.0,
        " g",
        "a scale's display step",
    ),
    r(
        "scale.settle_wait_ms",
        0.0,
        10_000.0,
        " ms",
        "viewers wait no longer for a tag",
    ),
    r(
        "scale.overlay_s",
        1.0,
        3600.0,
        " s",
        "a lower third longer than a show is a mistake",
    ),
    r(
        "scale.serial_baud",
        1200.0,
        115_200.0,
        " baud",
        "what serial scales speak",
    ),
    r(
        "scale.serial_data_bits",
        7.0,
        8.0,
        "",
        "scales send 7 or 8 data bits",
    ),
    r(
        "scale.serial_stop_bits",
        1.0,
        2.0,
        "",
        "a serial line has 1 or 2 stop bits",
    ),
    r("scale.hx711_dout_pin", 0.0, 27.0, "", PIN),
    r("scale.hx711_sck_pin", 0.0, 27.0, "", PIN),
    r("products[].button_pin", 0.0, 27.0, "", PIN),
    r(
        "mqtt.keep_alive_s",
        5.0,
        600.0,
        " s",
        "brokers drop longer silences",
    ),
    r(
        "mqtt.status_interval_s",
        1.0,
        300.0,
        " s",
        "a technician waits no longer",
    ),
];

/// A number as written: TOML integers are i64; serde also gives u64 and f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    I(i64),
    U(u64),
    F(f64),
}

impl Num {
    pub fn of(value: &Value) -> Option<Num> {
        match value {
            Value::Number(n) => n
                .as_i64()
                .map(Num::I)
                .or_else(|| n.as_u64().map(Num::U))
                .or_else(|| n.as_f64().map(Num::F)),
            _ => None,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::U(u) => u as f64,
            Num::F(f) => f,
        }
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::I(i) => write!(f, "{i}"),
            Num::U(u) => write!(f, "{u}"),
            Num::F(x) => write!(f, "{x}"),
        }
    }
}

impl Range {
    /// `None` when `value` is accepted, else the message for the technician.
    pub fn check(&self, value: Num) -> Option<String> {
        let v = value.as_f64();
        // Written so that NaN is out of range too.
        if v >= self.min && v <= self.max {
            return None;
        }
        let unit = self.unit;
        Some(format!(
            "{value}{unit} is out of range; use a value from {} to {}{unit} ({})",
            self.min, self.max, self.why
        ))
    }

    /// The largest accepted value as it would be written in TOML.
    pub fn max_toml(&self) -> toml::Value {
        if self.max.fract() == 0.0 && self.min.fract() == 0.0 {
            toml::Value::Integer(self.max as i64)
        } else {
            toml::Value::Float(self.max)
        }
    }
}

/// The row for a concrete key path (`products[3].button_pin`), if any.
pub fn find(path: &str) -> Option<&'static Range> {
    let pattern = pattern_of(path);
    RANGES.iter().find(|r| r.path == pattern)
}

/// `products[3].button_pin` -> `products[].button_pin`.
pub fn pattern_of(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// Every value `range.path` names in `root` (a config serialized to JSON),
/// with its concrete path; `None`s (keys not set) are left out.
pub fn values_at(root: &Value, pattern: &str) -> Vec<(String, Num)> {
    let mut found = vec![(String::new(), root)];
    for segment in pattern.split('.') {
        let (key, each) = match segment.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (segment, false),
        };
        let mut next = Vec::new();
        for (path, v) in found {
            let Some(child) = v.get(key) else { continue };
            let path = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            if each {
                for (i, item) in child.as_array().into_iter().flatten().enumerate() {
                    next.push((format!("{path}[{i}]"), item));
                }
            } else {
                next.push((path, child));
            }
        }
        found = next;
    }
    found
        .into_iter()
        .filter_map(|(p, v)| Num::of(v).map(|n| (p, n)))
        .collect()
}

/// Range problems of `config` (serialized to JSON) under the top-level table
/// `section`, in table order, as `(key path, message)`.
pub fn check_section(root: &Value, section: &str) -> Vec<(String, String)> {
    RANGES
        .iter()
        .filter(|r| r.path.split(['.', '[']).next() == Some(section))
        .flat_map(|r| {
            values_at(root, r.path)
                .into_iter()
                .filter_map(move |(p, n)| r.check(n).map(|m| (p, m)))
        })
        .collect()
}

/// A config with every numeric key at its largest accepted value, except the
/// key paths in `keep` (left at their defaults), as a TOML table. For tests
/// that prove the largest values are safe at run time.
pub fn at_max(keep: &[&str]) -> toml::Table {
    let mut root = toml::Table::new();
    'rows: for r in RANGES.iter().filter(|r| !keep.contains(&r.path)) {
        // Array elements are the caller's to write.
        if r.path.contains("[]") {
            continue;
        }
        let mut parts: Vec<&str> = r.path.split('.').collect();
        let Some(leaf) = parts.pop() else { continue };
        let mut t = &mut root;
        for p in parts {
            let entry = t
                .entry(p)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(next) = entry else {
                continue 'rows;
            };
            t = next;
        }
        t.insert(leaf.to_string(), r.max_toml());
    }
    root
}

#[cfg(test)]
#[path = "ranges_tests.rs"]
mod tests;
