//! Go-live's path to the server (issue 14), black box: the `farmcast`
//! binary, a real nginx-rtmp. The RTMP start is a ping-pong of small
//! messages; with Nagle's algorithm on, each one written behind an
//! unacknowledged segment waited for the server's delayed ACK (40 ms, three
//! times per go-live). rtmp2sink does not turn Nagle off, the daemon does
//! for every connection it opens (src/tcp_nodelay.rs). This reads the option
//! on the daemon's own socket, through a duplicate of its descriptor
//! (`pidfd_getfd`, Linux 5.6; the test is the daemon's parent).
//!
//! Small and serial: 320x240 at 15 fps, x264 ultrafast, `common::serial()`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::config::TestConfig;
use common::{Farmcast, NginxRtmp};
use farmcast::media::proc_net::tcp_connections;

const CONNECT: Duration = Duration::from_secs(20);

/// `TCP_NODELAY` of the daemon's TCP connections to `remote`, one per socket.
fn nodelay_of(pid: i32, remote: SocketAddr) -> Vec<bool> {
    // The kernel's whole table (the daemon's `read_tcp_tables` reads only
    // its own process's sockets).
    let table = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect::<Vec<_>>()
        .join("");
    let inodes: Vec<String> = tcp_connections(&table, remote)
        .iter()
        .map(|c| format!("socket:[{}]", c.inode))
        .collect();
    let mut found = Vec::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return found;
    };
    // SAFETY: plain syscalls on a pid and descriptors this test owns; each
    // descriptor obtained is closed here.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    for fd in fds.flatten() {
        let Ok(link) = std::fs::read_link(fd.path()) else {
            continue;
        };
        if !inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
            continue;
        }
        let Ok(target) = fd.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) } as i32;
        assert!(dup >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        let mut on: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let r = unsafe {
            libc::getsockopt(
                dup,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut on as *mut libc::c_int).cast(),
                &mut size,
            )
        };
        assert_eq!(r, 0, "getsockopt: {}", std::io::Error::last_os_error());
        found.push(on != 0);
        unsafe { libc::close(dup) };
    }
    unsafe { libc::close(pidfd) };
    found
}

#[test]
fn the_rtmp_connection_to_the_server_has_nagle_off() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start();
    let mut cfg = TestConfig::new()
        .destination("main", &nginx.url("live"), Some("show"))
        .autostart(false);
    cfg.fps = 15;
    let mut daemon = Farmcast::start(&cfg.toml());
    assert!(
        common::wait_until(CONNECT, || daemon.try_sim("led tally").is_ok()),
        "the sim socket never answered\n{}",
        daemon.log()
    );
    // Wait for standby (the tally's slow blink is not needed: a press
    // before standby goes live when the capture is ready).
    assert_eq!(daemon.sim("press go_live"), "ok");
    assert!(
        nginx.wait_for_publishes("live", 1, CONNECT),
        "no publish after the press\n{}",
        daemon.log()
    );
    let pid = daemon.pid().expect("the daemon runs");
    let remote: SocketAddr = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let mut seen = Vec::new();
    common::wait_until(Duration::from_secs(10), || {
        seen = nodelay_of(pid, remote);
        !seen.is_empty()
    });
    assert!(
        !seen.is_empty(),
        "no connection of the daemon to {remote}\n{}",
        daemon.log()
    );
    assert!(
        seen.iter().all(|&on| on),
        "Nagle is on for the daemon's RTMP connection: {seen:?}\n{}",
        daemon.log()
    );
    assert!(
        !daemon.log().contains("TCP_NODELAY is not applied"),
        "{}",
        daemon.log()
    );
    daemon.stop();
}
