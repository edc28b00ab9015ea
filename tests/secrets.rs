//! Stream keys never leave the box, in any encoding: the real `farmcast`
//! binary with a real mosquitto, nginx-rtmp and srt-live-transmit, and
//! destinations whose secrets take every shape a URL gives them:
//!
//! - an RTMP key with characters that percent-encode (`a/b c?d&e=f%g`),
//! - a key file holding a bare number (no quotes for serde to see),
//! - an SRT destination with a passphrase and a stream id written in its URL
//!   (percent-encoded, as a URL must carry them) and a key (the stream id),
//!   refused by the listener, which has no passphrase,
//! - an RTMP destination on a dead port, so its failures are logged again and
//!   again.
//!
//! The show runs, errors are provoked, the technician's `logs` command is
//! answered; then no form of any secret (as written, percent-encoded in
//! either hex case, form-encoded, decoded) may be in the daemon's log, in
//! any MQTT message under the broker's topics, or in `check-config` output.

mod common;

use std::path::Path;

use common::config::TestConfig;
use common::farmcast::check_config;
use common::fleet::openssl_keypair;
use common::observer::{short, topic, Observer, DEVICE, WAIT};
use common::{free_port, serial, wait_until, Farmcast, Mosquitto, NginxRtmp, SrtListener};
use farmcast::fleet::envelope;
use farmcast::fleet::keys::read_private_key;
use serde_json::json;

const ODD_KEY: &str = "a/b c?d&e=f%g";
/// Long enough not to turn up by chance in timestamps or byte counts.
const NUMBER_KEY: &str = "908172635445";
const SRT_STREAMID: &str = "#!::r=live/farm one,m=publish";
/// As written in the URL (percent-encoded); decoded it is `pass word/0123`.
const SRT_PASSPHRASE: &str = "pass%20word%2F0123";
const DEAD_KEY: &str = "dead key/x&y=%41z";

/// Every way `secret` may be spelled in a URL, a form or a log.
fn forms(secret: &str) -> Vec<String> {
    let enc = |upper: bool, plus: bool| -> String {
        secret
            .bytes()
            .map(|b| match b {
                b' ' if plus => "+".to_string(),
                b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => char::from(b).to_string(),
                b if upper => format!("%{b:02X}"),
                b => format!("%{b:02x}"),
            })
            .collect()
    };
    let decoded = {
        let mut out = Vec::new();
        let b = secret.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match (
                b[i],
                std::str::from_utf8(b.get(i + 1..i + 3).unwrap_or_default()),
            ) {
                (b'%', Ok(h)) if u8::from_str_radix(h, 16).is_ok() => {
                    out.push(u8::from_str_radix(h, 16).unwrap_or_default());
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let mut v = vec![
        secret.to_string(),
        enc(true, false),
        enc(false, false),
        enc(true, true),
        secret.replace(' ', "+"),
        secret.replace(' ', "%20"),
        decoded.clone(),
        decoded.replace(' ', "+"),
    ];
    v.sort();
    v.dedup();
    v
}

fn all_forms() -> Vec<String> {
    [ODD_KEY, NUMBER_KEY, SRT_STREAMID, SRT_PASSPHRASE, DEAD_KEY]
        .iter()
        .flat_map(|s| forms(s))
        .collect()
}

/// Panics naming the first form of a secret found in `text`.
fn assert_clean(what: &str, text: &str) {
    for f in all_forms() {
        if let Some(at) = text.find(&f) {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(120)
                .map_or(0, |(i, _)| i);
            panic!("a secret ({f:?}) is in {what}: …{}", short(&text[from..]));
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn daemon_toml(
    tc: &TestConfig,
    mqtt_port: u16,
    nginx: &NginxRtmp,
    srt: &SrtListener,
    trusted: &Path,
) -> String {
    let mut t = tc.mqtt_table(mqtt_port);
    let fleet: toml::Table =
        toml::from_str(&format!("trusted_keys_file = {:?}", path(trusted))).expect("fleet table");
    t.insert("fleet".into(), toml::Value::Table(fleet));
    let dead = format!("rtmp://127.0.0.1:{}/live", free_port());
    let dests = format!(
        "[[destinations]]\nname = \"odd\"\nurl = {ok:?}\nkey = {ODD_KEY:?}\n\n\
         [[destinations]]\nname = \"number\"\nurl = {ok:?}\nkey_file = \"number.key\"\n\n\
         [[destinations]]\nname = \"srt\"\nurl = {srt_url:?}\nkey = {SRT_STREAMID:?}\n\n\
         [[destinations]]\nname = \"dead\"\nurl = {dead:?}\nkey = {DEAD_KEY:?}\n",
        ok = nginx.url("live"),
        srt_url = format!(
            "{}?passphrase={SRT_PASSPHRASE}&pbkeylen=16&streamid={}",
            srt.url(),
            "%23%21%3A%3Ar%3Dlive%2Fother%2Cm%3Dpublish"
        ),
    );
    let d: toml::Table = toml::from_str(&dests).expect("destinations TOML");
    t.insert("destinations".into(), d["destinations"].clone());
    toml::to_string(&t).expect("serialise daemon config")
}

/// `check-config` on `text` (written beside the key file): its whole output.
fn check(dir: &Path, name: &str, text: &str) -> (bool, String) {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write config");
    let out = check_config(&file);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn no_stream_key_in_any_encoding_reaches_logs_mqtt_or_check_config() {
    let _g = serial();
    let broker = Mosquitto::start();
    let nginx = NginxRtmp::start();
    let srt = SrtListener::start();
    let tc = TestConfig::new().autostart(false);
    let mut spy = Observer::new(broker.port, "spy", true, &["#"]);
    // What the box sends (the spy also sees the test's own commands and push).
    let outbound: Vec<String> = [
        "availability",
        "status",
        "events",
        "cmd/result",
        "config/reported",
    ]
    .iter()
    .map(|leaf| topic(leaf))
    .chain(["homeassistant/#".to_string()])
    .collect();
    let outbound: Vec<&str> = outbound.iter().map(String::as_str).collect();
    let out = Observer::new(broker.port, "out", true, &outbound);
    let (manager, trusted) = openssl_keypair(tc.dir.path(), "manager");
    let toml = daemon_toml(&tc, broker.port, &nginx, &srt, &trusted);

    // The daemon reads key files next to its config: Farmcast::start writes
    // the config in a temp dir of its own, so give the key file an absolute
    // path there too.
    let key_file = tc.dir.path().join("number.key");
    std::fs::write(&key_file, format!("{NUMBER_KEY}\n")).unwrap();
    let toml = toml.replace(
        "key_file = \"number.key\"",
        &format!("key_file = {:?}", key_file.display().to_string()),
    );

    // check-config: the valid file, then files with mistakes beside the keys.
    let (ok, said) = check(tc.dir.path(), "ok.toml", &toml);
    assert!(ok, "check-config refused the test config: {said}");
    assert_clean("check-config output (valid)", &said);
    let bad_number = toml.replace(
        &format!("key = {ODD_KEY:?}"),
        &format!("key = {NUMBER_KEY}"),
    );
    let (ok, said) = check(tc.dir.path(), "number.toml", &bad_number);
    assert!(!ok, "a bare number as key passed check-config");
    assert!(said.contains("key_file"), "{said}");
    assert_clean("check-config output (key = a number)", &said);
    let bad_url = toml.replace("?passphrase=", " ?passphrase=");
    let (ok, said) = check(tc.dir.path(), "url.toml", &bad_url);
    assert!(!ok, "a URL with a space passed check-config");
    assert_clean("check-config output (URL with a space)", &said);

    let mut daemon = Farmcast::start(&toml);
    spy.wait_standby();
    let r = spy.command(
        "lvl",
        json!({"cmd": "set_log_level", "args": {"level": "debug"}}),
    );
    assert_eq!(r["ok"], true, "set_log_level: {r}");
    let r = spy.command("go", json!({"cmd": "go_live"}));
    assert_eq!(r["ok"], true, "go_live: {r}");

    // The numbered key works: nginx sees a publish.
    assert!(
        nginx.wait_for_publishes("live", 1, WAIT),
        "nginx saw no publish: {}\n{}",
        nginx.error_log(),
        daemon.log()
    );
    // Media reaches the server under the numbered key.
    assert!(
        wait_until(WAIT, || nginx.recorded_bytes() > 200_000),
        "nginx recorded too little: {}",
        nginx.error_log()
    );
    // Every other destination fails (a refused SRT caller, a dead port, a
    // key nginx will not take), and fails again after its backoff.
    for name in ["dead", "srt", "odd"] {
        let line = format!("destination failed destination={name}");
        assert!(
            wait_until(WAIT, || daemon.log().matches(&line).count() >= 3),
            "{name} did not fail three times:\n{}",
            daemon.log()
        );
    }
    let r = spy.command("logs", json!({"cmd": "logs", "args": {"lines": 500}}));
    assert_eq!(r["ok"], true, "logs: {}", short(&r.to_string()));
    let r = spy.command("end", json!({"cmd": "end_show"}));
    assert_eq!(r["ok"], true, "end_show: {r}");
    spy.status("standby");

    // A signed push whose key is a bare number: rejected, and the report
    // says why without the number (serde's own message quotes it).
    let layer = format!(
        "[[destinations]]\nname = \"pushed\"\nurl = {:?}\nkey = {NUMBER_KEY}\n",
        nginx.url("live")
    );
    let key = read_private_key(&manager).expect("read the manager's key");
    let env = envelope::sign(&key, DEVICE, 1, &layer);
    spy.publish(
        &topic("config/desired"),
        serde_json::to_string(&env).expect("envelope as JSON"),
    );
    let reported = spy.until_json("config/reported", WAIT, |v| v["version"] == 1);
    assert_eq!(reported["status"], "rejected", "{reported}");
    assert!(
        reported["error"]
            .as_str()
            .is_some_and(|e| e.contains("in quotes")),
        "the report says how to write a key: {reported}"
    );
    assert!(daemon.is_running(), "the daemon died:\n{}", daemon.log());
    daemon.stop();

    let log = daemon.log();
    assert!(log.contains("destination failed"), "{log}");
    assert_clean("the daemon's log", &log);
    for f in all_forms() {
        out.assert_no_secret(&f);
    }
}
