//! systemd notification (`Type=notify`): READY once standby (or error) is
//! reached, `STATUS=` with the show state, watchdog pings at every health
//! tick the loop is healthy (see [`super::watchdog`]). Outside systemd (no
//! `NOTIFY_SOCKET`) every call is a no-op.

use std::sync::atomic::Ordering;
use std::time::Instant;

use sd_notify::NotifyState;

use super::watchdog::{self, Vitals};

/// Pings closer together than this add nothing: systemd's limit is
/// `WatchdogSec=20`.
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Notifier {
    enabled: bool,
    last_ping: Option<Instant>,
}

impl Notifier {
    pub fn new() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            last_ping: None,
        }
    }

    fn send(&self, states: &[NotifyState]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(false, states) {
                tracing::debug!(error = %e, "sd_notify failed");
            }
        }
    }

    /// Up and answering: standby, or an error state that says what is wrong
    /// (a box without its camera must not be restarted by systemd for it).
    pub fn ready(&self, state: &str) {
        tracing::info!(state, "ready");
        self.send(&[NotifyState::Ready, NotifyState::Status(state)]);
    }

    pub fn status(&self, state: &str) {
        self.send(&[NotifyState::Status(state)]);
    }

    pub fn watchdog(&mut self, now: Instant) {
        if self.last_ping.is_some_and(|t| now < t + PING_EVERY) {
            return;
        }
        self.last_ping = Some(now);
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }
}

impl super::Driver {
    /// The health tick's watchdog ping: sent when [`watchdog::healthy`] says
    /// so; a spell without pings is logged once, since systemd will restart
    /// the box if it lasts `WatchdogSec`.
    pub(super) fn feed_watchdog(&mut self, now: Instant) {
        if let Some(c) = self.media.capture() {
            let frames = c.health().frames_out.load(Ordering::Relaxed);
            if frames != self.last_frames {
                self.last_frames = frames;
                self.frames_changed_at = now;
            }
        }
        let status = self.show.status();
        let vitals = Vitals {
            state: status.state,
            camera_retrying: status.slate,
            // A state change (a capture ready again, a show started) restarts
            // the count: the frames had no reason to flow before it.
            frames_quiet_for: now
                .saturating_duration_since(self.frames_changed_at.max(self.state_since)),
            in_state_for: now.saturating_duration_since(self.state_since),
        };
        if watchdog::healthy(&vitals) {
            if self.starving {
                tracing::info!("healthy again; feeding the watchdog");
                self.starving = false;
            }
            self.notify.watchdog(now);
        } else if !self.starving {
            self.starving = true;
            tracing::error!(
                state = vitals.state.as_str(),
                frames_quiet_s = vitals.frames_quiet_for.as_secs(),
                "no encoded frames: the pipeline looks hung; the watchdog is no longer fed"
            );
        }
    }
}
