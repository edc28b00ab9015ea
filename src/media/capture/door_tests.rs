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

/// The least (arrival running time − PTS) of the buffers seen after the
/// first second, in ms: how far behind the clock a stream runs when
/// nothing holds it up. The least, not the median: a loaded machine only
/// ever adds to a buffer's lag (a median moved by 450 ms once, with a
/// compile on the same two cores), and over 1.5 s of buffers some pass
/// unhindered.
fn lag_ms(seen: &Seen) -> f64 {
    let v = seen.lock().unwrap();
    v.iter()
        .filter(|(pts, _, _)| *pts > 1_000_000_000)
        .map(|(pts, rt, _)| (*rt as f64 - *pts as f64) / 1e6)
        .reduce(f64::min)
        .unwrap_or(f64::NAN)
}

/// The sound's lag behind the picture at the appsinks, in ms, for an offset.
fn sound_behind_picture(offset_ms: i32) -> f64 {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let c = Capture::new(settings(offset_ms), tx).expect("capture");
    let mut c = c;
    c.start_mic().expect("the test tone");
    let video = watch(&c, "video");
    let audio = watch(&c, "audio");
    wait(Duration::from_millis(2500));
    c.shutdown();
    lag_ms(&video) - lag_ms(&audio)
}

#[test]
fn audio_offset_moves_the_sound_by_its_sign_and_size() {
    crate::media::init_for_tests();
    // Same clock, same pipeline: a buffer's PTS is when it was captured
    // (plus the offset, for the sound); the lag behind the clock at the
    // appsink is the pipeline's own latency, minus the offset.
    let none = sound_behind_picture(0);
    let later = sound_behind_picture(300);
    let earlier = sound_behind_picture(-200);
    // A positive offset delays the sound: its timestamps move 300 ms later.
    let moved = later - none;
    assert!(
        (moved - 300.0).abs() < 60.0,
        "+300 moved the sound {moved:.0} ms"
    );
    let moved = earlier - none;
    assert!(
        (moved + 200.0).abs() < 60.0,
        "-200 moved the sound {moved:.0} ms"
    );
}
