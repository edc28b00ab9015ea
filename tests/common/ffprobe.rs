//! What a received file holds, as `ffprobe -of json` sees it: streams with
//! their codecs, sizes and rates, and the decoded video frames with their
//! timestamps and keyframe flags. The assertions that streaming tests share
//! live here so that every test judges a stream the same way.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::require;

#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub codec_type: String,
    pub codec_name: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `avg_frame_rate` as a number (video only).
    pub avg_frame_rate: Option<f64>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FrameInfo {
    pub pts_time: Option<f64>,
    pub key_frame: bool,
    pub pict_type: String,
    /// The decoded picture's size (video only): a stream may change size
    /// mid-way, at a keyframe.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The compressed size of the frame's packet, in bytes.
    pub pkt_size: Option<u64>,
}

fn ffprobe(args: &[&str], path: &Path) -> Value {
    let bin = require("ffprobe", "ffmpeg");
    let out = Command::new(bin)
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe prints JSON")
}

/// `"30/1"` → 30.0; `"0/0"` → None.
pub fn parse_rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (d != 0.0 && n != 0.0).then(|| n / d)
}

fn num_or_str(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

pub fn streams(path: &Path) -> Vec<StreamInfo> {
    let v = ffprobe(&["-show_streams"], path);
    v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| StreamInfo {
                    codec_type: s["codec_type"].as_str().unwrap_or("").to_string(),
                    codec_name: s["codec_name"].as_str().unwrap_or("").to_string(),
                    width: s["width"].as_u64().map(|w| w as u32),
                    height: s["height"].as_u64().map(|h| h as u32),
                    avg_frame_rate: s["avg_frame_rate"].as_str().and_then(parse_rate),
                    profile: s["profile"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The decoded frames of the first stream of `kind` (`"v"` or `"a"`).
pub fn frames(path: &Path, kind: &str) -> Vec<FrameInfo> {
    frames_with(path, kind, &[])
}

/// Only the video keyframes of `path`, the others not decoded: cheap enough
/// to poll a recording that is still growing (a change of picture size can
/// only happen at a keyframe).
pub fn keyframes(path: &Path) -> Vec<FrameInfo> {
    frames_with(path, "v", &["-skip_frame", "nokey"])
}

fn frames_with(path: &Path, kind: &str, extra: &[&str]) -> Vec<FrameInfo> {
    let select = format!("{kind}:0");
    let mut args = extra.to_vec();
    args.extend([
        "-select_streams",
        &select,
        "-show_entries",
        "frame=pts_time,key_frame,pict_type,width,height,pkt_size",
    ]);
    let v = ffprobe(&args, path);
    let size = |f: &Value, k: &str| f[k].as_u64().and_then(|n| u32::try_from(n).ok());
    v["frames"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| FrameInfo {
                    pts_time: num_or_str(&f["pts_time"]),
                    key_frame: f["key_frame"].as_i64() == Some(1),
                    pict_type: f["pict_type"].as_str().unwrap_or("").to_string(),
                    width: size(f, "width"),
                    height: size(f, "height"),
                    pkt_size: num_or_str(&f["pkt_size"]).map(|n| n as u64),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What `ffmpeg -v error` says while decoding every stream of `path` to
/// nothing: empty when the whole file decodes cleanly. Its exit status is
/// part of the answer, so a failed run is never empty.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new(require("ffmpeg", "ffmpeg"))
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let mut said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        said.push_str(&format!("\nffmpeg exited with {}", out.status));
    }
    said
}

pub fn codec_names(path: &Path) -> Vec<(String, String)> {
    streams(path)
        .into_iter()
        .map(|s| (s.codec_type, s.codec_name))
        .collect()
}

pub fn count_video_frames(path: &Path) -> usize {
    frames(path, "v").len()
}

/// Panics unless every frame has a pts and each is later than the one before.
pub fn assert_monotonic(frames: &[FrameInfo], what: &str) {
    let mut last: Option<f64> = None;
    for (i, f) in frames.iter().enumerate() {
        let pts = f
            .pts_time
            .unwrap_or_else(|| panic!("{what}: frame {i} has no pts"));
        if let Some(prev) = last {
            assert!(
                pts > prev,
                "{what}: frame {i} pts {pts} is not after the previous {prev}"
            );
        }
        last = Some(pts);
    }
}

/// What a stream must look like to be accepted by a platform: exactly one
/// H.264 video and one AAC audio stream, the configured size and about the
/// configured rate, monotonic video timestamps, a keyframe first, and at
/// least `min_frames` frames.
pub struct Expect {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub min_frames: usize,
}

pub fn assert_valid_av(path: &Path, expect: &Expect) -> Vec<FrameInfo> {
    let what = path.display().to_string();
    let streams = streams(path);
    let video: Vec<_> = streams.iter().filter(|s| s.codec_type == "video").collect();
    let audio: Vec<_> = streams.iter().filter(|s| s.codec_type == "audio").collect();
    assert_eq!(video.len(), 1, "{what}: video streams {streams:?}");
    assert_eq!(audio.len(), 1, "{what}: audio streams {streams:?}");
    let v = video[0];
    assert_eq!(v.codec_name, "h264", "{what}: {v:?}");
    assert_eq!(audio[0].codec_name, "aac", "{what}: {:?}", audio[0]);
    assert_eq!(
        (v.width, v.height),
        (Some(expect.width), Some(expect.height)),
        "{what}: picture size"
    );
    // FLV keeps millisecond timestamps, so 30 fps reads as 1000/33.
    let rate = v
        .avg_frame_rate
        .unwrap_or_else(|| panic!("{what}: no frame rate in {v:?}"));
    let want = f64::from(expect.fps);
    assert!(
        (rate - want).abs() <= want * 0.1,
        "{what}: frame rate {rate}, configured {want}"
    );
    let frames = frames(path, "v");
    assert!(
        frames.len() >= expect.min_frames,
        "{what}: {} video frames, expected at least {}",
        frames.len(),
        expect.min_frames
    );
    let first = frames
        .first()
        .unwrap_or_else(|| panic!("{what}: no video frames"));
    assert!(
        first.key_frame,
        "{what}: first video frame is not a keyframe: {first:?}"
    );
    assert_monotonic(&frames, &what);
    frames
}

/// Every video frame of `path` decoded by ffmpeg to `w`x`h` 8-bit gray
/// (luma), concatenated: `w * h` bytes a frame. Panics when ffmpeg fails.
pub fn decode_gray(path: &Path, w: usize, h: usize) -> Vec<u8> {
    let out = Command::new(require("ffmpeg", "ffmpeg"))
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-an", "-fps_mode", "passthrough", "-vf"])
        .arg(format!("scale={w}:{h},format=gray"))
        .args(["-f", "rawvideo", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "decoding {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
