//! Adaptive bitrate for a thin uplink: from what each destination's link says
//! (read by `link_signal`: queues, TCP send queue, SRT's statistics), the encoder's target between `video.min_bitrate_kbps`
//! and `video.bitrate_kbps`, and how many frames to drop when even the floor
//! does not fit.
//!
//! Pure, with time passed in (no GStreamer, no clock): the driver calls
//! [`AbrController::observe`] for every destination that is up on each health
//! tick, [`AbrController::forget`] when one goes down or is stopped, then
//! [`AbrController::poll_change`]; a `Some(kbps)` is applied to the encoder
//! (see `encoder::BitrateControl`) and logged as `abr target_kbps=…`.
//! [`AbrController::frame_decimation`] says how many frames of each group to
//! keep one of (1 = all).
//!
//! Policy (AIMD, the shape TCP itself uses):
//! - **Down fast.** A destination is congested when its queue is above the
//!   high-water mark and not draining, or has grown over `growth_samples`
//!   consecutive samples while above the low-water mark, or SRT dropped late
//!   packets or lost more than `srt_loss_pct` (see `link_signal`). Congestion multiplies
//!   the target by `decrease_factor` (or brings it to `delivered_share` of
//!   what the link sent lately beside the sound (`audio_kbps`), if that is
//!   lower and above the floor), at most once per `decrease_interval`. A cut
//!   on a link that carries 10% more than the target is a backlog (a new
//!   connection's burst), not a thin link: it sets no ceiling.
//!   A queue that is above the mark but draining is left alone, and so is
//!   one shorter than when the last cut came, within `growth_settle` of it:
//!   the last cut is working, and cutting again for the same standing queue overshoots;
//!   for the same reason growth alone, or an SRT round trip still above half
//!   its latency, does not cut within `growth_settle` of the last cut (the
//!   network's queue takes that long to drain after it).
//! - **Start where the link was.** [`AbrController::start`] puts the target at
//!   `delivered_share` of what the slowest destination's link delivered last
//!   time beside the sound (see `memory`: the box does not move, so yesterday's link is the
//!   best guess for today), or, with nothing remembered, at a quarter of the
//!   maximum (`cold_start_div`). The configured rate itself is only a ceiling:
//!   4000 kbit/s into a 1200 kbit/s link lost frames for 3 s before the first
//!   cut.
//! - **Up like TCP.** When every destination has stayed below the low-water
//!   mark and sends at least `keep_up_ratio` of the target (a quiet scene
//!   that does not fill the target proves nothing about the link):
//!   - *slow start*: with no congestion known (none yet in this show and
//!     nothing remembered, or the last one forgotten after
//!     `congestion_memory`), or once the target is 10% past the rate of the
//!     last congestion (the link has grown since: 600 → 2000 kbit/s), the
//!     target is multiplied by `slow_start_factor` every `slow_start_interval`
//!     while every link delivers `slow_start_carry_pct` of the target (the
//!     queue shows an overshoot 2.5 s late; the delivery rate, bytes that
//!     left the socket over the last second, at once);
//!   - *recovery* below 90% of the last congestion's rate: a step of
//!     `increase_step_pct` of the maximum, or half the way to that 90% if
//!     more (BIC's binary search: back to where the link was full quickly,
//!     then carefully), every `recovery_interval`;
//!   - *cautious* within 10% of it: a step of a tenth of that rate every
//!     `increase_interval`, and none until `near_congestion_wait` (5 s)
//!     after that congestion; a step every `recovery_interval` once that
//!     congestion is `careful_for` (10 s) old (the link may have grown).
//!
//!   The rate of the last congestion (or the one remembered, less the
//!   sound) is forgotten when a backlog leaves 20% faster than it: the link
//!   has grown, and slow start finds its new size.
//!
//!   A standing queue on a link that carries 5% more than all that is sent
//!   (video and sound) is a backlog draining, not congestion: no cut, and
//!   at the floor no frames given up.
//!
//!   A destination that has just connected does not cut for a queue under
//!   three times the high-water mark for `connect_grace` (a new connection
//!   starts with a burst of the pictures since the last keyframe).
//! - **Drop frames last.** At the floor and still congested for
//!   `starve_after`, the decimation doubles (up to `max_decimation`); a clear
//!   link halves it again before the bitrate may rise. Decimation above 1
//!   therefore only ever happens at the minimum bitrate. Audio is not the
//!   controller's business: it is never decimated.
//! - **Then a smaller picture.** With the frames already at their fewest and
//!   still congested for `starve_after`, [`AbrController::scale_step`] goes up
//!   (each step halves width and height, up to `max_scale_step`; 0 where the
//!   encoder cannot change size mid-stream). A clear link restores the size
//!   first, then the frames, then the bitrate; within `congestion_memory` of
//!   giving them up, only after `cautious_factor` intervals clear. "Still
//!   congested" at the floor means above the high-water mark, draining or
//!   not: a full queue wobbling by a frame is not a link that fits.
//!
//! One encoder feeds every destination, so the target follows the SLOWEST
//! destination that is up: any congested destination lowers it, and it rises
//! only when all are clear. A faster destination gets the slow one's quality;
//! the alternative (one encoder per destination) costs a core per destination
//! on a Pi. Destinations that are down are ignored, and so is one whose last
//! sample is older than `stale_after` (its pipeline is stuck or gone).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use self::link_size::LinkSize;
use super::link_signal::LinkState;
pub use super::link_signal::Thresholds;
pub use super::link_signal::{Cause, LinkSample, SrtCounters};
pub use super::proc_net::tcp_send_queue;

/// The knobs; [`AbrSettings::new`] gives defaults tuned for a 250 ms tick.
#[derive(Debug, Clone, PartialEq)]
pub struct AbrSettings {
    pub max_kbps: u32,
    pub min_kbps: u32,
    /// The marks each destination's samples are judged by.
    pub signal: Thresholds,
    pub decrease_factor: f64,
    /// On a cut, the target goes no higher than this share of what the
    /// On a cut, and at a show's start, the target goes no higher than
    /// this share of what the link carries beside the sound (the rest is
    /// muxing and room for the queue to drain).
    pub delivered_share: f64,
    /// What rides beside the video on every link (the sound, always sent,
    /// silent without a microphone), kbit/s.
    pub audio_kbps: u32,
    pub decrease_interval: Duration,
    /// After a cut, a queue that is still growing (or an SRT round trip still
    /// long) is not cut again for this long: a smoothed RTT, a kernel buffer
    /// and SRT's send buffer all show a cut late, and cutting on their lag
    /// sawed 1072 kbit/s down to 525, and to 400.
    pub growth_settle: Duration,
    /// After a cut, a standing queue below its peak since the cut is that
    /// cut working, for this long: the backlog of an overshoot drains at
    /// what the link has left over (150 kbit/s of a 1200 link at 90%), and
    /// cutting again 1 s later took 929 to 650 and 455.
    pub drain_allowance: Duration,
    /// Step up, in percent of `max_kbps`.
    pub increase_step_pct: u32,
    /// Clear time needed before each step up.
    pub increase_interval: Duration,
    /// Frames or size given up within `congestion_memory` come back only
    /// after this many `increase_interval`s clear.
    pub cautious_factor: u32,
    /// Step-ups within 10% of the rate of the last congestion wait this long
    /// after it: the link was full there a moment ago, and on SRT an
    /// overshoot costs dropped packets, not just a queue.
    pub near_congestion_wait: Duration,
    /// A congestion this long past (seen in this show) no longer slows the
    /// careful steps: they come every `recovery_interval`, not every
    /// `increase_interval`. The link has had time to change since: a show
    /// that sat 12 s at what a 600 kbit/s link carried took 5 s to cross
    /// the zone when the link grew to 2000, and carried 47% of it 7-10 s
    /// after the step. On a link that stays the same, the next congestion
    /// comes sooner than this (the careful steps reach it).
    pub careful_for: Duration,
    /// How long the rate of the last congestion is remembered.
    pub congestion_memory: Duration,
    /// Measured send rate / target needed for a step up.
    pub keep_up_ratio: f64,
    /// Congested at the floor this long: drop more frames.
    pub starve_after: Duration,
    pub max_decimation: u32,
    /// How many times the picture may be halved past the fewest frames.
    pub max_scale_step: u32,
    /// Smallest change worth telling the encoder, in percent of the last one.
    pub min_change_pct: u32,
    /// Nothing remembered of the links: start at `max_kbps / cold_start_div`.
    pub cold_start_div: u32,
    /// Slow start: the target is multiplied by this ...
    pub slow_start_factor: f64,
    /// ... after this long clear, while every link delivers at least
    /// `slow_start_carry_pct` of the target (without that check, at 1 s it
    /// went 1335 → 2003 → 3005 over a 1200 kbit/s link before the queue
    /// showed).
    pub slow_start_interval: Duration,
    /// After a destination connects, a queue (standing or growing) under
    /// three times the high-water mark does not cut for this long: a new
    /// connection starts with a burst (measured at go-live: about 150 kB,
    /// the group of pictures since the last keyframe, into the socket at
    /// once), and cutting on it took a show started at 1000 kbit/s on a
    /// 1200 kbit/s link down to 452 and set a false ceiling there.
    pub connect_grace: Duration,
    /// Slow start only while every destination sends at least this share of
    /// the target, in percent.
    pub slow_start_carry_pct: u32,
    /// Below 90% of the last congestion's rate (the link carried more a
    /// moment ago), a step up after this long clear.
    pub recovery_interval: Duration,
    /// A destination not observed for this long is ignored.
    pub stale_after: Duration,
}

impl AbrSettings {
    /// Defaults; `min_kbps` above `max_kbps` is taken as `max_kbps` (no room
    /// to adapt rather than a panic on a bad config).
    pub fn new(max_kbps: u32, min_kbps: u32) -> AbrSettings {
        let max_kbps = max_kbps.max(1);
        AbrSettings {
            max_kbps,
            min_kbps: min_kbps.clamp(1, max_kbps),
            signal: Thresholds::default(),
            decrease_factor: 0.7,
            delivered_share: 0.9,
            audio_kbps: 0,
            decrease_interval: Duration::from_secs(1),
            growth_settle: Duration::from_secs(2),
            drain_allowance: Duration::from_secs(4),
            increase_step_pct: 5,
            increase_interval: Duration::from_millis(2500),
            cautious_factor: 3,
            near_congestion_wait: Duration::from_secs(5),
            careful_for: Duration::from_secs(10),
            congestion_memory: Duration::from_secs(60),
            keep_up_ratio: 0.6,
            starve_after: Duration::from_secs(3),
            max_decimation: 4,
            max_scale_step: 1,
            min_change_pct: 5,
            cold_start_div: 4,
            slow_start_factor: 1.5,
            slow_start_interval: Duration::from_secs(1),
            connect_grace: Duration::from_secs(3),
            recovery_interval: Duration::from_secs(1),
            slow_start_carry_pct: 95,
            stale_after: Duration::from_secs(3),
        }
    }

    /// From `[video]`: `bitrate_kbps` is the ceiling, `min_bitrate_kbps` the floor.
    pub fn from_video(v: &crate::config::VideoConfig) -> AbrSettings {
        AbrSettings::new(v.bitrate_kbps, v.min_bitrate_kbps)
    }

    /// The video target that fits a link carrying `link_kbps` in all.
    pub fn video_share(&self, link_kbps: u32) -> u32 {
        let video = link_kbps.saturating_sub(self.audio_kbps);
        (f64::from(video) * self.delivered_share).round() as u32
    }
}

#[derive(Debug, Clone)]
pub struct AbrController {
    s: AbrSettings,
    target_kbps: u32,
    /// What the encoder was last told (it starts at the maximum).
    applied_kbps: u32,
    decimation: u32,
    scale_step: u32,
    dests: HashMap<String, LinkState>,
    last_decrease: Option<Instant>,
    /// The target when congestion last cut it, and when.
    last_congested: Option<(u32, Instant)>,
    /// When frames or size were last given up.
    last_starved: Option<Instant>,
    /// Since when every fresh destination has been clear.
    clear_since: Option<Instant>,
    /// Since when the target has sat at the floor while congested.
    starving_since: Option<Instant>,
    last_decimation_change: Option<Instant>,
    /// The rate (kbit/s) each destination's link delivered when it was last
    /// full (`true`), or the most it carried while never full, kept past
    /// `forget`: what the show end remembers for the next show.
    link_kbps: HashMap<String, LinkSize>,
    /// The most bytes queued since the last cut (ms where no bytes are known).
    queue_peak_since_cut: u64,
    /// When each destination that is up connected (its first sample).
    connected_at: HashMap<String, Instant>,
    /// The video rate that filled the link last show (what it delivered
    /// less the sound): the rate of the last congestion until this show has
    /// one of its own.
    remembered: Option<u32>,
    /// A show's start: the next change is told however small (the
    /// encoder kept the last show's rate, 20 kbit/s off the new start).
    tell_next: bool,
}

impl AbrController {
    pub fn new(settings: AbrSettings) -> AbrController {
        let s = AbrSettings::new(settings.max_kbps, settings.min_kbps);
        let signal = Thresholds {
            growth_samples: settings.signal.growth_samples.max(1),
            ..settings.signal.clone()
        };
        let settings = AbrSettings {
            max_kbps: s.max_kbps,
            min_kbps: s.min_kbps,
            max_decimation: settings.max_decimation.max(1),
            signal,
            ..settings
        };
        AbrController {
            target_kbps: settings.max_kbps,
            applied_kbps: settings.max_kbps,
            s: settings,
            decimation: 1,
            scale_step: 0,
            dests: HashMap::new(),
            last_decrease: None,
            last_congested: None,
            last_starved: None,
            clear_since: None,
            starving_since: None,
            last_decimation_change: None,
            link_kbps: HashMap::new(),
            connected_at: HashMap::new(),
            queue_peak_since_cut: 0,
            remembered: None,
            tell_next: false,
        }
    }

    /// A new show's start: the target at `delivered_share` of `remembered`
    /// less the sound
    /// (what the slowest destination's link delivered last time, kbit/s,
    /// everything included), or at `max_kbps / cold_start_div` with nothing
    /// remembered, clamped to the bounds; slow start from there. What the
    /// encoder was told is kept, so [`Self::poll_change`] tells the new target.
    pub fn start(&mut self, remembered: Option<u32>) {
        let s = &self.s;
        let (min, max) = (s.min_kbps, s.max_kbps);
        let target = match remembered {
            Some(k) => s.video_share(k),
            None => max / s.cold_start_div.max(1),
        };
        let applied = self.applied_kbps;
        *self = AbrController::new(self.s.clone());
        self.applied_kbps = applied;
        self.tell_next = true;
        self.target_kbps = target.clamp(min, max);
        // A video rate that fills the link, as the rate of a congestion is.
        self.remembered = remembered
            .filter(|&k| k > 0)
            .map(|k| k.saturating_sub(self.s.audio_kbps).max(1));
    }

    /// The encoder was made again, at the configured rate (`max_kbps`): the
    /// next [`Self::poll_change`] tells it the target again.
    pub fn encoder_restarted(&mut self) {
        self.applied_kbps = self.s.max_kbps;
    }

    /// What each destination's link delivered when full (or at least carried)
    /// during this controller's life, kbit/s: what to remember.
    pub fn link_rates(&self) -> impl Iterator<Item = (&str, u32)> {
        self.link_kbps
            .iter()
            .filter_map(|(n, s)| Some((n.as_str(), s.kbps()?)))
    }

    pub fn settings(&self) -> &AbrSettings {
        &self.s
    }

    /// The bitrate the encoder should run at now.
    pub fn target_kbps(&self) -> u32 {
        self.target_kbps
    }

    /// Keep one frame in this many (1 = all frames).
    pub fn frame_decimation(&self) -> u32 {
        self.decimation
    }

    /// The bitrate to give the encoder: the target, halved with each halving
    /// of the picture. Not divided by the frame decimation: x264enc (and
    /// openh264enc) budget per frame at the caps' frame rate, so keeping 1
    /// frame in 4 already sends a quarter of the bits (measured: 800 kbit/s
    /// configured gave 820, 421 and 221 kbit/s keeping 1, 1/2 and 1/4).
    pub fn encoder_kbps(&self) -> u32 {
        (self.target_kbps >> self.scale_step.min(3)).max(1)
    }

    /// What the video actually sends: the encoder's budget times the share of
    /// frames kept. Queued bytes are turned into time at this rate.
    pub fn output_kbps(&self) -> u32 {
        (self.encoder_kbps() / self.decimation.max(1)).max(1)
    }

    /// 0 = the configured size; n = width and height halved n times.
    pub fn scale_step(&self) -> u32 {
        self.scale_step
    }

    /// The send rate of `dest` over its last samples; `None` until two
    /// samples of the same connection have been seen, or once forgotten.
    pub fn measured_kbps(&self, dest: &str) -> Option<u32> {
        self.dests.get(dest).and_then(|d| d.measured_kbps)
    }

    /// What `dest`'s link delivered over the last second (bytes that left
    /// the queues), or what was written where that is not known yet.
    pub fn delivered_kbps(&self, dest: &str) -> Option<u32> {
        self.link_kbps.get(dest).and_then(|l| l.last)
    }

    /// The rate the climb is careful near (the last congestion's, or the
    /// one remembered from the last show), if any.
    pub fn ceiling_kbps(&self, now: Instant) -> Option<u32> {
        self.ceiling(now)
    }

    /// A new target for the encoder when it moved enough to be worth a
    /// property change (≥ `min_change_pct`, or a bound reached); `None` otherwise.
    pub fn poll_change(&mut self) -> Option<u32> {
        let (t, a) = (self.target_kbps, self.applied_kbps);
        let tell = std::mem::take(&mut self.tell_next);
        if t == a {
            return None;
        }
        let step = u64::from(a) * u64::from(self.s.min_change_pct) / 100;
        let big = u64::from(t.abs_diff(a)) >= step.max(1);
        let bound = t == self.s.min_kbps || t == self.s.max_kbps;
        if big || bound || tell {
            self.applied_kbps = t;
            Some(t)
        } else {
            None
        }
    }

    /// The destination went down or was stopped: it no longer holds the target back.
    pub fn forget(&mut self, dest: &str) {
        self.dests.remove(dest);
        self.connected_at.remove(dest);
    }

    /// One sample of `dest` (up) at `now`; may move the target.
    pub fn observe(&mut self, now: Instant, dest: &str, sample: LinkSample) {
        let state = LinkState::read(
            self.dests.get(dest),
            now,
            &sample,
            self.output_kbps(),
            &self.s.signal,
        );
        let settling = self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < self.s.growth_settle);
        // A queue still rising just after a cut, above the mark or not, is
        // the encoder's output at the old rate still arriving: cutting
        // again for it 1 s later took 1533 → 946 → 662 on a 1200 link.
        let lagging = matches!(state.cause, Some(Cause::Growth | Cause::SrtLate))
            || (state.cause == Some(Cause::Queue) && state.growth > 0);
        let connected = *self.connected_at.entry(dest.to_string()).or_insert(now);
        let starting = now.saturating_duration_since(connected) < self.s.connect_grace
            && matches!(state.cause, Some(Cause::Queue | Cause::Growth))
            && state.queued_ms < 3 * self.s.signal.high_water_ms;
        // A standing queue smaller than when the last cut came is that cut
        // working: sample to sample a keyframe hides the drain, and cutting
        // again on it took 1575 to 1103, 772, 540 on a 1200 link.
        // In bytes, not in time at the target: after a cut the same bytes
        // read longer, and judged in time every cut on a standing queue was
        // followed by a second one 1.25 s later (1524 → 905 → 634 on a
        // 1200 kbit/s link, in each of six cycles measured).
        // Measured against the queue's peak since the cut (it keeps rising
        // a moment after one), for `drain_allowance`.
        let draining_since_cut = self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < self.s.drain_allowance);
        // (Where a sink reports no bytes, its media time.)
        let queue = if sample.queued_bytes > 0 {
            sample.queued_bytes
        } else {
            state.queued_ms
        };
        let peak = self.queue_peak_since_cut.max(queue);
        let shrinking = draining_since_cut && state.cause == Some(Cause::Queue) && queue < peak;
        // What reached the far end, where it can be told from what only
        // went into the socket; else what was written.
        let size = self.link_kbps.entry(dest.to_string()).or_default();
        let measured_delivery = size.delivered(now, &sample);
        let delivered = measured_delivery.or(state.measured_kbps);
        size.last = delivered;
        // A standing queue on a link that carries 5% more than all we send
        // (the video as now decimated, and the sound) is a backlog
        // draining: a connection's first burst, or the overshoot a cut has
        // already answered. Cutting for it only blurs the picture (a cut
        // 1 s after each cut took 931 → 652 → 456 on a 1200 kbit/s link),
        // and at the floor, giving up frames for it lost 170 of them on a
        // 1200 → 600 link that was draining at 575. The queue's bound caps
        // the wait. A queue that grew over `growth_samples` is another matter.
        let sends = u64::from(self.output_kbps()) + u64::from(self.s.audio_kbps);
        let draining = state.cause == Some(Cause::Queue)
            && state.growth < self.s.signal.growth_samples
            && delivered.is_some_and(|d| u64::from(d) * 100 >= sends * 105);
        if draining {
            self.starving_since = None;
        }
        let held_back = (settling && lagging) || starting || shrinking || draining;
        let cut = state.congested() && !held_back;
        self.queue_peak_since_cut = if cut { queue } else { peak };
        let size = self.link_kbps.entry(dest.to_string()).or_default();
        if let (Some(m), false) = (delivered, starting) {
            // Clear, a link carries what is written into it, no more: a
            // queue emptying in front of the socket made a 2000 kbit/s
            // link read 2438 over a second.
            let m = match (state.congested(), state.measured_kbps) {
                (false, Some(w)) => m.min(w),
                _ => m,
            };
            size.sample(m, state.congested(), self.s.min_kbps);
        }
        if state.queued_ms > self.s.signal.low_water_ms {
            // Only a delivery measured: what was written in a connection's
            // first second (its burst) says nothing of the link.
            self.forget_a_ceiling_the_link_outgrew(now, measured_delivery);
        }
        self.dests.insert(dest.to_string(), state);
        self.decide(now, cut.then_some(delivered));
    }

    /// A destination whose last sample was congested, and why (for the log).
    pub fn congestion(&self) -> Option<(&str, Cause)> {
        let mut found: Vec<(&str, Cause)> = self
            .dests
            .iter()
            .filter_map(|(n, l)| l.cause.map(|c| (n.as_str(), c)))
            .collect();
        found.sort();
        found.into_iter().next()
    }

    /// What the controller last read of `dest`'s link (why it is congested,
    /// SRT's counters), for status and the log.
    pub fn link(&self, dest: &str) -> Option<&LinkState> {
        self.dests.get(dest)
    }

    /// `cut`: the sample just observed is congested (with what that link
    /// sent lately, if known). Only a fresh sample cuts, so one destination's
    /// old bad news is not counted once per tick of the others; it still
    /// holds the target back until it goes stale.
    fn decide(&mut self, now: Instant, cut: Option<Option<u32>>) {
        let stale = self.s.stale_after;
        let fresh: Vec<&LinkState> = self
            .dests
            .values()
            .filter(|d| !d.is_stale(now, stale))
            .collect();
        if fresh.is_empty() {
            return;
        }
        let congested = fresh.iter().any(|d| d.congested());
        // Above the high-water mark but not congested (draining, or a full
        // queue wobbling by a frame) still counts as starving at the floor:
        // only a link below the mark ends it.
        let loaded = fresh
            .iter()
            .any(|d| d.congested() || d.queued_ms > self.s.signal.high_water_ms);
        let all_clear = fresh.iter().all(|d| d.clear);
        let keeps_up = fresh.iter().all(|d| {
            d.measured_kbps
                .is_some_and(|m| f64::from(m) >= self.s.keep_up_ratio * f64::from(self.target_kbps))
        });

        if let Some(delivered) = cut {
            self.clear_since = None;
            self.on_congestion(now, delivered);
            return;
        }
        if congested || loaded {
            self.clear_since = None;
            return;
        }
        self.starving_since = None;
        if !all_clear {
            // Between the marks and not growing: a keyframe standing in the
            // queue for a sample (at 1 s GOPs one sample in four). It holds
            // the climb but does not restart its clock: restarting it held
            // 1200 → 1800 on a 2000 kbit/s link for 7 s.
            return;
        }
        let since = *self.clear_since.get_or_insert(now);
        let clear_for = now.saturating_duration_since(since);
        let restoring = self.scale_step > 0 || self.decimation > 1;
        let soonest = self
            .s
            .recovery_interval
            .min(self.s.slow_start_interval)
            .min(self.s.increase_interval);
        if clear_for < soonest || (restoring && clear_for < self.s.increase_interval) {
            return;
        }
        let cautious = self.s.increase_interval * self.s.cautious_factor.max(1);
        let starved_lately = self
            .last_starved
            .is_some_and(|t| now.saturating_duration_since(t) < self.s.congestion_memory);
        if restoring && starved_lately && clear_for < cautious {
            // Frames and size given up a moment ago: the link was too thin
            // for them then; wait longer before asking it again.
            return;
        }
        if self.scale_step > 0 {
            // The size comes back first: it was the last thing given up.
            self.scale_step -= 1;
            self.last_decimation_change = Some(now);
            self.clear_since = Some(now);
        } else if self.decimation > 1 {
            // Frames come back before bitrate: a stutter is worse than blur.
            self.decimation /= 2;
            self.last_decimation_change = Some(now);
            self.clear_since = Some(now);
        } else if keeps_up && self.target_kbps < self.s.max_kbps {
            let Some(next) = self.next_up(now, clear_for) else {
                return;
            };
            self.target_kbps = next.clamp(self.s.min_kbps, self.s.max_kbps);
            self.clear_since = Some(now);
        }
    }

    fn on_congestion(&mut self, now: Instant, delivered: Option<u32>) {
        let interval_passed = self
            .last_decrease
            .is_none_or(|t| now.saturating_duration_since(t) >= self.s.decrease_interval);
        if self.target_kbps > self.s.min_kbps {
            self.starving_since = None;
            if interval_passed {
                let mut cut = (f64::from(self.target_kbps) * self.s.decrease_factor).round() as u32;
                // What the link carried is the better guess when it is far
                // below: 4000 into 1200 kbit/s took four ×0.7 steps (4 s of
                // dropped frames) and now takes one. Not when it is below
                // the floor: a stalled or cut link says nothing of its size.
                // Clearly below the target (by 10%), it is the cut itself:
                // ×0.7 on top took a 1200 → 600 link to the floor.
                if let Some(d) = delivered {
                    let guess = self.s.video_share(d);
                    if guess > self.s.min_kbps {
                        let clearly_below = u64::from(guess) * 10 < u64::from(self.target_kbps) * 9;
                        cut = if clearly_below { guess } else { cut.min(guess) };
                    }
                }
                // A factor of 1 or more must still make progress downwards.
                let cut = cut.min(self.target_kbps.saturating_sub(1));
                // A link carrying 10% more than the target is not too thin
                // for it: the queue is a backlog (a new connection's first
                // burst). Cut to drain it, but the rate is no ceiling: one
                // taken there held 700 → 900 back 7.5 s on a 1200 link.
                let backlog = delivered
                    .is_some_and(|d| u64::from(d) * 10 >= u64::from(self.target_kbps) * 11);
                if !backlog {
                    self.last_congested = Some((self.target_kbps, now));
                }
                self.target_kbps = cut.clamp(self.s.min_kbps, self.s.max_kbps);
                self.last_decrease = Some(now);
            }
            return;
        }
        let since = *self.starving_since.get_or_insert(now);
        let changed_recently = self
            .last_decimation_change
            .is_some_and(|t| now.saturating_duration_since(t) < self.s.starve_after);
        if now.saturating_duration_since(since) < self.s.starve_after || changed_recently {
            return;
        }
        if self.decimation < self.s.max_decimation {
            self.decimation = (self.decimation * 2).min(self.s.max_decimation);
            self.last_decimation_change = Some(now);
            self.last_starved = Some(now);
        } else if self.scale_step < self.s.max_scale_step {
            self.scale_step += 1;
            self.last_decimation_change = Some(now);
            self.last_starved = Some(now);
        }
    }
}

mod climb;
mod link_size;
pub mod memory;

#[cfg(test)]
mod tests;
