//! The daemon end to end over a real mosquitto: `farmcast run` with the test
//! camera and tone (320x240, 15 fps, x264 ultrafast), sim buttons, one
//! nginx-rtmp destination whose stream key is a secret, and `[mqtt]` pointed at
//! a broker on a free loopback port.
//!
//! The test's hand on the MQTT side is `common::observer::Observer`; it keeps
//! every message it ever saw, so that each test can check at the end that the
//! stream key never went out on any topic. Tests take
//! `common::serial()` (one encoder at a time on two cores) and wait on
//! conditions with generous deadlines; nothing asserts how fast anything is.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::config::TestConfig;
use common::observer::{retained, short, topic, Msg, Observer, DEVICE, WAIT};
use common::{serial, wait_until, Farmcast, Mosquitto, NginxRtmp};
use farmcast::mqtt::commands::KNOWN_COMMANDS;
use serde_json::{json, Value};

const SECRET: &str = "SECRET123";

// ---------------------------------------------------------------------------
// The daemon and its servers
// ---------------------------------------------------------------------------

/// The daemon's TOML: the harness's streaming config at 15 fps, not live at
/// start, with a state dir and `[mqtt]` on `mqtt_port`.
fn daemon_toml(tc: &TestConfig, mqtt_port: u16) -> String {
    let mut t = tc.mqtt_table(mqtt_port);
    if let Some(toml::Value::Table(video)) = t.get_mut("video") {
        video.insert("framerate".into(), toml::Value::Integer(15));
    }
    toml::to_string(&t).expect("serialise daemon config")
}

struct Rig {
    nginx: NginxRtmp,
    // Keeps the temp dir (recordings, sim socket, state) alive.
    _tc: TestConfig,
    daemon: Farmcast,
}

impl Rig {
    /// nginx, then the daemon on `mqtt_port`, not live.
    fn start(mqtt_port: u16) -> Rig {
        let nginx = NginxRtmp::start();
        let tc = TestConfig::new().autostart(false).destination(
            "main",
            &nginx.url("live"),
            Some(SECRET),
        );
        let daemon = Farmcast::start(&daemon_toml(&tc, mqtt_port));
        Rig {
            nginx,
            _tc: tc,
            daemon,
        }
    }

    fn assert_log_has_no_secret(&self) {
        let log = self.daemon.log();
        assert!(
            !log.contains(SECRET),
            "the stream key is in the daemon's log"
        );
    }
}

/// `go_live` by command, then the server sees the publish and status says live.
fn go_live(obs: &mut Observer, rig: &Rig, id: &str) {
    let r = obs.command(id, json!({"cmd": "go_live"}));
    assert_eq!(r["ok"], true, "go_live: {r}");
    let state = r["result"]["state"].as_str().unwrap_or_default();
    assert!(
        ["connecting", "live"].contains(&state),
        "go_live answered state {state}: {r}"
    );
    assert!(
        rig.nginx.wait_for_publishes("live", 1, WAIT),
        "nginx saw no publish after go_live; nginx log: {}",
        rig.nginx.error_log()
    );
    obs.status("live");
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn online_and_retained_status_without_secrets() {
    let _g = serial();
    let broker = Mosquitto::start();
    // Subscribed to everything before the daemon starts: sees all it sends.
    let mut spy = Observer::new(broker.port, "spy", true, &["#"]);
    let rig = Rig::start(broker.port);
    spy.wait_standby();

    let avail = retained(broker.port, &topic("availability"));
    assert_eq!(avail.payload, "online");
    let st = retained(broker.port, &topic("status")).json();
    assert_eq!(st["state"], "standby", "{st}");
    assert_eq!(st["device_id"], DEVICE, "{st}");
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"), "{st}");
    assert!(st["uptime_s"].is_u64(), "{st}");
    assert!(st["config_version"].is_u64(), "{st}");
    assert_eq!(st["video"]["encoder"], "x264enc", "{st}");
    assert!(st["video"]["fps"].is_number(), "{st}");
    // The encoder's target: standby encodes at the rate the next show
    // starts at (nothing remembered: a quarter of 600, held at the 200 floor).
    assert_eq!(st["video"]["bitrate_kbps"], 200, "{st}");
    let dests = st["destinations"].as_array().expect("destinations array");
    assert_eq!(dests.len(), 1, "{st}");
    assert_eq!(dests[0]["name"], "main", "{st}");
    assert_eq!(dests[0]["state"], "idle", "{st}");
    assert!(dests[0]["bitrate_kbps"].is_number(), "{st}");
    assert!(st["scale"].is_object(), "{st}");

    // A status update later (interval 1 s) still carries no secret either.
    let first_uptime = st["uptime_s"].as_u64().unwrap_or(0);
    spy.until(&topic("status"), WAIT, |m| {
        serde_json::from_str::<Value>(&m.payload)
            .is_ok_and(|v| v["uptime_s"].as_u64().unwrap_or(0) > first_uptime)
    });
    spy.drain();
    spy.assert_no_secret(SECRET);
    rig.assert_log_has_no_secret();
}

#[test]
fn every_command_is_answered_end_to_end() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "tech", true, &["#"]);
    let rig = Rig::start(broker.port);
    obs.wait_standby();

    go_live(&mut obs, &rig, "c-live");

    let r = obs.command("c-snap", json!({"cmd": "snapshot"}));
    assert_eq!(r["ok"], true, "snapshot: {}", short(&r.to_string()));
    let b64 = r["result"]["jpeg_base64"].as_str().expect("jpeg_base64");
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("snapshot is base64");
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    assert!(jpeg.len() < 100 * 1024, "snapshot is {} bytes", jpeg.len());

    let r = obs.command("c-probe", json!({"cmd": "probe"}));
    assert_eq!(r["ok"], true, "probe: {r}");
    let encoders: Vec<&str> = r["result"]["encoders"]["present"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["element"].as_str()).collect())
        .unwrap_or_default();
    assert!(encoders.contains(&"x264enc"), "probe: {r}");

    // restart_pipeline rebuilds the camera pipeline (the show machine's
    // RestartCapture): the daemon logs one more "camera pipeline" line, and
    // the show goes on over it.
    let camera_starts = |d: &Farmcast| d.log().matches("camera pipeline").count();
    let before = camera_starts(&rig.daemon);
    assert!(before >= 1, "no camera pipeline line before the restart");
    let r = obs.command("c-restart", json!({"cmd": "restart_pipeline"}));
    assert_eq!(r["ok"], true, "restart_pipeline: {r}");
    assert!(
        wait_until(WAIT, || camera_starts(&rig.daemon) > before),
        "restart_pipeline did not rebuild the camera pipeline ({before} starts before, {} after)",
        camera_starts(&rig.daemon)
    );
    assert!(
        rig.nginx.media_flows(),
        "no media at the server after restart_pipeline"
    );
    // reconnect_now retries every destination that is down at once (the
    // show machine's table: Reconnecting + reconnect → Connect); a link that
    // is up is left alone. Here the link is up: the answer is live and the
    // server sees no second publish, i.e. the command did not cut the show.
    let r = obs.command("c-reconnect", json!({"cmd": "reconnect_now"}));
    assert_eq!(r["ok"], true, "reconnect_now: {r}");
    assert_eq!(r["result"]["state"], "live", "reconnect_now: {r}");
    assert!(
        rig.nginx.media_flows(),
        "no media at the server after reconnect_now"
    );
    assert_eq!(
        rig.nginx.publish_times("live").len(),
        1,
        "reconnect_now on a healthy link re-published the stream"
    );

    let r = obs.command(
        "c-debug",
        json!({"cmd": "set_log_level", "args": {"level": "debug"}}),
    );
    assert_eq!(r["ok"], true, "set_log_level debug: {r}");
    let r = obs.command(
        "c-info",
        json!({"cmd": "set_log_level", "args": {"level": "info"}}),
    );
    assert_eq!(r["ok"], true, "set_log_level info: {r}");

    let r = obs.command("c-logs", json!({"cmd": "logs", "args": {"lines": 5}}));
    assert_eq!(r["ok"], true, "logs: {r}");
    let lines = r["result"]["lines"].as_array().expect("lines is an array");
    assert!(!lines.is_empty() && lines.len() <= 5, "logs: {r}");
    assert!(lines.iter().all(Value::is_string), "logs: {r}");

    // This box has no scale (`scale.kind = "none"`) and no products: the
    // scale commands are refused, each with its reason.
    // (tests/daemon_commands.rs has the box with a scale.)
    for (id, cmd, reason) in [
        (
            "c-tag",
            json!({"cmd": "tag_product", "args": {"product_id": "mussels"}}),
            "mussels",
        ),
        ("c-tare", json!({"cmd": "tare"}), "no scale"),
        (
            "c-cal",
            json!({"cmd": "calibrate_scale", "args": {"known_kg": 1.0}}),
            "no scale",
        ),
    ] {
        let r = obs.command(id, cmd);
        assert_eq!(
            r["ok"], false,
            "{id} succeeded on a box without a scale: {r}"
        );
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains(reason)),
            "{id}: the refusal does not say {reason:?}: {r}"
        );
        assert!(
            r.get("result").is_none(),
            "{id}: a refusal with a result: {r}"
        );
    }

    let r = obs.command("c-end", json!({"cmd": "end_show"}));
    assert_eq!(r["ok"], true, "end_show: {r}");
    assert!(
        rig.nginx.wait_idle(WAIT),
        "nginx still sees a publish after end_show"
    );
    obs.status("standby");

    obs.drain();
    obs.assert_no_secret(SECRET);
    rig.assert_log_has_no_secret();
}

/// `set_log_level` with a string that is no level or filter must be refused,
/// not applied: tracing's `EnvFilter` would read a word that is no level as a
/// *target* name, and the daemon's log (and `logs`) would go silent.
#[test]
fn set_log_level_refuses_junk() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "tech", true, &["#"]);
    let rig = Rig::start(broker.port);
    obs.wait_standby();
    let r = obs.command(
        "l-junk",
        json!({"cmd": "set_log_level", "args": {"level": "not a level!!"}}),
    );
    assert_eq!(r["ok"], false, "set_log_level accepted junk: {r}");
    assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    // The log still works afterwards: a later command is logged.
    let r = obs.command("l-after", json!({"cmd": "logs", "args": {"lines": 50}}));
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        wait_until(Duration::from_secs(5), || rig
            .daemon
            .log()
            .contains("l-after")),
        "the daemon stopped logging after set_log_level junk"
    );
}

#[test]
fn bad_commands_are_answered_and_the_stream_goes_on() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "tech", true, &["#"]);
    let mut rig = Rig::start(broker.port);
    obs.wait_standby();
    go_live(&mut obs, &rig, "b-live");
    assert!(rig.nginx.media_flows(), "no media at the server once live");

    // Malformed, no id: no answer. The client handles commands in order, so any
    // answer to these would be on cmd/result before the answer to the next one.
    obs.publish(&topic("cmd"), "{\"cmd\": \"go_live\", oops");
    obs.publish(&topic("cmd"), "not json at all");
    let r = obs.command("b-good-1", json!({"cmd": "logs", "args": {"lines": 1}}));
    assert_eq!(r["ok"], true, "{r}");
    obs.drain();
    let stray: Vec<&Msg> = obs
        .backlog
        .iter()
        .filter(|m| m.topic == topic("cmd/result"))
        .collect();
    assert!(stray.is_empty(), "answers to id-less garbage: {stray:?}");

    let r = obs.command("x", json!({"cmd": "nope"}));
    assert_eq!(r["ok"], false, "{r}");
    let err = r["error"].as_str().unwrap_or_default();
    for known in KNOWN_COMMANDS {
        assert!(
            err.contains(known),
            "unknown-command error lacks {known}: {r}"
        );
    }

    let r = obs.command(
        "b-types",
        json!({"cmd": "tag_product", "args": {"product_id": 5}}),
    );
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or_default()
            .contains("product_id"),
        "{r}"
    );

    let r = obs.command(
        "b-big",
        json!({"cmd": "logs", "pad": "x".repeat(70 * 1024)}),
    );
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or_default()
            .contains("too large"),
        "{r}"
    );
    assert!(
        rig.nginx.is_publishing(),
        "stream stopped after bad commands"
    );

    // A burst of 200: the limiter answers the excess with a refusal.
    const FLOOD: usize = 200;
    for i in 0..FLOOD {
        let cmd = json!({"id": format!("f-{i}"), "cmd": "logs", "args": {"lines": 1}});
        obs.publish(&topic("cmd"), cmd.to_string());
    }
    let first_limited = obs.until(&topic("cmd/result"), WAIT, |m| {
        serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| v["error"] == "rate limited")
    });
    // Let the rest of the burst's answers come in (quiet for 2 s), then judge them.
    let mut answers = vec![first_limited];
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(2) {
        obs.drain();
        let (flood, rest): (Vec<Msg>, Vec<Msg>) = obs
            .backlog
            .drain(..)
            .partition(|m| m.topic == topic("cmd/result") && m.payload.contains("\"f-"));
        obs.backlog = rest;
        if !flood.is_empty() {
            quiet_since = Instant::now();
            answers.extend(flood);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut limited = 0;
    for m in &answers {
        let v = m.json();
        let id = v["id"].as_str().unwrap_or_default();
        assert!(id.starts_with("f-"), "{}", m.payload);
        match (v["ok"].as_bool(), v["error"].as_str()) {
            (Some(true), _) => {}
            (Some(false), Some("rate limited")) => limited += 1,
            (Some(false), Some(e)) if e.contains("busy") => {}
            _ => panic!("unexpected answer in the flood: {}", short(&m.payload)),
        }
    }
    assert!(
        limited >= 1,
        "no rate-limit refusal among {} answers",
        answers.len()
    );
    assert!(
        answers.len() <= FLOOD,
        "{} answers to {FLOOD} commands",
        answers.len()
    );

    // Afterwards the daemon answers again (once the bucket has refilled).
    let mut answered = false;
    for n in 0..10 {
        let r = obs.command(
            &format!("b-after-{n}"),
            json!({"cmd": "logs", "args": {"lines": 1}}),
        );
        if r["ok"] == true {
            answered = true;
            break;
        }
        assert_eq!(r["error"], "rate limited", "{r}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        answered,
        "the daemon never answered a good command after the flood"
    );

    // The stream never stopped: still flowing, still the first and only publish.
    assert!(
        rig.nginx.media_flows(),
        "no media at the server after the flood"
    );
    assert_eq!(
        rig.nginx.publish_times("live").len(),
        1,
        "the stream was re-published: it stopped at some point"
    );
    assert!(rig.daemon.is_running());
    obs.drain();
    obs.assert_no_secret(SECRET);
    rig.assert_log_has_no_secret();
}

#[test]
fn last_will_is_offline_after_sigkill() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "tech", true, &[&topic("availability")]);
    let mut rig = Rig::start(broker.port);
    obs.until(&topic("availability"), WAIT, |m| m.payload == "online");
    rig.daemon.kill_with(libc::SIGKILL);
    assert!(
        rig.daemon.wait_exit(Duration::from_secs(10)).is_some(),
        "the daemon survived SIGKILL"
    );
    obs.until(&topic("availability"), WAIT, |m| m.payload == "offline");
    let m = retained(broker.port, &topic("availability"));
    assert_eq!(m.payload, "offline");
}

// ---------------------------------------------------------------------------
// Broker restart
// ---------------------------------------------------------------------------

/// Events as delivered, with at-least-once repeats (identical payloads) removed.
fn dedup(events: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for e in events {
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    out
}

fn position(events: &[Value], what: &str, pred: impl Fn(&Value) -> bool) -> usize {
    events
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("no {what} among the events {events:#?}"))
}

#[test]
fn reconnects_after_broker_restart_and_delivers_outage_events_in_order() {
    let _g = serial();
    let mut broker = Mosquitto::start_persistent();
    let mut obs = Observer::new(
        broker.port,
        "tech-persistent",
        false,
        &[
            &topic("availability"),
            &topic("events"),
            &topic("status"),
            &topic("cmd/result"),
        ],
    );
    let mut rig = Rig::start(broker.port);
    obs.wait_standby();
    go_live(&mut obs, &rig, "r-live");
    // Everything about the first show has arrived; only the outage's events
    // are looked at below.
    let live_event = obs.until(&topic("events"), WAIT, |m| {
        serde_json::from_str::<Value>(&m.payload)
            .is_ok_and(|v| v["type"] == "state_changed" && v["to"] == "live")
    });
    assert!(
        wait_until(WAIT, || broker.db_exists()),
        "mosquitto never saved its state: {}",
        broker.log()
    );
    obs.drain();
    // Events are delivered at least once: those told before the outage whose
    // acknowledgement the killed broker took with it come again after it.
    // They are the same messages, stamps included; they are not the
    // outage's events.
    let told_before: std::collections::HashSet<String> = obs
        .backlog
        .iter()
        .filter(|m| m.topic == topic("events"))
        .map(|m| m.payload.clone())
        .chain(std::iter::once(live_event.payload.clone()))
        .collect();
    // The newest status before the outage: the retained one the broker keeps
    // over its restart is at most a second newer.
    let uptime_before = obs
        .backlog
        .iter()
        .filter(|m| m.topic == topic("status"))
        .filter_map(|m| serde_json::from_str::<Value>(&m.payload).ok())
        .filter_map(|v| v["uptime_s"].as_u64())
        .max()
        .unwrap_or(0);
    obs.backlog.clear();

    broker.kill();
    let outage = Instant::now();
    // During the outage the farmer ends the show with a long press, then starts
    // a new one with a short press (retried: a press while the first show is
    // still stopping is ignored by design).
    assert_eq!(rig.daemon.sim("hold go_live 2.5"), "ok");
    assert!(
        rig.nginx.wait_idle(WAIT),
        "the long press did not end the show"
    );
    let mut relive = false;
    for _ in 0..5 {
        assert_eq!(rig.daemon.sim("press go_live"), "ok");
        if rig
            .nginx
            .wait_for_publishes("live", 2, Duration::from_secs(5))
        {
            relive = true;
            break;
        }
    }
    assert!(relive, "the short press did not start a new show");
    assert!(rig.daemon.is_running());
    // Long enough that the daemon's own status after the outage is told apart
    // from the retained one the broker restored (uptime at least 2 s newer).
    while outage.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.launch();

    // Every event of the outage arrives, in the order it happened.
    let mut events: Vec<Value> = Vec::new();
    let mut live_again = false;
    while !live_again {
        let m = obs.until(&topic("events"), WAIT, |_| true);
        if told_before.contains(&m.payload) {
            continue;
        }
        let v = m.json();
        assert!(
            v["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "event without an RFC 3339 ts: {v}"
        );
        live_again = v["type"] == "state_changed"
            && v["to"] == "live"
            && events.iter().any(|e| e["type"] == "live_stopped");
        events.push(v);
    }
    let events = dedup(&events);
    let changed = |from: &'static str, to: &'static str| {
        move |e: &Value| e["type"] == "state_changed" && e["from"] == from && e["to"] == to
    };
    let to_stopping = position(&events, "live → stopping", changed("live", "stopping"));
    let to_standby = position(
        &events,
        "stopping → standby",
        changed("stopping", "standby"),
    );
    let to_connecting = position(
        &events,
        "standby → connecting",
        changed("standby", "connecting"),
    );
    let to_live = position(&events, "connecting → live", changed("connecting", "live"));
    let stopped = position(&events, "live_stopped", |e| {
        e["type"] == "live_stopped" && e["show_id"] == "show-0001" && e["reason"] == "long_press"
    });
    let started = position(&events, "live_started of show 2", |e| {
        e["type"] == "live_started" && e["show_id"] == "show-0002"
    });
    assert!(
        to_stopping < to_standby && to_standby < to_connecting && to_connecting < to_live,
        "state changes out of order: {events:#?}"
    );
    assert!(
        stopped < started,
        "show 2 started before show 1 stopped: {events:#?}"
    );
    let ts: Vec<&str> = events.iter().filter_map(|e| e["ts"].as_str()).collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "events delivered out of time order: {ts:?}"
    );

    // Status is published again by the daemon itself (the restored retained one
    // is from before the outage, with a smaller uptime), retained, live.
    let fresh = uptime_before + 2;
    let st = obs
        .until(&topic("status"), WAIT, |m| {
            serde_json::from_str::<Value>(&m.payload)
                .is_ok_and(|v| v["state"] == "live" && v["uptime_s"].as_u64().unwrap_or(0) >= fresh)
        })
        .json();
    assert_eq!(st["destinations"][0]["state"], "up", "{st}");
    let st = retained(broker.port, &topic("status")).json();
    assert_eq!(st["state"], "live", "{st}");
    assert!(st["uptime_s"].as_u64().unwrap_or(0) >= fresh, "{st}");
    assert!(
        rig.nginx.media_flows(),
        "no media at the server after the outage"
    );
    obs.assert_no_secret(SECRET);
}
