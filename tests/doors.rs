//! Every door of the box gets the same hostile input, end to end: a real
//! mosquitto, the real `farmcast run` (sim buttons and scale, not live), and
//! 60 KB of junk (with control characters and a would-be stream key) through
//! the sim socket, every MQTT command field, the device and group config
//! topics, a product id, a scale reading and a config file.
//!
//! What each door must do: answer (or refuse) in bounded time, with an answer
//! whose size does not depend on the junk, write no log line that carries the
//! junk, and leave the box reachable and its show machine working. The doors'
//! own tests (control_plane, fleet_hostile, config_hostile, secrets) go deep
//! on each; this one makes sure no door was forgotten.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::config::TestConfig;
use common::farmcast::check_config;
use common::observer::{retained, short, topic, Observer, PREFIX, WAIT};
use common::{serial, Farmcast, Mosquitto};
use serde_json::{json, Value};

/// 60 KB: just under the 64 KiB the box takes in a command or an envelope
/// (more is refused by size alone, before any field is read), far bigger
/// than any answer it should give, with an escape sequence and a newline
/// inside, so an echo shows in the log or the answer.
fn junk() -> String {
    let mut j = String::from("\u{1b}[31mJUNK\nJUNK");
    while j.len() < 60 * 1024 {
        j.push_str("junk-junk-");
    }
    j
}

/// An answer whose size is the box's, not the attacker's.
const BOUNDED: usize = 2048;

fn daemon_toml(tc: &TestConfig, port: u16) -> String {
    let mut t = tc.mqtt_table(port);
    let extra: toml::Table = toml::from_str(
        "[scale]\nkind = \"sim\"\n\n\
         [fleet]\ngroups = [\"north\"]\nallow_unsigned = true\n\n\
         [[products]]\nid = \"mussels\"\nname = \"Mussels\"\nunit = \"kg\"\n\
         unit_price = \"30.00\"\ncurrency = \"CNY\"\n",
    )
    .expect("fragment");
    t.extend(extra);
    toml::to_string(&t).expect("daemon config")
}

/// One raw line to the sim socket (no retry, no line discipline of ours).
fn sim_raw(sock: &std::path::Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).expect("sim socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The box may answer and close before all of a long line is written.
    let _ = s.write_all(bytes);
    let _ = s.write_all(b"\n");
    let mut answer = String::new();
    BufReader::new(s)
        .read_line(&mut answer)
        .expect("the sim socket answers a long line");
    answer
}

#[test]
fn the_same_junk_at_every_door_gets_a_bounded_answer_and_the_box_goes_on() {
    let _g = serial();
    let broker = Mosquitto::start();
    let tc = TestConfig::new().autostart(false);
    let mut daemon = Farmcast::start(&daemon_toml(&tc, broker.port));
    let mut obs = Observer::new(
        broker.port,
        "attacker",
        true,
        &[
            &topic("status"),
            &topic("events"),
            &topic("cmd/result"),
            &topic("config/reported"),
            &topic("availability"),
        ],
    );
    obs.wait_standby();
    let junk = junk();

    // The sim socket: a line far past its limit, and a short unknown one.
    let a = sim_raw(daemon.sim_socket(), junk.as_bytes());
    assert!(
        a.starts_with("error:"),
        "sim socket, long line: {}",
        short(&a)
    );
    assert!(a.len() < 200, "sim socket answered {} bytes", a.len());
    let a = daemon.sim(&format!("press {}", &junk[..200]));
    assert!(a.starts_with("error:") && a.len() < 200, "{}", short(&a));
    // A scale reading out of any range, and one that is not a number.
    for line in ["weight 1e308", "weight NaN", "weight -inf"] {
        let a = daemon.sim(line);
        assert!(a.starts_with("error:"), "{line}: {a}");
    }

    // Every field of a command.
    let commands = [
        json!({"id": "c-name", "cmd": junk}),
        json!({"id": "c-args", "cmd": "tag_product", "args": {"product_id": junk}}),
        json!({"id": "c-level", "cmd": "set_log_level", "args": {"level": junk}}),
        json!({"id": "c-type", "cmd": "logs", "args": {"lines": junk}}),
        json!({"id": "c-cal", "cmd": "calibrate_scale", "args": {"known_kg": 1e308}}),
    ];
    for c in commands {
        let id = c["id"].as_str().unwrap().to_string();
        obs.publish(&topic("cmd"), c.to_string());
        let r = obs.result(&id);
        assert_eq!(r["ok"], false, "{id}: {}", short(&r.to_string()));
        let text = r.to_string();
        assert!(text.len() < BOUNDED, "{id}: answer of {} bytes", text.len());
        assert!(!text.contains("\u{1b}"), "{id}: an escape echoed");
    }
    // The id itself as the junk, and a payload that is not JSON: there is
    // no id to answer to, so the box only logs (bounded: checked at the end).
    obs.publish(
        &topic("cmd"),
        json!({"id": junk, "cmd": "logs"}).to_string(),
    );
    obs.publish(&topic("cmd"), junk.as_bytes().to_vec());

    // The device and the group config topics: junk in the envelope's
    // fields, and junk that is not an envelope.
    let group_topic = format!("{PREFIX}/fleet/north/config/desired");
    let envelopes = [
        (topic("config/desired"), json!({"version": 1, "target": junk, "config": "", "signature": ""}).to_string()),
        (group_topic.clone(), json!({"version": 1, "target": "group:north", "config": junk, "signature": ""}).to_string()),
        (topic("config/desired"), junk.clone()),
        (group_topic.clone(), json!({"version": 1, "target": format!("group:{junk}"), "config": "", "signature": ""}).to_string()),
        // A key name that is valid TOML and 60 KB long.
        (group_topic, json!({"version": 1, "target": "group:north", "config": format!("[video]\n{} = 1\n", "k".repeat(60 * 1024)), "signature": ""}).to_string()),
    ];
    for (i, (t, payload)) in envelopes.into_iter().enumerate() {
        obs.clear();
        obs.publish(&t, payload);
        let m = obs.until(&topic("config/reported"), WAIT, |_| true);
        let v = m.json();
        assert_eq!(v["status"], "rejected", "push {i}: {}", short(&m.payload));
        assert!(
            m.payload.len() < BOUNDED,
            "push {i}: report of {} bytes",
            m.payload.len()
        );
        assert!(!m.payload.contains("\u{1b}"), "push {i}: an escape echoed");
    }

    // A config file of junk: check-config's answer is bounded too.
    let bad = tc.dir.path().join("junk.toml");
    std::fs::write(&bad, format!("{junk} = 1\n[video]\nwidth = \"{junk}\"\n")).unwrap();
    let out = check_config(&bad);
    assert!(!out.status.success());
    let said = out.stdout.len() + out.stderr.len();
    assert!(
        said < 4 * BOUNDED,
        "check-config said {said} bytes about junk"
    );

    // The box is still there and still works: reachable, a tag goes through.
    assert_eq!(
        retained(broker.port, &topic("availability")).payload,
        "online"
    );
    assert_eq!(daemon.sim("weight 1.250"), "ok");
    let r = obs.command(
        "tag",
        json!({"cmd": "tag_product", "args": {"product_id": "mussels"}}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let ev: Value = obs.until_json("events", WAIT, |v| v["type"] == "product_tagged");
    assert_eq!(ev["product_id"], "mussels");
    assert!(daemon.is_running());

    // No log line carries the junk: each is bounded by the box.
    let log = daemon.log();
    let worst = log.lines().map(str::len).max().unwrap_or(0);
    assert!(worst < BOUNDED, "a daemon log line of {worst} bytes");
    assert!(
        !log.contains("junk-junk-junk-junk-junk-junk-junk-junk-junk-junk-junk-junk"),
        "a long run of the junk reached the log"
    );
}
