//! Every unknown key, wrong type and out-of-range number of a parsed TOML
//! table, in one pass, before serde sees it.
//!
//! serde stops at the first error, so a technician would fix a file one line
//! per run. Instead the table is walked against the schema (taken from a
//! [`Config`] with every key set, serialized): each problem is collected with
//! its key path, and the offending key (a word that is none of its
//! [`choices`] too) is removed (its default applies) or,
//! for a number out of range, clamped, so that serde then takes what is left
//! and the value checks still run on everything else. One pass over the
//! table: linear in its size.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value as Json;
use toml::Value;

use super::choices;
use super::problem::Problem;
use super::ranges::{self, Num};
use super::schema::{Config, DestinationConfig, ProductConfig};
use super::spans::join;

/// A config with every optional key set and one element in every array, so
/// serializing it shows every key the schema has.
pub fn full_sample() -> Config {
    let mut c = Config::default();
    c.gpio.status_led_pin = Some(5);
    c.scale.hx711_dout_pin = Some(6);
    c.scale.hx711_sck_pin = Some(13);
    c.scale.overlay_template = Some("{name}".into());
    c.scale.overlay_template_piece = Some("{name}".into());
    c.live.slate_image = Some("/s.png".into());
    c.live.tls_ca_file = Some("ca.pem".into());
    c.mqtt.username = Some("u".into());
    c.mqtt.password_file = Some("p".into());
    c.mqtt.ca_file = Some("ca".into());
    c.mqtt.client_cert = Some("c".into());
    c.mqtt.client_key = Some("k".into());
    c.fleet.groups = vec!["g".into()];
    c.fleet.trusted_keys_file = Some("t".into());
    c.web.metrics_listen = Some("127.0.0.1:9100".into());
    c.web.pairing_code = Some(super::secret::Secret::new("123456"));
    c.destinations.push(DestinationConfig {
        name: "d".into(),
        url: "rtmp://h/app".into(),
        key_file: Some("k".into()),
        key: Some(super::secret::Secret::new("k")),
        enabled: true,
    });
    c.products.push(ProductConfig {
        id: "p".into(),
        name: "n".into(),
        unit: super::choices::Unit::Kg,
        unit_price: "1.00".into(),
        currency: "CNY".into(),
        button_pin: Some(22),
    });
    c
}

struct Schema {
    root: Json,
    /// Keys an element of `destinations` / `products` cannot do without,
    /// with the sample's value to stand in while the rest is checked.
    required: HashMap<String, Vec<(String, Value)>>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let sample = full_sample();
        let root = serde_json::to_value(&sample).unwrap_or(Json::Null);
        let mut required = HashMap::new();
        // A key is required when an element without it does not deserialize.
        if let Ok(Value::Table(t)) = Value::try_from(&sample) {
            for (array, v) in &t {
                let Some(Value::Table(elem)) = v.as_array().and_then(|a| a.first()) else {
                    continue;
                };
                let mut keys = Vec::new();
                for (k, kv) in elem {
                    let mut e = elem.clone();
                    e.remove(k);
                    let mut probe = toml::Table::new();
                    probe.insert(array.clone(), Value::Array(vec![Value::Table(e)]));
                    if Value::Table(probe).try_into::<Config>().is_err() {
                        keys.push((k.clone(), kv.clone()));
                    }
                }
                required.insert(array.clone(), keys);
            }
        }
        Schema { root, required }
    })
}

/// Checks `table` against the schema, removing or clamping what is wrong so
/// that it deserializes; returns every problem found, without lines.
pub fn clean(table: &mut toml::Table) -> Vec<Problem> {
    let mut out = Vec::new();
    let s = schema();
    if let Json::Object(root) = &s.root {
        walk_table(table, root, "", s, &mut out);
    }
    out
}

fn walk_table(
    table: &mut toml::Table,
    schema: &serde_json::Map<String, Json>,
    prefix: &str,
    s: &Schema,
    out: &mut Vec<Problem>,
) {
    let mut remove = Vec::new();
    for (key, value) in table.iter_mut() {
        let path = join(prefix, key);
        let Some(want) = schema.get(key) else {
            let known: Vec<&str> = schema.keys().map(String::as_str).collect();
            out.push(Problem::new(
                path,
                format!("unknown key; the keys here are: {}", known.join(", ")),
            ));
            remove.push(key.clone());
            continue;
        };
        if !walk_value(value, want, &path, s, out) {
            remove.push(key.clone());
        }
    }
    for k in remove {
        table.remove(&k);
    }
}

/// `false` when `value` must be removed (its default applies instead).
fn walk_value(
    value: &mut Value,
    want: &Json,
    path: &str,
    s: &Schema,
    out: &mut Vec<Problem>,
) -> bool {
    match (value, want) {
        (Value::Table(t), Json::Object(schema)) => {
            walk_table(t, schema, path, s, out);
            true
        }
        (Value::Array(items), Json::Array(sample)) => {
            let Some(elem) = sample.first() else {
                return true;
            };
            let required = s.required.get(path).map(Vec::as_slice).unwrap_or(&[]);
            let mut ok = true;
            for (i, item) in items.iter_mut().enumerate() {
                let item_path = format!("{path}[{i}]");
                match (item, elem) {
                    (Value::Table(t), Json::Object(schema)) => {
                        let written: Vec<bool> =
                            required.iter().map(|(k, _)| t.contains_key(k)).collect();
                        walk_table(t, schema, &item_path, s, out);
                        // A required key that is missing (or was removed as
                        // wrong above) gets the sample's value, so that the
                        // element's other keys are still checked.
                        for ((k, stand_in), was_written) in required.iter().zip(written) {
                            if t.contains_key(k) {
                                continue;
                            }
                            if !was_written {
                                out.push(Problem::new(
                                    join(&item_path, k),
                                    format!("is missing; every element of `{path}` needs `{k}`"),
                                ));
                            }
                            t.insert(k.clone(), stand_in.clone());
                        }
                    }
                    (item, elem) => ok &= walk_value(item, elem, &item_path, s, out),
                }
            }
            ok
        }
        (value, want) => leaf(value, want, path, out),
    }
}

fn leaf(value: &mut Value, want: &Json, path: &str, out: &mut Vec<Problem>) -> bool {
    let found = kind_of(value);
    let fits = match (&*value, want) {
        (Value::String(_), Json::String(_)) | (Value::Boolean(_), Json::Bool(_)) => true,
        (Value::Integer(_), Json::Number(_)) => true,
        (Value::Float(_), Json::Number(n)) => n.is_f64(),
        _ => false,
    };
    if !fits {
        out.push(Problem::new(
            path,
            format!("expected {}, found {found}", json_kind(want)),
        ));
        return false;
    }
    let num = match value {
        Value::Integer(i) => Num::I(*i),
        Value::Float(f) => Num::F(*f),
        // A word that is not one of the key's choices: removed, so serde
        // (which would stop at the first) takes the default.
        Value::String(s) => {
            return match choices::refuse(path, s) {
                Some(e) => {
                    out.push(Problem::new(path, e.to_string()));
                    false
                }
                None => true,
            }
        }
        _ => return true,
    };
    let Some(range) = ranges::find(path) else {
        return true;
    };
    let Some(message) = range.check(num) else {
        return true;
    };
    out.push(Problem::new(path, message));
    // Clamped, not removed: the value checks across keys (a floor below its
    // target) then see a value near the one written, not a default.
    match value {
        Value::Integer(i) => {
            *i = (*i).clamp(range.min as i64, range.max as i64);
            true
        }
        Value::Float(f) if !f.is_nan() => {
            *f = f.clamp(range.min, range.max);
            true
        }
        _ => false,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "text",
        Value::Integer(_) => "a whole number",
        Value::Float(_) => "a decimal number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::String(_) => "text in quotes",
        Json::Number(n) if n.is_f64() => "a number",
        Json::Number(_) => "a whole number",
        Json::Bool(_) => "true or false",
        Json::Array(_) => "a list",
        Json::Object(_) => "a table",
        Json::Null => "nothing",
    }
}

/// Settings a technician may have written by mistake: a table present but
/// switched off, or a door left open. Paths as written; no lines.
pub fn warnings(table: &toml::Table) -> Vec<Problem> {
    let mut out = Vec::new();
    let off = |t: Option<&Value>| {
        t.and_then(|t| t.get("enabled")).and_then(Value::as_bool) == Some(false)
    };
    if off(table.get("mqtt")) {
        out.push(Problem::new(
            "mqtt.enabled",
            "[mqtt] is written but switched off: the box will not connect to the broker, \
             so technicians cannot reach it; remove the line to connect",
        ));
    }
    if off(table.get("recording")) {
        out.push(Problem::new(
            "recording.enabled",
            "[recording] is switched off: shows are not kept on this box",
        ));
    }
    if let Some(Value::Array(ds)) = table.get("destinations") {
        for (i, d) in ds.iter().enumerate() {
            if off(Some(d)) {
                out.push(Problem::new(
                    format!("destinations[{i}].enabled"),
                    "this destination is switched off: nothing is sent to it",
                ));
            }
        }
    }
    let unsigned = table
        .get("fleet")
        .and_then(|f| f.get("allow_unsigned"))
        .and_then(Value::as_bool)
        == Some(true);
    if unsigned {
        out.push(Problem::new(
            "fleet.allow_unsigned",
            "any client of the broker can push config to this box (and re-point its \
             destinations); for labs only: set fleet.trusted_keys_file instead",
        ));
    }
    out
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
