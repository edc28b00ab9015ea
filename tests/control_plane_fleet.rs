//! New MQTT settings pushed by the fleet are tried before they are trusted:
//! `farmcast run` (test camera, sim buttons, not live) on a first real
//! mosquitto, signed pushes (keys by the real `openssl`, envelopes by
//! `farmcast config sign`) that move `[mqtt]` to a dead port, then to a second
//! real mosquitto.
//!
//! The box keeps talking over the old link until the new one has connected;
//! `applied` is said only on the new link, once it is up; a link that cannot
//! connect within the trial is dropped and `rolled_back` said on the old one.
//! Tests take `common::serial()` and wait with generous deadlines.

mod common;

use std::time::Duration;

use common::config::TestConfig;
use common::fleet::{cli_sign, openssl_keypair};
use common::observer::{retained, topic, Observer, WAIT};
use common::{free_port, serial, Farmcast, Mosquitto};
use serde_json::{json, Value};

/// The daemon's 30 s MQTT trial, with room to spare on a loaded machine.
const TRIAL_WAIT: Duration = Duration::from_secs(75);

fn observer(port: u16, id: &str) -> Observer {
    Observer::new(
        port,
        id,
        true,
        &[
            &topic("availability"),
            &topic("status"),
            &topic("cmd/result"),
            &topic("config/reported"),
        ],
    )
}

fn mqtt_layer(port: u16) -> String {
    format!("[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n")
}

#[test]
fn pushed_mqtt_settings_are_applied_only_once_connected_and_rolled_back_otherwise() {
    let _g = serial();
    let first = Mosquitto::start();
    let second = Mosquitto::start();
    let tc = TestConfig::new().autostart(false);
    let (key, public) = openssl_keypair(tc.dir.path(), "fleet");
    let mut t = tc.mqtt_table(first.port);
    let fleet: toml::Table = toml::from_str(&format!(
        "[fleet]\ntrusted_keys_file = {:?}\n",
        public.display().to_string()
    ))
    .expect("fleet table");
    t.extend(fleet);
    let daemon = Farmcast::start(&toml::to_string(&t).expect("config"));
    let mut obs1 = observer(first.port, "tech-first");
    obs1.wait_standby();

    // 1. A broker that is not there: the box stays on the first one, answers
    // there during the trial, and says rolled_back there.
    let dead = free_port();
    obs1.push(
        &topic("config/desired"),
        cli_sign(&key, "test-box", 1, None, &mqtt_layer(dead)),
    );
    let r = obs1.command("during-trial", json!({"cmd": "logs", "args": {"lines": 1}}));
    assert_eq!(
        r["ok"], true,
        "no answer while the new settings are tried: {r}"
    );
    let reported = obs1.until_json("config/reported", TRIAL_WAIT, |v| v["status"] != "pending");
    assert_eq!(
        reported["status"], "rolled_back",
        "a dead broker was reported as {reported}"
    );
    assert!(
        reported["error"]
            .as_str()
            .unwrap_or_default()
            .contains("connect"),
        "{reported}"
    );
    assert_eq!(
        retained(first.port, &topic("availability")).payload,
        "online"
    );
    let r = obs1.command(
        "after-rollback",
        json!({"cmd": "logs", "args": {"lines": 1}}),
    );
    assert_eq!(r["ok"], true, "{r}");

    // 2. A second real broker: applied, said there once the box is online
    // there; the first broker hears nothing of `applied` and sees it leave.
    let mut obs2 = observer(second.port, "tech-second");
    obs1.clear();
    obs1.push(
        &topic("config/desired"),
        cli_sign(&key, "test-box", 2, None, &mqtt_layer(second.port)),
    );
    obs2.until(&topic("availability"), WAIT, |m| m.payload == "online");
    let applied = obs2.until_json("config/reported", WAIT, |v| v["version"] == 2);
    assert_eq!(applied["status"], "applied", "{applied}");
    let r = obs2.command("on-second", json!({"cmd": "logs", "args": {"lines": 1}}));
    assert_eq!(r["ok"], true, "{r}");
    obs1.until(&topic("availability"), WAIT, |m| m.payload == "offline");
    let on_first: Vec<Value> = obs1.pending("config/reported");
    assert!(
        on_first.iter().all(|v| v["status"] != "applied"),
        "applied said on the old broker: {on_first:?}"
    );
    drop(daemon);
}
