//! Tests of the test harness itself, with ffmpeg as the publisher: if these
//! fail, a failing streaming test says nothing about farmcast.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ffprobe::{self, Expect};
use common::{ffmpeg_publish, require, Mosquitto, NginxRtmp, SrtListener};

fn ffmpeg_expect(seconds: usize) -> Expect {
    Expect {
        width: 320,
        height: 240,
        fps: 30,
        min_frames: (seconds - 1) * 30,
    }
}

#[test]
fn nginx_records_what_ffmpeg_publishes() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start();
    assert!(nginx.publish_times("live").is_empty());
    ffmpeg_publish(&format!("{}/test", nginx.url("live")), "flv", 3);
    assert!(
        nginx.wait_idle(Duration::from_secs(10)),
        "nginx still shows a publisher: {}",
        nginx.stat()
    );
    assert_eq!(nginx.publish_times("live").len(), 1, "one publish");
    let recs = nginx.nonempty_recordings();
    assert_eq!(recs.len(), 1, "recordings {recs:?}: {}", nginx.error_log());
    ffprobe::assert_valid_av(&recs[0], &ffmpeg_expect(3));
}

#[test]
fn nginx_stat_page_shows_a_publisher_while_it_publishes() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start();
    assert!(!nginx.is_publishing(), "idle server: {}", nginx.stat());
    let url = format!("{}/stat", nginx.url("live"));
    let publisher = std::thread::spawn(move || ffmpeg_publish(&url, "flv", 3));
    assert!(
        common::wait_until(Duration::from_secs(10), || nginx.is_publishing()),
        "no publisher seen: {}",
        nginx.stat()
    );
    publisher.join().expect("publisher thread");
    assert!(nginx.wait_idle(Duration::from_secs(10)));
}

#[test]
fn nginx_restarts_on_the_same_port() {
    let _serial = common::serial();
    let mut nginx = NginxRtmp::start();
    let port = nginx.port;
    ffmpeg_publish(&format!("{}/one", nginx.url("live")), "flv", 2);
    nginx.kill();
    assert!(!nginx.is_running());
    // Its worker may outlive the master by a few milliseconds.
    assert!(
        common::wait_until(Duration::from_secs(3), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        }),
        "killed nginx still listens"
    );
    nginx.restart();
    assert_eq!(nginx.port, port);
    ffmpeg_publish(&format!("{}/two", nginx.url("live")), "flv", 2);
    assert!(nginx.wait_idle(Duration::from_secs(10)));
    assert_eq!(nginx.publish_times("live").len(), 2);
    let recs = nginx.nonempty_recordings();
    assert_eq!(recs.len(), 2, "one recording per publish: {recs:?}");
    for rec in &recs {
        ffprobe::assert_valid_av(rec, &ffmpeg_expect(2));
    }
}

#[test]
fn nginx_serves_several_applications() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start_with_apps(&["live", "backup"]);
    ffmpeg_publish(&format!("{}/b", nginx.url("backup")), "flv", 2);
    assert!(nginx.wait_idle(Duration::from_secs(10)));
    assert_eq!(nginx.publish_times("backup").len(), 1);
    assert!(nginx.publish_times("live").is_empty());
}

#[test]
fn srt_listener_receives_mpegts() {
    let _serial = common::serial();
    let mut srt = SrtListener::start();
    ffmpeg_publish(&format!("{}?pkt_size=1316", srt.url()), "mpegts", 3);
    srt.stop();
    let path = srt.path();
    assert!(
        srt.received_bytes() > 10_000,
        "only {} bytes",
        srt.received_bytes()
    );
    let codecs = ffprobe::codec_names(&path);
    assert!(
        codecs.contains(&("video".into(), "h264".into()))
            && codecs.contains(&("audio".into(), "aac".into())),
        "{codecs:?}"
    );
    let frames = ffprobe::frames(&path, "v");
    assert!(frames.len() >= 60, "{} frames", frames.len());
    ffprobe::assert_monotonic(&frames, "srt");
}

#[test]
fn mosquitto_passes_a_message() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    let sub_bin = require("mosquitto_sub", "mosquitto-clients");
    let pub_bin = require("mosquitto_pub", "mosquitto-clients");
    let topic = "farmcast/test/hello";
    // A retained message reaches a subscriber that comes later: no race.
    let published = Command::new(pub_bin)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            topic,
            "-m",
            "hi",
            "-r",
        ])
        .status()
        .expect("run mosquitto_pub");
    assert!(published.success());
    let out = Command::new(sub_bin)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "5",
        ])
        .output()
        .expect("run mosquitto_sub");
    assert!(out.status.success(), "{}", broker.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hi");
}

#[test]
fn servers_are_gone_after_drop() {
    let nginx = NginxRtmp::start();
    let port = nginx.port;
    let broker = Mosquitto::start();
    let mqtt_port = broker.port;
    drop(nginx);
    drop(broker);
    assert!(!common::wait_for_tcp(port, Duration::from_millis(100)));
    assert!(!common::wait_for_tcp(mqtt_port, Duration::from_millis(100)));
}

#[test]
fn ffprobe_rejects_a_stream_without_audio() {
    // The shared assertion must be able to fail: a video-only file is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("video-only.flv");
    let ffmpeg = require("ffmpeg", "ffmpeg");
    let ok = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "1",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(ok.success());
    let result =
        std::panic::catch_unwind(|| ffprobe::assert_valid_av(Path::new(&path), &ffmpeg_expect(1)));
    assert!(result.is_err(), "a file without audio passed");
}
