//! The `sim` back end: a scale that reads what the sim socket's `weight` line
//! says, settling as a real one would.
//!
//! After a new weight the reading ramps from the old value for a quarter of
//! `settle_ms`, then wobbles around the target with a shrinking, deterministic
//! amplitude (larger than any sane tolerance at first) flagged unstable, and
//! from half of `settle_ms` on holds the exact value flagged stable. With the
//! settle detector on top, a tag is possible about 1.5 × `settle_ms` after the
//! `weight` line, within the default tag wait. Readings come every
//! [`PERIOD`], like a 20 Hz load cell.

use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use super::{Flags, Opened, RawReading, ScaleSource};
use crate::config::schema::ScaleConfig;

pub const PERIOD: Duration = Duration::from_millis(50);
/// Wobble at the start of the settling phase, in grams.
const WOBBLE_G: f64 = 40.0;

pub struct SimScale {
    settle: Duration,
    rx: watch::Receiver<f64>,
}

/// The driver's handle: where `weight` values go.
#[derive(Clone, Debug)]
pub struct SimScaleFeed {
    tx: watch::Sender<f64>,
}

impl SimScaleFeed {
    /// The scale now has `kg` on it. Non-finite values are ignored (the sim
    /// socket's parser already refuses them).
    pub fn set(&self, kg: f64) {
        if kg.is_finite() {
            self.tx.send_replace(kg);
        }
    }
}

impl SimScale {
    pub fn new(settle: Duration) -> (SimScale, SimScaleFeed) {
        let (tx, rx) = watch::channel(0.0);
        (SimScale { settle, rx }, SimScaleFeed { tx })
    }
}

pub fn build(cfg: &ScaleConfig) -> anyhow::Result<Opened> {
    let (scale, feed) = SimScale::new(Duration::from_millis(cfg.settle_ms));
    Ok(Opened {
        source: Box::new(scale),
        sim_feed: Some(feed),
        needs_calibration: false,
    })
}

/// What the simulated scale shows `elapsed` after moving from `from_g` to
/// `to_g` grams.
pub fn profile(from_g: f64, to_g: f64, elapsed: Duration, settle: Duration) -> (f64, Flags) {
    let ramp = settle / 4;
    let hold = settle / 2;
    if from_g == to_g || elapsed >= hold {
        return (to_g, Flags::Stable);
    }
    if elapsed < ramp {
        let f = elapsed.as_secs_f64() / ramp.as_secs_f64().max(1e-9);
        return (from_g + (to_g - from_g) * f, Flags::Unstable);
    }
    // Shrinking, alternating wobble: deterministic so tests can rely on it.
    let left = (hold - elapsed).as_secs_f64() / (hold - ramp).as_secs_f64().max(1e-9);
    let step = (elapsed.as_millis() / PERIOD.as_millis().max(1)) % 2;
    let sign = if step == 0 { 1.0 } else { -1.0 };
    (to_g + sign * WOBBLE_G * left, Flags::Unstable)
}

impl ScaleSource for SimScale {
    fn start(self: Box<Self>, tx: UnboundedSender<RawReading>) -> anyhow::Result<()> {
        let SimScale { settle, mut rx } = *self;
        let handle = tokio::runtime::Handle::try_current()
            .context("the sim scale must be started inside the tokio runtime")?;
        handle.spawn(async move {
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut from_g = 0.0;
            let mut to_g = *rx.borrow_and_update() * 1000.0;
            let mut since = Instant::now();
            let mut shown = to_g;
            loop {
                tokio::select! {
                    changed = rx.changed() => {
                        if changed.is_err() {
                            // The feed is gone: keep showing the last value.
                            rx = watch::channel(to_g / 1000.0).1;
                            continue;
                        }
                        from_g = shown;
                        to_g = *rx.borrow_and_update() * 1000.0;
                        since = Instant::now();
                    }
                    _ = tick.tick() => {
                        let at = Instant::now();
                        let (value, flags) = profile(from_g, to_g, at - since, settle);
                        shown = value;
                        if tx.send(RawReading::Grams { value, at, flags }).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::filter::{Median, Settle};

    #[test]
    fn ramps_wobbles_then_holds_exactly() {
        let settle = Duration::from_millis(800);
        let at = |ms| profile(0.0, 1250.0, Duration::from_millis(ms), settle);
        assert_eq!(at(0), (0.0, Flags::Unstable));
        assert_eq!(at(100), (625.0, Flags::Unstable));
        let (v, f) = at(250);
        assert!(f == Flags::Unstable && (v - 1250.0).abs() > 5.0, "{v}");
        assert_eq!(at(400), (1250.0, Flags::Stable));
        assert_eq!(at(10_000), (1250.0, Flags::Stable));
        assert_eq!(
            profile(500.0, 500.0, Duration::ZERO, settle),
            (500.0, Flags::Stable)
        );
    }

    /// The whole chain (median + settle detector) on the simulated readings:
    /// stable within the default tag wait (1.5 s), not before the settle time.
    #[test]
    fn settles_within_the_default_tag_wait() {
        let settle = Duration::from_millis(800);
        let t0 = Instant::now();
        let mut median = Median::default();
        let mut detector = Settle::new(settle, 5.0);
        let mut stable_at = None;
        for i in 0..60u32 {
            let e = PERIOD * i;
            let (v, f) = profile(0.0, 1250.0, e, settle);
            let m = median.push(v).unwrap_or(v);
            if detector.push(t0 + e, m) && f == Flags::Stable && stable_at.is_none() {
                stable_at = Some(e);
            }
        }
        let s = stable_at.unwrap_or(Duration::MAX);
        assert!(s >= settle && s <= Duration::from_millis(1500), "{s:?}");
    }

    #[tokio::test]
    async fn feed_values_arrive_as_readings() {
        let (scale, feed) = SimScale::new(Duration::from_millis(100));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        Box::new(scale).start(tx).unwrap();
        feed.set(0.5);
        feed.set(f64::NAN);
        let mut last = None;
        for _ in 0..40 {
            if let Some(RawReading::Grams { value, flags, .. }) = rx.recv().await {
                last = Some((value, flags));
                if last == Some((500.0, Flags::Stable)) {
                    break;
                }
            }
        }
        assert_eq!(last, Some((500.0, Flags::Stable)));
    }
}
