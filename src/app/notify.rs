//! systemd notification (`Type=notify`): READY once standby (or error) is
//! reached, `STATUS=` with the show state, watchdog pings when the core says
//! the box is healthy (`appliance::watchdog`). Outside systemd (no
//! `NOTIFY_SOCKET`) every call is a no-op.

use sd_notify::NotifyState;

pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    pub fn new() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
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

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }
}
