//! RTMPS end to end: nginx-rtmp behind a real TLS terminator (stunnel4), a
//! test CA made here with the openssl CLI, and the box pushing
//! `rtmps://localhost:PORT/live` with that CA trusted through
//! `live.tls_ca_file` (rtmp2sink's TLS is GIO's, through glib-networking; see
//! `src/media/tls_trust.rs`). The server must record decodable frames; a
//! server whose certificate comes from another CA must be refused, with the
//! reason in the log and an `error` event, and nothing must reach nginx.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::config::TestConfig;
use common::ffprobe::{self, Expect};
use common::observer::{topic, Observer, WAIT};
use common::process::GroupChild;
use common::{free_port, require, serial, wait_for_tcp, Farmcast, Mosquitto, NginxRtmp};

/// A CA and a server certificate for `localhost` / 127.0.0.1 it signed.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(require("openssl", "openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).expect("pki dir");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let subj = format!("/CN={name} test CA");
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", &subj,
    ]);
    openssl(&d, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&d, &csr);
    std::fs::write(d.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("ext");
    openssl(
        &d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    Pki {
        ca: d.join("ca.pem"),
        cert: d.join("srv.pem"),
        key: d.join("srv.key"),
    }
}

/// stunnel4 in the foreground: TLS on `port`, plain TCP to nginx behind it.
struct Stunnel {
    port: u16,
    _proc: GroupChild,
    _dir: tempfile::TempDir,
}

impl Stunnel {
    fn start(pki: &Pki, backend: u16) -> Stunnel {
        let bin = require("stunnel4", "stunnel4");
        let dir = tempfile::tempdir().expect("stunnel dir");
        let port = free_port();
        let conf = dir.path().join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[rtmps]\naccept = 127.0.0.1:{port}\n\
                 connect = 127.0.0.1:{backend}\ncert = {}\nkey = {}\n",
                pki.cert.display(),
                pki.key.display()
            ),
        )
        .expect("stunnel.conf");
        let mut cmd = Command::new(bin);
        cmd.arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let proc = GroupChild::spawn(cmd, "stunnel4");
        assert!(
            wait_for_tcp(port, Duration::from_secs(10)),
            "stunnel4 did not listen"
        );
        Stunnel {
            port,
            _proc: proc,
            _dir: dir,
        }
    }
}

/// The daemon's config: MQTT, one `rtmps://` destination through `tls`,
/// `live.tls_ca_file = ca`.
fn daemon_config(tc: &TestConfig, broker: u16, ca: &Path) -> String {
    let mut t = tc.mqtt_table(broker);
    let live: toml::Table = toml::from_str(&format!(
        "[live]\ntls_ca_file = {:?}\n",
        ca.display().to_string()
    ))
    .expect("live fragment");
    farmcast::config::merge(&mut t, &live);
    toml::to_string(&t).expect("config TOML")
}

#[test]
fn pushes_rtmps_through_a_tls_terminator_with_the_test_ca_trusted() {
    let _g = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path(), "farm");
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "rtmps-ok", true, &[&topic("#")]);
    let nginx = NginxRtmp::start();
    let tls = Stunnel::start(&pki, nginx.port);
    let tc = TestConfig::new().destination(
        "tls",
        &format!("rtmps://localhost:{}/live", tls.port),
        Some("tlskey"),
    );
    let mut d = Farmcast::start(&daemon_config(&tc, broker.port, &pki.ca));
    assert!(
        nginx.wait_for_publishes("live", 1, WAIT),
        "no publish through TLS\n--- farmcast ---\n{}\n--- nginx ---\n{}",
        d.log(),
        nginx.error_log()
    );
    let st = obs.until_json("status", WAIT, |v| {
        v["state"] == "live" && v["destinations"][0]["state"] == "up"
    });
    assert_eq!(st["destinations"][0]["name"], "tls", "{st}");
    std::thread::sleep(Duration::from_secs(4));
    assert!(d.stop().is_some(), "no exit on SIGTERM\n{}", d.log());
    assert!(nginx.wait_idle(Duration::from_secs(10)), "{}", nginx.stat());
    let recs = nginx.nonempty_recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    ffprobe::assert_valid_av(
        &recs[0],
        &Expect {
            width: tc.width,
            height: tc.height,
            fps: tc.fps,
            min_frames: 2 * tc.fps as usize,
        },
    );
}

#[test]
fn a_certificate_from_another_ca_is_refused_and_said_so() {
    let _g = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let trusted = make_pki(dir.path(), "farm");
    let other = make_pki(dir.path(), "mallory");
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "rtmps-bad", true, &[&topic("#")]);
    let nginx = NginxRtmp::start();
    let tls = Stunnel::start(&other, nginx.port);
    let tc = TestConfig::new().destination(
        "tls",
        &format!("rtmps://localhost:{}/live", tls.port),
        Some("tlskey"),
    );
    let mut d = Farmcast::start(&daemon_config(&tc, broker.port, &trusted.ca));
    let st = obs.until_json("status", WAIT, |v| {
        v["destinations"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("Unacceptable TLS certificate"))
    });
    assert_eq!(st["destinations"][0]["state"], "down", "{st}");
    assert!(
        d.log().contains("Unacceptable TLS certificate"),
        "{}",
        d.log()
    );
    assert!(
        !nginx.wait_for_publishes("live", 1, Duration::from_secs(3)),
        "a server with an untrusted certificate got the stream"
    );
    assert!(d.stop().is_some(), "no exit on SIGTERM\n{}", d.log());
}
