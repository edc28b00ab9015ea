//! How the target climbs on a clear link (see the module docs of [`super`]:
//! slow start, recovery, the careful zone near the last congestion).

use std::time::{Duration, Instant};

use super::AbrController;

impl AbrController {
    /// The rate of the last congestion while it is remembered, else the
    /// link rate remembered from the last show.
    pub(super) fn ceiling(&self, now: Instant) -> Option<u32> {
        match self.last_congested {
            Some((kbps, at)) if now.saturating_duration_since(at) < self.s.congestion_memory => {
                Some(kbps)
            }
            _ => self.remembered,
        }
    }

    /// A link with a backlog delivers all it can: when that is well past
    /// the ceiling (by 20%, the sound taken off), the link has grown since
    /// (600 → 2000 kbit/s) and the ceiling only holds the climb back: it
    /// took 8 s of careful steps from 400 to 783 on a 2000 kbit/s link.
    pub(super) fn forget_a_ceiling_the_link_outgrew(
        &mut self,
        now: Instant,
        delivered: Option<u32>,
    ) {
        let (Some(d), Some(c)) = (delivered, self.ceiling(now)) else {
            return;
        };
        let video = u64::from(d.saturating_sub(self.s.audio_kbps));
        if video * 10 > u64::from(c) * 12 {
            self.last_congested = None;
            self.remembered = None;
        }
    }

    /// The next target up after `clear_for` of a clear link, if it is time.
    pub(super) fn next_up(&self, now: Instant, clear_for: Duration) -> Option<u32> {
        let t = u64::from(self.target_kbps);
        let step = (u64::from(self.s.max_kbps) * u64::from(self.s.increase_step_pct) / 100).max(1);
        // Into the unknown only when the encoder writes (nearly) the whole
        // target with the sound, and every link delivers what is written
        // into it: a queue reads late (2.5 s), and 1575 went on to 2363
        // over a 1200 kbit/s link before it showed. Both, because an
        // encoder that has not yet caught up with the last step writes
        // what the link carries: on that alone, 1008 → 1512 → 2268 on a
        // 1200 kbit/s link.
        let pct = u64::from(self.s.slow_start_carry_pct);
        let sends = t + u64::from(self.s.audio_kbps);
        let carried = self.dests.iter().all(|(d, state)| {
            self.link_kbps
                .get(d)
                .is_some_and(|l| match (l.last, state.measured_kbps) {
                    (Some(m), Some(w)) => {
                        let (m, w) = (u64::from(m), u64::from(w));
                        m * 100 >= w * pct && w * 100 >= sends * pct.saturating_sub(5)
                    }
                    _ => false,
                })
        });
        let slow_start = |t: u64| {
            let next = (t as f64 * self.s.slow_start_factor).round() as u64;
            (carried && clear_for >= self.s.slow_start_interval).then_some(next.max(t + 1))
        };
        let next = match self.ceiling(now).map(u64::from) {
            // Nothing known of the link, or past where it was full: it has
            // room we know nothing of.
            None => slow_start(t)?,
            Some(c) if t * 10 >= c * 11 => slow_start(t)?,
            Some(c) => {
                let near = (c * 9).div_ceil(10);
                if t < near {
                    // The link carried more than this a moment ago: back
                    // there (to the edge of the careful zone) quickly.
                    let next = (t + step.max((near - t) / 2)).min(near);
                    (clear_for >= self.s.recovery_interval).then_some(next)?
                } else {
                    // A congestion of this show long past: the link has had
                    // time to grow, and 2.5 s a step is 5 s to cross the zone.
                    let long_past = self.last_congested.is_some_and(|(_, at)| {
                        now.saturating_duration_since(at) >= self.s.careful_for
                    });
                    let interval = if long_past {
                        self.s.recovery_interval
                    } else {
                        self.s.increase_interval
                    };
                    if clear_for < interval {
                        return None;
                    }
                    // Where the link was full a moment ago (on SRT an
                    // overshoot costs dropped packets, not just a queue):
                    // not until `near_congestion_wait` after that
                    // congestion. Counted from the congestion, not from the
                    // last step: a link that has been clear that long since
                    // may have grown (600 → 2000 kbit/s), and waiting again
                    // at every step took 30 s to find it.
                    let wait = self.s.near_congestion_wait;
                    let recent = self
                        .last_congested
                        .is_some_and(|(_, at)| now.saturating_duration_since(at) < wait);
                    if recent {
                        return None;
                    }
                    // Steps of a tenth of the ceiling (two cross the zone),
                    // not 5% of the maximum: that is 17% of a 1200 link
                    // with 4000 configured, an overshoot every time.
                    t + c.div_ceil(10).max(1)
                }
            }
        };
        Some(u32::try_from(next).unwrap_or(u32::MAX))
    }
}
