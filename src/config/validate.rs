//! Checks every value of a loaded [`Config`] and says, in words a field
//! technician can act on, what is wrong and what would be valid.
//!
//! Pure: no file system, no hardware. Whether the named camera or encoder
//! exists on this box is for `farmcast probe` and the media module; here we
//! only check that a value could be right on some box.

use std::collections::{HashMap, HashSet};

use super::choices::GpioBackend;
use super::problem::Problem;
use super::ranges;
use super::schema::Config;
use super::url::{self, UrlError};

/// Highest BCM GPIO on the 40-pin header.
pub const MAX_BCM_PIN: u8 = 27;

/// Every problem in `config`, in file order of the tables; empty when valid.
/// At most one problem per key path: a number out of its range (see
/// [`super::ranges`]) is not also reported by a rule about that key.
pub fn validate(config: &Config) -> Vec<Problem> {
    let mut v = Checks::default();
    let json = match serde_json::to_value(config) {
        Ok(json) => json,
        Err(e) => {
            v.bad("", format!("cannot check the numbers: {e}"));
            serde_json::Value::Null
        }
    };
    let ranges = |v: &mut Checks, section: &str| {
        for (path, message) in ranges::check_section(&json, section) {
            v.bad(path, message);
        }
    };
    top(&mut v, config);
    ranges(&mut v, "video");
    video(&mut v, config);
    ranges(&mut v, "audio");
    ranges(&mut v, "live");
    if config
        .live
        .slate_image
        .as_deref()
        .is_some_and(|s| s.trim().is_empty())
    {
        v.bad(
            "live.slate_image",
            "is empty; give the path of a PNG or JPEG, or remove the line",
        );
    }
    destinations(&mut v, config);
    ranges(&mut v, "recording");
    recording(&mut v, config);
    ranges(&mut v, "gpio");
    ranges(&mut v, "products");
    gpio(&mut v, config);
    ranges(&mut v, "scale");
    for (path, message) in super::validate_scale::check_scale(&config.scale) {
        v.bad(path, message);
    }
    products(&mut v, config);
    v.non_empty("state_dir", &config.state_dir, "e.g. \"/var/lib/farmcast\"");
    ranges(&mut v, "mqtt");
    mqtt(&mut v, config);
    fleet(&mut v, config);
    web(&mut v, config);
    v.problems
}

#[derive(Default)]
struct Checks {
    problems: Vec<Problem>,
    /// Paths already reported: the first problem of a key is the one shown.
    seen: HashSet<String>,
}

impl Checks {
    fn bad(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        if self.seen.insert(path.clone()) {
            self.problems
                .push(Problem::new(path, bounded_echo(&message.into())));
        }
    }

    /// Names that end up in MQTT topics, file names and logs.
    fn safe_name(&mut self, path: &str, value: &str, what: &str, max: usize) {
        if value.is_empty() {
            self.bad(
                path,
                format!("{what} is empty; give a short name like \"farm-01\""),
            );
        } else if let Some(c) = value.chars().find(|c| !is_safe(*c)) {
            self.bad(
                path,
                format!(
                    "\"{value}\" contains {c:?}; use only letters A-Z a-z, digits, '-' and '_'"
                ),
            );
        } else if value.len() > max {
            self.bad(
                path,
                format!(
                    "is {} characters long; keep it to {max} or fewer",
                    value.len()
                ),
            );
        }
    }

    fn non_empty(&mut self, path: &str, value: &str, hint: &str) {
        if value.trim().is_empty() {
            self.bad(path, format!("is empty; {hint}"));
        }
    }

    /// Reports the second and later uses of the same name.
    fn unique<'a>(&mut self, items: impl Iterator<Item = (String, &'a str)>, what: &str) {
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (path, name) in items {
            if name.is_empty() {
                continue;
            }
            match seen.get(name) {
                Some(first) => self.bad(
                    path,
                    format!("{what} \"{name}\" is already used by {first}; each must be different"),
                ),
                None => {
                    seen.insert(name, path);
                }
            }
        }
    }
}

/// Messages quote the value they are about (`"webcam" is not known`); a value
/// from outside can be megabytes, so each quoted part is cut to an excerpt,
/// and the whole message bounded in case the quotes do not pair up.
fn bounded_echo(message: &str) -> String {
    const MAX: usize = 512;
    if message.len() <= MAX / 2 {
        return message.to_string();
    }
    let mut out = String::with_capacity(MAX);
    for (i, part) in message.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        // Odd parts are inside quotes.
        if i % 2 == 1 {
            out.push_str(&crate::excerpt::excerpt(part));
        } else {
            out.push_str(part);
        }
    }
    if out.chars().count() > MAX {
        crate::excerpt::excerpt_n(&out, MAX)
    } else {
        out
    }
}

fn is_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn top(v: &mut Checks, c: &Config) {
    v.safe_name("device_id", &c.device_id, "the device id", 64);
}

fn video(v: &mut Checks, c: &Config) {
    // The source, encoder and preset words are checked where they are
    // parsed (`super::choices`), before serde.
    let vc = &c.video;
    for (path, value) in [("video.width", vc.width), ("video.height", vc.height)] {
        if value % 2 != 0 {
            v.bad(
                path,
                format!(
                    "{value} is odd; the encoder needs an even number, e.g. {}",
                    value - 1
                ),
            );
        }
    }
    if vc.min_bitrate_kbps > vc.bitrate_kbps {
        v.bad(
            "video.min_bitrate_kbps",
            format!(
                "{} kbps is above video.bitrate_kbps ({}); the floor must not exceed the target",
                vc.min_bitrate_kbps, vc.bitrate_kbps
            ),
        );
    }
}

fn destinations(v: &mut Checks, c: &Config) {
    for (i, d) in c.destinations.iter().enumerate() {
        let p = |k: &str| format!("destinations[{i}].{k}");
        v.safe_name(&p("name"), &d.name, "the destination name", 64);
        destination_url(
            v,
            &p("url"),
            &d.url,
            d.key.is_some() || d.key_file.is_some(),
        );
        match (&d.key, &d.key_file) {
            (Some(_), Some(_)) => v.bad(
                p("key"),
                "both `key` and `key_file` are set; keep only `key_file` (preferred) or `key`",
            ),
            (Some(k), None) if k.is_empty() => v.bad(
                p("key"),
                "is empty; paste the platform's stream key, or use `key_file`",
            ),
            (None, Some(f)) if f.trim().is_empty() => v.bad(
                p("key_file"),
                "is empty; give the path of the file holding the stream key",
            ),
            _ => {}
        }
    }
    v.unique(
        c.destinations
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("destinations[{i}].name"), d.name.as_str())),
        "destination name",
    );
}

fn destination_url(v: &mut Checks, path: &str, s: &str, has_key: bool) {
    const HINT: &str = "e.g. \"rtmp://live.example.com/app\" or \"srt://ingest.example.com:9000\"";
    if s.contains(char::is_whitespace) {
        return v.bad(path, format!("contains a space; remove it ({HINT})"));
    }
    const USE: &str = "use rtmp://, rtmps:// or srt://";
    // The URL itself is never echoed: it may hold a stream key.
    let u = match url::parse(s) {
        Ok(u) if u.scheme.is_media() => u,
        Ok(u) => {
            return v.bad(
                path,
                format!("scheme \"{}\" is not supported; {USE}", u.scheme),
            )
        }
        Err(UrlError::NoScheme) => {
            return v.bad(
                path,
                format!("has no scheme; start it with rtmp://, rtmps:// or srt:// ({HINT})"),
            )
        }
        Err(e @ UrlError::Unsupported(_)) => return v.bad(path, format!("{e}; {USE}")),
        Err(UrlError::NoHost) => return v.bad(path, format!("has no server name; {HINT}")),
        Err(e) => return v.bad(path, format!("{e}; {HINT}")),
    };
    if u.scheme == url::Scheme::Srt {
        if u.explicit_port.is_none() {
            v.bad(
                path,
                "an srt:// URL needs a port, e.g. \"srt://ingest.example.com:9000\"",
            );
        }
    } else {
        let segments = u.path.split('/').filter(|s| !s.is_empty()).count();
        if segments == 0 {
            v.bad(path, "has no application name; RTMP URLs look like \"rtmp://host/app\" (the key is added after it)");
        } else if segments == 1 && !has_key {
            v.bad(path, "has no stream key; set `key_file` (or `key`), or write the URL as \"rtmp://host/app/KEY\"");
        }
    }
}

fn recording(v: &mut Checks, c: &Config) {
    let r = &c.recording;
    v.non_empty(
        "recording.dir",
        &r.dir,
        "give a folder on a disk with room, e.g. \"/var/lib/farmcast/recordings\"",
    );
    if !(r.max_gb.is_finite() && r.max_gb > 0.0) {
        v.bad(
            "recording.max_gb",
            format!(
                "{} is not a disk budget; give a number of GB above 0, e.g. 8",
                r.max_gb
            ),
        );
    }
}

fn gpio(v: &mut Checks, c: &Config) {
    let g = &c.gpio;
    if g.backend == GpioBackend::Sim {
        v.non_empty(
            "gpio.sim_socket",
            &g.sim_socket,
            "give a socket path, e.g. \"/run/farmcast/sim.sock\"",
        );
    }

    let mut pins: Vec<(String, u8)> = vec![
        ("gpio.go_live_pin".into(), g.go_live_pin),
        ("gpio.tally_led_pin".into(), g.tally_led_pin),
    ];
    pins.extend(g.status_led_pin.map(|p| ("gpio.status_led_pin".into(), p)));
    for (i, prod) in c.products.iter().enumerate() {
        pins.extend(
            prod.button_pin
                .map(|p| (format!("products[{i}].button_pin"), p)),
        );
    }
    let mut used: HashMap<u8, &str> = HashMap::new();
    for (path, pin) in &pins {
        if *pin > MAX_BCM_PIN {
            v.bad(
                path,
                format!("pin {pin} does not exist; use a BCM GPIO number from 0 to {MAX_BCM_PIN}"),
            );
        } else if let Some(first) = used.get(pin) {
            v.bad(
                path,
                format!(
                    "pin {pin} is already used by {first}; every button and LED needs its own pin"
                ),
            );
        } else {
            used.insert(*pin, path);
        }
    }
}

fn products(v: &mut Checks, c: &Config) {
    for (i, prod) in c.products.iter().enumerate() {
        let p = |k: &str| format!("products[{i}].{k}");
        v.safe_name(&p("id"), &prod.id, "the product id", 64);
        v.non_empty(
            &p("name"),
            &prod.name,
            "give the name viewers see, e.g. \"Fresh mussels\"",
        );
        let currency_ok =
            prod.currency.len() == 3 && prod.currency.chars().all(|c| c.is_ascii_uppercase());
        if !currency_ok {
            v.bad(p("currency"), format!("\"{}\" is not a currency code; use three capital letters, e.g. \"CNY\", \"EUR\", \"JPY\"", prod.currency));
        }
        if let Err(why) = check_price(&prod.unit_price, minor_digits(&prod.currency)) {
            v.bad(p("unit_price"), why);
        }
    }
    v.unique(
        c.products
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("products[{i}].id"), p.id.as_str())),
        "product id",
    );
}

/// Digits after the decimal point the currency uses (ISO 4217).
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "PYG" | "XAF" | "XOF" | "RWF" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    }
}

fn check_price(price: &str, minor: u32) -> Result<(), String> {
    let example = if minor == 0 {
        "\"3000\"".to_string()
    } else {
        format!("\"30.{}\"", "0".repeat(minor as usize))
    };
    let (whole, frac) = match price.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (price, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || frac.is_some_and(|f| !digits(f)) {
        return Err(format!(
            "\"{price}\" is not a price; write digits with an optional '.', e.g. {example}"
        ));
    }
    let frac_len = frac.map_or(0, str::len);
    if frac_len > minor as usize {
        return Err(if minor == 0 {
            format!("\"{price}\" has decimals, but this currency has none; e.g. {example}")
        } else {
            format!("\"{price}\" has {frac_len} decimals; this currency has at most {minor}, e.g. {example}")
        });
    }
    Ok(())
}

fn mqtt(v: &mut Checks, c: &Config) {
    let m = &c.mqtt;
    const HINT: &str =
        "e.g. \"mqtt://broker.example.com:1883\" or \"mqtts://broker.example.com:8883\"";
    if m.url.contains(char::is_whitespace) {
        v.bad("mqtt.url", format!("contains a space; {HINT}"));
    } else if let Err(e) = url::broker(&m.url) {
        // The same parser as the daemon's link; the URL is not echoed (it
        // may hold a password).
        let msg = match e {
            UrlError::NoScheme => format!("has no scheme; {HINT}"),
            UrlError::Unsupported(_) => format!("{e}; use mqtt:// or mqtts://"),
            UrlError::Credentials => "must not carry a user name or password (`user:password@`); \
                 set mqtt.username and put the password in the file mqtt.password_file"
                .to_string(),
            UrlError::NoHost => format!("has no broker name; {HINT}"),
            e => format!("{e}; {HINT}"),
        };
        v.bad("mqtt.url", msg);
    }
    let t = m.topic_prefix.as_str();
    if t.is_empty() {
        v.bad("mqtt.topic_prefix", "is empty; use e.g. \"farmcast\"");
    } else if let Some(c) = t
        .chars()
        .find(|c| matches!(c, '+' | '#') || c.is_whitespace() || c.is_control())
    {
        v.bad("mqtt.topic_prefix", format!("\"{t}\" contains {c:?}, which MQTT topics cannot hold; use e.g. \"farmcast\" or \"coop/farmcast\""));
    } else if t.starts_with('/') || t.ends_with('/') {
        v.bad(
            "mqtt.topic_prefix",
            format!("\"{t}\" must not start or end with '/'; e.g. \"coop/farmcast\""),
        );
    }
    for (key, value) in [
        ("mqtt.password_file", &m.password_file),
        ("mqtt.ca_file", &m.ca_file),
        ("mqtt.client_cert", &m.client_cert),
        ("mqtt.client_key", &m.client_key),
    ] {
        if value.as_deref().is_some_and(|p| p.trim().is_empty()) {
            v.bad(key, "is empty; give a path, or remove the line");
        }
    }
    if m.client_cert.is_some() != m.client_key.is_some() {
        v.bad(
            "mqtt.client_cert",
            "a client certificate needs its key (mqtt.client_key) and the other way round",
        );
    }
}

fn fleet(v: &mut Checks, c: &Config) {
    for (i, g) in c.fleet.groups.iter().enumerate() {
        v.safe_name(&format!("fleet.groups[{i}]"), g, "the group name", 64);
    }
    v.unique(
        c.fleet
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("fleet.groups[{i}]"), g.as_str())),
        "group",
    );
    if c.fleet
        .trusted_keys_file
        .as_deref()
        .is_some_and(|s| s.trim().is_empty())
    {
        v.bad(
            "fleet.trusted_keys_file",
            "is empty; give the path of the PEM file, or remove the line",
        );
    }
}

/// The phone page: addresses that bind, and a code long enough to resist
/// guessing at the rate the login allows (`docs/web.md`).
fn web(v: &mut Checks, c: &Config) {
    let w = &c.web;
    let addrs = [
        ("web.listen", Some(&w.listen)),
        ("web.metrics_listen", w.metrics_listen.as_ref()),
    ];
    for (path, addr) in addrs {
        if addr.is_some_and(|a| a.parse::<std::net::SocketAddr>().is_err()) {
            v.bad(
                path,
                "is not an address and port; e.g. \"0.0.0.0:80\" or \"[::]:9100\"",
            );
        }
    }
    if let Some(code) = &w.pairing_code {
        let n = code.expose().chars().count();
        if !(6..=64).contains(&n)
            || code
                .expose()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            v.bad(
                "web.pairing_code",
                "must be 6 to 64 characters without spaces (the code on the box's label)",
            );
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
