//! The encoder inside the running encode pipeline: what watches its input
//! (snapshots, frame decimation), how its failure is told apart from the
//! pipeline's, and how another encoder is put in its place within a show.
//!
//! The swap keeps the pipeline object, its two appsinks and their
//! `StreamProducer`s, so every destination and the recorder stay linked and
//! connected: the pipeline goes to NULL, the elements between
//! `pre_encoder` (videoconvert) and `post_encoder` (h264parse) are replaced
//! by a bin of the new encoder's fragments, and it plays again on its old
//! base time, so running times (the buffers' timestamps downstream) go on
//! from where they were. The new encoder's first frame is a keyframe with
//! its SPS/PPS (h264parse `config-interval=-1`); each destination's
//! h264parse puts the new codec data in its caps and flvmux sends a new
//! sequence header, which RTMP servers and players take.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;

use super::super::bus::BusError;
use super::super::controls::EncodeControls;
use super::super::encoder::ENCODER_ELEMENT_NAME;
use super::super::plan::EncoderPlan;
use super::{Capture, EventTx, Health, MediaEvent};

/// Names `plan::encode_pipeline` gives the elements either side of the encoder.
const PRE: &str = "pre_encoder";
const POST: &str = "post_encoder";
/// The picture branch's source (`intervideosrc`).
const VIDEO_SOURCE: &str = "camera_in";
/// The bin a swap puts between them.
const BIN: &str = "encoder_bin";

/// A buffer a probe keeps from going on is answered `Handled`, not `Drop`:
/// the bindings have already taken (and free) the buffer, and GStreamer 1.22
/// then unrefs the NULL left behind on `Drop`, a CRITICAL on stderr per
/// frame (30 a second all day in standby). `Handled` tells it the probe
/// consumed the buffer.
///
/// In front of the encoder, its door: keep the last raw frame (a reference,
/// no copy) for JPEG snapshots; count every frame that reaches it
/// (`frames_in`, the watchdog's proof in standby); drop every frame while
/// the door is closed (standby: the encoder does no work); and drop frames
/// when adaptive bitrate asks for a lower frame rate (1 of every
/// `decimation` frames is kept). False when there is no encoder
/// (passthrough).
pub(super) fn watch_encoder_input(
    encoder: Option<&gst::Element>,
    last_raw: &Arc<Mutex<Option<gst::Sample>>>,
    decimation: &Arc<AtomicU64>,
    encoding: &Arc<AtomicBool>,
    health: &Arc<Health>,
) -> bool {
    let Some(pad) = encoder.and_then(|e| e.static_pad("sink")) else {
        return false;
    };
    let last = last_raw.clone();
    let keep_one_in = decimation.clone();
    let open = encoding.clone();
    let health = health.clone();
    let seen = AtomicU64::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        health.frames_in.fetch_add(1, Ordering::Relaxed);
        let open = open.load(Ordering::Relaxed);
        let seen = seen.fetch_add(1, Ordering::Relaxed) + 1;
        let n = keep_one_in.load(Ordering::Relaxed).max(1);
        if open && n > 1 && !seen.is_multiple_of(n) {
            return gst::PadProbeReturn::Handled;
        }
        if let Some(buffer) = info.buffer() {
            let sample = gst::Sample::builder()
                .buffer(buffer)
                .caps_if_some(pad.current_caps().as_ref())
                .build();
            if let Ok(mut slot) = last.lock() {
                *slot = Some(sample);
            }
        }
        if open {
            gst::PadProbeReturn::Ok
        } else {
            gst::PadProbeReturn::Handled
        }
    });
    true
}

/// The encode pipeline's bus: an error of the encoder element is
/// `EncoderFailed` (with the element's factory name), once; the errors that
/// follow from it are dropped until a new encoder is in place (`down`
/// cleared). An encoder that cannot open (`not-negotiated`, as
/// avenc_h264_omx without its OpenMAX library) or fails a frame without a
/// word of its own stops the picture's branch, and only the branch's
/// source (`camera_in`) says so, with "Internal data stream error": that is
/// the encoder's failure too, as the other elements of that branch
/// (overlays, scaler, converter, parser) have nothing to fail on at run
/// time. Any other error is the capture's.
pub(super) fn watch_encode_bus(encode: &gst::Pipeline, events: EventTx, down: Arc<AtomicBool>) {
    // Weak: the pipeline holds its bus, which holds this handler.
    let pipeline = encode.downgrade();
    super::super::bus::watch(encode, move |msg| {
        let gst::MessageView::Error(err) = msg.view() else {
            return;
        };
        let e = BusError::from_message(err);
        let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
        let stopped_branch = src == VIDEO_SOURCE
            && err.error().kind::<gst::StreamError>() == Some(gst::StreamError::Failed);
        let encoder = (src == ENCODER_ELEMENT_NAME || stopped_branch)
            .then(|| pipeline.upgrade()?.by_name(ENCODER_ELEMENT_NAME)?.factory())
            .flatten()
            .map(|f| f.name().to_string());
        if down.load(Ordering::SeqCst) {
            return tracing::debug!(error = %e, "after the encoder's failure");
        }
        match encoder {
            Some(element) => {
                down.store(true, Ordering::SeqCst);
                tracing::error!(error = %e, element, "the encoder failed");
                let _ = events.send(MediaEvent::EncoderFailed {
                    element,
                    failure: e.failure(),
                });
            }
            None => {
                tracing::error!(error = %e, "encode pipeline failed");
                let _ = events.send(MediaEvent::CaptureFailed(e.failure()));
            }
        }
    });
}

impl Capture {
    /// Put `plan`'s encoder in place of the current one, keeping the
    /// pipeline, its appsinks and everything fed from them (see the module
    /// comment). The picture size and frame rate go back to the configured
    /// ones, as the core's bitrate controller starts over.
    pub fn swap_encoder(&mut self, plan: EncoderPlan) -> Result<()> {
        if self.settings.passthrough {
            return Err(anyhow!("passthrough has no encoder to change"));
        }
        let base = self.encode.base_time();
        self.encode
            .set_state(gst::State::Null)
            .map_err(|_| anyhow!("the encode pipeline would not stop"))?;
        let pre = self.encode.by_name(PRE).context("no pre_encoder")?;
        let post = self.encode.by_name(POST).context("no post_encoder")?;
        // Walk from pre to post: the original elements, or the bin of an
        // earlier swap.
        let mut old = Vec::new();
        let mut pad = pre.static_pad("src");
        while let Some(el) = pad
            .as_ref()
            .and_then(|p| p.peer())
            .and_then(|p| p.parent_element())
        {
            if el == post {
                break;
            }
            pad = el.static_pad("src");
            old.push(el);
        }
        // A bin an earlier swap added and could not link is not in the walk.
        old.extend(self.encode.by_name(BIN).filter(|b| !old.contains(b)));
        for el in &old {
            self.encode
                .remove(el)
                .map_err(|_| anyhow!("could not remove {}", el.name()))?;
        }
        // A description cannot start with bare caps: capsfilters.
        let desc = format!(
            "capsfilter caps=\"{}\" ! {} ! capsfilter caps=\"{}\"",
            plan.input_caps, plan.element_desc, plan.output_caps
        );
        let bin = gst::parse::bin_from_description(&desc, true)
            .with_context(|| format!("building the new encoder ({desc})"))?;
        bin.set_property("name", BIN);
        let bin = bin.upcast::<gst::Element>();
        self.encode.add(&bin)?;
        gst::Element::link_many([&pre, &bin, &post]).context("linking the new encoder")?;

        self.controls = EncodeControls::find(
            &self.encode,
            plan.bitrate_control.clone(),
            (self.settings.raw.width, self.settings.raw.height),
        );
        self.controls.set_scale_step(0);
        self.decimation.store(1, Ordering::Relaxed);
        watch_encoder_input(
            self.controls.encoder(),
            &self.last_raw,
            &self.decimation,
            &self.encoding,
            &self.health,
        );
        self.settings.encoder = plan;
        self.encoder_down.store(false, Ordering::SeqCst);
        // The old base time: buffers' running times go on, and the consumers
        // (which share it) see no jump back.
        self.encode.set_start_time(gst::ClockTime::NONE);
        if let Some(base) = base {
            self.encode.set_base_time(base);
        }
        self.encode
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow!("the encode pipeline would not start with the new encoder"))?;
        Ok(())
    }

    /// For tests and the sim (`encoder fail`): the encoder element posts an
    /// error as a hardware encoder does when its device stops
    /// (`STREAM_ERROR_ENCODE`, "Failed to process frame" in v4l2h264enc).
    pub fn simulate_encoder_failure(&self) {
        match self.controls.encoder() {
            Some(enc) => {
                gst::element_error!(enc, gst::StreamError::Encode, ["simulated encoder failure"]);
            }
            None => tracing::warn!("`encoder fail` from the sim, but nothing is encoded here"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::{AudioConfig, VideoConfig, X264Preset};
    use crate::media::encoder;
    use crate::media::plan::{self, AudioSource, VideoSource};

    fn video() -> VideoConfig {
        VideoConfig {
            width: 320,
            height: 240,
            framerate: 30,
            x264_preset: X264Preset::Ultrafast,
            ..VideoConfig::default()
        }
    }

    fn plan_for(element: &str) -> EncoderPlan {
        let s = encoder::settings(element, &video());
        EncoderPlan {
            input_caps: s.input_caps,
            element_desc: s.element_desc,
            output_caps: s.output_caps,
            bitrate_control: s.bitrate_control,
        }
    }

    fn frames_out(c: &Capture) -> u64 {
        c.health().frames_out.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `n` more frames left the encoder.
    fn more_frames(c: &Capture, n: u64) -> bool {
        let from = frames_out(c);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if frames_out(c) >= from + n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn factory(c: &Capture) -> String {
        c.encode
            .by_name(ENCODER_ELEMENT_NAME)
            .and_then(|e| e.factory())
            .map(|f| f.name().to_string())
            .unwrap_or_default()
    }

    /// Swapped twice (the second time the bin of the first swap goes): the
    /// appsink goes on receiving frames from each new encoder, on the old
    /// base time, with no error; a failure of the new one is told once,
    /// named by its factory.
    #[test]
    fn the_encoder_is_swapped_twice_and_frames_go_on() {
        crate::media::init_for_tests();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let enc = plan_for("x264enc");
        let settings = super::super::CaptureSettings {
            video_source: VideoSource::Test,
            audio_source: AudioSource::Test,
            raw: plan::raw_format(&video(), &enc),
            encoder: enc,
            aac: plan::aac_encoder(&AudioConfig::default(), &encoder::registry_available)
                .expect("an AAC encoder"),
            slate_text: "back soon".into(),
            slate_image: None,
            audio_offset_ms: 0,
            passthrough: false,
            camera_head: crate::media::camera::camera_head,
        };
        let mut c = Capture::new(settings, tx).expect("capture");
        assert!(more_frames(&c, 10), "no frames from x264enc");
        let base = c.encode.base_time();
        for element in ["openh264enc", "x264enc"] {
            c.swap_encoder(plan_for(element)).expect("swap");
            assert_eq!(factory(&c), element);
            assert!(more_frames(&c, 10), "no frames from {element}");
            assert_eq!(c.encode.base_time(), base, "running times go on");
        }
        let mut bins = 0;
        for el in c.encode.iterate_elements().into_iter().flatten() {
            bins += usize::from(el.name() == BIN);
        }
        assert_eq!(bins, 1, "the first swap's bin is gone");
        while let Ok(ev) = rx.try_recv() {
            assert!(
                !matches!(
                    ev,
                    MediaEvent::CaptureFailed(_) | MediaEvent::EncoderFailed { .. }
                ),
                "{ev:?}"
            );
        }
        c.simulate_encoder_failure();
        c.simulate_encoder_failure();
        std::thread::sleep(Duration::from_millis(200));
        let mut told = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            if let MediaEvent::EncoderFailed { element, .. } = ev {
                told.push(element);
            }
        }
        assert_eq!(told, ["x264enc"], "told once");

        // A real encoder that cannot open, swapped in: its failure is told
        // (by the branch's source, named for the encoder), and a working
        // one swapped in after it runs again.
        c.swap_encoder(plan_for("avenc_h264_omx"))
            .expect("the swap itself goes through");
        let until = Instant::now() + Duration::from_secs(10);
        let mut failed = None;
        while failed.is_none() && Instant::now() < until {
            match rx.try_recv() {
                Ok(MediaEvent::EncoderFailed { element, failure }) => {
                    failed = Some((element, failure.text))
                }
                Ok(MediaEvent::CaptureFailed(f)) => panic!("taken for the capture's: {f:?}"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let (element, text) = failed.expect("avenc_h264_omx's failure is told");
        assert_eq!(element, "avenc_h264_omx");
        assert!(text.contains("Internal data stream error"), "{text}");
        c.swap_encoder(plan_for("x264enc")).expect("swap back");
        assert!(more_frames(&c, 10), "no frames after the recovery");
        c.shutdown();
    }
}
