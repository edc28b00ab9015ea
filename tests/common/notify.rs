//! A stand-in for systemd's end of `NOTIFY_SOCKET`: a datagram socket in a
//! temp dir that keeps every message the daemon sends (`READY=1`,
//! `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`) with its arrival time.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What systemd would have received on `NOTIFY_SOCKET`, with arrival times.
pub struct NotifyListener {
    pub path: PathBuf,
    got: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifyListener {
    /// Binds `dir/notify.sock` and starts collecting.
    pub fn bind(dir: &Path) -> NotifyListener {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if let Ok(mut g) = sink.lock() {
                    g.push((Instant::now(), text));
                }
            }
        });
        NotifyListener { path, got }
    }

    /// When each datagram carrying `line` (e.g. `WATCHDOG=1`) arrived.
    pub fn times(&self, line: &str) -> Vec<Instant> {
        self.datagrams()
            .into_iter()
            .filter(|(_, m)| m.lines().any(|l| l == line))
            .map(|(t, _)| t)
            .collect()
    }

    /// Every datagram so far, in arrival order.
    pub fn datagrams(&self) -> Vec<(Instant, String)> {
        self.got.lock().expect("notify log").clone()
    }
}
