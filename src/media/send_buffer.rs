//! A cap on the kernel's send buffer of our own RTMP sockets.
//!
//! rtmp2sink writes into a TCP socket whose buffer Linux grows up to
//! `net.ipv4.tcp_wmem` (4 MiB here): on a 400 kbit/s uplink that is 80 s of
//! video the kernel holds and sends late, while our own queue (bounded, and
//! dropping whole groups of pictures) sees nothing. Measured: the server got
//! no frame for 18 s after the link went thin. Capping the buffer at about a
//! second of what the link delivers keeps the backlog where adaptive bitrate
//! sees it and drops it cleanly. A second is also well above any uplink's
//! round trip, so the cap never limits what TCP can carry (throughput ≤
//! buffer / RTT): as the link delivers more, the cap grows with it.
//!
//! rtmp2sink has no property for it, so the daemon finds its own socket:
//! `/proc/net/tcp` or `/proc/net/tcp6` (see `proc_net`) gives the inode of
//! the connection to the server, and `/proc/self/fd` the descriptor that
//! links to `socket:[inode]`; the descriptor's peer is checked before
//! `SO_SNDBUF` is set on it, both through `socket2` on a borrowed descriptor.

use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use super::proc_net::canonical;

/// The smallest value (a 64 KiB buffer): a second and a bit at 400 kbit/s,
/// and 5 Mbit/s at a 100 ms round trip before it grows with the delivery.
pub const MIN_BYTES: u32 = 32 * 1024;
/// The largest: the kernel's own default ceiling.
pub const MAX_BYTES: u32 = 4 * 1024 * 1024;

/// What to ask for a link that delivers `kbps`: half a second of it, within
/// the bounds. Linux doubles the value set with `SO_SNDBUF` (the other half is
/// its bookkeeping), so the socket then holds about a second.
pub fn bytes_for(kbps: u32) -> u32 {
    (u64::from(kbps) * 1000 / 16).clamp(u64::from(MIN_BYTES), u64::from(MAX_BYTES)) as u32
}

/// The value to set now, from what the link delivers and what the socket
/// holds: [`bytes_for`] the delivery rate, but never so low that the buffer
/// (twice the value) falls under 3/4 of the queue. A socket is writable again
/// only once its queue falls to about 2/3 of the buffer, so cutting 500 kB of
/// queue to a 64 kB buffer at once stalls the writer for as long as the queue
/// takes to drain (past rtmp2sink's 5 s timeout on a thin link): the buffer
/// comes down a quarter at a time instead. (A floor of 3/4 of the queue for
/// the value itself, not the buffer, let the queue grow 1.5× a step: measured
/// 214 kB to 1.5 MB in 6 s.)
pub fn want(delivered_kbps: u32, queued: u64) -> u32 {
    let floor = queued.saturating_mul(3) / 8;
    u64::from(bytes_for(delivered_kbps))
        .max(floor)
        .min(u64::from(MAX_BYTES)) as u32
}

/// What a TCP connection delivers: bytes handed to the socket minus those
/// still in it, per second, smoothed over about two samples. Not the rate
/// the sink writes (a burst into an empty buffer says nothing of the link).
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    last: Option<(std::time::Instant, u64)>,
    kbps: Option<u32>,
}

impl Delivery {
    /// One sample: the sink's byte counter and the socket's queue at `now`.
    /// A counter that went backwards is a new connection: start again.
    pub fn observe(&mut self, now: std::time::Instant, written: u64, queued: u64) {
        let delivered = written.saturating_sub(queued);
        if let Some((at, before)) = self.last {
            if delivered < before {
                *self = Delivery::default();
            } else {
                let ms = now.saturating_duration_since(at).as_millis() as u64;
                let bits = (delivered - before).saturating_mul(8);
                if let Some(rate) = bits.checked_div(ms) {
                    let rate = rate.min(u64::from(u32::MAX)) as u32;
                    self.kbps = Some(match self.kbps {
                        Some(k) => ((u64::from(k) + u64::from(rate)) / 2) as u32,
                        None => rate,
                    });
                }
            }
        }
        self.last = Some((now, delivered));
    }

    /// The delivery rate; `None` until two samples were seen.
    pub fn kbps(&self) -> Option<u32> {
        self.kbps
    }
}

/// Sets `SO_SNDBUF` to `bytes` on each descriptor of this process that is a
/// socket with one of `inodes` and whose peer is `remote`. Returns how many
/// it set. Errors (a descriptor gone meanwhile, no `/proc`) are skipped: a
/// cap that cannot be set leaves the kernel's default, never a failed show.
pub fn cap(inodes: &[u64], remote: SocketAddr, bytes: u32) -> usize {
    if inodes.is_empty() {
        return 0;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut set = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(inode) = socket_inode(&target.to_string_lossy()) else {
            continue;
        };
        if inodes.contains(&inode) && cap_one(fd, remote, bytes) {
            set += 1;
        }
    }
    set
}

/// `socket:[12345]` → 12345.
pub(crate) fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Sets `SO_SNDBUF` on descriptor `fd` if it is a socket connected to
/// `remote` (either family; an IPv4 peer of a dual-stack socket counts).
fn cap_one(fd: i32, remote: SocketAddr, bytes: u32) -> bool {
    // SAFETY: `fd` was listed in /proc/self/fd a moment ago and this module
    // never closes it; the borrow lasts only for the two calls below. Should
    // the sink close it meanwhile, both calls fail (EBADF) and nothing is
    // set; a number reused by then is caught by the peer check.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&fd);
    let peer = socket
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(canonical);
    peer == Some(canonical(remote))
        && socket
            .set_send_buffer_size(usize::try_from(bytes).unwrap_or(usize::MAX))
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sndbuf_of(stream: &std::net::TcpStream) -> usize {
        socket2::SockRef::from(stream)
            .send_buffer_size()
            .expect("SO_SNDBUF")
    }

    #[test]
    fn one_second_of_the_stream_within_bounds() {
        assert_eq!(bytes_for(8000), 500_000);
        assert_eq!(bytes_for(100), MIN_BYTES);
        assert_eq!(bytes_for(u32::MAX), MAX_BYTES);
    }

    #[test]
    fn the_cap_comes_down_a_quarter_at_a_time() {
        // 400 kbit/s delivered: 32 kB would do, but 800 kB are queued. The
        // writer refills whatever the kernel allows (twice the value).
        let mut queued = 800_000u64;
        let mut caps = Vec::new();
        while caps.last() != Some(&MIN_BYTES) && caps.len() < 50 {
            let cap = want(400, queued);
            caps.push(cap);
            queued = 2 * u64::from(cap);
        }
        assert_eq!(caps[0], 300_000);
        assert!(
            caps.windows(2).all(|w| w[1] * 4 + 4 >= w[0] * 3),
            "{caps:?}"
        );
        assert!(
            caps.windows(2).all(|w| w[1] < w[0]),
            "never grows: {caps:?}"
        );
        assert_eq!(caps.last(), Some(&MIN_BYTES), "{caps:?}");
        assert_eq!(want(8000, 0), 500_000);
        assert_eq!(want(0, u64::MAX), MAX_BYTES);
    }

    #[test]
    fn delivery_is_what_left_the_socket_not_what_was_written() {
        let t0 = std::time::Instant::now();
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let mut d = Delivery::default();
        d.observe(at(0), 0, 0);
        // 250 kB written in a burst, 237.5 kB still queued: 12.5 kB left in
        // 250 ms, 400 kbit/s.
        d.observe(at(250), 250_000, 237_500);
        assert_eq!(d.kbps(), Some(400));
        d.observe(at(500), 262_500, 237_500);
        assert_eq!(d.kbps(), Some(400));
        // A new connection (the counter restarts): nothing known.
        d.observe(at(750), 1_000, 0);
        assert_eq!(d.kbps(), None);
    }

    #[test]
    fn socket_links_are_read() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    /// A real loopback connection of this process, IPv4 or IPv6: found
    /// through /proc/net/tcp{,6} and /proc/self/fd, capped, and only it.
    fn caps_the_connection_to(bind: &str) {
        let listener = std::net::TcpListener::bind(bind).expect("bind");
        let server = listener.local_addr().expect("addr");
        let ours = std::net::TcpStream::connect(server).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let before = sndbuf_of(&accepted);
        let tables = crate::media::proc_net::read_tcp_tables().expect("/proc/net/tcp");
        let inodes: Vec<u64> = crate::media::proc_net::tcp_connections(&tables, server)
            .iter()
            .map(|c| c.inode)
            .collect();
        assert_eq!(inodes.len(), 1, "our connection to {server} is listed");
        assert_eq!(cap(&inodes, server, 96 * 1024), 1);
        // Linux doubles what it is given, for its own bookkeeping.
        assert_eq!(sndbuf_of(&ours), 2 * 96 * 1024);
        assert_eq!(
            sndbuf_of(&accepted),
            before,
            "the other end is not ours to cap"
        );
        let elsewhere = SocketAddr::new(server.ip(), server.port().wrapping_add(1));
        assert_eq!(cap(&inodes, elsewhere, 96 * 1024), 0, "the peer must match");
    }

    #[test]
    fn caps_the_connection_to_the_server_and_no_other() {
        caps_the_connection_to("127.0.0.1:0");
    }

    /// An ingest server on [::1]: its connection is in /proc/net/tcp6.
    #[test]
    fn caps_the_connection_to_an_ipv6_server() {
        caps_the_connection_to("[::1]:0");
    }
}
