//! The show: a pure, sans-IO state machine of one farmer's livestream.
//!
//! No tokio, no GStreamer, no clock reads, no I/O (the quinn-proto / str0m shape).
//! **Run-loop contract:** the driver creates [`Show::new`] (which queues
//! `StartCapture` and the initial lights), then for every thing that happens calls
//! [`Show::handle`]`(now, input)` and drains [`Show::poll_action`] until `None`,
//! performing each [`Action`] in order. It sleeps until [`Show::poll_timeout`] and
//! then calls `handle(deadline, Input::Tick)`. Deadlines that passed are fired at
//! the start of every `handle`, so after it no deadline lies in the past. The
//! driver answers every `Disconnect` with `DestinationStopped` (at once if there
//! was nothing to stop), and passes only enabled destinations to `new`.
//!
//! **States** ([`State`]) are derived, not stored: outside a show they follow the
//! capture (Starting / Standby / Error); during a show they follow the
//! destinations: Connecting until one is up, Live while at least one is up,
//! Reconnecting when none is up any more; Stopping while the destinations stop.
//!
//! **Decisions** (the reasons are the farmer's):
//! - A show starts on a short go-live press or a `GoLive` command, and ends only
//!   on a long press, `EndShow`, or `Shutdown`. A short press during a show emits
//!   `Ack` and flickers the tally; it never stops anything.
//! - Going live in Error is allowed when the capture ran at least once: the
//!   viewers see the slate, the show and its recording go on, and the camera keeps
//!   being restarted. If the camera never ran, the press is refused with an
//!   `Error` event. A press during Starting is remembered and honoured when
//!   Standby is reached (the farmer pressed while the box was booting); it is
//!   dropped if that start fails.
//! - Autostart goes live the first time Standby is reached, never again after the
//!   farmer ended that show.
//! - With no destination configured a show is a recording: it is Live at once.
//! - `Ready` is sent the first time Standby *or Error* is reached, so that a box
//!   without a camera still starts (and reports its error) instead of being
//!   restarted by systemd.
//! - Each down destination reconnects on its own with capped exponential backoff
//!   and jitter ([`crate::backoff`]), forever, reset once it is up. `DestinationDown`
//!   events mark the up → down transition only; failed retries just update
//!   `last_error` and `reconnects` in [`ShowStatus`].
//! - Show ids are `show-0001`, `show-0002`, … counted since the daemon started;
//!   the driver adds wall-clock stamps to file names.

mod machine;
mod timer;
mod types;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use crate::gpio::buttons::{ButtonEvent, ButtonId, PressKind};
pub use crate::gpio::tally::Pattern;
pub use machine::Show;
pub use timer::Timer;
pub use types::{
    Action, Command, DestinationStatus, Input, LinkState, ShowEvent, ShowSettings, ShowStatus,
    State, StopReason,
};
