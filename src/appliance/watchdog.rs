//! When the driver may tell systemd's watchdog it is alive (pure).
//!
//! The watchdog is there to restart a box that is wedged, not one that is
//! broken in a way a restart cannot fix. So the loop feeds it at every health
//! tick it turns, unless the show expects encoded frames and none came for a
//! while: that is a hung pipeline, which a restart may cure. A box whose
//! capture cannot be built (no camera, an encoder it lacks) sits in `error`,
//! retrying on the show machine's backoff, and is fed: restarting it every
//! `WatchdogSec` would only hide it from the technician. A loop that stops
//! turning feeds nothing, whatever this says.

use std::time::{Duration, Instant};

use crate::show::State;

/// Encoded frames may pause this long while the capture should run (a
/// keyframe burst, a loaded CPU) before the box counts as hung. Well above
/// the camera stall detector (`media::capture::STALL_AFTER`), which turns a
/// silent camera into a known loss first.
pub const FRAMES_QUIET_MAX: Duration = Duration::from_secs(6);

/// How long the capture may take to (re)start, after a `restart_pipeline`
/// or a retry, before a start that never answers counts as hung.
pub const STARTING_GRACE: Duration = Duration::from_secs(30);

/// What the decision looks at, sampled at a health tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vitals {
    pub state: State,
    /// The show machine knows the camera is lost or the capture failed and is
    /// retrying it (the slate is on air).
    pub camera_retrying: bool,
    /// Since encoded frames last advanced (or the capture was last built).
    pub frames_quiet_for: Duration,
    /// Since the state last changed.
    pub in_state_for: Duration,
}

/// Whether the loop that just turned may feed the watchdog.
pub fn healthy(v: &Vitals) -> bool {
    let frames_flow = v.frames_quiet_for < FRAMES_QUIET_MAX;
    match v.state {
        // No capture runs; the show machine retries it on its own backoff.
        State::Error => true,
        // A capture is being built: give it time, not forever.
        State::Starting => frames_flow || v.in_state_for < STARTING_GRACE,
        // On air with the slate while the camera is retried: known and handled.
        _ if v.camera_retrying => true,
        // Standby, a show, or its end: the capture must deliver.
        _ => frames_flow,
    }
}

/// Pings closer together than this add nothing: systemd's limit is
/// `WatchdogSec=20`.
pub const PING_EVERY: Duration = Duration::from_secs(1);

/// What the watchdog decision remembers between health ticks.
#[derive(Debug)]
pub struct Watch {
    last_frames: Option<u64>,
    frames_changed_at: Instant,
    state_since: Instant,
    last_ping: Option<Instant>,
    /// Not being fed (logged once per spell).
    starving: bool,
}

impl Watch {
    pub fn new(now: Instant) -> Watch {
        Watch {
            last_frames: None,
            frames_changed_at: now,
            state_since: now,
            last_ping: None,
            starving: false,
        }
    }

    pub fn state_changed(&mut self, now: Instant) {
        self.state_since = now;
    }

    /// A health tick: whether to ping the watchdog now. A spell without
    /// pings is logged once, since systemd restarts the box if it lasts
    /// `WatchdogSec`.
    pub fn tick(&mut self, now: Instant, frames: Option<u64>, state: State, slate: bool) -> bool {
        if let Some(f) = frames {
            if self.last_frames != Some(f) {
                self.last_frames = Some(f);
                self.frames_changed_at = now;
            }
        }
        let vitals = Vitals {
            state,
            camera_retrying: slate,
            // A state change (a capture ready again, a show started) restarts
            // the count: the frames had no reason to flow before it.
            frames_quiet_for: now
                .saturating_duration_since(self.frames_changed_at.max(self.state_since)),
            in_state_for: now.saturating_duration_since(self.state_since),
        };
        if !healthy(&vitals) {
            if !self.starving {
                self.starving = true;
                tracing::error!(
                    state = vitals.state.as_str(),
                    frames_quiet_s = vitals.frames_quiet_for.as_secs(),
                    "no encoded frames: the pipeline looks hung; the watchdog is no longer fed"
                );
            }
            return false;
        }
        if self.starving {
            tracing::info!("healthy again; feeding the watchdog");
            self.starving = false;
        }
        if self.last_ping.is_some_and(|t| now < t + PING_EVERY) {
            return false;
        }
        self.last_ping = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(state: State, retrying: bool, quiet_s: u64, in_state_s: u64) -> Vitals {
        Vitals {
            state,
            camera_retrying: retrying,
            frames_quiet_for: Duration::from_secs(quiet_s),
            in_state_for: Duration::from_secs(in_state_s),
        }
    }

    #[test]
    fn error_without_a_capture_is_fed_however_long_it_lasts() {
        assert!(healthy(&v(State::Error, false, 100_000, 100_000)));
        assert!(healthy(&v(State::Error, true, 100_000, 0)));
    }

    #[test]
    fn a_running_capture_must_deliver_frames() {
        for s in [
            State::Standby,
            State::Connecting,
            State::Live,
            State::Reconnecting,
            State::Stopping,
        ] {
            assert!(healthy(&v(s, false, 0, 3600)), "{s:?} with frames");
            assert!(!healthy(&v(s, false, 7, 3600)), "{s:?} hung");
        }
    }

    #[test]
    fn a_camera_being_retried_on_air_is_fed() {
        assert!(healthy(&v(State::Live, true, 3600, 3600)));
        assert!(healthy(&v(State::Reconnecting, true, 3600, 3600)));
    }

    #[test]
    fn starting_gets_a_grace_then_must_deliver() {
        assert!(healthy(&v(State::Starting, false, 100, 0)));
        assert!(healthy(&v(State::Starting, false, 100, 29)));
        assert!(!healthy(&v(State::Starting, false, 100, 31)));
        assert!(healthy(&v(State::Starting, false, 1, 31)));
    }

    #[test]
    fn the_quiet_bound_sits_above_the_stall_detector() {
        assert!(FRAMES_QUIET_MAX > crate::media::capture::STALL_AFTER);
    }
}
