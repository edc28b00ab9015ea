//! The capture side: camera and mic pipelines feeding the encode pipeline,
//! which ends in the two appsinks every destination and the recorder read from
//! (see the drawing in [`super::plan`]).
//!
//! The encode pipeline runs from start to exit. The camera and mic pipelines
//! are rebuilt alone when they fail, stall or (for a clip) reach its end, so a
//! cheap camera that drops off the USB bus never stops the stream: the viewers
//! see the slate meanwhile.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_utils::StreamProducer;

use super::bus::{self, BusError};
use super::controls::EncodeControls;
use super::plan::{self, AudioSource, EncoderPlan, RawFormat, VideoSource};
pub use super::snapshot::Snapshotter;

mod clip;
#[cfg(test)]
mod door_tests;
mod encoder_swap;
mod mic;
mod passthrough;
use super::{EventTx, Failure, Fault, MediaEvent};

/// What [`Capture::start_camera`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraStart {
    /// The pipeline is built and starting; `CaptureReady` follows.
    Started,
    /// A device is being looked for; `MediaEvent::CameraHead` follows.
    Discovering,
}

/// No camera frame for this long while the camera pipeline runs: the camera is lost.
pub const STALL_AFTER: Duration = Duration::from_secs(2);

/// What the capture needs to know, resolved from the config by the driver.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub video_source: VideoSource,
    pub audio_source: AudioSource,
    pub raw: RawFormat,
    pub encoder: EncoderPlan,
    pub aac: String,
    pub slate_text: String,
    /// An image shown instead of the text while the camera is lost.
    pub slate_image: Option<String>,
    /// Applied to the sound (positive delays it), for cameras whose picture lags.
    pub audio_offset_ms: i32,
    /// Pass the camera's own H.264 through (no slate, no lower third).
    pub passthrough: bool,
    /// Chooses the camera head for a V4L2 device (mode selection lives in
    /// `modes`); with `true`, it must be the camera's H.264 or an error.
    pub camera_head: fn(&str, &RawFormat, bool) -> Result<String>,
}

/// Counters the probes update from streaming threads; read by the driver.
#[derive(Debug, Default)]
pub struct Health {
    /// Encoded video frames handed to the appsink since start.
    pub frames_out: AtomicU64,
    /// Raw frames that reached the encoder's door, open or closed.
    pub frames_in: AtomicU64,
    /// Frames the camera delivered since start.
    pub camera_frames: AtomicU64,
    /// Monotonic time of the last camera frame, in ns since `epoch`.
    last_camera_ns: AtomicU64,
    /// The current camera pipeline delivered its first frame.
    camera_started: AtomicBool,
}

pub struct Capture {
    settings: CaptureSettings,
    encode: gst::Pipeline,
    /// The encode pipeline's elements the driver turns, found once.
    controls: EncodeControls,
    /// Passthrough: where the camera's access units go in.
    camera_h264: Option<gst_app::AppSrc>,
    video: StreamProducer,
    audio: StreamProducer,
    camera: Option<gst::Pipeline>,
    mic: Option<gst::Pipeline>,
    /// Bumped at every camera rebuild so late messages of an old pipeline are ignored.
    camera_gen: Arc<AtomicU64>,
    camera_lost: bool,
    /// A fault the sim injected; it outlives camera rebuilds, as a dead camera would.
    fault: Option<CameraFault>,
    /// The sim unplugged the microphone: every reopen fails until `mic resume`.
    mic_gone: bool,
    /// Bumped at every camera start and stop: a device discovery that comes
    /// back (`MediaEvent::CameraHead`) for an older one is ignored.
    discovery: u64,
    /// The same for the mic (`MediaEvent::MicFound`).
    mic_discovery: u64,
    health: Arc<Health>,
    epoch: Instant,
    last_raw: Arc<Mutex<Option<gst::Sample>>>,
    decimation: Arc<AtomicU64>,
    /// The encoder's door is open (see [`Capture::set_encoding`]).
    encoding: Arc<AtomicBool>,
    /// The encoder failed; set until another is swapped in (`encoder_swap`).
    encoder_down: Arc<AtomicBool>,
    video_channel: String,
    audio_channel: String,
    events: EventTx,
}

static CHANNEL_SEQ: AtomicU64 = AtomicU64::new(0);

impl Capture {
    /// Build and start the encode pipeline; the camera and mic start with
    /// [`Capture::start_camera`] and [`Capture::start_mic`].
    pub fn new(settings: CaptureSettings, events: EventTx) -> Result<Capture> {
        // Inter channels are per process; a sequence keeps two captures in one
        // process (tests) apart.
        let seq = CHANNEL_SEQ.fetch_add(1, Ordering::Relaxed);
        let video_channel = format!("farmcast-video-{}-{seq}", std::process::id());
        let audio_channel = format!("farmcast-audio-{}-{seq}", std::process::id());
        let desc = if settings.passthrough {
            plan::passthrough_pipeline(&settings.aac, &audio_channel)
        } else {
            plan::encode_pipeline(
                &settings.raw,
                &settings.encoder,
                &settings.aac,
                &video_channel,
                &audio_channel,
                &settings.slate_text,
                settings.slate_image.as_deref(),
            )
        };
        tracing::debug!(pipeline = %desc, "encode pipeline");
        let encode = parse_pipeline(&desc, "encode")?;
        // All pipelines share the system clock, so timestamps line up across
        // the camera, the encoder and every destination.
        encode.use_clock(Some(&gst::SystemClock::obtain()));

        let video_sink = appsink(&encode, "video")?;
        let audio_sink = appsink(&encode, "audio")?;
        let health = Arc::new(Health::default());
        count_buffers(&video_sink.static_pad("sink"), &health, |h| &h.frames_out);

        shift_sound(&encode, settings.audio_offset_ms);

        // In front of the encoder (its door): snapshots, standby, frame
        // decimation (`encoder_swap::watch_encoder_input`).
        let last_raw = Arc::new(Mutex::new(None));
        let decimation = Arc::new(AtomicU64::new(1));
        let encoding = Arc::new(AtomicBool::new(true));
        let controls = EncodeControls::find(
            &encode,
            settings.encoder.bitrate_control.clone(),
            (settings.raw.width, settings.raw.height),
        );
        let watched = encoder_swap::watch_encoder_input(
            controls.encoder(),
            &last_raw,
            &decimation,
            &encoding,
            &health,
        );
        if !watched {
            // Passthrough: no encoder, no door; what comes in goes out.
            count_buffers(&video_sink.static_pad("sink"), &health, |h| &h.frames_in);
        }
        sound_door(&encode, &encoding);

        let encoder_down = Arc::new(AtomicBool::new(false));
        encoder_swap::watch_encode_bus(&encode, events.clone(), encoder_down.clone());

        // The sources are live and paced by the clock already; syncing the
        // appsinks again would only add a wait (and a wake-up) per buffer.
        let unsynced = gstreamer_utils::streamproducer::ProducerSettings { sync: false };
        let video = StreamProducer::with(&video_sink, unsynced.clone());
        let audio = StreamProducer::with(&audio_sink, unsynced);
        encode.set_state(gst::State::Playing).map_err(|_| {
            anyhow!("the encode pipeline would not start (see the log for the element)")
        })?;

        let camera_h264 = encode
            .by_name("camera_h264")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok());
        if settings.passthrough && camera_h264.is_none() {
            return Err(anyhow!("no camera_h264 appsrc in the passthrough pipeline"));
        }
        Ok(Capture {
            settings,
            encode,
            controls,
            camera_h264,
            video,
            audio,
            camera: None,
            mic: None,
            camera_gen: Arc::new(AtomicU64::new(0)),
            camera_lost: false,
            fault: None,
            mic_gone: false,
            discovery: 0,
            mic_discovery: 0,
            health,
            epoch: Instant::now(),
            last_raw,
            decimation,
            encoding,
            encoder_down,
            video_channel,
            audio_channel,
            events,
        })
    }

    /// (Re)build the camera pipeline. `CaptureReady` follows at its first frame.
    ///
    /// A device camera (`auto`, `/dev/videoN`) is looked for off the caller's
    /// thread (GStreamer's device monitor takes a while): `Discovering` is
    /// returned at once, and `MediaEvent::CameraHead` brings the answer back
    /// for [`Capture::open_discovered`]. The old pipeline is torn down off the
    /// caller's thread too (before the discovery, which frees the device).
    pub fn start_camera(&mut self) -> Result<CameraStart> {
        let old = self.take_camera();
        if self.fault == Some(CameraFault::Fail) {
            super::camera::teardown(old);
            return Err(anyhow!("the camera is gone (simulated)"));
        }
        let passthrough = self.settings.passthrough;
        if matches!(
            self.settings.video_source,
            VideoSource::V4l2(_) | VideoSource::Auto
        ) {
            super::camera::discover_head(
                old,
                self.settings.video_source.clone(),
                self.settings.raw.clone(),
                passthrough,
                self.settings.camera_head,
                self.discovery,
                self.events.clone(),
            );
            return Ok(CameraStart::Discovering);
        }
        // A synthetic source shares no device with the old pipeline.
        super::camera::teardown(old);
        let clip = match &self.settings.video_source {
            // A clip that cannot be opened here goes to y4mdec, whose error
            // reaches the show as any camera's would.
            VideoSource::File(path) if !passthrough && plan::is_y4m(path) => {
                clip::Clip::open(path).ok().flatten()
            }
            _ => None,
        };
        let head = match (&self.settings.video_source, &clip) {
            (_, Some(clip)) => clip.head(),
            (VideoSource::Test, None) if passthrough => {
                plan::synthetic_h264_head(&self.settings.raw)
            }
            (source, None) => plan::synthetic_video_head(source)
                .ok_or_else(|| anyhow!("no head for {source:?}"))?,
        };
        self.open_camera(head, clip)?;
        Ok(CameraStart::Started)
    }

    /// The discovery started by [`Capture::start_camera`] came back: open
    /// the camera it found. `None` when a newer start or stop overtook it.
    pub fn open_discovered(
        &mut self,
        discovery: u64,
        head: Result<String, String>,
    ) -> Option<Result<()>> {
        if discovery != self.discovery || self.camera.is_some() {
            return None;
        }
        if self.fault == Some(CameraFault::Fail) {
            return Some(Err(anyhow!("the camera is gone (simulated)")));
        }
        Some(
            head.map_err(|e| anyhow!(e))
                .and_then(|h| self.open_camera(h, None)),
        )
    }

    fn open_camera(&mut self, head: String, clip: Option<clip::Clip>) -> Result<()> {
        let passthrough = self.settings.passthrough;
        let desc = if passthrough {
            plan::passthrough_camera_pipeline(&head)
        } else {
            plan::camera_pipeline(&head, &self.settings.raw, &self.video_channel)
        };
        tracing::info!(pipeline = %desc, "camera pipeline");
        let camera = parse_pipeline(&desc, "camera")?;
        camera.use_clock(Some(&gst::SystemClock::obtain()));
        if passthrough {
            self.feed_passthrough(&camera)?;
        }
        if let Some(clip) = clip {
            clip::feed(&camera, clip)?;
        }

        let gen = self.camera_gen.fetch_add(1, Ordering::SeqCst) + 1;
        self.health.camera_started.store(false, Ordering::SeqCst);
        // The picture's sink: a clip's sound goes to a fakesink beside it.
        let sink = camera
            .iterate_sinks()
            .into_iter()
            .flatten()
            .find(|e| {
                e.factory()
                    .is_some_and(|f| matches!(f.name().as_str(), "intervideosink" | "appsink"))
            })
            .ok_or_else(|| anyhow!("camera pipeline has no picture sink"))?;
        {
            let health = self.health.clone();
            let epoch = self.epoch;
            let tx = self.events.clone();
            let current = self.camera_gen.clone();
            if let Some(pad) = sink.static_pad("sink") {
                pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    if current.load(Ordering::SeqCst) == gen {
                        health.camera_frames.fetch_add(1, Ordering::Relaxed);
                        health
                            .last_camera_ns
                            .store(epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        if !health.camera_started.swap(true, Ordering::SeqCst) {
                            let _ = tx.send(MediaEvent::CaptureReady);
                        }
                    }
                    gst::PadProbeReturn::Ok
                });
            }
        }
        {
            let tx = self.events.clone();
            let current = self.camera_gen.clone();
            let is_file = matches!(self.settings.video_source, VideoSource::File(_));
            bus::watch(&camera, move |msg| {
                if current.load(Ordering::SeqCst) != gen {
                    return;
                }
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        let e = BusError::from_message(err);
                        tracing::warn!(error = %e, "camera pipeline failed");
                        let _ = tx.send(MediaEvent::CameraLost(e.failure()));
                    }
                    gst::MessageView::Eos(_) if is_file => {
                        let _ = tx.send(MediaEvent::CameraLost(Failure::new(
                            Fault::EndOfClip,
                            "end of clip",
                        )));
                    }
                    gst::MessageView::Eos(_) => {
                        let _ = tx.send(MediaEvent::CameraLost(Failure::new(
                            Fault::EndOfStream,
                            "the camera ended its stream",
                        )));
                    }
                    _ => {}
                }
            });
        }
        // A stalled camera opens but delivers nothing.
        let target = if self.fault == Some(CameraFault::Stall) {
            gst::State::Paused
        } else {
            gst::State::Playing
        };
        camera
            .set_state(target)
            .map_err(|_| anyhow!("the camera would not start ({head})"))?;
        self.camera = Some(camera);
        Ok(())
    }

    /// Whether the current camera source is a clip (whose end is not a fault).
    pub fn is_clip(&self) -> bool {
        matches!(self.settings.video_source, VideoSource::File(_))
    }

    /// Stop the camera; its pipeline is torn down off the caller's thread.
    pub fn stop_camera(&mut self) {
        let old = self.take_camera();
        super::camera::teardown(old);
    }

    fn take_camera(&mut self) -> Option<gst::Pipeline> {
        self.discovery = self.discovery.wrapping_add(1);
        let camera = self.camera.take()?;
        // Invalidate the generation first so its teardown messages are ignored.
        self.camera_gen.fetch_add(1, Ordering::SeqCst);
        Some(camera)
    }

    /// Called on the driver's tick: a running camera that stopped delivering
    /// frames is reported lost once.
    pub fn check_stall(&mut self) -> Option<MediaEvent> {
        if self.camera.is_none() || self.camera_lost {
            return None;
        }
        if !self.health.camera_started.load(Ordering::SeqCst) {
            return None;
        }
        let last = Duration::from_nanos(self.health.last_camera_ns.load(Ordering::Relaxed));
        let age = self.epoch.elapsed().saturating_sub(last);
        (age > STALL_AFTER).then(|| {
            MediaEvent::CameraLost(Failure::new(
                Fault::Stalled,
                format!("no frame from the camera for {:.1} s", age.as_secs_f32()),
            ))
        })
    }

    /// The driver marks the camera lost or back, so that a stall is reported once.
    pub fn set_camera_lost(&mut self, lost: bool) {
        self.camera_lost = lost;
    }

    /// For tests and the sim: pause the camera pipeline as a camera that stops
    /// delivering would, or make it fail.
    pub fn simulate_camera(&mut self, fault: CameraFault) {
        self.fault = (fault != CameraFault::Resume).then_some(fault);
        let Some(camera) = &self.camera else { return };
        match fault {
            CameraFault::Stall => {
                let _ = camera.set_state(gst::State::Paused);
            }
            CameraFault::Resume => {
                let _ = camera.set_state(gst::State::Playing);
            }
            CameraFault::Fail => {
                let el = camera.upcast_ref::<gst::Element>();
                gst::element_error!(el, gst::ResourceError::Read, ["simulated camera failure"]);
                // A vanished camera delivers nothing more (torn down off the
                // caller's thread; the pipeline stays ours until the restart).
                let camera = camera.clone();
                std::thread::spawn(move || {
                    let _ = camera.set_state(gst::State::Null);
                });
            }
        }
    }

    pub fn video(&self) -> &StreamProducer {
        &self.video
    }

    pub fn audio(&self) -> &StreamProducer {
        &self.audio
    }

    /// The clock and base time consumer pipelines must share so the buffers'
    /// timestamps (running time of the encode pipeline) mean the same there.
    pub fn timing(&self) -> (gst::Clock, gst::ClockTime) {
        let clock = self.encode.clock().unwrap_or_else(gst::SystemClock::obtain);
        (
            clock,
            self.encode.base_time().unwrap_or(gst::ClockTime::ZERO),
        )
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Change the encoder's bitrate while PLAYING; false where the encoder
    /// cannot (passthrough, or an encoder without a run-time control).
    pub fn set_bitrate(&self, kbps: u32) -> bool {
        self.controls.set_bitrate(kbps)
    }
    /// Halve the picture `step` times in front of the encoder (0 = the
    /// configured size); see `EncodeControls::set_scale_step`.
    pub fn set_scale_step(&self, step: u32) {
        self.controls.set_scale_step(step);
    }

    /// Keep one frame in `n` in front of the encoder (1 = every frame): the
    /// controlled way to fit a link that even the lowest bitrate overfills.
    pub fn set_frame_decimation(&self, n: u32) {
        self.decimation
            .store(u64::from(n.max(1)), Ordering::Relaxed);
    }

    /// Open or close the encoder's door (`appliance::MediaCmd::Encode`).
    /// Closed, no frame reaches the encoder: it does no work. Opening needs
    /// nothing else: every consumer asks for a keyframe as it starts.
    pub fn set_encoding(&self, on: bool) {
        self.encoding.store(on, Ordering::Relaxed);
    }

    /// Show or hide the slate over the picture.
    pub fn set_slate(&self, on: bool) {
        self.controls.set_slate(on);
    }

    /// Set or clear the lower third (product name, weight, price).
    pub fn set_lower_third(&self, text: Option<&str>) {
        self.controls.set_lower_third(text);
        if text.is_some() && tracing::enabled!(target: "farmcast::frames", tracing::Level::DEBUG) {
            // The last frame that entered the encoder before the text was
            // set: every later one should carry it (the tag benchmark
            // checks that at the server, against each destination's
            // `first_frame_ms`).
            let pts = self
                .last_raw
                .lock()
                .ok()
                .and_then(|s| s.as_ref().and_then(|s| s.buffer().and_then(|b| b.pts())));
            let pad = self.controls.encoder().and_then(|e| e.static_pad("sink"));
            let at = pts.zip(pad).and_then(|(pts, pad)| running_time(&pad, pts));
            tracing::debug!(
                target: "farmcast::frames",
                last_into_encoder_ms = at.map(|t| t.mseconds()),
                "lower third set"
            );
        }
    }
    /// A handle that makes JPEG snapshots of the current frame from any thread.
    pub fn snapshotter(&self) -> Snapshotter {
        Snapshotter {
            last_raw: self.last_raw.clone(),
            raw: self.settings.raw.clone(),
        }
    }

    /// Tear everything down.
    pub fn shutdown(&mut self) {
        self.stop_camera();
        if let Some(mic) = self.mic.take() {
            let _ = mic.set_state(gst::State::Null);
        }
        let _ = self.encode.set_state(gst::State::Null);
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Faults the sim can inject into the camera (the `camera stall|resume|fail` lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraFault {
    Stall,
    Resume,
    Fail,
}

pub(crate) fn parse_pipeline(desc: &str, what: &str) -> Result<gst::Pipeline> {
    let element =
        gst::parse::launch(desc).with_context(|| format!("building the {what} pipeline"))?;
    element
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("the {what} description is not a pipeline"))
}

pub(crate) fn appsink(pipeline: &gst::Pipeline, name: &str) -> Result<gst_app::AppSink> {
    pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| anyhow!("no appsink named {name}"))
}

/// `audio.offset_ms`: the sound's timestamps moved by the offset (positive
/// delays it), on the buffers themselves. A pad offset (what this was) only
/// moves the segment, and the buffers reached the appsinks with their
/// timestamps unchanged: the offset did nothing (`door_tests` measured it).
/// Sound that would land before the stream's start is dropped.
/// On the converter's input, not on `mic_in`'s output: what `mic_in`
/// stamped stays readable there, which is how `door_tests` checks the shift.
fn shift_sound(encode: &gst::Pipeline, offset_ms: i32) {
    if offset_ms == 0 {
        return;
    }
    let Some(pad) = encode.by_name("aac_in").and_then(|e| e.static_pad("sink")) else {
        return;
    };
    let shift = gst::ClockTime::from_mseconds(u64::from(offset_ms.unsigned_abs()));
    let later = offset_ms > 0;
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts() else {
            return gst::PadProbeReturn::Ok;
        };
        let moved = if later {
            Some(pts + shift)
        } else {
            pts.checked_sub(shift)
        };
        match moved {
            Some(t) => {
                buffer.make_mut().set_pts(t);
                gst::PadProbeReturn::Ok
            }
            None => gst::PadProbeReturn::Handled,
        }
    });
}

/// The AAC encoder's door, beside the picture's: closed in standby, so the
/// encoder rests (it was 15% of the standby CPU). The first buffer through
/// an opened door is marked a discontinuity: the encoder starts its
/// timestamps afresh rather than stretching the gap.
fn sound_door(encode: &gst::Pipeline, encoding: &Arc<AtomicBool>) {
    let Some(pad) = encode.by_name("aac_in").and_then(|e| e.static_pad("src")) else {
        return;
    };
    let open = encoding.clone();
    let was_open = AtomicBool::new(true);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let now_open = open.load(Ordering::Relaxed);
        if !now_open {
            was_open.store(false, Ordering::Relaxed);
            return gst::PadProbeReturn::Handled;
        }
        if !was_open.swap(true, Ordering::Relaxed) {
            if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
                buffer.make_mut().set_flags(gst::BufferFlags::DISCONT);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

fn count_buffers(pad: &Option<gst::Pad>, health: &Arc<Health>, field: fn(&Health) -> &AtomicU64) {
    if let Some(pad) = pad {
        let health = health.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            field(&health).fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
}

/// `pts` on `pad` as running time (its segment's): what the frame's
/// timestamp means on either side of the encoder, which moves the
/// timestamps themselves (x264enc adds 1000 hours) but not the running time.
pub(crate) fn running_time(pad: &gst::Pad, pts: gst::ClockTime) -> Option<gst::ClockTime> {
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = event.segment().downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(pts)
}
