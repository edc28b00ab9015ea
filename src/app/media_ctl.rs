//! Carries out the show machine's media actions on the GStreamer edge, and
//! turns what the edge reports back into the machine's inputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, Result};

use crate::config::{Config, DestinationConfig};
use crate::media::capture::{CameraFault, Capture, CaptureSettings};
use crate::media::destination::{Destination, QueueBounds};
use crate::media::plan::{self, AudioSource, EncoderPlan, VideoSource};
use crate::media::recorder::Recorder;
use crate::media::{encoder, EventTx, Failure, Fault, MediaEvent};
use crate::show::Input;

pub struct MediaCtl {
    settings: Option<CaptureSettings>,
    /// Why the capture cannot be built (missing encoder), reported at every try.
    setup_error: Option<String>,
    capture: Option<Capture>,
    destinations: HashMap<String, Destination>,
    config: Vec<DestinationConfig>,
    recorder: Option<Recorder>,
    recording: crate::config::RecordingConfig,
    destination_bounds: QueueBounds,
    recording_bounds: QueueBounds,
    recorder_stopping: bool,
    /// The show whose recording should be running (to restart it after an error).
    recording_show: Option<String>,
    /// Its folder under `recording.dir`, named at show start and kept until
    /// the show ends: the one owner of that name.
    recording_dir: Option<PathBuf>,
    /// Recorders started for the current show (1 + restarts), for the log.
    recorder_starts: u32,
    camera_lost: bool,
    /// The camera being started is a restart (after a loss), for the input
    /// a failure gives, which may come back later (`CameraHead`).
    camera_restart: bool,
    /// Where each RTMP destination's server is, remembered across rebuilds of
    /// its pipeline so a down link can be probed cheaply.
    remotes: HashMap<String, std::sync::Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>>,
    /// Why each destination last went down, for the probe policy.
    down_faults: HashMap<String, Fault>,
    pub encoder_name: String,
    events: EventTx,
    /// Budget passes run on the recordings' disk thread, never on the loop.
    disk: super::disk_work::DiskWork,
}

impl MediaCtl {
    pub fn new(config: &Config, events: EventTx, disk: super::disk_work::DiskWork) -> MediaCtl {
        crate::media::camera::preload_plugins();
        let (settings, setup_error, encoder_name) = match capture_settings(config) {
            Ok((s, name)) => (Some(s), None, name),
            Err(e) => {
                tracing::error!(error = %e, "the capture cannot be set up");
                (None, Some(format!("{e:#}")), String::new())
            }
        };
        MediaCtl {
            settings,
            setup_error,
            capture: None,
            destinations: HashMap::new(),
            config: config.destinations.clone(),
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
            recording_show: None,
            recording_dir: None,
            recorder_starts: 0,
            camera_lost: false,
            camera_restart: false,
            remotes: HashMap::new(),
            down_faults: HashMap::new(),
            encoder_name,
            events,
            disk,
        }
    }

    pub fn capture(&self) -> Option<&Capture> {
        self.capture.as_ref()
    }

    /// `StartCapture` and `RestartCapture`: build what is missing and (re)open
    /// the camera and mic. An error is the machine's `CaptureFailed`.
    pub fn start_capture(&mut self, restart: bool) -> Option<Input> {
        let Some(settings) = self.settings.clone() else {
            return Some(Input::CaptureFailed(
                self.setup_error
                    .clone()
                    .unwrap_or_else(|| "capture not configured".into()),
            ));
        };
        if self.capture.is_none() {
            match Capture::new(settings, self.events.clone()) {
                Ok(c) => self.capture = Some(c),
                Err(e) => return Some(Input::CaptureFailed(format!("{e:#}"))),
            }
        }
        self.camera_restart = restart;
        let capture = self.capture.as_mut()?;
        if let Err(e) = capture.start_camera() {
            return Some(self.camera_failed(e));
        }
        self.start_mic()
    }

    /// The camera could not be opened: the machine's input for it.
    fn camera_failed(&self, e: anyhow::Error) -> Input {
        tracing::warn!(error = %format!("{e:#}"), "camera did not start");
        if self.camera_restart && self.camera_lost {
            // Still lost: the machine keeps its camera retry timer running.
            Input::CameraLost(format!("{e:#}"))
        } else {
            Input::CaptureFailed(format!("{e:#}"))
        }
    }

    fn start_mic(&mut self) -> Option<Input> {
        let capture = self.capture.as_mut()?;
        if let Err(e) = capture.start_mic() {
            // The stream goes on with silence; the mic is retried with the camera.
            tracing::warn!(error = %format!("{e:#}"), "microphone did not start");
        }
        None
    }

    pub fn connect(&mut self, name: &str) -> Option<Input> {
        let result = (|| -> Result<Destination> {
            let capture = self
                .capture
                .as_ref()
                .ok_or_else(|| anyhow!("capture not running"))?;
            let cfg = self
                .config
                .iter()
                .find(|d| d.name == name)
                .ok_or_else(|| anyhow!("no destination named {name}"))?;
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
            Err(e) => {
                self.down_faults.insert(name.to_string(), Fault::Setup);
                Some(Input::DestinationDown(name.to_string(), format!("{e:#}")))
            }
        }
    }

    pub fn disconnect(&mut self, name: &str) -> Option<Input> {
        match self.destinations.remove(name) {
            Some(d) => {
                d.stop();
                None
            }
            None => Some(Input::DestinationStopped(name.to_string())),
        }
    }

    /// Names the show's folder, once: every restart of its recorder and every
    /// pass of the disk budget use this one name until the show ends. A
    /// folder named again at a restart left the first one looking like a
    /// past show, and the budget deleted the live show's segments.
    pub fn start_recording(&mut self, show_id: &str) {
        self.recording_show = Some(show_id.to_string());
        let root = PathBuf::from(&self.recording.dir);
        self.recording_dir = Some(crate::recording::show_dir(
            &root,
            SystemTime::now(),
            show_id,
        ));
        self.recorder_starts = 0;
        self.restart_recorder();
    }

    /// Apply the disk budget off the driver's loop (it walks the recordings
    /// and deletes): the disk thread's figures come back to the driver.
    fn apply_budget(&self) {
        let root = PathBuf::from(&self.recording.dir);
        let current = self.recording_dir.as_deref().map(dir_name);
        self.disk.budget(root, current, &self.recording);
    }

    /// Start (or start again after a failure) the recorder of the current
    /// show, in the show's folder, numbering on from its last segment.
    pub fn restart_recorder(&mut self) {
        if !self.recording.enabled || self.recorder.is_some() {
            return;
        }
        let (Some(dir), Some(capture)) = (self.recording_dir.clone(), self.capture.as_ref()) else {
            return;
        };
        // The budget pass runs beside the new recorder: it never touches the
        // live show's folder, and walking a season of recordings here
        // stalled the loop (issue 13).
        self.apply_budget();
        // One folder's names (this show's segments), not the whole tree.
        let first = crate::recording::next_segment_in(&dir);
        match Recorder::start(
            &dir,
            first,
            self.recording.segment_s,
            capture,
            self.recording_bounds,
            self.events.clone(),
        ) {
            Ok(r) => {
                if self.recorder_starts == 0 {
                    tracing::info!(dir = %dir.display(), "recording");
                } else {
                    tracing::warn!(
                        dir = %dir.display(),
                        first_segment = first,
                        restarts = self.recorder_starts,
                        "recording again in the same show folder after a failure"
                    );
                }
                self.recorder_starts += 1;
                self.recorder = Some(r);
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "recording did not start; the stream goes on");
                let _ = self.events.send(MediaEvent::RecorderError(Failure::new(
                    Fault::Setup,
                    format!("{e:#}"),
                )));
            }
        }
    }

    pub fn stop_recording(&mut self) {
        self.recording_show = None;
        self.recording_dir = None;
        if let Some(r) = self.recorder.take() {
            self.recorder_stopping = true;
            r.stop(false);
        }
    }

    /// Nothing to restart: recording is off, or a recorder runs.
    pub fn recorder_running(&self) -> bool {
        !self.recording.enabled || self.recorder.is_some() || self.recording_show.is_none()
    }

    /// The running show's recording folder (its sales log goes there too).
    pub fn recording_dir(&self) -> Option<PathBuf> {
        self.recording_dir.clone()
    }

    pub fn recorder_stopping(&self) -> bool {
        self.recorder_stopping
    }

    pub fn set_slate(&self, on: bool) {
        if let Some(c) = &self.capture {
            c.set_slate(on);
        }
    }

    pub fn simulate_camera(&mut self, fault: CameraFault) {
        if let Some(c) = &mut self.capture {
            c.simulate_camera(fault);
        }
    }

    /// Turn a media event into the machine's input (or handle it here when the
    /// machine need not know).
    pub fn on_event(&mut self, ev: MediaEvent) -> Option<Input> {
        match ev {
            MediaEvent::CaptureReady if self.camera_lost => {
                self.set_camera_lost(false);
                Some(Input::CameraRestored)
            }
            MediaEvent::CaptureReady => Some(Input::CaptureReady),
            MediaEvent::CaptureFailed(why) => Some(Input::CaptureFailed(why.text)),
            MediaEvent::CameraLost(why) => {
                if self.capture.as_ref().is_some_and(|c| c.is_clip())
                    && why.fault == Fault::EndOfClip
                {
                    // A clip loops: open it again, the show never notices.
                    return self.start_capture(true);
                }
                if self.camera_lost {
                    return None;
                }
                self.set_camera_lost(true);
                Some(Input::CameraLost(why.text))
            }
            MediaEvent::MicLost(why) => {
                tracing::warn!(reason = %why, "microphone lost; sending silence");
                None
            }
            MediaEvent::CameraRestored => Some(Input::CameraRestored),
            MediaEvent::MicFound { discovery, device } => {
                if let Err(e) = self.capture.as_mut()?.open_mic(discovery, device) {
                    // The stream goes on with silence; the mic is retried with the camera.
                    tracing::warn!(error = %format!("{e:#}"), "microphone did not start");
                }
                None
            }
            MediaEvent::CameraHead { discovery, head } => {
                match self.capture.as_mut()?.open_discovered(discovery, head)? {
                    Ok(()) => None,
                    Err(e) => Some(self.camera_failed(e)),
                }
            }
            MediaEvent::DestinationUp(name) => self
                .destinations
                .contains_key(&name)
                .then_some(Input::DestinationUp(name)),
            MediaEvent::DestinationDown {
                name,
                reason,
                fault,
            } => {
                let d = self.destinations.remove(&name)?;
                self.down_faults.insert(name.clone(), fault);
                d.abort();
                Some(Input::DestinationDown(name, reason))
            }
            MediaEvent::DestinationStopped(name) => Some(Input::DestinationStopped(name)),
            MediaEvent::RecorderError(why) => {
                if let Some(r) = self.recorder.take() {
                    r.stop(false);
                }
                tracing::error!(reason = %why, "recorder failed; retrying shortly");
                None
            }
            MediaEvent::SegmentClosed => {
                self.apply_budget();
                None
            }
            MediaEvent::RecorderStopped => {
                self.recorder_stopping = false;
                None
            }
        }
    }

    fn set_camera_lost(&mut self, lost: bool) {
        self.camera_lost = lost;
        if let Some(c) = &mut self.capture {
            c.set_camera_lost(lost);
        }
    }

    /// The driver's health tick: stalls and destination counters.
    pub fn tick(&mut self) -> Option<Input> {
        for d in self.destinations.values_mut() {
            d.poll();
        }
        let stall = self.capture.as_mut().and_then(|c| c.check_stall())?;
        self.on_event(stall)
    }

    /// The server address of a destination, if it is RTMP and was looked up.
    /// Whether the destination last went down because its server could not
    /// be reached at all (not one that answered and refused the stream).
    pub fn server_unreachable(&self, name: &str) -> bool {
        self.down_faults
            .get(name)
            .is_some_and(|f| f.server_unreachable())
    }

    pub fn remote(&self, name: &str) -> Option<std::net::SocketAddr> {
        self.remotes.get(name)?.lock().ok().and_then(|r| *r)
    }

    /// Congestion samples of the destinations that are up, for adaptive
    /// bitrate; their TCP send buffers are capped on the way (see
    /// `media::send_buffer`).
    pub fn link_samples(&mut self) -> Vec<(String, crate::media::link_signal::LinkSample)> {
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

    /// Frames dropped on the way to the destinations and the recorder (queues full).
    pub fn dropped_frames(&self) -> u64 {
        self.destinations.values().map(|d| d.dropped()).sum()
    }

    pub fn destination_bitrate(&self, name: &str) -> u32 {
        self.destinations.get(name).map_or(0, |d| d.bitrate_kbps())
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

fn dir_name(dir: &std::path::Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Everything the capture needs, chosen from the config and this box's
/// GStreamer registry. Returns the settings and the encoder's name.
pub fn capture_settings(config: &Config) -> Result<(CaptureSettings, String)> {
    crate::media::init()?;
    let video_source =
        VideoSource::parse(&config.video.source).map_err(|e| anyhow!("video.source: {e}"))?;
    let audio_source =
        AudioSource::parse(&config.audio.source).map_err(|e| anyhow!("audio.source: {e}"))?;
    let choice = encoder::choose(&config.video.encoder, &encoder::registry_available)
        .map_err(|e| anyhow!("video.encoder: {e}"))?;
    if config.video.passthrough {
        tracing::info!(
            "video.passthrough: the camera's own H.264 goes out as it is; no slate, no lower third"
        );
    } else {
        tracing::info!(encoder = %choice.element, reason = %choice.reason, "encoder chosen");
    }
    let s = encoder::settings(&choice.element, &config.video);
    let enc = EncoderPlan {
        input_caps: s.input_caps,
        element_desc: s.element_desc,
        output_caps: s.output_caps,
        bitrate_control: s.bitrate_control,
    };
    let aac = plan::aac_encoder(&config.audio, &encoder::registry_available)
        .ok_or_else(|| anyhow!("no AAC encoder: install gstreamer1.0-libav"))?;
    let raw = plan::raw_format(&config.video, &enc);
    Ok((
        CaptureSettings {
            video_source,
            audio_source,
            raw,
            encoder: enc,
            aac,
            slate_text: config.live.slate_text.clone(),
            slate_image: config.live.slate_image.clone().filter(|p| {
                let ok = Path::new(p).is_file();
                if !ok {
                    tracing::warn!(path = %p, "live.slate_image is not a readable file; the text slate is used");
                }
                ok
            }),
            audio_offset_ms: config.audio.offset_ms,
            passthrough: config.video.passthrough,
            camera_head: crate::media::camera::camera_head,
        },
        if config.video.passthrough {
            "passthrough".to_string()
        } else {
            choice.element
        },
    ))
}
