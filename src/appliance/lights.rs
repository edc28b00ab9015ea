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
    /// What the show asks of the status light; a part that needs a
    /// technician shows through where the show has nothing to say.
    show_status: Pattern,
    attention: bool,
    /// The time of the last update: deadlines are counted from it.
    last: Instant,
}

impl Lights {
    pub fn new(now: Instant) -> Lights {
        Lights {
            tally: Lamp::new(now),
            status: Lamp::new(now),
            show_status: Pattern::Off,
            attention: false,
            last: now,
        }
    }

    pub fn set(&mut self, which: Light, now: Instant, pattern: Pattern) {
        let lamp = match which {
            Light::Tally => &mut self.tally,
            Light::Status => {
                self.show_status = pattern;
                return self.compose(now);
            }
        };
        if lamp.pattern != pattern {
            lamp.pattern = pattern;
            lamp.since = now;
        }
    }

    /// A part needs a technician (or no longer does).
    pub fn attention(&mut self, now: Instant, on: bool) {
        if self.attention != on {
            self.attention = on;
            self.compose(now);
        }
    }

    /// The show's own fault patterns (a lost camera, a down destination)
    /// win: they say more, and the farmer can act on them.
    fn compose(&mut self, now: Instant) {
        let pattern = match self.show_status {
            Pattern::Off if self.attention => Pattern::Attention,
            p => p,
        };
        if self.status.pattern != pattern {
            self.status.pattern = pattern;
            self.status.since = now;
        }
    }

    #[cfg(test)]
    pub fn status_pattern(&self) -> Pattern {
        self.status.pattern
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
