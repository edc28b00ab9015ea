//! The streaming core's contract, black box: the `farmcast` binary against
//! real ingest servers (nginx-rtmp, srt-live-transmit), judged by ffprobe on
//! what the servers received. Small pictures (320x240, x264 ultrafast) and one
//! test at a time, so two cores keep up.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::ffprobe::{self, Expect};
use common::{Farmcast, NginxRtmp, SrtListener};

/// How long each test stays on air once the server has accepted the publish.
const ON_AIR: Duration = Duration::from_secs(4);
/// Time for the daemon to build its pipeline and connect, on a busy machine.
const CONNECT: Duration = Duration::from_secs(20);

fn expect_for(cfg: &TestConfig, on_air: Duration) -> Expect {
    let whole_seconds = on_air.as_secs() as usize;
    Expect {
        width: cfg.width,
        height: cfg.height,
        fps: cfg.fps,
        min_frames: whole_seconds.saturating_sub(1) * cfg.fps as usize,
    }
}

/// Waits for the first publish at `app`, or fails with the daemon's log.
fn wait_published(nginx: &NginxRtmp, app: &str, daemon: &Farmcast) {
    assert!(
        nginx.wait_for_publishes(app, 1, CONNECT),
        "no publish reached nginx {app} within {CONNECT:?}\n--- farmcast log ---\n{}\n--- nginx ---\n{}",
        daemon.log(),
        nginx.error_log()
    );
}

/// Stops the daemon as systemd would and checks it exits by itself.
fn stop_daemon(daemon: &mut Farmcast) {
    let status = daemon.stop();
    assert!(
        status.is_some(),
        "farmcast did not exit within 10 s of SIGTERM\n{}",
        daemon.log()
    );
}

/// The one recording with media in it, once nginx has closed it.
fn single_recording(nginx: &NginxRtmp) -> PathBuf {
    assert!(
        nginx.wait_idle(Duration::from_secs(10)),
        "nginx still has a publisher after the daemon stopped: {}",
        nginx.stat()
    );
    let recs = nginx.nonempty_recordings();
    assert_eq!(recs.len(), 1, "expected one recording, found {recs:?}");
    recs[0].clone()
}

#[test]
fn autostart_publishes_valid_h264_aac_to_one_rtmp_destination() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start();
    let cfg = TestConfig::new().destination("main", &nginx.url("live"), Some("t1"));
    let mut daemon = Farmcast::start(&cfg.toml());
    wait_published(&nginx, "live", &daemon);
    let published_at = Instant::now();
    std::thread::sleep(ON_AIR);
    let on_air = published_at.elapsed();
    stop_daemon(&mut daemon);
    let rec = single_recording(&nginx);
    assert!(
        rec.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("t1")),
        "the stream key names the stream: {}",
        rec.display()
    );
    ffprobe::assert_valid_av(&rec, &expect_for(&cfg, on_air));
}

#[test]
fn publishes_to_two_rtmp_servers_and_srt_at_once() {
    let _serial = common::serial();
    let first = NginxRtmp::start();
    let second = NginxRtmp::start();
    let mut srt = SrtListener::start();
    let cfg = TestConfig::new()
        .destination("first", &first.url("live"), Some("a"))
        .destination("second", &second.url("live"), Some("b"))
        .destination("srt", &srt.url(), None);
    let mut daemon = Farmcast::start(&cfg.toml());
    wait_published(&first, "live", &daemon);
    wait_published(&second, "live", &daemon);
    assert!(
        common::wait_until(CONNECT, || srt.received_bytes() > 0),
        "nothing reached the SRT listener\n{}",
        daemon.log()
    );
    std::thread::sleep(ON_AIR);
    stop_daemon(&mut daemon);
    srt.stop();
    // Each destination may have joined up to a few seconds apart; ask only for
    // a valid stream of at least one second from each.
    let expect = expect_for(&cfg, Duration::from_secs(2));
    ffprobe::assert_valid_av(&single_recording(&first), &expect);
    ffprobe::assert_valid_av(&single_recording(&second), &expect);
    ffprobe::assert_valid_av(&srt.path(), &expect);
}

#[test]
fn a_dead_destination_does_not_hurt_the_live_one() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start();
    let dead = format!("rtmp://127.0.0.1:{}/live", common::free_port());
    let cfg = TestConfig::new()
        .destination("dead", &dead, Some("nobody"))
        .destination("alive", &nginx.url("live"), Some("alive"));
    let mut daemon = Farmcast::start(&cfg.toml());
    wait_published(&nginx, "live", &daemon);
    let published_at = Instant::now();
    std::thread::sleep(ON_AIR);
    let on_air = published_at.elapsed();
    assert!(
        daemon.is_running(),
        "farmcast exited with a dead destination\n{}",
        daemon.log()
    );
    let answer = daemon.sim("led tally");
    assert!(answer.starts_with("ok"), "sim socket answered {answer:?}");
    assert_eq!(
        nginx.publish_times("live").len(),
        1,
        "the live destination was republished (torn down by the dead one?)"
    );
    stop_daemon(&mut daemon);
    ffprobe::assert_valid_av(&single_recording(&nginx), &expect_for(&cfg, on_air));
}

#[test]
fn standby_publishes_nothing_until_go_live_is_pressed() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start();
    let cfg =
        TestConfig::new()
            .autostart(false)
            .destination("main", &nginx.url("live"), Some("show"));
    let mut daemon = Farmcast::start(&cfg.toml());
    // The socket answering means the daemon is up and in standby.
    let tally = daemon.sim("led tally");
    assert!(tally.starts_with("ok"), "sim socket answered {tally:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        nginx.publish_times("live").is_empty() && nginx.nonempty_recordings().is_empty(),
        "published while in standby\n{}",
        daemon.log()
    );
    // Standby is a slow blink: over a little more than one period the light
    // is seen both lit and dark (never solid, which would mean on air).
    let mut seen = std::collections::HashSet::new();
    let until = Instant::now() + Duration::from_millis(1300);
    while Instant::now() < until {
        seen.insert(daemon.sim("led tally"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen.contains("ok on") && seen.contains("ok off"),
        "tally does not blink in standby: {seen:?}"
    );

    assert_eq!(daemon.sim("press go_live"), "ok");
    wait_published(&nginx, "live", &daemon);
    let published_at = Instant::now();
    std::thread::sleep(ON_AIR);
    let on_air = published_at.elapsed();
    assert_eq!(daemon.sim("led tally"), "ok on", "tally dark while live");
    stop_daemon(&mut daemon);
    ffprobe::assert_valid_av(&single_recording(&nginx), &expect_for(&cfg, on_air));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// Combined stdout and stderr of `farmcast check-config`, with its success.
fn check(path: &Path) -> (bool, String) {
    let out = common::farmcast::check_config(path);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Whether `text` cites line `line`, as `FILE:7:` or `line 7`.
fn cites_line(text: &str, line: usize) -> bool {
    text.contains(&format!(":{line}:")) || text.contains(&format!("line {line}"))
}

#[test]
fn check_config_names_the_key_and_line_of_a_wrong_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "bad.toml",
        "device_id = \"farm-01\"\n\n[video]\nwidth = \"wide\"\nheight = 720\n",
    );
    let (ok, text) = check(&path);
    assert!(!ok, "a string width was accepted: {text}");
    assert!(text.contains("video.width"), "no key path in: {text}");
    assert!(cites_line(&text, 4), "no line 4 in: {text}");
}

#[test]
fn check_config_names_an_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "typo.toml",
        "device_id = \"farm-01\"\n[video]\nwidth = 640\n\n[gpio]\ngo_live_pn = 17\n",
    );
    let (ok, text) = check(&path);
    assert!(!ok, "an unknown key was accepted: {text}");
    assert!(
        text.contains("go_live_pn"),
        "the unknown key is not named: {text}"
    );
    assert!(cites_line(&text, 6), "no line 6 in: {text}");
}

#[test]
fn check_config_accepts_the_shipped_demo_config() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo.toml");
    assert!(demo.is_file(), "{} is missing", demo.display());
    let (ok, text) = check(&demo);
    assert!(ok, "configs/demo.toml rejected: {text}");
}

#[test]
fn check_config_accepts_the_test_config() {
    // Guards the streaming tests: their config must be valid as written.
    let nginx_url = "rtmp://127.0.0.1:1935/live";
    let cfg = TestConfig::new().destination("main", nginx_url, Some("k"));
    let path = write(cfg.dir.path(), "test.toml", &cfg.toml());
    let (ok, text) = check(&path);
    assert!(
        ok,
        "the streaming tests' config is rejected: {text}\n{}",
        cfg.toml()
    );
}
