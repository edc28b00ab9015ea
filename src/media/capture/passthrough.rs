//! Passthrough: the camera's own H.264 goes into the encode pipeline as it
//! comes (no slate, no lower third, no encoder).

use std::sync::atomic::Ordering;

use anyhow::{anyhow, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::{appsink, Capture};

impl Capture {
    /// Passthrough: the camera pipeline shares the encode pipeline's base time,
    /// so its timestamps are already in the encode pipeline's running time, and
    /// its access units are pushed as they come.
    pub(super) fn feed_passthrough(&self, camera: &gst::Pipeline) -> Result<()> {
        camera.set_base_time(self.encode.base_time().unwrap_or(gst::ClockTime::ZERO));
        camera.set_start_time(gst::ClockTime::NONE);
        let out = appsink(camera, "camera_out")?;
        let into = self
            .camera_h264
            .clone()
            .ok_or_else(|| anyhow!("no camera_h264 appsrc in the passthrough pipeline"))?;
        // Keyframe requests from new consumers go on to the camera (UVC H.264
        // cameras honour them through v4l2src; the simulated one does).
        if let Some(pad) = into.static_pad("src") {
            let camera_sink = out.clone();
            let gen = self.camera_gen.load(Ordering::SeqCst) + 1;
            let current = self.camera_gen.clone();
            pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                if current.load(Ordering::SeqCst) != gen {
                    return gst::PadProbeReturn::Remove;
                }
                if let Some(ev) = info.event() {
                    if gstreamer_video::UpstreamForceKeyUnitEvent::parse(ev).is_ok() {
                        let _ = camera_sink.send_event(ev.clone());
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
        out.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    // A full encode side drops (leaky appsrc); the camera never blocks.
                    let _ = into.push_sample(&sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        Ok(())
    }
}
