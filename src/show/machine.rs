//! The show state machine proper. See the module doc of [`crate::show`] for the
//! run-loop contract and the decisions it encodes.

use std::collections::VecDeque;
use std::time::Instant;

use super::timer::{Timer, TimerTable};
use super::types::*;
use crate::backoff::{Backoff, XorShift64};
use crate::gpio::buttons::{ButtonEvent, ButtonId, PressKind};
use crate::gpio::tally::Pattern;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    /// `StartCapture` / `RestartCapture` sent, no answer yet.
    Starting,
    Running,
    Failed,
}

#[derive(Debug)]
struct Dest {
    name: String,
    link: LinkState,
    reconnects: u32,
    last_error: Option<String>,
    backoff: Backoff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No show.
    Idle,
    /// A show runs.
    OnAir,
    /// Ending a show; `exit` once stopped.
    Stopping { exit: bool },
    /// `Exit` was emitted; everything is ignored from now on.
    Exited,
}

#[derive(Debug)]
struct ShowRun {
    id: String,
    started: Instant,
    /// A destination was up at some point: down now means Reconnecting.
    was_up: bool,
}

/// The pure show state machine: `handle(now, input)`, then drain `poll_action()`,
/// and call `handle(deadline, Input::Tick)` at `poll_timeout()`.
#[derive(Debug)]
pub struct Show {
    settings: ShowSettings,
    rng: XorShift64,
    timers: TimerTable,
    dests: Vec<Dest>,
    actions: VecDeque<Action>,
    now: Instant,
    phase: Phase,
    run: Option<ShowRun>,
    show_counter: u32,
    capture: Capture,
    capture_ever_ran: bool,
    camera_lost: bool,
    capture_backoff: Backoff,
    camera_backoff: Backoff,
    /// A go-live asked for before the capture ran: honoured at Standby.
    go_live_pending: bool,
    /// The go-live press in hand already did its work when it settled (it
    /// started the show): its release or long hold means nothing more.
    press_spent: bool,
    ready_sent: bool,
    // What the driver was last told, so that actions are emitted on change only.
    state: State,
    tally: Pattern,
    status_led: Pattern,
    slate: bool,
}

impl Show {
    pub fn new(settings: ShowSettings, destinations: Vec<String>, now: Instant) -> Show {
        let reconnect = Backoff::new(
            settings.reconnect_initial,
            settings.reconnect_factor,
            settings.reconnect_cap,
        );
        let capture_backoff = Backoff::new(settings.capture_retry, 2, settings.capture_retry_cap);
        let dests = destinations
            .into_iter()
            .map(|name| Dest {
                name,
                link: LinkState::Idle,
                reconnects: 0,
                last_error: None,
                backoff: reconnect.clone(),
            })
            .collect::<Vec<_>>();
        let shows_before = settings.shows_before;
        let mut show = Show {
            rng: XorShift64::new(settings.jitter_seed),
            go_live_pending: settings.autostart,
            press_spent: false,
            settings,
            timers: TimerTable::new(dests.len()),
            dests,
            actions: VecDeque::new(),
            now,
            phase: Phase::Idle,
            run: None,
            show_counter: shows_before,
            capture: Capture::Starting,
            capture_ever_ran: false,
            camera_lost: false,
            camera_backoff: capture_backoff.clone(),
            capture_backoff,
            ready_sent: false,
            state: State::Starting,
            tally: pattern_for(State::Starting),
            status_led: Pattern::Off,
            slate: false,
        };
        show.push(Action::StartCapture);
        show.push(Action::Tally(show.tally));
        show.push(Action::StatusLed(show.status_led));
        show
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// Shows started so far (by this machine and those before it).
    pub fn shows_started(&self) -> u32 {
        self.show_counter
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn status(&self) -> ShowStatus {
        ShowStatus {
            state: self.state,
            show_id: self.run.as_ref().map(|r| r.id.clone()),
            live_since: self.run.as_ref().map(|r| r.started),
            slate: self.slate,
            destinations: self
                .dests
                .iter()
                .enumerate()
                .map(|(i, d)| DestinationStatus {
                    name: d.name.clone(),
                    up: d.link == LinkState::Up,
                    link: d.link,
                    reconnects: d.reconnects,
                    last_error: d.last_error.clone(),
                    next_retry: self.timers.get(Timer::Reconnect(i)),
                })
                .collect(),
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        if self.phase == Phase::Exited {
            return;
        }
        // A clock that steps back must not re-fire or reorder timers.
        self.now = now.max(self.now);
        self.fire_timers();
        if self.phase == Phase::Exited {
            // The stop deadline passed before this input: nothing else counts.
            return;
        }
        match input {
            Input::Tick => {}
            Input::Button(ev) => self.on_button(ev),
            Input::Command(Command::GoLive) => self.go_live(false),
            Input::Command(Command::EndShow) => self.end_show(StopReason::Command),
            Input::Command(Command::ReconnectNow) => self.reconnect_now(),
            Input::Command(Command::RestartPipeline) => {
                self.capture = Capture::Starting;
                self.push(Action::RestartCapture);
            }
            Input::CaptureReady => {
                self.capture = Capture::Running;
                self.capture_ever_ran = true;
                self.camera_back();
            }
            Input::CaptureFailed(why) => self.on_capture_failed(why),
            Input::CameraLost(why) => self.on_camera_lost(why),
            Input::CameraRestored => {
                self.capture = Capture::Running;
                self.capture_ever_ran = true;
                self.camera_back();
            }
            Input::DestinationUp(name) => self.on_up(&name),
            Input::DestinationDown(name, reason) => self.on_down(&name, reason),
            Input::DestinationStopped(name) => self.on_stopped(&name),
            Input::Shutdown => self.on_shutdown(),
        }
        self.sync();
    }

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn event(&mut self, e: ShowEvent) {
        self.push(Action::Event(e));
    }

    fn dest_index(&self, name: &str) -> Option<usize> {
        self.dests.iter().position(|d| d.name == name)
    }

    fn fire_timers(&mut self) {
        while let Some(t) = self.timers.pop_expired(self.now) {
            match t {
                Timer::CaptureRetry => {
                    self.capture = Capture::Starting;
                    self.push(Action::StartCapture);
                }
                Timer::CameraRetry => {
                    self.push(Action::RestartCapture);
                    // Keep trying until the camera is back, even if nobody answers.
                    let d = self.camera_backoff.next_delay(&mut self.rng);
                    self.timers.set(Timer::CameraRetry, self.now + d);
                }
                Timer::Ack => {} // sync() puts the state's pattern back.
                Timer::StopDeadline => self.finish_stopping(),
                Timer::Reconnect(i) => self.connect(i),
            }
        }
    }

    fn on_button(&mut self, ev: ButtonEvent) {
        match (ev.button, ev.kind) {
            // Off air, a press means only "go live": act as soon as it
            // settles. On air it is told apart on release (short: ack) or
            // at the long-press threshold (end the show).
            (ButtonId::GoLive, PressKind::Down) => {
                if self.phase == Phase::Idle {
                    self.press_spent = true;
                    self.go_live(true);
                }
            }
            (ButtonId::GoLive, PressKind::Short | PressKind::Long)
                if std::mem::take(&mut self.press_spent) => {}
            (ButtonId::GoLive, PressKind::Short) => self.go_live(true),
            (ButtonId::GoLive, PressKind::Long) => self.end_show(StopReason::LongPress),
            (ButtonId::Product(product_id), _) => {
                let (show_id, show_offset) = match &self.run {
                    Some(r) if self.phase == Phase::OnAir => {
                        (Some(r.id.clone()), Some(self.now.duration_since(r.started)))
                    }
                    _ => (None, None),
                };
                self.event(ShowEvent::ProductPressed {
                    product_id,
                    show_id,
                    show_offset,
                });
                self.ack();
            }
        }
    }

    fn ack(&mut self) {
        self.timers.set(
            Timer::Ack,
            self.now + self.settings.ack_duration.max(MIN_TIMER),
        );
    }

    fn go_live(&mut self, pressed: bool) {
        match self.phase {
            Phase::OnAir => {
                if pressed {
                    self.event(ShowEvent::Ack);
                    self.ack();
                }
            }
            Phase::Stopping { .. } | Phase::Exited => {}
            Phase::Idle => match self.capture {
                Capture::Running if !self.camera_lost => self.start_show(),
                // The camera ran once: better on air with the slate than not at all.
                _ if self.capture_ever_ran => self.start_show(),
                Capture::Starting => self.go_live_pending = true,
                _ => self.event(ShowEvent::Error {
                    what: "cannot go live: the camera has not started yet".into(),
                }),
            },
        }
    }

    fn start_show(&mut self) {
        self.go_live_pending = false;
        self.show_counter = self.show_counter.saturating_add(1);
        let id = format!("show-{:04}", self.show_counter);
        self.run = Some(ShowRun {
            id: id.clone(),
            started: self.now,
            was_up: false,
        });
        self.phase = Phase::OnAir;
        self.push(Action::StartRecording {
            show_id: id.clone(),
        });
        self.event(ShowEvent::LiveStarted { show_id: id });
        for i in 0..self.dests.len() {
            if let Some(d) = self.dests.get_mut(i) {
                d.backoff.reset();
            }
            self.connect(i);
        }
    }

    fn connect(&mut self, i: usize) {
        if self.phase != Phase::OnAir {
            return;
        }
        let Some(d) = self.dests.get_mut(i) else {
            return;
        };
        if matches!(d.link, LinkState::Up | LinkState::Connecting) {
            return;
        }
        if d.link == LinkState::Down {
            d.reconnects = d.reconnects.saturating_add(1);
        }
        d.link = LinkState::Connecting;
        let name = d.name.clone();
        self.timers.stop(Timer::Reconnect(i));
        self.push(Action::Connect(name));
    }

    fn reconnect_now(&mut self) {
        for i in 0..self.dests.len() {
            if self.dests.get(i).is_some_and(|d| d.link == LinkState::Down) {
                self.connect(i);
            }
        }
    }

    fn end_show(&mut self, reason: StopReason) {
        if self.phase != Phase::OnAir {
            return;
        }
        let exit = reason == StopReason::Shutdown;
        self.phase = Phase::Stopping { exit };
        self.push(Action::StopRecording);
        if let Some(r) = &self.run {
            let show_id = r.id.clone();
            self.event(ShowEvent::LiveStopped { show_id, reason });
        }
        for i in 0..self.dests.len() {
            self.timers.stop(Timer::Reconnect(i));
            if let Some(d) = self.dests.get_mut(i) {
                d.link = LinkState::Stopping;
                let name = d.name.clone();
                self.push(Action::Disconnect(name));
            }
        }
        self.timers.set(
            Timer::StopDeadline,
            self.now + self.settings.stop_grace.max(MIN_TIMER),
        );
        self.check_stopped();
    }

    fn on_shutdown(&mut self) {
        match self.phase {
            Phase::OnAir => self.end_show(StopReason::Shutdown),
            Phase::Stopping { .. } => {
                self.phase = Phase::Stopping { exit: true };
            }
            Phase::Idle => self.exit(),
            Phase::Exited => {}
        }
    }

    fn exit(&mut self) {
        self.phase = Phase::Exited;
        self.timers.stop_all();
        self.push(Action::Exit);
    }

    fn check_stopped(&mut self) {
        if self.dests.iter().all(|d| d.link != LinkState::Stopping) {
            self.finish_stopping();
        }
    }

    fn finish_stopping(&mut self) {
        let Phase::Stopping { exit } = self.phase else {
            return;
        };
        self.timers.stop(Timer::StopDeadline);
        self.run = None;
        for d in &mut self.dests {
            d.link = LinkState::Idle;
        }
        if exit {
            self.exit();
        } else {
            self.phase = Phase::Idle;
        }
    }

    fn on_up(&mut self, name: &str) {
        let Some(i) = self.dest_index(name) else {
            return;
        };
        match self.phase {
            Phase::OnAir => {
                let Some(d) = self.dests.get_mut(i) else {
                    return;
                };
                if d.link == LinkState::Up {
                    return;
                }
                d.link = LinkState::Up;
                d.backoff.reset();
                self.timers.stop(Timer::Reconnect(i));
                if let Some(r) = &mut self.run {
                    r.was_up = true;
                }
                self.event(ShowEvent::DestinationUp { name: name.into() });
            }
            // A late answer to a connect we already cancelled: stop it again.
            Phase::Idle => self.push(Action::Disconnect(name.into())),
            Phase::Stopping { .. } | Phase::Exited => {}
        }
    }

    fn on_down(&mut self, name: &str, reason: String) {
        let Some(i) = self.dest_index(name) else {
            return;
        };
        match self.phase {
            Phase::OnAir => {
                let now = self.now;
                let Some(d) = self.dests.get_mut(i) else {
                    return;
                };
                let was_up = d.link == LinkState::Up;
                if d.link == LinkState::Down {
                    // Already waiting to retry: only remember the newer reason.
                    d.last_error = Some(reason);
                    return;
                }
                d.link = LinkState::Down;
                d.last_error = Some(reason.clone());
                let delay = d.backoff.next_delay(&mut self.rng);
                self.timers.set(Timer::Reconnect(i), now + delay);
                if was_up {
                    self.event(ShowEvent::DestinationDown {
                        name: name.into(),
                        reason,
                    });
                }
            }
            // The pipeline died while we were stopping it: that is stopped too.
            Phase::Stopping { .. } => self.on_stopped(name),
            Phase::Idle | Phase::Exited => {
                if let Some(d) = self.dests.get_mut(i) {
                    d.last_error = Some(reason);
                }
            }
        }
    }

    fn on_stopped(&mut self, name: &str) {
        let Some(i) = self.dest_index(name) else {
            return;
        };
        if let Phase::Stopping { .. } = self.phase {
            if let Some(d) = self.dests.get_mut(i) {
                d.link = LinkState::Idle;
            }
            self.check_stopped();
        }
    }

    fn on_capture_failed(&mut self, why: String) {
        self.capture = Capture::Failed;
        self.event(ShowEvent::Error {
            what: format!("capture failed: {why}"),
        });
        if self.go_live_pending && !self.capture_ever_ran && !self.settings.autostart {
            // A press during boot is not kept for a camera that may come back hours later.
            self.go_live_pending = false;
        }
        let d = self.capture_backoff.next_delay(&mut self.rng);
        self.timers.set(Timer::CaptureRetry, self.now + d);
    }

    fn on_camera_lost(&mut self, why: String) {
        if !self.camera_lost {
            self.camera_lost = true;
            self.event(ShowEvent::Error {
                what: format!("camera lost: {why}"),
            });
        }
        if !self.timers.is_set(Timer::CameraRetry) {
            let d = self.camera_backoff.next_delay(&mut self.rng);
            self.timers.set(Timer::CameraRetry, self.now + d);
        }
    }

    fn camera_back(&mut self) {
        self.camera_lost = false;
        self.camera_backoff.reset();
        self.capture_backoff.reset();
        self.timers.stop(Timer::CameraRetry);
        self.timers.stop(Timer::CaptureRetry);
    }

    fn derive_state(&self) -> State {
        match self.phase {
            Phase::Stopping { .. } | Phase::Exited => State::Stopping,
            Phase::OnAir => {
                if self.dests.iter().any(|d| d.link == LinkState::Up) {
                    State::Live
                } else if self.dests.is_empty() {
                    // Recording only: nothing to wait for.
                    State::Live
                } else if self.run.as_ref().is_some_and(|r| r.was_up) {
                    State::Reconnecting
                } else {
                    State::Connecting
                }
            }
            Phase::Idle => {
                if self.camera_lost || self.capture == Capture::Failed {
                    State::Error
                } else if self.capture == Capture::Running {
                    State::Standby
                } else {
                    State::Starting
                }
            }
        }
    }

    fn derive_status_led(&self) -> Pattern {
        if self.camera_lost || self.capture == Capture::Failed {
            Pattern::Error
        } else if self.phase == Phase::OnAir && self.dests.iter().any(|d| d.link != LinkState::Up) {
            Pattern::FastBlink
        } else {
            Pattern::Off
        }
    }

    /// Tells the driver what changed: state, lights, slate, readiness; and starts
    /// the show a boot-time press or autostart asked for.
    fn sync(&mut self) {
        let mut state = self.derive_state();
        // Error counts as up too: a box without a camera must still report over
        // MQTT instead of being restarted by systemd for never getting ready.
        if matches!(state, State::Standby | State::Error) && !self.ready_sent {
            self.ready_sent = true;
            self.push(Action::Ready);
        }
        if state == State::Standby && self.go_live_pending {
            self.start_show();
            state = self.derive_state();
        }
        if state != self.state {
            let from = self.state;
            self.state = state;
            self.event(ShowEvent::StateChanged { from, to: state });
        }
        let slate = self.camera_lost || (self.capture_ever_ran && self.capture == Capture::Failed);
        if slate != self.slate {
            self.slate = slate;
            self.push(Action::Slate(slate));
        }
        let tally = if self.timers.is_set(Timer::Ack) {
            Pattern::Ack
        } else {
            pattern_for(state)
        };
        if tally != self.tally {
            self.tally = tally;
            self.push(Action::Tally(tally));
        }
        let status = self.derive_status_led();
        if status != self.status_led {
            self.status_led = status;
            self.push(Action::StatusLed(status));
        }
    }
}

/// The tally pattern for a show state (the show decides what its light
/// says; `gpio::tally` only knows how a pattern blinks).
pub fn pattern_for(state: State) -> Pattern {
    match state {
        State::Starting => Pattern::Off,
        State::Standby => Pattern::SlowBlink,
        State::Connecting | State::Reconnecting | State::Stopping => Pattern::FastBlink,
        State::Live => Pattern::Solid,
        State::Error => Pattern::Error,
    }
}

const MIN_TIMER: std::time::Duration = std::time::Duration::from_millis(1);
