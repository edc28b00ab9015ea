//! The vocabulary of the show machine: its settings, states, inputs, actions and
//! status. No behaviour lives here.

use std::time::{Duration, Instant};

use crate::config::schema::LiveConfig;
use crate::gpio::buttons::ButtonEvent;
use crate::gpio::tally::Pattern;

/// Tunables of the machine. Durations shorter than 1 ms are treated as 1 ms so
/// that a zero in the config cannot make a timer fire in a busy loop.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowSettings {
    /// First delay before reconnecting a destination that went down.
    pub reconnect_initial: Duration,
    /// Growth of the reconnect delay per failed attempt.
    pub reconnect_factor: u32,
    /// Longest reconnect delay (`live.reconnect_cap_ms`).
    pub reconnect_cap: Duration,
    /// First delay before retrying a capture that failed or a camera that was lost.
    pub capture_retry: Duration,
    /// Longest capture / camera retry delay.
    pub capture_retry_cap: Duration,
    /// Go live as soon as Standby is first reached (`live.autostart`).
    pub autostart: bool,
    /// Seed of the jitter generator; fixed in tests so runs are reproducible.
    pub jitter_seed: u64,
    /// How long a shutdown or end of show waits for destinations to stop.
    pub stop_grace: Duration,
    /// How long the Ack pattern shows after a press that changed nothing.
    pub ack_duration: Duration,
    /// Shows already started by this daemon (a machine made again for a
    /// new config counts on: show ids, and the folders named after them,
    /// stay unique).
    pub shows_before: u32,
}

impl Default for ShowSettings {
    fn default() -> Self {
        ShowSettings {
            reconnect_initial: Duration::from_millis(100),
            reconnect_factor: 2,
            reconnect_cap: Duration::from_millis(2000),
            capture_retry: Duration::from_millis(1000),
            capture_retry_cap: Duration::from_secs(30),
            autostart: false,
            jitter_seed: 0x5eed_f00d_cafe_0001,
            stop_grace: Duration::from_secs(4),
            ack_duration: Duration::from_millis(400),
            shows_before: 0,
        }
    }
}

impl ShowSettings {
    /// Settings from the `[live]` table; the driver may add a seed from the clock.
    pub fn from_live(live: &LiveConfig) -> Self {
        ShowSettings {
            reconnect_cap: Duration::from_millis(live.reconnect_cap_ms),
            autostart: live.autostart,
            ..ShowSettings::default()
        }
    }
}

/// The show's state as technicians see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Capture not yet running (boot, or a pipeline restart outside a show).
    Starting,
    /// Capture running, not on air.
    Standby,
    /// A show started; no destination has been up yet.
    Connecting,
    /// At least one destination is up.
    Live,
    /// Was up during this show; none is up now.
    Reconnecting,
    /// Ending the show: waiting for destinations to stop.
    Stopping,
    /// Outside a show, the capture failed or the camera is lost.
    Error,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Starting,
        State::Standby,
        State::Connecting,
        State::Live,
        State::Reconnecting,
        State::Stopping,
        State::Error,
    ];

    /// The name in MQTT status.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Standby => "standby",
            State::Connecting => "connecting",
            State::Live => "live",
            State::Reconnecting => "reconnecting",
            State::Stopping => "stopping",
            State::Error => "error",
        }
    }

    /// A show is running (started and not yet ending).
    pub fn in_show(self) -> bool {
        matches!(self, State::Connecting | State::Live | State::Reconnecting)
    }
}

/// Technician commands (MQTT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    GoLive,
    EndShow,
    ReconnectNow,
    RestartPipeline,
}

/// What the driver feeds the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Button(ButtonEvent),
    Command(Command),
    /// The capture pipeline runs (after `StartCapture` or `RestartCapture`).
    CaptureReady,
    /// The capture could not start: no camera, bad mode, missing encoder.
    CaptureFailed(String),
    /// The running capture's camera stalled or vanished: slate on air.
    CameraLost(String),
    CameraRestored,
    DestinationUp(String),
    DestinationDown(String, String),
    /// The destination's pipeline is gone; the answer to every `Disconnect`.
    DestinationStopped(String),
    /// SIGTERM.
    Shutdown,
    /// A deadline from `poll_timeout` passed.
    Tick,
}

/// Why a show ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    LongPress,
    Command,
    Shutdown,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::LongPress => "long_press",
            StopReason::Command => "end_show",
            StopReason::Shutdown => "shutdown",
        }
    }
}

/// Things worth telling technicians (MQTT events) and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShowEvent {
    LiveStarted {
        show_id: String,
    },
    LiveStopped {
        show_id: String,
        reason: StopReason,
    },
    /// Emitted on the up → down transition only, not on each failed retry.
    DestinationDown {
        name: String,
        reason: String,
    },
    DestinationUp {
        name: String,
    },
    Error {
        what: String,
    },
    StateChanged {
        from: State,
        to: State,
    },
    /// A go-live press during a show: acknowledged, nothing changed.
    Ack,
    /// A product button press; the driver adds weight and price (`product_tagged`).
    ProductPressed {
        product_id: String,
        show_id: Option<String>,
        /// Time since the show started, when one runs.
        show_offset: Option<Duration>,
    },
}

/// What the machine asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    StartCapture,
    RestartCapture,
    Connect(String),
    /// Answer with `DestinationStopped`, even if there is nothing to stop.
    Disconnect(String),
    StartRecording {
        show_id: String,
    },
    StopRecording,
    Slate(bool),
    Tally(Pattern),
    StatusLed(Pattern),
    Event(ShowEvent),
    /// First time Standby is reached: tell systemd READY=1.
    Ready,
    /// Shutdown finished: the driver may exit.
    Exit,
}

/// A destination's link as status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not part of a running show.
    Idle,
    Connecting,
    Up,
    /// Down, a retry is scheduled.
    Down,
    /// Disconnect sent, waiting for `DestinationStopped`.
    Stopping,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Idle => "idle",
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Stopping => "stopping",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationStatus {
    pub name: String,
    pub up: bool,
    pub link: LinkState,
    /// Reconnect attempts since the box started.
    pub reconnects: u32,
    pub last_error: Option<String>,
    pub next_retry: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowStatus {
    pub state: State,
    pub show_id: Option<String>,
    /// When the running show started (the go-live press).
    pub live_since: Option<Instant>,
    pub slate: bool,
    pub destinations: Vec<DestinationStatus>,
}
