//! Light patterns: what a LED does, and whether a pattern's LED is lit a given
//! time after the pattern started. Which pattern a show state shows is the
//! show's decision (`show::machine::pattern_for`).
//!
//! Pure: the driver keeps `(pattern, started_at)`, sets the LED to
//! [`level`]`(pattern, now - started_at)` and sleeps until [`next_change`].

use std::time::Duration;

/// What a LED does. The show machine picks one per state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Off,
    /// Standby: ready, not on air.
    SlowBlink,
    /// Connecting or reconnecting.
    FastBlink,
    /// On air.
    Solid,
    /// A fault: double blink.
    Error,
    /// A brief flicker acknowledging a press that changed nothing.
    Ack,
    /// The status light's "needs a technician": three short blinks, a pause
    /// (a part is missing or failing while the show can go on: a scale that
    /// stopped talking, a full disk, the GPIO).
    Attention,
}

impl Pattern {
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Off => "off",
            Pattern::SlowBlink => "slow_blink",
            Pattern::FastBlink => "fast_blink",
            Pattern::Solid => "solid",
            Pattern::Error => "error",
            Pattern::Ack => "ack",
            Pattern::Attention => "attention",
        }
    }

    /// The pattern as a repeating cycle of `(lit, duration)` steps; `None` = constant.
    fn cycle(self) -> Option<&'static [(bool, u64)]> {
        match self {
            Pattern::Off | Pattern::Solid => None,
            Pattern::SlowBlink => Some(&[(true, 500), (false, 500)]),
            Pattern::FastBlink => Some(&[(true, 100), (false, 100)]),
            Pattern::Error => Some(&[(true, 150), (false, 150), (true, 150), (false, 750)]),
            Pattern::Ack => Some(&[(true, 40), (false, 40)]),
            Pattern::Attention => Some(&[
                (true, 120),
                (false, 120),
                (true, 120),
                (false, 120),
                (true, 120),
                (false, 1400),
            ]),
        }
    }
}

/// Position inside the cycle: (index of the step, time left in it).
fn step_at(cycle: &[(bool, u64)], since: Duration) -> Option<(usize, u64)> {
    let period: u64 = cycle.iter().map(|(_, d)| d).sum();
    if period == 0 {
        return None;
    }
    let mut t = (since.as_millis() % u128::from(period)) as u64;
    for (i, (_, d)) in cycle.iter().enumerate() {
        if t < *d {
            return Some((i, d - t));
        }
        t -= d;
    }
    None
}

/// Whether the LED is lit `since` after the pattern started.
pub fn level(pattern: Pattern, since: Duration) -> bool {
    match pattern {
        Pattern::Off => false,
        Pattern::Solid => true,
        _ => pattern
            .cycle()
            .and_then(|c| step_at(c, since).and_then(|(i, _)| c.get(i)))
            .is_some_and(|(lit, _)| *lit),
    }
}

/// How long after `since` the level may change next; `None` for constant patterns.
pub fn next_change(pattern: Pattern, since: Duration) -> Option<Duration> {
    let cycle = pattern.cycle()?;
    step_at(cycle, since).map(|(_, left)| Duration::from_millis(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn constant_patterns() {
        for t in [0, 1, 499, 500, 10_000] {
            assert!(!level(Pattern::Off, ms(t)));
            assert!(level(Pattern::Solid, ms(t)));
            assert_eq!(next_change(Pattern::Solid, ms(t)), None);
        }
    }

    #[test]
    fn slow_blink_half_duty() {
        assert!(level(Pattern::SlowBlink, ms(0)));
        assert!(level(Pattern::SlowBlink, ms(499)));
        assert!(!level(Pattern::SlowBlink, ms(500)));
        assert!(level(Pattern::SlowBlink, ms(1000)));
        assert_eq!(next_change(Pattern::SlowBlink, ms(200)), Some(ms(300)));
    }

    #[test]
    fn error_is_a_double_blink() {
        let lit: Vec<bool> = (0..12)
            .map(|i| level(Pattern::Error, ms(i * 100 + 50)))
            .collect();
        let expect = [
            true, false, false, true, false, false, false, false, false, false, false, false,
        ];
        // 0-150 on, 150-300 off, 300-450 on, then off until 1200.
        assert_eq!(&lit[..], &expect[..]);
        assert!(level(Pattern::Error, ms(1200)));
    }

    #[test]
    fn next_change_lands_on_a_level_change() {
        for p in [
            Pattern::SlowBlink,
            Pattern::FastBlink,
            Pattern::Error,
            Pattern::Ack,
        ] {
            for t in (0..3000).step_by(7) {
                let d = next_change(p, ms(t)).unwrap_or_default();
                assert!(d > Duration::ZERO);
                assert_ne!(
                    level(p, ms(t) + d - ms(1)),
                    level(p, ms(t) + d),
                    "{p:?} at {t}"
                );
            }
        }
    }
}
