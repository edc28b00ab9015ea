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

use std::ffi::CString;

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
    let spawned = std::thread::Builder::new()
        .name("warm-up".into())
        .spawn(move || {
            for transport in transports {
                // Building instantiates every element, which loads its plugin.
                let _ = parse_pipeline(&plan::destination_pipeline(transport), "warm-up");
            }
            proxy_lookup("rtmp://127.0.0.1:1935");
            refused_connect();
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no warm-up thread; the first go-live is slower");
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
