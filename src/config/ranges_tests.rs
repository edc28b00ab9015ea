//! The range table covers every number of the schema, and its bounds fit the
//! Rust types they are read into.

use super::*;
use crate::config::load::load_str;
use crate::config::schema::Config;
use crate::config::validate::validate;

use crate::config::walk::full_sample as full;

fn numeric_leaves(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                numeric_leaves(child, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                numeric_leaves(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Number(_) => out.push(path.to_string()),
        _ => {}
    }
}

#[test]
fn every_numeric_key_has_a_range() {
    let json = serde_json::to_value(full()).unwrap();
    let mut leaves = Vec::new();
    numeric_leaves(&json, "", &mut leaves);
    assert!(leaves.len() > 20, "{leaves:?}");
    let missing: Vec<_> = leaves.iter().filter(|p| find(p).is_none()).collect();
    assert!(
        missing.is_empty(),
        "numeric keys without a row in ranges::RANGES: {missing:?}"
    );
}

#[test]
fn every_row_names_a_numeric_key() {
    let json = serde_json::to_value(full()).unwrap();
    for r in RANGES {
        assert_eq!(values_at(&json, r.path).len(), 1, "{}", r.path);
        assert!(r.min <= r.max, "{}", r.path);
    }
}

#[test]
fn defaults_are_in_range() {
    let json = serde_json::to_value(full()).unwrap();
    for r in RANGES {
        for (p, n) in values_at(&json, r.path) {
            assert_eq!(r.check(n), None, "{p}");
        }
    }
}

/// The largest and smallest accepted values deserialize into the key's Rust
/// type (a bound past `u8` would be a type error, not a range message) and
/// pass validation; one past them does not.
#[test]
fn bounds_fit_their_types_and_are_the_edges() {
    for r in RANGES {
        let (table, key) = r.path.rsplit_once('.').unwrap();
        let write = |v: String| -> String {
            if let Some(array) = table.strip_suffix("[]") {
                format!("[[{array}]]\nid = \"p\"\nname = \"n\"\nunit = \"kg\"\nunit_price = \"1.00\"\ncurrency = \"CNY\"\n{key} = {v}\n")
            } else {
                format!("[{table}]\n{key} = {v}\n")
            }
        };
        let fmt = |x: f64| {
            if matches!(r.max_toml(), toml::Value::Integer(_)) {
                format!("{}", x as i64)
            } else {
                format!("{x:?}")
            }
        };
        for edge in [r.min, r.max] {
            let src = write(fmt(edge));
            let c = load_str(&src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
            let ps: Vec<_> = validate(&c)
                .into_iter()
                .filter(|p| pattern_of(&p.path) == r.path && p.message.contains("out of range"))
                .collect();
            assert!(ps.is_empty(), "{src}: {ps:?}");
        }
        let step = if r.max.fract() == 0.0 && r.min.fract() == 0.0 {
            1.0
        } else {
            r.max / 10.0
        };
        let src = write(fmt(r.max + step));
        match load_str(&src) {
            Err(_) => {} // past the type itself: a type problem, also refused
            Ok(c) => assert!(
                validate(&c)
                    .iter()
                    .any(|p| pattern_of(&p.path) == r.path && p.message.contains("out of range")),
                "{src}"
            ),
        }
    }
}

#[test]
fn at_max_sets_every_plain_key() {
    let t = at_max(&["video.width"]);
    let c: Config = toml::Value::Table(t).try_into().unwrap();
    assert_eq!(c.scale.overlay_s, 3600);
    assert_eq!(c.video.width, Config::default().video.width);
    assert_eq!(c.live.recording_queue_kb, 262_144);
}

#[test]
fn messages_name_value_bounds_and_reason() {
    let r = find("scale.overlay_s").unwrap();
    let m = r.check(Num::I(i64::MAX)).unwrap();
    assert!(m.contains("9223372036854775807 s"), "{m}");
    assert!(m.contains("1 to 3600 s"), "{m}");
    assert!(r.check(Num::F(f64::NAN)).is_some());
    assert_eq!(
        pattern_of("products[12].button_pin"),
        "products[].button_pin"
    );
}
