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

/// A 2 s mp4 clip, 320x240 at 15 fps with a tone, as ffmpeg makes it.
fn make_clip(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=15:duration=2",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=2"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-shortest"])
        .arg(path)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_mp4_clip_with_sound_streams_in_real_time_and_loops() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start();
    let cfg = TestConfig::new().destination("main", &nginx.url("live"), Some("clip"));
    let clip = cfg.dir.path().join("stall-camera.mp4");
    make_clip(&clip);
    let toml = cfg.toml().replace(
        "source = \"test\"\nwidth",
        &format!("source = \"file:{}\"\nwidth", clip.display()),
    );
    assert!(toml.contains("file:"), "the clip is the source: {toml}");
    let mut daemon = Farmcast::start(&toml);
    assert!(
        nginx.wait_for_publishes("live", 1, Duration::from_secs(20)),
        "no publish from a file source\n--- farmcast log ---\n{}",
        daemon.log()
    );
    let published = Instant::now();
    // Three and a half times the clip: it must loop.
    std::thread::sleep(Duration::from_secs(7));
    let on_air = published.elapsed();
    assert!(
        daemon.stop().is_some(),
        "farmcast did not stop\n{}",
        daemon.log()
    );
    assert!(nginx.wait_idle(Duration::from_secs(10)), "{}", nginx.stat());
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
        "the stream ends at {last:.1} s: the 2 s clip did not loop\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().matches("decodebin").count() >= 2,
        "the clip was not reopened at its end"
    );
}
