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
use super::{Capture, EventTx, MediaEvent};

/// Names `plan::encode_pipeline` gives the elements either side of the encoder.
const PRE: &str = "pre_encoder";
const POST: &str = "post_encoder";

/// In front of the encoder: keep the last raw frame (a reference, no copy)
/// for JPEG snapshots, and drop frames when adaptive bitrate asks for a
/// lower frame rate (1 of every `decimation` frames is kept).
pub(super) fn watch_encoder_input(
    encoder: Option<&gst::Element>,
    last_raw: &Arc<Mutex<Option<gst::Sample>>>,
    decimation: &Arc<AtomicU64>,
) {
    let Some(pad) = encoder.and_then(|e| e.static_pad("sink")) else {
        return;
    };
    let last = last_raw.clone();
    let keep_one_in = decimation.clone();
    let seen = AtomicU64::new(0);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let seen = seen.fetch_add(1, Ordering::Relaxed) + 1;
        let n = keep_one_in.load(Ordering::Relaxed).max(1);
        if n > 1 && !seen.is_multiple_of(n) {
            return gst::PadProbeReturn::Drop;
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
        gst::PadProbeReturn::Ok
    });
}

/// The encode pipeline's bus: an error of the encoder element is
/// `EncoderFailed` (with the element's factory name), once; the errors that
/// follow from it (the source's "Internal data stream error") are dropped
/// until a new encoder is in place (`down` cleared). Any other error is the
/// capture's.
pub(super) fn watch_encode_bus(encode: &gst::Pipeline, events: EventTx, down: Arc<AtomicBool>) {
    super::super::bus::watch(encode, move |msg| {
        let gst::MessageView::Error(err) = msg.view() else {
            return;
        };
        let e = BusError::from_message(err);
        let encoder = msg
            .src()
            .and_then(|s| s.downcast_ref::<gst::Element>())
            .filter(|el| el.name() == ENCODER_ELEMENT_NAME)
            .and_then(|el| el.factory())
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
        watch_encoder_input(self.controls.encoder(), &self.last_raw, &self.decimation);
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
