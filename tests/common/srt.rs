//! An SRT ingest: `srt-live-transmit` listening on a free loopback port and
//! writing what it receives (MPEG-TS) to a file. `stdbuf -o0` keeps its stdout
//! unbuffered so the file is current while the stream runs; `stop()` ends it
//! with SIGINT so the last bytes land too. It keeps listening after a caller
//! leaves (auto-reconnect), like a real ingest.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::GroupChild;
use super::{free_port, require, wait_for_udp};

pub struct SrtListener {
    pub port: u16,
    dir: tempfile::TempDir,
    proc: Option<GroupChild>,
}

impl SrtListener {
    pub fn start() -> SrtListener {
        let bin = require("srt-live-transmit", "srt-tools");
        let stdbuf = require("stdbuf", "coreutils");
        let dir = tempfile::tempdir().expect("tempdir for srt");
        // UDP has no "connection refused" to probe with, so a port taken by a
        // UDP socket is a risk free_port() (TCP) does not see; retry on a new one.
        for _ in 0..5 {
            let port = free_port();
            let out = std::fs::File::create(dir.path().join("received.ts")).expect("create .ts");
            let err = std::fs::File::create(dir.path().join("stderr.log")).expect("create log");
            let mut cmd = Command::new(&stdbuf);
            cmd.arg("-o0")
                .arg(&bin)
                .arg("-q")
                .arg(format!("srt://127.0.0.1:{port}?mode=listener"))
                .arg("file://con")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let mut proc = GroupChild::spawn(cmd, "srt-live-transmit");
            if wait_for_udp(port, Duration::from_secs(5)) && proc.is_running() {
                return SrtListener {
                    port,
                    dir,
                    proc: Some(proc),
                };
            }
            proc.kill();
        }
        panic!(
            "srt-live-transmit never listened: {}",
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
        );
    }

    /// A listener started elsewhere (inside a network namespace, say) on
    /// `port`, writing `received.ts` and `stderr.log` in `dir`.
    #[allow(dead_code)]
    pub fn adopt(port: u16, dir: tempfile::TempDir, proc: GroupChild) -> SrtListener {
        SrtListener {
            port,
            dir,
            proc: Some(proc),
        }
    }

    /// `srt://127.0.0.1:PORT`, the URL a caller connects to (not for an
    /// adopted listener, which listens elsewhere).
    pub fn url(&self) -> String {
        format!("srt://127.0.0.1:{}", self.port)
    }

    /// The MPEG-TS received so far.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("received.ts")
    }

    pub fn received_bytes(&self) -> u64 {
        std::fs::metadata(self.path()).map(|m| m.len()).unwrap_or(0)
    }

    /// Stops the listener so the file is complete.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(libc::SIGINT, Duration::from_secs(3));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SrtListener {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}
