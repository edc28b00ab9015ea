//! The encode pipeline's timing seams with real GStreamer: the encoder's
//! door (standby) and `audio.offset_ms`, both read from the buffers that
//! reach the appsinks every destination and the recorder are fed from.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{Capture, CaptureSettings};
use crate::config::{AudioConfig, VideoConfig, X264Preset};
use crate::media::encoder;
use crate::media::plan::{self, AudioSource, EncoderPlan, VideoSource};

fn settings(audio_offset_ms: i32) -> CaptureSettings {
    let video = VideoConfig {
        width: 320,
        height: 240,
        framerate: 30,
        x264_preset: X264Preset::Ultrafast,
        ..VideoConfig::default()
    };
    let s = encoder::settings("x264enc", &video);
    let enc = EncoderPlan {
        input_caps: s.input_caps,
        element_desc: s.element_desc,
        output_caps: s.output_caps,
        bitrate_control: s.bitrate_control,
    };
    CaptureSettings {
        video_source: VideoSource::Test,
        audio_source: AudioSource::Test,
        raw: plan::raw_format(&video, &enc),
        encoder: enc,
        aac: plan::aac_encoder(&AudioConfig::default(), &encoder::registry_available)
            .expect("an AAC encoder"),
        slate_text: "back soon".into(),
        slate_image: None,
        audio_offset_ms,
        passthrough: false,
        camera_head: crate::media::camera::camera_head,
    }
}

/// What reached an appsink: (PTS, the pipeline's running time on arrival,
/// a keyframe), in ns.
type Seen = Arc<Mutex<Vec<(u64, u64, bool)>>>;

fn watch(c: &Capture, sink: &str) -> Seen {
    let seen: Seen = Arc::default();
    let pad = c
        .encode
        .by_name(sink)
        .and_then(|e| e.static_pad("sink"))
        .expect("appsink pad");
    let (clock, base) = c.timing();
    let log = seen.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(b) = info.buffer() {
            let now = clock.time();
            if let Some(pts) = b.pts() {
                let rt = now.saturating_sub(base).nseconds();
                let key = !b.flags().contains(gst::BufferFlags::DELTA_UNIT);
                if let Ok(mut v) = log.lock() {
                    v.push((pts.nseconds(), rt, key));
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
    seen
}

fn wait(d: Duration) {
    std::thread::sleep(d);
}

fn count(seen: &Seen) -> usize {
    seen.lock().map(|v| v.len()).unwrap_or(0)
}

/// Counts GStreamer's CRITICALs from now on (a closed door once wrote one
/// per frame; see `encoder_swap::watch_encoder_input`).
fn count_criticals() -> Arc<std::sync::atomic::AtomicUsize> {
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = n.clone();
    gst::glib::log_set_handler(
        Some("GStreamer"),
        gst::glib::LogLevels::LEVEL_CRITICAL,
        false,
        false,
        move |_, _, message| {
            eprintln!("GStreamer-CRITICAL: {message}");
            seen.fetch_add(1, Ordering::Relaxed);
        },
    );
    n
}

#[test]
fn a_closed_door_lets_no_frame_or_sound_to_the_encoders_and_opens_on_a_keyframe() {
    crate::media::init_for_tests();
    let criticals = count_criticals();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let c = Capture::new(settings(0), tx).expect("capture");
    let video = watch(&c, "video");
    let audio = watch(&c, "audio");
    let until = Instant::now() + Duration::from_secs(10);
    while count(&video) < 10 && Instant::now() < until {
        wait(Duration::from_millis(20));
    }
    assert!(count(&video) >= 10, "the encoder never ran");

    c.set_encoding(false);
    // What was inside the encoders when the door closed comes out.
    wait(Duration::from_millis(300));
    let (v, a) = (count(&video), count(&audio));
    let frames_in = c.health().frames_in.load(Ordering::Relaxed);
    wait(Duration::from_secs(1));
    assert_eq!(count(&video), v, "frames were encoded behind a closed door");
    assert_eq!(count(&audio), a, "sound was encoded behind a closed door");
    let arrived = c.health().frames_in.load(Ordering::Relaxed) - frames_in;
    assert!(arrived >= 15, "{arrived} frames reached the door in 1 s");
    assert!(
        c.snapshotter().jpeg(320).is_ok(),
        "no preview behind a closed door"
    );

    // Opened as a consumer opens it: the door, then a keyframe asked for.
    c.set_encoding(true);
    let ask = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    let _ = c.video().appsink().send_event(ask);
    let until = Instant::now() + Duration::from_secs(10);
    while count(&video) < v + 5 && Instant::now() < until {
        wait(Duration::from_millis(20));
    }
    let after = video.lock().unwrap()[v..].to_vec();
    assert!(after.len() >= 5, "no frames after the door opened");
    assert!(
        after[0].2,
        "the first frame through the opened door is not a keyframe"
    );
    assert!(count(&audio) > a, "no sound after the door opened");
    assert_eq!(criticals.load(Ordering::Relaxed), 0, "GStreamer CRITICALs");
}

/// (the buffer's first sample, PTS in ns) of each buffer through `pad`.
type Stamps = Arc<Mutex<Vec<(u64, u64)>>>;

fn stamps(pad: &gst::Pad) -> Stamps {
    let seen: Stamps = Arc::default();
    let log = seen.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let (Some(b), Ok(mut v)) = (info.buffer(), log.lock()) {
            if let Some(pts) = b.pts() {
                v.push((b.offset(), pts.nseconds()));
            }
        }
        gst::PadProbeReturn::Ok
    });
    seen
}

/// What one run with `offset_ms` shows of the sound: (each buffer's PTS as
/// `mic_in` stamped it and as the AAC encoder received it, paired by its
/// first sample; the last PTS the encoder received; the PTS of what reached
/// the appsink). Timestamps only, no arrival times: a loaded machine (CI's
/// two cores, a compile beside) moved an arrival-time reading of this by 170 ms.
fn sound_through(offset_ms: i32) -> (Vec<(i64, i64)>, i64, Vec<i64>) {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut c = Capture::new(settings(offset_ms), tx).expect("capture");
    c.start_mic().expect("the test tone");
    let pad = |name: &str, dir: &str| {
        c.encode
            .by_name(name)
            .and_then(|e| e.static_pad(dir))
            .unwrap_or_else(|| panic!("{name}.{dir}"))
    };
    let stamped = stamps(&pad("mic_in", "src"));
    let encoder_in = pad("aac_in", "src").peer().expect("the AAC encoder");
    let received = stamps(&encoder_in);
    let out = watch(&c, "audio");
    let until = Instant::now() + Duration::from_secs(10);
    // 60 AAC frames: 1.3 s, some 25 buffers of sound from mic_in.
    while count(&out) < 60 && Instant::now() < until {
        wait(Duration::from_millis(20));
    }
    c.shutdown();
    let stamped: std::collections::HashMap<u64, u64> =
        stamped.lock().unwrap().iter().copied().collect();
    let received = received.lock().unwrap().clone();
    let pairs = received
        .iter()
        .filter_map(|(first, pts)| Some((*stamped.get(first)? as i64, *pts as i64)))
        .collect();
    let last = received.last().map_or(-1, |(_, pts)| *pts as i64);
    let out = out
        .lock()
        .unwrap()
        .iter()
        .map(|(pts, _, _)| *pts as i64)
        .collect();
    (pairs, last, out)
}

#[test]
fn audio_offset_moves_the_sound_by_its_sign_and_size() {
    crate::media::init_for_tests();
    const MS: i64 = 1_000_000;
    // The AAC encoder's frame: 1024 samples at 48 kHz.
    const AAC_FRAME: i64 = 1024 * 1_000_000_000 / 48_000;
    for offset_ms in [0, 300, -200] {
        let (pairs, last, out) = sound_through(offset_ms);
        assert!(
            pairs.len() >= 20,
            "{offset_ms}: {} buffers paired",
            pairs.len()
        );
        // Every buffer the encoder gets is moved by the offset, exactly
        // (positive: later, the sound delayed).
        for (stamped, received) in &pairs {
            assert_eq!(
                received - stamped,
                i64::from(offset_ms) * MS,
                "{offset_ms}: stamped {stamped}, the encoder got {received}"
            );
        }
        // And what the appsink passes on keeps the moved timestamps: frame
        // after frame, the last of them within what the encoder may hold
        // (a frame and a buffer) of the last it got. An offset that only
        // moved the segment, as a pad offset does, left these 300 ms away.
        assert!(out.len() >= 60, "{offset_ms}: {} AAC frames", out.len());
        for w in out.windows(2) {
            assert!(
                (w[1] - w[0] - AAC_FRAME).abs() <= MS,
                "{offset_ms}: AAC frames at {} and {}",
                w[0],
                w[1]
            );
        }
        // The last buffer the encoder got starts at `last` and lasts a
        // period: the frames cut from it lie up to a period ahead of it.
        let period = crate::media::plan::AUDIO_PERIOD_NS as i64;
        let behind = last - out[out.len() - 1];
        assert!(
            (-period..=50 * MS).contains(&behind),
            "{offset_ms}: the last AAC frame {} ms from the last sound the encoder got",
            behind / MS
        );
    }
}
