//! The GPIO and the scale may be missing (rppal off a Pi, a sim socket in a
//! missing folder, a scale that does not answer): the box reports it (status
//! `errors`, an `error` event naming the part) and retries on a capped
//! backoff, never exits. Meanwhile the lights are dark and the buttons
//! silent; MQTT commands (`go_live`, `end_show`, `tag_product`) still work.

use std::time::{Duration, Instant};

use super::{Core, Output, Publish};
use crate::backoff::{Backoff, XorShift64};
use crate::mqtt::payloads::{Event, EventBody};
use crate::scale::Scale;

/// First wait before opening a missing part again; it doubles up to the cap.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// A part plugged in later is found within this long.
const RETRY_CAP: Duration = Duration::from_secs(30);
/// Longest error text a status or event carries.
pub const ERROR_CHARS: usize = 240;

/// One part that may be missing: why, and when to try it again (pure; the
/// driver passes the time and does the opening).
#[derive(Debug)]
pub struct Retry {
    part: &'static str,
    error: Option<String>,
    backoff: Backoff,
    rng: XorShift64,
    at: Option<Instant>,
}

/// What a failed attempt means for the technician.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// A new problem (or a different one): worth an `error` event.
    New,
    /// The same problem again: logged quietly.
    Same,
}

impl Retry {
    pub fn new(part: &'static str, seed: u64) -> Retry {
        Retry {
            part,
            error: None,
            backoff: Backoff::new(RETRY_FIRST, 2, RETRY_CAP),
            rng: XorShift64::new(seed),
            at: None,
        }
    }

    pub fn part(&self) -> &'static str {
        self.part
    }

    /// The attempt at `now` failed: schedule the next one.
    pub fn failed(&mut self, now: Instant, why: &str) -> Failure {
        let why = crate::excerpt::excerpt_n(why, ERROR_CHARS);
        let kind = if self.error.as_deref() == Some(why.as_str()) {
            Failure::Same
        } else {
            Failure::New
        };
        self.error = Some(why);
        self.at = Some(now + self.backoff.next_delay(&mut self.rng));
        kind
    }

    /// The part is open. True when it had been missing.
    pub fn opened(&mut self) -> bool {
        self.at = None;
        self.backoff.reset();
        self.error.take().is_some()
    }

    /// An attempt was asked for: no other until it is answered.
    pub fn asked(&mut self) {
        self.at = None;
    }

    /// Time to try again.
    pub fn due(&self, now: Instant) -> bool {
        self.at.is_some_and(|t| now >= t)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.at
    }

    /// Why the part is missing, while it is.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// The two parts the core opens and reopens.
#[derive(Debug)]
pub struct Parts {
    pub gpio: Retry,
    pub scale: Retry,
}

impl Parts {
    pub fn new(seed: u64) -> Parts {
        Parts {
            gpio: Retry::new("gpio", seed ^ 0x9e37),
            scale: Retry::new("scale", seed ^ 0x7f4a),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.gpio.poll_timeout(), self.scale.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}

impl Core {
    /// Ask the shell to open the GPIO and the scale: both at start, later
    /// each when its retry is due.
    pub(super) fn open_parts(&mut self, now: Instant, first: bool) {
        if first || self.parts.gpio.due(now) {
            self.parts.gpio.asked();
            self.out
                .push_back(Output::OpenGpio(Box::new(self.config.clone())));
        }
        if first || self.parts.scale.due(now) {
            self.parts.scale.asked();
            self.out
                .push_back(Output::OpenScale(Box::new(self.config.clone())));
        }
    }

    pub(super) fn gpio_opened(&mut self, now: Instant, result: Result<(), String>) {
        match result {
            Ok(()) => {
                // New pins: write the lights' levels again.
                self.lights.repaint();
                if self.parts.gpio.opened() {
                    tracing::info!("GPIO open: buttons and lights work again");
                    self.status.due_now(now);
                }
            }
            Err(why) => {
                let failure = self.parts.gpio.failed(now, &why);
                self.part_failed(now, failure, |p| &p.gpio);
            }
        }
    }

    pub(super) fn scale_opened(
        &mut self,
        now: Instant,
        result: Result<Option<Box<Scale>>, String>,
    ) {
        match result {
            Ok(scale) => {
                self.selling.set_scale(scale.map(|s| *s));
                if self.parts.scale.opened() {
                    tracing::info!("scale open");
                    self.status.due_now(now);
                }
            }
            Err(why) => {
                let failure = self.parts.scale.failed(now, &why);
                self.part_failed(now, failure, |p| &p.scale);
            }
        }
    }

    fn part_failed(&mut self, now: Instant, failure: Failure, which: fn(&Parts) -> &Retry) {
        let retry = which(&self.parts);
        let part = retry.part();
        let why = retry.error().unwrap_or_default().to_string();
        let in_s = retry
            .poll_timeout()
            .map_or(0.0, |t| t.saturating_duration_since(now).as_secs_f32());
        if failure == Failure::Same {
            tracing::debug!(part, error = %why, retry_in_s = in_s, "still missing");
            return;
        }
        tracing::error!(part, error = %why, retry_in_s = in_s, "cannot open; the box runs without it and retries");
        let ev = Event::at(
            EventBody::Error {
                what: format!("{part}: {why}"),
                part: Some(part.to_string()),
            },
            self.wall,
        );
        self.publish(Publish::Event(ev));
        self.status.due_now(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_cap_and_reset_when_open() {
        let t0 = Instant::now();
        let mut r = Retry::new("gpio", 7);
        assert!(!r.due(t0));
        assert_eq!(r.failed(t0, "no chip"), Failure::New);
        let first = r.poll_timeout().expect("scheduled") - t0;
        assert!(
            first >= RETRY_FIRST / 2 && first <= RETRY_FIRST,
            "{first:?}"
        );
        // Jump from deadline to deadline: an hour of a missing chip in no time.
        let mut now = t0;
        let mut last = Duration::ZERO;
        for _ in 0..200 {
            now = r.poll_timeout().expect("scheduled");
            assert!(r.due(now));
            assert_eq!(r.failed(now, "no chip"), Failure::Same);
            last = r.poll_timeout().expect("scheduled") - now;
            assert!(last <= RETRY_CAP, "{last:?}");
        }
        assert!(last >= RETRY_CAP / 2, "the delay grew to the cap: {last:?}");
        assert!(now - t0 > Duration::from_secs(60 * 30));
        assert_eq!(r.error(), Some("no chip"));
        assert!(r.opened());
        assert_eq!(r.error(), None);
        assert!(!r.due(now + Duration::from_secs(3600)));
        // Missing again: starts from the short delay.
        assert_eq!(r.failed(now, "no chip"), Failure::New);
        assert!(r.poll_timeout().expect("scheduled") - now <= RETRY_FIRST);
    }

    #[test]
    fn a_different_error_is_new_and_long_text_is_cut() {
        let t0 = Instant::now();
        let mut r = Retry::new("scale", 1);
        assert_eq!(r.failed(t0, "a"), Failure::New);
        assert_eq!(r.failed(t0, "b"), Failure::New);
        r.failed(t0, &"x".repeat(100_000));
        assert!(r.error().map_or(0, str::len) < 400);
    }
}
