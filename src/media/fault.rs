//! What went wrong, as a type: every GStreamer error is classified once,
//! here, where it arrives on a bus, into a [`Fault`] that travels with the
//! [`super::MediaEvent`]; no caller searches an error's text. As
//! gst-plugins-rs `fallbacksrc` does with its `RetryReason`, the class comes
//! from the error's domain and kind (`gst::ResourceError::OpenRead`, ...);
//! the debug text is read only where GStreamer gives nothing better (the GIO
//! code rtmp2sink puts there for a failed connect), and only in [`classify`].

use gstreamer as gst;
use gstreamer::glib;

/// Why a pipeline stopped, as far as what to do next is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Nothing answered at the server's address: connection refused, timed
    /// out, no route, name not found. Worth probing until it answers.
    Unreachable,
    /// The server answered and then refused the stream (a bad key, a
    /// duplicate publish, not authorized, closed during the handshake):
    /// left to the backoff, never hammered.
    Refused,
    /// A connection or device that worked broke while in use (a write or
    /// read error mid-stream).
    Broken,
    /// The device or file is not there (`/dev/video9`, a missing clip).
    NotFound,
    /// The device is held by someone else.
    Busy,
    /// The disk is full.
    NoSpace,
    /// The media could not be encoded, decoded or negotiated (caps, format,
    /// a missing plugin).
    Format,
    /// A clip reached its end (it loops; not a failure).
    EndOfClip,
    /// A live camera ended its stream.
    EndOfStream,
    /// A running camera stopped delivering frames.
    Stalled,
    /// Set up failed on our side (a pipeline that would not build or start).
    Setup,
    /// Anything else.
    Other,
}

impl Fault {
    /// Whether the server could not be reached at all (so a bare TCP connect
    /// tells when it is back), as opposed to one that answers and refuses.
    pub fn server_unreachable(self) -> bool {
        self == Fault::Unreachable
    }
}

/// A failure and its words: the [`Fault`] to decide on, the text to show
/// (status, log, events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub fault: Fault,
    pub text: String,
}

impl Failure {
    pub fn new(fault: Fault, text: impl Into<String>) -> Failure {
        Failure {
            fault,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// GIO's `GIOErrorEnum` codes a failed connect is reported with (gio.h);
/// rtmp2sink puts them in the debug text of its `Failed to connect` error.
mod gio_code {
    pub const TIMED_OUT: u32 = 24;
    pub const HOST_NOT_FOUND: u32 = 28;
    pub const PARTIAL_INPUT: u32 = 34;
    pub const HOST_UNREACHABLE: u32 = 37;
    pub const NETWORK_UNREACHABLE: u32 = 38;
    pub const CONNECTION_REFUSED: u32 = 39;
    pub const BROKEN_PIPE: u32 = 44;
    pub const NOT_CONNECTED: u32 = 45;
    pub const PERMISSION_DENIED: u32 = 14;
}

/// The one place an error becomes a [`Fault`]: from its domain and kind, and
/// for `ResourceError::Failed` (rtmp2sink's catch-all for a failed connect)
/// from the GIO code in `debug`.
pub fn classify(error: &glib::Error, debug: Option<&str>) -> Fault {
    use gst::ResourceError as R;
    if let Some(kind) = error.kind::<R>() {
        return match kind {
            // rtmp2sink: connection refused (`Could not connect`); srtsink
            // and the file sinks likewise for what they cannot open.
            R::OpenRead | R::OpenWrite | R::OpenReadWrite => Fault::Unreachable,
            R::NotFound => Fault::NotFound,
            R::Busy => Fault::Busy,
            R::NoSpaceLeft => Fault::NoSpace,
            R::NotAuthorized => Fault::Refused,
            R::Read | R::Write | R::Close | R::Seek | R::Sync => Fault::Broken,
            R::Failed => debug
                .and_then(gio_code_in)
                .map_or(Fault::Other, by_gio_code),
            _ => Fault::Other,
        };
    }
    if let Some(kind) = error.kind::<gst::CoreError>() {
        use gst::CoreError as C;
        return match kind {
            C::Negotiation | C::Caps | C::MissingPlugin => Fault::Format,
            _ => Fault::Other,
        };
    }
    if let Some(kind) = error.kind::<gst::StreamError>() {
        use gst::StreamError as S;
        return match kind {
            S::Failed | S::TooLazy | S::NotImplemented => Fault::Other,
            _ => Fault::Format,
        };
    }
    Fault::Other
}

fn by_gio_code(code: u32) -> Fault {
    use gio_code::*;
    match code {
        TIMED_OUT | HOST_NOT_FOUND | HOST_UNREACHABLE | NETWORK_UNREACHABLE
        | CONNECTION_REFUSED => Fault::Unreachable,
        // The server took the connection and closed it, or refused the
        // publish: it answers.
        PARTIAL_INPUT | BROKEN_PIPE | NOT_CONNECTED | PERMISSION_DENIED => Fault::Refused,
        _ => Fault::Other,
    }
}

/// The GIO code in a debug text: `domain g-io-error-quark, code 34` (1.22)
/// or `error g-io-error-quark:34: ...` (later releases).
fn gio_code_in(debug: &str) -> Option<u32> {
    const DOMAIN: &str = "g-io-error-quark";
    let after = &debug[debug.find(DOMAIN)? + DOMAIN.len()..];
    let digits: String = after
        .trim_start_matches([',', ':', ' '])
        .trim_start_matches("code")
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
#[path = "fault_tests.rs"]
mod tests;
