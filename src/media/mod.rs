//! GStreamer at the edge: capture and encode ([`capture`]), one pipeline per
//! destination ([`destination`]), the local recorder ([`recorder`]), and what
//! they are made of ([`plan`], [`encoder`], [`modes`]). [`probe`] tells what
//! this box has.
//!
//! Contract with the driver: the runtime objects are plain structs owned by
//! the driver's task; everything they learn asynchronously (a bus error, a
//! first byte sent, a stalled camera) arrives as a [`MediaEvent`] on the
//! channel given to them. Nothing here decides what to do about it: that is
//! the show machine's job.

pub mod abr;
pub mod bus;
pub mod camera;
pub mod capture;
mod consumer;
mod controls;
pub mod destination;
pub mod discover;
pub mod encoder;
pub mod encoder_trial;
pub mod fault;
pub mod link_signal;
pub mod modes;
pub mod plan;
pub mod probe;
pub mod proc_net;
pub mod recorder;
pub mod send_buffer;
mod snapshot;
pub mod tls_trust;
pub mod warm_up;
pub mod y4m;

use std::sync::Once;

use tokio::sync::mpsc::UnboundedSender;

pub use fault::{Failure, Fault};

/// What the media edge tells the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// The encode pipeline runs and the camera delivers frames.
    CaptureReady,
    /// The encode pipeline could not start (missing encoder, bad pipeline).
    CaptureFailed(Failure),
    /// The capture's settings for a config, worked out off the driver's
    /// loop (the encoder trials take a moment).
    Built(Box<BuiltSettings>),
    /// The encoder element (`element`, its factory) failed in the running
    /// encode pipeline; the errors that follow from it are not reported.
    EncoderFailed {
        element: String,
        failure: Failure,
    },
    /// The camera stopped delivering frames, its pipeline failed or (a clip,
    /// `Fault::EndOfClip`) it reached its end.
    CameraLost(Failure),
    CameraRestored,
    /// A device camera was looked for off the driver's loop: the pipeline's
    /// head, or why there is none (for `Capture::open_discovered`).
    CameraHead {
        discovery: u64,
        head: Result<String, String>,
    },
    /// `auto` looked for a microphone off the driver's loop: the ALSA device
    /// (`hw:C,D`) or none (for `Capture::open_mic`).
    MicFound {
        discovery: u64,
        device: Option<String>,
    },
    /// The microphone pipeline failed; the stream carries silence meanwhile.
    MicLost(Failure),
    /// A microphone pipeline was built and started.
    MicStarted,
    DestinationUp(String),
    DestinationDown {
        name: String,
        /// For status and events; secrets redacted.
        reason: String,
        /// What to do about it: `Fault::Unreachable` is worth a probe.
        fault: Fault,
    },
    /// A destination's pipeline has finished (EOS sent, or torn down).
    DestinationStopped(String),
    RecorderError(Failure),
    /// A recording segment was closed (time to apply the disk budget).
    SegmentClosed,
    RecorderStopped,
}

pub type EventTx = UnboundedSender<MediaEvent>;

/// What [`MediaEvent::Built`] brings: for the build numbered `build`, the
/// capture's settings and the encoder chosen (`None`: passthrough encodes
/// nothing), or why there are none.
#[derive(Debug, Clone)]
pub struct BuiltSettings {
    pub build: u64,
    pub result: Result<(capture::CaptureSettings, Option<encoder::EncoderChoice>), String>,
}

/// Builds are told apart by their number (the settings hold a function
/// pointer, which has no meaningful equality).
impl PartialEq for BuiltSettings {
    fn eq(&self, other: &Self) -> bool {
        self.build == other.build
    }
}

static INIT: Once = Once::new();

/// Initialise GStreamer once per process.
pub fn init() -> anyhow::Result<()> {
    let mut result = Ok(());
    INIT.call_once(|| {
        result = gstreamer::init();
    });
    result.map_err(|e| anyhow::anyhow!("GStreamer could not start: {e}"))
}

/// For unit tests: GStreamer is installed on every machine that runs them.
#[cfg(test)]
pub fn init_for_tests() {
    init().expect("GStreamer init");
}
