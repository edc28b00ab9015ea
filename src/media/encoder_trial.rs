//! Whether an H.264 encoder really encodes here: a few frames through
//! the same fragments the encode pipeline would use
//! (`videotestsrc num-buffers=N ! caps ! encoder ! fakesink`). The
//! registry lists elements that cannot run (libav registers every FFmpeg
//! encoder, `avenc_h264_omx` among them, whether or not the OpenMAX library
//! it opens exists), and a hardware encoder can be listed while its device
//! is missing or busy.
//!
//! Contract: [`try_all`] tries each element on its own thread, all at
//! once, and waits at most [`TRIAL_TIMEOUT`] for the lot; an element that
//! hangs (a wedged driver) counts as failing and its thread is left to
//! finish on its own. The answers feed [`super::encoder::choose_working`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::encoder::{self, TrialResult};
use crate::config::VideoConfig;

/// Frames each trial encodes: enough for an encoder that opens lazily to
/// fail, few enough to cost well under a second at 720p.
pub const TRIAL_FRAMES: i32 = 5;

/// The longest the whole set of trials may take.
pub const TRIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Encode [`TRIAL_FRAMES`] frames of `video`'s size with each of `elements`,
/// in parallel; the answer for every element, failing ones with why.
pub fn try_all(elements: &[String], video: &VideoConfig) -> HashMap<String, TrialResult> {
    let (tx, rx) = mpsc::channel();
    for element in elements {
        let (tx, element, video) = (tx.clone(), element.clone(), video.clone());
        let spawned = std::thread::Builder::new()
            .name("encoder-trial".into())
            .spawn(move || {
                let result = try_one(&element, &video);
                let _ = tx.send((element, result));
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread for an encoder trial");
        }
    }
    drop(tx);
    let deadline = Instant::now() + TRIAL_TIMEOUT;
    let mut out = HashMap::new();
    while out.len() < elements.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((element, result)) => {
                out.insert(element, result);
            }
            Err(_) => break,
        }
    }
    for e in elements {
        out.entry(e.clone())
            .or_insert_with(|| Err(format!("no frames within {} s", TRIAL_TIMEOUT.as_secs())));
    }
    out
}

/// One trial, on the caller's thread.
pub fn try_one(element: &str, video: &VideoConfig) -> TrialResult {
    let s = encoder::settings(element, video);
    let (w, h) = trial_size(element, video);
    let desc = format!(
        "videotestsrc num-buffers={TRIAL_FRAMES} ! video/x-raw,width={w},height={h},framerate={f}/1 \
         ! videoconvert ! {} ! {} ! {} ! fakesink name=out",
        s.input_caps,
        s.element_desc,
        s.output_caps,
        f = video.framerate.max(1),
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| format!("cannot build it: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let encoded = Arc::new(AtomicU64::new(0));
    if let Some(pad) = pipeline.by_name("out").and_then(|e| e.static_pad("sink")) {
        let n = encoded.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            n.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
    let result = run(&pipeline, &encoded);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// The largest picture a software encoder is tried on.
const SOFTWARE_TRIAL: (u32, u32) = (320, 240);

/// The size `element` is tried at. A hardware encoder (and any element
/// this module does not know) at the configured size: it may take 320x240
/// and refuse 1080p. A software encoder has no such limit, and at 720p its
/// trial cost 0.1 core-seconds at every start (x264 and openh264 together,
/// a third of the daemon's first half-second), so at most [`SOFTWARE_TRIAL`].
fn trial_size(element: &str, video: &VideoConfig) -> (u32, u32) {
    let (w, h) = (video.width.max(16), video.height.max(16));
    match encoder::known(element) {
        Some(k) if !k.hardware => (w.min(SOFTWARE_TRIAL.0), h.min(SOFTWARE_TRIAL.1)),
        _ => (w, h),
    }
}

fn run(pipeline: &gst::Pipeline, encoded: &AtomicU64) -> TrialResult {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "would not start".to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(TRIAL_TIMEOUT.as_secs()),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .ok_or_else(|| format!("no frames within {} s", TRIAL_TIMEOUT.as_secs()))?;
    match msg.view() {
        gst::MessageView::Error(e) => {
            Err(error_words(&e.error().to_string(), e.debug().as_deref()))
        }
        _ if encoded.load(Ordering::Relaxed) == 0 => Err("it gave no frames".into()),
        _ => Ok(()),
    }
}

/// An encoder that cannot open usually says so as the source's "Internal
/// data stream error" with the reason (`not-negotiated`) in the debug
/// text's last line: keep both, short.
fn error_words(message: &str, debug: Option<&str>) -> String {
    let reason = debug
        .and_then(|d| d.lines().last())
        .and_then(|l| l.find("reason ").map(|i| l[i..].to_string()));
    let text = match reason {
        Some(r) => format!("{} ({r})", message.trim_end_matches('.')),
        None => message.to_string(),
    };
    crate::excerpt::excerpt(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> VideoConfig {
        VideoConfig {
            width: 320,
            height: 240,
            ..VideoConfig::default()
        }
    }

    /// The software encoders encode here; libav's OpenMAX encoder is listed
    /// by the registry and fails when it opens (no OpenMAX IL library on
    /// this machine), with the reason; a name nothing knows fails to build.
    #[test]
    fn listed_is_not_working() {
        crate::media::init_for_tests();
        let names: Vec<String> = ["x264enc", "openh264enc", "avenc_h264_omx", "nosuchenc"]
            .map(String::from)
            .to_vec();
        let r = try_all(&names, &small());
        assert_eq!(r["x264enc"], Ok(()));
        assert_eq!(r["openh264enc"], Ok(()));
        assert!(encoder::registry_available("avenc_h264_omx"));
        let omx = r["avenc_h264_omx"].as_ref().unwrap_err();
        assert!(omx.contains("not-negotiated"), "{omx}");
        let none = r["nosuchenc"].as_ref().unwrap_err();
        assert!(none.starts_with("cannot build it"), "{none}");
    }

    #[test]
    fn software_encoders_are_tried_small_and_hardware_at_the_configured_size() {
        let hd = VideoConfig {
            width: 1920,
            height: 1080,
            ..VideoConfig::default()
        };
        assert_eq!(trial_size("x264enc", &hd), (320, 240));
        assert_eq!(trial_size("openh264enc", &hd), (320, 240));
        for hw in [
            "v4l2h264enc",
            "vah264enc",
            "avenc_h264_omx",
            "somevendorh264enc",
        ] {
            assert_eq!(trial_size(hw, &hd), (1920, 1080), "{hw}");
        }
        // Never larger than configured, never below what encoders take.
        let tiny = VideoConfig {
            width: 176,
            height: 4,
            ..VideoConfig::default()
        };
        assert_eq!(trial_size("x264enc", &tiny), (176, 16));
    }

    #[test]
    fn error_words_keep_the_reason() {
        let debug = "../libs/gst/base/gstbasesrc.c(3132): gst_base_src_loop (): /GstPipeline:p/GstVideoTestSrc:v:\n\
                     streaming stopped, reason not-negotiated (-4)";
        assert_eq!(
            error_words("Internal data stream error.", Some(debug)),
            "Internal data stream error (reason not-negotiated (-4))"
        );
        assert_eq!(error_words("Could not encode.", None), "Could not encode.");
    }
}
