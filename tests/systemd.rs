//! The shipped systemd unit: it must pass `systemd-analyze verify`, keep its
//! `systemd-analyze security` exposure at or below 3.0, and keep the settings
//! the daemon and GStreamer depend on; and the daemon must speak the
//! `Type=notify` protocol the unit promises, to a real `NOTIFY_SOCKET`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::notify::NotifyListener;
use common::{serial, wait_until, Farmcast};

const MAX_EXPOSURE: f64 = 3.0;
const SHIPPED_EXEC_START: &str =
    "ExecStart=/usr/bin/farmcast run --config /etc/farmcast/farmcast.toml";

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/farmcast.service")
}

fn unit_text() -> String {
    let path = unit_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs systemd-analyze; a missing binary is a failure naming the package.
fn analyze(args: &[&str]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run systemd-analyze ({e}); install the Debian package `systemd` \
                 (apt-get install systemd)"
            )
        })
}

/// `Key=value` pairs of the `[Service]` section, in order, repeated keys kept.
fn service_settings(text: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.starts_with('#') && !line.starts_with(';') {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    out
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let text = unit_text();
    assert!(
        text.lines().any(|l| l.trim() == SHIPPED_EXEC_START),
        "the unit must start the daemon as `{SHIPPED_EXEC_START}`"
    );
    // verify checks that ExecStart's binary exists: point it at the one cargo
    // just built, in a copy that keeps the unit's name.
    let bin = env!("CARGO_BIN_EXE_farmcast");
    let patched = text.replace("/usr/bin/farmcast", bin);
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("farmcast.service");
    std::fs::write(&copy, patched).expect("writing the unit copy");

    let copy_str = copy.to_string_lossy();
    let out = analyze(&["verify", "--man=no", &copy_str]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on mere warnings ("Unknown key ... ignoring"), so any
    // diagnostic at all is a failure.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify failed ({}):\n{stderr}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn unit_exposure_is_at_most_three() {
    let path = unit_path();
    let path_str = path.to_string_lossy();
    let out = analyze(&["security", "--offline=yes", "--no-pager", &path_str]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .chain(stderr.lines())
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!("no 'Overall exposure level' line (does this systemd support --offline?):\n{stdout}{stderr}")
        });
    // "→ Overall exposure level for farmcast.service: 1.7 OK 🙂"
    let exposure: f64 = line
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse exposure from {line:?}"));
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}; see systemd/README.md\n{stdout}"
    );
}

#[test]
fn unit_keeps_what_the_daemon_and_gstreamer_need() {
    let settings = service_settings(&unit_text());
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // The daemon's side of it: `the_daemon_tells_systemd_it_is_ready_and_stopping`.
    assert_eq!(get("Type"), ["notify"], "systemd must wait for READY=1");
    assert_eq!(get("Restart"), ["always"]);
    assert_eq!(get("User"), ["farmcast"]);
    let watchdog: u64 = get("WatchdogSec")
        .first()
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("WatchdogSec in whole seconds");
    assert!((5..=60).contains(&watchdog), "WatchdogSec={watchdog}");
    // A clean end of show takes up to 5 s after SIGTERM.
    let stop: u64 = get("TimeoutStopSec")
        .first()
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec in whole seconds");
    assert!(stop > 5, "TimeoutStopSec={stop}");

    // PrivateDevices hides /dev/video*; W^X breaks ORC's JIT in GStreamer.
    for (key, bad) in [("PrivateDevices", "yes"), ("MemoryDenyWriteExecute", "yes")] {
        assert!(
            !get(key).contains(&bad),
            "{key}={bad} breaks capture/encode"
        );
    }
    assert_eq!(get("DevicePolicy"), ["closed"]);
    let allowed = get("DeviceAllow");
    for dev in [
        "char-video4linux rw",
        "char-alsa rw",
        "char-gpiochip rw",
        "/dev/gpiomem rw",
        "char-ttyUSB rw",
        "char-ttyACM rw",
        // The hardware encoders: VA-API, Rockchip MPP, Jetson, the Pi's OpenMAX.
        "char-drm rw",
        "/dev/mpp_service rw",
        "char-nvhost* rw",
        "/dev/nvmap rw",
        "/dev/vchiq rw",
    ] {
        assert!(allowed.contains(&dev), "DeviceAllow={dev} missing");
    }
    let groups = get("SupplementaryGroups").join(" ");
    for g in ["video", "audio", "gpio", "dialout", "render"] {
        assert!(
            groups.split_whitespace().any(|x| x == g),
            "group {g} missing"
        );
    }
    // Streams go to the internet.
    assert!(get("IPAddressDeny").is_empty());
    assert!(get("PrivateNetwork").iter().all(|v| *v != "yes"));
}

/// `Type=notify` and `WatchdogSec` mean systemd waits for `READY=1` and
/// restarts a box that stops pinging: the daemon, started as systemd starts
/// it (with `NOTIFY_SOCKET`), must send READY=1 with STATUS=standby once up,
/// watchdog pings while healthy, and STOPPING=1 on SIGTERM.
#[test]
fn the_daemon_tells_systemd_it_is_ready_and_stopping() {
    let _g = serial();
    let tc = TestConfig::new().autostart(false);
    let notify = NotifyListener::bind(tc.dir.path());
    let mut daemon = Farmcast::start_notifying(&tc.toml(), &notify.path);
    let wait = Duration::from_secs(30);
    assert!(
        wait_until(wait, || !notify.times("READY=1").is_empty()),
        "no READY=1 on NOTIFY_SOCKET within {wait:?}; got {:?}",
        notify.datagrams()
    );
    let ready = notify.times("READY=1")[0];
    assert_eq!(
        notify.times("READY=1").len(),
        1,
        "READY=1 more than once: {:?}",
        notify.datagrams()
    );
    // READY=1 comes with the state it was reached in.
    let with_ready: Vec<String> = notify
        .datagrams()
        .into_iter()
        .filter(|(t, _)| *t == ready)
        .map(|(_, m)| m)
        .collect();
    assert!(
        with_ready
            .iter()
            .any(|m| m.lines().any(|l| l == "STATUS=standby")),
        "READY=1 without STATUS=standby: {with_ready:?}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || notify
            .times("WATCHDOG=1")
            .iter()
            .any(|t| *t > ready)),
        "no WATCHDOG=1 after READY=1: {:?}",
        notify.datagrams()
    );
    let term = Instant::now();
    let status = daemon.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean exit on SIGTERM: {status:?}"
    );
    assert!(
        notify.times("STOPPING=1").iter().any(|t| *t >= term),
        "no STOPPING=1 after SIGTERM: {:?}",
        notify.datagrams()
    );
}
