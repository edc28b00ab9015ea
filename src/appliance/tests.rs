//! The appliance core in simulated time: whole shows, faults and pushes,
//! each in microseconds, asserting what the core asked for and told.

use std::time::Duration;

use super::harness::{config, ms, Seen, Sim};
use super::*;
use crate::config::ProductConfig;
use crate::fleet::{Reported, Status};
use crate::gpio::buttons::ButtonId;
use crate::mqtt::commands::CommandKind;
use crate::scale::{Calibration, Flags, RawReading, Scale, Settings};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A box in standby with destinations `names`.
fn standby(names: &[&str]) -> Sim {
    let mut sim = Sim::new(config(names));
    sim.run_for(secs(1));
    assert_eq!(sim.core.state(), State::Standby);
    sim
}

#[test]
fn a_show_from_press_to_end_with_a_server_lost_and_back() {
    let mut sim = standby(&["yt"]);
    sim.go_live_press();
    sim.run_for(secs(1));
    assert_eq!(sim.core.state(), State::Live);
    assert_eq!(sim.events("live_started").len(), 1);

    // The server dies: reconnecting, probed every 150 ms, not hammered.
    sim.server_down("yt");
    assert_eq!(sim.core.state(), State::Reconnecting);
    sim.run_for(secs(10));
    assert_eq!(sim.core.state(), State::Reconnecting);
    let probes = sim
        .seen
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Probe(_)))
        .count();
    assert!((45..=70).contains(&probes), "{probes} probes in 10 s");

    // It comes back: the next probe answers and the box reconnects at once,
    // not at the end of its backoff.
    sim.server_up("yt");
    let back = sim.now;
    sim.run_for(secs(2));
    assert_eq!(sim.core.state(), State::Live);
    let connect = sim
        .first_after(back, |s| matches!(s, Seen::Media(MediaCmd::Connect(_))))
        .expect("a connect after the server came back");
    assert!(
        connect - back <= ms(super::media::PROBE_EVERY.as_millis() as u64 + 50),
        "reconnect {:?} after",
        connect - back
    );

    // A long press ends the show: destinations stopped, recorder stopped.
    sim.end_press();
    sim.run_for(secs(1));
    assert_eq!(sim.core.state(), State::Standby);
    assert!(sim.connected.is_empty());
    assert_eq!(sim.recorder, None);
    assert_eq!(sim.events("live_stopped").len(), 1);
    // One show, one folder.
    let dirs = sim.recorder_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(dirs[0].starts_with("/rec"));
}

#[test]
fn go_live_connects_when_the_press_settles_not_when_it_is_released() {
    let mut sim = standby(&["yt"]);
    let pressed = sim.now;
    // Held for 300 ms: the show must not wait for the release.
    sim.press(ButtonId::GoLive, ms(300));
    let connect = sim
        .first_after(pressed, |s| matches!(s, Seen::Media(MediaCmd::Connect(_))))
        .expect("a connect after the press");
    // The debounce (30 ms) and nothing else.
    assert!(connect - pressed <= ms(35), "{:?}", connect - pressed);
    sim.run_for(secs(1));
    assert_eq!(sim.core.state(), State::Live);
    // The release did not flash the ack nor start a second show.
    assert_eq!(sim.events("live_started").len(), 1);
}

#[test]
fn the_encoder_rests_in_standby_and_works_from_the_press_to_the_end() {
    let mut sim = standby(&["yt"]);
    assert!(!sim.encoding, "closed once in standby");
    // A long standby: frames at the door keep the watchdog fed.
    let fed = sim
        .seen
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Watchdog))
        .count();
    sim.run_for(secs(60));
    let fed_after = sim
        .seen
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Watchdog))
        .count();
    assert!(fed_after > fed + 30, "{fed} then {fed_after}");
    assert!(sim.core.media.fps > 20.0, "{}", sim.core.media.fps);
    sim.go_live_press();
    assert!(sim.encoding);
    sim.run_for(secs(2));
    assert_eq!(sim.core.state(), State::Live);
    sim.end_press();
    sim.run_for(secs(1));
    assert_eq!(sim.core.state(), State::Standby);
    assert!(!sim.encoding);
    assert!(sim.broken.is_empty(), "{:?}", sim.broken);
}

#[test]
fn a_refusing_server_is_left_to_the_backoff_not_probed() {
    let mut sim = standby(&["yt"]);
    sim.go_live_press();
    sim.run_for(secs(1));
    sim.connected.remove("yt");
    sim.input(Input::Media(MediaReport::DestinationDown {
        name: "yt".into(),
        reason: "publish refused: bad key".into(),
        unreachable: false,
    }));
    sim.run_for(secs(5));
    assert!(!sim.seen.iter().any(|(_, s)| matches!(s, Seen::Probe(_))));
}

#[test]
fn a_camera_stall_puts_the_slate_on_air_and_the_camera_is_retried() {
    let mut sim = standby(&["yt"]);
    sim.go_live_press();
    sim.run_for(secs(1));
    let before = sim.now;
    sim.camera_stalled = true;
    sim.run_for(secs(3));
    assert!(sim
        .first_after(before, |s| matches!(s, Seen::Media(MediaCmd::Slate(true))))
        .is_some());
    assert!(sim
        .first_after(before, |s| matches!(
            s,
            Seen::Media(MediaCmd::CameraLost(true))
        ))
        .is_some());
    // The show stays on air, with the slate, while the camera is retried.
    assert!(sim.core.state().in_show());
    sim.camera_stalled = false;
    let fixed = sim.now;
    sim.run_for(secs(30));
    assert!(sim
        .first_after(before, |s| matches!(
            s,
            Seen::Media(MediaCmd::StartCapture { restart: true })
        ))
        .is_some());
    let last_slate = sim
        .media_cmds()
        .into_iter()
        .rev()
        .find(|c| matches!(c, MediaCmd::Slate(_)))
        .cloned();
    assert_eq!(last_slate, Some(MediaCmd::Slate(false)));
    assert!(sim
        .first_after(fixed, |s| matches!(s, Seen::Media(MediaCmd::Slate(true))))
        .is_none());
    assert_eq!(sim.core.state(), State::Live);
    // The watchdog was fed throughout: a known camera fault is not a hang.
    let pings = sim
        .seen
        .iter()
        .filter(|(t, s)| *t >= before && matches!(s, Seen::Watchdog))
        .count();
    assert!(pings >= 25, "{pings} pings in 33 s");
}

#[test]
fn a_hung_pipeline_starves_the_watchdog() {
    let mut sim = standby(&[]);
    sim.run_for(secs(2));
    // Frames stop with no stall reported (a hung encoder, not a camera).
    sim.camera_stalled = true;
    let _ = sim.sample_silently();
    let hung = sim.now;
    sim.run_for(secs(20));
    let last_ping = sim
        .seen
        .iter()
        .rev()
        .find(|(_, s)| matches!(s, Seen::Watchdog))
        .map(|(t, _)| *t)
        .expect("pinged before");
    assert!(
        last_ping - hung < secs(7),
        "fed {:?} into the hang",
        last_ping - hung
    );
}

#[test]
fn a_recorder_failure_is_retried_in_the_same_show_folder() {
    let mut sim = standby(&["yt"]);
    sim.recorder_failures = 2;
    sim.go_live_press();
    sim.run_for(secs(20));
    let dirs: Vec<_> = sim.recorder_dirs().into_iter().cloned().collect();
    assert_eq!(dirs.len(), 3, "two failures and a start: {dirs:?}");
    assert!(dirs.iter().all(|d| *d == dirs[0]), "{dirs:?}");
    assert_eq!(sim.recorder.as_ref(), Some(&dirs[0]));
    // A recorder that dies mid-show comes back in the same folder too.
    sim.recorder = None;
    sim.input(Input::Media(MediaReport::RecorderFailed("gone".into())));
    sim.run_for(secs(6));
    assert_eq!(sim.recorder.as_ref(), Some(&dirs[0]));
    let first = dirs[0].clone();
    // The next show gets a folder of its own.
    sim.end_press();
    sim.run_for(secs(2));
    sim.go_live_press();
    sim.run_for(secs(2));
    let dirs = sim.recorder_dirs();
    let last = dirs.last().expect("second show recorded");
    assert_ne!(**last, first);
    // Every budget pass spares the live show's folder.
    assert!(sim.seen.iter().any(|(_, s)| matches!(s, Seen::Work(w) if w.contains("Budget") && w.contains(first.file_name().unwrap().to_str().unwrap()))));
}

fn mussels() -> ProductConfig {
    ProductConfig {
        id: "mussels".into(),
        name: "Mussels".into(),
        unit: "kg".parse().unwrap(),
        unit_price: "30.00".into(),
        currency: "CNY".into(),
        button_pin: None,
    }
}

#[test]
fn a_tag_while_the_scale_settles_is_priced_once_it_is_stable() {
    let mut c = config(&["yt"]);
    c.products = vec![mussels()];
    let scale = Scale::new(
        Settings {
            settle: ms(500),
            tolerance_g: 5.0,
            resolution_g: 1,
            needs_calibration: false,
        },
        Calibration::default(),
        std::time::Instant::now(),
    );
    let mut sim = Sim::with_scale(c, Some(scale));
    sim.run_for(secs(1));
    sim.go_live_press();
    sim.run_for(secs(1));
    // Produce goes on the pan: the reading moves, then settles at 1.25 kg.
    let grams = |sim: &mut Sim, g: f64| {
        let at = sim.now;
        sim.input(Input::Reading(RawReading::Grams {
            value: g,
            at,
            flags: Flags::Stable,
        }));
    };
    grams(&mut sim, 400.0);
    sim.run_for(ms(100));
    sim.command(CommandKind::TagProduct {
        product_id: "mussels".into(),
    });
    assert!(
        sim.replies().is_empty(),
        "answered before the scale settled"
    );
    for _ in 0..10 {
        grams(&mut sim, 1250.0);
        sim.run_for(ms(100));
    }
    let replies = sim.replies();
    assert_eq!(replies.len(), 1, "{replies:?}");
    let record = replies[0].as_ref().expect("tagged");
    assert_eq!(record["price"], "37.50", "{record}");
    assert_eq!(sim.events("product_tagged").len(), 1);
    sim.run_for(secs(6));
    let sales = sim.last_status().sales.clone();
    assert_eq!((sales.tags, sales.by_product["mussels"]), (1, 1));
    assert_eq!(sales.amount["CNY"], 37.5);
    let tagged = sim.events("product_tagged");
    assert!(matches!(
        &tagged[0].body,
        crate::mqtt::payloads::EventBody::ProductTagged { show_id: Some(id), .. } if id == "show-0001"
    ));
    assert!(sim.media_cmds().iter().any(
        |c| matches!(c, MediaCmd::LowerThird(Some(t)) if t.contains("Mussels") && t.contains("37.50"))
    ));
    // The sales log goes to the show's own folder.
    let dir = sim.recorder_dirs()[0].display().to_string();
    assert!(sim
        .seen
        .iter()
        .any(|(_, s)| matches!(s, Seen::Work(w) if w.contains("SalesLog") && w.contains(&dir))));
    // The lower third goes away by itself.
    sim.run_for(secs(30));
    assert!(sim
        .media_cmds()
        .iter()
        .any(|c| matches!(c, MediaCmd::LowerThird(None))));
    assert!(
        matches!(
            sim.media_cmds().last(),
            Some(MediaCmd::LowerThird(None)) | Some(MediaCmd::SetBitrate(_))
        ) || sim
            .media_cmds()
            .iter()
            .any(|c| matches!(c, MediaCmd::LowerThird(None)))
    );
}

#[test]
fn a_push_during_a_live_show_waits_then_rebuilds_on_trial() {
    let mut sim = standby(&["yt"]);
    sim.go_live_press();
    sim.run_for(secs(1));
    let mut pushed = config(&["yt", "fb"]);
    pushed.video.bitrate_kbps = 1500;
    sim.fleet_answers.push_back(FleetAnswer::Step {
        reported: Reported::new(Some(2), Status::Pending, "h"),
        action: crate::fleet::Action::None,
        config_version: 1,
    });
    sim.input(Input::Push {
        source: crate::fleet::Source::Device,
        payload: b"{}".to_vec(),
    });
    assert!(matches!(
        sim.seen.iter().rev().find(|(_, s)| matches!(s, Seen::Fleet(_))),
        Some((_, Seen::Fleet(op))) if op.contains("live: true")
    ));
    assert_eq!(
        sim.reports().last().map(|r| r.status),
        Some(Status::Pending)
    );
    // Nothing is rebuilt while the show runs.
    sim.run_for(secs(10));
    assert!(!sim
        .media_cmds()
        .iter()
        .skip(1)
        .any(|c| matches!(c, MediaCmd::Rebuild(_))));
    // The show ends: the stored push comes due and the media side is rebuilt.
    sim.fleet_answers.push_back(FleetAnswer::Step {
        reported: Reported::new(Some(2), Status::Applied, "h"),
        action: crate::fleet::Action::Restart(Box::new(pushed)),
        config_version: 2,
    });
    sim.end_press();
    sim.run_for(secs(1));
    let rebuild = sim
        .seen
        .iter()
        .rposition(|(_, s)| matches!(s, Seen::Media(MediaCmd::Rebuild(_))))
        .expect("rebuilt after the show");
    let applied = sim
        .seen
        .iter()
        .rposition(
            |(_, s)| matches!(s, Seen::Publish(Publish::Config(r)) if r.status == Status::Applied),
        )
        .expect("applied");
    assert!(applied > rebuild, "applied told before the rebuild");
    assert_eq!(sim.core.config().destinations.len(), 2);
    // On trial until standby, then confirmed as the last known good.
    sim.run_for(secs(2));
    assert_eq!(sim.core.state(), State::Standby);
    let confirms = sim
        .seen
        .iter()
        .skip(rebuild)
        .filter(|(_, s)| matches!(s, Seen::Fleet(op) if op == "ConfirmRunning"))
        .count();
    assert_eq!(confirms, 1);
    // The next press goes live on both destinations.
    sim.server_up("fb");
    sim.go_live_press();
    sim.run_for(secs(1));
    assert_eq!(sim.connected.len(), 2);
}

#[test]
fn a_rebuilt_config_that_never_reaches_standby_is_rolled_back() {
    let mut sim = standby(&["yt"]);
    let mut bad = config(&["yt"]);
    bad.video.source = "v4l2:/dev/video99".parse().unwrap();
    sim.fleet_answers.push_back(FleetAnswer::Step {
        reported: Reported::new(Some(3), Status::Applied, "h"),
        action: crate::fleet::Action::Restart(Box::new(bad)),
        config_version: 3,
    });
    sim.camera_works = false;
    sim.input(Input::Push {
        source: crate::fleet::Source::Device,
        payload: b"{}".to_vec(),
    });
    sim.fleet_answers.push_back(FleetAnswer::Step {
        reported: Reported::new(Some(2), Status::RolledBack, "g"),
        action: crate::fleet::Action::Restart(Box::new(config(&["yt"]))),
        config_version: 2,
    });
    sim.run_for(TRIAL - secs(1));
    assert!(!sim
        .seen
        .iter()
        .any(|(_, s)| matches!(s, Seen::Fleet(op) if op.starts_with("RollBack"))));
    sim.camera_works = true;
    sim.run_for(secs(2));
    assert!(sim
        .seen
        .iter()
        .any(|(_, s)| matches!(s, Seen::Fleet(op) if op.starts_with("RollBack"))));
    assert_eq!(
        sim.reports().last().map(|r| r.status),
        Some(Status::RolledBack)
    );
    sim.run_for(secs(2));
    assert_eq!(sim.core.state(), State::Standby);
    // The last good config is not on trial again: no second roll back.
    sim.run_for(TRIAL * 2);
    let rollbacks = sim
        .seen
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Fleet(op) if op.starts_with("RollBack")))
        .count();
    assert_eq!(rollbacks, 1);
}

#[test]
fn new_mqtt_settings_are_applied_only_once_their_link_connects() {
    for connects in [true, false] {
        let mut sim = standby(&["yt"]);
        let mut pushed = config(&["yt"]);
        pushed.mqtt.url = "mqtt://other:1883".into();
        sim.trial_connects = connects;
        sim.fleet_answers.push_back(FleetAnswer::Step {
            reported: Reported::new(Some(4), Status::Applied, "h"),
            action: crate::fleet::Action::ApplyLive(Box::new(pushed)),
            config_version: 4,
        });
        sim.fleet_answers.push_back(FleetAnswer::Step {
            reported: Reported::new(Some(3), Status::RolledBack, "g"),
            action: crate::fleet::Action::ApplyLive(Box::new(config(&["yt"]))),
            config_version: 3,
        });
        sim.input(Input::Push {
            source: crate::fleet::Source::Device,
            payload: b"{}".to_vec(),
        });
        assert!(sim.reports().is_empty(), "told before the link connected");
        assert_ne!(sim.core.config().mqtt.url, "mqtt://other:1883");
        sim.run_for(secs(31));
        let last = sim.reports().last().map(|r| r.status);
        if connects {
            assert_eq!(last, Some(Status::Applied));
            assert_eq!(sim.core.config().mqtt.url, "mqtt://other:1883");
            assert!(sim
                .seen
                .iter()
                .any(|(_, s)| matches!(s, Seen::Mqtt(op) if op.starts_with("Promote"))));
        } else {
            assert_eq!(last, Some(Status::RolledBack));
            assert_ne!(sim.core.config().mqtt.url, "mqtt://other:1883");
            assert!(sim
                .seen
                .iter()
                .any(|(_, s)| matches!(s, Seen::Mqtt(op) if op == "DropTrial")));
        }
    }
}

#[test]
fn go_live_and_end_show_commands_are_answered_from_what_happened() {
    let mut sim = standby(&["yt"]);
    sim.command(CommandKind::GoLive);
    assert_eq!(
        sim.replies().last().unwrap().as_ref().unwrap()["state"],
        "connecting"
    );
    sim.run_for(secs(1));
    sim.command(CommandKind::EndShow);
    let r = (*sim.replies().last().unwrap()).clone();
    assert!(r.is_ok(), "{r:?}");
    // A box whose camera never ran refuses to go live, and says why.
    let mut sim = Sim::new(config(&["yt"]));
    sim.camera_works = false;
    sim.run_for(secs(3));
    let mut sim2 = Sim::new(config(&["yt"]));
    sim2.camera_works = false;
    sim2.input(Input::Media(MediaReport::CaptureFailed("no camera".into())));
    sim2.command(CommandKind::GoLive);
    let r = (*sim2.replies().last().unwrap()).clone();
    assert_eq!(r, Err("the show is error".to_string()));
    let _ = sim;
}

#[test]
fn tare_is_answered_only_once_saved_and_a_box_without_scale_says_so() {
    let mut sim = standby(&[]);
    sim.command(CommandKind::Tare);
    let r = (*sim.replies().last().unwrap()).clone();
    assert!(r.unwrap_err().contains("no scale"));
}

#[test]
fn the_product_button_tags_and_a_short_go_live_press_in_a_show_only_acks() {
    let mut c = config(&["yt"]);
    let mut eggs = mussels();
    eggs.id = "eggs".into();
    eggs.unit = "piece".parse().unwrap();
    c.products = vec![eggs];
    let mut sim = Sim::new(c);
    sim.run_for(secs(1));
    sim.go_live_press();
    sim.run_for(secs(1));
    sim.press(ButtonId::Product("eggs".into()), ms(100));
    assert_eq!(sim.events("product_tagged").len(), 1);
    sim.go_live_press();
    assert_eq!(sim.core.state(), State::Live);
}

#[test]
fn shutdown_ends_the_show_and_exits() {
    let mut sim = standby(&["yt"]);
    sim.go_live_press();
    sim.run_for(secs(1));
    sim.input(Input::Shutdown);
    sim.run_for(secs(5));
    assert!(sim.exited);
    assert_eq!(sim.recorder, None);
    assert!(sim.connected.is_empty());
}

#[test]
fn a_full_disk_or_a_silent_scale_asks_for_a_technician_on_the_status_light() {
    let mut sim = standby(&["yt"]);
    assert_eq!(sim.core.status_light(), crate::gpio::tally::Pattern::Off);
    // The disk thread measures 100 MB free; the config keeps 512.
    sim.input(Input::Disk {
        used_bytes: 1 << 30,
        free_bytes: 100 << 20,
    });
    assert_eq!(
        sim.core.status_light(),
        crate::gpio::tally::Pattern::Attention
    );
    sim.run_for(secs(6));
    let status = sim.last_status();
    assert!(
        status.errors["disk"].contains("100 MB free"),
        "{:?}",
        status.errors
    );
    // Space again: the light goes back to what the show says.
    sim.input(Input::Disk {
        used_bytes: 1 << 30,
        free_bytes: 5 << 30,
    });
    assert_eq!(sim.core.status_light(), crate::gpio::tally::Pattern::Off);
    // A lost camera keeps the show's own error pattern: it says more.
    sim.input(Input::Disk {
        used_bytes: 1 << 30,
        free_bytes: 1 << 20,
    });
    sim.camera_stalled = true;
    sim.run_for(ms(600));
    assert_eq!(sim.core.status_light(), crate::gpio::tally::Pattern::Error);
}

#[test]
fn a_lost_microphone_is_reopened_on_a_backoff_and_reported_once() {
    let mut sim = standby(&["yt"]);
    sim.go_live_press();
    sim.run_for(secs(1));
    sim.mic_works = false;
    let lost = sim.now;
    sim.input(Input::Media(MediaReport::MicLost(
        "alsasrc: device gone".into(),
    )));
    assert_eq!(sim.events("error").len(), 1);
    assert_eq!(
        sim.core.status_light(),
        crate::gpio::tally::Pattern::Attention
    );
    // Gone for a minute: reopened again and again, further apart, never
    // more than 30 s apart; told once.
    sim.run_for(secs(60));
    let tries: Vec<_> = sim
        .seen
        .iter()
        .filter(|(t, s)| *t >= lost && matches!(s, Seen::Media(MediaCmd::StartMic)))
        .map(|(t, _)| *t)
        .collect();
    assert!((4..=10).contains(&tries.len()), "{} reopens", tries.len());
    assert!(tries.windows(2).all(|w| w[1] - w[0] <= secs(30)));
    assert_eq!(sim.events("error").len(), 1, "told once per spell");
    assert_eq!(sim.core.state(), State::Live, "the show goes on, silent");
    // Plugged back: found at the next try, the light and status clear.
    sim.mic_works = true;
    sim.run_for(secs(31));
    let last = sim.last_status();
    assert!(!last.errors.contains_key("mic"), "{:?}", last.errors);
    assert_eq!(sim.core.status_light(), crate::gpio::tally::Pattern::Off);
}
