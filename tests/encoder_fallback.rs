//! Encoders that are listed but do not work, and an encoder that fails in
//! the middle of a show: the real `farmcast` binary, a real nginx-rtmp and
//! mosquitto, judged by ffprobe on what nginx received and by what the
//! technician is told over MQTT.
//!
//! This machine has a real "listed but broken" encoder: `avenc_h264_omx`
//! (libav's OpenMAX IL encoder, the Pi's hardware path under the older
//! Raspberry Pi OS), which the registry lists and which cannot open here.
//! The failure mid-show is the sim socket's `encoder fail` (the encoder
//! element posts the error a hardware encoder posts when its device stops).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::ffprobe;
use common::observer::{topic, Observer, WAIT};
use common::{serial, Farmcast, Mosquitto, NginxRtmp};
use serde_json::Value;

const CONNECT: Duration = Duration::from_secs(30);

fn observer(port: u16) -> Observer {
    let topics = ["status", "events"].map(topic);
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    Observer::new(port, "obs-enc", true, &refs)
}

/// The test config with a destination at nginx and `video.encoder` set.
fn config(tc: &TestConfig, broker: u16, encoder: &str) -> String {
    let mut t = tc.mqtt_table(broker);
    if let Some(toml::Value::Table(v)) = t.get_mut("video") {
        v.insert("encoder".into(), toml::Value::String(encoder.into()));
    }
    toml::to_string(&t).expect("config")
}

/// The `pic_order_cnt_type` of every SPS in `path`'s video, in order: it
/// tells the two encoders apart (both give Constrained Baseline at the
/// tests' ultrafast preset): x264enc without B-frames writes 2,
/// openh264enc 0.
fn sps_poc_types(path: &std::path::Path) -> Vec<u32> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-i"])
        .arg(path)
        .args([
            "-c:v",
            "copy",
            "-an",
            "-bsf:v",
            "trace_headers",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(" pic_order_cnt_type "))
        .filter_map(|l| l.rsplit("= ").next()?.trim().parse().ok())
        .collect()
}

/// What ffmpeg says decoding `path`, less its muxer's complaint about two
/// equal timestamps in the stream's first `early_ms` (a known start-up
/// quirk of a few packets, seen in tests/uplink.rs too, not a broken
/// picture, and nowhere near the switch). `None` for `early_ms` keeps
/// every complaint out whatever its time (a .ts segment's time base is
/// not milliseconds).
fn decode_problems(path: &std::path::Path, early_ms: Option<u64>) -> String {
    let said = ffprobe::decode_errors(path);
    let early = |l: &str| {
        let Some(i) = l.find("non monotonically increasing dts") else {
            return l.contains("Last message repeated");
        };
        let dts = l[i..]
            .split(": ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|d| d.parse::<u64>().ok());
        match (early_ms, dts) {
            (Some(limit), Some(d)) => d < limit,
            (None, _) => true,
            _ => false,
        }
    };
    said.lines()
        .filter(|l| !early(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn one_recording(nginx: &NginxRtmp) -> std::path::PathBuf {
    assert!(
        nginx.wait_idle(Duration::from_secs(10)),
        "nginx still has a publisher: {}",
        nginx.stat()
    );
    let recs = nginx.nonempty_recordings();
    assert_eq!(recs.len(), 1, "one publish, one recording: {recs:?}");
    recs[0].clone()
}

/// Live with `auto` (which passes over the broken OpenMAX encoder and takes
/// x264enc), then the encoder fails: the show goes on with openh264enc on
/// the same connection, status and an event say so, and nginx keeps
/// receiving decodable H.264 after the fault.
#[test]
fn an_encoder_failing_mid_show_falls_back_and_the_stream_goes_on() {
    let _g = serial();
    let nginx = NginxRtmp::start();
    let broker = Mosquitto::start();
    let mut obs = observer(broker.port);
    let tc = TestConfig::new().destination("main", &nginx.url("live"), Some("enc"));
    let mut daemon = Farmcast::start(&config(&tc, broker.port, "auto"));
    assert!(
        nginx.wait_for_publishes("live", 1, CONNECT),
        "no publish\n{}",
        daemon.log()
    );
    let published = Instant::now();
    let st = obs.until_json("status", WAIT, |v| v["state"] == "live");
    assert_eq!(st["video"]["encoder"], "x264enc", "{st}");
    std::thread::sleep(Duration::from_secs(3));

    let fault = published.elapsed();
    assert_eq!(daemon.sim("encoder fail"), "ok");
    let ev: Value = obs.until_json("events", WAIT, |v| v["part"] == "encoder");
    let what = ev["what"].as_str().unwrap_or_default();
    assert!(
        what.contains("x264enc failed") && what.contains("fell back to openh264enc"),
        "{ev}"
    );
    let st = obs.until_json("status", WAIT, |v| v["video"]["encoder"] == "openh264enc");
    assert_eq!(st["state"], "live", "the show goes on: {st}");
    let err = st["errors"]["encoder"].as_str().unwrap_or_default();
    assert!(
        err.contains("x264enc failed") && err.contains("openh264enc in use"),
        "{st}"
    );
    // Frames keep coming out of the new encoder: the smoothed rate is the
    // configured one (30) within a generous margin, seconds later.
    std::thread::sleep(Duration::from_secs(4));
    obs.clear();
    let st = obs.until_json("status", WAIT, |_| true);
    let fps = st["video"]["fps"].as_f64().unwrap_or_default();
    assert!(fps > 20.0, "{st}");
    assert_eq!(st["state"], "live", "{st}");
    assert_eq!(daemon.sim("hold go_live 2.5"), "ok");
    obs.status("standby");
    let on_air = published.elapsed();
    daemon.stop();

    // One publish: the destination stayed connected through the switch.
    assert_eq!(
        nginx.publish_times("live").len(),
        1,
        "the destination reconnected\n{}",
        daemon.log()
    );
    let rec = one_recording(&nginx);
    let errors = decode_problems(&rec, Some(1000));
    assert!(errors.is_empty(), "{}: {errors}", rec.display());
    let frames = ffprobe::frames(&rec, "v");
    ffprobe::assert_monotonic(&frames, "after the switch");
    let first = frames.first().and_then(|f| f.pts_time).unwrap_or_default();
    let pts = |f: &ffprobe::FrameInfo| f.pts_time.unwrap_or_default() - first;
    // The stream covers the time after the fault, at about the rate: at
    // least half the frames of the 5 s that follow it (to allow for the
    // switch's gap and a loaded machine), and a keyframe starts the new
    // encoder's part.
    let after: Vec<&ffprobe::FrameInfo> = frames
        .iter()
        .filter(|f| pts(f) > fault.as_secs_f64() + 1.0)
        .collect();
    let tail = on_air.as_secs_f64() - fault.as_secs_f64() - 2.0;
    assert!(
        after.len() as f64 > tail * 30.0 * 0.5,
        "{} frames after the fault in {tail:.1} s (of {} in all)\n{}",
        after.len(),
        frames.len(),
        daemon.log()
    );
    let gap = frames
        .windows(2)
        .map(|w| pts(&w[1]) - pts(&w[0]))
        .fold(0.0, f64::max);
    let keys: Vec<f64> = frames.iter().filter(|f| f.key_frame).map(pts).collect();
    eprintln!(
        "fault at {:.2} s; longest gap between frames {gap:.3} s; keyframes at {keys:?}",
        fault.as_secs_f64()
    );
    assert!(gap < 2.0, "a gap of {gap:.3} s in the picture");
    // Both encoders' pictures reached the server, on the one connection:
    // x264enc's first, openh264enc's after the switch.
    let mut poc = sps_poc_types(&rec);
    poc.dedup();
    assert_eq!(poc, [2, 0], "SPS pic_order_cnt_type in {}", rec.display());
    // The show's own recording went on through the switch too: every
    // segment decodes, and the new encoder's pictures are in it.
    let segments: Vec<_> = std::fs::read_dir(tc.recording_dir())
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|show| common::files_with_ext(&show.path(), ".ts"))
        .collect();
    assert!(!segments.is_empty(), "no local recording");
    let mut poc = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let errors = decode_problems(seg, (i > 0).then_some(0));
        assert!(errors.is_empty(), "{}: {errors}", seg.display());
        poc.extend(sps_poc_types(seg));
    }
    poc.dedup();
    assert_eq!(poc, [2, 0], "SPS pic_order_cnt_type in {segments:?}");
    let log = daemon.log();
    let switched = log
        .lines()
        .find(|l| l.contains("encoder switched within the show"));
    assert!(switched.is_some(), "{log}");
    eprintln!("{}", switched.unwrap_or_default());
}

/// `video.encoder` names the broken OpenMAX encoder: the trial tells, the
/// box goes live with x264enc and says why. Before, the pipeline failed
/// to negotiate at every start and the show never went live.
#[test]
fn a_named_encoder_that_cannot_encode_gives_way_to_one_that_can() {
    let _g = serial();
    let nginx = NginxRtmp::start();
    let broker = Mosquitto::start();
    let mut obs = observer(broker.port);
    let tc = TestConfig::new().destination("main", &nginx.url("live"), Some("omx"));
    let mut daemon = Farmcast::start(&config(&tc, broker.port, "avenc_h264_omx"));
    assert!(
        nginx.wait_for_publishes("live", 1, CONNECT),
        "no publish\n{}",
        daemon.log()
    );
    let st = obs.until_json("status", WAIT, |v| v["state"] == "live");
    assert_eq!(st["video"]["encoder"], "x264enc", "{st}");
    std::thread::sleep(Duration::from_secs(3));
    daemon.stop();
    let rec = one_recording(&nginx);
    assert!(ffprobe::count_video_frames(&rec) > 30, "{}", rec.display());
    let log = daemon.log();
    assert!(
        log.contains("does not encode here, x264enc does"),
        "the reason is logged: {log}"
    );
}

/// `farmcast probe` lists the OpenMAX encoder as present and failing, with
/// the reason, and `auto` passing over it.
#[test]
fn probe_says_which_encoders_work() {
    let _g = serial();
    let out = Command::new(env!("CARGO_BIN_EXE_farmcast"))
        .arg("probe")
        .output()
        .expect("farmcast probe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    let omx = line("avenc_h264_omx");
    assert!(
        omx.contains("hardware") && omx.contains("fails: "),
        "{text}"
    );
    assert!(omx.contains("not-negotiated"), "{text}");
    assert!(line("x264enc").contains(" works "), "{text}");
    assert!(line("openh264enc").contains(" works "), "{text}");
    assert!(text.contains("auto picks x264enc"), "{text}");
    assert!(text.contains("avenc_h264_omx fails:"), "{text}");

    let out = Command::new(env!("CARGO_BIN_EXE_farmcast"))
        .args(["probe", "--json"])
        .output()
        .expect("farmcast probe --json");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let present = v["encoders"]["present"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let omx = present
        .iter()
        .find(|e| e["element"] == "avenc_h264_omx")
        .expect("listed");
    assert_eq!(omx["works"], false);
    assert_eq!(v["encoders"]["auto"]["element"], "x264enc");
    assert_eq!(v["encoders"]["auto"]["fallbacks"][0], "openh264enc");
}
