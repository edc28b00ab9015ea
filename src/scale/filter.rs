//! Spike filter and settle detector (pure, time passed in).
//!
//! - [`Median`]: the median of the last [`MEDIAN_LEN`] samples. One wild
//!   sample (a knock on the table, a bit flipped on the wire) never reaches the
//!   price; a real change shows after three samples.
//! - [`Settle`]: a reading is stable once every sample of the last
//!   `settle` span stays within `tolerance` of each other (max − min), and the
//!   samples cover the whole span. Any gap in the history (reset) starts over.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples the median looks at.
pub const MEDIAN_LEN: usize = 5;

#[derive(Debug, Clone, Default)]
pub struct Median {
    last: VecDeque<f64>,
}

impl Median {
    /// Adds a sample and returns the median of the last samples (of the ones
    /// there are, while fewer than [`MEDIAN_LEN`]). Non-finite samples are the
    /// caller's to reject; here they are ignored.
    pub fn push(&mut self, v: f64) -> Option<f64> {
        if v.is_finite() {
            if self.last.len() == MEDIAN_LEN {
                self.last.pop_front();
            }
            self.last.push_back(v);
        }
        self.value()
    }

    pub fn value(&self) -> Option<f64> {
        let mut sorted: Vec<f64> = self.last.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => sorted.get(n / 2).copied(),
            _ => Some((sorted.get(n / 2 - 1)? + sorted.get(n / 2)?) / 2.0),
        }
    }

    pub fn reset(&mut self) {
        self.last.clear();
    }
}

#[derive(Debug, Clone)]
pub struct Settle {
    settle: Duration,
    tolerance: f64,
    /// Samples in time order; the first is the newest one at or before
    /// `now - settle`, so the window's start is covered.
    history: VecDeque<(Instant, f64)>,
}

impl Settle {
    pub fn new(settle: Duration, tolerance: f64) -> Settle {
        Settle {
            settle,
            tolerance: tolerance.max(0.0),
            history: VecDeque::new(),
        }
    }

    /// Adds a sample taken at `at` (samples must come in time order; an older
    /// one restarts the history) and says whether the reading is now stable.
    pub fn push(&mut self, at: Instant, v: f64) -> bool {
        if !v.is_finite() || self.history.back().is_some_and(|(t, _)| *t > at) {
            self.history.clear();
            if !v.is_finite() {
                return false;
            }
        }
        self.history.push_back((at, v));
        // Drop samples that are older than needed: keep exactly one at or before
        // the window's start.
        if let Some(start) = at.checked_sub(self.settle) {
            while self.history.get(1).is_some_and(|(t, _)| *t <= start) {
                self.history.pop_front();
            }
        }
        self.is_stable(at)
    }

    /// Stable as of `now` (the newest sample's time, usually).
    pub fn is_stable(&self, now: Instant) -> bool {
        let Some((first, _)) = self.history.front() else {
            return false;
        };
        if now.saturating_duration_since(*first) < self.settle {
            return false;
        }
        let (lo, hi) = self
            .history
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
                (lo.min(*v), hi.max(*v))
            });
        hi - lo <= self.tolerance
    }

    pub fn reset(&mut self) {
        self.history.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn median_ignores_one_spike_and_follows_a_real_change() {
        let mut m = Median::default();
        for v in [1000.0, 1001.0, 999.0, 1000.0] {
            m.push(v);
        }
        assert_eq!(m.push(90_000.0), Some(1000.0));
        assert_eq!(m.push(1000.0), Some(1000.0));
        // A real change: the median moves once it is the majority.
        let mut last = None;
        for _ in 0..3 {
            last = m.push(2000.0);
        }
        assert_eq!(last, Some(2000.0));
        assert_eq!(Median::default().value(), None);
        let mut two = Median::default();
        two.push(1.0);
        assert_eq!(two.push(3.0), Some(2.0));
        assert_eq!(two.push(f64::NAN), Some(2.0));
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn stable_only_after_the_whole_settle_span_within_tolerance() {
        let t0 = Instant::now();
        let mut s = Settle::new(Duration::from_millis(800), 5.0);
        // Steady samples every 100 ms: stable once 800 ms are covered.
        let mut became = None;
        for i in 0..12u64 {
            let v = 1250.0 + (i % 3) as f64; // wobble of 2 g
            if s.push(ms(t0, i * 100), v) && became.is_none() {
                became = Some(i * 100);
            }
        }
        assert_eq!(became, Some(800));
        // A 10 g jump breaks it until 800 ms of the new value.
        assert!(!s.push(ms(t0, 1200), 1260.0));
        assert!(!s.push(ms(t0, 1900), 1260.0));
        assert!(s.push(ms(t0, 2000), 1260.0));
        // Time going backwards restarts.
        assert!(!s.push(ms(t0, 100), 1260.0));
    }

    #[test]
    fn wobble_beyond_tolerance_is_never_stable() {
        let t0 = Instant::now();
        let mut s = Settle::new(Duration::from_millis(300), 5.0);
        for i in 0..50u64 {
            let v = if i % 2 == 0 { 100.0 } else { 106.0 };
            assert!(!s.push(ms(t0, i * 50), v));
        }
    }

    proptest! {
        #[test]
        fn stable_implies_the_window_is_within_tolerance(
            vals in proptest::collection::vec((1u64..200, -50.0f64..50.0), 1..80),
            tol in 0.0f64..20.0,
        ) {
            let t0 = Instant::now();
            let settle = Duration::from_millis(400);
            let mut s = Settle::new(settle, tol);
            let mut t = 0u64;
            let mut seen: Vec<(u64, f64)> = Vec::new();
            for (dt, v) in vals {
                t += dt;
                seen.push((t, v));
                let stable = s.push(ms(t0, t), v);
                if stable {
                    // Model: the samples from the last one at or before t-400 on.
                    let start = t.checked_sub(400);
                    prop_assert!(start.is_some());
                    let start = start.unwrap_or(0);
                    let first = seen.iter().rposition(|(ts, _)| *ts <= start);
                    prop_assert!(first.is_some());
                    let window = &seen[first.unwrap_or(0)..];
                    let lo = window.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
                    let hi = window.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
                    prop_assert!(hi - lo <= tol);
                }
            }
        }
    }
}
