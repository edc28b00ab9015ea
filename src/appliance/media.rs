//! The media side's decisions: the show folder and the recorder's retries,
//! a lost camera, probing down servers, the bitrate controller and what it
//! has set on the encoder, the frame rate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Core, EncoderInfo, HealthSample, MediaCmd, MediaReport, Now, Output, Work};
use crate::config::Config;
use crate::media::abr::memory::{self, LinkRates};
use crate::media::abr::{AbrController, AbrSettings};
use crate::show::{Command, Input as ShowInput, LinkState, State};

/// A failed recorder is started again after this long.
pub const RECORDER_RETRY: Duration = Duration::from_secs(5);

/// How often a down RTMP server is probed with a bare TCP connect: what a
/// server's return waits for before the box reconnects, half of it on
/// average (the reconnect then takes about 50 ms to the first frame). Seven
/// SYNs a second to a server that is down cost nothing worth saving.
pub const PROBE_EVERY: Duration = Duration::from_millis(150);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Recorder {
    /// No show, or recording is off.
    Off,
    /// Asked to start (or running) in the show's folder.
    On,
    /// Failed; started again at this time.
    RetryAt(Instant),
}

pub struct MediaState {
    pub abr: AbrController,
    /// What the core has set on the encoder: one frame in `decimation`, at
    /// `scale_step` picture steps down.
    decimation: u32,
    scale_step: u32,
    pub encoder: EncoderInfo,
    /// The running show's recording folder, named once at the show's start:
    /// every restart of its recorder and every budget pass use it. A folder
    /// named again at a restart made the first one look like a past show,
    /// and the budget deleted the live show's segments.
    show_dir: Option<PathBuf>,
    recorder: Recorder,
    /// The show machine was told the camera is lost (a ready capture is then
    /// the camera restored).
    camera_lost: bool,
    /// Down servers that could not be reached, and when each is probed next.
    probes: HashMap<String, Instant>,
    /// The encoder's door was last told open (see `MediaCmd::Encode`); a
    /// new capture starts open.
    pub encoding: bool,
    /// Encoded frames per second (frames at the closed door in standby),
    /// smoothed over about a second.
    pub fps: f64,
    last_frames: Option<(u64, Instant)>,
    pub dropped_frames: u64,
    pub bitrates: Vec<(String, u32)>,
    /// A lost microphone, reopened on a capped backoff like the GPIO.
    pub mic: super::parts::Retry,
    /// What each destination's link delivered in earlier shows (kbit/s):
    /// read at start, updated and written at each show's end.
    pub links: LinkRates,
    /// The encoder's fallback within a show.
    pub fallback: super::encoder::Fallback,
}

impl MediaState {
    pub fn new(config: &Config) -> MediaState {
        MediaState {
            abr: abr_for(config, &EncoderInfo::default()),
            decimation: 1,
            scale_step: 0,
            encoder: EncoderInfo::default(),
            show_dir: None,
            recorder: Recorder::Off,
            camera_lost: false,
            probes: HashMap::new(),
            encoding: true,
            fps: 0.0,
            last_frames: None,
            dropped_frames: 0,
            bitrates: Vec::new(),
            mic: super::parts::Retry::new("mic", 0x51c),
            links: LinkRates::new(),
            fallback: Default::default(),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let recorder = match self.recorder {
            Recorder::RetryAt(t) => Some(t),
            _ => None,
        };
        let probe = self.probes.values().min().copied();
        [recorder, self.mic.poll_timeout(), probe]
            .into_iter()
            .flatten()
            .min()
    }

    /// The running show's folder (its sales log goes there too).
    pub fn show_dir(&self) -> Option<&PathBuf> {
        self.show_dir.as_ref()
    }

    pub fn bitrate(&self, name: &str) -> u32 {
        self.bitrates
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, k)| *k)
    }
}

/// The adaptive-bitrate controller for a config and the encoder it got:
/// only encoders that take a new picture size mid-stream may be scaled.
pub fn abr_for(config: &Config, encoder: &EncoderInfo) -> AbrController {
    let mut settings = AbrSettings::from_video(&config.video);
    settings.audio_kbps = config.audio.bitrate_kbps;
    if !encoder.resizable {
        settings.max_scale_step = 0;
    }
    AbrController::new(settings)
}

/// The slowest link the enabled destinations had last time, or `None` when
/// any of them has nothing remembered (it may be the slowest).
fn remembered_rate(config: &Config, links: &LinkRates) -> Option<u32> {
    let mut rates = config
        .destinations
        .iter()
        .filter(|d| d.enabled)
        .map(|d| links.get(&d.name).copied());
    let first = rates.next()??;
    rates.try_fold(first, |low, r| r.map(|r| low.min(r)))
}

impl Core {
    pub(super) fn media_built(&mut self, info: EncoderInfo) {
        // A new capture starts with its encoder's door open.
        self.media.encoding = true;
        self.sync_encoder_door();
        // A new media side tried its encoders afresh.
        self.media.fallback = Default::default();
        self.encoder_in_use(info);
    }

    /// The encoder the pipeline now has: the bitrate controller starts
    /// over for it (what it had set went with the old encoder).
    fn encoder_in_use(&mut self, info: EncoderInfo) {
        self.media.abr = abr_for(&self.config, &info);
        self.media.encoder = info;
        self.media.decimation = 1;
        self.media.scale_step = 0;
        self.start_abr(false);
    }

    /// The links remembered from earlier shows, read at start.
    pub(super) fn links_remembered(&mut self, rates: LinkRates) {
        self.media.links = rates;
        if !self.show.state().in_show() {
            self.start_abr(false);
        }
    }

    /// The controller starts over at what the links delivered last time (or
    /// low, to ramp up): at the build, so standby already encodes at it, and
    /// at each show's start. Logged at a show's start: the rate a show starts
    /// at is what a technician asks about a thin link.
    pub(super) fn start_abr(&mut self, show: bool) {
        if !self.config.live.adaptive_bitrate || self.config.video.passthrough {
            return;
        }
        let remembered = remembered_rate(&self.config, &self.media.links);
        self.media.abr.start(remembered);
        let kbps = self.media.abr.encoder_kbps();
        if show {
            match remembered {
                Some(link) => tracing::info!(
                    target_kbps = kbps,
                    remembered_link_kbps = link,
                    "abr: the show starts at what the link delivered last time"
                ),
                None => tracing::info!(
                    target_kbps = kbps,
                    "abr: nothing remembered of the links; the show starts low and ramps up"
                ),
            }
        }
        if self.media.abr.poll_change().is_some() {
            self.media_cmd(MediaCmd::SetBitrate(kbps));
        }
    }

    /// A show ended: what each link delivered in it is kept for the next
    /// one, and written to the state folder.
    pub(super) fn remember_links(&mut self, now: Now) {
        if !self.config.live.adaptive_bitrate || self.config.video.passthrough {
            return;
        }
        let before = self.media.links.clone();
        for (name, kbps) in self.media.abr.link_rates() {
            self.media.links.insert(name.to_string(), kbps);
        }
        if self.media.links == before {
            return;
        }
        tracing::info!(links = ?self.media.links, "abr: remembering what the links delivered");
        let path = memory::path_in(std::path::Path::new(&self.config.state_dir));
        self.out.push_back(Output::Work(Work::SaveLinks {
            path,
            rates: self.media.links.clone(),
            wall: now.wall,
        }));
    }

    /// The encoder in use failed: the next one that worked when the media
    /// side was built takes over within the show (the shell swaps it in the
    /// running pipeline; the destinations stay), or, with none left, the
    /// capture has failed.
    fn encoder_failed(&mut self, now: Now, element: &str, why: &str) {
        use super::encoder::Decision;
        let why = crate::excerpt::excerpt(why);
        match self
            .media
            .fallback
            .on_failure(now.at, &self.media.encoder, element, &why)
        {
            Decision::Stale => tracing::debug!(element, error = %why, "old encoder's error"),
            Decision::Switch { to, reason } => {
                tracing::warn!(from = element, to = %to.name, error = %why, "encoder failed; falling back");
                let name = to.name.clone();
                self.encoder_in_use(to);
                self.media_cmd(MediaCmd::SwitchEncoder(name));
                self.encoder_event(now, format!("encoder: {reason}"));
            }
            Decision::GiveUp(reason) => {
                self.encoder_event(now, format!("encoder: {reason}"));
                self.show_input(now, ShowInput::CaptureFailed(reason));
            }
        }
    }

    fn encoder_event(&mut self, now: Now, what: String) {
        let ev = crate::mqtt::payloads::Event::at(
            crate::mqtt::payloads::EventBody::Error {
                what,
                part: Some("encoder".into()),
            },
            now.wall,
        );
        self.publish(super::Publish::Event(ev));
        self.status.due_now(now.at);
    }

    pub(super) fn on_media(&mut self, now: Now, report: MediaReport) {
        let input = match report {
            MediaReport::CaptureReady if self.media.camera_lost => {
                self.set_camera_lost(false);
                ShowInput::CameraRestored
            }
            MediaReport::CaptureReady => {
                // A new capture's encoder runs at the configured rate: tell
                // it the target again.
                self.media.abr.encoder_restarted();
                let adapting = self.config.live.adaptive_bitrate && !self.config.video.passthrough;
                if adapting && self.media.abr.poll_change().is_some() {
                    let kbps = self.media.abr.encoder_kbps();
                    self.media_cmd(MediaCmd::SetBitrate(kbps));
                }
                ShowInput::CaptureReady
            }
            MediaReport::CaptureFailed(why) => ShowInput::CaptureFailed(why),
            MediaReport::ClipEnded => {
                // A clip loops: open it again, the show never notices.
                return self.media_cmd(MediaCmd::StartCapture { restart: true });
            }
            MediaReport::CameraLost(why) => {
                if self.media.camera_lost {
                    return;
                }
                self.set_camera_lost(true);
                ShowInput::CameraLost(why)
            }
            // Still lost after a retry: the show machine keeps its camera
            // retry timer running; never lost: the capture did not start.
            MediaReport::CameraFailed(why) if self.media.camera_lost => ShowInput::CameraLost(why),
            MediaReport::CameraFailed(why) => ShowInput::CaptureFailed(why),
            MediaReport::CameraRestored => {
                self.set_camera_lost(false);
                ShowInput::CameraRestored
            }
            MediaReport::MicLost(why) => return self.mic_lost(now, &why),
            MediaReport::MicStarted => {
                if self.media.mic.opened() {
                    tracing::info!("microphone back: sound goes out again");
                    self.status.due_now(now.at);
                }
                return;
            }
            MediaReport::DestinationUp(name) => ShowInput::DestinationUp(name),
            MediaReport::DestinationDown {
                name,
                reason,
                unreachable,
            } => {
                self.media.abr.forget(&name);
                if unreachable {
                    self.media
                        .probes
                        .entry(name.clone())
                        .or_insert(now.at + PROBE_EVERY);
                } else {
                    // Reached and refused (a bad key, a duplicate publish):
                    // left to the backoff, not hammered.
                    self.media.probes.remove(&name);
                }
                ShowInput::DestinationDown(name, reason)
            }
            MediaReport::DestinationStopped(name) => {
                // The probe stays: the shell tears down a failed pipeline at
                // once (Down, then Stopped) while the link stays down and
                // waits for its server; `probe_down_links` drops probes of
                // links that are no longer down.
                self.media.abr.forget(&name);
                ShowInput::DestinationStopped(name)
            }
            MediaReport::RecorderFailed(_) => {
                if self.media.recorder == Recorder::On {
                    self.media.recorder = Recorder::RetryAt(now.at + RECORDER_RETRY);
                }
                return;
            }
            MediaReport::EncoderFailed { element, why } => {
                return self.encoder_failed(now, &element, &why)
            }
            MediaReport::SegmentClosed => return self.budget(),
            MediaReport::RecorderStopped => return,
        };
        self.show_input(now, input);
    }

    fn set_camera_lost(&mut self, lost: bool) {
        self.media.camera_lost = lost;
        self.media_cmd(MediaCmd::CameraLost(lost));
    }

    /// Names the show's folder, once, and starts its recorder.
    pub(super) fn start_recording(&mut self, now: Now, show_id: &str) {
        if !self.config.recording.enabled {
            return;
        }
        let root = PathBuf::from(&self.config.recording.dir);
        let dir = crate::recording::show_dir(&root, now.wall, show_id);
        self.media.show_dir = Some(dir.clone());
        self.media.recorder = Recorder::On;
        self.budget();
        self.media_cmd(MediaCmd::StartRecorder(dir));
    }

    pub(super) fn stop_recording(&mut self) {
        self.media.show_dir = None;
        if self.media.recorder != Recorder::Off {
            self.media.recorder = Recorder::Off;
            self.media_cmd(MediaCmd::StopRecorder);
        }
    }

    /// A budget pass on the disk thread, sparing the live show's folder.
    fn budget(&mut self) {
        let current = self
            .media
            .show_dir
            .as_ref()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        self.out.push_back(Output::Work(Work::Budget {
            root: PathBuf::from(&self.config.recording.dir),
            current,
            cfg: self.config.recording.clone(),
        }));
    }

    /// The microphone failed or could not be opened: silence goes out, the
    /// technician is told once per spell, and it is opened again on a
    /// capped backoff (a USB microphone plugged back is found within 30 s).
    fn mic_lost(&mut self, now: Now, why: &str) {
        // One event per spell: the reopen failures that follow a loss say
        // other words ("no such device") about the same missing microphone.
        let was_missing = self.media.mic.error().is_some();
        self.media.mic.failed(now.at, why);
        if was_missing {
            return tracing::debug!(error = %why, "microphone still missing");
        }
        tracing::warn!(error = %why, "microphone lost; sending silence and retrying");
        let ev = crate::mqtt::payloads::Event::at(
            crate::mqtt::payloads::EventBody::Error {
                what: format!("mic: {}", crate::excerpt::excerpt(why)),
                part: Some("mic".into()),
            },
            now.wall,
        );
        self.publish(super::Publish::Event(ev));
        self.status.due_now(now.at);
    }

    /// The recorder's retry, when due; the microphone's.
    pub(super) fn media_timers(&mut self, now: Now) {
        self.probe_down_links(now.at);
        if self.media.mic.due(now.at) {
            self.media.mic.asked();
            self.media_cmd(MediaCmd::StartMic);
        }
        if let Recorder::RetryAt(t) = self.media.recorder {
            if now.at >= t {
                if let Some(dir) = self.media.show_dir.clone() {
                    self.media.recorder = Recorder::On;
                    // The budget pass runs beside the new recorder, which
                    // numbers on from the folder's last segment.
                    self.budget();
                    self.media_cmd(MediaCmd::StartRecorder(dir));
                } else {
                    self.media.recorder = Recorder::Off;
                }
            }
        }
    }

    pub(super) fn server_reachable(&mut self, now: Now, name: &str) {
        let down = self
            .show
            .status()
            .destinations
            .iter()
            .any(|d| d.name == name && d.link == LinkState::Down);
        if down {
            self.show_input(now, ShowInput::Command(Command::ReconnectNow));
        }
    }

    /// The encoder works only while a show wants frames: from the press
    /// (before the destinations connect, so the first keyframe is on its way
    /// while they do) until the show is over. In standby it rests, and so
    /// does most of the CPU (BENCHMARKS.md, section `standby`).
    pub(super) fn sync_encoder_door(&mut self) {
        let wanted = self.show.state() != State::Standby;
        if wanted != self.media.encoding {
            self.media.encoding = wanted;
            // The frames counted change meaning: start the rate afresh.
            self.media.last_frames = None;
            self.media_cmd(MediaCmd::Encode(wanted));
        }
    }

    /// The health tick: frames, stalls, the watchdog, the bitrate, probes,
    /// the recorder.
    pub(super) fn health(&mut self, now: Now, sample: HealthSample) {
        if let Some(why) = sample.stalled {
            self.on_media(now, MediaReport::CameraLost(why));
        }
        // What proves the pipeline runs: encoded frames while the encoder
        // works, frames at its door while it rests.
        let frames = if self.media.encoding {
            sample.frames_out
        } else {
            sample.frames_in
        };
        if let Some(frames) = frames {
            if let Some((last, at)) = self.media.last_frames {
                let dt = now.at.saturating_duration_since(at).as_secs_f64();
                if dt > 0.0 {
                    let inst = frames.saturating_sub(last) as f64 / dt;
                    self.media.fps = if self.media.fps == 0.0 {
                        inst
                    } else {
                        0.75 * self.media.fps + 0.25 * inst
                    };
                }
            }
            self.media.last_frames = Some((frames, now.at));
            let m = &mut self.media;
            let (fps, want) = (m.fps, self.config.video.framerate);
            if m.fallback.judge_rate(now.at, fps, want, m.decimation) {
                match m.fallback.is_slow() {
                    true => {
                        tracing::warn!(encoder = %m.encoder.name, fps, want, "the encoder cannot keep the frame rate")
                    }
                    false => {
                        tracing::info!(encoder = %m.encoder.name, fps, "the encoder keeps the frame rate again")
                    }
                }
                self.status.due_now(now.at);
            }
        }
        self.media.dropped_frames = sample.dropped_frames;
        self.media.bitrates = sample.bitrates;
        let feed = self
            .watchdog
            .tick(now.at, frames, self.show.state(), self.show.status().slate);
        if feed {
            self.out
                .push_back(Output::Notify(super::NotifyOp::Watchdog));
        }
        self.adapt(now.at, sample.links);
        self.probe_down_links(now.at);
        // A show whose recorder is gone (and not already being retried).
        if self.media.recorder == Recorder::On
            && !sample.recorder_running
            && self.show.state().in_show()
        {
            self.media.recorder = Recorder::RetryAt(now.at + RECORDER_RETRY);
        }
    }

    /// Adaptive bitrate: the links' backlogs in, the encoder's target, frame
    /// decimation and picture size out.
    fn adapt(&mut self, now: Instant, links: Vec<(String, crate::media::link_signal::LinkSample)>) {
        if !self.config.live.adaptive_bitrate || self.config.video.passthrough {
            return;
        }
        for (name, sample) in links {
            let (queued_bytes, sent) = (sample.queued_bytes, sample.sent_bytes_total);
            self.media.abr.observe(now, &name, sample);
            // Each sample as the controller read it: what a thin link's
            // figures in BENCHMARKS.md are explained from
            // (`RUST_LOG=farmcast::abr_sample=debug`).
            if let Some(l) = self.media.abr.link(&name) {
                tracing::debug!(
                    target: "farmcast::abr_sample",
                    destination = %name,
                    queued_bytes,
                    sent,
                    queued_ms = l.queued_ms,
                    growth = l.growth,
                    cause = l.cause.map(|c| c.as_str()),
                    written_kbps = l.measured_kbps,
                    delivered_kbps = self.media.abr.delivered_kbps(&name),
                    target_kbps = self.media.abr.target_kbps(),
                    ceiling_kbps = self.media.abr.ceiling_kbps(now),
                );
            }
        }
        let target_moved = self.media.abr.poll_change().is_some();
        let m = &mut self.media;
        let (n, step) = (m.abr.frame_decimation(), m.abr.scale_step());
        let shape_moved = (n, step) != (m.decimation, m.scale_step);
        let mut cmds = Vec::new();
        if shape_moved {
            if n != m.decimation {
                cmds.push(MediaCmd::SetDecimation(n));
            }
            if step != m.scale_step {
                cmds.push(MediaCmd::SetScaleStep(step));
            }
            if n > m.decimation || step > m.scale_step {
                tracing::warn!(
                    keep_one_in = n,
                    scale_step = step,
                    "abr: even the lowest bitrate does not fit; fewer or smaller frames"
                );
            } else {
                tracing::info!(
                    keep_one_in = n,
                    scale_step = step,
                    "abr: the link has room again; frames or size restored"
                );
            }
            m.decimation = n;
            m.scale_step = step;
        }
        if target_moved || shape_moved {
            let kbps = m.abr.encoder_kbps();
            match m.abr.congestion() {
                Some((dest, why)) => tracing::info!(
                    target_kbps = kbps,
                    destination = dest,
                    why = why.as_str(),
                    "abr"
                ),
                None => tracing::info!(target_kbps = kbps, "abr"),
            }
            cmds.push(MediaCmd::SetBitrate(kbps));
        }
        for c in cmds {
            self.media_cmd(c);
        }
    }

    /// While a destination is down because its server could not be reached,
    /// probe the server every `PROBE_EVERY`: when it answers, reconnect at
    /// once rather than up to a whole backoff later. SRT (UDP) has nothing
    /// to probe; the shell answers only for RTMP.
    fn probe_down_links(&mut self, now: Instant) {
        let down: Vec<String> = self
            .show
            .status()
            .destinations
            .into_iter()
            .filter(|d| d.link == LinkState::Down)
            .map(|d| d.name)
            .collect();
        self.media.probes.retain(|name, _| down.contains(name));
        for (name, due) in self.media.probes.iter_mut() {
            if now >= *due {
                *due = now + PROBE_EVERY;
                self.out.push_back(Output::Probe(name.clone()));
            }
        }
    }
}
