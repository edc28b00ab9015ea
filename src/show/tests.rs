//! Table test of every state × every input, plus scenarios that jump time to the
//! next deadline instead of sleeping.

use std::time::{Duration, Instant};

use super::*;

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn press(kind: PressKind) -> Input {
    Input::Button(ButtonEvent {
        button: ButtonId::GoLive,
        kind,
    })
}

/// A show plus a clock, driven like the daemon drives it.
pub(super) struct Rig {
    pub show: Show,
    pub now: Instant,
}

impl Rig {
    pub fn new(settings: ShowSettings, dests: &[&str]) -> Rig {
        let now = Instant::now();
        let show = Show::new(settings, dests.iter().map(|s| s.to_string()).collect(), now);
        let mut rig = Rig { show, now };
        rig.drain();
        rig
    }

    pub fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.show.poll_action()).collect()
    }

    pub fn input(&mut self, input: Input) -> Vec<Action> {
        self.show.handle(self.now, input);
        self.drain()
    }

    /// Jumps to the next deadline and ticks; `None` when nothing is scheduled.
    pub fn tick(&mut self) -> Option<Vec<Action>> {
        let at = self.show.poll_timeout()?;
        self.now = self.now.max(at);
        Some(self.input(Input::Tick))
    }
}

fn rig_in(state: State) -> Rig {
    let mut r = Rig::new(ShowSettings::default(), &["a", "b"]);
    let steps: &[Input] = match state {
        State::Starting => &[],
        State::Standby => &[Input::CaptureReady],
        State::Error => &[Input::CaptureReady, Input::CameraLost("usb".into())],
        State::Connecting => &[Input::CaptureReady, Input::Command(Command::GoLive)],
        State::Live => &[
            Input::CaptureReady,
            Input::Command(Command::GoLive),
            Input::DestinationUp("a".into()),
        ],
        State::Reconnecting => &[
            Input::CaptureReady,
            Input::Command(Command::GoLive),
            Input::DestinationUp("a".into()),
            Input::DestinationDown("a".into(), "reset".into()),
        ],
        State::Stopping => &[
            Input::CaptureReady,
            Input::Command(Command::GoLive),
            Input::DestinationUp("a".into()),
            Input::Command(Command::EndShow),
        ],
    };
    for s in steps {
        r.input(s.clone());
    }
    assert_eq!(r.show.state(), state, "setup");
    r
}

const INPUTS: [&str; 16] = [
    "short",
    "long",
    "product",
    "golive",
    "endshow",
    "reconnect",
    "restart",
    "ready",
    "failed",
    "lost",
    "restored",
    "up",
    "down",
    "stopped",
    "shutdown",
    "tick",
];

fn input_named(name: &str) -> Input {
    match name {
        "short" => press(PressKind::Short),
        "long" => press(PressKind::Long),
        "product" => Input::Button(ButtonEvent {
            button: ButtonId::Product("eggs".into()),
            kind: PressKind::Short,
        }),
        "golive" => Input::Command(Command::GoLive),
        "endshow" => Input::Command(Command::EndShow),
        "reconnect" => Input::Command(Command::ReconnectNow),
        "restart" => Input::Command(Command::RestartPipeline),
        "ready" => Input::CaptureReady,
        "failed" => Input::CaptureFailed("no encoder".into()),
        "lost" => Input::CameraLost("stalled".into()),
        "restored" => Input::CameraRestored,
        "up" => Input::DestinationUp("a".into()),
        "down" => Input::DestinationDown("a".into(), "refused".into()),
        "stopped" => Input::DestinationStopped("a".into()),
        "shutdown" => Input::Shutdown,
        _ => Input::Tick,
    }
}

/// The actions that change the world, as short words; compared exactly.
fn key_actions(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartCapture => Some("StartCapture".to_string()),
            Action::RestartCapture => Some("RestartCapture".into()),
            Action::Connect(n) => Some(format!("Connect:{n}")),
            Action::Disconnect(n) => Some(format!("Disconnect:{n}")),
            Action::StartRecording { .. } => Some("StartRecording".into()),
            Action::StopRecording => Some("StopRecording".into()),
            Action::Slate(on) => Some(format!("Slate:{on}")),
            Action::Ready => Some("Ready".into()),
            Action::Exit => Some("Exit".into()),
            Action::Event(ShowEvent::LiveStarted { .. }) => Some("LiveStarted".into()),
            Action::Event(ShowEvent::LiveStopped { .. }) => Some("LiveStopped".into()),
            Action::Event(ShowEvent::DestinationUp { .. }) => Some("DestUp".into()),
            Action::Event(ShowEvent::DestinationDown { .. }) => Some("DestDown".into()),
            Action::Event(ShowEvent::Error { .. }) => Some("Error".into()),
            Action::Event(ShowEvent::Ack) => Some("Ack".into()),
            Action::Event(ShowEvent::ProductPressed { .. }) => Some("Product".into()),
            _ => None,
        })
        .collect()
}

use State::*;

const GO: &[&str] = &["StartRecording", "LiveStarted", "Connect:a", "Connect:b"];
const END: &[&str] = &[
    "StopRecording",
    "LiveStopped",
    "Disconnect:a",
    "Disconnect:b",
];

/// (state, input, resulting state, key actions in order).
#[rustfmt::skip]
const TABLE: &[(State, &str, State, &[&str])] = &[
    (Starting, "short", Starting, &[]),
    (Starting, "long", Starting, &[]),
    (Starting, "product", Starting, &["Product"]),
    (Starting, "golive", Starting, &[]),
    (Starting, "endshow", Starting, &[]),
    (Starting, "reconnect", Starting, &[]),
    (Starting, "restart", Starting, &["RestartCapture"]),
    (Starting, "ready", Standby, &["Ready"]),
    (Starting, "failed", Error, &["Error", "Ready"]),
    (Starting, "lost", Error, &["Error", "Ready", "Slate:true"]),
    (Starting, "restored", Standby, &["Ready"]),
    (Starting, "up", Starting, &["Disconnect:a"]),
    (Starting, "down", Starting, &[]),
    (Starting, "stopped", Starting, &[]),
    (Starting, "shutdown", Stopping, &["Exit"]),
    (Starting, "tick", Starting, &[]),

    (Standby, "short", Connecting, GO),
    (Standby, "long", Standby, &[]),
    (Standby, "product", Standby, &["Product"]),
    (Standby, "golive", Connecting, GO),
    (Standby, "endshow", Standby, &[]),
    (Standby, "reconnect", Standby, &[]),
    (Standby, "restart", Starting, &["RestartCapture"]),
    (Standby, "ready", Standby, &[]),
    (Standby, "failed", Error, &["Error", "Slate:true"]),
    (Standby, "lost", Error, &["Error", "Slate:true"]),
    (Standby, "restored", Standby, &[]),
    (Standby, "up", Standby, &["Disconnect:a"]),
    (Standby, "down", Standby, &[]),
    (Standby, "stopped", Standby, &[]),
    (Standby, "shutdown", Stopping, &["Exit"]),
    (Standby, "tick", Standby, &[]),

    // Camera lost after it ran: going live puts the slate on air.
    (Error, "short", Connecting, GO),
    (Error, "long", Error, &[]),
    (Error, "product", Error, &["Product"]),
    (Error, "golive", Connecting, GO),
    (Error, "endshow", Error, &[]),
    (Error, "reconnect", Error, &[]),
    (Error, "restart", Error, &["RestartCapture"]),
    (Error, "ready", Standby, &["Slate:false"]),
    (Error, "failed", Error, &["Error"]),
    (Error, "lost", Error, &[]),
    (Error, "restored", Standby, &["Slate:false"]),
    (Error, "up", Error, &["Disconnect:a"]),
    (Error, "down", Error, &[]),
    (Error, "stopped", Error, &[]),
    (Error, "shutdown", Stopping, &["Exit"]),
    (Error, "tick", Error, &[]),

    (Connecting, "short", Connecting, &["Ack"]),
    (Connecting, "long", Stopping, END),
    (Connecting, "product", Connecting, &["Product"]),
    (Connecting, "golive", Connecting, &[]),
    (Connecting, "endshow", Stopping, END),
    (Connecting, "reconnect", Connecting, &[]),
    (Connecting, "restart", Connecting, &["RestartCapture"]),
    (Connecting, "ready", Connecting, &[]),
    (Connecting, "failed", Connecting, &["Error", "Slate:true"]),
    (Connecting, "lost", Connecting, &["Error", "Slate:true"]),
    (Connecting, "restored", Connecting, &[]),
    (Connecting, "up", Live, &["DestUp"]),
    (Connecting, "down", Connecting, &[]),
    (Connecting, "stopped", Connecting, &[]),
    (Connecting, "shutdown", Stopping, END),
    (Connecting, "tick", Connecting, &[]),

    (Live, "short", Live, &["Ack"]),
    (Live, "long", Stopping, END),
    (Live, "product", Live, &["Product"]),
    (Live, "golive", Live, &[]),
    (Live, "endshow", Stopping, END),
    (Live, "reconnect", Live, &[]),
    (Live, "restart", Live, &["RestartCapture"]),
    (Live, "ready", Live, &[]),
    (Live, "failed", Live, &["Error", "Slate:true"]),
    (Live, "lost", Live, &["Error", "Slate:true"]),
    (Live, "restored", Live, &[]),
    (Live, "up", Live, &[]),
    (Live, "down", Reconnecting, &["DestDown"]),
    (Live, "stopped", Live, &[]),
    (Live, "shutdown", Stopping, END),
    (Live, "tick", Live, &[]),

    (Reconnecting, "short", Reconnecting, &["Ack"]),
    (Reconnecting, "long", Stopping, END),
    (Reconnecting, "product", Reconnecting, &["Product"]),
    (Reconnecting, "golive", Reconnecting, &[]),
    (Reconnecting, "endshow", Stopping, END),
    (Reconnecting, "reconnect", Reconnecting, &["Connect:a"]),
    (Reconnecting, "restart", Reconnecting, &["RestartCapture"]),
    (Reconnecting, "ready", Reconnecting, &[]),
    (Reconnecting, "failed", Reconnecting, &["Error", "Slate:true"]),
    (Reconnecting, "lost", Reconnecting, &["Error", "Slate:true"]),
    (Reconnecting, "restored", Reconnecting, &[]),
    (Reconnecting, "up", Live, &["DestUp"]),
    (Reconnecting, "down", Reconnecting, &[]),
    (Reconnecting, "stopped", Reconnecting, &[]),
    (Reconnecting, "shutdown", Stopping, END),
    (Reconnecting, "tick", Reconnecting, &[]),

    (Stopping, "short", Stopping, &[]),
    (Stopping, "long", Stopping, &[]),
    (Stopping, "product", Stopping, &["Product"]),
    (Stopping, "golive", Stopping, &[]),
    (Stopping, "endshow", Stopping, &[]),
    (Stopping, "reconnect", Stopping, &[]),
    (Stopping, "restart", Stopping, &["RestartCapture"]),
    (Stopping, "ready", Stopping, &[]),
    (Stopping, "failed", Stopping, &["Error", "Slate:true"]),
    (Stopping, "lost", Stopping, &["Error", "Slate:true"]),
    (Stopping, "restored", Stopping, &[]),
    (Stopping, "up", Stopping, &[]),
    (Stopping, "down", Stopping, &[]),
    (Stopping, "stopped", Stopping, &[]),
    (Stopping, "shutdown", Stopping, &[]),
    (Stopping, "tick", Stopping, &[]),
];

#[test]
fn every_state_times_every_input() {
    for state in State::ALL {
        for input in INPUTS {
            let rows: Vec<_> = TABLE
                .iter()
                .filter(|r| r.0 == state && r.1 == input)
                .collect();
            assert_eq!(rows.len(), 1, "exactly one row for {state:?} × {input}");
        }
    }
    for &(state, input, to, keys) in TABLE {
        let mut r = rig_in(state);
        let actions = r.input(input_named(input));
        assert_eq!(r.show.state(), to, "{state:?} × {input}: state");
        assert_eq!(
            key_actions(&actions),
            keys,
            "{state:?} × {input}: actions {actions:?}"
        );
        let changed = actions.iter().any(|a| {
            matches!(a, Action::Event(ShowEvent::StateChanged { from, to: t }) if *from == state && *t == to)
        });
        assert_eq!(changed, state != to, "{state:?} × {input}: StateChanged");
    }
}

#[test]
fn tally_follows_the_state_and_acks_briefly() {
    let mut r = rig_in(Live);
    assert!(r.drain().is_empty());
    let a = r.input(press(PressKind::Short));
    assert!(a.contains(&Action::Tally(Pattern::Ack)));
    let a = r.tick().unwrap_or_default();
    assert_eq!(a, vec![Action::Tally(Pattern::Solid)]);
    let a = r.input(Input::DestinationDown("a".into(), "x".into()));
    assert!(a.contains(&Action::Tally(Pattern::FastBlink)));
}

#[test]
fn stopping_ends_in_standby_when_all_stopped() {
    let mut r = rig_in(Stopping);
    r.input(Input::DestinationStopped("a".into()));
    assert_eq!(r.show.state(), Stopping);
    let a = r.input(Input::DestinationStopped("b".into()));
    assert_eq!(r.show.state(), Standby);
    assert!(!a.contains(&Action::Exit));
    assert_eq!(r.show.status().show_id, None);
}

#[test]
fn shutdown_while_live_waits_for_destinations_then_exits() {
    let mut r = rig_in(Live);
    r.input(Input::Shutdown);
    r.input(Input::DestinationStopped("a".into()));
    let a = r.input(Input::DestinationStopped("b".into()));
    assert_eq!(a.last(), Some(&Action::Exit));
    assert_eq!(r.show.poll_timeout(), None);
    assert!(
        r.input(press(PressKind::Short)).is_empty(),
        "nothing after Exit"
    );
}

#[test]
fn shutdown_gives_up_after_the_grace_period() {
    let mut r = rig_in(Live);
    let start = r.now;
    r.input(Input::Shutdown);
    r.input(Input::DestinationStopped("a".into()));
    let a = r.tick().unwrap_or_default();
    assert_eq!(r.now - start, ms(4000));
    assert_eq!(a.last(), Some(&Action::Exit));
}

#[test]
fn go_live_refused_when_the_camera_never_ran() {
    let mut r = rig_in(Starting);
    r.input(Input::CaptureFailed("no camera".into()));
    let a = r.input(press(PressKind::Short));
    assert_eq!(key_actions(&a), vec!["Error"]);
    assert_eq!(r.show.state(), Error);
    // The capture is retried with backoff.
    let a = r.tick().unwrap_or_default();
    assert!(a.contains(&Action::StartCapture));
    // A later success does not go live by itself: that press was refused.
    let a = r.input(Input::CaptureReady);
    assert_eq!(r.show.state(), Standby);
    assert!(!a.iter().any(|a| matches!(a, Action::StartRecording { .. })));
}

#[test]
fn go_live_acts_when_the_press_settles_and_the_rest_of_that_press_is_spent() {
    // Off air: the settled press starts the show, before any release.
    let mut r = rig_in(Standby);
    let a = r.input(press(PressKind::Down));
    assert_eq!(r.show.state(), Connecting);
    assert!(a.contains(&Action::Connect("a".into())));
    // Its release is not a second press (no ack flash on the tally).
    assert!(key_actions(&r.input(press(PressKind::Short))).is_empty());
    assert_eq!(r.show.state(), Connecting);
    // The next press is a press again: a short one acks, a long one ends.
    assert!(key_actions(&r.input(press(PressKind::Down))).is_empty());
    assert_eq!(key_actions(&r.input(press(PressKind::Short))), vec!["Ack"]);
    r.input(press(PressKind::Down));
    r.input(press(PressKind::Long));
    assert_eq!(r.show.state(), Stopping);
}

#[test]
fn a_long_hold_that_started_the_show_does_not_end_it() {
    // A farmer who holds the button down from standby meant "go live".
    let mut r = rig_in(Standby);
    r.input(press(PressKind::Down));
    r.input(press(PressKind::Long));
    assert_eq!(r.show.state(), Connecting);
}

#[test]
fn press_while_starting_goes_live_when_ready() {
    let mut r = rig_in(Starting);
    r.input(press(PressKind::Short));
    let a = r.input(Input::CaptureReady);
    assert_eq!(r.show.state(), Connecting);
    let keys = key_actions(&a);
    assert_eq!(keys.first().map(String::as_str), Some("Ready"));
    assert!(keys.contains(&"StartRecording".to_string()));
}

#[test]
fn autostart_goes_live_once() {
    let settings = ShowSettings {
        autostart: true,
        ..ShowSettings::default()
    };
    let mut r = Rig::new(settings, &["a"]);
    let a = r.input(Input::CaptureReady);
    assert!(a.contains(&Action::Ready));
    assert!(a.contains(&Action::Connect("a".into())));
    r.input(Input::Command(Command::EndShow));
    r.input(Input::DestinationStopped("a".into()));
    assert_eq!(r.show.state(), Standby);
    r.input(Input::Command(Command::RestartPipeline));
    r.input(Input::CaptureReady);
    assert_eq!(r.show.state(), Standby, "autostart is for boot only");
}

#[test]
fn no_destinations_means_a_recording_only_show() {
    let mut r = Rig::new(ShowSettings::default(), &[]);
    r.input(Input::CaptureReady);
    let a = r.input(press(PressKind::Short));
    assert_eq!(r.show.state(), Live);
    assert_eq!(key_actions(&a), vec!["StartRecording", "LiveStarted"]);
    let a = r.input(press(PressKind::Long));
    assert_eq!(key_actions(&a), vec!["StopRecording", "LiveStopped"]);
    assert_eq!(r.show.state(), Standby);
}

#[test]
fn show_ids_count_up() {
    let mut r = Rig::new(ShowSettings::default(), &[]);
    r.input(Input::CaptureReady);
    let mut ids = Vec::new();
    for _ in 0..2 {
        for a in r.input(press(PressKind::Short)) {
            if let Action::StartRecording { show_id } = a {
                ids.push(show_id);
            }
        }
        r.input(press(PressKind::Long));
    }
    assert_eq!(ids, vec!["show-0001", "show-0002"]);
}

#[test]
fn reconnect_backoff_grows_caps_and_resets() {
    let mut r = rig_in(Live);
    r.input(Input::DestinationUp("b".into()));
    r.input(Input::DestinationDown("a".into(), "reset".into()));
    let mut delays = Vec::new();
    for _ in 0..10 {
        let before = r.now;
        let a = r.tick().unwrap_or_default();
        assert_eq!(a, vec![Action::Connect("a".into())]);
        delays.push(r.now - before);
        r.input(Input::DestinationDown("a".into(), "refused".into()));
    }
    let nominal = [100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000, 2000];
    for (d, n) in delays.iter().zip(nominal) {
        assert!(*d <= ms(n) && *d >= ms(n) / 2, "{delays:?}");
    }
    assert_eq!(r.show.status().destinations[0].reconnects, 10);
    // Up resets the backoff: the next outage starts at the initial delay again.
    r.tick();
    r.input(Input::DestinationUp("a".into()));
    r.input(Input::DestinationDown("a".into(), "reset".into()));
    let before = r.now;
    r.tick();
    assert!(r.now - before <= ms(100));
}

#[test]
fn camera_lost_keeps_restarting_until_restored() {
    let mut r = rig_in(Live);
    r.input(Input::CameraLost("unplugged".into()));
    let mut restarts = 0;
    for _ in 0..5 {
        let a = r.tick().unwrap_or_default();
        restarts += a.iter().filter(|a| **a == Action::RestartCapture).count();
    }
    assert_eq!(restarts, 5);
    assert_eq!(r.show.state(), Live, "the show goes on with the slate");
    let a = r.input(Input::CameraRestored);
    assert!(a.contains(&Action::Slate(false)));
    assert_eq!(r.show.poll_timeout(), None);
}

#[test]
fn an_hour_of_flapping_network_runs_in_milliseconds() {
    let mut r = Rig::new(ShowSettings::default(), &["a", "b"]);
    r.input(Input::CaptureReady);
    let end = r.now + Duration::from_secs(3600);
    let mut rng = crate::backoff::XorShift64::new(42);
    // The simulated network: each Connect answers Up or Down 50 ms later; an up
    // link drops after up to 30 s.
    let mut pending: Vec<(Instant, Input)> = Vec::new();
    let mut actions = r.input(press(PressKind::Short));
    let mut connects = 0u32;
    while r.now < end {
        for a in actions.drain(..) {
            if let Action::Connect(n) = a {
                connects += 1;
                let ok = rng.next_u64().is_multiple_of(3);
                let at = r.now + ms(50);
                if ok {
                    pending.push((at, Input::DestinationUp(n.clone())));
                    let drop_at = at + ms(rng.next_u64() % 30_000);
                    pending.push((drop_at, Input::DestinationDown(n, "drop".into())));
                } else {
                    pending.push((at, Input::DestinationDown(n, "refused".into())));
                }
            }
        }
        pending.sort_by_key(|(at, _)| *at);
        let next_pending = pending.first().map(|(at, _)| *at);
        let next = match (next_pending, r.show.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(end),
        };
        r.now = r.now.max(next);
        if next_pending == Some(next) {
            let (_, input) = pending.remove(0);
            actions = r.input(input);
        } else {
            actions = r.input(Input::Tick);
        }
        let st = r.show.status();
        let any_up = st.destinations.iter().any(|d| d.up);
        assert_eq!(any_up, r.show.state() == Live, "{st:?}");
        for d in &st.destinations {
            if let Some(at) = d.next_retry {
                assert!(at <= r.now + ms(2000));
            }
        }
    }
    assert!(connects > 1000, "{connects}");
}

#[test]
fn a_capture_that_keeps_failing_is_retried_forever_on_a_capped_backoff() {
    let mut r = rig_in(Starting);
    let a = r.input(Input::CaptureFailed("video.encoder = \"nosuchenc\"".into()));
    assert!(a.contains(&Action::Ready), "a box in error is up: {a:?}");
    let mut delays = Vec::new();
    let (start, mut last) = (r.now, r.now);
    // An hour of a missing encoder, jumping from deadline to deadline.
    while r.now - start < Duration::from_secs(3600) {
        let a = r.tick().expect("a retry is always scheduled");
        assert!(a.contains(&Action::StartCapture), "{a:?}");
        assert!(!a.contains(&Action::Ready), "READY is sent once");
        delays.push(r.now - last);
        last = r.now;
        r.input(Input::CaptureFailed("still missing".into()));
        assert_eq!(r.show.state(), Error);
    }
    let cap = ShowSettings::default().capture_retry_cap;
    assert!(delays.iter().all(|d| *d <= cap), "{delays:?}");
    assert!(delays.first().is_some_and(|d| *d <= ms(1000)), "{delays:?}");
    assert!(delays.last().is_some_and(|d| *d >= cap / 2), "{delays:?}");
    assert!(
        delays.len() > 100 && delays.len() < 400,
        "{} tries",
        delays.len()
    );
    // Back at last: standby, and the next failure starts from a short delay.
    r.tick();
    r.input(Input::CaptureReady);
    assert_eq!(r.show.state(), Standby);
    r.input(Input::CaptureFailed("gone".into()));
    let at = r.now;
    r.tick();
    assert!(r.now - at <= ms(1000));
}

#[test]
fn states_map_to_patterns() {
    use super::machine::pattern_for;
    assert_eq!(pattern_for(State::Standby), Pattern::SlowBlink);
    assert_eq!(pattern_for(State::Connecting), Pattern::FastBlink);
    assert_eq!(pattern_for(State::Reconnecting), Pattern::FastBlink);
    assert_eq!(pattern_for(State::Live), Pattern::Solid);
    assert_eq!(pattern_for(State::Error), Pattern::Error);
}
