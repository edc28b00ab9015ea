//! What one destination's link was seen to deliver: the rate for a cut's
//! guess and for the link memory (see [`super::memory`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::LinkSample;

/// How far back the delivery rate looks: a group of pictures (a keyframe
/// and what follows) at the usual 1 s keyframe interval.
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub(super) struct LinkSize {
    /// Delivery rates measured while it was full (the last few, above the
    /// floor: a stalled link says nothing of its size).
    full: VecDeque<u32>,
    /// The most it carried while clear.
    carried: u32,
    /// The most it carried while clear since the last full sample.
    carried_since_full: u32,
    /// (when, bytes written in all, bytes written less those still queued).
    window: VecDeque<(Instant, u64, u64)>,
    /// The last delivery rate (or written rate, where none is known yet).
    pub(super) last: Option<u32>,
}

impl LinkSize {
    const KEEP: usize = 9;

    /// The rate (kbit/s) at which bytes left the queues over the last
    /// [`WINDOW`]: written, less what still waits in the socket and in
    /// front of it. What was only written reads high while the socket
    /// buffer fills: 1339 kbit/s "sent" into a 1200 kbit/s link.
    pub(super) fn delivered(&mut self, now: Instant, s: &LinkSample) -> Option<u32> {
        let gone = s.sent_bytes_total.saturating_sub(s.queued_bytes);
        if self
            .window
            .back()
            .is_some_and(|&(_, sent, _)| s.sent_bytes_total < sent)
        {
            // A new connection counts from zero.
            self.window.clear();
        }
        self.window.push_back((now, s.sent_bytes_total, gone));
        while self
            .window
            .get(1)
            .is_some_and(|&(t, _, _)| now.saturating_duration_since(t) >= WINDOW)
        {
            self.window.pop_front();
        }
        let &(t0, _, gone0) = self.window.front()?;
        let ms = now.saturating_duration_since(t0).as_millis() as u64;
        if ms < WINDOW.as_millis() as u64 {
            return None;
        }
        let kbits = gone.checked_sub(gone0)?.saturating_mul(8);
        Some((kbits / ms).min(u64::from(u32::MAX)) as u32)
    }

    pub(super) fn sample(&mut self, kbps: u32, congested: bool, floor: u32) {
        if !congested {
            self.carried = self.carried.max(kbps);
            self.carried_since_full = self.carried_since_full.max(kbps);
        } else if kbps > floor {
            self.carried_since_full = 0;
            if self.full.len() == Self::KEEP {
                self.full.pop_front();
            }
            self.full.push_back(kbps);
        }
    }

    /// The (lower) median of the full samples (one congestion's first reads high,
    /// a stall low), or more if it carried more while clear since the last
    /// of them (a queue that read long at a low target is not a full link).
    /// Never full: the most it carried (it has at least that).
    pub(super) fn kbps(&self) -> Option<u32> {
        if self.full.is_empty() {
            return (self.carried > 0).then_some(self.carried);
        }
        let mut v: Vec<u32> = self.full.iter().copied().collect();
        v.sort_unstable();
        Some(v[(v.len() - 1) / 2].max(self.carried_since_full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sent: u64, queued: u64) -> LinkSample {
        LinkSample {
            sent_bytes_total: sent,
            queued_bytes: queued,
            ..LinkSample::default()
        }
    }

    #[test]
    fn bytes_still_in_the_socket_are_not_delivered() {
        let mut l = LinkSize::default();
        let t0 = Instant::now();
        // 200 kB/s written, of which the socket keeps 50 kB more each second.
        let mut rates = Vec::new();
        for i in 0..=8u64 {
            let t = t0 + Duration::from_millis(250 * i);
            rates.push(l.delivered(t, &at(50_000 * i, 12_500 * i)));
        }
        assert_eq!(rates[3], None, "less than a second seen");
        assert_eq!(rates[4], Some(1200));
        assert_eq!(rates[8], Some(1200));
        // A new connection starts over.
        let t = t0 + Duration::from_secs(3);
        assert_eq!(l.delivered(t, &at(1000, 0)), None);
    }

    #[test]
    fn the_size_is_the_median_while_full_else_the_most_carried() {
        let mut l = LinkSize::default();
        assert_eq!(l.kbps(), None);
        l.sample(700, false, 400);
        l.sample(900, false, 400);
        assert_eq!(l.kbps(), Some(900));
        for k in [1700, 1200, 1150, 300, 1250] {
            l.sample(k, true, 400);
        }
        assert_eq!(l.kbps(), Some(1200), "300 is a stall: not counted");
        l.sample(1100, false, 400);
        assert_eq!(l.kbps(), Some(1200), "carried less than full: still full");
        l.sample(2000, false, 400);
        assert_eq!(l.kbps(), Some(2000), "carried more since: it has that");
        l.sample(1250, true, 400);
        assert_eq!(l.kbps(), Some(1250), "full again: the median");
    }
}
