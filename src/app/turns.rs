//! How long the driver's loop turns take: the work from the `select!` wake
//! to the next await. A long turn is a stall of everything the loop serves
//! (buttons, commands, the watchdog), so the longest one is kept, over the
//! last status interval and since start, with what that turn was doing.
//!
//! Pure: the driver measures the duration and passes it in; this only keeps
//! the maxima and says when a turn deserves a warning.

use std::time::Duration;

/// A turn longer than this is logged as a warning (a button press or a
/// command waits that long).
pub const WARN_AFTER: Duration = Duration::from_millis(200);

/// What one turn did: the input that woke it, and the periodic work that
/// fell into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turn {
    /// The `select!` branch that woke the loop (`media`, `mqtt`, `timer`...).
    pub input: &'static str,
    pub health: bool,
    pub status: bool,
    pub recorder: bool,
}

impl Turn {
    /// `timer+health+status`: the input and the periodic work, for the status
    /// and the log (built only for a turn worth naming).
    pub fn describe(&self) -> String {
        let mut s = self.input.to_string();
        for (on, what) in [
            (self.health, "health"),
            (self.status, "status"),
            (self.recorder, "recorder"),
        ] {
            if on {
                s.push('+');
                s.push_str(what);
            }
        }
        s
    }
}

/// The longest turn of a span, and what it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Longest {
    pub took: Duration,
    pub what: String,
}

impl Longest {
    fn offer(&mut self, took: Duration, turn: &Turn) {
        if took > self.took || self.what.is_empty() {
            self.took = took;
            self.what = turn.describe();
        }
    }
}

#[derive(Debug, Default)]
pub struct TurnStats {
    interval: Longest,
    total: Longest,
    turns: u64,
}

impl TurnStats {
    /// Note one turn; true when it is long enough to warn about.
    pub fn record(&mut self, took: Duration, turn: &Turn) -> bool {
        self.turns = self.turns.saturating_add(1);
        // Most turns are neither: skip building the name.
        if took > self.interval.took || self.interval.what.is_empty() {
            self.interval.offer(took, turn);
        }
        if took > self.total.took || self.total.what.is_empty() {
            self.total.offer(took, turn);
        }
        took > WARN_AFTER
    }

    /// The longest turn since the last call (then a new interval starts),
    /// and the longest since start.
    pub fn take_interval(&mut self) -> (Longest, Longest) {
        (std::mem::take(&mut self.interval), self.total.clone())
    }

    pub fn turns(&self) -> u64 {
        self.turns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(input: &'static str) -> Turn {
        Turn {
            input,
            ..Turn::default()
        }
    }

    #[test]
    fn keeps_the_longest_per_interval_and_in_total() {
        let mut s = TurnStats::default();
        assert!(!s.record(Duration::from_millis(3), &turn("media")));
        assert!(s.record(Duration::from_millis(450), &turn("mqtt")));
        assert!(!s.record(Duration::from_millis(10), &turn("timer")));
        let (i, t) = s.take_interval();
        assert_eq!((i.took.as_millis(), i.what.as_str()), (450, "mqtt"));
        assert_eq!(t, i);
        // A new interval forgets the old maximum; the total keeps it.
        s.record(Duration::from_millis(7), &turn("sim"));
        let (i, t) = s.take_interval();
        assert_eq!((i.took.as_millis(), i.what.as_str()), (7, "sim"));
        assert_eq!((t.took.as_millis(), t.what.as_str()), (450, "mqtt"));
        assert_eq!(s.turns(), 4);
        // An interval without turns reads as nothing.
        let (i, _) = s.take_interval();
        assert_eq!(i, Longest::default());
    }

    #[test]
    fn names_the_periodic_work_of_the_turn() {
        let t = Turn {
            input: "timer",
            health: true,
            status: true,
            recorder: false,
        };
        assert_eq!(t.describe(), "timer+health+status");
        assert_eq!(turn("buttons").describe(), "buttons");
    }

    #[test]
    fn warns_only_past_the_threshold() {
        let mut s = TurnStats::default();
        assert!(!s.record(WARN_AFTER, &turn("timer")));
        assert!(s.record(WARN_AFTER + Duration::from_millis(1), &turn("timer")));
    }
}
