//! A mosquitto broker on a free loopback port, anonymous: the technicians'
//! MQTT server for tests of status, events and commands.
//!
//! [`Mosquitto::start`] keeps nothing on disk. [`Mosquitto::start_persistent`]
//! saves its state on every change, so that a SIGKILL ([`Mosquitto::kill`])
//! keeps persistent sessions: a subscription survives the outage and the
//! broker queues what arrives for it until [`Mosquitto::launch`] brings it back.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::GroupChild;
use super::{free_port, require, wait_for_tcp, wait_until};

// `information` carries the "running" line a launch waits for.
const LOGGING: &str =
    "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n";

pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    proc: Option<GroupChild>,
}

impl Mosquitto {
    /// A broker without persistence.
    pub fn start() -> Mosquitto {
        Mosquitto::with_conf(|port, _| {
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{LOGGING}")
        })
    }

    /// A broker without persistence, with `extra` lines appended to its
    /// config (e.g. `max_packet_size 8192`, `password_file …`, `acl_file …`);
    /// anonymous clients only when `anonymous`.
    pub fn start_with(anonymous: bool, extra: &str) -> Mosquitto {
        Mosquitto::with_conf(|port, _| {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous {anonymous}\npersistence false\n{LOGGING}{extra}\n"
            )
        })
    }

    /// A broker that saves its state in its temp dir on every change.
    pub fn start_persistent() -> Mosquitto {
        Mosquitto::with_conf(|port, dir| {
            let mut conf = format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nautosave_interval 1\nautosave_on_changes true\n\
                 {LOGGING}",
                dir.display()
            );
            // As root, mosquitto would become the `mosquitto` user, which cannot
            // write the private temp dir.
            // SAFETY: a plain syscall without arguments.
            if unsafe { libc::geteuid() } == 0 {
                conf.push_str("user root\n");
            }
            conf
        })
    }

    fn with_conf(conf: impl Fn(u16, &Path) -> String) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir for mosquitto");
        let mut b = Mosquitto {
            port: 0,
            dir,
            proc: None,
        };
        // free_port() can race another test's server for the port: try anew.
        let mut why = String::new();
        for _ in 0..3 {
            b.port = free_port();
            std::fs::write(
                b.dir.path().join("mosquitto.conf"),
                conf(b.port, b.dir.path()),
            )
            .expect("write mosquitto.conf");
            match b.try_launch() {
                Ok(()) => return b,
                Err(e) => why = e,
            }
        }
        panic!("{why}");
    }

    /// Starts the broker process (again, after [`kill`](Self::kill)) on the
    /// same port and config; the log is appended to.
    pub fn launch(&mut self) {
        if let Err(why) = self.try_launch() {
            panic!("{why}");
        }
    }

    fn try_launch(&mut self) -> Result<(), String> {
        let bin = require("mosquitto", "mosquitto");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .expect("mosquitto log");
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut proc = GroupChild::spawn(cmd, "mosquitto");
        // Listening, and it is this broker that listens: free_port() can
        // race another test's server for the same port, and a connect to
        // that one would pass for ours. A launch appends one "running" line.
        let runs_before = self.log().matches(" running").count();
        let ours = wait_until(Duration::from_secs(10), || {
            self.log().matches(" running").count() > runs_before
        });
        if !ours || !wait_for_tcp(self.port, Duration::from_secs(10)) || !proc.is_running() {
            proc.kill();
            return Err(format!(
                "mosquitto did not listen on {}: {}",
                self.port,
                self.log()
            ));
        }
        self.proc = Some(proc);
        Ok(())
    }

    /// `mqtt://127.0.0.1:PORT`, as `mqtt.url` takes it.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Whether a persistent broker has saved its state at least once.
    pub fn db_exists(&self) -> bool {
        self.dir.path().join("mosquitto.db").is_file()
    }

    /// SIGKILL: no goodbye to anyone, the way a broker host loses power.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
