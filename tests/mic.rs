//! A microphone that goes away mid-show comes back by itself: the real
//! `farmcast run` recording a show (test camera and tone), a real mosquitto
//! for the technician's view, and the sim socket's `mic fail` / `mic resume`
//! standing in for a USB microphone pulled and plugged back. What is checked
//! is what was recorded: silence while the microphone is gone, the tone
//! again once the box has reopened it; and what the technician is told.
//!
//! Before, a lost microphone left silence for the rest of the show.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::observer::{topic, Observer, WAIT};
use common::{serial, Farmcast, Mosquitto};
use serde_json::Value;

fn observer(port: u16) -> Observer {
    let topics = ["status", "events", "availability"].map(topic);
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    Observer::new(port, "obs-mic", true, &refs)
}

/// The show's segments, oldest first.
fn segments(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for show in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(show.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "ts") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// Seconds of silence (under -60 dB for 1 s or more) ffmpeg finds in `seg`'s
/// audio, and its mean volume in dB.
fn audio_of(seg: &Path) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(seg)
        .args([
            "-vn",
            "-af",
            "silencedetect=n=-60dB:d=1,volumedetect",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let num_after = |key: &str| -> Vec<f64> {
        text.match_indices(key)
            .filter_map(|(i, _)| {
                text[i + key.len()..]
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.trim_end_matches("dB").parse().ok())
            })
            .collect()
    };
    let silent: f64 = num_after("silence_duration: ").iter().sum();
    let mean = num_after("mean_volume: ").first().copied().unwrap_or(-91.0);
    (silent, mean)
}

#[test]
fn a_microphone_pulled_mid_show_is_reported_and_reopened_by_itself() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = observer(broker.port);
    let tc = TestConfig::new().autostart(true);
    let mut cfg = tc.mqtt_table(broker.port);
    if let Some(toml::Value::Table(rec)) = cfg.get_mut("recording") {
        rec.insert("segment_s".into(), toml::Value::Integer(10));
    }
    let mut daemon = Farmcast::start(&toml::to_string(&cfg).expect("config"));
    // No destination: the show is a recording, live at once.
    obs.status("live");
    let live = Instant::now();
    std::thread::sleep(Duration::from_secs(3));

    assert_eq!(daemon.sim("mic fail"), "ok");
    let ev = obs.until_json("events", WAIT, |v| {
        v["type"] == "error" && v["part"] == "mic"
    });
    assert!(
        ev["what"].as_str().is_some_and(|w| w.contains("mic")),
        "{ev}"
    );
    let st = obs.until_json("status", WAIT, |v| v["errors"].get("mic").is_some());
    let gone_at = Instant::now();
    assert_eq!(
        st["state"], "live",
        "a lost microphone does not stop the show: {st}"
    );

    // Plugged back 9 s later: the box finds it on its own, without a
    // camera restart or a command.
    std::thread::sleep(Duration::from_secs(9).saturating_sub(gone_at.elapsed()));
    assert_eq!(daemon.sim("mic resume"), "ok");
    let resumed = Instant::now();
    // Only statuses from now on: the ones before the loss had no error either.
    obs.clear();
    let back: Value = obs.until_json("status", Duration::from_secs(40), |v| {
        v["state"] == "live" && v["errors"].get("mic").is_none()
    });
    assert!(
        back["uptime_s"].as_u64() > st["uptime_s"].as_u64(),
        "{back}"
    );
    let found_after = resumed.elapsed();
    assert!(
        found_after < Duration::from_secs(35),
        "the microphone was found again only after {found_after:?}"
    );
    // Let a whole segment be recorded with the microphone back, then end.
    let until = Instant::now() + Duration::from_secs(22);
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    assert_eq!(daemon.sim("hold go_live 2.5"), "ok");
    obs.status("standby");
    let took = live.elapsed();

    let segs = segments(&tc.recording_dir());
    assert!(segs.len() >= 3, "{} segments in {took:?}", segs.len());
    let heard: Vec<(f64, f64)> = segs.iter().map(|s| audio_of(s)).collect();
    // Some segment holds the silence of the pulled microphone...
    assert!(
        heard.iter().any(|(silent, _)| *silent >= 3.0),
        "no silence recorded while the microphone was gone: {heard:?}\n{}",
        daemon.log()
    );
    // ...and the last whole one the tone again, throughout.
    let (silent, mean) = heard[heard.len() - 2];
    assert!(
        silent < 0.5 && mean > -40.0,
        "the tone did not come back: silence {silent} s, mean {mean} dB in {:?} ({heard:?})",
        segs[segs.len() - 2]
    );
    assert!(
        daemon.log().matches("mic pipeline").count() >= 2,
        "the microphone pipeline was not built again"
    );
}
