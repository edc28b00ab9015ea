//! A mosquitto broker on a free loopback port, anonymous, no persistence:
//! the technicians' MQTT server for tests of status, events and commands.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::GroupChild;
use super::{free_port, require, wait_for_tcp};

pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    proc: Option<GroupChild>,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let bin = require("mosquitto", "mosquitto");
        let dir = tempfile::tempdir().expect("tempdir for mosquitto");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
            ),
        )
        .expect("write mosquitto.conf");
        let err = std::fs::File::create(&log).expect("create mosquitto log");
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        let mut proc = GroupChild::spawn(cmd, "mosquitto");
        if !wait_for_tcp(port, Duration::from_secs(10)) {
            proc.kill();
            panic!(
                "mosquitto did not listen on {port}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Mosquitto {
            port,
            dir,
            proc: Some(proc),
        }
    }

    /// `mqtt://127.0.0.1:PORT`, as `mqtt.url` takes it.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

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
