//! Technician commands that must do what they say, judged by their effect
//! and not only by their answer: `tare`, `calibrate_scale` and `tag_product`
//! on a box with the sim scale (the weight, the price, the calibration before
//! and after), and `reconnect_now` on a link whose backoff has grown. The
//! daemon runs as in tests/daemon_mqtt.rs: test camera and tone, sim buttons,
//! a real mosquitto and nginx-rtmp on free loopback ports.

mod common;

use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::observer::{topic, Msg, Observer, WAIT};
use common::{serial, wait_until, Farmcast, Mosquitto, NginxRtmp};
use serde_json::{json, Value};

const SECRET: &str = "SECRET123";

/// The daemon's TOML with the sim scale and one product priced by weight.
fn scale_toml(tc: &TestConfig, mqtt_port: u16) -> String {
    let mut t = tc.mqtt_table(mqtt_port);
    // settle_wait_ms: well over the ~1.3 s the sim needs to settle.
    let extra: toml::Table =
        toml::from_str(common::config::SIM_SCALE_AND_MUSSELS).expect("scale config fragment");
    t.extend(extra);
    toml::to_string(&t).expect("serialise daemon config")
}

/// Puts `kg` on the sim scale and waits until status says it reads `reads`, stable.
fn weigh(obs: &mut Observer, daemon: &mut Farmcast, kg: f64, reads: f64) {
    assert_eq!(daemon.sim(&format!("weight {kg:.3}")), "ok");
    obs.until_json("status", WAIT, |v| {
        v["scale"]["stable"] == true
            && v["scale"]["weight_kg"]
                .as_f64()
                .is_some_and(|w| (w - reads).abs() < 0.0005)
    });
}

/// The next `calibration_changed` event caused by `cause`.
fn calibration_changed(obs: &mut Observer, cause: &str) -> Value {
    obs.until_json("events", WAIT, |v| {
        v["type"] == "calibration_changed" && v["cause"] == cause
    })
}

/// On a box with a scale and a product, `tare`, `tag_product` and
/// `calibrate_scale` must succeed and do what they say: tare moves the
/// offset to what is on the pan, a tag carries the weight and the price,
/// calibration scales the factor; each change is told as an event with the
/// old and the new calibration. A command that cannot be carried out is
/// refused with its reason.
#[test]
fn scale_commands_succeed_with_their_effect() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "tech", true, &["#"]);
    let tc = TestConfig::new().autostart(false);
    let mut daemon = Farmcast::start(&scale_toml(&tc, broker.port));
    obs.wait_standby();

    // Tare with a 0.5 kg bowl: the sim reports grams, so the offset is 500.
    weigh(&mut obs, &mut daemon, 0.5, 0.5);
    let r = obs.command("s-tare", json!({"cmd": "tare"}));
    assert_eq!(r["ok"], true, "tare: {r}");
    let offset = r["result"]["offset"].as_f64().unwrap_or(f64::NAN);
    assert!((offset - 500.0).abs() < 1.0, "tare offset {offset}: {r}");
    let ev = calibration_changed(&mut obs, "tare");
    assert_eq!(
        ev["new"], r["result"],
        "the event's new is the answer: {ev}"
    );
    let old_offset = ev["old"]["offset"].as_f64().unwrap_or(f64::NAN);
    assert!(old_offset.abs() < 1.0, "offset before the tare: {ev}");
    assert_eq!(ev["undo"]["cmd"], "set_calibration", "{ev}");

    // 1.750 kg on the pan is 1.250 kg of produce after the tare: the tag
    // carries that weight and its price.
    weigh(&mut obs, &mut daemon, 1.75, 1.25);
    let r = obs.command(
        "s-tag",
        json!({"cmd": "tag_product", "args": {"product_id": "mussels"}}),
    );
    assert_eq!(r["ok"], true, "tag_product: {r}");
    assert_eq!(r["result"]["price"], "37.50", "tag_product: {r}");
    let ev = obs.until_json("events", WAIT, |v| v["type"] == "product_tagged");
    assert_eq!(
        (
            &ev["product_id"],
            &ev["weight_kg"],
            &ev["unit_price"],
            &ev["price"],
            &ev["currency"]
        ),
        (
            &json!("mussels"),
            &json!("1.250"),
            &json!("30.00"),
            &json!("37.50"),
            &json!("CNY")
        ),
        "{ev}"
    );

    // Calibrating with the 1.250 kg on the pan said to weigh 2.5 kg doubles
    // the factor, and the scale reads 2.5.
    let r = obs.command(
        "s-cal",
        json!({"cmd": "calibrate_scale", "args": {"known_kg": 2.5}}),
    );
    assert_eq!(r["ok"], true, "calibrate_scale: {r}");
    let ev = calibration_changed(&mut obs, "calibrate_scale");
    let (old, new) = (
        ev["old"]["factor"].as_f64().unwrap_or(f64::NAN),
        ev["new"]["factor"].as_f64().unwrap_or(f64::NAN),
    );
    assert!(
        (new / old - 2.0).abs() < 0.01,
        "factor {old} -> {new}: {ev}"
    );
    assert_eq!(ev["new"]["calibrated"], true, "{ev}");
    assert_eq!(
        ev["new"], r["result"],
        "the event's new is the answer: {ev}"
    );
    obs.until_json("status", WAIT, |v| {
        v["scale"]["stable"] == true
            && v["scale"]["weight_kg"]
                .as_f64()
                .is_some_and(|w| (w - 2.5).abs() < 0.0005)
    });

    // Refusals, each with its reason: nothing on the scale to tag or to
    // calibrate against, a known weight of nothing.
    weigh(&mut obs, &mut daemon, 0.5, 0.0);
    let r = obs.command(
        "s-tag-empty",
        json!({"cmd": "tag_product", "args": {"product_id": "mussels"}}),
    );
    assert_eq!(r["ok"], false, "tagged an empty scale: {r}");
    assert!(
        r["error"].as_str().is_some_and(|e| !e.is_empty()) && r.get("result").is_none(),
        "{r}"
    );
    let r = obs.command(
        "s-cal-empty",
        json!({"cmd": "calibrate_scale", "args": {"known_kg": 1.0}}),
    );
    assert_eq!(r["ok"], false, "calibrated against an empty pan: {r}");
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("reads the same")),
        "{r}"
    );
    let r = obs.command(
        "s-cal-zero",
        json!({"cmd": "calibrate_scale", "args": {"known_kg": 0}}),
    );
    assert_eq!(r["ok"], false, "calibrated to nothing: {r}");
    assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    // No refused command changed the calibration.
    obs.drain();
    let stray: Vec<&Msg> = obs
        .backlog
        .iter()
        .filter(|m| m.topic == topic("events") && m.payload.contains("calibration_changed"))
        .collect();
    assert!(
        stray.is_empty(),
        "a refusal changed the calibration: {stray:?}"
    );
}

/// A server on a port that accepts every connection and closes it at once:
/// a link that is reachable but fails (not "refused" or "unreachable", so the
/// daemon does not probe it and leaves the retries to its backoff). Keeps
/// when each connection came.
struct DroppingServer {
    accepts: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DroppingServer {
    fn bind(port: u16) -> DroppingServer {
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the dropping server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let accepts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s) = (accepts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        a.lock().expect("accepts").push(Instant::now());
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        DroppingServer {
            accepts,
            stop,
            thread: Some(thread),
        }
    }

    fn accepts(&self) -> Vec<Instant> {
        self.accepts.lock().expect("accepts").clone()
    }
}

impl Drop for DroppingServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `reconnect_now` retries a destination that is down at once, instead of
/// when its backoff says. The server is replaced by one that drops every
/// connection until the daemon's backoff has grown to several seconds; then
/// the real server is back and `reconnect_now` must publish to it before
/// the backoff's next attempt could have (each delay is at least half its
/// nominal value, and the nominal value doubles: after a gap of G seconds
/// the next attempt is at least G later).
#[test]
fn reconnect_now_retries_a_down_link_before_its_backoff_would() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "tech", true, &["#"]);
    let mut nginx = NginxRtmp::start();
    let tc =
        TestConfig::new()
            .autostart(false)
            .destination("main", &nginx.url("live"), Some(SECRET));
    let mut t = tc.mqtt_table(broker.port);
    if let Some(toml::Value::Table(live)) = t.get_mut("live") {
        // The longest backoff allowed: nothing but reconnect_now retries soon.
        live.insert("reconnect_cap_ms".into(), toml::Value::Integer(60_000));
    }
    let daemon = Farmcast::start(&toml::to_string(&t).expect("config"));
    obs.wait_standby();
    let r = obs.command("n-live", json!({"cmd": "go_live"}));
    assert_eq!(r["ok"], true, "go_live: {r}");
    assert!(
        nginx.wait_for_publishes("live", 1, WAIT),
        "nginx saw no publish after go_live\n{}",
        daemon.log()
    );
    obs.status("live");

    nginx.stop();
    let dropping = DroppingServer::bind(nginx.port);
    // Wait for a gap of GAP between two attempts: the next one is then at
    // least GAP after the last.
    const GAP: Duration = Duration::from_secs(6);
    let grown = wait_until(Duration::from_secs(90), || {
        dropping
            .accepts()
            .windows(2)
            .any(|w| w[1].duration_since(w[0]) >= GAP)
    });
    let accepts = dropping.accepts();
    assert!(
        grown,
        "the backoff never reached {GAP:?} between attempts: {} attempts\n{}",
        accepts.len(),
        daemon.log()
    );
    let last = *accepts.last().expect("an attempt");
    drop(dropping);
    nginx.restart();
    let r = obs.command("n-reconnect", json!({"cmd": "reconnect_now"}));
    assert_eq!(r["ok"], true, "reconnect_now: {r}");
    assert!(
        nginx.wait_for_publishes("live", 2, WAIT),
        "no publish after reconnect_now\n{}",
        daemon.log()
    );
    let back = Instant::now();
    eprintln!(
        "MEASURED published again {:.1} s after the last dropped attempt (the backoff's next: >= {GAP:?})",
        back.duration_since(last).as_secs_f64()
    );
    assert!(
        back < last + GAP,
        "published again {:?} after the last attempt: no sooner than the backoff would have",
        back.duration_since(last)
    );
    obs.status("live");
    obs.drain();
    obs.assert_no_secret(SECRET);
}
