//! `farmcast fleet status|push|history` against a real mosquitto and many
//! simulated boxes (the daemon's fleet session and MQTT client, no media):
//! a group push lands everywhere, a canary stops a bad push, a box that was
//! away applies late, and hostile retained messages break nothing.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use farmcast::fleet::tools::sim::{SimOptions, Simulator};

mod common;
use common::fleet::openssl_keypair;
use common::{wait_until, Mosquitto};

const GROUP: &str = "north";
/// Needs a new pipeline: the daemon's restart path (and `pending` in a show).
const LAYER: &str = "[video]\nframerate = 25\n";

struct Fleet {
    broker: Mosquitto,
    dir: tempfile::TempDir,
    key: PathBuf,
    sim: Option<Simulator>,
}

fn fleet(boxes: usize, tune: impl FnOnce(&mut SimOptions)) -> Fleet {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = openssl_keypair(dir.path(), "manager");
    let pem = std::fs::read_to_string(&public).unwrap();
    let mut o = SimOptions::new(&broker.url(), GROUP, boxes, &dir.path().join("boxes"), &pem);
    o.status_interval = Duration::from_secs(2);
    tune(&mut o);
    let online = boxes - o.offline.len();
    let sim = Simulator::start(&o).expect("simulator");
    assert!(
        wait_until(Duration::from_secs(30), || sim.connected() >= online),
        "only {} of {online} boxes connected",
        sim.connected()
    );
    std::fs::write(dir.path().join("layer.toml"), LAYER).unwrap();
    let f = Fleet {
        broker,
        dir,
        key,
        sim: Some(sim),
    };
    // Connected is not yet told: each box's `online` and first status must be
    // at the broker before a push picks its canaries from them (under load
    // a box whose status came late was taken for offline).
    let told = || {
        status_json(&f)
            .iter()
            .filter(|r| r["online"] == true && r["state"].is_string())
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || told() >= online),
        "only {} of {online} boxes told their status",
        told()
    );
    f
}

impl Fleet {
    fn sim(&self) -> &Simulator {
        self.sim.as_ref().unwrap()
    }

    fn layer(&self) -> PathBuf {
        self.dir.path().join("layer.toml")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(common::farmcast::BIN);
        c.arg("fleet")
            .args(args)
            .args(["--broker", &self.broker.url()]);
        c
    }

    fn push(&self, extra: &[&str]) -> Command {
        let mut c = self.cmd(&["push"]);
        c.arg("--key")
            .arg(&self.key)
            .args(["--version", "7"])
            // The simulated trial is 0.3 s: a short hold sees its rollbacks.
            .args(["--hold", "1"])
            .args(extra)
            .arg(self.layer());
        c
    }

    fn box_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join("boxes").join(id)
    }

    /// The group layer the box stored on disk, if any.
    fn stored_group_version(&self, id: &str) -> Option<u64> {
        layers_json(&self.box_dir(id))["groups"][GROUP]["version"].as_u64()
    }
}

fn layers_json(box_dir: &Path) -> serde_json::Value {
    std::fs::read(box_dir.join("state/fleet/layers.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn run(mut c: Command) -> (Output, String) {
    let out = c.output().expect("run farmcast fleet");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn status_json(f: &Fleet) -> Vec<serde_json::Value> {
    let (out, text) = run(f.cmd(&["status", "--group", GROUP, "--json"]));
    assert!(out.status.success(), "{text}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_group_push_reaches_200_boxes_and_status_shows_it() {
    // 200 boxes share one disk here (each has its own in the field): their
    // fsyncs would measure the CI machine's disk queue, not the fleet.
    let f = fleet(200, |o| o.fsync = false);
    let t0 = Instant::now();
    let (out, text) = run(f.push(&["--group", GROUP, "--wait", "60"]));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("applied 200/200"), "{text}");
    eprintln!("200 boxes applied in {:?}", t0.elapsed());

    // Every box stored the signed group layer; the tool did not just believe them.
    for id in f.sim().ids() {
        assert_eq!(f.stored_group_version(&id), Some(7), "{id}");
    }
    let rows = status_json(&f);
    assert_eq!(rows.len(), 200);
    for r in &rows {
        assert_eq!(r["online"], true, "{r}");
        assert_eq!(r["state"], "standby", "{r}");
        assert_eq!(r["reported"]["version"], 7, "{r}");
        assert_eq!(r["reported"]["status"], "applied", "{r}");
    }
    // The human table says the same, one line per box.
    let (_, table) = run(f.cmd(&["status", "--group", GROUP]));
    assert!(
        table.starts_with("200 boxes in group north: 200 online"),
        "{table}"
    );
    assert_eq!(table.matches("v7 applied").count(), 200, "{table}");
}

#[test]
fn a_canary_that_meets_a_rejecting_box_stops_before_the_group_push() {
    // sim-0000 trusts another key: the first canary box rejects.
    let f = fleet(12, |o| o.reject = vec![0]);
    let (out, text) = run(f.push(&[
        "--group",
        GROUP,
        "--canary",
        "2",
        "--canary-hold",
        "1",
        "--wait",
        "30",
    ]));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("STOPPED: canary box sim-0000 rejected: signature"),
        "{text}"
    );
    assert!(!text.contains("pushed version 7 to group"), "{text}");
    // Nothing went to the group: no retained group envelope, no box has it.
    let (_, history) = run(f.cmd(&["history", "--group", GROUP]));
    assert!(history.contains("group north: nothing pushed"), "{history}");
    for id in f.sim().ids() {
        assert_eq!(f.stored_group_version(&id), None, "{id}");
    }
    // The other canary box took its device-level push.
    assert_eq!(
        layers_json(&f.box_dir("sim-0001"))["device"]["version"].as_u64(),
        Some(7)
    );
}

#[test]
fn a_healthy_canary_goes_on_to_the_group() {
    let f = fleet(10, |_| {});
    let (out, text) = run(f.push(&[
        "--group",
        GROUP,
        "--canary",
        "20%",
        "--canary-hold",
        "1",
        "--wait",
        "30",
    ]));
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("canary: 2 box(es) first: sim-0000, sim-0001"),
        "{text}"
    );
    assert!(text.contains("pushing to the group"), "{text}");
    assert!(text.contains("applied 10/10"), "{text}");
    for id in f.sim().ids() {
        assert_eq!(f.stored_group_version(&id), Some(7), "{id}");
    }
    let (_, history) = run(f.cmd(&["history", "--group", GROUP]));
    assert!(
        history.contains("group north: desired v7 group:north"),
        "{history}"
    );
    assert!(history.contains("10 group v7 applied"), "{history}");
}

#[test]
fn a_rollback_after_applied_fails_the_push() {
    // sim-0002's pipeline fails with the new config: it applies, then its
    // trial ends and it goes back to its last good config.
    let f = fleet(4, |o| o.fail = vec![2]);
    let (out, text) = run(f.push(&["--group", GROUP, "--wait", "30"]));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("watching 1 s more for rollbacks"), "{text}");
    assert!(text.contains("applied 3/4 · rolled back 1"), "{text}");
    assert!(
        text.contains("sim-0002")
            && text.contains("rolled_back")
            && text.contains("did not reach standby"),
        "{text}"
    );
    // The box runs its last good config again: the group layer is gone from it.
    assert_eq!(f.stored_group_version("sim-0002"), None);
    assert_eq!(f.stored_group_version("sim-0001"), Some(7));
}

#[test]
fn a_box_offline_during_the_push_applies_on_return_and_is_tallied_late() {
    let f = fleet(6, |_| {});
    f.sim().set_online(3, false);
    // Its will says offline before the push looks.
    assert!(wait_until(Duration::from_secs(10), || {
        status_json(&f)
            .iter()
            .any(|r| r["id"] == "sim-0003" && r["online"] == false)
    }));
    let mut child = f
        .push(&["--group", GROUP, "--wait", "40"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The five online boxes answered; the sixth is still away.
    while !lines
        .iter()
        .any(|l: &String| l.contains("applied 5/6") && l.contains("offline 1"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("no tally with the box offline: {lines:#?}"),
        }
    }
    assert_eq!(f.stored_group_version("sim-0003"), None);
    f.sim().set_online(3, true);
    let status = child.wait().unwrap();
    lines.extend(rx.try_iter());
    let text = lines.join("\n");
    assert!(status.success(), "{text}");
    assert!(text.contains("applied 6/6 (late 1)"), "{text}");
    assert!(
        text.contains("sim-0003") && text.contains("late: was offline"),
        "{text}"
    );
    assert_eq!(f.stored_group_version("sim-0003"), Some(7));
}

fn mosquitto_pub(broker: &Mosquitto, topic: &str, payload: &[u8]) {
    use std::io::Write as _;
    let mut c = Command::new("mosquitto_pub")
        .args([
            "-p",
            &broker.port.to_string(),
            "-r",
            "-q",
            "1",
            "-t",
            topic,
            "-s",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (Debian package mosquitto-clients)");
    c.stdin.take().unwrap().write_all(payload).unwrap();
    assert!(c.wait().unwrap().success(), "mosquitto_pub {topic}");
}

#[test]
fn hostile_retained_messages_do_not_break_status_or_push() {
    let f = fleet(3, |_| {});
    let b = &f.broker;
    let huge = format!("{{\"state\":\"{}\"}}", "A".repeat(2 << 20));
    mosquitto_pub(b, "farmcast/huge/status", huge.as_bytes());
    mosquitto_pub(b, "farmcast/bad/status", b"{not json\x1b[2J");
    mosquitto_pub(b, "farmcast/bad/config/reported", b"[1,2,3]");
    let long_id = "x".repeat(300);
    mosquitto_pub(b, &format!("farmcast/{long_id}/status"), b"{}");
    let many_groups: Vec<String> = (0..500).map(|i| format!("g{i}\u{1b}[31m")).collect();
    let spoof = serde_json::json!({
        "state": "\u{1b}[2Jlive".repeat(1000),
        "groups": [GROUP],
        "errors": {"capture": "E".repeat(10_000)},
        "version": many_groups,
    });
    mosquitto_pub(b, "farmcast/spoof/status", spoof.to_string().as_bytes());
    mosquitto_pub(b, "farmcast/spoof/availability", b"online");
    let rep = serde_json::json!({"version": 7, "status": "rejected", "hash": "h".repeat(100_000 / 2),
        "error": "\u{1b}[2J".repeat(5000)});
    mosquitto_pub(
        b,
        "farmcast/spoof/config/reported",
        rep.to_string().as_bytes(),
    );

    let (out, text) = run(f.cmd(&["status"]));
    eprintln!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(
        text.len() < 8_000,
        "{} bytes:\n{}",
        text.len(),
        &text[..2000.min(text.len())]
    );
    assert!(
        !text.contains('\u{1b}'),
        "control characters echoed: {text}"
    );
    assert!(!text.contains(&long_id), "{text}");
    assert!(text.contains("status unreadable"), "{text}");
    assert!(
        !text.contains("huge"),
        "a message above the limit reached the tool: {text}"
    );
    for id in ["sim-0000", "sim-0001", "sim-0002", "bad", "spoof"] {
        assert!(text.contains(id), "{id}: {text}");
    }

    // The spoofed box claims the group and never answers: the push still
    // lands on the real boxes and ends at --wait, with bounded output.
    let (out, text) = run(f.push(&["--group", GROUP, "--wait", "6"]));
    assert!(text.len() < 8_000, "{} bytes", text.len());
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("applied 3/4"), "{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");
    for id in f.sim().ids() {
        assert_eq!(f.stored_group_version(&id), Some(7), "{id}");
    }
}

#[test]
fn the_tools_log_in_with_the_daemons_options_and_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("broker.passwd");
    let out = Command::new(common::require("mosquitto_passwd", "mosquitto"))
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["fleet-hq", "s3cret-hq-pass"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let broker = Mosquitto::start_with(false, &format!("password_file {}", passwd.display()));
    let status = |password: &str| {
        let file = dir.path().join("pw");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        let mut c = Command::new(common::farmcast::BIN);
        c.args(["fleet", "status", "--broker", &broker.url()])
            .args(["--username", "fleet-hq", "--password-file"])
            .arg(&file);
        run(c)
    };
    let (out, text) = status("s3cret-hq-pass");
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("0 boxes: 0 online"), "{text}");
    let (out, text) = status("wrong-pass-123");
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    assert!(!text.contains("wrong-pass-123"), "{text}");
}
