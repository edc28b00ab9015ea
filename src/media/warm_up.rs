//! Loads, while the box is in standby, what the first connection of the
//! process would otherwise load after the press.
//!
//! Measured on the first go-live after start (debug build): building the
//! destination's pipeline took 117 ms (the flv, rtmp2 and parser plugins are
//! loaded from disk then) and its TCP connect 108 ms (GIO loads its modules,
//! glib-networking's proxy resolver and TLS, and libproxy reads its
//! configuration, at the first `GSocketClient` connect). The second go-live
//! took 1-3 ms for each. Nothing here connects anywhere or keeps anything: the
//! pipelines are built and dropped, and the proxy lookup is local.
//!
//! A destination never starts while the warm-up runs ([`settle`]). GLib
//! 2.74 (Debian bookworm, Raspberry Pi OS) can deadlock when two threads
//! register GObject types at once: seen here when an autostart show
//! connected while this thread loaded GIO's proxy modules. rtmp2sink's
//! thread sat in a class init waiting for `GSocketAddress`'s type, which
//! this thread was registering and could not finish without the class-init
//! lock the other held; the driver loop then blocked in rtmp2sink's `stats`
//! and the show never went live.

use std::ffi::CString;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::capture::parse_pipeline;
use super::plan::{self, Transport};
use crate::config::Config;

/// The transports `config`'s enabled destinations use, each once.
pub fn transports(config: &Config) -> Vec<Transport> {
    let mut out = Vec::new();
    for d in config.destinations.iter().filter(|d| d.enabled) {
        if let Some(t) = Transport::of_url(&d.url) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// Whether a destination of `config` uses `transport`.
pub fn uses(config: &Config, transport: Transport) -> bool {
    transports(config).contains(&transport)
}

/// Start the warm-up of `transports` on a thread of its own; returns at
/// once. Only what the config uses is loaded: a box without SRT maps none
/// of libsrt (see `camera::preload_plugins`).
pub fn start(transports: Vec<Transport>) {
    let running = GATE.enter();
    let spawned = std::thread::Builder::new()
        .name("warm-up".into())
        .spawn(move || {
            // Opens the gate when the thread ends, a panic included.
            let _running = running;
            for transport in transports {
                // Building instantiates every element, which loads its plugin.
                let _ = parse_pipeline(&plan::destination_pipeline(transport), "warm-up");
            }
            proxy_lookup("rtmp://127.0.0.1:1935");
            refused_connect();
        });
    // A thread that did not start drops its closure, and the gate opens.
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no warm-up thread; the first go-live is slower");
    }
}

/// The longest a destination waits for the warm-up. It takes 0.1-0.3 s; a
/// warm-up this late is stuck on something of its own (a proxy
/// configuration fetched from the network), and the show goes on without it.
pub const SETTLE_BOUND: Duration = Duration::from_secs(3);

/// Wait, at most `bound`, until no warm-up runs. Called by a destination
/// before it builds its pipeline, so that no type is registered on two
/// threads at once (see the module's text). Only a show started in the
/// first second after the daemon (autostart, or a very quick press) waits.
pub fn settle(bound: Duration) {
    let settled = GATE.settle(bound);
    if settled.still_running {
        tracing::warn!(
            waited_ms = settled.waited.as_millis() as u64,
            "the warm-up is still running; the destination starts anyway"
        );
    } else if !settled.waited.is_zero() {
        tracing::info!(
            waited_ms = settled.waited.as_millis() as u64,
            "the destination waited for the warm-up to end"
        );
    }
}

static GATE: Gate = Gate::new();

/// How many warm-ups run, and a wake-up for those waiting for none.
struct Gate {
    running: Mutex<u32>,
    ended: Condvar,
}

/// One running warm-up; leaves the gate when dropped.
struct Running(&'static Gate);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// What [`Gate::settle`] found.
#[derive(Debug)]
struct Settled {
    waited: Duration,
    still_running: bool,
}

impl Gate {
    const fn new() -> Gate {
        Gate {
            running: Mutex::new(0),
            ended: Condvar::new(),
        }
    }

    fn enter(&'static self) -> Running {
        *self.count() += 1;
        Running(self)
    }

    fn leave(&self) {
        let mut n = self.count();
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.ended.notify_all();
        }
    }

    /// The count, whatever a panicking holder left: it only counts.
    fn count(&self) -> std::sync::MutexGuard<'_, u32> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn settle(&self, bound: Duration) -> Settled {
        let start = Instant::now();
        let n = self.count();
        if *n == 0 {
            return Settled {
                waited: Duration::ZERO,
                still_running: false,
            };
        }
        let (n, _) = self
            .ended
            .wait_timeout_while(n, bound, |n| *n > 0)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Settled {
            waited: start.elapsed(),
            still_running: *n > 0,
        }
    }
}

/// A `GSocketClient` connect to a port nobody listens on (refused at once,
/// nothing leaves the box): the rest of GIO's first-connect set-up (its
/// network monitor, resolver and connection types).
fn refused_connect() {
    // SAFETY: the client and the error are ours and freed here; a
    // connection (none is expected) would be closed by its unref.
    unsafe {
        let _ = gio_sys::g_network_monitor_get_default();
        let client = gio_sys::g_socket_client_new();
        if client.is_null() {
            return;
        }
        let mut err: *mut glib_sys::GError = std::ptr::null_mut();
        let host = c"127.0.0.1";
        let conn = gio_sys::g_socket_client_connect_to_host(
            client,
            host.as_ptr(),
            1,
            std::ptr::null_mut(),
            &mut err,
        );
        if !conn.is_null() {
            gobject_sys::g_object_unref(conn.cast());
        }
        if !err.is_null() {
            glib_sys::g_error_free(err);
        }
        gobject_sys::g_object_unref(client.cast());
    }
}

/// What `GSocketClient` does before its first connect: GIO's default proxy
/// resolver (loading the GIO modules), then one lookup (libproxy's start).
fn proxy_lookup(uri: &str) {
    let Ok(uri) = CString::new(uri) else { return };
    // SAFETY: the default resolver is owned by GIO (transfer none); the
    // returned string vector and the error are ours and freed here.
    unsafe {
        let resolver = gio_sys::g_proxy_resolver_get_default();
        if resolver.is_null() {
            return;
        }
        let mut err: *mut glib_sys::GError = std::ptr::null_mut();
        let proxies = gio_sys::g_proxy_resolver_lookup(
            resolver,
            uri.as_ptr(),
            std::ptr::null_mut(),
            &mut err,
        );
        if !proxies.is_null() {
            glib_sys::g_strfreev(proxies);
        }
        if !err.is_null() {
            glib_sys::g_error_free(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> &'static Gate {
        Box::leak(Box::new(Gate::new()))
    }

    #[test]
    fn nothing_waits_when_no_warm_up_runs() {
        let g = gate();
        let s = g.settle(Duration::from_secs(30));
        assert_eq!(s.waited, Duration::ZERO);
        assert!(!s.still_running);
        // Nor after one has ended.
        drop(g.enter());
        let s = g.settle(Duration::from_secs(30));
        assert_eq!(s.waited, Duration::ZERO);
        assert!(!s.still_running);
    }

    #[test]
    fn a_destination_waits_until_the_warm_up_ends() {
        let g = gate();
        let running = g.enter();
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ended.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(running);
        });
        // A bound far beyond the warm-up: a gate that never opened would
        // come back with `still_running` after it.
        let s = g.settle(Duration::from_secs(30));
        assert!(!s.still_running);
        assert!(
            ended.load(std::sync::atomic::Ordering::SeqCst),
            "settled before the warm-up ended"
        );
        t.join().unwrap();
    }

    #[test]
    fn the_wait_is_bounded_and_says_the_warm_up_still_runs() {
        let g = gate();
        let _running = g.enter();
        let s = g.settle(Duration::from_millis(30));
        assert!(s.still_running);
        assert!(s.waited >= Duration::from_millis(30), "{:?}", s.waited);
    }

    #[test]
    fn a_warm_up_that_panics_opens_the_gate() {
        let g = gate();
        let running = g.enter();
        let t = std::thread::spawn(move || {
            let _running = running;
            panic!("the warm-up failed");
        });
        assert!(t.join().is_err());
        let s = g.settle(Duration::from_secs(30));
        assert!(!s.still_running);
    }

    #[test]
    fn two_warm_ups_both_end_before_the_gate_opens() {
        let g = gate();
        let first = g.enter();
        let second = g.enter();
        drop(first);
        assert!(g.settle(Duration::from_millis(10)).still_running);
        drop(second);
        assert!(!g.settle(Duration::from_secs(30)).still_running);
    }
}
