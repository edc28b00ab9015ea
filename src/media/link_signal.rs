//! What one destination's link says about congestion, sample by sample: the
//! reading half of adaptive bitrate (`abr` decides what to do about it).
//!
//! Pure, with time passed in. A [`LinkSample`] is what the destination's
//! pipeline shows on one health tick; [`LinkState::read`] turns it, with the
//! previous state of the same destination, into `congested` / `clear` and a
//! measured send rate.
//!
//! Signals, all folded into one "queued time" or into a direct verdict:
//! - **The queue before the sink** (time and bytes) and **the kernel's TCP
//!   send queue** (RTMP): bytes are turned into time at the current target.
//! - **SRT's own statistics** (SRT has no TCP queue, and srtsink never blocks
//!   on a thin link: libsrt paces to the link and, once a packet is older than
//!   the latency, drops it in the sender. On a 1200 kbit/s link fed 4000,
//!   our queue stayed at 0 ms while SRT threw away 80% of the bytes.) So:
//!   - packets the sender **dropped** since the last sample: congested, at
//!     once: those bytes are gone for viewers;
//!   - packets the receiver reported **lost** above `srt_loss_pct` of those
//!     sent: congested (below it, a lossy radio that retransmission covers);
//!   - either of them at a falling rate is the last cut working (SRT's buffer
//!     still holds a second of packets sent at the old rate): not clear, but
//!     no reason to cut again, as a draining queue is not;
//!   - **round-trip time above the connection's lowest**, less a jitter
//!     allowance: the queue inside the network, counted as queued time;
//!   - and that queue above half of SRT's latency, not draining: congested.
//!     A lost packet is then resent too late to play, and the server drops
//!     it: a standing 250 ms queue at a 125 ms latency held the target at
//!     the link's edge and cut half-second holes in the picture.

use std::time::{Duration, Instant};

/// What one destination has waiting before the network, and what it has sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkSample {
    /// Media time queued before the network sink (the leaky queue's
    /// `current-level-time`).
    pub queued_ms: u64,
    /// Bytes waiting to leave: the queue's bytes plus the TCP send queue
    /// (SIOCOUTQ). Turned into time at the current target, so a kernel buffer
    /// that hides the backlog from the queue still counts.
    pub queued_bytes: u64,
    /// The sink's byte counter (`out-bytes-total` / `bytes-sent-total`); a
    /// smaller value than before means a new connection.
    pub sent_bytes_total: u64,
    /// SRT's counters, for an SRT destination once connected.
    pub srt: Option<SrtCounters>,
}

/// SRT's view of its connection (srtsink's `stats`), counted since it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SrtCounters {
    pub packets_sent: u64,
    /// Reported lost by the receiver (each then retransmitted or dropped).
    pub packets_lost: u64,
    /// Given up by the sender: too late to play, never delivered.
    pub packets_dropped: u64,
    /// Smoothed round-trip time.
    pub rtt_ms: u32,
    /// The latency both ends agreed on (0 when not reported): a packet lost
    /// once is recovered only if it can be sent again within it.
    pub latency_ms: u32,
}

/// The marks a sample is judged by.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Queue above this is congestion (unless draining).
    pub high_water_ms: u64,
    /// Queue below this is clear; growth below it is noise.
    pub low_water_ms: u64,
    /// Consecutive growing samples that count as congestion.
    pub growth_samples: u32,
    /// ...and the rise over them that is growth, not a plateau's noise (a
    /// full bottleneck queue wobbles around its limit for seconds).
    pub growth_min_rise_ms: u64,
    /// SRT loss, in percent of packets sent over a sample, that is congestion.
    pub srt_loss_pct: u32,
    /// Round-trip time above the connection's lowest that is jitter, not queue.
    pub srt_rtt_allowance_ms: u32,
}

impl Default for Thresholds {
    /// Tuned for a 250 ms tick.
    fn default() -> Thresholds {
        Thresholds {
            high_water_ms: 500,
            low_water_ms: 100,
            growth_samples: 3,
            growth_min_rise_ms: 60,
            srt_loss_pct: 5,
            srt_rtt_allowance_ms: 50,
        }
    }
}

/// Fewer packets than this in a sample say nothing about a loss rate.
const MIN_PACKETS_FOR_LOSS: u64 = 50;

/// Why a sample counted as congested (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    Queue,
    Growth,
    SrtDropped,
    SrtLoss,
    SrtLate,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Queue => "queue above the high-water mark",
            Cause::Growth => "queue growing",
            Cause::SrtDropped => "SRT dropped late packets",
            Cause::SrtLoss => "SRT loss",
            Cause::SrtLate => "SRT round trip above half its latency",
        }
    }
}

/// One destination as of its last sample.
#[derive(Debug, Clone)]
pub struct LinkState {
    pub at: Instant,
    /// The effective queue of the last sample, in ms (the largest signal).
    pub queued_ms: u64,
    pub sent_bytes_total: u64,
    /// Consecutive samples the queue grew while above the low-water mark.
    pub growth: u32,
    /// The queue when the current run of growth began.
    growth_from_ms: u64,
    /// Why the last sample was congested; `None` when it was not.
    pub cause: Option<Cause>,
    /// Below the low-water mark, and nothing lost or dropped.
    pub clear: bool,
    /// Send rate over the last samples of this connection.
    pub measured_kbps: Option<u32>,
    srt: Option<SrtCounters>,
    /// Lowest SRT round trip seen on this connection: the empty network.
    min_rtt_ms: Option<u32>,
    /// SRT packets dropped and lost per second over the last sample.
    srt_rates: (u64, u64),
}

impl LinkState {
    pub fn congested(&self) -> bool {
        self.cause.is_some()
    }

    /// SRT's counters as of the last sample.
    pub fn srt(&self) -> Option<SrtCounters> {
        self.srt
    }

    /// The state after `sample` at `now`, from the previous state of the same
    /// destination (`None` for the first sample), with the encoder at `target_kbps`.
    pub fn read(
        prev: Option<&LinkState>,
        now: Instant,
        sample: &LinkSample,
        target_kbps: u32,
        t: &Thresholds,
    ) -> LinkState {
        let same = prev.filter(|p| sample.sent_bytes_total >= p.sent_bytes_total);
        // Bytes at the current target, in ms: `bytes * 8 / kbps`.
        let bytes_ms = sample.queued_bytes.saturating_mul(8) / u64::from(target_kbps.max(1));
        let min_rtt_ms = match (sample.srt, same.and_then(|p| p.min_rtt_ms)) {
            (Some(s), Some(m)) => Some(m.min(s.rtt_ms)),
            (Some(s), None) => Some(s.rtt_ms),
            (None, _) => None,
        };
        let rtt_ms = match (sample.srt, min_rtt_ms) {
            (Some(s), Some(m)) => u64::from(
                s.rtt_ms
                    .saturating_sub(m)
                    .saturating_sub(t.srt_rtt_allowance_ms),
            ),
            _ => 0,
        };
        let queued_ms = sample.queued_ms.max(bytes_ms).max(rtt_ms);
        // The network's queue against SRT's latency (no jitter allowance:
        // the latency budget is what it is).
        let srt_late = match (sample.srt, min_rtt_ms) {
            (Some(s), Some(m)) => {
                s.latency_ms > 0
                    && u64::from(s.rtt_ms.saturating_sub(m)) * 2 > u64::from(s.latency_ms)
            }
            _ => false,
        };

        let (mut growth, mut draining, mut measured, mut srt_delta) = (0, false, None, None);
        let mut growth_from_ms = queued_ms;
        let mut dt_ms = 0;
        if let Some(p) = same {
            if queued_ms > p.queued_ms && queued_ms > t.low_water_ms {
                growth = p.growth + 1;
                growth_from_ms = if p.growth == 0 {
                    p.queued_ms
                } else {
                    p.growth_from_ms
                };
            }
            draining = queued_ms < p.queued_ms;
            dt_ms = now.saturating_duration_since(p.at).as_millis() as u64;
            let rate = (dt_ms > 0).then(|| {
                let bits = (sample.sent_bytes_total - p.sent_bytes_total).saturating_mul(8);
                (bits / dt_ms).min(u64::from(u32::MAX)) as u32
            });
            // Smooth over about two samples: one tick's burst is not a rate.
            measured = match (rate, p.measured_kbps) {
                (Some(r), Some(m)) => Some(((u64::from(r) + u64::from(m)) / 2) as u32),
                (r, m) => r.or(m),
            };
            srt_delta = match (sample.srt, p.srt) {
                (Some(now), Some(before)) => Some(SrtCounters {
                    packets_sent: now.packets_sent.saturating_sub(before.packets_sent),
                    packets_lost: now.packets_lost.saturating_sub(before.packets_lost),
                    packets_dropped: now.packets_dropped.saturating_sub(before.packets_dropped),
                    rtt_ms: now.rtt_ms,
                    latency_ms: now.latency_ms,
                }),
                _ => None,
            };
        }
        let dropped = srt_delta.is_some_and(|d| d.packets_dropped > 0);
        let lossy = srt_delta.is_some_and(|d| {
            d.packets_sent >= MIN_PACKETS_FOR_LOSS
                && d.packets_lost.saturating_mul(100)
                    >= d.packets_sent.saturating_mul(u64::from(t.srt_loss_pct))
        });
        let per_s = |n: u64| n.saturating_mul(1000) / dt_ms.max(1);
        let srt_rates = srt_delta.map_or((0, 0), |d| {
            (per_s(d.packets_dropped), per_s(d.packets_lost))
        });
        let (was_dropping, was_losing) = same.map_or((0, 0), |p| p.srt_rates);
        let cause = if dropped && srt_rates.0 >= was_dropping {
            Some(Cause::SrtDropped)
        } else if lossy && !dropped && srt_rates.1 >= was_losing {
            Some(Cause::SrtLoss)
        } else if queued_ms > t.high_water_ms && !draining {
            Some(Cause::Queue)
        } else if srt_late && !draining {
            Some(Cause::SrtLate)
        } else if growth >= t.growth_samples
            && queued_ms.saturating_sub(growth_from_ms) >= t.growth_min_rise_ms
        {
            Some(Cause::Growth)
        } else {
            None
        };
        LinkState {
            at: now,
            queued_ms,
            sent_bytes_total: sample.sent_bytes_total,
            growth,
            growth_from_ms,
            cause,
            clear: queued_ms < t.low_water_ms && !dropped && !lossy && !srt_late,
            measured_kbps: measured,
            srt: sample.srt,
            min_rtt_ms,
            srt_rates,
        }
    }

    /// Older than `stale_after` at `now`: its pipeline is stuck or gone.
    pub fn is_stale(&self, now: Instant, stale_after: Duration) -> bool {
        now.saturating_duration_since(self.at) > stale_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn marks() -> Thresholds {
        Thresholds::default()
    }

    /// Reads a run of SRT samples 250 ms apart, each (sent, lost, dropped, rtt)
    /// counted since the connection began; returns every state.
    fn srt_run(samples: &[(u64, u64, u64, u32)]) -> Vec<LinkState> {
        let t0 = Instant::now();
        let mut out: Vec<LinkState> = Vec::new();
        for (i, &(sent, lost, dropped, rtt)) in samples.iter().enumerate() {
            let sample = LinkSample {
                sent_bytes_total: sent * 1316,
                srt: Some(SrtCounters {
                    packets_sent: sent,
                    packets_lost: lost,
                    packets_dropped: dropped,
                    rtt_ms: rtt,
                    latency_ms: 0,
                }),
                ..LinkSample::default()
            };
            let at = t0 + Duration::from_millis(250 * i as u64);
            let next = LinkState::read(out.last(), at, &sample, 4000, &marks());
            out.push(next);
        }
        out
    }

    #[test]
    fn srt_dropping_late_packets_is_congestion_though_no_queue_shows() {
        // Counters as srtsink reported them on a 1200 kbit/s link fed 4000.
        let s = srt_run(&[(357, 0, 0, 158), (650, 0, 0, 154), (944, 0, 4, 157)]);
        assert_eq!(s[1].cause, None);
        assert!(s[1].clear);
        assert_eq!(s[2].cause, Some(Cause::SrtDropped));
        assert!(!s[2].clear);
        assert_eq!(
            s[2].queued_ms, 0,
            "the RTT never rose above its first value"
        );
    }

    #[test]
    fn srt_drops_at_a_falling_rate_are_the_last_cut_working() {
        // 20, then 10, then 10 packets dropped per 250 ms.
        let s = srt_run(&[
            (0, 0, 0, 150),
            (300, 0, 20, 150),
            (600, 0, 30, 150),
            (900, 0, 40, 150),
        ]);
        assert_eq!(s[1].cause, Some(Cause::SrtDropped));
        assert_eq!(s[2].cause, None, "falling: the last cut is working");
        assert!(!s[2].clear, "but nothing is clear while packets are lost");
        assert_eq!(s[3].cause, Some(Cause::SrtDropped), "steady again: cut");
    }

    #[test]
    fn srt_loss_counts_above_its_share_and_not_on_few_packets() {
        let s = srt_run(&[(1000, 0, 0, 20), (1100, 4, 0, 20), (1200, 10, 0, 20)]);
        assert_eq!(s[1].cause, None, "4% of 100");
        assert!(
            s[1].clear,
            "loss that retransmission covers is no reason to hold back"
        );
        assert_eq!(s[2].cause, Some(Cause::SrtLoss), "6% of 100");
        let few = srt_run(&[(10, 0, 0, 20), (40, 10, 0, 20)]);
        assert_eq!(few[1].cause, None, "30 packets are too few to judge");
    }

    #[test]
    fn srt_round_trip_above_its_lowest_is_queue() {
        // 20 ms empty; each sample +200 ms of queue in the network.
        let s = srt_run(&[
            (0, 0, 0, 20),
            (100, 0, 0, 270),
            (200, 0, 0, 470),
            (300, 0, 0, 670),
        ]);
        assert_eq!(
            s[1].queued_ms, 200,
            "250 over the lowest, less 50 of jitter"
        );
        assert_eq!(s[2].growth, 2);
        assert_eq!(s[3].cause, Some(Cause::Queue));
        // Jitter inside the allowance is clear.
        let j = srt_run(&[(0, 0, 0, 60), (100, 0, 0, 90), (200, 0, 0, 150)]);
        assert_eq!(j[1].queued_ms, 0);
        assert!(
            j[2].clear,
            "90 over the lowest, less 50, is under the low mark"
        );
    }

    #[test]
    fn a_standing_queue_over_half_the_srt_latency_is_congestion() {
        let t0 = Instant::now();
        let mut prev: Option<LinkState> = None;
        let mut out = Vec::new();
        // 125 ms of latency; RTT 20 ms empty, then 80 (60 over: within
        // half), then a standing 400, then draining.
        for (i, rtt) in [20u32, 80, 400, 400, 380].into_iter().enumerate() {
            let sample = LinkSample {
                sent_bytes_total: 1000 * i as u64,
                srt: Some(SrtCounters {
                    packets_sent: 100 * i as u64,
                    rtt_ms: rtt,
                    latency_ms: 125,
                    ..SrtCounters::default()
                }),
                ..LinkSample::default()
            };
            let at = t0 + Duration::from_millis(250 * i as u64);
            let s = LinkState::read(prev.as_ref(), at, &sample, 4000, &marks());
            out.push((s.cause, s.clear));
            prev = Some(s);
        }
        assert_eq!(out[1], (None, true), "{out:?}");
        assert_eq!(out[2].0, Some(Cause::SrtLate), "{out:?}");
        assert_eq!(
            out[3].0,
            Some(Cause::SrtLate),
            "standing, not draining: {out:?}"
        );
        assert_eq!(
            out[4],
            (None, false),
            "draining: no cut, not clear: {out:?}"
        );
    }

    #[test]
    fn a_new_srt_connection_forgets_the_old_counters() {
        let s = srt_run(&[(1000, 0, 500, 300)]);
        let fresh = LinkSample {
            sent_bytes_total: 100,
            srt: Some(SrtCounters {
                packets_sent: 1,
                packets_lost: 0,
                packets_dropped: 0,
                rtt_ms: 400,
                latency_ms: 0,
            }),
            ..LinkSample::default()
        };
        let next = LinkState::read(
            s.last(),
            s[0].at + Duration::from_secs(1),
            &fresh,
            4000,
            &marks(),
        );
        assert_eq!(next.cause, None);
        assert_eq!(next.measured_kbps, None);
        assert_eq!(
            next.queued_ms, 0,
            "the new connection's lowest RTT is its own"
        );
    }

    #[test]
    fn a_plateau_that_wobbles_upwards_is_not_growth() {
        let t0 = Instant::now();
        let mut prev: Option<LinkState> = None;
        // A full 400 ms queue creeping 5 ms a tick, then really growing.
        let mut causes = Vec::new();
        for (i, q) in [400, 405, 410, 415, 420, 425, 450, 480]
            .into_iter()
            .enumerate()
        {
            let sample = LinkSample {
                queued_ms: q,
                ..LinkSample::default()
            };
            let at = t0 + Duration::from_millis(250 * i as u64);
            let s = LinkState::read(prev.as_ref(), at, &sample, 4000, &marks());
            causes.push(s.cause);
            prev = Some(s);
        }
        assert!(causes[..6].iter().all(Option::is_none), "{causes:?}");
        assert_eq!(causes[7], Some(Cause::Growth), "{causes:?}");
    }

    #[test]
    fn bytes_in_the_kernel_count_as_time_at_the_target() {
        let sample = LinkSample {
            queued_bytes: 400_000,
            ..LinkSample::default()
        };
        let s = LinkState::read(None, Instant::now(), &sample, 4000, &marks());
        assert_eq!(s.queued_ms, 800);
        assert_eq!(s.cause, Some(Cause::Queue));
    }

    fn counters() -> impl Strategy<Value = Vec<(u64, u64, u64, u32, u64)>> {
        // (sent, lost, dropped, rtt, bytes), each cumulative or not: anything.
        prop::collection::vec(
            (
                0u64..1_000_000,
                0u64..1_000_000,
                0u64..1_000_000,
                any::<u32>(),
                any::<u64>(),
            ),
            1..60,
        )
    }

    proptest! {
        /// Counters from outside may jump, wrap or go backwards: no panic, and
        /// a sample is never both clear and congested.
        #[test]
        fn any_srt_counters_read_without_panic(seq in counters(), target in 0u32..100_000) {
            let mut prev: Option<LinkState> = None;
            let mut now = Instant::now();
            for (sent, lost, dropped, rtt, bytes) in seq {
                now += Duration::from_millis(250);
                let sample = LinkSample {
                    queued_ms: 0,
                    queued_bytes: bytes % 10_000_000,
                    sent_bytes_total: bytes,
                    srt: Some(SrtCounters { packets_sent: sent, packets_lost: lost, packets_dropped: dropped, rtt_ms: rtt, latency_ms: rtt / 3 }),
                };
                let s = LinkState::read(prev.as_ref(), now, &sample, target, &marks());
                prop_assert!(!(s.clear && s.congested()));
                prev = Some(s);
            }
        }
    }
}
