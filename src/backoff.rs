//! Capped exponential backoff with deterministic jitter: the one retry delay
//! of the whole appliance (destination reconnects, capture and camera retries
//! in the show machine, GPIO and scale reopening, MQTT broker reconnects).
//!
//! A leaf: it uses nothing of the crate, so `show`, `mqtt` and `app` can all
//! depend on it without an import cycle between them. Sans-IO: the caller
//! passes the random source and adds the delay to its own clock.
//!
//! Jitter comes from a xorshift64 generator seeded by the caller, so a test run
//! with the same seed and inputs yields the same delays. Each delay lies in
//! `[0.5, 1.0] ×` the nominal delay, and the nominal delay never exceeds the cap.

use std::time::Duration;

/// xorshift64 (Marsaglia): tiny, deterministic, good enough for jitter.
#[derive(Debug, Clone)]
pub struct XorShift64(u64);

impl XorShift64 {
    pub fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        XorShift64(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

const MIN_DELAY: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    factor: u32,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, factor: u32, cap: Duration) -> Self {
        let cap = cap.max(MIN_DELAY);
        Backoff {
            initial: initial.clamp(MIN_DELAY, cap),
            factor: factor.max(1),
            cap,
            attempt: 0,
        }
    }

    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The nominal delay of the next attempt, before jitter.
    pub fn nominal(&self) -> Duration {
        self.factor
            .checked_pow(self.attempt)
            .and_then(|m| self.initial.checked_mul(m))
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// The delay before the next attempt, jittered, and counts the attempt.
    pub fn next_delay(&mut self, rng: &mut XorShift64) -> Duration {
        let nominal = self.nominal();
        if nominal < self.cap {
            self.attempt = self.attempt.saturating_add(1);
        }
        let ns = u64::try_from(nominal.as_nanos()).unwrap_or(u64::MAX);
        let half = ns / 2;
        let jitter = rng.next_u64() % (ns - half).saturating_add(1);
        Duration::from_nanos(half + jitter).max(MIN_DELAY)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_then_caps() {
        let b = |attempt| Backoff {
            attempt,
            ..Backoff::new(Duration::from_millis(100), 2, Duration::from_millis(2000))
        };
        let nominal: Vec<u64> = (0..8).map(|a| b(a).nominal().as_millis() as u64).collect();
        assert_eq!(nominal, vec![100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }

    #[test]
    fn reset_starts_over() {
        let mut rng = XorShift64::new(1);
        let mut b = Backoff::new(Duration::from_millis(100), 2, Duration::from_millis(2000));
        for _ in 0..10 {
            b.next_delay(&mut rng);
        }
        assert_eq!(b.nominal(), Duration::from_millis(2000));
        b.reset();
        assert_eq!(b.nominal(), Duration::from_millis(100));
    }

    #[test]
    fn same_seed_same_delays() {
        let run = |seed| {
            let mut rng = XorShift64::new(seed);
            let mut b = Backoff::new(Duration::from_millis(100), 2, Duration::from_millis(2000));
            (0..20).map(|_| b.next_delay(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    /// The MQTT link's figures (reconnect_min 500 ms, reconnect_max 4 s):
    /// doubles to the cap, stays there, starts over after a reset (a ConnAck).
    #[test]
    fn mqtt_reconnect_doubles_up_to_the_cap_and_resets() {
        let mut rng = XorShift64::new(3);
        let mut b = Backoff::new(Duration::from_millis(500), 2, Duration::from_secs(4));
        let mut nominal = Vec::new();
        for _ in 0..6 {
            nominal.push(b.nominal().as_millis());
            b.next_delay(&mut rng);
        }
        assert_eq!(nominal, vec![500, 1000, 2000, 4000, 4000, 4000]);
        b.reset();
        assert_eq!(b.nominal(), Duration::from_millis(500));
    }

    /// Jitter spreads a fleet that lost the same broker (no lockstep return)
    /// and never goes above the cap, whatever the seed.
    #[test]
    fn jitter_is_bounded_and_spreads() {
        let mut delays = Vec::new();
        for seed in [0, 1, 999, 12345, u64::MAX] {
            let mut b = Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(60));
            let d = b.next_delay(&mut XorShift64::new(seed));
            assert!(
                d >= Duration::from_millis(500) && d <= Duration::from_secs(1),
                "{d:?}"
            );
            delays.push(d);
        }
        delays.dedup();
        assert!(delays.len() > 1, "every seed gave the same delay");
        let mut rng = XorShift64::new(5);
        let mut b = Backoff::new(Duration::from_secs(1), 2, Duration::from_secs(2));
        for _ in 0..5 {
            assert!(b.next_delay(&mut rng) <= Duration::from_secs(2));
        }
    }

    proptest! {
        #[test]
        fn delay_within_half_and_full_nominal_and_cap(
            seed: u64, initial in 0u64..5000, factor in 0u32..10, cap in 0u64..60_000, n in 1usize..80
        ) {
            let mut rng = XorShift64::new(seed);
            let mut b = Backoff::new(Duration::from_millis(initial), factor, Duration::from_millis(cap));
            for _ in 0..n {
                let nominal = b.nominal();
                let d = b.next_delay(&mut rng);
                prop_assert!(d <= nominal.max(MIN_DELAY));
                prop_assert!(d >= nominal / 2);
                prop_assert!(d <= b.cap());
                prop_assert!(d >= MIN_DELAY);
            }
        }
    }
}
