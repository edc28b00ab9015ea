//! The core's side of the link memory: what it starts the encoder at (from
//! the links remembered, or low), and what it asks the shell to remember at
//! a show's end. Simulated time, the whole core (see `harness`).

use std::time::Duration;

use super::harness::{config, ms, Seen, Sim};
use super::*;
use crate::media::abr::memory::LinkRates;
use crate::media::abr::LinkSample;

fn rates(pairs: &[(&str, u32)]) -> LinkRates {
    pairs.iter().map(|(n, k)| (n.to_string(), *k)).collect()
}

fn bitrates(sim: &Sim) -> Vec<u32> {
    sim.media_cmds()
        .into_iter()
        .filter_map(|c| match c {
            MediaCmd::SetBitrate(k) => Some(*k),
            _ => None,
        })
        .collect()
}

fn saves(sim: &Sim) -> Vec<&String> {
    sim.seen
        .iter()
        .filter_map(|(_, s)| match s {
            Seen::Work(w) if w.starts_with("SaveLinks") => Some(w),
            _ => None,
        })
        .collect()
}

/// A destination that sent `kbps` for 4 s while its queue stood full (past
/// the grace after its connect).
fn congested(sim: &mut Sim, dest: &str, kbps: u64) {
    let mut sent = 0;
    for _ in 0..17 {
        sim.now += ms(250);
        sent += kbps * 1000 / 8 / 4;
        let sample = LinkSample {
            queued_ms: 900,
            sent_bytes_total: sent,
            ..LinkSample::default()
        };
        sim.core.media.abr.observe(sim.now, dest, sample);
    }
}

#[test]
fn a_remembered_link_sets_the_encoder_before_the_show_and_at_its_start() {
    // 2500 configured (the default), 1200 remembered: 90% of it beside
    // the 128 kbit/s of sound.
    let mut sim = Sim::new(config(&["yt"]));
    sim.input(Input::LinkMemory(rates(&[("yt", 1200)])));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(bitrates(&sim).last(), Some(&965), "{:?}", bitrates(&sim));
    sim.go_live_press();
    sim.run_for(Duration::from_secs(2));
    assert!(sim.core.state().in_show());
    assert_eq!(sim.core.media.abr.target_kbps(), 965);
    assert_eq!(sim.last_status().video.bitrate_kbps, 965);
}

#[test]
fn with_nothing_remembered_the_encoder_starts_at_a_quarter() {
    let mut sim = Sim::new(config(&["yt", "fb"]));
    // One of two remembered: the other may be the slower.
    sim.input(Input::LinkMemory(rates(&[("yt", 1200)])));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(bitrates(&sim).last(), Some(&625), "{:?}", bitrates(&sim));
}

#[test]
fn the_slowest_remembered_link_sets_the_start() {
    let mut sim = Sim::new(config(&["yt", "fb"]));
    sim.input(Input::LinkMemory(rates(&[("yt", 3000), ("fb", 1000)])));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(bitrates(&sim).last(), Some(&785));
}

#[test]
fn a_show_end_remembers_what_each_link_delivered_and_the_next_show_starts_there() {
    let mut sim = Sim::new(config(&["yt"]));
    sim.input(Input::LinkMemory(LinkRates::new()));
    sim.run_for(Duration::from_secs(2));
    sim.go_live_press();
    sim.run_for(Duration::from_secs(2));
    congested(&mut sim, "yt", 800);
    assert!(saves(&sim).is_empty(), "nothing written during the show");
    sim.end_press();
    sim.run_for(Duration::from_secs(3));
    let saved = saves(&sim);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert!(saved[0].contains("/state/abr/links.json"), "{}", saved[0]);
    let kbps = sim
        .core
        .media
        .links
        .get("yt")
        .copied()
        .expect("yt remembered");
    assert!((750..=850).contains(&kbps), "{kbps}");
    assert!(
        saved[0].contains(&format!("\"yt\": {kbps}")),
        "{}",
        saved[0]
    );
    // The next show starts at 90% of it beside the sound.
    sim.go_live_press();
    sim.run_for(Duration::from_secs(1));
    let want = (f64::from(kbps - 128) * 0.9).round() as u32;
    assert_eq!(
        sim.core.media.abr.target_kbps(),
        want,
        "{kbps} {:?}",
        bitrates(&sim)
    );
    assert_eq!(bitrates(&sim).last(), Some(&want));
}

#[test]
fn a_show_that_learned_nothing_writes_nothing() {
    let mut sim = Sim::new(config(&["yt"]));
    sim.input(Input::LinkMemory(rates(&[("yt", 1200)])));
    sim.go_live_press();
    sim.run_for(Duration::from_secs(2));
    sim.end_press();
    sim.run_for(Duration::from_secs(3));
    assert!(saves(&sim).is_empty());
}
