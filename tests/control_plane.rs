//! The technicians' door under attack, end to end: `farmcast run` (test camera,
//! sim buttons and scale, not live) against a real mosquitto, and a test that
//! plays both the careless technician and the stranger on the broker.
//!
//! - a flood of commands and pushes with 64 KB junk fields leaves the daemon's
//!   memory, its log ring and its link intact, and the pushes are rate limited;
//! - a `logs` answer fits what a v5 broker announced it takes;
//! - v5 response topics are honoured only under the device's own topics;
//! - tare, calibration and log level changes are told with old and new value
//!   and undone by the command the event carries; a far calibration needs
//!   `force`; errors cannot be silenced.
//!
//! Tests take `common::serial()` (one encoder at a time on two cores) and wait
//! on conditions with generous deadlines; nothing asserts how fast anything is.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::observer::{retained, short, topic, Observer, WAIT};
use common::{serial, Farmcast, Mosquitto};
use serde_json::{json, Value};

/// The junk in every field of the flood: the size that grew the old daemon by
/// 70 MB over 1,100 messages.
const JUNK_BYTES: usize = 60 * 1024;
const FLOOD: usize = 1_100;

/// The daemon's TOML: not live, a sim scale, `[mqtt]` on `port` speaking
/// `protocol`.
fn daemon_toml(tc: &TestConfig, port: u16, protocol: &str) -> String {
    let mut t = tc.mqtt_table(port);
    if let Some(toml::Value::Table(mqtt)) = t.get_mut("mqtt") {
        mqtt.insert("protocol".into(), toml::Value::String(protocol.into()));
    }
    let extra: toml::Table =
        toml::from_str(common::config::SIM_SCALE_AND_MUSSELS).expect("scale fragment");
    t.extend(extra);
    toml::to_string(&t).expect("serialise daemon config")
}

struct Rig {
    tc: TestConfig,
    daemon: Farmcast,
    obs: Observer,
}

impl Rig {
    fn start(broker: &Mosquitto, protocol: &str) -> Rig {
        let tc = TestConfig::new().autostart(false);
        let daemon = Farmcast::start(&daemon_toml(&tc, broker.port, protocol));
        let mut obs = Observer::new(
            broker.port,
            "technician",
            true,
            &[
                &topic("availability"),
                &topic("status"),
                &topic("events"),
                &topic("cmd/result"),
                &topic("config/reported"),
            ],
        );
        obs.wait_standby();
        Rig { tc, daemon, obs }
    }

    fn rss_kb(&self) -> u64 {
        let pid = self.daemon.pid().expect("daemon pid");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// The next event of `kind`.
    fn event(&mut self, kind: &str) -> Value {
        self.obs.until_json("events", WAIT, |v| v["type"] == kind)
    }

    /// The box still answers: `online` retained, and a command answered.
    fn assert_reachable(&mut self, port: u16, id: &str) {
        assert_eq!(
            retained(port, &topic("availability")).payload,
            "online",
            "the box fell off the broker"
        );
        // The limiter may still be refilling after a flood: an answer of
        // `rate limited` is an answer; a real one must follow within 10 s.
        let mut r = Value::Null;
        for attempt in 0..20 {
            r = self.obs.command(
                &format!("{id}-{attempt}"),
                json!({"cmd": "logs", "args": {"lines": 1}}),
            );
            if r["error"] != "rate limited" {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        assert_eq!(r["ok"], true, "{r}");
    }
}

// ---------------------------------------------------------------------------
// Floods and packet sizes
// ---------------------------------------------------------------------------

#[test]
fn a_flood_of_junk_keeps_memory_the_log_ring_and_the_link_bounded() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut rig = Rig::start(&broker, "v4");
    // Let start-up allocations settle before the baseline.
    std::thread::sleep(Duration::from_secs(3));
    let before = rig.rss_kb();

    let junk = "j".repeat(JUNK_BYTES);
    let flood_started = Instant::now();
    for i in 0..FLOOD {
        let cmd = match i % 3 {
            0 => json!({"id": format!("f{i}"), "cmd": "tag_product", "args": {"product_id": junk}}),
            1 => json!({"id": format!("f{i}"), "cmd": junk, "args": 3}),
            _ => json!({"id": format!("f{i}"), "cmd": "set_log_level", "args": {"level": junk}}),
        };
        rig.obs.publish(&topic("cmd"), cmd.to_string());
        // A push the box must refuse, each one different (a new hash).
        let envelope = json!({
            "version": i + 1,
            "target": junk,
            "config": "[video]\nbitrate_kbps = 900\n",
            "signature": "",
        });
        rig.obs
            .publish(&topic("config/desired"), envelope.to_string());
    }
    // Everything sent has arrived once a command sent after it is answered;
    // the rate limiter answers the first ones while its bucket refills.
    let mut r = Value::Null;
    for attempt in 0..20 {
        r = rig.obs.command(
            &format!("after-flood-{attempt}"),
            json!({"cmd": "logs", "args": {"lines": 1000}}),
        );
        if r["error"] != "rate limited" {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let flood_s = flood_started.elapsed().as_secs_f64();
    assert_eq!(
        r["ok"],
        true,
        "logs after the flood: {}",
        short(&r.to_string())
    );
    let lines = r["result"]["lines"].as_array().cloned().unwrap_or_default();
    assert!(!lines.is_empty(), "no log lines: {}", short(&r.to_string()));
    let longest = lines
        .iter()
        .map(|l| l.as_str().unwrap_or_default().len())
        .max()
        .unwrap_or(0);
    assert!(longest <= 2048, "a log line of {longest} bytes");
    let text = r.to_string();
    assert!(
        text.len() <= 300 * 1024,
        "logs answer of {} bytes",
        text.len()
    );
    rig.assert_reachable(broker.port, "still-there");
    let grown_kb = rig.rss_kb().saturating_sub(before);
    eprintln!(
        "flood: {FLOOD} commands + {FLOOD} pushes in {flood_s:.1} s, RSS +{grown_kb} kB, logs answer {} bytes",
        text.len()
    );

    // The pushes were rate limited: the driver judged a few, not 1,100.
    rig.obs.drain();
    let reported = rig.obs.pending("config/reported").len();
    // A burst of 20, then 2 a second (src/mqtt/client.rs), with 5 s of slack.
    let allowed = 20.0 + 2.0 * (flood_s + 5.0);
    assert!(
        (reported as f64) <= allowed,
        "{reported} pushes judged in {flood_s:.1} s; the limit allows {allowed:.0}"
    );
    let status = rig.obs.until_json("status", WAIT, |v| {
        v["mqtt"]["desired_dropped"].as_u64().unwrap_or(0) > 0
    });
    assert!(
        status["mqtt"]["commands_limited"].as_u64().unwrap_or(0) > 0,
        "{status}"
    );

    assert!(
        grown_kb < 20 * 1024,
        "the daemon grew by {} MB over the flood",
        grown_kb / 1024
    );
    // Every echo of the junk in the log is an excerpt: commands, refusals
    // and the fleet's rejection reports alike.
    let log = rig.daemon.log();
    let worst = log.lines().map(str::len).max().unwrap_or(0);
    assert!(worst < 1024, "a daemon log line of {worst} bytes");
}

/// (topic, payload, correlation data) as a v5 client received it.
type V5Msg = (String, String, Option<Vec<u8>>);

/// A v5 client: its messages (topic, payload, correlation data) arrive on the
/// receiver; returns once `subs` are acknowledged.
fn v5_client(port: u16, id: &str, subs: &[&str]) -> (rumqttc::v5::Client, mpsc::Receiver<V5Msg>) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::Event;
    let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(Some(1 << 20));
    let (client, mut conn) = rumqttc::v5::Client::new(o, 64);
    let (tx, rx) = mpsc::channel();
    let (ack_tx, ack_rx) = mpsc::channel();
    let subs: Vec<String> = subs.iter().map(|s| s.to_string()).collect();
    let n = subs.len();
    let sub = client.clone();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for t in &subs {
                        let _ = sub.try_subscribe(t.as_str(), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ack_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let corr = p
                        .properties
                        .and_then(|pr| pr.correlation_data)
                        .map(|b| b.to_vec());
                    let m = (
                        String::from_utf8_lossy(&p.topic).into_owned(),
                        String::from_utf8_lossy(&p.payload).into_owned(),
                        corr,
                    );
                    if tx.send(m).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    for _ in 0..n {
        ack_rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("v5 client {id}: subscriptions never acknowledged"));
    }
    (client, rx)
}

/// Publishes a v5 request with a response topic and correlation data.
fn v5_request(client: &rumqttc::v5::Client, payload: Value, response_topic: &str, corr: &[u8]) {
    let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
        response_topic: Some(response_topic.into()),
        correlation_data: Some(corr.to_vec().into()),
        ..Default::default()
    };
    client
        .publish_with_properties(
            topic("cmd"),
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            payload.to_string(),
            props,
        )
        .expect("v5 publish");
}

/// The next message on `topic` within `within`, other topics set aside.
fn next_on(
    rx: &mpsc::Receiver<V5Msg>,
    seen: &mut Vec<V5Msg>,
    topic: &str,
    within: Duration,
) -> Option<V5Msg> {
    if let Some(i) = seen.iter().position(|m| m.0 == topic) {
        return Some(seen.remove(i));
    }
    let deadline = Instant::now() + within;
    while let Ok(m) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if m.0 == topic {
            return Some(m);
        }
        seen.push(m);
    }
    None
}

#[test]
fn v5_answers_fit_the_broker_and_go_only_to_the_devices_own_topics() {
    let _g = serial();
    // A broker that takes packets of 8 KB at most, and says so in its ConnAck.
    let broker = Mosquitto::start_with(true, "max_packet_size 8192");
    let mut rig = Rig::start(&broker, "v5");
    let result_topic = topic("cmd/result");
    let own_inbox = topic("cmd/result/tech-7");
    let (client, rx) = v5_client(
        broker.port,
        "stranger",
        &["attacker/inbox", &result_topic, &own_inbox],
    );
    let mut seen = Vec::new();

    // A response topic outside the device: answered on cmd/result only.
    v5_request(
        &client,
        json!({"id": "out", "cmd": "logs", "args": {"lines": 1}}),
        "attacker/inbox",
        b"c-out",
    );
    let (_, payload, _) =
        next_on(&rx, &mut seen, &result_topic, WAIT).expect("no answer on cmd/result");
    assert!(payload.contains("\"out\""), "{payload}");
    // The box answers the response topic before cmd/result, on one
    // connection, so anything sent there has arrived by now.
    assert!(
        next_on(&rx, &mut seen, "attacker/inbox", Duration::from_millis(500)).is_none(),
        "the box wrote to a stranger's topic"
    );

    // Under the device's own prefix: honoured, with the correlation data.
    v5_request(
        &client,
        json!({"id": "own", "cmd": "logs", "args": {"lines": 1}}),
        &own_inbox,
        b"c-own",
    );
    let (_, payload, corr) =
        next_on(&rx, &mut seen, &own_inbox, WAIT).expect("no answer on the own response topic");
    assert!(payload.contains("\"own\""), "{payload}");
    assert_eq!(corr.as_deref(), Some(&b"c-own"[..]));

    // Fill the log ring past what one packet takes, then ask for all of it.
    for i in 0..60 {
        let id = format!("fill-{i}-{}", "x".repeat(100));
        rig.obs.publish(
            &topic("cmd"),
            json!({"id": id, "cmd": "tag_product", "args": {"product_id": "x".repeat(120)}})
                .to_string(),
        );
        std::thread::sleep(Duration::from_millis(120));
    }
    let r = rig
        .obs
        .command("all-logs", json!({"cmd": "logs", "args": {"lines": 1000}}));
    assert_eq!(r["ok"], true, "{}", short(&r.to_string()));
    assert_eq!(r["result"]["cut"], true, "{}", short(&r.to_string()));
    let n = r["result"]["lines"].as_array().map_or(0, Vec::len);
    assert!(n > 5, "only {n} lines");
    assert!(r.to_string().len() <= 8192, "{} bytes", r.to_string().len());
    rig.assert_reachable(broker.port, "after-logs");
    drop(client);
}

// ---------------------------------------------------------------------------
// Lasting changes: told, bounded, undoable
// ---------------------------------------------------------------------------

fn calibration_file(rig: &Rig) -> Value {
    let path = rig.tc.state_dir().join("scale").join("calibration.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default()).unwrap_or(Value::Null)
}

fn weigh(rig: &mut Rig, kg: f64) {
    assert_eq!(rig.daemon.sim(&format!("weight {kg:.3}")), "ok");
}

fn stable_at(rig: &mut Rig, kg: f64) {
    rig.obs.until_json("status", WAIT, |v| {
        v["scale"]["stable"] == true
            && v["scale"]["weight_kg"]
                .as_f64()
                .is_some_and(|w| (w - kg).abs() < 0.01)
    });
}

/// Sends the `undo` command an event carries and returns its answer.
fn undo(rig: &mut Rig, event: &Value, id: &str) -> Value {
    let cmd = event["undo"].clone();
    assert!(cmd["cmd"].is_string(), "no undo in {event}");
    rig.obs.command(id, cmd)
}

#[test]
fn tare_and_calibration_are_told_bounded_and_undone() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut rig = Rig::start(&broker, "v4");

    weigh(&mut rig, 0.5);
    stable_at(&mut rig, 0.5);
    let r = rig.obs.command("tare", json!({"cmd": "tare"}));
    assert_eq!(r["ok"], true, "{r}");
    let ev = rig.event("calibration_changed");
    assert_eq!(ev["cause"], "tare", "{ev}");
    assert_eq!(ev["old"]["offset"], 0.0, "{ev}");
    assert!(
        (ev["new"]["offset"].as_f64().unwrap_or(0.0) - 500.0).abs() < 1.0,
        "{ev}"
    );

    // First calibration: 1.25 kg on the pan (after tare) said to be 2.5 kg.
    weigh(&mut rig, 1.75);
    stable_at(&mut rig, 1.25);
    let r = rig.obs.command(
        "cal",
        json!({"cmd": "calibrate_scale", "args": {"known_kg": 2.5}}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let first = rig.event("calibration_changed");
    assert!(
        (first["new"]["factor"].as_f64().unwrap_or(0.0) - 2.0).abs() < 0.01,
        "{first}"
    );
    stable_at(&mut rig, 2.5);

    // Four times that: refused without force, the calibration untouched.
    let r = rig.obs.command(
        "far",
        json!({"cmd": "calibrate_scale", "args": {"known_kg": 10.0}}),
    );
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"].as_str().unwrap_or_default().contains("force"),
        "{r}"
    );
    assert!((calibration_file(&rig)["factor"].as_f64().unwrap_or(0.0) - 2.0).abs() < 0.01);

    stable_at(&mut rig, 2.5);
    let r = rig.obs.command(
        "far-forced",
        json!({"cmd": "calibrate_scale", "args": {"known_kg": 10.0, "force": true}}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let forced = rig.event("calibration_changed");
    assert!(
        (forced["old"]["factor"].as_f64().unwrap_or(0.0) - 2.0).abs() < 0.01,
        "{forced}"
    );
    assert!(
        (forced["new"]["factor"].as_f64().unwrap_or(0.0) - 8.0).abs() < 0.05,
        "{forced}"
    );
    stable_at(&mut rig, 10.0);

    // The event's undo puts the old calibration back, file and weight.
    let r = undo(&mut rig, &forced, "undo");
    assert_eq!(r["ok"], true, "{r}");
    let back = rig.event("calibration_changed");
    assert_eq!(back["cause"], "set_calibration", "{back}");
    assert_eq!(back["new"], forced["old"], "{back}");
    assert_eq!(calibration_file(&rig), forced["old"]);
    stable_at(&mut rig, 2.5);
}

#[test]
fn log_level_changes_are_told_undone_and_never_silence_errors() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut rig = Rig::start(&broker, "v4");

    for spec in [
        "off",
        "info,farmcast=off",
        "rumqttc=debug",
        "info,farmcast::app=off",
    ] {
        let r = rig.obs.command(
            &format!("silence-{spec}"),
            json!({"cmd": "set_log_level", "args": {"level": spec}}),
        );
        assert_eq!(r["ok"], false, "{spec} accepted: {r}");
        assert!(
            r["error"].as_str().unwrap_or_default().contains("error"),
            "{spec}: {r}"
        );
    }
    let r = rig.obs.command(
        "debug",
        json!({"cmd": "set_log_level", "args": {"level": "debug"}}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let ev = rig.event("log_level_changed");
    assert_eq!(
        (ev["old"].as_str(), ev["new"].as_str()),
        (Some("info"), Some("debug")),
        "{ev}"
    );
    let r = undo(&mut rig, &ev, "undo-level");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["level"], "info", "{r}");
    let ev = rig.event("log_level_changed");
    assert_eq!(ev["new"], "info", "{ev}");
    // Errors still reach the log the technician reads.
    let r = rig.obs.command(
        "bad-tag",
        json!({"cmd": "tag_product", "args": {"product_id": "nothing-like-it"}}),
    );
    assert_eq!(r["ok"], false, "{r}");
    let logs = rig
        .obs
        .command("logs", json!({"cmd": "logs", "args": {"lines": 50}}));
    assert!(
        logs.to_string().contains("nothing-like-it"),
        "{}",
        short(&logs.to_string())
    );
}
