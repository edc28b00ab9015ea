//! Invariants over random input sequences with random time jumps.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::{ms, press};
use super::*;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("zz".to_string())
    ]
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => prop_oneof![Just(PressKind::Short), Just(PressKind::Long)].prop_map(press),
        1 => Just(Input::Button(ButtonEvent {
            button: ButtonId::Product("eggs".into()),
            kind: PressKind::Short,
        })),
        3 => prop_oneof![
            Just(Command::GoLive),
            Just(Command::EndShow),
            Just(Command::ReconnectNow),
            Just(Command::RestartPipeline)
        ]
        .prop_map(Input::Command),
        2 => Just(Input::CaptureReady),
        1 => Just(Input::CaptureFailed("x".into())),
        1 => Just(Input::CameraLost("x".into())),
        1 => Just(Input::CameraRestored),
        4 => name().prop_map(Input::DestinationUp),
        4 => name().prop_map(|n| Input::DestinationDown(n, "x".into())),
        3 => name().prop_map(Input::DestinationStopped),
        1 => Just(Input::Shutdown),
        6 => Just(Input::Tick),
    ]
}

/// How the clock moves before an input: a random jump, or to the next deadline.
#[derive(Debug, Clone)]
enum Jump {
    By(u64),
    ToDeadline,
}

fn jump() -> impl Strategy<Value = Jump> {
    prop_oneof![(0u64..6000).prop_map(Jump::By), Just(Jump::ToDeadline)]
}

fn ends_show(input: &Input) -> bool {
    matches!(input, Input::Command(Command::EndShow) | Input::Shutdown)
        || *input == press(PressKind::Long)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold(
        autostart: bool,
        seed: u64,
        steps in proptest::collection::vec((jump(), input()), 1..150),
    ) {
        let settings = ShowSettings { autostart, jitter_seed: seed, ..ShowSettings::default() };
        let cap = settings.reconnect_cap;
        let mut now = Instant::now();
        let mut show = Show::new(settings, vec!["a".into(), "b".into()], now);
        let mut recording = false;
        let mut exited = false;
        while show.poll_action().is_some() {}

        for (j, input) in steps {
            now = match j {
                Jump::By(n) => now + ms(n),
                Jump::ToDeadline => show.poll_timeout().unwrap_or(now).max(now),
            };
            let up_before: Vec<String> = show
                .status()
                .destinations
                .into_iter()
                .filter(|d| d.up)
                .map(|d| d.name)
                .collect();
            show.handle(now, input.clone());
            let actions: Vec<Action> = std::iter::from_fn(|| show.poll_action()).collect();

            prop_assert!(!exited || actions.is_empty(), "actions after Exit: {actions:?}");
            for a in &actions {
                match a {
                    Action::Event(ShowEvent::LiveStopped { .. }) => {
                        prop_assert!(ends_show(&input), "show ended by {input:?}");
                    }
                    Action::StartRecording { .. } => {
                        prop_assert!(!recording, "two StartRecording without a stop");
                        recording = true;
                    }
                    Action::StopRecording => {
                        prop_assert!(recording, "StopRecording without a start");
                        recording = false;
                    }
                    Action::Connect(n) => {
                        prop_assert!(!up_before.contains(n), "Connect({n}) while up");
                    }
                    Action::Exit => {
                        prop_assert!(!recording, "exit while recording");
                        exited = true;
                    }
                    _ => {}
                }
            }

            let status = show.status();
            if status.state.in_show() && status.destinations.iter().any(|d| d.up) {
                prop_assert_eq!(status.state, State::Live);
            }
            if status.state == State::Live && !status.destinations.is_empty() {
                prop_assert!(status.destinations.iter().any(|d| d.up));
            }
            if let Some(t) = show.poll_timeout() {
                prop_assert!(t > now, "deadline in the past");
            }
            for d in &status.destinations {
                if let Some(at) = d.next_retry {
                    prop_assert!(at <= now + cap, "retry beyond the cap");
                }
            }
        }
    }

    #[test]
    fn short_presses_never_end_a_show(n in 1usize..40, gaps in proptest::collection::vec(0u64..10_000, 40)) {
        let mut now = Instant::now();
        let mut show = Show::new(ShowSettings::default(), vec!["a".into()], now);
        show.handle(now, Input::CaptureReady);
        show.handle(now, press(PressKind::Short));
        while show.poll_action().is_some() {}
        for gap in gaps.iter().take(n) {
            now += Duration::from_millis(*gap);
            show.handle(now, press(PressKind::Short));
            while let Some(a) = show.poll_action() {
                prop_assert!(!matches!(a, Action::StopRecording | Action::Disconnect(_)));
            }
            prop_assert!(show.state().in_show());
        }
    }
}
