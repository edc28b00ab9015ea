//! A box with a part missing stays up, reachable and fed to systemd's
//! watchdog: the real `farmcast run` with a real mosquitto (and nginx-rtmp
//! where it streams), a real `NOTIFY_SOCKET` datagram listener standing in
//! for systemd, and parts that are not there: an encoder the box lacks, a
//! camera that does not exist, GPIO through rppal on a PC, a serial scale on
//! a port that is not there, a sim socket path taken by a file.
//!
//! Each test fails on a daemon that exits for a missing part, feeds the
//! watchdog only while frames flow, or never reopens what it could not open.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::notify::NotifyListener;
use common::observer::{short, topic, Observer, WAIT};
use common::process::GroupChild;
use common::{serial, wait_until, Mosquitto, NginxRtmp};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_farmcast");

/// `farmcast run` on `config`, with `NOTIFY_SOCKET` when given; its output
/// in a file, shown when the test fails.
struct Daemon {
    dir: tempfile::TempDir,
    proc: GroupChild,
}

impl Daemon {
    fn start(config: &toml::Table, notify: Option<&Path>) -> Daemon {
        let dir = tempfile::tempdir().expect("daemon dir");
        let path = dir.path().join("farmcast.toml");
        std::fs::write(&path, toml::to_string(config).expect("config TOML")).expect("config");
        let log = std::fs::File::create(dir.path().join("log")).expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        if let Some(n) = notify {
            cmd.env("NOTIFY_SOCKET", n);
        }
        Daemon {
            proc: GroupChild::spawn(cmd, "farmcast"),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// SIGTERM as systemd sends it: a clean exit.
    fn stop(&mut self) {
        self.proc.signal(libc::SIGTERM);
        let status = self.proc.wait_timeout(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "no clean exit on SIGTERM: {status:?}"
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.proc.kill();
        if std::thread::panicking() {
            let log = self.log();
            eprintln!("--- farmcast log (last 60 lines) ---");
            let lines: Vec<&str> = log.lines().rev().take(60).collect();
            for l in lines.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// One line to the sim socket, its answer.
fn sim(socket: &Path, line: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer)?;
    Ok(answer.trim_end().to_string())
}

/// The tally light over 1.5 s: both lit and dark means it blinks a pattern.
fn tally_blinks(socket: &Path) -> bool {
    let mut seen = (false, false);
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        match sim(socket, "led tally").as_deref() {
            Ok("ok on") => seen.0 = true,
            Ok("ok off") => seen.1 = true,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    seen == (true, true)
}

fn set(table: &mut toml::Table, path: &str, value: toml::Value) {
    let (section, key) = path.split_once('.').expect("section.key");
    let t = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(Default::default()));
    if let toml::Value::Table(t) = t {
        t.insert(key.into(), value);
    }
}

fn s(v: &str) -> toml::Value {
    toml::Value::String(v.into())
}

fn observer(port: u16, id: &str) -> Observer {
    let topics = ["status", "events", "cmd/result", "availability"].map(topic);
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    Observer::new(port, id, true, &refs)
}

fn error_text(status: &Value, part: &str) -> String {
    status["errors"][part]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A box whose capture cannot be built: READY, then watchdog pings for 12 s
/// while it sits in `error` (systemd would restart it after 20 s without
/// them), the error pattern on the tally, the capture retried on its own,
/// status naming why, and a technician's `logs` answered.
fn capture_missing(video_key: &str, value: &str, expect_in_error: &str) {
    let broker = Mosquitto::start();
    let mut obs = observer(broker.port, "obs-capture");
    let tc = TestConfig::new().autostart(false);
    let mut cfg = tc.mqtt_table(broker.port);
    set(&mut cfg, video_key, s(value));
    let notify = NotifyListener::bind(tc.dir.path());
    let mut d = Daemon::start(&cfg, Some(&notify.path));

    assert!(
        wait_until(WAIT, || !notify.times("READY=1").is_empty()),
        "no READY=1 on NOTIFY_SOCKET"
    );
    let ready = notify.times("READY=1")[0];
    let r = obs.command("logs-1", json!({"cmd": "logs", "args": {"lines": 5}}));
    assert_eq!(r["ok"], true, "logs: {r}");
    assert!(
        tally_blinks(tc.sim_socket().as_path()),
        "tally shows no pattern"
    );

    std::thread::sleep((ready + Duration::from_secs(12)).saturating_duration_since(Instant::now()));
    assert!(d.running(), "the daemon exited");
    let end = Instant::now();
    let mut times: Vec<Instant> = notify
        .times("WATCHDOG=1")
        .into_iter()
        .filter(|t| *t >= ready)
        .collect();
    assert!(
        times.len() >= 3,
        "watchdog pings after READY: {}",
        times.len()
    );
    times.insert(0, ready);
    times.push(end);
    let gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    // systemd's limit is WatchdogSec=20; half of it is a generous bound.
    assert!(
        gap < Duration::from_secs(10),
        "longest gap without a ping: {gap:?}"
    );

    let st = obs.until_json("status", WAIT, |v| {
        v["state"] == "error" && error_text(v, "capture").contains(expect_in_error)
    });
    assert!(st["errors"].get("gpio").is_none(), "{st}");
    let retries = obs
        .pending("events")
        .iter()
        .filter(|e| e["type"] == "error")
        .filter(|e| {
            e["what"]
                .as_str()
                .unwrap_or_default()
                .starts_with("capture failed")
        })
        .count();
    assert!(
        retries >= 2,
        "the capture was tried {retries} times in 12 s"
    );
    let st = obs.until_json("status", WAIT, |v| v["state"] == "error");
    assert!(error_text(&st, "capture").contains(expect_in_error), "{st}");
    d.stop();
}

#[test]
fn a_box_without_its_encoder_stays_up_fed_and_answering() {
    capture_missing("video.encoder", "nosuchenc", "nosuchenc");
}

#[test]
fn a_box_without_its_camera_stays_up_fed_and_answering() {
    capture_missing("video.source", "v4l2:/dev/video99", "/dev/video99");
}

/// A pseudo-terminal standing in for a USB-serial scale: the slave's path and
/// the master to write readings into.
fn pty() -> (std::fs::File, PathBuf) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: openpty writes two fds and a NUL-terminated name into buffers
    // we own and sized as it requires.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            name.as_mut_ptr(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: fcntl on the fd we were just given.
    unsafe { libc::fcntl(master, libc::F_SETFL, libc::O_NONBLOCK) };
    // SAFETY: the name is NUL-terminated by openpty.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: master is an fd openpty just gave us; the File owns it now.
    // The slave stays open (leaked) so the master never reads hang-up.
    (unsafe { std::fs::File::from_raw_fd(master) }, path.into())
}

/// GPIO through rppal on this PC (UnknownModel) and a serial scale on a port
/// that is not there: the box stays up, says what is missing, and still goes
/// live over MQTT onto a real nginx-rtmp. A scale plugged in later (a pty
/// linked at the port's path) is opened by the retry and read.
#[test]
fn missing_gpio_and_scale_are_reported_and_go_live_still_streams() {
    let _g = serial();
    let broker = Mosquitto::start();
    let nginx = NginxRtmp::start();
    let mut obs = observer(broker.port, "obs-hw");
    let tc =
        TestConfig::new()
            .autostart(false)
            .destination("main", &nginx.url("live"), Some("hwkey"));
    let port = tc.dir.path().join("ttyFAKE");
    let mut cfg = tc.mqtt_table(broker.port);
    set(&mut cfg, "gpio.backend", s("rppal"));
    set(&mut cfg, "scale.kind", s("serial"));
    set(
        &mut cfg,
        "scale.serial_port",
        s(&port.display().to_string()),
    );
    set(&mut cfg, "video.framerate", toml::Value::Integer(15));
    let mut d = Daemon::start(&cfg, None);

    let st = obs.until_json("status", WAIT, |v| {
        v["state"] == "standby"
            && error_text(v, "gpio").contains("not a Raspberry Pi")
            && error_text(v, "scale").contains("ttyFAKE")
    });
    assert!(st["errors"].get("capture").is_none(), "{st}");
    obs.until_json("events", WAIT, |e| {
        e["type"] == "error" && e["part"] == "gpio"
    });

    let r = obs.command("live-1", json!({"cmd": "go_live"}));
    assert_eq!(r["ok"], true, "go_live: {r}");
    assert!(
        nginx.wait_for_publishes("live", 1, WAIT),
        "nginx saw no publish; {}",
        nginx.error_log()
    );
    obs.until_json("status", WAIT, |v| v["state"] == "live");

    // The scale appears while the show runs.
    let (mut master, slave) = pty();
    std::os::unix::fs::symlink(&slave, &port).expect("link the pty at the port");
    let deadline = Instant::now() + WAIT;
    let st = loop {
        // Non-blocking: before the daemon opens the port nobody reads.
        let _ = master.write(b"ST,GS,+  1.250kg\r\n");
        obs.drain();
        let seen = obs
            .backlog
            .iter()
            .rev()
            .find(|m| m.topic == topic("status"));
        if let Some(v) = seen.map(|m| m.json()) {
            let kg = v["scale"]["weight_kg"].as_f64().unwrap_or_default();
            if (kg - 1.25).abs() < 0.01 && v["errors"].get("scale").is_none() {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline && d.running(),
            "the scale was never read: {}",
            short(
                &obs.backlog
                    .last()
                    .map(|m| m.payload.clone())
                    .unwrap_or_default()
            )
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        error_text(&st, "gpio").contains("not a Raspberry Pi"),
        "{st}"
    );

    std::thread::sleep(Duration::from_secs(2));
    let r = obs.command("end-1", json!({"cmd": "end_show"}));
    assert_eq!(r["ok"], true, "end_show: {r}");
    d.stop();
    assert!(nginx.wait_idle(WAIT), "nginx still busy");
    let recs = nginx.nonempty_recordings();
    assert_eq!(recs.len(), 1, "recordings at nginx: {recs:?}");
    let streams = common::ffprobe::streams(&recs[0]);
    assert!(
        streams
            .iter()
            .any(|s| s.codec_type == "video" && s.codec_name == "h264"),
        "{streams:?}"
    );
    assert!(
        common::ffprobe::count_video_frames(&recs[0]) >= 30,
        "too short"
    );
}

/// The sim socket's path is taken by a plain file: the GPIO cannot open, the
/// box runs on and says so; once the file is gone the retry binds the socket,
/// the tally shows the state's pattern and the button reaches the show.
#[test]
fn a_gpio_that_appears_later_is_opened_by_the_retry() {
    let broker = Mosquitto::start();
    let mut obs = observer(broker.port, "obs-sim");
    let tc = TestConfig::new().autostart(false);
    let mut cfg = tc.mqtt_table(broker.port);
    // No encoding: this test is about the buttons and lights.
    set(&mut cfg, "video.encoder", s("nosuchenc"));
    let socket = tc.sim_socket();
    std::fs::write(&socket, "not a socket").expect("block the socket path");
    let mut d = Daemon::start(&cfg, None);

    obs.until_json("status", WAIT, |v| {
        error_text(v, "gpio").contains("not a socket")
    });
    assert!(d.running(), "the daemon exited");
    std::fs::remove_file(&socket).expect("unblock");
    // Retries back off to at most 30 s.
    assert!(
        wait_until(Duration::from_secs(45), || sim(&socket, "led tally")
            .is_ok()),
        "the sim socket was never bound"
    );
    let st = obs.until_json("status", WAIT, |v| {
        v["state"] == "error" && v["errors"].get("gpio").is_none()
    });
    assert!(error_text(&st, "capture").contains("nosuchenc"), "{st}");
    assert!(
        tally_blinks(&socket),
        "tally shows no pattern after reopening"
    );
    obs.clear();
    assert_eq!(sim(&socket, "press go_live").expect("press"), "ok");
    obs.until_json("events", WAIT, |e| {
        e["type"] == "error"
            && e["what"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot go live")
    });
    d.stop();
}

/// A camera that appears while the box sits in `error` (a clip written
/// after start, as a USB camera would be plugged in) is picked up by the
/// box's own retry: standby, `errors` empty, and the watchdog still fed now
/// that frames flow.
#[test]
fn a_camera_that_appears_later_is_picked_up_by_the_retry() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = observer(broker.port, "obs-late-cam");
    let tc = TestConfig::new().autostart(false);
    let clip = tc.dir.path().join("clip.y4m");
    let mut cfg = tc.mqtt_table(broker.port);
    set(
        &mut cfg,
        "video.source",
        s(&format!("file:{}", clip.display())),
    );
    set(&mut cfg, "video.framerate", toml::Value::Integer(15));
    let notify = NotifyListener::bind(tc.dir.path());
    let mut d = Daemon::start(&cfg, Some(&notify.path));

    obs.until_json("status", WAIT, |v| {
        v["state"] == "error" && error_text(v, "capture").contains("clip.y4m")
    });
    let tmp = tc.dir.path().join("clip.tmp");
    let out = Command::new(common::require("ffmpeg", "ffmpeg"))
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=15",
            "-t",
            "2",
        ])
        .args(["-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-y"])
        .arg(&tmp)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &clip).expect("the clip appears at once");

    let st = obs.until_json("status", Duration::from_secs(45), |v| {
        v["state"] == "standby"
    });
    assert!(st.get("errors").is_none(), "{st}");
    let back = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.running(), "the daemon exited");
    let pings = notify
        .times("WATCHDOG=1")
        .into_iter()
        .filter(|t| *t >= back)
        .count();
    assert!(pings >= 2, "watchdog pings in standby: {pings}");
    d.stop();
}

/// An HX711 scale on a PC (its GPIO cannot open): the box stays up, status
/// and an `error` event name the scale, the box keeps trying, and `tare`
/// says why it cannot.
#[test]
fn a_scale_that_cannot_open_is_reported_and_retried() {
    let broker = Mosquitto::start();
    let mut obs = observer(broker.port, "obs-hx711");
    let tc = TestConfig::new().autostart(false);
    let mut cfg = tc.mqtt_table(broker.port);
    // No encoding: this test is about the scale.
    set(&mut cfg, "video.encoder", s("nosuchenc"));
    set(&mut cfg, "scale.kind", s("hx711"));
    set(&mut cfg, "scale.hx711_dout_pin", toml::Value::Integer(5));
    set(&mut cfg, "scale.hx711_sck_pin", toml::Value::Integer(6));
    let mut d = Daemon::start(&cfg, None);

    let st = obs.until_json("status", WAIT, |v| error_text(v, "scale").contains("HX711"));
    assert!(st["errors"].get("gpio").is_none(), "{st}");
    obs.until_json("events", WAIT, |e| {
        e["type"] == "error" && e["part"] == "scale"
    });
    let r = obs.command("tare-1", json!({"cmd": "tare"}));
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or_default()
            .contains("errors.scale"),
        "{r}"
    );
    // Still missing a few retries later, still up, still saying so.
    std::thread::sleep(Duration::from_secs(4));
    assert!(d.running(), "the daemon exited");
    assert!(
        d.log().matches("runs without it and retries").count() == 1,
        "a missing part is reported once, not at every retry"
    );
    obs.clear();
    let st = obs.until_json("status", WAIT, |_| true);
    assert!(error_text(&st, "scale").contains("HX711"), "{st}");
    d.stop();
}
