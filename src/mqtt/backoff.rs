//! Capped exponential backoff for reconnecting to the broker.
//!
//! rumqttc's `EventLoop::poll()` reconnects at once after an error, so a broker
//! that is down would be hammered in a tight loop; the poll task sleeps
//! `next()` after each failure and calls `reset()` on every ConnAck. Pure: the
//! jitter seed is passed in.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(10));
        Backoff {
            min,
            max: max.max(min),
            current: min,
        }
    }

    /// The delay before the next attempt: the current step plus up to 25 % jitter
    /// taken from `seed` (so a fleet that lost the same broker does not come back
    /// in lockstep), never above the cap. The step then doubles.
    pub fn next(&mut self, seed: u32) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = step.mul_f64(f64::from(seed % 1000) / 4000.0);
        (step + jitter).min(self.max)
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let steps: Vec<_> = (0..6).map(|_| b.next(0)).collect();
        let ms: Vec<u128> = steps.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![500, 1000, 2000, 4000, 4000, 4000]);
        b.reset();
        assert_eq!(b.next(0), Duration::from_millis(500));
    }

    #[test]
    fn jitter_is_bounded() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for seed in [0, 1, 999, 12345, u32::MAX] {
            b.reset();
            let d = b.next(seed);
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_millis(1250),
                "{d:?}"
            );
        }
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(2));
        for _ in 0..5 {
            assert!(b.next(999) <= Duration::from_secs(2));
        }
    }
}
