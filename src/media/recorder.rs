//! The local recorder: a consumer pipeline like a destination, writing MPEG-TS
//! segments with splitmuxsink. MPEG-TS because a file cut by a power failure
//! is still playable up to its last whole packet; a new segment every
//! `recording.segment_s` so that at most one segment is ever incomplete.
//!
//! A full disk or a vanished directory fails this pipeline only: the stream
//! goes on, the driver reports `RecorderError` and starts it again later.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_utils::streamproducer::ConsumerSettings;

use super::capture::Capture;
use super::consumer::Consumer;
use super::{EventTx, MediaEvent};

pub struct Recorder {
    /// Its pipeline, fed from the capture like a destination's.
    consumer: Consumer,
    events: EventTx,
}

impl Recorder {
    /// Start recording into `show_dir` (created if missing), the first
    /// segment numbered `first_segment` (after those already there).
    pub fn start(
        show_dir: &Path,
        first_segment: u32,
        segment_s: u32,
        capture: &Capture,
        bounds: super::destination::QueueBounds,
        events: EventTx,
    ) -> Result<Recorder> {
        std::fs::create_dir_all(show_dir)
            .with_context(|| format!("creating the recording folder {}", show_dir.display()))?;
        let pipeline = gst::Pipeline::with_name("recorder");
        let make = |factory: &str| {
            gst::ElementFactory::make(factory)
                .build()
                .with_context(|| format!("element {factory} is missing"))
        };
        let video_src = gst_app::AppSrc::builder().name("video").build();
        let audio_src = gst_app::AppSrc::builder().name("audio").build();
        let vq = make("queue")?;
        let aq = make("queue")?;
        let aparse = make("aacparse")?;
        let muxer = make("mpegtsmux")?;
        let split = gst::ElementFactory::make("splitmuxsink")
            .property("location", crate::recording::segment_pattern(show_dir))
            .property("max-size-time", u64::from(segment_s) * 1_000_000_000)
            .property("send-keyframe-requests", true)
            .property(
                "start-index",
                i32::try_from(first_segment).unwrap_or(i32::MAX),
            )
            .property("muxer", &muxer)
            .build()
            .context("element splitmuxsink is missing")?;
        pipeline
            .add_many([
                video_src.upcast_ref(),
                &vq,
                audio_src.upcast_ref(),
                &aq,
                &aparse,
                &split,
            ])
            .context("assembling the recorder")?;
        gst::Element::link_many([video_src.upcast_ref(), &vq]).context("linking video")?;
        gst::Element::link_many([audio_src.upcast_ref(), &aq, &aparse]).context("linking audio")?;
        let vpad = split
            .request_pad_simple("video")
            .ok_or_else(|| anyhow!("splitmuxsink has no video pad"))?;
        vq.static_pad("src")
            .ok_or_else(|| anyhow!("queue without src"))?
            .link(&vpad)
            .map_err(|e| anyhow!("linking video to the recorder: {e:?}"))?;
        let apad = split
            .request_pad_simple("audio_%u")
            .ok_or_else(|| anyhow!("splitmuxsink has no audio pad"))?;
        aparse
            .static_pad("src")
            .ok_or_else(|| anyhow!("aacparse without src"))?
            .link(&apad)
            .map_err(|e| anyhow!("linking audio to the recorder: {e:?}"))?;

        let mut consumer = Consumer::new(pipeline, capture);
        {
            let tx = events.clone();
            let closed = events.clone();
            consumer.watch(
                move |e| {
                    tracing::error!(error = %e, "recorder failed");
                    let _ = tx.send(MediaEvent::RecorderError(e.failure()));
                },
                // Each closed segment is the moment to apply the disk budget.
                move |s| {
                    if s.name() == "splitmuxsink-fragment-closed" {
                        let _ = closed.send(MediaEvent::SegmentClosed);
                    }
                },
            );
        }

        // The recorder may lag behind a slow SD card for longer than a network
        // destination may; it still has a bound.
        let settings = ConsumerSettings {
            max_buffer: 0,
            max_bytes: gst::format::Bytes::from_u64(bounds.bytes),
            max_time: gst::ClockTime::from_mseconds(bounds.ms),
            event_types: Vec::new(),
        };
        consumer.attach(capture.video(), video_src, settings.clone())?;
        consumer.attach(capture.audio(), audio_src, settings)?;
        consumer
            .play(capture, "recorder")
            .map_err(|_| anyhow!("the recorder would not start"))?;
        Ok(Recorder { consumer, events })
    }

    /// Close the last segment cleanly (EOS finalizes it), then tear down.
    /// `RecorderStopped` follows. `wait` blocks the caller until then (for
    /// shutdown, where the process is about to exit).
    pub fn stop(self, wait: bool) {
        let Recorder { consumer, events } = self;
        // splitmuxsink finalizes the last segment on EOS.
        consumer.end(wait, move || {
            let _ = events.send(MediaEvent::RecorderStopped);
        });
    }
}
