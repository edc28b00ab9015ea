//! The scale as a whole: back-end table and the state layer
//! ([`Scale`]) on hand-made reading sequences, with time jumped, never slept.

use std::time::{Duration, Instant};

use super::*;
use crate::config::schema::ScaleConfig;
use proptest::prelude::*;

fn settings(needs_calibration: bool) -> Settings {
    Settings::from_config(&ScaleConfig::default(), needs_calibration)
}

fn grams(value: f64, at: Instant) -> RawReading {
    RawReading::Grams {
        value,
        at,
        flags: Flags::Stable,
    }
}

/// Feeds `value` every 100 ms from `from` for `ms` milliseconds; returns the
/// time after the last.
fn feed(s: &mut Scale, from: Instant, ms: u64, value: f64) -> Instant {
    let mut t = from;
    for _ in 0..ms / 100 {
        s.handle(t, grams(value, t));
        t += Duration::from_millis(100);
    }
    t
}

fn events(s: &mut Scale) -> Vec<ScaleEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn open_none_is_none_and_hx711_fails_off_a_pi_pointing_at_sim() {
    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    assert!(open(&ScaleConfig::default(), dir.path(), now)
        .unwrap()
        .is_none());
    let cfg = ScaleConfig {
        kind: crate::config::ScaleKind::Hx711,
        hx711_dout_pin: Some(5),
        hx711_sck_pin: Some(6),
        ..ScaleConfig::default()
    };
    if let Err(e) = open(&cfg, dir.path(), now) {
        assert!(format!("{e:#}").contains("scale.kind = \"sim\""), "{e:#}");
    }
}

#[test]
fn steady_weight_becomes_stable_after_the_settle_time() {
    let t0 = Instant::now();
    let mut s = Scale::new(settings(false), Calibration::default(), t0);
    let t = feed(&mut s, t0, 700, 1250.4);
    assert!(!s.state().stable);
    assert_eq!(s.state().weight_kg, Some(1.25));
    feed(&mut s, t, 200, 1250.4);
    assert!(s.state().stable);
    assert_eq!(s.state().weight.map(|w| w.grams()), Some(1250));
    assert!(events(&mut s).is_empty());
}

#[test]
fn a_spike_does_not_break_stability_or_reach_the_weight() {
    let t0 = Instant::now();
    let mut s = Scale::new(settings(false), Calibration::default(), t0);
    let t = feed(&mut s, t0, 1000, 500.0);
    assert!(s.state().stable);
    s.handle(t, grams(90_000.0, t));
    assert!(s.state().stable);
    assert_eq!(s.state().weight_kg, Some(0.5));
}

#[test]
fn device_unstable_flag_is_honoured() {
    let t0 = Instant::now();
    let mut s = Scale::new(settings(false), Calibration::default(), t0);
    let t = feed(&mut s, t0, 1000, 500.0);
    s.handle(
        t,
        RawReading::Grams {
            value: 500.0,
            at: t,
            flags: Flags::Unstable,
        },
    );
    assert!(!s.state().stable);
}

#[test]
fn faults_clear_the_weight_and_raise_one_event_each() {
    let t0 = Instant::now();
    let mut s = Scale::new(settings(false), Calibration::default(), t0);
    let mut t = feed(&mut s, t0, 1000, 500.0);
    for _ in 0..5 {
        s.handle(
            t,
            RawReading::Grams {
                value: f64::NAN,
                at: t,
                flags: Flags::Overload,
            },
        );
        t += Duration::from_millis(100);
    }
    let st = s.state().clone();
    assert_eq!((st.weight, st.stable), (None, false));
    assert!(st.error.is_some_and(|e| e.contains("overloaded")));
    s.handle(t, RawReading::Disconnected);
    assert!(s
        .state()
        .error
        .as_deref()
        .is_some_and(|e| e.contains("disconnected")));
    let ev = events(&mut s);
    assert_eq!(ev.len(), 2, "{ev:?}");
    // Good readings again: recovered, weight back, but it must settle anew.
    s.handle(t, grams(500.0, t));
    assert_eq!(events(&mut s), vec![ScaleEvent::Recovered]);
    assert_eq!((s.state().weight_kg, s.state().stable), (Some(0.5), false));
    // Out of range is a fault, not a weight.
    feed(&mut s, t, 600, 5.0e9);
    assert!(s
        .state()
        .error
        .as_deref()
        .is_some_and(|e| e.contains("range")));
}

#[test]
fn silence_is_an_error_once() {
    let t0 = Instant::now();
    let mut s = Scale::new(settings(false), Calibration::default(), t0);
    let t = feed(&mut s, t0, 300, 500.0);
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, t - Duration::from_millis(100) + state::SILENCE);
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(s.state().error.is_none());
    s.handle_timeout(deadline);
    assert!(s
        .state()
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("no readings")));
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(events(&mut s).len(), 1);
}

#[test]
fn readings_queued_behind_a_stalled_loop_raise_no_flood_of_errors() {
    let t0 = Instant::now();
    let mut s = Scale::new(settings(false), Calibration::default(), t0);
    feed(&mut s, t0, 300, 500.0);
    // The loop was busy for 4 s; 40 readings stamped during it arrive now,
    // each followed by the loop's timeout check.
    let late = t0 + Duration::from_secs(5);
    for i in 0..40 {
        let at = t0 + Duration::from_millis(300 + 100 * i);
        s.handle(late, grams(500.0, at));
        s.handle_timeout(late);
    }
    let errors = events(&mut s)
        .into_iter()
        .filter(|e| matches!(e, ScaleEvent::Error(_)))
        .count();
    assert_eq!(errors, 0, "the scale spoke all along; the loop was late");
    assert!(s.state().error.is_none());
}

#[test]
fn hx711_tare_and_calibrate_with_a_known_weight() {
    let t0 = Instant::now();
    let mut s = Scale::new(settings(true), Calibration::default(), t0);
    // Empty pan: 8 000 counts. Uncalibrated: no weight, an error saying what to do.
    let t = feed(&mut s, t0, 1000, 8000.0);
    assert_eq!(s.state().weight, None);
    assert!(s
        .state()
        .error
        .as_deref()
        .is_some_and(|e| e.contains("calibrate")));
    let cal = s.tare().unwrap();
    assert_eq!(cal.offset, 8000.0);
    // 1 kg on: 8 000 + 420 000 counts.
    let t = feed(&mut s, t, 1200, 428_000.0);
    assert_eq!(s.calibrate(0.0), Err(ScaleError::BadKnownWeight));
    let cal = s.calibrate(1.0).unwrap();
    assert!(cal.calibrated && (cal.factor - 1000.0 / 420_000.0).abs() < 1e-12);
    // 2.5 kg on.
    feed(&mut s, t, 1200, 8000.0 + 1_050_000.0);
    assert_eq!(s.state().weight.map(|w| w.grams()), Some(2500));
    assert!(s.state().stable && s.state().error.is_none());
}

#[test]
fn tare_needs_a_stable_healthy_reading() {
    let t0 = Instant::now();
    let mut s = Scale::new(settings(false), Calibration::default(), t0);
    assert_eq!(s.tare(), Err(ScaleError::Unstable));
    let t = feed(&mut s, t0, 300, 100.0);
    assert_eq!(s.tare(), Err(ScaleError::Unstable));
    let t = feed(&mut s, t, 1000, 100.0);
    assert_eq!(s.tare().map(|c| c.offset), Ok(100.0));
    // After a tare the pan reads zero (once settled again).
    let t = feed(&mut s, t, 1000, 100.0);
    assert_eq!(s.state().weight_kg, Some(0.0));
    s.handle(t, RawReading::Error("garbage".into()));
    assert!(matches!(s.tare(), Err(ScaleError::Faulty(_))));
    assert!(matches!(s.calibrate(1.0), Err(ScaleError::Faulty(_))));
}

proptest! {
    /// Whatever the back end sends, a stable state has a weight and no error,
    /// and an error never comes with a weight.
    #[test]
    fn state_is_never_inconsistent(
        seq in proptest::collection::vec((0u8..5, -2.0e6f64..2.0e6, 1u64..400), 1..120)
    ) {
        let t0 = Instant::now();
        let mut s = Scale::new(settings(false), Calibration::default(), t0);
        let mut t = t0;
        for (kind, v, dt) in seq {
            t += Duration::from_millis(dt);
            let r = match kind {
                0 | 1 => grams(v, t),
                2 => RawReading::Grams { value: v, at: t, flags: Flags::Unstable },
                3 => RawReading::Grams { value: v, at: t, flags: Flags::Overload },
                _ => RawReading::Error("x".into()),
            };
            s.handle(t, r);
            s.handle_timeout(t);
            let st = s.state();
            prop_assert!(!st.stable || (st.weight.is_some() && st.error.is_none()));
            prop_assert!(st.error.is_none() || st.weight.is_none());
            prop_assert_eq!(st.weight.is_some(), st.weight_kg.is_some());
        }
    }
}

/// The sim back end through the whole chain, as the driver wires it: a
/// `weight` value settles, and a tag then prices it exactly.
#[tokio::test]
async fn sim_weight_settles_and_tags_exactly() {
    use crate::config::schema::ProductConfig;
    use crate::products::{TagOutcome, Tagger};

    let dir = tempfile::tempdir().unwrap();
    let cfg = ScaleConfig {
        kind: crate::config::ScaleKind::Sim,
        settle_ms: 200,
        ..ScaleConfig::default()
    };
    let (opened, mut scale) = open(&cfg, dir.path(), Instant::now()).unwrap().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    opened.source.start(tx).unwrap();
    opened.sim_feed.as_ref().unwrap().set(1.25);
    // Bounded by readings, not by wall time: 400 readings is 20 s of sim.
    for _ in 0..400 {
        let Some(r) = rx.recv().await else { break };
        scale.handle(Instant::now(), r);
        if scale.state().stable && scale.state().weight_kg == Some(1.25) {
            break;
        }
    }
    assert!(scale.state().stable, "{:?}", scale.state());
    let mussels = ProductConfig {
        id: "mussels".into(),
        name: "Mussels".into(),
        unit: crate::config::Unit::Kg,
        unit_price: "30.00".into(),
        currency: "CNY".into(),
        button_pin: None,
    };
    let mut tagger = Tagger::new(&[mussels], Duration::from_millis(1500));
    match tagger.tag("mussels", Some(scale.state()), Instant::now()) {
        TagOutcome::Tagged(r) => assert_eq!(
            (r.weight_kg.as_deref(), r.price.as_str()),
            (Some("1.250"), "37.50")
        ),
        other => panic!("{other:?}"),
    }
}
