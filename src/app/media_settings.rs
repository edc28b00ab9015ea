//! What the media side is built from: the capture's settings chosen from
//! the config and this box's GStreamer registry (the encoder trials among
//! them), worked out off the driver's loop by [`super::media_ctl`].

use std::path::Path;

use anyhow::{anyhow, Result};

use crate::appliance::EncoderInfo;
use crate::config::Config;
use crate::media::capture::CaptureSettings;
use crate::media::encoder;
use crate::media::plan::{self, EncoderPlan};

/// Everything the capture needs, chosen from the config and this box's
/// GStreamer registry (and, for the encoder, what encodes here). Returns the
/// settings and the encoder chosen (`None`: passthrough encodes nothing).
/// Takes a moment (the trials): off the driver's loop.
pub fn capture_settings(
    config: &Config,
) -> Result<(CaptureSettings, Option<encoder::EncoderChoice>)> {
    crate::media::init()?;
    let video_source = config.video.source.clone();
    let audio_source = config.audio.source.clone();
    let available = &encoder::registry_available;
    let choice = if config.video.passthrough {
        // Nothing is encoded: no trials.
        encoder::choose(&config.video.encoder, available)
    } else {
        // Listed is not working: each candidate encodes a few frames first
        // (in parallel, bounded), and the ones that did are the fallbacks.
        let candidates = encoder::candidates(&config.video.encoder, available);
        let trials = crate::media::encoder_trial::try_all(&candidates, &config.video);
        for (element, result) in &trials {
            match result {
                Ok(()) => tracing::info!(element, "encoder trial: works"),
                Err(why) => tracing::warn!(element, why, "encoder trial: fails"),
            }
        }
        encoder::choose_working(&config.video.encoder, available, &|e| {
            trials.get(e).cloned()
        })
    }
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
    let aac = plan::aac_encoder(&config.audio, &encoder::registry_available).ok_or_else(|| {
        anyhow!("no AAC encoder: install gstreamer1.0-plugins-bad (voaacenc) or gstreamer1.0-libav")
    })?;
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
        (!config.video.passthrough).then_some(choice),
    ))
}

/// The core's view of the encoder chosen (`None`: passthrough).
pub(super) fn encoder_info(choice: Option<encoder::EncoderChoice>) -> EncoderInfo {
    match choice {
        None => EncoderInfo {
            name: "passthrough".to_string(),
            resizable: false,
            reason: "video.passthrough".to_string(),
            fallbacks: Vec::new(),
        },
        Some(c) => EncoderInfo {
            // Only software encoders take a new picture size mid-stream.
            resizable: encoder::takes_new_size(&c.element),
            name: c.element,
            reason: c.reason,
            fallbacks: c.fallbacks,
        },
    }
}
