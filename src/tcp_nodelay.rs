//! Nagle's algorithm off on every TCP connection the daemon opens, the
//! GStreamer elements' included.
//!
//! Why: `rtmp2sink` (GStreamer 1.22, Debian 12) never sets `TCP_NODELAY` and
//! offers no hook to its socket. The RTMP start is a ping-pong of small
//! messages (`connect`, then `releaseStream` + `FCPublish` + `createStream`,
//! then `publish`), and each one written while the previous segment is still
//! unacknowledged waits for the server's delayed ACK: 40 ms on Linux. Go-live
//! measured three such waits, 130 of the 170 ms from the press to the
//! publish at a loopback nginx (BENCHMARKS.md, section `golive`); a server
//! that comes back pays them again before its first frame.
//!
//! How: the `farmcast` executable defines `connect` and exports it
//! (`build.rs`: `--export-dynamic-symbol=connect`). The dynamic linker
//! resolves every library's `connect` to the executable's definition first
//! (ELF symbol interposition, what `LD_PRELOAD` does, with nothing to set in
//! the environment), so libgio's connect for rtmp2sink comes here: a TCP
//! socket gets `TCP_NODELAY` and the real `connect(2)` runs. GIO's own
//! extension point (its socket connection factory) cannot be overridden
//! safely: registering a second type for TCP frees the entry it replaces.
//!
//! Nothing else changes: UDP (SRT), Unix sockets and the result of the
//! connect are untouched; a socket option that cannot be set is ignored.
//! The daemon's other TCP connections (MQTT, the fleet) are small messages
//! too and better without Nagle, as curl and Go default to.

use std::os::raw::c_int;

/// `connect(2)` for the whole process; see the module's comment.
///
/// # Safety
/// The caller's contract is `connect(2)`'s: `addr` points to `len` readable
/// bytes (or is null, which the kernel refuses).
#[no_mangle]
pub unsafe extern "C" fn connect(
    fd: c_int,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> c_int {
    if !addr.is_null() && len as usize >= std::mem::size_of::<libc::sa_family_t>() {
        // SAFETY: at least the family field is readable (checked above).
        let family = c_int::from(unsafe { (*addr).sa_family });
        if family == libc::AF_INET || family == libc::AF_INET6 {
            set_nodelay(fd);
        }
    }
    // SAFETY: the arguments are the caller's, passed through unchanged.
    unsafe { libc::syscall(libc::SYS_connect, fd, addr, len) as c_int }
}

/// `TCP_NODELAY` on `fd` if it is a stream socket; errors ignored (the
/// connection works with Nagle, only slower to start).
fn set_nodelay(fd: c_int) {
    let mut kind: c_int = 0;
    let mut size = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: plain socket option calls on a caller's descriptor with
    // correctly sized buffers; the kernel checks the descriptor.
    unsafe {
        let ok = libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut c_int).cast(),
            &mut size,
        ) == 0;
        if ok && kind == libc::SOCK_STREAM {
            let on: c_int = 1;
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&on as *const c_int).cast(),
                std::mem::size_of::<c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Whether the libraries' `connect` resolves to ours in this process (the
/// executable exports it); the daemon logs it at start. False in test
/// binaries, which do not export it.
pub fn interposed() -> bool {
    let name = c"connect";
    // SAFETY: dlsym with a valid NUL-terminated name; the result is only compared.
    let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    found == connect as *const () as *mut libc::c_void
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};
    use std::os::fd::AsRawFd;

    fn nodelay(fd: c_int) -> c_int {
        let mut v: c_int = -1;
        let mut size = std::mem::size_of::<c_int>() as libc::socklen_t;
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut v as *mut c_int).cast(),
                &mut size,
            )
        };
        assert_eq!(r, 0);
        v
    }

    fn sockaddr(addr: std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        let s = socket2::SockAddr::from(addr);
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        unsafe {
            std::ptr::copy_nonoverlapping(
                s.as_ptr().cast::<u8>(),
                (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
                s.len() as usize,
            )
        };
        (storage, s.len())
    }

    #[test]
    fn a_tcp_connect_through_it_turns_nagle_off_and_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let fd = sock.as_raw_fd();
        assert_eq!(nodelay(fd), 0, "Nagle is on by default");
        let (addr, len) = sockaddr(listener.local_addr().unwrap());
        let r = unsafe { connect(fd, (&addr as *const libc::sockaddr_storage).cast(), len) };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        assert_ne!(nodelay(fd), 0);
        assert!(listener.accept().is_ok());
    }

    #[test]
    fn errors_and_other_sockets_pass_through_unchanged() {
        // A refused connection reports what connect(2) reports.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let (addr, len) = sockaddr(port);
        let r = unsafe {
            connect(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        assert_eq!(r, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::ECONNREFUSED)
        );
        // UDP (SRT's transport) connects as before.
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (addr, len) = sockaddr(peer.local_addr().unwrap());
        let r = unsafe {
            connect(
                udp.as_raw_fd(),
                (&addr as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        assert_eq!(r, 0);
        // A null address is the kernel's to refuse, not a crash here.
        let r = unsafe { connect(udp.as_raw_fd(), std::ptr::null(), 0) };
        assert_eq!(r, -1);
    }
}
