//! Our own TCP connections to an ingest server, as rows of the kernel's
//! TCP tables (`/proc/net/tcp` for IPv4, `/proc/net/tcp6` for IPv6): how
//! much waits in their send queues (a congestion signal for adaptive
//! bitrate) and their inodes (to find the socket and cap its send buffer,
//! see `send_buffer`). The rows are parsed by a parser that never panics:
//! rows that do not parse are skipped, header lines included.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

use super::send_buffer::socket_inode;

/// This process's established TCP connections, one row each in the
/// kernel's table format (one read serves every destination); `None`
/// without `/proc`.
///
/// Not `/proc/net/tcp{,6}` itself: to print them the kernel walks its whole
/// connection hash (262,144 buckets on a 2-CPU, 8 GB machine), once per
/// table, and the health tick asks four times a second: 11% of the
/// daemon's CPU while live (BENCHMARKS.md, section `memory`). Our sockets
/// are found in `/proc/self/fd` instead and asked directly (`TCP_INFO`,
/// `SIOCOUTQ`: the same `tx_queue` the table prints), a few dozen cheap
/// calls. It also leaves out another program's connections to the same
/// server, which are not our backlog.
pub fn read_tcp_tables() -> Option<String> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    let mut table = String::new();
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(inode) = socket_inode(&target.to_string_lossy()) else {
            continue;
        };
        if let Some(row) = own_row(fd, inode) {
            table.push_str(&row);
        }
    }
    Some(table)
}

/// The table row of descriptor `fd` if it is still the socket `inode` and
/// an established TCP connection.
fn own_row(fd: i32, inode: u64) -> Option<String> {
    // SAFETY: `fd` was listed in /proc/self/fd a moment ago and this module
    // never closes it; the borrow lasts only for the calls below. Should its
    // owner close it meanwhile, they fail (EBADF); a number reused by then
    // is caught by the inode check at the end.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&fd);
    // TCP_INFO answers for TCP sockets only; its first field is the state.
    // SAFETY: tcp_info is plain old data; the kernel writes at most `len`
    // bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` outlive the call; `fd` is borrowed above.
    let got = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // 1 = TCP_ESTABLISHED, as the table's `01`.
    if got != 0 || info.tcpi_state != 1 {
        return None;
    }
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int: bytes written but not yet acknowledged.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) } != 0 {
        return None;
    }
    let local = socket.local_addr().ok()?.as_socket()?;
    let remote = socket.peer_addr().ok()?.as_socket()?;
    // SAFETY: `stat` is plain old data, filled by fstat on the borrowed fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 || st.st_ino as u64 != inode {
        return None;
    }
    Some(format!(
        "{}: {} {} 01 {:08X}:00000000 00:00000000 00000000 0 0 {inode} 1\n",
        fd.as_raw_fd(),
        kernel_address(local),
        kernel_address(remote),
        u32::try_from(queued).unwrap_or(0),
    ))
}

/// An address and port as the kernel's tables print them (see [`parse_address`]).
fn kernel_address(a: SocketAddr) -> String {
    format!("{}:{:04X}", kernel_ip(a.ip()), a.port())
}

/// How the kernel's tables print an address: each 32-bit word of it as a
/// native-endian number of its network-order bytes.
fn kernel_ip(ip: IpAddr) -> String {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes
        .chunks_exact(4)
        .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

/// Bytes waiting in the kernel's send queues of the established TCP
/// connections to `remote` (the `tx_queue` column): what an RTMP sink has
/// written but the link has not yet taken. `None` when no such connection
/// is listed.
pub fn tcp_send_queue(table: &str, remote: SocketAddr) -> Option<u64> {
    let conns = tcp_connections(table, remote);
    (!conns.is_empty()).then(|| {
        conns
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.tx_queue))
    })
}

/// One established TCP connection as the table lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConnection {
    /// Bytes written but not yet acknowledged.
    pub tx_queue: u64,
    /// The socket's inode: `/proc/self/fd/N` links to `socket:[inode]`.
    pub inode: u64,
}

/// The established connections to `remote` in the text of either table (or
/// both concatenated). An IPv4 server reached over an IPv6 socket (listed as
/// `::ffff:a.b.c.d`) counts as that IPv4 server.
pub fn tcp_connections(table: &str, remote: SocketAddr) -> Vec<TcpConnection> {
    let want = canonical(remote);
    let mut found = Vec::new();
    for line in table.lines() {
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(rem), Some(st), Some(queues), Some(inode)) =
            (f.get(2), f.get(3), f.get(4), f.get(9))
        else {
            continue;
        };
        // 01 = ESTABLISHED.
        if *st != "01" {
            continue;
        }
        if parse_address(rem).map(canonical) != Some(want) {
            continue;
        }
        let (Some(tx_queue), Ok(inode)) = (
            queues
                .split_once(':')
                .and_then(|(tx, _)| u64::from_str_radix(tx, 16).ok()),
            inode.parse::<u64>(),
        ) else {
            continue;
        };
        found.push(TcpConnection { tx_queue, inode });
    }
    found
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub(crate) fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// `0100007F:0CEA` (IPv4) or 32 hex digits and a port (IPv6). The kernel
/// prints each 32-bit word of the address as a native-endian number of its
/// network-order bytes.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = text.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    if !ip_hex.is_ascii() {
        return None;
    }
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(ip_hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(ip: IpAddr) -> String {
        kernel_ip(ip)
    }

    #[test]
    fn the_send_queue_of_a_connection_is_read_from_proc_net_tcp() {
        let ip = Ipv4Addr::new(169, 254, 7, 2);
        let hex = hex(IpAddr::V4(ip));
        let text = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             \x20  0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
             \x20  1: 0107FEA9:B2C4 {hex}:078F 01 0001F400:00000000 01:00000014 00000000     0        0 2 1\n\
             \x20  2: 0107FEA9:B2C6 {hex}:078F 06 00000010:00000000 00:00000000 00000000     0        0 0 1\n\
             garbage\n"
        );
        let remote = SocketAddr::new(ip.into(), 1935);
        assert_eq!(tcp_send_queue(&text, remote), Some(128_000));
        assert_eq!(
            tcp_connections(&text, remote),
            [TcpConnection {
                tx_queue: 128_000,
                inode: 2
            }]
        );
        let other = SocketAddr::new(ip.into(), 1936);
        assert_eq!(tcp_send_queue(&text, other), None);
    }

    /// `/proc/net/tcp6` as this kernel writes it: a connection to [::1]:1935
    /// and one to an IPv4 server over a dual-stack socket, after the IPv4 table.
    #[test]
    fn ipv6_rows_and_mapped_ipv4_are_read_from_proc_net_tcp6() {
        let one = hex(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            one,
            format!("{:024X}{:08X}", 0, u32::from_ne_bytes([0, 0, 0, 1]))
        );
        let mapped = hex(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped()));
        let text = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             \x20  0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n\
             \x20 sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             \x20  0: {one}:B2C4 {one}:078F 01 00001000:00000000 01:00000014 00000000     0        0 77 1\n\
             \x20  1: {one}:078F {one}:B2C4 01 00000020:00000000 01:00000014 00000000     0        0 78 1\n\
             \x20  2: {mapped}:B2C6 {mapped}:078F 01 00000300:00000000 00:00000000 00000000     0        0 79 1\n"
        );
        let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 1935);
        assert_eq!(
            tcp_connections(&text, v6),
            [TcpConnection {
                tx_queue: 0x1000,
                inode: 77
            }]
        );
        let v4 = SocketAddr::new(Ipv4Addr::new(192, 0, 2, 7).into(), 1935);
        assert_eq!(tcp_send_queue(&text, v4), Some(0x300));
        let v4_loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 1935);
        assert_eq!(
            tcp_send_queue(&text, v4_loopback),
            None,
            "::1 is not 127.0.0.1"
        );
    }

    /// Our own connection to a listener on [::1] is in the real table.
    #[test]
    fn a_real_ipv6_connection_is_found() {
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            panic!("no IPv6 loopback on this machine");
        };
        let server = listener.local_addr().expect("addr");
        let _ours = std::net::TcpStream::connect(server).expect("connect");
        let _accepted = listener.accept().expect("accept");
        let table = read_tcp_tables().expect("/proc/net");
        assert_eq!(tcp_connections(&table, server).len(), 1, "{server}");
    }

    /// What the kernel's own table says of the connection with `inode`.
    fn kernel_row(inode: u64) -> Option<TcpConnection> {
        let text = std::fs::read_to_string("/proc/net/tcp").ok()?
            + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let tx = f.get(4)?.split_once(':')?.0;
            (f.get(9)? == &inode.to_string()).then(|| TcpConnection {
                tx_queue: u64::from_str_radix(tx, 16).unwrap_or(u64::MAX),
                inode,
            })
        })
    }

    /// A connection whose server reads nothing: written until the socket
    /// refuses more, its send queue is full and stays so. Read from our own
    /// socket, it is the row the kernel prints, queue and inode alike.
    #[test]
    fn a_full_send_queue_reads_as_the_kernel_prints_it() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let server = listener.local_addr().expect("addr");
        let mut ours = std::net::TcpStream::connect(server).expect("connect");
        let _accepted = listener.accept().expect("accept");
        ours.set_nonblocking(true).expect("nonblocking");
        let chunk = [7u8; 64 * 1024];
        let mut written = 0usize;
        while let Ok(n) = ours.write(&chunk) {
            written += n;
            assert!(written < 256 << 20, "the socket never filled");
        }
        let table = read_tcp_tables().expect("/proc/self/fd");
        let found = tcp_connections(&table, server);
        assert_eq!(found.len(), 1, "{table}");
        assert!(found[0].tx_queue > 0, "{table}");
        assert_eq!(kernel_row(found[0].inode), Some(found[0]), "{table}");
    }

    /// Another program connected to the same server: its connection is in
    /// the kernel's table, but its queue is not our backlog.
    #[test]
    fn another_programs_connection_is_not_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let server = listener.local_addr().expect("addr");
        let script = format!("exec 3<>/dev/tcp/127.0.0.1/{}; sleep 10", server.port());
        let mut other = std::process::Command::new("bash")
            .args(["-c", &script])
            .spawn()
            .expect("bash");
        // Accepted, so its connection is established before ours is made.
        let (theirs, _) = listener.accept().expect("accept");
        let _ours = std::net::TcpStream::connect(server).expect("connect");
        let _accepted = listener.accept().expect("accept");
        let table = read_tcp_tables().expect("/proc/self/fd");
        let found = tcp_connections(&table, server);
        let _ = other.kill();
        let _ = other.wait();
        drop(theirs);
        assert_eq!(found.len(), 1, "only ours: {table}");
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,400}", lines in prop::collection::vec("[0-9A-F: ]{0,120}", 0..8)) {
            for remote in [
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 1935),
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 1935),
            ] {
                let _ = tcp_send_queue(&text, remote);
                let _ = tcp_send_queue(&lines.join("\n"), remote);
                let _ = tcp_connections(&text, remote);
            }
        }
    }
}
