//! `video.source = "file:..."` plays what the docs promise: an mp4 (H.264
//! with sound, as a phone records it), replayed in real time and looping,
//! to a real nginx-rtmp; what arrived is checked with ffprobe. Before, only
//! raw y4m clips played; an mp4 made the capture fail.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::ffprobe::{self, Expect};
use common::{Farmcast, NginxRtmp};

/// Runs ffmpeg quietly with `args`, then the output `path`; fails the test
/// with ffmpeg's own words if it could not write it.
fn ffmpeg_writes(args: &str, path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args.split_whitespace())
        .arg(path)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 2 s mp4 clip, 320x240 at 15 fps with a tone, as ffmpeg makes it.
fn make_clip(path: &Path) {
    ffmpeg_writes(
        "-f lavfi -i testsrc2=size=320x240:rate=15:duration=2 \
         -f lavfi -i sine=frequency=440:duration=2 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest",
        path,
    );
}

/// A 2 s raw clip of one colour, as ffmpeg writes y4m.
fn make_y4m(path: &Path, size: &str, colour: &str) {
    ffmpeg_writes(
        &format!("-f lavfi -i color=c={colour}:size={size}:rate=15:duration=2 -pix_fmt yuv420p"),
        path,
    );
}

/// What a 2 s clip gave once played for 7 s to a real nginx-rtmp.
struct Played {
    /// The daemon's log.
    log: String,
    /// The one recording nginx made, checked as valid H.264 + AAC at the
    /// config's size and about real time (frames for the seconds on air).
    rec: std::path::PathBuf,
    on_air_s: f64,
    /// Keeps the recording's folder.
    _nginx: NginxRtmp,
}

/// Plays `clip` (written by `make` into the config's folder) as the camera
/// for 7 s, three and a half times a 2 s clip, so it must loop; checks
/// the stream that arrived and that it ran past the clip's end.
fn play_clip(name: &str, make: &dyn Fn(&Path)) -> Played {
    let nginx = NginxRtmp::start();
    let cfg = TestConfig::new().destination("main", &nginx.url("live"), Some("clip"));
    let clip = cfg.dir.path().join(name);
    make(&clip);
    let toml = cfg.toml().replace(
        "source = \"test\"\nwidth",
        &format!("source = \"file:{}\"\nwidth", clip.display()),
    );
    assert!(toml.contains("file:"), "the clip is the source: {toml}");
    let mut daemon = Farmcast::start(&toml);
    assert!(
        nginx.wait_for_publishes("live", 1, Duration::from_secs(20)),
        "{name}: no publish from a file source\n--- farmcast log ---\n{}",
        daemon.log()
    );
    let published = Instant::now();
    std::thread::sleep(Duration::from_secs(7));
    let on_air = published.elapsed();
    assert!(
        daemon.stop().is_some(),
        "farmcast did not stop\n{}",
        daemon.log()
    );
    assert!(nginx.wait_idle(Duration::from_secs(10)), "{}", nginx.stat());
    let log = daemon.log();
    let recs = nginx.nonempty_recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    // Real time: about as many frames as seconds on air at the config's
    // rate; a clip that did not loop stops after 2 s.
    let frames = ffprobe::assert_valid_av(
        &recs[0],
        &Expect {
            width: cfg.width,
            height: cfg.height,
            fps: cfg.fps,
            min_frames: (on_air.as_secs() as usize - 2) * cfg.fps as usize,
        },
    );
    let last = frames.last().and_then(|f| f.pts_time).unwrap_or(0.0);
    assert!(
        last > 5.0,
        "{name}: the stream ends at {last:.1} s: the 2 s clip did not loop\n{log}"
    );
    Played {
        log,
        rec: recs[0].clone(),
        on_air_s: on_air.as_secs_f64(),
        _nginx: nginx,
    }
}

#[test]
fn an_mp4_clip_with_sound_streams_in_real_time_and_loops() {
    let _serial = common::serial();
    let played = play_clip("stall-camera.mp4", &make_clip);
    assert!(
        played.log.matches("decodebin").count() >= 2,
        "the clip was not reopened at its end"
    );
}

/// Mean red, green and blue of the video frame at `at_s` in `path`.
fn mean_rgb(path: &Path, at_s: f64) -> [f64; 3] {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-ss"])
        .arg(format!("{at_s}"))
        .arg("-i")
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "no frame at {at_s} s"
    );
    let mut sum = [0f64; 3];
    for px in out.stdout.chunks_exact(3) {
        for c in 0..3 {
            sum[c] += f64::from(px[c]);
        }
    }
    let n = (out.stdout.len() / 3) as f64;
    sum.map(|s| s / n)
}

/// A `.y4m` clip plays in real time and loops, its picture on air, whether
/// the capture reads it itself (a width that is a multiple of 8) or leaves
/// it to y4mdec (any other width).
#[test]
fn y4m_clips_play_in_real_time_and_loop_by_either_reader() {
    let _serial = common::serial();
    for (size, reader) in [("320x240", "appsrc name=clip_in"), ("324x240", "y4mdec")] {
        let played = play_clip("clip.y4m", &|p| make_y4m(p, size, "red"));
        // Paced by the clock: a 2 s clip opens about once per 2 s on air. A
        // reader that ran ahead of the clock would loop it dozens of times.
        let opened = played.log.matches(reader).count();
        let most = (played.on_air_s / 2.0).ceil() as usize + 2;
        assert!(
            (3..=most).contains(&opened),
            "{size}: the clip was opened {opened} times in {:.1} s through {reader}\n{}",
            played.on_air_s,
            played.log
        );
        // The clip's own picture, not black or the slate, after it looped.
        let [r, g, b] = mean_rgb(&played.rec, 5.0);
        assert!(
            r > 180.0 && g < 60.0 && b < 60.0,
            "{size}: the picture at 5 s is ({r:.0}, {g:.0}, {b:.0}), not the red clip"
        );
    }
}
