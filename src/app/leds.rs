//! Drives the tally and status LEDs from the patterns the show machine picks:
//! the driver sets a pattern, this keeps `(pattern, since)` and flips the pin
//! at each change the pattern's cycle asks for.

use std::time::Instant;

use crate::gpio::tally::{self, Pattern};
use crate::gpio::Led;

struct Light {
    led: Box<dyn Led>,
    pattern: Pattern,
    since: Instant,
    lit: Option<bool>,
}

impl Light {
    fn new(led: Box<dyn Led>) -> Light {
        Light {
            led,
            pattern: Pattern::Off,
            since: Instant::now(),
            lit: None,
        }
    }

    fn set(&mut self, now: Instant, pattern: Pattern) {
        if pattern != self.pattern {
            self.pattern = pattern;
            self.since = now;
        }
    }

    fn update(&mut self, now: Instant) {
        let level = tally::level(self.pattern, now.saturating_duration_since(self.since));
        if self.lit != Some(level) {
            if let Err(e) = self.led.set(level) {
                tracing::warn!(error = %format!("{e:#}"), "LED write failed");
            }
            self.lit = Some(level);
        }
    }

    fn next_change(&self) -> Option<Instant> {
        let since = Instant::now().saturating_duration_since(self.since);
        tally::next_change(self.pattern, since).map(|d| Instant::now() + d)
    }
}

pub struct Leds {
    tally: Light,
    status: Option<Light>,
}

impl Leds {
    pub fn new(tally: Box<dyn Led>, status: Option<Box<dyn Led>>) -> Leds {
        Leds {
            tally: Light::new(tally),
            status: status.map(Light::new),
        }
    }

    /// The real lights, once the GPIO opened (the box started with null
    /// ones, status included so that its pattern is kept): they take up the
    /// patterns already set.
    pub fn attach(&mut self, tally: Box<dyn Led>, status: Option<Box<dyn Led>>) {
        let swap = |old: &Light, led| Light {
            led,
            pattern: old.pattern,
            since: old.since,
            lit: None,
        };
        self.tally = swap(&self.tally, tally);
        self.status = match (&self.status, status) {
            (Some(old), Some(led)) => Some(swap(old, led)),
            (None, Some(led)) => Some(Light::new(led)),
            (_, None) => None,
        };
    }

    pub fn set_tally(&mut self, now: Instant, p: Pattern) {
        self.tally.set(now, p);
    }

    pub fn set_status(&mut self, now: Instant, p: Pattern) {
        if let Some(s) = &mut self.status {
            s.set(now, p);
        }
    }

    pub fn update(&mut self, now: Instant) {
        self.tally.update(now);
        if let Some(s) = &mut self.status {
            s.update(now);
        }
    }

    pub fn next_change(&self) -> Option<Instant> {
        [
            self.tally.next_change(),
            self.status.as_ref().and_then(Light::next_change),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Drop for Leds {
    /// Off when the daemon is down: a dark light means "not running".
    fn drop(&mut self) {
        let _ = self.tally.led.set(false);
        if let Some(s) = &mut self.status {
            let _ = s.led.set(false);
        }
    }
}
