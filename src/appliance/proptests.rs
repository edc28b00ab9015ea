//! Invariants of the whole core over random worlds: presses, commands,
//! servers and cameras that come and go, recorders that fail, pushes, and
//! random time jumps.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;

use super::harness::{config, Seen, Sim};
use super::*;
use crate::fleet::{Reported, Status};
use crate::mqtt::commands::CommandKind;

#[derive(Debug, Clone)]
enum Step {
    Press,
    LongPress,
    GoLive,
    EndShow,
    Reconnect,
    Restart,
    ServerDown(usize),
    ServerUp(usize),
    CameraStall(bool),
    CameraWorks(bool),
    RecorderFails,
    RecorderDies,
    /// The encoder in use (or an old one) fails.
    EncoderFails(bool),
    Push {
        live_apply: bool,
    },
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Press),
        1 => Just(Step::LongPress),
        2 => Just(Step::GoLive),
        2 => Just(Step::EndShow),
        1 => Just(Step::Reconnect),
        1 => Just(Step::Restart),
        2 => (0usize..2).prop_map(Step::ServerDown),
        2 => (0usize..2).prop_map(Step::ServerUp),
        1 => any::<bool>().prop_map(Step::CameraStall),
        1 => any::<bool>().prop_map(Step::CameraWorks),
        1 => Just(Step::RecorderFails),
        1 => Just(Step::RecorderDies),
        1 => any::<bool>().prop_map(Step::EncoderFails),
        1 => any::<bool>().prop_map(|live_apply| Step::Push { live_apply }),
        5 => (0u64..40_000).prop_map(Step::Wait),
    ]
}

const NAMES: [&str; 2] = ["a", "b"];

fn apply(sim: &mut Sim, step: &Step) {
    match step {
        Step::Press => sim.go_live_press(),
        Step::LongPress => sim.end_press(),
        Step::GoLive => sim.command(CommandKind::GoLive),
        Step::EndShow => sim.command(CommandKind::EndShow),
        Step::Reconnect => sim.command(CommandKind::ReconnectNow),
        Step::Restart => sim.command(CommandKind::RestartPipeline),
        Step::ServerDown(i) => sim.server_down(NAMES[*i]),
        Step::ServerUp(i) => sim.server_up(NAMES[*i]),
        Step::CameraStall(on) => sim.camera_stalled = *on,
        Step::CameraWorks(on) => sim.camera_works = *on,
        Step::RecorderFails => sim.recorder_failures += 1,
        Step::RecorderDies => {
            if sim.recorder.take().is_some() {
                sim.input(Input::Media(MediaReport::RecorderFailed("gone".into())));
            }
        }
        Step::EncoderFails(current) => {
            let element = if *current {
                sim.core.encoder_name().to_string()
            } else {
                "x264enc".to_string()
            };
            sim.input(Input::Media(MediaReport::EncoderFailed {
                element,
                why: "failed".into(),
            }));
        }
        Step::Push { live_apply } => {
            let mut c = config(&NAMES);
            c.video.bitrate_kbps = 1234;
            let action = if *live_apply {
                crate::fleet::Action::ApplyLive(Box::new(c))
            } else {
                crate::fleet::Action::Restart(Box::new(c))
            };
            sim.fleet_answers.push_back(FleetAnswer::Step {
                reported: Reported::new(Some(9), Status::Applied, "h"),
                action,
                config_version: 9,
            });
            sim.input(Input::Push {
                source: crate::fleet::Source::Device,
                payload: b"{}".to_vec(),
            });
        }
        Step::Wait(ms) => sim.run_for(Duration::from_millis(*ms)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_core_keeps_its_promises(steps in proptest::collection::vec(step(), 1..40)) {
        let mut sim = Sim::new(config(&NAMES));
        for s in &steps {
            apply(&mut sim, s);
        }
        // End whatever runs, and shut down.
        sim.camera_works = true;
        sim.camera_stalled = false;
        sim.command(CommandKind::EndShow);
        sim.run_for(Duration::from_secs(10));
        sim.input(Input::Shutdown);
        sim.run_for(Duration::from_secs(10));
        prop_assert!(sim.exited, "did not exit");
        prop_assert!(sim.connected.is_empty(), "left connected: {:?}", sim.connected);
        prop_assert_eq!(&sim.recorder, &None);

        prop_assert!(sim.broken.is_empty(), "{:?}", sim.broken);

        // Every recorder start of one show names that show's folder, and no
        // two shows share one. A show ends with `live_stopped` or a rebuild.
        let mut current: Option<PathBuf> = None;
        let mut folders = BTreeSet::new();
        for (_, seen) in &sim.seen {
            match seen {
                Seen::Publish(Publish::Event(e)) if e.kind() == "live_stopped" => current = None,
                Seen::Media(MediaCmd::Rebuild(_)) => current = None,
                Seen::Media(MediaCmd::StartRecorder(d)) => match &current {
                    Some(cur) => prop_assert_eq!(cur, d, "a second folder in one show"),
                    None => {
                        prop_assert!(folders.insert(d.clone()), "a folder used by two shows");
                        current = Some(d.clone());
                    }
                },
                _ => {}
            }
        }
    }
}
