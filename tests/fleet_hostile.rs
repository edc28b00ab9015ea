//! Fleet pushes and start-up configs tried as a stranger on the broker and as
//! an unlucky technician would: the real `farmcast` binary, real nginx-rtmp
//! and mosquitto, the test camera at 320x240.
//!
//! - A box without trusted keys refuses an unsigned push that re-points its
//!   destination at another server, and its show is not cut.
//! - `apply` counts only when signed (a v2 envelope); the same version sent
//!   again with a signed `apply: now` is acted on, not silently dropped.
//! - A push changing GPIO pins is `pending` until the daemon restarts.
//! - A missing, empty or unreadable config runs the last known good; with
//!   none the daemon stops at once with one line and exit status 78.
//!
//! Tests take `common::serial()` and wait on conditions with generous
//! deadlines; nothing asserts how fast anything is.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::config::TestConfig;
use common::fleet::cli_sign;
use common::observer::{topic, Observer, DEVICE, WAIT};
use common::process::GroupChild;
use common::{serial, wait_until, Farmcast, Mosquitto, NginxRtmp};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use ed25519_dalek::SigningKey;
use farmcast::fleet::envelope;
use serde_json::{json, Value};

fn fleet_manager(port: u16) -> Observer {
    Observer::new(port, "fleet-manager", true, &["#"])
}

/// The daemon's config: `tc` on the broker, plus `fleet` (a TOML table body).
fn daemon_toml(tc: &TestConfig, mqtt_port: u16, fleet: &str) -> String {
    let mut t = tc.mqtt_table(mqtt_port);
    let extra: toml::Table = toml::from_str(&format!("[fleet]\n{fleet}")).expect("fleet table");
    t.extend(extra);
    toml::to_string(&t).expect("daemon config as TOML")
}

/// A signing key written as PEM files (private for `config sign`, public
/// for the box) in `dir`; returns (private PEM path, public PEM path).
fn keypair(dir: &Path, seed: u8) -> (SigningKey, PathBuf, PathBuf) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let private = dir.join("manager.pem");
    let public = dir.join("trusted.pem");
    std::fs::write(
        &private,
        key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(
        &public,
        key.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    (key, private, public)
}

fn reported(obs: &mut Observer, version: u64, status: &str) -> Value {
    obs.until_json("config/reported", WAIT, |v| {
        v["version"] == version && v["status"] == status
    })
}

fn go_live(obs: &mut Observer, nginx: &NginxRtmp) {
    let r = obs.command("go", json!({"cmd": "go_live"}));
    assert_eq!(r["ok"], true, "go_live: {r}");
    assert!(
        nginx.wait_for_publishes("live", 1, WAIT),
        "nginx saw no publish: {}",
        nginx.error_log()
    );
    obs.status("live");
}

/// Lets a few status periods pass (time for a wrong cut to show), then
/// checks the show is still the first and only publish on `nginx`, with
/// media, and nothing reached `other`.
fn assert_show_uncut(obs: &mut Observer, nginx: &NginxRtmp, other: &NginxRtmp, when: &str) {
    for _ in 0..4 {
        obs.status("live");
    }
    assert!(nginx.media_flows(), "{when}: no media at the server");
    assert_eq!(
        nginx.publish_times("live").len(),
        1,
        "{when}: the show was cut and published again"
    );
    assert!(
        other.publish_times("live").is_empty() && other.recorded_bytes() == 0,
        "{when}: something was published to the stranger's server"
    );
}

/// A layer re-pointing the box's destination at `server`.
fn repoint(server: &NginxRtmp) -> String {
    format!(
        "[[destinations]]\nname = \"main\"\nurl = {:?}\nkey = \"main-key\"\n",
        server.url("live")
    )
}

#[test]
fn an_unsigned_push_to_a_box_without_trusted_keys_is_refused_and_the_show_goes_on() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let nginx = NginxRtmp::start();
    let stranger = NginxRtmp::start();
    let tc = TestConfig::new().autostart(false).destination(
        "main",
        &nginx.url("live"),
        Some("main-key"),
    );
    let toml = daemon_toml(&tc, broker.port, "groups = [\"north\"]\n");
    let daemon = Farmcast::start(&toml);
    obs.wait_standby();
    go_live(&mut obs, &nginx);

    let layer = repoint(&stranger);
    let v1 = json!({"version": 1, "target": DEVICE, "config": layer, "apply": "now"});
    let v2 = json!({"v": 2, "version": 2, "target": DEVICE, "config": layer, "apply": "now"});
    for (version, env) in [(1, v1), (2, v2)] {
        obs.push(&topic("config/desired"), env.to_string());
        let r = obs.until_json("config/reported", WAIT, |v| v["version"] == version);
        assert_eq!(r["status"], "rejected", "{r}");
        assert_eq!(r["field"], "fleet.trusted_keys_file", "{r}");
        obs.until_json("events", WAIT, |v| {
            v["type"] == "config_rejected" && v["version"] == version
        });
    }
    // The group topic is the other door: refused the same way.
    let group = json!({"version": 3, "target": "group:north", "config": layer});
    obs.push("farmcast/fleet/north/config/desired", group.to_string());
    let r = obs.until_json("config/reported", WAIT, |v| v["version"] == 3);
    assert_eq!(
        (&r["status"], &r["field"]),
        (&json!("rejected"), &json!("fleet.trusted_keys_file")),
        "{r}"
    );
    assert_show_uncut(&mut obs, &nginx, &stranger, "after the unsigned pushes");
    assert!(
        !tc.state_dir().join("fleet/layers.json").exists(),
        "a refused push was stored"
    );
    drop(daemon);
}

#[test]
fn apply_counts_only_when_signed_and_a_signed_resend_is_acted_on() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let nginx = NginxRtmp::start();
    let second = NginxRtmp::start();
    let tc = TestConfig::new().autostart(false).destination(
        "main",
        &nginx.url("live"),
        Some("main-key"),
    );
    let (_, private, public) = keypair(tc.dir.path(), 7);
    let fleet = format!("trusted_keys_file = {:?}\n", public.display().to_string());
    let daemon = Farmcast::start(&daemon_toml(&tc, broker.port, &fleet));
    obs.wait_standby();
    go_live(&mut obs, &nginx);

    // A destination change waits for the show.
    let layer = repoint(&second);
    obs.push(
        &topic("config/desired"),
        cli_sign(&private, DEVICE, 2, None, &layer),
    );
    let r = reported(&mut obs, 2, "pending");
    assert!(
        r["note"].as_str().is_some_and(|n| n.contains("show")),
        "{r}"
    );

    // Someone on the broker adds "apply": "now" to the signed v1 envelope.
    let mut forged: Value =
        serde_json::from_str(&cli_sign(&private, DEVICE, 2, None, &layer)).unwrap();
    forged["apply"] = json!("now");
    obs.push(&topic("config/desired"), forged.to_string());
    let r = reported(&mut obs, 2, "rejected");
    assert_eq!(r["field"], "apply", "{r}");
    assert_show_uncut(&mut obs, &nginx, &second, "after the forged apply");

    // The manager signs the same version with apply now (v2): the box cuts over.
    let now = cli_sign(&private, DEVICE, 2, Some("now"), &layer);
    let parsed = envelope::parse(now.as_bytes()).expect("config sign prints an envelope");
    assert_eq!(
        (parsed.v, parsed.apply),
        (Some(2), Some(envelope::Apply::Now))
    );
    obs.push(&topic("config/desired"), now);
    reported(&mut obs, 2, "applied");
    assert!(
        second.wait_for_publishes("live", 1, Duration::from_secs(60)),
        "the show did not go back on air at the new destination: {}",
        second.error_log()
    );
    obs.until_json("status", WAIT, |v| {
        v["state"] == "live" && v["config_version"] == 2
    });
    drop(daemon);
}

#[test]
fn a_gpio_push_is_pending_until_the_daemon_restarts() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let tc = TestConfig::new().autostart(false);
    let (_, private, public) = keypair(tc.dir.path(), 8);
    let fleet = format!("trusted_keys_file = {:?}\n", public.display().to_string());
    let toml = daemon_toml(&tc, broker.port, &fleet);
    let mut daemon = Farmcast::start(&toml);
    obs.wait_standby();

    let layer = "[gpio]\ngo_live_pin = 5\n";
    obs.push(
        &topic("config/desired"),
        cli_sign(&private, DEVICE, 1, None, layer),
    );
    let r = obs.until_json("config/reported", WAIT, |v| v["version"] == 1);
    assert_eq!(
        r["status"], "pending",
        "reported as in force while the old pin runs: {r}"
    );
    assert_eq!(r["field"], "gpio.go_live_pin", "{r}");
    assert!(
        r["note"].as_str().is_some_and(|n| n.contains("restart")),
        "{r}"
    );
    let ev = obs.until_json("events", WAIT, |v| v["type"] == "config_pending");
    assert!(
        ev["note"].as_str().is_some_and(|n| n.contains("restart")),
        "{ev}"
    );
    let st = obs.until_json("status", WAIT, |v| v["state"] == "standby");
    assert_eq!(st["config_version"], 0, "{st}");
    daemon.stop();

    // After a restart the new pin is in force and the report says so.
    obs.clear();
    let daemon = Farmcast::start(&toml);
    let st = obs.wait_standby();
    assert_eq!(st["config_version"], 1, "{st}");
    reported(&mut obs, 1, "applied");
    drop(daemon);
}

// ---------------------------------------------------------------------------
// Start-up config
// ---------------------------------------------------------------------------

/// `farmcast run --config CONFIG` as systemd starts it (`STATE_DIRECTORY`
/// set), its output into `log`.
fn run_daemon(config: &Path, state: &Path, log: &Path) -> GroupChild {
    let out = std::fs::File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log");
    let mut cmd = Command::new(common::farmcast::BIN);
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .env("STATE_DIRECTORY", state)
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    GroupChild::spawn(cmd, "farmcast")
}

fn stop(mut daemon: GroupChild) {
    daemon.signal(libc::SIGTERM);
    assert!(
        daemon.wait_timeout(Duration::from_secs(15)).is_some(),
        "farmcast did not stop on SIGTERM"
    );
}

/// Puts something that is not a config file at a path where nothing is.
type Breakage = fn(&Path);

#[test]
fn a_missing_empty_or_unreadable_config_runs_the_last_known_good() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = fleet_manager(broker.port);
    let tc = TestConfig::new().autostart(false);
    let state = tc.state_dir();
    let etc = tempfile::tempdir().unwrap();
    let config = etc.path().join("farmcast.toml");
    let log = etc.path().join("farmcast.log");
    std::fs::write(&config, daemon_toml(&tc, broker.port, "groups = []\n")).unwrap();

    let daemon = run_daemon(&config, &state, &log);
    obs.wait_standby();
    let lkg = state.join("fleet/last_good.json");
    assert!(
        wait_until(WAIT, || lkg.exists()),
        "no last known good saved at standby"
    );
    stop(daemon);
    let saved = std::fs::read(&lkg).unwrap();
    let name = config.display().to_string();

    let breakages: [(&str, Breakage); 4] = [
        ("deleted", |_| {}),
        ("empty", |p| std::fs::write(p, "").unwrap()),
        ("a directory", |p| std::fs::create_dir(p).unwrap()),
        ("a dangling symlink", |p| {
            std::os::unix::fs::symlink(p.with_extension("gone"), p).unwrap()
        }),
    ];
    for (what, break_it) in breakages {
        match std::fs::symlink_metadata(&config) {
            Ok(m) if m.is_dir() => std::fs::remove_dir(&config).unwrap(),
            Ok(_) => std::fs::remove_file(&config).unwrap(),
            Err(_) => {}
        }
        break_it(&config);
        obs.clear();
        let daemon = run_daemon(&config, &state, &log);
        obs.until(&topic("availability"), WAIT, |m| m.payload == "online");
        let st = obs.status("standby");
        assert_eq!(st["device_id"], DEVICE, "config {what}: {st}");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let said: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("ERROR") && l.contains(&name) && l.contains("last known good"))
            .collect();
        assert_eq!(
            said.len(),
            1,
            "config {what}: one error line naming the file:\n{text}"
        );
        stop(daemon);
        assert_eq!(
            std::fs::read(&lkg).unwrap(),
            saved,
            "config {what}: the last known good was rewritten"
        );
    }
}

#[test]
fn with_no_last_known_good_an_empty_config_stops_the_daemon_with_one_line() {
    let etc = tempfile::tempdir().unwrap();
    let state = etc.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = etc.path().join("farmcast.toml");
    let log = etc.path().join("farmcast.log");
    for text in ["", "\n  \n", "# nothing here yet\n"] {
        std::fs::write(&config, text).unwrap();
        let mut daemon = run_daemon(&config, &state, &log);
        let status = daemon
            .wait_timeout(Duration::from_secs(20))
            .expect("the daemon ran on built-in defaults instead of stopping");
        assert_eq!(status.code(), Some(78), "{text:?}: exit status {status:?}");
        let out = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{text:?}: not one line:\n{out}");
        assert!(
            lines[0].contains(&config.display().to_string())
                && lines[0].contains("no last known good"),
            "{}",
            lines[0]
        );
    }
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/farmcast.service"),
    )
    .unwrap();
    assert!(
        unit.lines()
            .any(|l| l.trim() == "RestartPreventExitStatus=78"),
        "the unit would restart a box with no config forever"
    );
}
