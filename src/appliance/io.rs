//! The core's seam: everything that can happen to the box ([`Input`]) and
//! everything the box can do ([`Output`]). The shell (`src/app/`) turns the
//! outside into inputs and carries outputs out; nothing else crosses.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use crate::config::{Config, MqttConfig, RecordingConfig};
use crate::fleet::{Action, Reported, Source};
use crate::gpio::buttons::ButtonId;
use crate::media::link_signal::LinkSample;
use crate::mqtt::payloads::{Event, Status};
use crate::mqtt::IncomingCommand;
use crate::scale::{Calibration, RawReading, Scale};

/// Something that happened, with the time it is handled at passed beside it.
#[derive(Debug)]
pub enum Input {
    /// A raw button edge (rppal interrupt or the sim socket), dated where it was read.
    Edge {
        button: ButtonId,
        pressed: bool,
        at: Instant,
    },
    /// The media edge reports.
    Media(MediaReport),
    /// The media side was (re)built for the config: the encoder it chose.
    MediaBuilt(EncoderInfo),
    /// A down RTMP server accepted a bare TCP connect.
    ServerReachable(String),
    /// A scale reading.
    Reading(RawReading),
    /// The health tick's sample of counters the media edge keeps.
    Health(HealthSample),
    /// A technician's command.
    Command(IncomingCommand),
    /// A signed config pushed by a fleet manager (device or group layer).
    Push { source: Source, payload: Vec<u8> },
    /// What the fleet session (layers on disk) answered.
    Fleet(FleetAnswer),
    /// The recordings' figures from the disk thread.
    Disk { used_bytes: u64, free_bytes: u64 },
    /// The GPIO was opened (the lights are attached), or why not.
    GpioOpened(Result<(), String>),
    /// The scale was opened (`None`: `scale.kind = "none"`), or why not.
    ScaleOpened(Result<Option<Box<Scale>>, String>),
    /// The MQTT link with pushed settings connected, or gave up.
    MqttTrial(Result<(), String>),
    /// A calibration change was saved (or not) by the shell.
    CalibrationSaved {
        change: CalChange,
        saved: Result<(), String>,
    },
    /// The farmer's phone page.
    Web(WebAsk),
    /// What each destination's link delivered last time, read from the
    /// state folder at start (`media::abr::memory`).
    LinkMemory(crate::media::abr::memory::LinkRates),
    /// SIGTERM or Ctrl-C.
    Shutdown,
    /// A deadline from [`super::Core::poll_timeout`] passed (or nothing at all).
    Tick,
}

/// What the phone page asks (checked and saved by the page already).
#[derive(Debug)]
pub enum WebAsk {
    GoLive,
    EndShow,
    Tag {
        product_id: String,
    },
    /// Today's push address: used from the next connect.
    SetPush {
        destination: String,
        server: String,
        key: crate::config::Secret,
    },
    /// A product's name and price, kept in the page's local layer.
    EditProduct(crate::web::products::Edit),
}

/// What the media edge says, already classified: no caller reads error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaReport {
    CaptureReady,
    CaptureFailed(String),
    CameraLost(String),
    /// The camera could not be (re)opened.
    CameraFailed(String),
    /// A `file:` clip played to its end (it loops; the show never notices).
    ClipEnded,
    CameraRestored,
    /// The microphone failed, or could not be (re)opened; silence goes out.
    MicLost(String),
    /// A microphone pipeline was built and started.
    MicStarted,
    DestinationUp(String),
    DestinationDown {
        name: String,
        reason: String,
        /// The server could not be reached at all (refused, timed out, no
        /// route), as opposed to reached and refusing the stream.
        unreachable: bool,
    },
    DestinationStopped(String),
    /// The encoder in use failed (its element posted an error), or the one
    /// switched to would not start: the core picks the next.
    EncoderFailed {
        element: String,
        why: String,
    },
    /// The recorder could not start, or failed while running.
    RecorderFailed(String),
    SegmentClosed,
    RecorderStopped,
}

/// The encoder the media side got for a config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncoderInfo {
    /// Element name for status (`x264enc`, `v4l2h264enc`, `passthrough`).
    pub name: String,
    /// It takes a new picture size mid-stream (software encoders).
    pub resizable: bool,
    /// Why this one ("auto: ... is the best that encodes here (software)").
    pub reason: String,
    /// The encoders that encoded frames here and come after it, best
    /// first: where a show falls back to when it fails.
    pub fallbacks: Vec<String>,
}

/// Counters sampled at a health tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthSample {
    /// Encoded frames since the capture was built (`None`: no capture).
    pub frames_out: Option<u64>,
    /// Frames that reached the encoder's door, open or closed.
    pub frames_in: Option<u64>,
    /// Congestion samples of the destinations that are up.
    pub links: Vec<(String, LinkSample)>,
    /// Frames dropped on the way to the destinations.
    pub dropped_frames: u64,
    /// What each destination sends, measured.
    pub bitrates: Vec<(String, u32)>,
    /// The camera stopped delivering (the stall detector fired).
    pub stalled: Option<String>,
    /// A recorder is running.
    pub recorder_running: bool,
}

/// The fleet session's answers to [`FleetOp`]s.
#[derive(Debug)]
pub enum FleetAnswer {
    /// A push was handled (or a pending one came due at the show's end).
    Step {
        reported: Reported,
        action: Action,
        config_version: u64,
    },
    /// The push is already the config held: nothing to do.
    Current,
    /// A roll back was asked for and there was nothing to go back to.
    NothingToRollBack,
}

/// A calibration change that took effect in the scale machine.
#[derive(Debug, Clone)]
pub struct CalChange {
    pub old: Calibration,
    pub new: Calibration,
    /// `tare`, `calibrate_scale` or `set_calibration`.
    pub cause: &'static str,
    pub cmd: IncomingCommand,
}

/// Something the shell must do.
#[derive(Debug)]
pub enum Output {
    Media(MediaCmd),
    /// Set a light's level (the core works out the blinking).
    Light {
        light: Light,
        on: bool,
    },
    /// Try a bare TCP connect to a down destination's server.
    Probe(String),
    /// Publish over MQTT (dropped when MQTT is off).
    Publish(Publish),
    /// Work off the loop (threads of the shell); replies come from there.
    Work(Work),
    /// Ask the fleet session, which keeps the layers on disk.
    Fleet(FleetOp),
    /// The MQTT link.
    Mqtt(MqttOp),
    /// Open the GPIO (answer: [`Input::GpioOpened`]).
    OpenGpio(Box<Config>),
    /// Open the scale (answer: [`Input::ScaleOpened`]).
    OpenScale(Box<Config>),
    /// systemd.
    Notify(NotifyOp),
    /// The show is down and the core is done: exit.
    Exit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Light {
    Tally,
    Status,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaCmd {
    /// Build what is missing and (re)open the camera and mic.
    StartCapture {
        restart: bool,
    },
    /// Open the microphone again (answer: `MicStarted` or `MicLost`).
    StartMic,
    /// Connect a destination as the running config has it now (a push
    /// address pasted on the phone is in it).
    Connect(Box<crate::config::DestinationConfig>),
    /// Answered with `DestinationStopped`, at once if nothing runs.
    Disconnect(String),
    /// Start the recorder in this show folder, numbering on from its last segment.
    StartRecorder(PathBuf),
    StopRecorder,
    Slate(bool),
    /// Open (`true`) or close the door in front of the video encoder. Closed
    /// in standby: nobody watches, so the encoder (most of the box's CPU)
    /// gets no frames; the picture still reaches the door (the phone's
    /// preview is taken there) and the first frame after it opens is a
    /// keyframe (the consumers ask for one when they start).
    Encode(bool),
    /// The core knows the camera is lost (or back): a stall is reported once.
    CameraLost(bool),
    LowerThird(Option<String>),
    SetBitrate(u32),
    /// Keep one frame in `n`.
    SetDecimation(u32),
    SetScaleStep(u32),
    /// Put this encoder in place of the failed one, in the running encode
    /// pipeline (answer on failure: `EncoderFailed` for it).
    SwitchEncoder(String),
    /// Tear the media side down and build it for this config
    /// (answer: [`Input::MediaBuilt`]).
    Rebuild(Box<Config>),
}

#[derive(Debug)]
pub enum Publish {
    /// The status payload; the shell adds what only it can measure (its
    /// loop's turns, the board's temperature).
    Status(Box<Status>),
    Event(Event),
    Reply(IncomingCommand, Result<Value, String>),
    /// A fleet report on `config/reported`, with its event.
    Config(Reported),
}

#[derive(Debug)]
pub enum Work {
    Snapshot(IncomingCommand),
    ProbeDevices(IncomingCommand),
    Logs(IncomingCommand, usize),
    SetLogLevel(IncomingCommand, String),
    /// The phone page's pairing code (all phones logged out).
    SetPairingCode(IncomingCommand, crate::config::Secret),
    /// Walk the recordings for status.
    DiskUsage(PathBuf),
    /// Apply the disk budget, sparing the live show's folder.
    Budget {
        root: PathBuf,
        current: Option<String>,
        cfg: RecordingConfig,
    },
    /// Save the scale's calibration (answer: [`Input::CalibrationSaved`]).
    SaveCalibration {
        state_dir: PathBuf,
        change: CalChange,
    },
    /// Remember what each destination's link delivered (written off the
    /// loop, atomically; no answer).
    SaveLinks {
        path: PathBuf,
        rates: crate::media::abr::memory::LinkRates,
        wall: std::time::SystemTime,
    },
    /// One line of the show's sales log.
    SalesLog {
        dir: PathBuf,
        event: Event,
    },
}

#[derive(Debug)]
pub enum FleetOp {
    /// A push arrived (answer: [`Input::Fleet`]).
    Handle {
        source: Source,
        payload: Vec<u8>,
        live: bool,
    },
    /// The show ended: a stored push may apply now (answer only if it does).
    ShowEnded,
    /// What runs is good: save it as the last known good.
    ConfirmRunning,
    /// Go back to the last known good (answer: [`Input::Fleet`]).
    RollBack(String),
}

#[derive(Debug)]
pub enum MqttOp {
    /// Start (or restart) the link with this config's `[mqtt]`.
    Start(Box<Config>),
    /// Stop the link, after what is queued on it went out.
    Retire,
    /// Connect a second link with these settings beside the running one
    /// (answer: [`Input::MqttTrial`]).
    Trial {
        config: Box<Config>,
        mqtt: Box<MqttConfig>,
    },
    /// The trial link connected: it replaces the running one.
    Promote { say_offline: bool },
    /// Forget the trial link.
    DropTrial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOp {
    Ready(&'static str),
    Status(&'static str),
    Watchdog,
}
