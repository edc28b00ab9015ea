//! The lock of docs/security.md, tried for real: a mosquitto started with the
//! shipped ACL template (`docs/broker/acl.conf`, filled for box `farm-01` in
//! group `north-county`, technician `tech-anna`, fleet manager `fleet-hq`)
//! and a password file made by the real `mosquitto_passwd`.
//!
//! A box's login cannot command another box nor read its commands; a
//! technician can command but not push config; a stranger cannot log in;
//! and the real daemon, logged in as `farm-01` with its password file, comes
//! online and answers the technician through the same lock.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::config::TestConfig;
use common::observer::{Observer, WAIT};
use common::{require, serial, Farmcast, Mosquitto};
use serde_json::{json, Value};

const USERS: &[(&str, &str)] = &[
    ("farm-01", "pw-farm-01"),
    ("farm-02", "pw-farm-02"),
    ("tech-anna", "pw-tech-anna"),
    ("fleet-hq", "pw-fleet-hq"),
];

/// The template with its placeholders filled, as an installer would.
fn filled_acl() -> String {
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/broker/acl.conf"))
            .expect("docs/broker/acl.conf");
    template
        .replace("user DEVICE_ID", "user farm-01")
        .replace("GROUP", "north-county")
        .replace("user TECHNICIAN", "user tech-anna")
        .replace("user FLEET_MANAGER", "user fleet-hq")
}

/// A broker locked with the filled template and a password file for USERS.
fn locked_broker(dir: &Path) -> Mosquitto {
    let passwd = dir.join("farmcast.passwd");
    let acl = dir.join("farmcast.acl");
    std::fs::write(&acl, filled_acl()).expect("write acl");
    let tool = require("mosquitto_passwd", "mosquitto");
    for (i, (user, pw)) in USERS.iter().enumerate() {
        let mut cmd = Command::new(&tool);
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let out = cmd
            .arg(&passwd)
            .args([user, pw])
            .output()
            .expect("mosquitto_passwd");
        assert!(out.status.success(), "mosquitto_passwd: {out:?}");
    }
    Mosquitto::start_with(
        false,
        &format!(
            "password_file {}\nacl_file {}",
            passwd.display(),
            acl.display()
        ),
    )
}

fn login(port: u16, user: &str, topics: &[&str]) -> Observer {
    let pw = USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .expect("known user");
    Observer::with_login(port, user, pw, topics)
}

#[test]
fn the_acl_template_keeps_each_box_to_its_own_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = locked_broker(dir.path());
    let mut tech = login(broker.port, "tech-anna", &["farmcast/#"]);
    let mut farm02 = login(broker.port, "farm-02", &["farmcast/farm-02/cmd"]);
    // farm-01 may ask for farm-02's commands; the broker must not give them.
    let mut farm01 = login(broker.port, "farm-01", &["farmcast/farm-02/cmd"]);

    // A box's login cannot command another box...
    farm01.publish("farmcast/farm-02/cmd", r#"{"id":"evil","cmd":"end_show"}"#);
    // ...but writes its own topics (published after, so it arrives after).
    farm01.publish("farmcast/farm-01/status", r#"{"state":"standby"}"#);
    tech.until("farmcast/farm-01/status", WAIT, |_| true);
    tech.drain();
    assert!(
        tech.backlog
            .iter()
            .all(|m| m.topic != "farmcast/farm-02/cmd"),
        "farm-01 commanded farm-02: {:?}",
        tech.backlog
    );

    // A technician commands farm-02; farm-02 gets it, farm-01 does not.
    tech.publish("farmcast/farm-02/cmd", r#"{"id":"t1","cmd":"probe"}"#);
    let m = farm02.until("farmcast/farm-02/cmd", WAIT, |_| true);
    assert!(m.payload.contains("t1"), "{}", m.payload);
    assert!(
        !m.payload.contains("evil"),
        "farm-01's command reached farm-02"
    );
    farm01.publish("farmcast/farm-01/events", r#"{"type":"marker"}"#);
    tech.until("farmcast/farm-01/events", WAIT, |_| true);
    farm01.drain();
    assert!(
        farm01.backlog.is_empty(),
        "farm-01 read farm-02's commands: {:?}",
        farm01.backlog
    );

    // A technician cannot push config; a fleet manager can.
    let mut hq = login(broker.port, "fleet-hq", &["farmcast/#"]);
    tech.publish("farmcast/farm-01/config/desired", r#"{"from":"tech"}"#);
    hq.publish(
        "farmcast/fleet/north-county/config/desired",
        r#"{"from":"hq"}"#,
    );
    let m = tech.until("farmcast/fleet/north-county/config/desired", WAIT, |_| true);
    assert!(m.payload.contains("hq"));
    tech.drain();
    hq.drain();
    assert!(
        hq.backlog
            .iter()
            .all(|m| m.topic != "farmcast/farm-01/config/desired"),
        "a technician pushed config: {:?}",
        hq.backlog
    );

    // No login, no way in.
    let mut o = rumqttc::MqttOptions::new("stranger", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(5));
    let (_c, mut conn) = rumqttc::Client::new(o, 8);
    let first = conn.iter().next().expect("an answer from the broker");
    assert!(
        matches!(first, Err(rumqttc::ConnectionError::ConnectionRefused(_))),
        "an anonymous client got in: {first:?}"
    );
}

#[test]
fn the_daemon_runs_behind_the_lock_with_its_own_login() {
    let _g = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = locked_broker(dir.path());
    let mut tech = login(broker.port, "tech-anna", &["farmcast/#"]);

    let tc = TestConfig::new().autostart(false);
    let pw_file = tc.dir.path().join("mqtt-password");
    std::fs::write(&pw_file, "pw-farm-01\n").expect("password file");
    let mut t = tc.mqtt_table(broker.port);
    t.insert("device_id".into(), toml::Value::String("farm-01".into()));
    if let Some(toml::Value::Table(mqtt)) = t.get_mut("mqtt") {
        mqtt.insert(
            "password_file".into(),
            toml::Value::String(pw_file.display().to_string()),
        );
    }
    let daemon = Farmcast::start(&toml::to_string(&t).expect("config"));

    tech.until("farmcast/farm-01/availability", WAIT, |m| {
        m.payload == "online"
    });
    tech.publish(
        "farmcast/farm-01/cmd",
        json!({"id": "t-logs", "cmd": "logs", "args": {"lines": 1}}).to_string(),
    );
    let m = tech.until("farmcast/farm-01/cmd/result", WAIT, |m| {
        m.payload.contains("t-logs")
    });
    let v: Value = serde_json::from_str(&m.payload).expect("JSON");
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        !daemon.log().contains("pw-farm-01"),
        "the MQTT password is in the daemon's log"
    );
}
