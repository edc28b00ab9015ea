//! The integration-test harness: real servers on free loopback ports, each
//! started from its own binary in a temp dir and killed (whole process group)
//! when its handle is dropped, plus `ffprobe` helpers to judge what arrived.
//!
//! Contract for tests: a server handle is ready when `start()` returns (its
//! port listens); a missing binary panics with the Debian package to install,
//! because a skipped test would hide a broken CI image. Heavy tests (anything
//! that encodes video) take [`serial()`] first, so two cores are never asked
//! to run two encoders at once.

#![allow(dead_code, unused_imports)]

pub mod config;
pub mod farmcast;
pub mod ffprobe;
pub mod fleet;
pub mod mosquitto;
pub mod nginx;
pub mod notify;
pub mod observer;
pub mod process;
pub mod srt;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use farmcast::Farmcast;
pub use mosquitto::Mosquitto;
pub use nginx::NginxRtmp;
pub use srt::SrtListener;

static LOCK: Mutex<()> = Mutex::new(());

/// Takes the global lock that serialises encoder-heavy tests. A test that
/// panicked while holding it poisons it; later tests still run.
pub fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A loopback port that is free for TCP and UDP and that no other call in
/// this test process has handed out.
///
/// Picked below the kernel's ephemeral range (`ip_local_port_range`): the
/// port `bind(:0)` returns is one the kernel also gives to outgoing
/// connections, so another test's client socket could hold it by the time
/// our server binds (a CI run lost nginx's bind that way). A process-wide
/// set keeps two parallel tests from being handed the same number between
/// one's pick and its server's bind.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::net::UdpSocket;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    const SPAN: u32 = 12_000;
    let low = ephemeral_low();
    let base = low.saturating_sub(SPAN).max(1024);
    let span = low - base;
    // Start where another test binary (run before or after) is unlikely to.
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for i in 0..span {
        let port = (base + (seed.wrapping_add(i * 7919)) % span) as u16;
        if given.contains(&port) {
            continue;
        }
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {base}..{low}");
}

/// The first port of the kernel's ephemeral range (32768 when unreadable).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_tcp(port: u16, timeout: Duration) -> bool {
    wait_until(timeout, || TcpStream::connect(("127.0.0.1", port)).is_ok())
}

/// Waits until a UDP socket is bound to `port` on this host (SRT listeners
/// answer nothing until a caller handshakes, so /proc is the only witness).
pub fn wait_for_udp(port: u16, timeout: Duration) -> bool {
    let needle = format!(":{port:04X} ");
    wait_until(timeout, || {
        ["/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
            std::fs::read_to_string(table)
                .map(|text| text.lines().skip(1).any(|l| l.contains(&needle)))
                .unwrap_or(false)
        })
    })
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The absolute path of `bin`, or a panic naming the package that ships it.
pub fn require(bin: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // nginx and mosquitto live in sbin, which a non-root PATH may lack.
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.iter()
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{bin}` not found: install the Debian package(s) {package}"))
}

/// Publishes `seconds` of 320x240 30 fps test picture and tone with ffmpeg
/// (H.264 + AAC); `format` is `flv` for RTMP or `mpegts` for SRT. Panics when
/// ffmpeg fails, with its stderr.
pub fn ffmpeg_publish(url: &str, format: &str, seconds: u32) {
    let ffmpeg = require("ffmpeg", "ffmpeg");
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-g", "30", "-c:a", "aac", "-f", format, url])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg publishing to {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The files in `dir` whose name ends with `ext`, sorted by name.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(ext))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
