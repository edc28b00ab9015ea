//! The rural uplink (issue 8), on a real shaped link: the ingest server
//! (nginx-rtmp) runs in its own network namespace behind a veth pair, limited
//! with `tc tbf` or cut with `ip link set down` (see `netns`). The daemon runs
//! on the host as a farmer's box runs it and is judged by ffprobe on what the
//! server recorded and on its own local recording.
//!
//! These tests need root (CI is root); elsewhere they print `SKIP:` and return.
//! `FC_VERBOSE=1` prints the daemon's and the server's logs of the cut test.
//! 640x360 x264 ultrafast keeps two cores free: the link is the point, not the
//! picture. Every test prints its `MEASURED:` figures before asserting, so a
//! failing run still reports the baseline.

mod common;
mod netns;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::ffprobe::{self, FrameInfo};
use common::Farmcast;
use netns::Rig;

const FPS: u32 = 30;
/// The shaped link of case (a), and the rate the target must fall below.
const LINK_KBIT: u32 = 1200;
const CONNECT: Duration = Duration::from_secs(30);
/// Peak RSS allowed through a link cut. A 1 GB board runs the OS (~150 MB)
/// and this daemon beside nothing else; GStreamer, x264 and the AAC encoder
/// at 640x360 take about 60-90 MiB here, and every queue is bounded (2 s per
/// destination, 16 MiB per producer consumer), so 250 MiB means a queue that
/// grows without bound or a leak, not a busy encoder.
const RSS_BOUND_KIB: u64 = 250 * 1024;

/// The rig, or `None` after printing why this machine cannot make one.
fn rig_or_skip(test: &str, drop_idle_publisher_s: Option<u32>) -> Option<Rig> {
    match Rig::create(drop_idle_publisher_s) {
        Ok(r) => Some(r),
        Err(why) => {
            eprintln!("SKIP: {test}: {why}");
            None
        }
    }
}

/// 640x360@30, the given bitrate range, autostart to the rig's server.
/// `reconnect_cap_ms`: the daemon's longest retry interval (`live.reconnect_cap_ms`).
fn daemon_config(
    rig: &Rig,
    key: &str,
    max_kbps: u32,
    min_kbps: u32,
    reconnect_cap_ms: Option<u32>,
) -> (TestConfig, String) {
    let mut cfg = TestConfig::new().destination("uplink", &rig.nginx.url(), Some(key));
    cfg.width = 640;
    cfg.height = 360;
    cfg.fps = FPS;
    let mut value: toml::Value = toml::from_str(&cfg.toml()).expect("test config is TOML");
    let video = value
        .get_mut("video")
        .and_then(|v| v.as_table_mut())
        .expect("[video] in test config");
    video.insert("bitrate_kbps".into(), toml::Value::Integer(max_kbps.into()));
    video.insert(
        "min_bitrate_kbps".into(),
        toml::Value::Integer(min_kbps.into()),
    );
    if let Some(cap) = reconnect_cap_ms {
        let live = value
            .get_mut("live")
            .and_then(|v| v.as_table_mut())
            .expect("[live] in test config");
        live.insert("reconnect_cap_ms".into(), toml::Value::Integer(cap.into()));
    }
    let text = toml::to_string(&value).expect("config back to TOML");
    (cfg, text)
}

/// Peak resident memory (`VmHWM`) of a process, in KiB.
fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Every `target_kbps=N` the daemon logged on a line about `abr`, in order.
fn abr_targets(log: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.contains("abr"))
        .filter_map(|l| {
            let rest = &l[l.find("target_kbps=")? + "target_kbps=".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

fn wait_first_publish(rig: &Rig, daemon: &Farmcast) {
    assert!(
        common::wait_until(CONNECT, || !rig.nginx.publish_times().is_empty()),
        "no publish reached the server in the namespace within {CONNECT:?}\n--- farmcast ---\n{}\n--- nginx ---\n{}",
        daemon.log(),
        rig.nginx.error_log()
    );
}

fn stop_daemon(daemon: &mut Farmcast) {
    assert!(
        daemon.stop().is_some(),
        "farmcast did not exit within 10 s of SIGTERM\n{}",
        daemon.log()
    );
}

/// Video frames in every recording the server made, in order.
fn server_frames(rig: &Rig) -> Vec<(PathBuf, Vec<FrameInfo>)> {
    rig.nginx
        .nonempty_recordings()
        .into_iter()
        .map(|p| {
            let f = ffprobe::frames(&p, "v");
            (p, f)
        })
        .collect()
}

/// The local recording's segments (`seg-*.ts` under the show's folder).
fn local_segments(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for show in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.extend(common::files_with_ext(&show.path(), ".ts"));
    }
    out.sort();
    out
}

/// The longest step between consecutive frame timestamps, in seconds.
fn largest_gap(frames: &[FrameInfo]) -> f64 {
    let pts: Vec<f64> = frames.iter().filter_map(|f| f.pts_time).collect();
    pts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

/// (a) 4000 kbit/s configured over a 1200 kbit/s link, for a minute.
#[test]
fn a_thin_link_adapts_without_dropping_the_connection() {
    let _serial = common::serial();
    let Some(rig) = rig_or_skip(
        "a_thin_link_adapts_without_dropping_the_connection",
        Some(10),
    ) else {
        return;
    };
    rig.ns.shape(LINK_KBIT).expect("tc tbf on the host end");
    let (_cfg, toml) = daemon_config(&rig, "thin", 4000, 400, None);
    let mut daemon = Farmcast::start(&toml);
    wait_first_publish(&rig, &daemon);
    let on_air_from = Instant::now();
    let mut adapted_after: Option<Duration> = None;
    while on_air_from.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(250));
        if adapted_after.is_none() && abr_targets(&daemon.log()).iter().any(|&t| t < LINK_KBIT) {
            adapted_after = Some(on_air_from.elapsed());
        }
    }
    let rss = daemon.pid().and_then(peak_rss_kib);
    let on_air = on_air_from.elapsed();
    stop_daemon(&mut daemon);
    // The server sees the end of stream once the shaped link has drained.
    let _ = rig.nginx.wait_idle(Duration::from_secs(20));
    let publishes = rig.nginx.publish_times().len();
    let recs = server_frames(&rig);
    let delivered: usize = recs.iter().map(|(_, f)| f.len()).sum();
    let expected = (on_air.as_secs_f64() * f64::from(FPS)) as usize;
    let ratio = delivered as f64 / expected.max(1) as f64;
    eprintln!(
        "MEASURED (a) link {LINK_KBIT} kbit/s, 4000 configured: frames {delivered}/{expected} = {:.1}%, \
         publishes {publishes}, recordings {}, first abr target below the link after {}, \
         abr targets logged {:?}, peak RSS {} KiB",
        ratio * 100.0,
        recs.len(),
        adapted_after.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64())),
        abr_targets(&daemon.log()),
        rss.map_or("?".into(), |r| r.to_string()),
    );
    assert_eq!(
        publishes,
        1,
        "the connection was dropped and made again; the server log:\n{}",
        rig.nginx.error_log()
    );
    assert!(
        adapted_after.is_some_and(|d| d <= Duration::from_secs(10)),
        "the encoder target did not fall below {LINK_KBIT} kbit/s within 10 s (after {adapted_after:?})"
    );
    assert!(
        ratio >= 0.95,
        "only {delivered} of {expected} frames reached the server ({:.1}%)",
        ratio * 100.0
    );
}

/// (b) and (c): the link goes away for 20 s and comes back; the stream is
/// back within 2 s, the local recording has no gap, memory stays bounded.
///
/// The daemon retries every `live.reconnect_cap_ms` at most while the link is
/// down; with the default 2000 ms a retry can land 2 s after the restore plus
/// the connect, so the 2 s promise needs a 1000 ms cap, which this box sets.
/// The server drops a publisher idle for 10 s (the cut left its session
/// half-open; nginx-rtmp would otherwise deny the new publish as a duplicate).
#[test]
fn a_cut_link_comes_back_within_two_seconds_and_memory_stays_bounded() {
    let _serial = common::serial();
    let name = "a_cut_link_comes_back_within_two_seconds_and_memory_stays_bounded";
    let Some(rig) = rig_or_skip(name, Some(10)) else {
        return;
    };
    let (cfg, toml) = daemon_config(&rig, "cut", 1000, 300, Some(1000));
    let mut daemon = Farmcast::start(&toml);
    wait_first_publish(&rig, &daemon);
    std::thread::sleep(Duration::from_secs(6));

    rig.ns.set_link(false).expect("ip link set down");
    let bytes_at_cut = rig.nginx.recorded_bytes();
    std::thread::sleep(Duration::from_secs(20));
    let bytes_before_restore = rig.nginx.recorded_bytes();
    let publishes_before = rig.nginx.publish_times().len();
    rig.ns.set_link(true).expect("ip link set up");
    let restored_at = Instant::now();

    // Back = media recorded again: 16 kB more than at the restore (the FLV
    // header and metadata of a new file are far smaller). Not the publish
    // log: nginx runs `exec_publish` for publishes it then denies.
    let recordings_before = rig.nginx.nonempty_recordings().len();
    let mut back_after: Option<Duration> = None;
    while restored_at.elapsed() < Duration::from_secs(30) {
        if rig.nginx.recorded_bytes() >= bytes_before_restore + 16 * 1024 {
            back_after = Some(restored_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let how = if rig.nginx.nonempty_recordings().len() > recordings_before {
        "new publish"
    } else {
        "old session"
    };
    std::thread::sleep(Duration::from_secs(5));
    let rss = daemon.pid().and_then(peak_rss_kib);
    let cut_log = daemon.log();
    stop_daemon(&mut daemon);
    let _ = rig.nginx.wait_idle(Duration::from_secs(10));

    let segments = local_segments(&cfg.recording_dir());
    let local: Vec<FrameInfo> = segments
        .iter()
        .flat_map(|s| ffprobe::frames(s, "v"))
        .collect();
    let local_gap = largest_gap(&local);
    let recs = server_frames(&rig);
    // The first frame the server got after the restore must be a keyframe:
    // in the file of a new publish, its first frame; else the frame after the gap.
    let resumed_on_key = recs.last().and_then(|(_, frames)| {
        if recs.len() > 1 {
            return frames.first().map(|f| f.key_frame);
        }
        let pts: Vec<(f64, bool)> = frames
            .iter()
            .filter_map(|f| f.pts_time.map(|p| (p, f.key_frame)))
            .collect();
        pts.windows(2)
            .find(|w| w[1].0 - w[0].0 > 2.0)
            .map(|w| w[1].1)
    });
    eprintln!(
        "MEASURED (b) 20 s cut: stream back {} after the restore ({how}); publishes {} (before restore {publishes_before}); \
         server bytes during the cut +{}; resumed on a keyframe: {resumed_on_key:?}; \
         local recording {} frames in {} segment(s), largest gap {local_gap:.3} s; (c) peak RSS {} KiB",
        back_after.map_or("never (30 s)".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        rig.nginx.publish_times().len(),
        bytes_before_restore.saturating_sub(bytes_at_cut),
        local.len(),
        segments.len(),
        rss.map_or("?".into(), |r| r.to_string()),
    );
    if std::env::var_os("FC_VERBOSE").is_some() {
        eprintln!(
            "--- farmcast ---\n{cut_log}\n--- nginx ---\n{}",
            rig.nginx.error_log()
        );
    }
    let rss = rss.expect("VmHWM of the daemon");
    assert!(
        rss <= RSS_BOUND_KIB,
        "peak RSS {rss} KiB through a 20 s cut is over {RSS_BOUND_KIB} KiB"
    );
    assert!(
        !local.is_empty() && local_gap < 0.5,
        "the local recording has a gap of {local_gap:.3} s ({} frames in {segments:?})",
        local.len()
    );
    assert!(
        back_after.is_some_and(|d| d <= Duration::from_secs(2)),
        "the stream was not back within 2 s of the restore ({back_after:?}, {how})\n--- farmcast ---\n{cut_log}\n--- nginx ---\n{}",
        rig.nginx.error_log()
    );
    assert_eq!(
        resumed_on_key,
        Some(true),
        "the server's stream did not start again on a keyframe"
    );
}

#[test]
fn abr_lines_are_read_from_the_daemon_log() {
    let log = "2026-01-01T00:00:00Z  INFO farmcast::app: abr target_kbps=2800 measured_kbps=1190\n\
               2026-01-01T00:00:01Z  INFO farmcast::app: connecting target_kbps=5\n\
               2026-01-01T00:00:01Z  INFO farmcast::app: abr target_kbps=1960";
    assert_eq!(abr_targets(log), [2800, 1960]);
    assert!(abr_targets("abr target_kbps=").is_empty());
}

/// The rig itself: the server answers over the pair, a cut leaves no route
/// (the blackhole, not the default gateway), and a restore brings it back.
#[test]
fn the_rig_cuts_and_restores_the_link_without_a_way_out() {
    let Some(rig) = rig_or_skip("the_rig_cuts_and_restores_the_link_without_a_way_out", None)
    else {
        return;
    };
    let addr = (rig.ns.ns_addr.as_str(), netns::RTMP_PORT);
    assert!(std::net::TcpStream::connect(addr).is_ok());
    rig.ns.shape(LINK_KBIT).expect("tc tbf");
    rig.ns.set_link(false).expect("cut");
    assert_eq!(rig.ns.route_to_ns(), None);
    let refused = std::net::TcpStream::connect_timeout(
        &format!("{}:{}", addr.0, addr.1)
            .parse()
            .expect("socket address"),
        Duration::from_millis(500),
    );
    assert!(refused.is_err(), "connected through a cut link");
    rig.ns.set_link(true).expect("restore");
    assert!(common::wait_until(Duration::from_secs(5), || {
        std::net::TcpStream::connect(addr).is_ok()
    }));
}
