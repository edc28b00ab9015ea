//! The head of the camera pipeline for a V4L2 device: ask the device what it
//! offers, choose the best mode for the configured size and rate
//! ([`super::modes::choose`]), and describe the source up to raw video.

use anyhow::{anyhow, Result};

use super::discover;
use super::modes;
use super::plan::RawFormat;

/// For `CaptureSettings::camera_head`. Camera-native H.264 is taken only when
/// `passthrough` asks for it: otherwise the encode pipeline needs raw frames
/// for the slate and the lower third.
pub fn camera_head(device: &str, raw: &RawFormat, passthrough: bool) -> Result<String> {
    if !std::path::Path::new(device).exists() {
        let found: Vec<String> = discover::cameras().into_iter().map(|c| c.path).collect();
        return Err(anyhow!(
            "camera {device} does not exist; cameras here: {}",
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            }
        ));
    }
    let want = (raw.width, raw.height, raw.framerate);
    let choice = discover::camera_caps(device)
        .map(|caps| modes::parse_caps(&caps.to_string()))
        .and_then(|m| modes::choose(&m, want, passthrough));
    if passthrough && !choice.as_ref().is_some_and(|c| c.passthrough) {
        return Err(anyhow!(
            "video.passthrough is on, but camera {device} offers no H.264 at {}x{} {} fps; turn passthrough off to encode",
            raw.width,
            raw.height,
            raw.framerate
        ));
    }
    let decoder = modes::jpeg_decoder(&super::encoder::registry_available).unwrap_or("jpegdec");
    Ok(match choice {
        Some(choice) => {
            tracing::info!(device, mode = %choice.summary(), "camera mode");
            modes::source_desc(device, &choice, decoder)
        }
        // The monitor did not list it (busy, or no caps): let GStreamer negotiate.
        None => format!(
            "v4l2src device={} do-timestamp=true ! decodebin",
            super::plan::quote(device)
        ),
    })
}

/// Tear a pipeline down to NULL off the caller's thread: a state change can
/// wait on a device or a streaming thread, and the caller is the driver's
/// loop. Dropping the last reference afterwards frees it there too.
pub(crate) fn teardown(pipeline: Option<gstreamer::Pipeline>) {
    use gstreamer::prelude::*;
    let Some(pipeline) = pipeline else { return };
    std::thread::spawn(move || {
        let _ = pipeline.set_state(gstreamer::State::Null);
    });
}

/// Look for the camera of a device source on a thread of its own (the device
/// monitor is slow), after the old pipeline has let go of the device; the
/// answer comes back as `MediaEvent::CameraHead` tagged with `discovery`.
pub(crate) fn discover_head(
    old: Option<gstreamer::Pipeline>,
    source: super::plan::VideoSource,
    raw: RawFormat,
    passthrough: bool,
    camera_head: fn(&str, &RawFormat, bool) -> Result<String>,
    discovery: u64,
    events: super::EventTx,
) {
    use gstreamer::prelude::*;
    std::thread::spawn(move || {
        if let Some(old) = old {
            // The new pipeline opens the same device: it must be free first.
            let _ = old.set_state(gstreamer::State::Null);
        }
        let head = match &source {
            super::plan::VideoSource::V4l2(dev) => camera_head(dev, &raw, passthrough),
            _ => discover::first_camera()
                .ok_or_else(|| {
                    anyhow!("no camera found: plug in a USB camera (it is picked up when it appears), or set video.source")
                })
                .and_then(|dev| camera_head(&dev, &raw, passthrough)),
        };
        let _ = events.send(super::MediaEvent::CameraHead {
            discovery,
            head: head.map_err(|e| format!("{e:#}")),
        });
    });
}

/// Look for the first ALSA capture device on a thread of its own; the answer
/// comes back as `MediaEvent::MicFound` tagged with `discovery`.
pub(crate) fn discover_mic(discovery: u64, events: super::EventTx) {
    std::thread::spawn(move || {
        let device = discover::first_microphone();
        let _ = events.send(super::MediaEvent::MicFound { discovery, device });
    });
}

/// Plugins that go-live and the recorder first need, loaded now (before the
/// driver's loop runs) rather than by the first go-live's pipelines: loading
/// rtmp2 (GIO, TLS) and its neighbours made that turn of the loop take
/// 100-300 ms on a busy box. Loading is once per process; later calls are
/// cheap. SRT's plugins (libsrt, GnuTLS: about 3 MiB resident) only for a
/// config with an `srt://` destination, the recorder's only with recording
/// on; a later config that adds them loads them at its first use.
pub fn preload_plugins(srt: bool, recording: bool) {
    let srt_plugins: &[&str] = if srt { &["srtsink", "mpegtsmux"] } else { &[] };
    let recorder: &[&str] = if recording { &["splitmuxsink"] } else { &[] };
    let always = [
        "appsrc",
        "queue",
        "h264parse",
        "aacparse",
        "flvmux",
        "rtmp2sink",
    ];
    for name in always.iter().chain(srt_plugins).chain(recorder) {
        if let Some(factory) = gstreamer::ElementFactory::find(name) {
            // A missing plugin is reported where it is used, with its package.
            let _ = gstreamer::prelude::PluginFeatureExtManual::load(&factory);
        }
    }
}
