//! Fleet pushes end to end: `farmcast run` with the test camera and tone
//! (320x240, 15 fps, x264 ultrafast), sim buttons, one nginx-rtmp destination,
//! `[mqtt]` on a real mosquitto, `[fleet] groups = ["north"]` and a trusted
//! key made by the real `openssl`. The test plays the fleet manager: it signs
//! envelopes (with `farmcast config sign` for good layers, with the library for
//! the broken ones `config sign` refuses to sign), publishes them retained on
//! the desired topics and judges what comes back on `config/reported`, the
//! events, the status, tag answers and the ingest server.
//!
//! Tests take `common::serial()` and wait on conditions with generous
//! deadlines; nothing asserts how fast anything is.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::config::TestConfig;
use common::fleet::{cli_sign, openssl_keypair};
use common::observer::{topic, Observer, DEVICE, PREFIX, WAIT};
use common::{serial, Farmcast, Mosquitto, NginxRtmp};
use farmcast::fleet::envelope;
use farmcast::fleet::keys::read_private_key;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// The daemon's 30 s trial plus a rebuild, with room to spare.
const TRIAL_WAIT: Duration = Duration::from_secs(75);

fn group_topic(group: &str) -> String {
    format!("{PREFIX}/fleet/{group}/config/desired")
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------
// The fleet manager's MQTT client
// ---------------------------------------------------------------------------

/// The fleet manager, subscribed to `#`.
fn fleet_manager(port: u16) -> Observer {
    Observer::new(port, "fleet-manager", true, &["#"])
}

/// What the fleet manager waits for, on top of the shared observer.
trait FleetObserver {
    fn reported(&mut self, version: Option<u64>, within: Duration) -> Value;
    fn tag(&mut self, id: &str, product: &str) -> Value;
    fn fresh_status(&mut self, daemon: &Farmcast) -> Value;
}

impl FleetObserver for Observer {
    /// The `config/reported` for `version` (`None`: an unparsable envelope).
    fn reported(&mut self, version: Option<u64>, within: Duration) -> Value {
        let want = version.map_or(Value::Null, |v| json!(v));
        self.until_json("config/reported", within, |v| v["version"] == want)
    }

    fn tag(&mut self, id: &str, product: &str) -> Value {
        self.command(
            id,
            json!({"cmd": "tag_product", "args": {"product_id": product}}),
        )
    }

    /// A status computed after this call: its uptime is past the time the
    /// daemon has been running now (its uptime never exceeds ours since start).
    fn fresh_status(&mut self, daemon: &Farmcast) -> Value {
        let since = daemon.started.elapsed().as_secs() + 1;
        self.until_json("status", WAIT, |v| {
            v["uptime_s"].as_u64().is_some_and(|u| u >= since)
        })
    }
}

// ---------------------------------------------------------------------------
// Keys and envelopes
// ---------------------------------------------------------------------------

/// An envelope signed with the library, for layers `config sign` refuses.
fn lib_sign(key: &Path, target: &str, version: u64, config: &str) -> envelope::Envelope {
    let key = read_private_key(key).expect("read private key");
    envelope::sign(&key, target, version, config)
}

fn to_json(env: &envelope::Envelope) -> String {
    serde_json::to_string(env).expect("envelope as JSON")
}

fn product(id: &str, price: &str) -> String {
    format!(
        "\n[[products]]\nid = \"{id}\"\nname = \"Farm {id}\"\nunit = \"piece\"\n\
         unit_price = \"{price}\"\ncurrency = \"CNY\"\n"
    )
}

// ---------------------------------------------------------------------------
// The box
// ---------------------------------------------------------------------------

struct Rig {
    nginx: NginxRtmp,
    tc: TestConfig,
    key: PathBuf,
    /// A key the box does not trust.
    rogue: PathBuf,
    toml: String,
    daemon: Farmcast,
}

impl Rig {
    /// nginx (`live` app, stream key `main-key`), keys, the daemon, not live.
    fn start(mqtt_port: u16) -> Rig {
        let nginx = NginxRtmp::start();
        let tc = TestConfig::new().autostart(false).destination(
            "main",
            &nginx.url("live"),
            Some("main-key"),
        );
        let (key, public) = openssl_keypair(tc.dir.path(), "manager");
        let (rogue, _) = openssl_keypair(tc.dir.path(), "rogue");
        let mut t = tc.mqtt_table(mqtt_port);
        if let Some(toml::Value::Table(video)) = t.get_mut("video") {
            video.insert("framerate".into(), toml::Value::Integer(15));
        }
        let extra: toml::Table = toml::from_str(&format!(
            "[fleet]\ngroups = [\"north\"]\ntrusted_keys_file = {:?}\n",
            public.display().to_string()
        ))
        .expect("fleet table");
        t.extend(extra);
        let toml = toml::to_string(&t).expect("serialise daemon config");
        let daemon = Farmcast::start(&toml);
        Rig {
            nginx,
            tc,
            key,
            rogue,
            toml,
            daemon,
        }
    }

    fn layers_json(&self) -> Vec<u8> {
        std::fs::read(self.tc.state_dir().join("fleet/layers.json")).unwrap_or_default()
    }

    /// Still the first and only publish, and media still flowing.
    fn assert_one_unbroken_stream(&self, when: &str) {
        assert!(self.nginx.media_flows(), "{when}: no media at the server");
        assert_eq!(
            self.nginx.publish_times("live").len(),
            1,
            "{when}: the stream was published again, so it was cut"
        );
    }
}

fn go_live(obs: &mut Observer, rig: &Rig, id: &str) {
    let r = obs.command(id, json!({"cmd": "go_live"}));
    assert_eq!(r["ok"], true, "go_live: {r}");
    assert!(
        rig.nginx.wait_for_publishes("live", 1, WAIT),
        "nginx saw no publish after go_live: {}",
        rig.nginx.error_log()
    );
    obs.status("live");
}

fn assert_applied(r: &Value, version: u64, config: &str) {
    assert_eq!(r["status"], "applied", "{r}");
    assert_eq!(r["version"], version, "{r}");
    assert_eq!(r["hash"], sha256_hex(config), "{r}");
}

fn assert_tag_ok(obs: &mut Observer, id: &str, product: &str) {
    let r = obs.tag(id, product);
    assert_eq!(r["ok"], true, "tag {product}: {r}");
    assert_eq!(r["result"]["product_id"], product, "{r}");
}

fn assert_tag_unknown(obs: &mut Observer, id: &str, product: &str) {
    let r = obs.tag(id, product);
    assert_eq!(
        r["ok"], false,
        "{product} should not be in the catalogue: {r}"
    );
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn a_live_safe_push_is_applied_and_reported_without_cutting_the_show() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let rig = Rig::start(broker.port);
    let st = obs.wait_standby();
    assert_eq!(st["config_version"], 0, "{st}");
    go_live(&mut obs, &rig, "g-live");
    assert!(rig.nginx.media_flows(), "no media once live");
    assert_tag_unknown(&mut obs, "g-tag-0", "eggs");

    let layer = format!("[video]\nbitrate_kbps = 800\n{}", product("eggs", "2.50"));
    obs.push(
        &topic("config/desired"),
        cli_sign(&rig.key, DEVICE, 3, None, &layer),
    );
    let r = obs.reported(Some(3), WAIT);
    assert_applied(&r, 3, &layer);
    assert!(r.get("error").is_none(), "{r}");
    let ev = obs.until_json("events", WAIT, |v| v["type"] == "config_applied");
    assert_eq!(ev["version"], 3, "{ev}");
    assert!(ev["ts"].as_str().is_some_and(|t| !t.is_empty()), "{ev}");

    let st = obs.until_json("status", WAIT, |v| v["config_version"] == 3);
    assert_eq!(st["state"], "live", "{st}");
    assert_tag_ok(&mut obs, "g-tag-1", "eggs");
    rig.assert_one_unbroken_stream("after a live-safe push");
    let retained = std::fs::read_to_string(rig.tc.dir.path().join("state/fleet/layers.json"))
        .expect("the layer is kept on disk");
    assert!(retained.contains("bitrate_kbps = 800"), "{retained}");
}

/// A bad push: what it is, the topic, the envelope JSON, the version the
/// report must carry (`None`: not an envelope at all) and the field it names.
const B900: &str = "[video]\nbitrate_kbps = 900\n";
const UNKNOWN_KEY: &str = "[video]\nbitrate_kbps = 900\ncolour = \"red\"\n";
const HTTP_DEST: &str =
    "[[destinations]]\nname = \"web\"\nurl = \"http://127.0.0.1:8080/live\"\nkey = \"k\"\n";

type BadPush = (
    &'static str,
    String,
    String,
    Option<u64>,
    Option<&'static str>,
);

#[test]
fn every_kind_of_bad_push_is_rejected_with_its_reason_and_changes_nothing() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let rig = Rig::start(broker.port);
    obs.wait_standby();
    go_live(&mut obs, &rig, "b-live");

    let good = format!("[video]\nbitrate_kbps = 800\n{}", product("eggs", "2.50"));
    obs.push(
        &topic("config/desired"),
        cli_sign(&rig.key, DEVICE, 5, None, &good),
    );
    assert_applied(&obs.reported(Some(5), WAIT), 5, &good);
    obs.until_json("status", WAIT, |v| v["config_version"] == 5);
    let layers_before = rig.layers_json();
    assert!(!layers_before.is_empty(), "no layers.json after a push");

    let k = &rig.key;
    let device = topic("config/desired");
    let signed = |v: u64, cfg: &str| to_json(&lib_sign(k, DEVICE, v, cfg));
    let addressed = |target: &str, v: u64| to_json(&lib_sign(k, target, v, B900));
    let tampered = {
        let mut e = lib_sign(k, DEVICE, 13, B900);
        e.config = "[video]\nbitrate_kbps = 5000\n".into();
        to_json(&e)
    };
    let unsigned = |v: u64, sig: Option<&str>| {
        let mut e = lib_sign(k, DEVICE, v, B900);
        e.signature = sig.map(str::to_string);
        to_json(&e)
    };
    let bads: Vec<BadPush> = vec![
        (
            "TOML syntax error",
            device.clone(),
            signed(10, "[video\nbitrate_kbps = 900\n"),
            Some(10),
            Some("config"),
        ),
        (
            "unknown key",
            device.clone(),
            signed(11, UNKNOWN_KEY),
            Some(11),
            Some("video.colour"),
        ),
        (
            "out-of-range value",
            device.clone(),
            signed(12, "[video]\nwidth = 33\n"),
            Some(12),
            Some("video.width"),
        ),
        (
            "tampered after signing",
            device.clone(),
            tampered,
            Some(13),
            Some("signature"),
        ),
        (
            "bad URL scheme",
            device.clone(),
            signed(14, HTTP_DEST),
            Some(14),
            Some("destinations[0].url"),
        ),
        (
            "oversize envelope",
            device.clone(),
            signed(15, &format!("# {}\n", "x".repeat(70 * 1024))),
            None,
            None,
        ),
        (
            "signed by an untrusted key",
            device.clone(),
            to_json(&lib_sign(&rig.rogue, DEVICE, 16, B900)),
            Some(16),
            Some("signature"),
        ),
        (
            "another device",
            device.clone(),
            addressed("other-box", 17),
            Some(17),
            Some("target"),
        ),
        (
            "a group the box is not in, on the device topic",
            device.clone(),
            addressed("group:south", 18),
            Some(18),
            Some("target"),
        ),
        (
            "a group the box is not in, on its group's topic",
            group_topic("north"),
            addressed("group:south", 19),
            Some(19),
            Some("target"),
        ),
        (
            "the version it runs",
            device.clone(),
            signed(5, B900),
            Some(5),
            Some("version"),
        ),
        (
            "an older version",
            device.clone(),
            signed(4, B900),
            Some(4),
            Some("version"),
        ),
        (
            "no signature",
            device.clone(),
            unsigned(20, None),
            Some(20),
            Some("signature"),
        ),
        (
            "an empty signature",
            device.clone(),
            unsigned(21, Some("")),
            Some(21),
            Some("signature"),
        ),
    ];
    // A group the box is not in, on that group's topic: not even heard. Any
    // report for it would come before the next one's (one broker, in order).
    obs.push(&group_topic("south"), addressed("group:south", 30));
    for (what, on, payload, version, field) in bads {
        obs.push(&on, payload);
        let r = obs.until_json("config/reported", WAIT, |v| v["status"] != "applied");
        assert_eq!(r["status"], "rejected", "{what}: {r}");
        let want = version.map_or(Value::Null, |v| json!(v));
        assert_eq!(r["version"], want, "{what}: {r}");
        let error = r["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{what}: no reason given: {r}");
        if let Some(field) = field {
            assert_eq!(r["field"], field, "{what}: {r}");
        }
        if version.is_none() {
            assert!(
                error.contains("bytes"),
                "{what}: reason does not say the size: {r}"
            );
        }
        let ev = obs.until_json("events", WAIT, |v| v["type"] == "config_rejected");
        assert_eq!(ev["error"], r["error"], "{what}: {ev}");
    }

    // Nothing changed: the layers on disk, the running config, the stream.
    assert_eq!(
        String::from_utf8_lossy(&rig.layers_json()),
        String::from_utf8_lossy(&layers_before),
        "a rejected push changed the stored layers"
    );
    let st = obs.fresh_status(&rig.daemon);
    assert_eq!(st["config_version"], 5, "{st}");
    assert_eq!(st["state"], "live", "{st}");
    assert_tag_ok(&mut obs, "b-tag", "eggs");
    rig.assert_one_unbroken_stream("after the bad pushes");
    let log = rig.daemon.log();
    assert!(
        !log.contains("bitrate_kbps = 5000"),
        "the log quotes a payload"
    );

    // A good push after all that is still taken (rejected versions do not count).
    let later = format!("[video]\nbitrate_kbps = 700\n{}", product("honey", "8.00"));
    obs.push(&device, cli_sign(&rig.key, DEVICE, 12, None, &later));
    assert_applied(&obs.reported(Some(12), WAIT), 12, &later);
    obs.until_json("status", WAIT, |v| v["config_version"] == 12);
    assert_tag_ok(&mut obs, "b-tag-2", "honey");
    assert_tag_unknown(&mut obs, "b-tag-3", "eggs");
    rig.assert_one_unbroken_stream("after the good push");
}

#[test]
fn a_destination_change_waits_for_the_show_to_end_then_is_used() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let mut rig = Rig::start(broker.port);
    let second = NginxRtmp::start_with_apps(&["other"]);
    obs.wait_standby();
    go_live(&mut obs, &rig, "d-live");

    let layer = format!(
        "[[destinations]]\nname = \"second\"\nurl = {:?}\nkey = \"second-key\"\n",
        second.url("other")
    );
    obs.push(
        &topic("config/desired"),
        cli_sign(&rig.key, DEVICE, 2, None, &layer),
    );
    let r = obs.reported(Some(2), WAIT);
    assert_eq!(r["status"], "pending", "{r}");
    assert_eq!(r["hash"], sha256_hex(&layer), "{r}");
    let st = obs.fresh_status(&rig.daemon);
    assert_eq!(st["config_version"], 0, "pending is not in force yet: {st}");
    assert_eq!(st["destinations"][0]["name"], "main", "{st}");
    rig.assert_one_unbroken_stream("while the push is pending");
    assert!(
        second.publish_times("other").is_empty(),
        "published to the new destination mid-show"
    );

    assert_eq!(rig.daemon.sim("hold go_live 2.5"), "ok");
    assert!(
        rig.nginx.wait_idle(WAIT),
        "the long press did not end the show"
    );
    let r = obs.reported(Some(2), WAIT);
    assert_applied(&r, 2, &layer);
    obs.until_json("events", WAIT, |v| {
        v["type"] == "config_applied" && v["version"] == 2
    });
    let st = obs.until_json("status", WAIT, |v| {
        v["state"] == "standby" && v["config_version"] == 2
    });
    assert_eq!(st["destinations"][0]["name"], "second", "{st}");

    // The box says standby on the new config: one press must start the next
    // show, on the new destination. A press lost while the rebuilt pipeline
    // starts would leave a farmer pressing again, so it is not retried here.
    assert_eq!(rig.daemon.sim("press go_live"), "ok");
    assert!(
        second.wait_for_publishes("other", 1, WAIT),
        "one press in standby did not start a show on the new destination: {}\n--- farmcast ---\n{}",
        second.error_log(),
        rig.daemon.log()
    );
    assert_eq!(
        rig.nginx.publish_times("live").len(),
        1,
        "the old destination was published to again"
    );
    obs.status("live");
}

/// Pushes a camera that does not exist while in standby and waits for the
/// rollback; then the box is back in standby on the previous config and can
/// go live.
fn camera_push_rolls_back(obs: &mut Observer, rig: &Rig, version: u64, previous: u64) {
    let layer = "[video]\nsource = \"v4l2:/dev/video99\"\n";
    obs.push(
        &topic("config/desired"),
        cli_sign(&rig.key, DEVICE, version, None, layer),
    );
    assert_applied(&obs.reported(Some(version), WAIT), version, layer);
    // The rebuilt box does not reach standby: its capture fails.
    obs.until_json("events", WAIT, |v| {
        v["type"] == "state_changed" && v["to"] == "error"
    });
    let r = obs.until_json("config/reported", TRIAL_WAIT, |v| v["status"] != "applied");
    assert_eq!(r["status"], "rolled_back", "{r}");
    assert!(
        r["error"].as_str().is_some_and(|e| !e.is_empty()),
        "rollback without a reason: {r}"
    );
    obs.until_json("events", WAIT, |v| v["type"] == "config_rolled_back");
    let st = obs.until_json("status", WAIT, |v| {
        v["state"] == "standby" && v["config_version"] == previous
    });
    assert_eq!(st["video"]["encoder"], "x264enc", "{st}");
    go_live(obs, rig, &format!("rb-live-{version}"));
    assert!(rig.nginx.media_flows(), "no media after the rollback");

    // The failed version is not taken again.
    obs.push(
        &topic("config/desired"),
        cli_sign(
            &rig.key,
            DEVICE,
            version,
            None,
            "[video]\nbitrate_kbps = 500\n",
        ),
    );
    let r = obs.until_json("config/reported", WAIT, |v| v["status"] == "rejected");
    assert_eq!(r["field"], "version", "{r}");
}

#[test]
fn a_push_that_breaks_the_camera_rolls_back_after_an_earlier_good_push() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let rig = Rig::start(broker.port);
    obs.wait_standby();
    let good = product("eggs", "2.50");
    obs.push(
        &topic("config/desired"),
        cli_sign(&rig.key, DEVICE, 1, None, &good),
    );
    assert_applied(&obs.reported(Some(1), WAIT), 1, &good);
    camera_push_rolls_back(&mut obs, &rig, 2, 1);
    assert_tag_ok(&mut obs, "rb-tag", "eggs");
}

/// The box has run nothing but its local file when the broken push comes.
#[test]
fn a_push_that_breaks_the_camera_rolls_back_on_a_fresh_box() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let rig = Rig::start(broker.port);
    obs.wait_standby();
    camera_push_rolls_back(&mut obs, &rig, 1, 0);
}

/// xorshift64: the SIGKILL moments, reproducible from the printed seed.
fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// SIGKILL, then the same config again on the same state dir: the box must
/// come up in standby on the old or the new layer, never on a broken one, and
/// end up on the new one (the broker hands the retained push over again).
/// Returns the reports the restarted daemon published before it answered a
/// command sent once it was in standby.
fn kill_and_restart(
    obs: &mut Observer,
    rig: &mut Rig,
    old: u64,
    new: u64,
    when: &str,
) -> Vec<Value> {
    rig.daemon.kill_with(libc::SIGKILL);
    assert!(
        rig.daemon.wait_exit(Duration::from_secs(10)).is_some(),
        "{when}: the daemon survived SIGKILL"
    );
    obs.until(&topic("availability"), WAIT, |m| m.payload == "offline");
    obs.clear();
    rig.daemon = Farmcast::start(&rig.toml);
    let st = obs.wait_standby();
    let v = st["config_version"].as_u64().unwrap_or(u64::MAX);
    assert!(
        v == old || v == new,
        "{when}: came up on config_version {v}, expected {old} or {new}: {st}"
    );
    // The retained push reaches the daemon before this command (one
    // subscription, one queue), so its report, if any, is out by the answer.
    let r = obs.command(
        &format!("k-logs-{new}"),
        json!({"cmd": "logs", "args": {"lines": 1}}),
    );
    assert_eq!(r["ok"], true, "{when}: {r}");
    let reports = obs.pending("config/reported");
    for r in &reports {
        assert_eq!(r["status"], "applied", "{when}: after restart: {r}");
        assert_eq!(r["version"], new, "{when}: after restart: {r}");
    }
    let st = obs.until_json("status", TRIAL_WAIT, |s| {
        s["state"] == "standby" && s["config_version"] == new
    });
    assert!(
        rig.daemon.is_running(),
        "{when}: the daemon died after restart: {st}"
    );
    reports
}

#[test]
fn sigkill_while_applying_leaves_a_box_that_starts_on_a_valid_config() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let mut rig = Rig::start(broker.port);
    obs.wait_standby();

    // Right after the report: the layer was stored before it was reported, so
    // the restarted box holds it and has nothing to apply again.
    let layer = "[video]\nframerate = 10\n";
    obs.push(
        &topic("config/desired"),
        cli_sign(&rig.key, DEVICE, 1, None, layer),
    );
    assert_applied(&obs.reported(Some(1), WAIT), 1, layer);
    let again = kill_and_restart(&mut obs, &mut rig, 0, 1, "kill after the report");
    assert!(
        again.is_empty(),
        "the applied and reported layer was lost over SIGKILL: {again:?}"
    );

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("SIGKILL moments seed: {seed}");
    for round in 0..4u64 {
        let version = round + 2;
        let layer = format!("[video]\nframerate = {}\n", 11 + round);
        let delay = Duration::from_millis(next_rand(&mut seed) % 2500);
        obs.push(
            &topic("config/desired"),
            cli_sign(&rig.key, DEVICE, version, None, &layer),
        );
        std::thread::sleep(delay);
        let when = format!("kill {delay:?} after pushing version {version}");
        kill_and_restart(&mut obs, &mut rig, version - 1, version, &when);
    }
    go_live(&mut obs, &rig, "k-live");
    assert!(rig.nginx.media_flows(), "no media after the restarts");
}

#[test]
fn group_layers_apply_and_the_device_layer_overrides_them() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let rig = Rig::start(broker.port);
    obs.wait_standby();

    let g1 = format!("[video]\nbitrate_kbps = 700\n{}", product("eggs", "2.50"));
    obs.push(
        &group_topic("north"),
        cli_sign(&rig.key, "group:north", 5, None, &g1),
    );
    assert_applied(&obs.reported(Some(5), WAIT), 5, &g1);
    assert_tag_ok(&mut obs, "gr-1", "eggs");
    let st = obs.fresh_status(&rig.daemon);
    assert_eq!(st["video"]["bitrate_kbps"], 700, "{st}");
    assert_eq!(st["config_version"], 0, "no device layer yet: {st}");

    // The device layer replaces the product list; the group's bitrate stays.
    let d1 = product("cheese", "40.00");
    obs.push(
        &topic("config/desired"),
        cli_sign(&rig.key, DEVICE, 1, None, &d1),
    );
    assert_applied(&obs.reported(Some(1), WAIT), 1, &d1);
    assert_tag_ok(&mut obs, "gr-2", "cheese");
    assert_tag_unknown(&mut obs, "gr-3", "eggs");
    let st = obs.fresh_status(&rig.daemon);
    assert_eq!(st["video"]["bitrate_kbps"], 700, "{st}");
    assert_eq!(st["config_version"], 1, "{st}");

    // A newer group layer: its bitrate takes effect, its products do not.
    let g2 = format!("[video]\nbitrate_kbps = 650\n{}", product("honey", "8.00"));
    obs.push(
        &group_topic("north"),
        cli_sign(&rig.key, "group:north", 6, None, &g2),
    );
    assert_applied(&obs.reported(Some(6), WAIT), 6, &g2);
    assert_tag_ok(&mut obs, "gr-4", "cheese");
    assert_tag_unknown(&mut obs, "gr-5", "honey");
    let st = obs.fresh_status(&rig.daemon);
    assert_eq!(st["video"]["bitrate_kbps"], 650, "{st}");
    assert_eq!(st["config_version"], 1, "{st}");

    // The device layer sets the bitrate too: it wins over the group's.
    let d2 = format!("[video]\nbitrate_kbps = 900\n{d1}");
    obs.push(
        &topic("config/desired"),
        cli_sign(&rig.key, DEVICE, 2, None, &d2),
    );
    assert_applied(&obs.reported(Some(2), WAIT), 2, &d2);
    obs.until_json("status", WAIT, |v| v["config_version"] == 2);
    let st = obs.fresh_status(&rig.daemon);
    assert_eq!(st["video"]["bitrate_kbps"], 900, "{st}");
    go_live(&mut obs, &rig, "gr-live");
    assert!(rig.nginx.media_flows(), "no media with the layered config");
}
