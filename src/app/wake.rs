//! What woke the driver's loop, and the time each turn took.

use std::time::Instant;

use super::{disk_work, Shell};
use crate::gpio::SimEvent;

/// What woke the loop: received in `select!`, handled after it.
pub(super) enum Wake {
    Media(crate::media::MediaEvent),
    Edge(crate::gpio::RawEdge),
    Sim(SimEvent),
    Probe(String),
    Scale(crate::scale::RawReading),
    Incoming(crate::mqtt::Incoming),
    Disk(disk_work::DiskFigures),
    Web(crate::web::WebRequest),
    Signal,
    Timer,
}

impl Wake {
    /// For the loop's turn statistics: what the turn was about.
    pub(super) fn kind(&self) -> &'static str {
        use crate::media::MediaEvent as M;
        match self {
            Wake::Media(ev) => match ev {
                M::CaptureReady => "media:capture_ready",
                M::CaptureFailed(_) => "media:capture_failed",
                M::EncoderFailed { .. } => "media:encoder_failed",
                M::Built(_) => "media:built",
                M::CameraLost(_) => "media:camera_lost",
                M::CameraRestored => "media:camera_restored",
                M::CameraHead { .. } => "media:camera_head",
                M::MicFound { .. } => "media:mic_found",
                M::MicLost(_) => "media:mic_lost",
                M::MicStarted => "media:mic_started",
                M::DestinationUp(_) => "media:destination_up",
                M::DestinationDown { .. } => "media:destination_down",
                M::DestinationStopped(_) => "media:destination_stopped",
                M::RecorderError(_) => "media:recorder_error",
                M::SegmentClosed => "media:segment_closed",
                M::RecorderStopped => "media:recorder_stopped",
            },
            Wake::Edge(_) => "button",
            Wake::Sim(_) => "sim",
            Wake::Probe(_) => "probe",
            Wake::Scale(_) => "scale",
            Wake::Incoming(crate::mqtt::Incoming::Command(_)) => "mqtt:command",
            Wake::Incoming(_) => "mqtt:push",
            Wake::Disk(_) => "disk",
            Wake::Web(_) => "web",
            Wake::Signal => "signal",
            Wake::Timer => "timer",
        }
    }
}

impl Shell {
    /// Close a loop turn: note how long it took (status `loop`), and warn
    /// when it stalled the buttons, commands and watchdog noticeably.
    pub(super) fn end_turn(&mut self, woke: Instant) {
        let took = woke.elapsed();
        let turn = self.turn;
        if self.turns.record(took, &turn) {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                what = %turn.describe(),
                "the driver loop was busy; buttons and commands waited"
            );
        }
    }
}
