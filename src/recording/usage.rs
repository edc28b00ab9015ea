//! When to measure the recordings' disk use again, as a pure decision.
//!
//! Measuring walks every segment of every past show (thousands of files on a
//! box that has recorded a season), so status must not do it each time it is
//! published: the driver keeps the last figures here, status reads them, and
//! a walk runs off the loop at most every [`REFRESH`] (one at a time). A
//! budget pass measures on its way and refreshes the figures too.

use std::time::{Duration, Instant};

/// Figures older than this are measured again (at the next status).
pub const REFRESH: Duration = Duration::from_secs(10);
/// A walk not back after this long is taken as lost, and asked again.
pub const LOST_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone)]
pub struct UsageCache {
    /// `(used_bytes, free_bytes)` of the last measure.
    figures: Option<(u64, u64)>,
    measured_at: Option<Instant>,
    /// A walk is running since then.
    asked_at: Option<Instant>,
}

impl UsageCache {
    /// Whether to start a walk now; if so, it counts as running from `now`.
    pub fn poll_refresh(&mut self, now: Instant) -> bool {
        if let Some(asked) = self.asked_at {
            if now.saturating_duration_since(asked) < LOST_AFTER {
                return false;
            }
        }
        let stale = self
            .measured_at
            .is_none_or(|t| now.saturating_duration_since(t) >= REFRESH);
        if stale {
            self.asked_at = Some(now);
        }
        stale
    }

    /// A walk (or a budget pass) came back with these figures.
    pub fn measured(&mut self, now: Instant, used_bytes: u64, free_bytes: u64) {
        self.figures = Some((used_bytes, free_bytes));
        self.measured_at = Some(now);
        self.asked_at = None;
    }

    /// The last figures; zeros until the first walk is back.
    /// The figures of the last measure, if there was one.
    pub fn measured_figures(&self) -> Option<(u64, u64)> {
        self.figures
    }

    pub fn figures(&self) -> (u64, u64) {
        self.figures.unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_once_then_reads_the_cache_until_stale() {
        let t0 = Instant::now();
        let mut c = UsageCache::default();
        assert_eq!(c.figures(), (0, 0));
        assert!(c.poll_refresh(t0));
        // One walk at a time: status every second asks nothing more meanwhile.
        for s in 1..5 {
            assert!(!c.poll_refresh(t0 + Duration::from_secs(s)));
        }
        c.measured(t0 + Duration::from_secs(5), 1_000, 9_000);
        assert_eq!(c.figures(), (1_000, 9_000));
        assert!(!c.poll_refresh(t0 + Duration::from_secs(14)));
        assert!(c.poll_refresh(t0 + Duration::from_secs(15)));
    }

    #[test]
    fn a_budget_pass_counts_as_a_measure() {
        let t0 = Instant::now();
        let mut c = UsageCache::default();
        c.measured(t0, 5, 6);
        assert!(!c.poll_refresh(t0 + REFRESH - Duration::from_millis(1)));
        assert_eq!(c.figures(), (5, 6));
    }

    #[test]
    fn a_lost_walk_is_asked_again() {
        let t0 = Instant::now();
        let mut c = UsageCache::default();
        assert!(c.poll_refresh(t0));
        assert!(!c.poll_refresh(t0 + LOST_AFTER - Duration::from_secs(1)));
        assert!(c.poll_refresh(t0 + LOST_AFTER));
    }
}
