//! The whole appliance core in simulated time, against a simulated world
//! that answers its outputs the way the shell and the real parts do (a
//! camera that starts in 300 ms, servers that accept or refuse, a recorder
//! that can fail, a fleet session that answers as scripted). Hours of a
//! show run in microseconds of real time; tests read what the core did.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::config::{Config, DestinationConfig};
use crate::gpio::buttons::ButtonId;
use crate::mqtt::commands::{Command as MqttCommand, CommandKind};
use crate::mqtt::IncomingCommand;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A config with destinations `names` and recording on under `/rec`.
pub fn config(names: &[&str]) -> Config {
    let mut c = Config {
        device_id: "farm-01".into(),
        state_dir: "/state".into(),
        ..Config::default()
    };
    c.mqtt.enabled = true;
    c.recording.enabled = true;
    c.recording.dir = "/rec".into();
    c.destinations = names
        .iter()
        .map(|n| DestinationConfig {
            name: n.to_string(),
            url: format!("rtmp://127.0.0.1/live/{n}"),
            key_file: None,
            key: None,
            enabled: true,
        })
        .collect();
    c
}

/// What the core did, in order, with the simulated time it did it at.
#[derive(Debug)]
pub enum Seen {
    Media(MediaCmd),
    Publish(Publish),
    Fleet(String),
    Mqtt(String),
    Work(String),
    Probe(#[allow(dead_code)] String),
    Watchdog,
    Exit,
}

pub struct Sim {
    pub core: Core,
    pub now: Instant,
    t0: Instant,
    wall0: SystemTime,
    /// The camera opens (else every start fails at once).
    pub camera_works: bool,
    /// The camera delivers no frames (a stall is reported once).
    pub camera_stalled: bool,
    stall_reported: bool,
    /// Servers that accept a publish; the others refuse the TCP connect.
    pub servers_up: BTreeSet<String>,
    /// How many of the next recorder starts fail.
    pub recorder_failures: u32,
    /// Answers the fleet session gives, in order.
    pub fleet_answers: VecDeque<FleetAnswer>,
    /// The trial MQTT link connects.
    pub trial_connects: bool,
    /// A microphone opens (else every reopen fails at once).
    pub mic_works: bool,
    /// The scale the shell opens (none: `scale.kind = "none"`).
    pub scale: Option<crate::scale::Scale>,
    capture_running: bool,
    frames: u64,
    /// Frames through the encoder's door (it starts open, as a capture does).
    pub encoded: u64,
    pub encoding: bool,
    pub connected: BTreeSet<String>,
    pub recorder: Option<PathBuf>,
    scheduled: Vec<(Instant, Input)>,
    next_health: Instant,
    pub seen: Vec<(Instant, Seen)>,
    pub exited: bool,
    /// Promises the core broke, found as its outputs were carried out.
    pub broken: Vec<String>,
}

impl Sim {
    pub fn new(config: Config) -> Sim {
        Sim::with_scale(config, None)
    }

    /// A box whose scale opens as `scale`.
    pub fn with_scale(config: Config, scale: Option<crate::scale::Scale>) -> Sim {
        let t0 = Instant::now();
        let wall0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let servers_up = config.destinations.iter().map(|d| d.name.clone()).collect();
        let core = Core::new(
            Now {
                at: t0,
                wall: wall0,
            },
            Start {
                config,
                config_version: 0,
                fleet: true,
                reported: None,
                seed: 7,
            },
        );
        let mut sim = Sim {
            core,
            now: t0,
            t0,
            wall0,
            camera_works: true,
            camera_stalled: false,
            stall_reported: false,
            servers_up,
            recorder_failures: 0,
            fleet_answers: VecDeque::new(),
            trial_connects: true,
            mic_works: true,
            scale,
            capture_running: false,
            frames: 0,
            encoded: 0,
            encoding: true,
            connected: BTreeSet::new(),
            recorder: None,
            scheduled: Vec::new(),
            next_health: t0 + HEALTH_TICK,
            seen: Vec::new(),
            exited: false,
            broken: Vec::new(),
        };
        sim.drain(VecDeque::new());
        sim
    }

    fn stamp(&self) -> Now {
        Now {
            at: self.now,
            wall: self.wall0 + (self.now - self.t0),
        }
    }

    /// Feed `input` now and carry out everything that follows at once.
    pub fn input(&mut self, input: Input) {
        self.drain(VecDeque::from([input, Input::Tick]));
    }

    pub fn command(&mut self, kind: CommandKind) {
        let cmd = IncomingCommand::new(MqttCommand {
            id: Some("t".into()),
            kind,
        });
        self.input(Input::Command(cmd));
    }

    /// A press of `button` held for `hold`, as raw edges.
    pub fn press(&mut self, button: ButtonId, hold: Duration) {
        let at = self.now;
        self.input(Input::Edge {
            button: button.clone(),
            pressed: true,
            at,
        });
        self.run_for(hold);
        let at = self.now;
        self.input(Input::Edge {
            button,
            pressed: false,
            at,
        });
        self.run_for(ms(100));
    }

    pub fn go_live_press(&mut self) {
        self.press(ButtonId::GoLive, ms(100));
    }

    pub fn end_press(&mut self) {
        self.press(ButtonId::GoLive, ms(2500));
    }

    fn drain(&mut self, mut inputs: VecDeque<Input>) {
        loop {
            while let Some(out) = self.core.poll_output() {
                if let Some(input) = self.carry_out(out) {
                    inputs.push_back(input);
                }
            }
            match inputs.pop_front() {
                Some(i) => {
                    let now = self.stamp();
                    self.core.handle(now, i)
                }
                None => break,
            }
        }
    }

    fn later(&mut self, after: Duration, input: Input) {
        self.scheduled.push((self.now + after, input));
    }

    fn carry_out(&mut self, out: Output) -> Option<Input> {
        let now = self.now;
        let (seen, answer) = match out {
            Output::Media(cmd) => {
                let answer = self.media(&cmd);
                (Seen::Media(cmd), answer)
            }
            Output::Publish(p) => (Seen::Publish(p), None),
            Output::Probe(name) => {
                if self.servers_up.contains(&name) {
                    self.later(ms(5), Input::ServerReachable(name.clone()));
                }
                (Seen::Probe(name), None)
            }
            Output::Fleet(op) => {
                let answer = match op {
                    FleetOp::ConfirmRunning => None,
                    _ => self.fleet_answers.pop_front().map(Input::Fleet),
                };
                (Seen::Fleet(format!("{op:?}")), answer)
            }
            Output::Mqtt(op) => {
                if matches!(op, MqttOp::Trial { .. }) && self.trial_connects {
                    self.later(ms(800), Input::MqttTrial(Ok(())));
                }
                (Seen::Mqtt(format!("{op:?}")), None)
            }
            Output::Work(w) => {
                let answer = match &w {
                    Work::SaveCalibration { change, .. } => Some(Input::CalibrationSaved {
                        change: change.clone(),
                        saved: Ok(()),
                    }),
                    _ => None,
                };
                (Seen::Work(format!("{w:?}")), answer)
            }
            Output::OpenGpio(_) => return Some(Input::GpioOpened(Ok(()))),
            Output::OpenScale(_) => {
                return Some(Input::ScaleOpened(Ok(self.scale.take().map(Box::new))))
            }
            Output::Notify(NotifyOp::Watchdog) => (Seen::Watchdog, None),
            Output::Light { .. } | Output::Notify(_) => return None,
            Output::Exit => {
                self.exited = true;
                (Seen::Exit, None)
            }
        };
        self.seen.push((now, seen));
        answer
    }

    fn media(&mut self, cmd: &MediaCmd) -> Option<Input> {
        // Outputs are carried out right after the input that made them: the
        // state is the one they were asked in.
        if matches!(cmd, MediaCmd::Connect(_) | MediaCmd::StartRecorder(_))
            && !self.core.state().in_show()
        {
            self.broken
                .push(format!("{cmd:?} in {}", self.core.state().as_str()));
        }
        match cmd {
            MediaCmd::StartCapture { .. } => {
                self.capture_running = false;
                if !self.camera_works {
                    return Some(Input::Media(MediaReport::CameraFailed("no camera".into())));
                }
                self.stall_reported = false;
                self.later(ms(300), Input::Media(MediaReport::CaptureReady));
            }
            MediaCmd::Connect(dest) => {
                let name = &dest.name;
                let report = if self.servers_up.contains(name) {
                    self.connected.insert(name.clone());
                    MediaReport::DestinationUp(name.clone())
                } else {
                    // As the shell does: a failed pipeline is torn down at
                    // once, so Stopped follows Down.
                    let stopped = MediaReport::DestinationStopped(name.clone());
                    self.later(ms(170), Input::Media(stopped));
                    MediaReport::DestinationDown {
                        name: name.clone(),
                        reason: "connection refused".into(),
                        unreachable: true,
                    }
                };
                self.later(ms(150), Input::Media(report));
            }
            MediaCmd::Disconnect(name) => {
                let stopped = Input::Media(MediaReport::DestinationStopped(name.clone()));
                if !self.connected.remove(name) {
                    return Some(stopped);
                }
                self.later(ms(20), stopped);
            }
            MediaCmd::StartRecorder(dir) => {
                if self.recorder_failures > 0 {
                    self.recorder_failures -= 1;
                    return Some(Input::Media(MediaReport::RecorderFailed("disk".into())));
                }
                self.recorder = Some(dir.clone());
            }
            MediaCmd::StopRecorder => self.recorder = None,
            MediaCmd::StartMic => {
                return Some(Input::Media(if self.mic_works {
                    MediaReport::MicStarted
                } else {
                    MediaReport::MicLost("no such device".into())
                }))
            }
            MediaCmd::Encode(on) => self.encoding = *on,
            MediaCmd::Rebuild(_) => {
                self.encoding = true;
                self.capture_running = false;
                self.connected.clear();
                self.recorder = None;
                return Some(Input::MediaBuilt(EncoderInfo {
                    name: "x264enc".into(),
                    resizable: true,
                    reason: "auto".into(),
                    fallbacks: vec!["openh264enc".into()],
                }));
            }
            _ => {}
        }
        None
    }

    /// A server goes away: its live connection drops.
    pub fn server_down(&mut self, name: &str) {
        self.servers_up.remove(name);
        if self.connected.remove(name) {
            self.input(Input::Media(MediaReport::DestinationDown {
                name: name.into(),
                reason: "connection reset".into(),
                unreachable: true,
            }));
            self.later(
                ms(20),
                Input::Media(MediaReport::DestinationStopped(name.into())),
            );
        }
    }

    pub fn server_up(&mut self, name: &str) {
        self.servers_up.insert(name.into());
    }

    /// Advance simulated time by `d`, delivering everything due on the way.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next_sched = self.scheduled.iter().map(|(t, _)| *t).min();
            let next = [next_sched, self.core.poll_timeout(), Some(self.next_health)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end)
                .max(self.now);
            if next > end {
                self.now = end;
                self.input(Input::Tick);
                return;
            }
            self.now = next;
            let mut due = VecDeque::new();
            let mut i = 0;
            while i < self.scheduled.len() {
                if self.scheduled[i].0 <= self.now {
                    due.push_back(self.scheduled.remove(i).1);
                } else {
                    i += 1;
                }
            }
            for input in &due {
                if let Input::Media(MediaReport::CaptureReady) = input {
                    self.capture_running = true;
                }
            }
            if self.now >= self.next_health {
                self.next_health = self.now + HEALTH_TICK;
                due.push_back(Input::Health(self.sample()));
            }
            due.push_back(Input::Tick);
            self.drain(due);
            if self.exited {
                return;
            }
        }
    }

    /// Take a sample without delivering it (the stall it would report is
    /// then never seen: a hang the camera detector missed).
    pub fn sample_silently(&mut self) -> HealthSample {
        self.stall_reported = true;
        self.sample()
    }

    fn sample(&mut self) -> HealthSample {
        // The encoder works for a show and rests in standby.
        let feeding = !self.connected.is_empty() || self.recorder.is_some();
        if feeding && !self.encoding {
            self.broken
                .push("a show fed with the encoder's door closed".into());
        }
        if self.capture_running && self.core.state() == State::Standby && self.encoding {
            self.broken.push("the encoder works in standby".into());
        }
        let flowing = self.capture_running && !self.camera_stalled;
        if flowing {
            self.frames += 6;
            if self.encoding {
                self.encoded += 6;
            }
        }
        let stalled =
            (self.capture_running && self.camera_stalled && !self.stall_reported).then(|| {
                self.stall_reported = true;
                "no frames for 2 s".to_string()
            });
        HealthSample {
            frames_out: self.capture_running.then_some(self.encoded),
            frames_in: self.capture_running.then_some(self.frames),
            recorder_running: self.recorder.is_some(),
            stalled,
            ..HealthSample::default()
        }
    }

    /// The media commands seen, in order.
    pub fn media_cmds(&self) -> Vec<&MediaCmd> {
        self.seen
            .iter()
            .filter_map(|(_, s)| match s {
                Seen::Media(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    pub fn recorder_dirs(&self) -> Vec<&PathBuf> {
        self.media_cmds()
            .into_iter()
            .filter_map(|c| match c {
                MediaCmd::StartRecorder(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    /// Events published, by type.
    pub fn events(&self, kind: &str) -> Vec<&crate::mqtt::payloads::Event> {
        self.seen
            .iter()
            .filter_map(|(_, s)| match s {
                Seen::Publish(Publish::Event(e)) if e.kind() == kind => Some(e),
                _ => None,
            })
            .collect()
    }

    pub fn replies(&self) -> Vec<&Result<serde_json::Value, String>> {
        self.seen
            .iter()
            .filter_map(|(_, s)| match s {
                Seen::Publish(Publish::Reply(_, r)) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub fn reports(&self) -> Vec<&crate::fleet::Reported> {
        self.seen
            .iter()
            .filter_map(|(_, s)| match s {
                Seen::Publish(Publish::Config(r)) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The last status published.
    pub fn last_status(&self) -> &crate::mqtt::payloads::Status {
        self.seen
            .iter()
            .rev()
            .find_map(|(_, s)| match s {
                Seen::Publish(Publish::Status(st)) => Some(&**st),
                _ => None,
            })
            .expect("a status was published")
    }

    /// When the first thing matching `f` was seen after `since`.
    pub fn first_after(&self, since: Instant, f: impl Fn(&Seen) -> bool) -> Option<Instant> {
        self.seen
            .iter()
            .find(|(t, s)| *t >= since && f(s))
            .map(|(t, _)| *t)
    }
}
