//! The walk finds every kind of problem at once, each on its own key.

use std::path::Path;
use std::time::Instant;

use crate::config::load::{check_sources, check_str, Depth, MAX_PROBLEMS};
use crate::config::Config;

fn paths(src: &str) -> Vec<(String, Option<usize>)> {
    check_str(src, Path::new("/nonexistent"))
        .expect_err("should have problems")
        .into_iter()
        .map(|p| (p.path, p.line))
        .collect()
}

#[test]
fn unknown_keys_wrong_types_and_values_all_at_once() {
    let src = "device_id = \"a b\"\n[video]\nwidht = 1280\nwidth = \"1280\"\n[gpio]\ngo_live_pin = 300\n[mqtt]\nkeep_alive_s = true\n[scale]\noverlay_s = 9223372036854775807\n";
    let got = paths(src);
    let want: Vec<(String, Option<usize>)> = [
        ("device_id", 1),
        ("video.widht", 3),
        ("video.width", 4),
        ("gpio.go_live_pin", 6),
        ("mqtt.keep_alive_s", 8),
        ("scale.overlay_s", 10),
    ]
    .iter()
    .map(|(p, l)| (p.to_string(), Some(*l)))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn problems_in_several_array_elements() {
    let src = "[[destinations]]\nname = \"a\"\n[[destinations]]\nname = \"b\"\nurl = \"rtmp://h/app/k\"\nport = 3\n[[products]]\nid = \"p\"\nname = \"n\"\nunit = \"kg\"\nunit_price = 3\ncurrency = \"CNY\"\n";
    let got = paths(src);
    assert_eq!(
        got,
        vec![
            ("destinations[0].url".to_string(), Some(1)),
            ("destinations[1].port".to_string(), Some(6)),
            ("products[0].unit_price".to_string(), Some(11)),
        ]
    );
}

#[test]
fn a_missing_name_does_not_also_count_as_a_duplicate() {
    let src =
        "[[destinations]]\nurl = \"rtmp://h/app/k\"\n[[destinations]]\nurl = \"rtmp://h/app/k\"\n";
    let got = paths(src);
    assert_eq!(
        got,
        vec![
            ("destinations[0].name".to_string(), Some(1)),
            ("destinations[1].name".to_string(), Some(3)),
        ]
    );
}

#[test]
fn mqtt_written_without_enabled_is_on() {
    let c = crate::config::load_str("[mqtt]\nurl = \"mqtt://b:1883\"\n").unwrap();
    assert!(c.mqtt.enabled);
    assert!(!Config::default().mqtt.enabled);
    assert!(!crate::config::load_str("").unwrap().mqtt.enabled);
    let c = crate::config::load_str("[mqtt]\nenabled = false\n").unwrap();
    assert!(!c.mqtt.enabled);
}

#[test]
fn switched_off_tables_and_open_doors_are_warnings() {
    let src = "[mqtt]\nurl = \"mqtt://b\"\nenabled = false\n[recording]\nenabled = false\n[[destinations]]\nname = \"a\"\nurl = \"rtmp://h/app/k\"\nenabled = false\n[fleet]\nallow_unsigned = true\n";
    let r = check_sources(&[src], Depth::Values);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let w: Vec<_> = r
        .warnings
        .iter()
        .map(|p| (p.path.as_str(), p.line))
        .collect();
    assert_eq!(
        w,
        [
            ("mqtt.enabled", Some(3)),
            ("recording.enabled", Some(5)),
            ("destinations[0].enabled", Some(9)),
            ("fleet.allow_unsigned", Some(11)),
        ]
    );
    let r = check_sources(&["[mqtt]\nurl = \"mqtt://b\"\n"], Depth::Values);
    assert!(r.warnings.is_empty() && r.config.unwrap().mqtt.enabled);
}

/// A 64 KB fleet layer with thousands of problems in its values (the kind
/// that passes serde, so every one reaches the line lookup). The old loader
/// re-indexed every source for every problem: 45 s in release. The bound is
/// generous for a debug build on a busy machine; the median is in the report.
#[test]
fn a_big_bad_layer_is_checked_in_linear_time() {
    let mut layer = String::new();
    let mut i = 0;
    while layer.len() < 64 * 1024 {
        layer.push_str(&format!(
            "[[products]]\nid = \"p {i}\"\nname = \"n\"\nunit = \"g\"\nunit_price = \"x\"\ncurrency = \"cny\"\nbutton_pin = 99\n"
        ));
        i += 1;
    }
    let file = "[video]\nsource = \"test\"\n";
    let t0 = Instant::now();
    let ps = crate::config::check_layers(file, &[&layer], Path::new("/nonexistent")).unwrap_err();
    let took = t0.elapsed();
    assert!(i > 500, "{i} products");
    assert_eq!(ps.len(), MAX_PROBLEMS + 1);
    let last = ps.last().unwrap();
    assert!(last.message.contains("more problem(s)"), "{last:?}");
    assert!(ps[0].message.starts_with("in layer 1:"), "{:?}", ps[0]);
    assert!(took.as_secs_f64() < 2.0, "took {took:?}");
    println!("64 KB layer, {i} products: checked in {took:?}");
}

/// Every kind of problem at once in a big layer: still one pass.
#[test]
fn a_big_layer_with_every_kind_of_problem() {
    let mut layer = String::new();
    let mut i = 0;
    while layer.len() < 64 * 1024 {
        layer.push_str(&format!(
            "[[products]]\nid = \"p {i}\"\nname = 7\nunit = \"g\"\nunit_price = \"x\"\ncurrency = \"cny\"\nbutton_pin = 300\ncolour = 1\n"
        ));
        i += 1;
    }
    let t0 = Instant::now();
    let r = check_sources(&["", &layer], Depth::Full(Path::new("/nonexistent")));
    let took = t0.elapsed();
    assert_eq!(r.problems.len(), MAX_PROBLEMS + 1);
    assert!(took.as_secs_f64() < 2.0, "took {took:?}");
}

#[test]
fn long_unknown_keys_and_values_are_echoed_as_excerpts() {
    let key = "k".repeat(10_000);
    let src = format!("[video]\n{key} = 1\nsource = \"{}\"\n", "v".repeat(10_000));
    let ps = check_str(&src, Path::new("/nonexistent")).unwrap_err();
    assert_eq!(ps.len(), 2, "{ps:?}");
    for p in &ps {
        assert!(p.to_string().len() < 700, "{}", p.to_string().len());
    }
}

/// Every word that is none of its key's choices is reported in one pass,
/// on its path and line, with the allowed words; serde alone would stop at
/// the first. The load depth (fleet layers) finds them all as well.
#[test]
fn every_bad_choice_at_once() {
    let src = "[video]\nsource = \"webcam\"\nencoder = \"X264\"\nx264_preset = \"fastest\"\n\
               [audio]\nsource = \"pulse\"\n[gpio]\nbackend = \"wiringpi\"\n[scale]\nkind = \"hx712\"\n\
               [mqtt]\nprotocol = \"v3\"\n\
               [[products]]\nid = \"p\"\nname = \"n\"\nunit = \"g\"\nunit_price = \"1.00\"\ncurrency = \"CNY\"\n";
    let want = [
        ("video.source", 2, "\"v4l2:/dev/video0\""),
        ("video.encoder", 3, "\"x264enc\""),
        ("video.x264_preset", 4, "\"ultrafast\", \"superfast\""),
        ("audio.source", 6, "\"alsa:hw:CARD=Device,DEV=0\""),
        ("gpio.backend", 8, "\"rppal\", \"sim\""),
        ("scale.kind", 10, "\"none\", \"hx711\", \"serial\", \"sim\""),
        ("mqtt.protocol", 12, "\"v4\", \"v5\""),
        ("products[0].unit", 16, "\"kg\", \"piece\""),
    ];
    for problems in [
        check_str(src, Path::new("/nonexistent")).unwrap_err(),
        crate::config::load_str(src).unwrap_err(),
    ] {
        let got: Vec<(&str, Option<usize>)> =
            problems.iter().map(|p| (p.path.as_str(), p.line)).collect();
        let paths: Vec<(&str, Option<usize>)> =
            want.iter().map(|(p, l, _)| (*p, Some(*l))).collect();
        assert_eq!(got, paths);
        for (p, (_, _, allowed)) in problems.iter().zip(want) {
            assert!(p.message.contains(allowed), "{p:?}");
        }
    }
}
