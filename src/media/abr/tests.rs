//! Tests of the adaptive-bitrate policy: every rule with time passed in,
//! fluid models of the links, and properties over random samples.

use super::*;
use crate::media::link_signal::SrtCounters;
use proptest::prelude::*;

pub(super) const TICK: Duration = Duration::from_millis(250);

/// A controller without the grace after a connect: each test below looks
/// at one rule from the first sample (the grace has its own test).
pub(super) fn ctl(max: u32, min: u32) -> AbrController {
    AbrController::new(AbrSettings {
        connect_grace: Duration::ZERO,
        ..AbrSettings::new(max, min)
    })
}

/// The defaults, grace and all, with 128 kbit/s of sound beside the video.
pub(super) fn ctl_as_shipped(max: u32, min: u32) -> AbrController {
    AbrController::new(AbrSettings {
        audio_kbps: 128,
        ..AbrSettings::new(max, min)
    })
}

/// Drives one destination: `queued_ms` per tick, sending `send_kbps`.
pub(super) struct Feed {
    t0: Instant,
    now: Instant,
    sent: u64,
}

impl Feed {
    fn new() -> Feed {
        let t0 = Instant::now();
        Feed {
            t0,
            now: t0,
            sent: 0,
        }
    }
    fn tick(&mut self, c: &mut AbrController, dest: &str, queued_ms: u64, send_kbps: u32) {
        self.now += TICK;
        self.sent += u64::from(send_kbps) * 1000 / 8 / 4;
        c.observe(
            self.now,
            dest,
            LinkSample {
                queued_ms,
                sent_bytes_total: self.sent,
                ..LinkSample::default()
            },
        );
    }
    /// A tick where the destination sends all the encoder makes.
    fn full(&mut self, c: &mut AbrController, dest: &str, queued_ms: u64) {
        let t = c.target_kbps();
        self.tick(c, dest, queued_ms, t);
    }
    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

#[test]
fn starts_at_the_ceiling_and_says_nothing() {
    let mut c = ctl(4000, 400);
    assert_eq!(c.target_kbps(), 4000);
    assert_eq!(c.frame_decimation(), 1);
    assert_eq!(c.poll_change(), None);
    assert_eq!(c.measured_kbps("a"), None);
}

#[test]
fn a_standing_queue_cuts_at_most_once_a_second() {
    let mut c = ctl(4000, 400);
    let mut f = Feed::new();
    let mut seen = Vec::new();
    for _ in 0..9 {
        f.tick(&mut c, "a", 800, 1200);
        seen.push(c.target_kbps());
    }
    // First sample cuts at once (×0.7: no rate known yet); then every
    // fourth tick (1 s), to 90% of the 1200 kbit/s sent; then no more: the
    // link carries 10% more than that, the standing queue drains.
    assert_eq!(seen, [2800, 2800, 2800, 2800, 1080, 1080, 1080, 1080, 1080]);
    assert_eq!(c.poll_change(), Some(1080));
    assert_eq!(c.poll_change(), None);
    // A link that carries only what is sent: ×0.7 a second later.
    for _ in 0..4 {
        f.tick(&mut c, "a", 800, 1080);
    }
    assert_eq!(c.target_kbps(), 756);
}

#[test]
fn a_stalled_link_cuts_by_the_factor_not_to_its_rate() {
    let mut c = ctl(4000, 400);
    let mut f = Feed::new();
    let mut seen = Vec::new();
    for _ in 0..9 {
        f.tick(&mut c, "a", 800, 0);
        seen.push(c.target_kbps());
    }
    assert_eq!(seen, [2800, 2800, 2800, 2800, 1960, 1960, 1960, 1960, 1372]);
}

#[test]
fn a_draining_queue_above_the_mark_is_not_cut_again() {
    let mut c = ctl(4000, 400);
    let mut f = Feed::new();
    f.tick(&mut c, "a", 1500, 1200);
    assert_eq!(c.target_kbps(), 2800);
    for q in [1400, 1300, 1200, 1100, 1000, 900, 800] {
        f.tick(&mut c, "a", q, 1200);
    }
    assert_eq!(c.target_kbps(), 2800);
}

#[test]
fn growth_below_the_high_mark_cuts_after_three_samples() {
    let mut c = ctl(4000, 400);
    let mut f = Feed::new();
    for (q, want) in [(50, 4000), (150, 4000), (200, 4000), (260, 2800)] {
        f.tick(&mut c, "a", q, 4000);
        assert_eq!(c.target_kbps(), want, "queue {q}");
    }
}

#[test]
fn growth_that_lags_a_cut_does_not_cut_again_until_it_settles() {
    let mut c = ctl(4000, 400);
    let mut f = Feed::new();
    let mut q = 110;
    let mut trace = Vec::new();
    // A queue growing 20 ms a tick for 4 s, below the high mark: one cut,
    // then none for 2 s (the interval alone would allow one after 1 s).
    for _ in 0..16 {
        q += 20;
        f.tick(&mut c, "a", q, 4000);
        trace.push(c.target_kbps());
    }
    assert_eq!(trace[3], 2800, "three growing samples cut: {trace:?}");
    assert!(trace[4..11].iter().all(|&t| t == 2800), "{trace:?}");
    assert!(
        trace[11] < 2800,
        "still growing after the settle time: {trace:?}"
    );
}

#[test]
fn a_clear_link_climbs_back_fast_then_carefully_near_the_last_cut() {
    let mut c = ctl(4000, 400);
    let mut f = Feed::new();
    f.tick(&mut c, "a", 900, 2800);
    assert_eq!(c.target_kbps(), 2800);
    let mut ups = Vec::new();
    for _ in 0..40 {
        f.full(&mut c, "a", 20);
        ups.push(c.target_kbps());
    }
    // A step a second (4 ticks), half the way to 90% of the 4000 that was
    // cut (3600) or 5% of the maximum, up to 3600; past it, a tenth of
    // 4000 after 2.5 s clear and not before 5 s after the cut.
    assert_eq!(ups[3], 2800);
    assert_eq!(ups[4], 3200);
    assert_eq!(ups[8], 3400);
    assert_eq!(ups[12], 3600);
    assert_eq!(ups[21], 3600);
    assert_eq!(ups[22], 4000);
    assert!(ups.windows(2).all(|w| w[1] >= w[0]));
}

#[test]
fn a_quiet_scene_does_not_prove_the_link() {
    let mut c = ctl(4000, 400);
    let mut f = Feed::new();
    f.tick(&mut c, "a", 900, 2800);
    for _ in 0..40 {
        // The encoder makes far less than its target: no evidence of headroom.
        f.tick(&mut c, "a", 0, 500);
    }
    assert_eq!(c.target_kbps(), 2800);
}

#[test]
fn at_the_floor_frames_go_then_come_back_before_bitrate() {
    // The size step is its own test; here only frames and bitrate.
    let mut settings = AbrSettings::new(1000, 400);
    settings.max_scale_step = 0;
    let mut c = AbrController::new(settings);
    let mut f = Feed::new();
    while c.target_kbps() > 400 {
        f.tick(&mut c, "a", 2000, 40);
    }
    assert_eq!(c.frame_decimation(), 1);
    let at_floor = f.elapsed();
    while c.frame_decimation() == 1 {
        f.tick(&mut c, "a", 2000, 40);
        assert_eq!(c.target_kbps(), 400);
    }
    assert!(f.elapsed() - at_floor >= Duration::from_secs(3));
    for _ in 0..40 {
        f.tick(&mut c, "a", 2000, 40);
    }
    assert_eq!(c.frame_decimation(), 4, "capped at max_decimation");
    // Clear: 4 → 2 → 1, and only then the bitrate rises.
    let mut trace = Vec::new();
    for _ in 0..160 {
        f.tick(&mut c, "a", 0, 400);
        trace.push((c.frame_decimation(), c.target_kbps()));
    }
    let first_raise = trace.iter().position(|&(_, t)| t > 400).expect("rises");
    assert!(trace[..first_raise].contains(&(2, 400)));
    assert_eq!(trace[first_raise].0, 1);
}

#[test]
fn past_the_fewest_frames_the_picture_shrinks_and_comes_back_first() {
    let mut c = ctl(1000, 400);
    let mut f = Feed::new();
    while c.frame_decimation() < 4 {
        f.tick(&mut c, "a", 2000, 40);
    }
    assert_eq!(c.scale_step(), 0, "the size goes only after the frames");
    while c.scale_step() == 0 {
        f.tick(&mut c, "a", 2000, 40);
        assert_eq!((c.target_kbps(), c.frame_decimation()), (400, 4));
    }
    for _ in 0..40 {
        f.tick(&mut c, "a", 2000, 40);
    }
    assert_eq!(c.scale_step(), 1, "capped at max_scale_step");
    let mut trace = Vec::new();
    for _ in 0..160 {
        f.tick(&mut c, "a", 0, 400);
        trace.push((c.scale_step(), c.frame_decimation()));
    }
    let size_back = trace.iter().position(|&(s, _)| s == 0).expect("size back");
    assert!(
        trace[..size_back].iter().all(|&(_, d)| d == 4),
        "frames wait for the size"
    );
    assert_eq!(trace.last(), Some(&(0, 1)));
}

#[test]
fn the_encoder_budget_falls_with_the_size_and_the_output_with_the_frames() {
    let mut c = ctl(1000, 400);
    let mut f = Feed::new();
    assert_eq!((c.encoder_kbps(), c.output_kbps()), (1000, 1000));
    let mut seen = Vec::new();
    for _ in 0..400 {
        f.tick(&mut c, "a", 2000, 100);
        seen.push((
            c.frame_decimation(),
            c.scale_step(),
            c.encoder_kbps(),
            c.output_kbps(),
        ));
    }
    assert!(seen.contains(&(2, 0, 400, 200)), "{seen:?}");
    assert!(seen.contains(&(4, 0, 400, 100)));
    assert_eq!(seen.last(), Some(&(4, 1, 200, 50)));
}

/// At the floor a full leaky queue reads a frame lower every other tick
/// ("draining"): that must not restart the wait for fewer frames.
#[test]
fn a_full_queue_wobbling_at_the_floor_still_starves() {
    let mut c = ctl(1000, 400);
    let mut f = Feed::new();
    let mut i = 0u64;
    while c.frame_decimation() == 1 && f.elapsed() < Duration::from_secs(30) {
        i += 1;
        f.tick(&mut c, "a", 1960 + (i % 2) * 33, 300);
    }
    assert_eq!(c.target_kbps(), 400);
    assert_eq!(c.frame_decimation(), 2, "after {:?}", f.elapsed());
    assert!(f.elapsed() < Duration::from_secs(10), "{:?}", f.elapsed());
}

/// Frames given up a moment ago come back only after a longer clear spell.
#[test]
fn frames_given_up_lately_wait_longer_to_come_back() {
    let mut c = ctl(1000, 400);
    let mut f = Feed::new();
    while c.frame_decimation() == 1 {
        f.tick(&mut c, "a", 2000, 40);
    }
    let mut back_after = None;
    for i in 1..100u32 {
        f.tick(&mut c, "a", 0, 400);
        if c.frame_decimation() == 1 {
            back_after = Some(TICK * i);
            break;
        }
    }
    let back_after = back_after.expect("frames came back");
    let cautious = c.settings().increase_interval * c.settings().cautious_factor;
    assert!(back_after >= cautious, "{back_after:?}");
}

#[test]
fn an_encoder_that_cannot_resize_keeps_its_size() {
    let mut settings = AbrSettings::new(1000, 400);
    settings.max_scale_step = 0;
    let mut c = AbrController::new(settings);
    let mut f = Feed::new();
    for _ in 0..400 {
        f.tick(&mut c, "a", 2000, 40);
    }
    assert_eq!((c.frame_decimation(), c.scale_step()), (4, 0));
}

#[test]
fn the_slowest_destination_holds_the_target_until_it_is_forgotten() {
    let mut c = ctl(4000, 400);
    let (mut fast, mut slow) = (Feed::new(), Feed::new());
    fast.now = slow.now;
    for _ in 0..8 {
        fast.full(&mut c, "fast", 0);
        slow.tick(&mut c, "slow", 1500, 500);
    }
    let held = c.target_kbps();
    assert!(held < 2000, "{held}");
    c.forget("slow");
    for _ in 0..12 {
        fast.full(&mut c, "fast", 0);
    }
    assert!(c.target_kbps() > held);
    assert_eq!(c.measured_kbps("slow"), None);
}

#[test]
fn a_silent_destination_goes_stale_and_is_ignored() {
    let mut c = ctl(4000, 400);
    let mut f = Feed::new();
    // "stuck" reported a big queue once, then nothing.
    c.observe(
        f.now,
        "stuck",
        LinkSample {
            queued_ms: 1500,
            ..LinkSample::default()
        },
    );
    let after_cut = c.target_kbps();
    for _ in 0..30 {
        f.full(&mut c, "ok", 0);
    }
    assert!(c.target_kbps() > after_cut);
}

#[test]
fn bytes_in_the_kernel_count_as_queue() {
    let mut c = ctl(4000, 400);
    // 400 kB at 4000 kbit/s is 800 ms though the queue itself is empty.
    c.observe(
        Instant::now(),
        "a",
        LinkSample {
            queued_bytes: 400_000,
            ..LinkSample::default()
        },
    );
    assert_eq!(c.target_kbps(), 2800);
}

/// The same link over SRT, as srtsink reports it: no queue ever shows,
/// and what does not fit is dropped in the sender once it is too late.
#[test]
fn an_srt_link_that_drops_late_packets_is_found_within_ten_seconds() {
    let mut c = ctl(4000, 400);
    let mut now = Instant::now();
    let link = 1200.0 - 128.0;
    let (mut sent, mut dropped) = (0.0f64, 0.0f64);
    let mut below_at = None;
    for i in 0..240 {
        // Packets of 1316 bytes per 250 ms tick.
        let offered = f64::from(c.target_kbps()) * 250.0 / 8.0 / 1316.0;
        let fits = link * 250.0 / 8.0 / 1316.0;
        sent += offered.min(fits);
        dropped += (offered - fits).max(0.0);
        now += TICK;
        let srt = SrtCounters {
            packets_sent: sent as u64,
            packets_lost: 0,
            packets_dropped: dropped as u64,
            rtt_ms: 150,
            latency_ms: 0,
        };
        let sample = LinkSample {
            sent_bytes_total: sent as u64 * 1316,
            srt: Some(srt),
            ..LinkSample::default()
        };
        c.observe(now, "srt", sample);
        if below_at.is_none() && c.target_kbps() < 1200 {
            below_at = Some(i);
        }
    }
    let below_at = below_at.expect("target fell below the link");
    assert!(below_at < 40, "took {below_at} ticks");
    assert!(c.target_kbps() <= 1300, "settled at {}", c.target_kbps());
    assert!(c.target_kbps() >= 600, "overshot to {}", c.target_kbps());
    assert_eq!(c.frame_decimation(), 1);
}

#[test]
fn a_new_connection_restarts_the_rate() {
    let mut c = ctl(4000, 400);
    let mut f = Feed::new();
    for _ in 0..4 {
        f.tick(&mut c, "a", 0, 2000);
    }
    let m = c.measured_kbps("a").expect("measured");
    assert!((1900..=2100).contains(&m), "{m}");
    f.sent = 0;
    f.tick(&mut c, "a", 0, 2000);
    assert_eq!(c.measured_kbps("a"), None);
}

#[test]
fn small_moves_wait_and_bounds_are_always_told() {
    let mut c = ctl(1000, 400);
    c.applied_kbps = 1000;
    c.target_kbps = 980;
    assert_eq!(c.poll_change(), None);
    c.target_kbps = 940;
    assert_eq!(c.poll_change(), Some(940));
    c.target_kbps = 1000;
    assert_eq!(c.poll_change(), Some(1000), "4% but the ceiling");
}

#[test]
fn a_floor_above_the_ceiling_is_the_ceiling() {
    let c = ctl(500, 900);
    assert_eq!(c.settings().min_kbps, 500);
    let c = ctl(0, 0);
    assert_eq!((c.settings().max_kbps, c.settings().min_kbps), (1, 1));
}

/// The case (a) in a fluid model: 4000 configured, 1200 kbit/s
/// link of which audio takes 128; the target must fall below the link
/// within 10 s and the leaky 2 s queue must stop overflowing.
#[test]
fn a_1200_kbit_link_is_found_within_ten_seconds() {
    let mut c = ctl_as_shipped(4000, 400);
    let mut f = Feed::new();
    let link = 1200.0 - 128.0;
    let mut queue_bits = 0.0f64;
    let mut below_at = None;
    let mut late = Vec::new();
    for i in 0..240 {
        let target = f64::from(c.target_kbps());
        queue_bits += target * 250.0;
        let sent = queue_bits.min(link * 250.0);
        queue_bits = (queue_bits - sent).min(target * 2000.0);
        let queued_ms = (queue_bits / target) as u64;
        f.tick(&mut c, "a", queued_ms, (sent / 250.0) as u32);
        if below_at.is_none() && c.target_kbps() < 1200 {
            below_at = Some(i);
        }
        if i >= 120 {
            late.push(u64::from(c.target_kbps()));
        }
    }
    let below_at = below_at.expect("target fell below the link");
    assert!(below_at < 40, "took {below_at} ticks");
    // AIMD saws around the link: judge the last 30 s on average.
    let mean = late.iter().sum::<u64>() / late.len() as u64;
    assert!(mean <= 1200, "settled around {mean}");
    assert!(mean >= 700, "overshot to around {mean}");
    assert!(
        late.iter().all(|&t| t >= 600),
        "a cut far below the link: {late:?}"
    );
    assert_eq!(c.frame_decimation(), 1);
}

fn samples() -> impl Strategy<Value = Vec<(u64, u64, u64, u64)>> {
    // (ms since last, queued_ms, queued_bytes, bytes sent since last)
    prop::collection::vec(
        (0u64..3000, 0u64..5000, 0u64..2_000_000, 0u64..1_000_000),
        1..120,
    )
}

proptest! {
    #[test]
    fn target_stays_in_bounds_and_frames_drop_only_at_the_floor(
        max in 1u32..20_000, min in 0u32..20_000, seq in samples(), two in any::<bool>()
    ) {
        let mut c = ctl(max, min);
        let (lo, hi) = (c.settings().min_kbps, c.settings().max_kbps);
        let mut now = Instant::now();
        let mut sent = 0u64;
        for (i, (dt, q, b, s)) in seq.into_iter().enumerate() {
            now += Duration::from_millis(dt);
            sent += s;
            let dest = if two && i % 2 == 1 { "b" } else { "a" };
            c.observe(now, dest, LinkSample { queued_ms: q, queued_bytes: b, sent_bytes_total: sent, srt: None });
            if i % 7 == 3 { c.forget("b"); }
            prop_assert!((lo..=hi).contains(&c.target_kbps()));
            if let Some(t) = c.poll_change() { prop_assert!((lo..=hi).contains(&t)); }
            prop_assert!(c.frame_decimation() >= 1);
            prop_assert!(
                c.scale_step() == 0
                    || (c.frame_decimation() == c.settings().max_decimation
                        && c.target_kbps() == c.settings().min_kbps),
                "the picture shrinks only after the bitrate and the frames"
            );
            if c.frame_decimation() > 1 { prop_assert_eq!(c.target_kbps(), lo); }
        }
    }

    #[test]
    fn a_queue_at_or_above_low_water_never_raises_the_target(
        start in 100u64..3000, steps in prop::collection::vec(0u64..500, 1..80), rate in 0u32..50_000
    ) {
        let mut c = ctl(4000, 400);
        let mut f = Feed::new();
        let mut q = start;
        for s in steps {
            let before = c.target_kbps();
            q += s;
            f.tick(&mut c, "a", q, rate);
            prop_assert!(c.target_kbps() <= before);
        }
    }

    #[test]
    fn a_drained_queue_returns_to_the_ceiling(
        max in 500u32..10_000, congested in 1usize..100
    ) {
        let mut c = ctl(max, 200);
        let mut f = Feed::new();
        for _ in 0..congested { f.tick(&mut c, "a", 2000, 100); }
        // 5% steps every 2.5 s: at most 20 steps plus the decimation steps.
        for _ in 0..(4 * 2 * 60 + 100) {
            f.full(&mut c, "a", 0);
        }
        prop_assert_eq!(c.target_kbps(), c.settings().max_kbps);
        prop_assert_eq!(c.frame_decimation(), 1);
    }
}

#[path = "thin_tests.rs"]
mod thin;
