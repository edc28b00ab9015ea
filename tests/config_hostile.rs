//! Config that is hostile or careless (issue 12), against the real binary,
//! nginx-rtmp and mosquitto:
//! - every number at the largest value `check-config` accepts runs a show with
//!   a product tag without a panic (the largest values come from the range
//!   table itself, `farmcast::config::ranges::RANGES`);
//! - a number past its range is refused by `check-config`, not left to panic
//!   at the first tag;
//! - `check-config` lists every problem of a file in one run, with lines;
//! - a 64 KB file with thousands of problems is answered at once;
//! - a written `[mqtt]` table without `enabled` connects; a switched-off one
//!   and `fleet.allow_unsigned` are warnings that keep exit 0.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::farmcast::check_config;
use common::observer::{topic, Observer, WAIT};
use common::{serial, Farmcast, Mosquitto, NginxRtmp};
use serde_json::json;

/// Keys left at the test's values instead of their largest, each because the
/// largest would make a short show on a shared two-core machine impossible or
/// invalid, not because it is unsafe; their arithmetic is covered by unit
/// tests (`config::ranges`, `recording::tests::budget_conversions`, the
/// saturating encoder and queue conversions):
const NOT_AT_MAX: &[&str] = &[
    // 4K60 cannot be encoded here in real time.
    "video.width",
    "video.height",
    "video.framerate",
    // Five seconds of sound delay holds the muxer back for the whole show.
    "audio.offset_ms",
    // Three LEDs and buttons on pin 27 is a pin conflict, refused.
    "gpio.go_live_pin",
    "gpio.tally_led_pin",
    "gpio.status_led_pin",
    "scale.hx711_dout_pin",
    "scale.hx711_sck_pin",
    // 500 ms of debounce swallows the sim's 80 ms press.
    "gpio.debounce_ms",
    // 1 TB kept free on a build machine's disk: nothing may be recorded.
    "recording.min_free_mb",
];

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn every_number_at_its_largest_runs_a_show_with_tags() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "hostile-spy", true, &[&topic("#")]);
    let nginx = NginxRtmp::start();
    let tc =
        TestConfig::new()
            .autostart(false)
            .destination("main", &nginx.url("live"), Some("farm"));
    let mut t = tc.mqtt_table(broker.port);
    let products: toml::Table = toml::from_str(
        "[scale]\nkind = \"sim\"\n\
         [[products]]\nid = \"mussels\"\nname = \"Mussels\"\nunit = \"kg\"\n\
         unit_price = \"30.00\"\ncurrency = \"CNY\"\n\
         [[products]]\nid = \"eggs\"\nname = \"Eggs\"\nunit = \"piece\"\n\
         unit_price = \"18.50\"\ncurrency = \"CNY\"\nbutton_pin = 5\n",
    )
    .expect("fragment");
    farmcast::config::merge(&mut t, &products);
    farmcast::config::merge(&mut t, &farmcast::config::ranges::at_max(NOT_AT_MAX));
    let text = toml::to_string(&t).expect("serialise");
    assert!(text.contains("overlay_s = 3600"), "{text}");

    // What the daemon runs is what check-config accepts.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check_config(&write(dir.path(), "max.toml", &text));
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut daemon = Farmcast::start(&text);
    obs.wait_standby();
    let r = obs.command("live", json!({"cmd": "go_live"}));
    assert_eq!(r["ok"], true, "go_live: {r}\n{}", daemon.log());
    assert!(
        nginx.wait_for_publishes("live", 1, WAIT),
        "no publish\n{}",
        daemon.log()
    );
    assert_eq!(daemon.sim("weight 1.250"), "ok");
    // By the kg (the lower third waits for the produce to come off), then by
    // the piece (it hides after overlay_s): both once panicked. scale.settle_ms
    // and settle_wait_ms are at their largest (10 s each) and status comes
    // only every 300 s, so a tag may give up once before the scale settles:
    // press again then.
    let mut ev = json!(null);
    for _ in 0..3 {
        assert_eq!(daemon.sim("press product:mussels"), "ok");
        ev = obs.until_json("events", WAIT, |v| {
            (v["type"] == "product_tagged" && v["product_id"] == "mussels")
                || (v["type"] == "error"
                    && v["what"].as_str().is_some_and(|w| w.contains("settle")))
        });
        if ev["type"] == "product_tagged" {
            break;
        }
    }
    assert_eq!(ev["type"], "product_tagged", "{ev}\n{}", daemon.log());
    assert!(ev["weight_kg"].is_string(), "{ev}");
    assert_eq!(daemon.sim("weight 0"), "ok");
    assert_eq!(daemon.sim("press product:eggs"), "ok");
    obs.until_json("events", WAIT, |v| {
        v["type"] == "product_tagged" && v["product_id"] == "eggs"
    });
    // Still up and live a moment later, and nothing panicked.
    std::thread::sleep(Duration::from_secs(2));
    assert!(daemon.is_running(), "daemon died\n{}", daemon.log());
    let r = obs.command("after", json!({"cmd": "end_show"}));
    assert_eq!(r["ok"], true, "end_show: {r}\n{}", daemon.log());
    assert!(daemon.stop().is_some(), "no exit on SIGTERM");
    assert!(!daemon.log().contains("panicked"), "{}", daemon.log());
}

#[test]
fn a_number_past_its_range_is_refused_before_it_can_overflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "f.toml",
        "[scale]\nkind = \"sim\"\noverlay_s = 9223372036854775807\n",
    );
    let out = check_config(&file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:3: scale.overlay_s: ", file.display())),
        "{err}"
    );
}

#[test]
fn check_config_lists_every_problem_of_a_file_in_one_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "three.toml",
        "device_id = \"farm-01\"\n\
         [video]\nsource = \"test\"\nwidht = 1280\n\
         [gpio]\nbackend = \"sim\"\ngo_live_pin = \"seventeen\"\n\
         [mqtt]\nkeep_alive_s = 100000\n",
    );
    let out = check_config(&file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let f = file.display();
    for want in [
        format!("{f}:4: video.widht: unknown key"),
        format!("{f}:7: gpio.go_live_pin: expected a whole number, found text"),
        format!("{f}:9: mqtt.keep_alive_s: 100000 s is out of range"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn a_64_kb_file_with_thousands_of_problems_is_answered_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 64 * 1024 {
        text.push_str(&format!(
            "[[products]]\nid = \"p {n}\"\nname = 7\nunit = \"g\"\nunit_price = \"x\"\n\
             currency = \"cny\"\nbutton_pin = 99\ncolour = 1\n"
        ));
        n += 1;
    }
    let file = write(dir.path(), "big.toml", &text);
    let t0 = Instant::now();
    let out = check_config(&file);
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("more problem(s) not listed"), "{err}");
    assert!(err.lines().count() < 60, "{} lines", err.lines().count());
    // Generous: the old loader took tens of seconds on such a file.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn switched_off_mqtt_and_unsigned_pushes_are_warnings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "warn.toml",
        "device_id = \"farm-01\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\nenabled = false\n\
         [fleet]\nallow_unsigned = true\n",
    );
    let out = check_config(&file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let f = file.display();
    assert!(
        err.contains(&format!("{f}:4: mqtt.enabled: warning: ")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}:6: fleet.allow_unsigned: warning: any client of the broker"
        )),
        "{err}"
    );
}

#[test]
fn a_written_mqtt_table_without_enabled_connects() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "contract-spy", true, &[&topic("#")]);
    let tc = TestConfig::new().autostart(false);
    let mut t = tc.mqtt_table(broker.port);
    if let Some(toml::Value::Table(m)) = t.get_mut("mqtt") {
        m.remove("enabled");
    }
    let text = toml::to_string(&t).expect("serialise");
    assert!(!text.contains("enabled"), "{text}");
    let daemon = Farmcast::start(&text);
    obs.until(&topic("availability"), WAIT, |m| m.payload == "online");
    let m = common::observer::retained(broker.port, &topic("availability"));
    assert_eq!(m.payload, "online");
    drop(daemon);
}

/// The keys in [`NOT_AT_MAX`] (and all others) at their largest, through the
/// pure conversions the daemon makes from them: durations added to the clock,
/// sizes turned into bytes, encoder, scale, recording budget and lower third.
/// No show needed, so nothing is left out here.
#[test]
fn the_largest_values_survive_the_run_time_conversions() {
    use farmcast::config::ranges::RANGES;
    use std::time::Instant;

    let c: farmcast::config::Config = toml::Value::Table(farmcast::config::ranges::at_max(&[]))
        .try_into()
        .expect("the largest values fit their types");
    let now = Instant::now();
    for r in RANGES {
        let max = r.max as u64;
        match r.unit {
            " ms" => assert!(
                now.checked_add(Duration::from_millis(max)).is_some(),
                "{}",
                r.path
            ),
            " s" => assert!(
                now.checked_add(Duration::from_secs(max)).is_some(),
                "{}",
                r.path
            ),
            " KiB" => assert!(max.checked_mul(1024).is_some(), "{}", r.path),
            " MB" => assert!(max.checked_mul(1_000_000).is_some(), "{}", r.path),
            " kbps" => assert!(max.checked_mul(1000).is_some(), "{}", r.path),
            _ => {}
        }
    }
    assert!(i64::from(c.audio.offset_ms)
        .checked_mul(1_000_000)
        .is_some());
    for element in ["x264enc", "v4l2h264enc", "nvv4l2h264enc"] {
        let _ = farmcast::media::encoder::settings(element, &c.video);
    }
    assert!(farmcast::media::encoder::gop_frames(&c.video) >= 1);
    let _ = farmcast::scale::state::Settings::from_config(&c.scale, false);
    assert!(farmcast::recording::disk::budget_bytes(&c.recording) > 0);
    let _ = farmcast::recording::disk::min_free_bytes(&c.recording);
    let mut lt = farmcast::products::overlay::LowerThird::new(
        Duration::from_secs(c.scale.overlay_s),
        i64::from(c.scale.tolerance_g),
    );
    let record = farmcast::products::tag::TagRecord {
        product_id: "eggs".into(),
        name: "Eggs".into(),
        weight_kg: None,
        unit_price: "18.50".into(),
        price: "18.50".into(),
        currency: "CNY".into(),
        unit: farmcast::config::Unit::Piece,
    };
    lt.show(&record, "Eggs".into(), now);
    assert!(lt.poll_timeout().is_some());
}
