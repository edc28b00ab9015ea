//! Carries out the core's media commands on the GStreamer edge, and turns
//! what the edge reports into the core's [`MediaReport`]s. It keeps handles
//! (pipelines, the server addresses they looked up), never a decision: the
//! show folder, the recorder's retries and a lost camera are the core's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, Result};

use crate::appliance::{EncoderInfo, MediaReport};
use crate::config::{Config, DestinationConfig};
use crate::media::capture::{CameraFault, Capture, CaptureSettings};
use crate::media::destination::{Destination, QueueBounds};
use crate::media::plan::EncoderPlan;
use crate::media::recorder::Recorder;

use super::media_settings::{capture_settings, encoder_info};
use crate::media::{encoder, EventTx, Fault, MediaEvent};

/// Numbers the media builds, so a build's settings reach only its own
/// media side (the one replaced by a `Rebuild` is gone meanwhile).
static BUILDS: AtomicU64 = AtomicU64::new(0);

pub struct MediaCtl {
    /// The transports the config's destinations use (loaded in standby).
    warm: Vec<crate::media::plan::Transport>,
    settings: Option<CaptureSettings>,
    /// Why the capture cannot be built (missing encoder), reported at every try.
    setup_error: Option<String>,
    capture: Option<Capture>,
    destinations: HashMap<String, Destination>,
    recorder: Option<Recorder>,
    recording: crate::config::RecordingConfig,
    destination_bounds: QueueBounds,
    recording_bounds: QueueBounds,
    recorder_stopping: bool,
    /// The folder the last recorder ran in, and how many started there
    /// (1 + restarts), for the log.
    recorder_starts: (Option<PathBuf>, u32),
    /// Where each RTMP destination's server is, remembered across rebuilds of
    /// its pipeline so a down link can be probed cheaply.
    remotes: HashMap<String, std::sync::Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>>,
    /// The build whose settings are being worked out off the loop.
    building: Option<u64>,
    /// The capture was asked for while they were.
    start_pending: bool,
    /// The encoder of a build come back, until the shell hands it on.
    built: Option<EncoderInfo>,
    encoder: EncoderInfo,
    /// The config's `[video]`, for the fragments of an encoder switched to.
    video: crate::config::VideoConfig,
    events: EventTx,
}

impl MediaCtl {
    /// A media side for `config`: its settings (the encoder trials among
    /// them) are worked out on a thread of their own, and come back as
    /// `MediaEvent::Built` (then [`MediaCtl::take_built`] has the encoder
    /// for the core); a capture asked for meanwhile starts then.
    pub fn new(config: &Config, events: EventTx) -> MediaCtl {
        let srt = crate::media::warm_up::uses(config, crate::media::plan::Transport::Srt);
        crate::media::camera::preload_plugins(srt, config.recording.enabled);
        let build = BUILDS.fetch_add(1, Ordering::Relaxed) + 1;
        let mut ctl = MediaCtl::idle(config, events.clone());
        ctl.building = Some(build);
        let cfg = config.clone();
        let work = move || crate::media::BuiltSettings {
            build,
            result: capture_settings(&cfg).map_err(|e| format!("{e:#}")),
        };
        let tx = events.clone();
        let spawned = std::thread::Builder::new()
            .name("media-build".into())
            .spawn(move || {
                let _ = tx.send(MediaEvent::Built(Box::new(work())));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "no thread for the media build: the capture is not set up");
            ctl.building = None;
            ctl.setup_error = Some(format!("no thread for the media build: {e}"));
        }
        ctl
    }

    /// A media side that builds nothing until the core's first `Rebuild`.
    pub fn idle(config: &Config, events: EventTx) -> MediaCtl {
        MediaCtl {
            warm: crate::media::warm_up::transports(config),
            settings: None,
            setup_error: None,
            building: None,
            start_pending: false,
            built: None,
            capture: None,
            destinations: HashMap::new(),
            recorder: None,
            recording: config.recording.clone(),
            destination_bounds: QueueBounds {
                ms: config.live.destination_queue_ms,
                bytes: config.live.destination_queue_kb * 1024,
            },
            recording_bounds: QueueBounds {
                ms: config.live.recording_queue_ms,
                bytes: config.live.recording_queue_kb * 1024,
            },
            recorder_stopping: false,
            recorder_starts: (None, 0),
            remotes: HashMap::new(),
            encoder: EncoderInfo::default(),
            video: config.video.clone(),
            events,
        }
    }

    /// The settings of this media side's build came back: keep them (or
    /// why there are none), hand the encoder to the core, and start the
    /// capture if it was asked for meanwhile. Another build's are ignored.
    fn built(&mut self, b: crate::media::BuiltSettings) -> Option<MediaReport> {
        if self.building != Some(b.build) {
            return None;
        }
        self.building = None;
        match b.result {
            Ok((settings, choice)) => {
                self.encoder = encoder_info(choice);
                self.settings = Some(settings);
            }
            Err(e) => {
                tracing::error!(error = %e, "the capture cannot be set up");
                self.setup_error = Some(e);
            }
        }
        self.built = Some(self.encoder.clone());
        if std::mem::take(&mut self.start_pending) {
            return self.start_capture();
        }
        None
    }

    /// The encoder of a build just come back, once, for `Input::MediaBuilt`.
    pub fn take_built(&mut self) -> Option<EncoderInfo> {
        self.built.take()
    }

    pub fn capture(&self) -> Option<&Capture> {
        self.capture.as_ref()
    }

    /// Build what is missing and (re)open the camera and mic. A camera that
    /// cannot be opened is the core's `CameraFailed`.
    pub fn start_capture(&mut self) -> Option<MediaReport> {
        if self.building.is_some() {
            self.start_pending = true;
            return None;
        }
        let Some(settings) = self.settings.clone() else {
            return Some(MediaReport::CaptureFailed(
                self.setup_error
                    .clone()
                    .unwrap_or_else(|| "capture not configured".into()),
            ));
        };
        if self.capture.is_none() {
            match Capture::new(settings, self.events.clone()) {
                Ok(c) => {
                    self.capture = Some(c);
                    crate::media::warm_up::start(self.warm.clone());
                }
                Err(e) => return Some(MediaReport::CaptureFailed(format!("{e:#}"))),
            }
        }
        let capture = self.capture.as_mut()?;
        if let Err(e) = capture.start_camera() {
            return Some(camera_failed(e));
        }
        self.start_mic();
        None
    }

    /// (Re)open the microphone. How it went comes back as a report on the
    /// event channel (`auto` finds the device off the loop first).
    pub fn start_mic(&mut self) {
        let Some(capture) = self.capture.as_mut() else {
            return;
        };
        let started = capture.start_mic();
        self.mic_report(started);
    }

    /// The core hears whether a microphone now runs: `MicLost` on an error
    /// (the stream goes on with silence, and the core reopens it),
    /// `MicStarted` once a pipeline is up; nothing while `auto` still looks.
    fn mic_report(&self, started: Result<()>) {
        let running = self.capture.as_ref().is_some_and(|c| c.mic_running());
        let ev = match started {
            Err(e) => MediaEvent::MicLost(crate::media::fault::Failure::new(
                crate::media::fault::Fault::NotFound,
                format!("{e:#}"),
            )),
            Ok(()) if running => MediaEvent::MicStarted,
            Ok(()) => return,
        };
        let _ = self.events.send(ev);
    }

    /// Connect `cfg` (the core's running config holds it; a push address
    /// pasted on the phone is in it).
    pub fn connect(&mut self, cfg: &DestinationConfig) -> Option<MediaReport> {
        let name = cfg.name.as_str();
        let result = (|| -> Result<Destination> {
            let capture = self
                .capture
                .as_ref()
                .ok_or_else(|| anyhow!("capture not running"))?;
            let url = cfg.ingest_url();
            Destination::start(
                name,
                &url,
                cfg.secrets(),
                capture,
                self.destination_bounds,
                self.events.clone(),
            )
        })();
        match result {
            Ok(d) => {
                tracing::info!(destination = name, "connecting");
                self.remotes.insert(name.to_string(), d.remote_slot());
                self.destinations.insert(name.to_string(), d);
                None
            }
            Err(e) => Some(MediaReport::DestinationDown {
                name: name.to_string(),
                reason: format!("{e:#}"),
                unreachable: false,
            }),
        }
    }

    pub fn disconnect(&mut self, name: &str) -> Option<MediaReport> {
        match self.destinations.remove(name) {
            Some(d) => {
                d.stop();
                None
            }
            None => Some(MediaReport::DestinationStopped(name.to_string())),
        }
    }

    /// Start the recorder in the show's folder (named by the core), numbering
    /// on from its last segment. A failure is the core's `RecorderFailed`.
    pub fn start_recorder(&mut self, dir: PathBuf) -> Option<MediaReport> {
        if self.recorder.is_some() {
            return None;
        }
        let Some(capture) = self.capture.as_ref() else {
            return Some(MediaReport::RecorderFailed(
                "the capture is not running".into(),
            ));
        };
        // One folder's names (this show's segments), not the whole tree.
        let first = crate::recording::next_segment_in(&dir);
        let starts = match &self.recorder_starts {
            (Some(d), n) if *d == dir => *n,
            _ => 0,
        };
        match Recorder::start(
            &dir,
            first,
            self.recording.segment_s,
            capture,
            self.recording_bounds,
            self.events.clone(),
        ) {
            Ok(r) => {
                if starts == 0 {
                    tracing::info!(dir = %dir.display(), "recording");
                } else {
                    tracing::warn!(
                        dir = %dir.display(),
                        first_segment = first,
                        restarts = starts,
                        "recording again in the same show folder after a failure"
                    );
                }
                self.recorder_starts = (Some(dir), starts + 1);
                self.recorder = Some(r);
                None
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "recording did not start; the stream goes on");
                Some(MediaReport::RecorderFailed(format!("{e:#}")))
            }
        }
    }

    pub fn stop_recorder(&mut self) {
        if let Some(r) = self.recorder.take() {
            self.recorder_stopping = true;
            r.stop(false);
        }
    }

    pub fn recorder_stopping(&self) -> bool {
        self.recorder_stopping
    }

    pub fn set_slate(&self, on: bool) {
        if let Some(c) = &self.capture {
            c.set_slate(on);
        }
    }

    pub fn simulate_mic(&mut self, gone: bool) {
        if let Some(c) = &mut self.capture {
            c.simulate_mic(gone);
        }
    }

    /// The core's fallback: `element` in place of the failed encoder, in
    /// the running pipeline (the destinations stay connected). A switch
    /// that does not work is the new encoder's failure, for the core to go
    /// on down.
    pub fn switch_encoder(&mut self, element: &str) -> Option<MediaReport> {
        let s = encoder::settings(element, &self.video);
        let plan = EncoderPlan {
            input_caps: s.input_caps,
            element_desc: s.element_desc,
            output_caps: s.output_caps,
            bitrate_control: s.bitrate_control,
        };
        if let Some(settings) = &mut self.settings {
            // A capture built again later starts with it too.
            settings.encoder = plan.clone();
        }
        let capture = self.capture.as_mut()?;
        let started = std::time::Instant::now();
        match capture.swap_encoder(plan) {
            Ok(()) => {
                tracing::warn!(
                    encoder = element,
                    took_ms = started.elapsed().as_millis() as u64,
                    "encoder switched within the show"
                );
                self.encoder.name = element.to_string();
                None
            }
            Err(e) => {
                tracing::error!(encoder = element, error = %format!("{e:#}"), "the encoder switched to did not start");
                Some(MediaReport::EncoderFailed {
                    element: element.to_string(),
                    why: format!("{e:#}"),
                })
            }
        }
    }

    pub fn simulate_encoder_failure(&self) {
        if let Some(c) = &self.capture {
            c.simulate_encoder_failure();
        }
    }

    pub fn simulate_camera(&mut self, fault: CameraFault) {
        if let Some(c) = &mut self.capture {
            c.simulate_camera(fault);
        }
    }

    /// Turn a media event into the core's report (or handle it here when
    /// it is plumbing: a discovered camera or microphone to open).
    pub fn on_event(&mut self, ev: MediaEvent) -> Option<MediaReport> {
        Some(match ev {
            MediaEvent::Built(b) => return self.built(*b),
            MediaEvent::CaptureReady => MediaReport::CaptureReady,
            MediaEvent::CaptureFailed(why) => MediaReport::CaptureFailed(why.text),
            MediaEvent::EncoderFailed { element, failure } => MediaReport::EncoderFailed {
                element,
                why: failure.text,
            },
            MediaEvent::CameraLost(why) => {
                if self.capture.as_ref().is_some_and(|c| c.is_clip())
                    && why.fault == Fault::EndOfClip
                {
                    MediaReport::ClipEnded
                } else {
                    MediaReport::CameraLost(why.text)
                }
            }
            MediaEvent::MicLost(why) => {
                tracing::warn!(reason = %why, "microphone lost; sending silence");
                MediaReport::MicLost(why.text)
            }
            MediaEvent::CameraRestored => MediaReport::CameraRestored,
            MediaEvent::MicFound { discovery, device } => {
                let opened = self.capture.as_mut()?.open_mic(discovery, device);
                self.mic_report(opened);
                return None;
            }
            MediaEvent::MicStarted => MediaReport::MicStarted,
            MediaEvent::CameraHead { discovery, head } => {
                match self.capture.as_mut()?.open_discovered(discovery, head)? {
                    Ok(()) => return None,
                    Err(e) => camera_failed(e),
                }
            }
            MediaEvent::DestinationUp(name) => {
                if !self.destinations.contains_key(&name) {
                    return None;
                }
                MediaReport::DestinationUp(name)
            }
            MediaEvent::DestinationDown {
                name,
                reason,
                fault,
            } => {
                let d = self.destinations.remove(&name)?;
                d.abort();
                MediaReport::DestinationDown {
                    name,
                    reason,
                    unreachable: fault.server_unreachable(),
                }
            }
            MediaEvent::DestinationStopped(name) => MediaReport::DestinationStopped(name),
            MediaEvent::RecorderError(why) => {
                if let Some(r) = self.recorder.take() {
                    r.stop(false);
                }
                tracing::error!(reason = %why, "recorder failed; retrying shortly");
                MediaReport::RecorderFailed(why.text)
            }
            MediaEvent::SegmentClosed => MediaReport::SegmentClosed,
            MediaEvent::RecorderStopped => {
                self.recorder_stopping = false;
                MediaReport::RecorderStopped
            }
        })
    }

    /// The core marks the camera lost or back, so that a stall is reported once.
    pub fn set_camera_lost(&mut self, lost: bool) {
        if let Some(c) = &mut self.capture {
            c.set_camera_lost(lost);
        }
    }

    /// The health tick: destination counters, a stalled camera, the
    /// links' backlogs, for the core.
    pub fn sample(&mut self) -> crate::appliance::HealthSample {
        for d in self.destinations.values_mut() {
            d.poll();
        }
        let stalled = match self.capture.as_mut().and_then(|c| c.check_stall()) {
            Some(MediaEvent::CameraLost(why)) => Some(why.text),
            _ => None,
        };
        crate::appliance::HealthSample {
            frames_out: self.capture.as_ref().map(|c| {
                c.health()
                    .frames_out
                    .load(std::sync::atomic::Ordering::Relaxed)
            }),
            frames_in: self.capture.as_ref().map(|c| {
                c.health()
                    .frames_in
                    .load(std::sync::atomic::Ordering::Relaxed)
            }),
            links: self.link_samples(),
            dropped_frames: self.destinations.values().map(|d| d.dropped()).sum(),
            bitrates: self
                .destinations
                .iter()
                .map(|(n, d)| (n.clone(), d.bitrate_kbps()))
                .collect(),
            stalled,
            recorder_running: self.recorder.is_some(),
        }
    }

    /// The server address of a destination, if it is RTMP and was looked up.
    pub fn remote(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.remotes.get(name)?.lock().ok().and_then(|r| *r)
    }

    /// Congestion samples of the destinations that are up, for adaptive
    /// bitrate; their TCP send buffers are capped on the way (see
    /// `media::send_buffer`).
    fn link_samples(&mut self) -> Vec<(String, crate::media::link_signal::LinkSample)> {
        if self.destinations.is_empty() {
            // Standby: no socket to read (the table costs a scan of every
            // TCP connection of the machine).
            return Vec::new();
        }
        // One read of the kernel's TCP table serves every destination.
        let table = crate::media::proc_net::read_tcp_tables();
        // From the TCP connect on, before the first media bytes.
        for d in self.destinations.values_mut() {
            d.cap_send_buffer(table.as_deref());
        }
        self.destinations
            .values()
            .filter(|d| d.is_up())
            .map(|d| (d.name().to_string(), d.backlog(table.as_deref())))
            .collect()
    }

    pub fn shutdown(&mut self) {
        for (_, d) in self.destinations.drain() {
            d.abort();
        }
        if let Some(r) = self.recorder.take() {
            r.stop(true);
        }
        if let Some(mut c) = self.capture.take() {
            c.shutdown();
        }
    }
}

/// The camera could not be opened: the core decides whether that is a
/// failed start or a camera still lost.
fn camera_failed(e: anyhow::Error) -> MediaReport {
    tracing::warn!(error = %format!("{e:#}"), "camera did not start");
    MediaReport::CameraFailed(format!("{e:#}"))
}
