//! The tally and status lights: the show machine picks a pattern, this
//! keeps `(pattern, since)` and says when a pin must change level.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Light, Output};
use crate::gpio::tally::{self, Pattern};

#[derive(Debug)]
struct Lamp {
    pattern: Pattern,
    since: Instant,
    /// The level last written (`None`: not yet, or the pin is new).
    lit: Option<bool>,
}

impl Lamp {
    fn new(now: Instant) -> Lamp {
        Lamp {
            pattern: Pattern::Off,
            since: now,
            lit: None,
        }
    }

    fn update(&mut self, which: Light, now: Instant, out: &mut VecDeque<Output>) {
        let on = tally::level(self.pattern, now.saturating_duration_since(self.since));
        if self.lit != Some(on) {
            self.lit = Some(on);
            out.push_back(Output::Light { light: which, on });
        }
    }

    fn next_change(&self, now_hint: Instant) -> Option<Instant> {
        let since = now_hint.saturating_duration_since(self.since);
        tally::next_change(self.pattern, since).map(|d| now_hint + d)
    }
}

#[derive(Debug)]
pub struct Lights {
    tally: Lamp,
    status: Lamp,
    /// The time of the last update: deadlines are counted from it.
    last: Instant,
}

impl Lights {
    pub fn new(now: Instant) -> Lights {
        Lights {
            tally: Lamp::new(now),
            status: Lamp::new(now),
            last: now,
        }
    }

    pub fn set(&mut self, which: Light, now: Instant, pattern: Pattern) {
        let lamp = match which {
            Light::Tally => &mut self.tally,
            Light::Status => &mut self.status,
        };
        if lamp.pattern != pattern {
            lamp.pattern = pattern;
            lamp.since = now;
        }
    }

    /// New pins (the GPIO opened again): write their levels at the next update.
    pub fn repaint(&mut self) {
        self.tally.lit = None;
        self.status.lit = None;
    }

    pub fn update(&mut self, now: Instant, out: &mut VecDeque<Output>) {
        self.last = now;
        self.tally.update(Light::Tally, now, out);
        self.status.update(Light::Status, now, out);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.tally.next_change(self.last),
            self.status.next_change(self.last),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
