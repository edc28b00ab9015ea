//! The rural uplink (issue 8), on a real shaped link: the ingest server
//! (nginx-rtmp) runs in its own network namespace behind a veth pair, limited
//! with `tc tbf` or cut with `ip link set down` (see `netns`). The daemon runs
//! on the host as a farmer's box runs it and is judged by ffprobe on what the
//! server recorded and on its own local recording.
//!
//! These tests need root (CI is root). A machine that cannot make the rig
//! fails them, naming what is missing; outside CI, `FARMCAST_SKIP_NETNS=1`
//! skips them instead, printing why (an explicit opt-out, never a default).
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

/// The opt-out, outside CI only: `FARMCAST_SKIP_NETNS=1` lets a machine that
/// cannot make the shaped link skip these tests, saying so. Without it a
/// missing rig fails the test: a test that could not run is not a pass.
const SKIP_ENV: &str = "FARMCAST_SKIP_NETNS";

/// What a test does when this machine cannot make the shaped link.
#[derive(Debug, PartialEq)]
enum NoRig {
    Fail,
    /// Only when asked for by [`SKIP_ENV`], and never in CI.
    Skip,
}

/// `ci`: `CI` is `true` (the CI run is root and must have the rig);
/// `opt_out`: [`SKIP_ENV`] is `1`.
fn no_rig(ci: bool, opt_out: bool) -> NoRig {
    if opt_out && !ci {
        NoRig::Skip
    } else {
        NoRig::Fail
    }
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
}

/// `made`, or (when the machine cannot make it) a failure that names what is
/// missing and how to get it; `None` only under the explicit opt-out.
fn required<T>(test: &str, made: Result<T, String>) -> Option<T> {
    let why = match made {
        Ok(t) => return Some(t),
        Err(why) => why,
    };
    let ci = env_is("CI", "true");
    let needs = "these tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`), \
                 iproute2 (`ip`, `tc`: Debian package iproute2), the veth and sch_tbf \
                 kernel modules, and nginx with libnginx-mod-rtmp; run them as root, \
                 e.g. `sudo -E cargo test --test uplink`";
    match no_rig(ci, env_is(SKIP_ENV, "1")) {
        NoRig::Skip => {
            eprintln!("SKIP ({SKIP_ENV}=1): {test}: cannot make the shaped link: {why}; {needs}");
            None
        }
        NoRig::Fail if ci => {
            panic!("{test}: CI=true and this machine cannot make the shaped link: {why}; {needs}")
        }
        NoRig::Fail => panic!(
            "{test}: cannot make the shaped link: {why}; {needs} \
             (or set {SKIP_ENV}=1 to skip these tests outside CI, knowing they did not run)"
        ),
    }
}

/// The rig; see [`required`] for a machine that cannot make one.
fn rig_or_fail(test: &str, drop_idle_publisher_s: Option<u32>) -> Option<Rig> {
    required(test, Rig::create(drop_idle_publisher_s))
}

/// 640x360@30, the given bitrate range, autostart to `url` (with `key`, RTMP).
/// `reconnect_cap_ms`: the daemon's longest retry interval (`live.reconnect_cap_ms`);
/// `audio_kbps`: the AAC bitrate (`audio.bitrate_kbps`), the default when `None`.
fn daemon_config(
    url: &str,
    key: Option<&str>,
    max_kbps: u32,
    min_kbps: u32,
    reconnect_cap_ms: Option<u32>,
    audio_kbps: Option<u32>,
) -> (TestConfig, String) {
    let mut cfg = TestConfig::new().destination("uplink", url, key);
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
    if let Some(kbps) = audio_kbps {
        let audio = value
            .get_mut("audio")
            .and_then(|v| v.as_table_mut())
            .expect("[audio] in test config");
        audio.insert("bitrate_kbps".into(), toml::Value::Integer(kbps.into()));
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

/// The number after `key` (e.g. `"target_kbps="`) on a log line.
fn log_number(line: &str, key: &str) -> Option<u32> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Every `target_kbps=N` the daemon logged on a line about `abr`, in order.
fn abr_targets(log: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.contains("abr"))
        .filter_map(|l| log_number(l, "target_kbps="))
        .collect()
}

/// Every (frames kept one in, picture halvings) the daemon logged, in order.
fn abr_shapes(log: &str) -> Vec<(u32, u32)> {
    log.lines()
        .filter(|l| l.contains("abr"))
        .filter_map(|l| {
            Some((
                log_number(l, "keep_one_in=")?,
                log_number(l, "scale_step=")?,
            ))
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

/// `destinations.<dest>.kbps` of the link memory file (`docs/`: state folder).
fn remembered_kbps(path: &Path, dest: &str) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("destinations")?
        .get(dest)?
        .get("kbps")?
        .as_u64()
        .and_then(|k| u32::try_from(k).ok())
}

/// The `(target_kbps, remembered_link_kbps)` of the daemon's show-start line.
fn show_start(log: &str) -> Option<(u32, Option<u32>)> {
    let line = log
        .lines()
        .find(|l| l.contains("abr: ") && l.contains("the show starts"))?;
    Some((
        log_number(line, "target_kbps=")?,
        log_number(line, "remembered_link_kbps="),
    ))
}

/// Waits for publish number `n` (1-based) at the server.
fn wait_publish(rig: &Rig, daemon: &Farmcast, n: usize) {
    assert!(
        common::wait_until(CONNECT, || rig.nginx.publish_times().len() >= n),
        "publish {n} did not reach the server in the namespace within {CONNECT:?}\n--- farmcast ---\n{}\n--- nginx ---\n{}",
        daemon.log(),
        rig.nginx.error_log()
    );
}

/// (a) 4000 kbit/s configured over a 1200 kbit/s link, two shows. The first,
/// with nothing remembered, starts at a quarter of the ceiling (below the
/// link: no frame is lost to a backlog before the first cut) and ramps up;
/// at its end what the link delivered is written to the state folder; the
/// next show starts at 90% of that beside the sound. Neither reconnects.
///
/// Behaviour, not a share of frames: the frame count this test asserted
/// before (>= 95%) measured the machine as much as the link. The frames are
/// counted against wall clock x 30, and under load (two cores, four builds)
/// x264 and the live source fall behind real time before the link is
/// involved: the local recording, which never sees the link, came short by
/// as much (see the MEASURED line). The share of frames through the link is
/// a benchmark figure (bench/uplink.sh, farmcast beside ffmpeg in one run).
#[test]
fn a_thin_link_is_remembered_and_the_next_show_starts_there() {
    let _serial = common::serial();
    let name = "a_thin_link_is_remembered_and_the_next_show_starts_there";
    let Some(rig) = rig_or_fail(name, Some(10)) else {
        return;
    };
    rig.ns.shape(LINK_KBIT).expect("tc tbf on the host end");
    let (cfg, toml) = daemon_config(&rig.nginx.url(), Some("thin"), 4000, 400, None, None);
    let memory = cfg.state_dir().join("abr").join("links.json");

    let mut daemon = Farmcast::start(&toml);
    wait_first_publish(&rig, &daemon);
    let on_air_from = Instant::now();
    std::thread::sleep(Duration::from_secs(15));
    let written_during_the_show = memory.exists();
    let on_air = on_air_from.elapsed();
    let first_log = daemon.log();
    stop_daemon(&mut daemon);
    let remembered = remembered_kbps(&memory, "uplink");
    let _ = rig.nginx.wait_idle(Duration::from_secs(20));
    let first_publishes = rig.nginx.publish_times().len();
    let server: usize = server_frames(&rig).iter().map(|(_, f)| f.len()).sum();
    let local: usize = local_segments(&cfg.recording_dir())
        .iter()
        .map(|s| ffprobe::frames(s, "v").len())
        .sum();
    let expected = (on_air.as_secs_f64() * f64::from(FPS)) as usize;

    let mut daemon = Farmcast::start(&toml);
    wait_publish(&rig, &daemon, first_publishes + 1);
    std::thread::sleep(Duration::from_secs(6));
    let second_log = daemon.log();
    stop_daemon(&mut daemon);
    let publishes = rig.nginx.publish_times().len();
    eprintln!(
        "MEASURED (a) link {LINK_KBIT} kbit/s, 4000 configured: first show starts {:?}, targets {:?}; \
         remembered {remembered:?} kbit/s; second show starts {:?}; publishes {first_publishes} then {publishes}; \
         first show {:.1} s: server {server} frames, local recording {local}, wall clock x {FPS} = {expected}",
        show_start(&first_log),
        abr_targets(&first_log),
        show_start(&second_log),
        on_air.as_secs_f64(),
    );

    if std::env::var_os("FC_VERBOSE").is_some() {
        for l in first_log.lines().chain(second_log.lines()) {
            if l.contains("abr") || l.contains("link memory") {
                eprintln!("{l}");
            }
        }
    }
    assert_eq!(
        show_start(&first_log),
        Some((1000, None)),
        "nothing remembered: the first show starts at a quarter of 4000\n{first_log}"
    );
    assert!(
        !written_during_the_show,
        "the link memory was written before the show's end"
    );
    let kbps = remembered.unwrap_or_else(|| {
        panic!(
            "no link memory at {} after the show's end: {:?}\n{first_log}",
            memory.display(),
            std::fs::read_to_string(&memory)
        )
    });
    // What a 1200 kbit/s link delivered, everything included (the rate is
    // what rtmp2sink wrote, smoothed: a socket buffer can lead it a little).
    assert!(
        (600..=1800).contains(&kbps),
        "remembered {kbps} kbit/s for a {LINK_KBIT} kbit/s link"
    );
    // 90% of it beside the 128 kbit/s of sound.
    let want = ((f64::from(kbps.saturating_sub(128)) * 0.9).round() as u32).clamp(400, 4000);
    assert_eq!(
        show_start(&second_log),
        Some((want, Some(kbps))),
        "the second show must start at 90% of the remembered {kbps} beside the sound\n{second_log}"
    );
    assert_eq!(
        (first_publishes, publishes),
        (1, 2),
        "a connection was dropped and made again; the server log:\n{}",
        rig.nginx.error_log()
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
    let Some(rig) = rig_or_fail(name, Some(10)) else {
        return;
    };
    let (cfg, toml) = daemon_config(&rig.nginx.url(), Some("cut"), 1000, 300, Some(1000), None);
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

/// The link of case (d). x264 budgets per frame at the caps' rate, so at the
/// 2000 kbit/s floor a quarter of the frames sends about 500 kbit/s of video
/// and the halved picture about 250, plus 32 of audio and the muxing: the
/// link sits between the two, well above what keeps rtmp2sink's socket alive
/// (at 180 kbit/s of backlog its writes timed out after 27 s).
const BELOW_FLOOR_KBIT: u32 = 400;
const FULL: (u32, u32) = (640, 360);
const HALF: (u32, u32) = (320, 180);

fn size(f: &FrameInfo) -> Option<(u32, u32)> {
    Some((f.width?, f.height?))
}

/// Polls `check` once a second (it runs ffprobe: not every 20 ms on two
/// cores that also encode) until it holds or `limit` passes; how long it took.
fn poll_for(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let from = Instant::now();
    loop {
        if check() {
            return Some(from.elapsed());
        }
        if from.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The keyframes the server recorded so far, all files in order.
fn server_keyframes(rig: &Rig) -> Vec<FrameInfo> {
    rig.nginx
        .nonempty_recordings()
        .iter()
        .flat_map(|p| ffprobe::keyframes(p))
        .collect()
}

/// Whether a full-size frame follows the first half-size one.
fn full_after_half(frames: &[FrameInfo]) -> bool {
    frames
        .iter()
        .skip_while(|f| size(f) != Some(HALF))
        .any(|f| size(f) == Some(FULL))
}

/// How many frames are shown in `[from, to)` seconds.
fn frames_in(frames: &[FrameInfo], from: f64, to: f64) -> usize {
    frames
        .iter()
        .filter(|f| f.pts_time.is_some_and(|p| p >= from && p < to))
        .count()
}

/// The video bitrate of the frames shown in `[from, to)` seconds, in kbit/s.
fn video_kbps(frames: &[FrameInfo], from: f64, to: f64) -> Option<f64> {
    let bytes: u64 = frames
        .iter()
        .filter(|f| f.pts_time.is_some_and(|p| p >= from && p < to))
        .filter_map(|f| f.pkt_size)
        .sum();
    (to > from).then(|| bytes as f64 * 8.0 / 1000.0 / (to - from))
}

/// (d) A link below what even a quarter of the frames needs at the lowest
/// bitrate: the daemon drops frames, then halves the picture at a keyframe,
/// on the same connection, with the sound going on; once the link is wide
/// again the full picture comes back.
#[test]
fn a_link_below_the_floor_halves_the_picture_then_restores_it() {
    let _serial = common::serial();
    let name = "a_link_below_the_floor_halves_the_picture_then_restores_it";
    let Some(rig) = rig_or_fail(name, Some(10)) else {
        return;
    };
    rig.ns
        .shape(BELOW_FLOOR_KBIT)
        .expect("tc tbf on the host end");
    let (_cfg, toml) = daemon_config(
        &rig.nginx.url(),
        Some("picture"),
        4000,
        2000,
        None,
        Some(32),
    );
    let mut daemon = Farmcast::start(&toml);
    wait_first_publish(&rig, &daemon);
    let on_air_from = Instant::now();

    // The controller needs two cuts to the floor, then 3 s starving for each
    // of decimation 2, decimation 4 and the halving: about 12 s, plus what
    // the shaped link and the server's queue hold back. 45 s is generous.
    let stepped_down_after = poll_for(Duration::from_secs(45), || {
        server_keyframes(&rig).iter().any(|f| size(f) == Some(HALF))
    });
    let unshaped = rig.ns.unshape();
    // Size first, after 2.5 s clear, once the backlog has drained.
    let restored_after = stepped_down_after.and_then(|_| {
        poll_for(Duration::from_secs(30), || {
            full_after_half(&server_keyframes(&rig))
        })
    });
    if restored_after.is_some() {
        // A few seconds at full size, so the end of the recording is judged too.
        std::thread::sleep(Duration::from_secs(3));
    }
    let rss = daemon.pid().and_then(peak_rss_kib);
    let on_air = on_air_from.elapsed();
    let log = daemon.log();
    stop_daemon(&mut daemon);
    let _ = rig.nginx.wait_idle(Duration::from_secs(20));

    let publishes = rig.nginx.publish_times().len();
    let recs = rig.nginx.nonempty_recordings();
    let video: Vec<FrameInfo> = recs.iter().flat_map(|p| ffprobe::frames(p, "v")).collect();
    let audio: Vec<FrameInfo> = recs.iter().flat_map(|p| ffprobe::frames(p, "a")).collect();
    // What ffmpeg says decoding the recordings. Its muxer's complaint about
    // equal timestamps is kept apart: it is about the timing of a few
    // packets at the very start (seen in 2 runs of about 12), not a broken
    // picture; it is counted and printed, the rest must be empty.
    let said: Vec<String> = recs.iter().map(|p| ffprobe::decode_errors(p)).collect();
    let is_dts = |l: &str| {
        l.contains("non monotonically increasing dts") || l.contains("Last message repeated")
    };
    let equal_dts = said
        .iter()
        .flat_map(|e| e.lines())
        .filter(|l| l.contains("non monotonically increasing dts"))
        .count();
    let decode: Vec<String> = said
        .iter()
        .map(|e| {
            e.lines()
                .filter(|l| !is_dts(l))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|e| !e.trim().is_empty())
        .collect();
    let first_half = video.iter().position(|f| size(f) == Some(HALF));
    let first_half_key = first_half.map(|i| video[i].key_frame);
    let back = first_half.and_then(|i| {
        video[i..]
            .iter()
            .position(|f| size(f) == Some(FULL))
            .map(|j| i + j)
    });
    let back_key = back.map(|i| video[i].key_frame);
    let odd_sizes: Vec<_> = video
        .iter()
        .filter_map(size)
        .filter(|s| *s != FULL && *s != HALF)
        .collect();
    // Size changes as the server saw them: 1 down and 1 back is the plan.
    let changes = video
        .windows(2)
        .filter(|w| size(&w[0]) != size(&w[1]))
        .count();
    let pts_of = |i: Option<usize>| i.and_then(|i| video[i].pts_time);
    let video_end = video.last().and_then(|f| f.pts_time);
    let (half_at, back_at) = (pts_of(first_half), pts_of(back));
    // Fewer frames before the halving: decimation 4 shows 7.5 a second of
    // 30 (a full queue can only drop more). Counted, not read off the
    // timestamps: after drops FLV can carry frames with equal ones.
    let frames_before = half_at.map(|t| frames_in(&video, t - 3.0, t));
    let frames_at_end = video_end.map(|t| frames_in(&video, t - 2.0, t + 0.01));
    // The daemon's order: the fewest frames first, then the smaller picture.
    let shapes = abr_shapes(&log);
    let fewest_first = shapes
        .iter()
        .position(|&(_, step)| step > 0)
        .is_some_and(|i| shapes[..i].iter().any(|&(n, _)| n == 4));
    let audio_gap = largest_gap(&audio);
    // Through the step-down and back: from a second before the first
    // half-size frame to the end. The overload before the controller has
    // acted is measured above, not judged here.
    let audio_from = half_at.map(|t| t - 1.0).unwrap_or(f64::INFINITY);
    let audio_through: Vec<FrameInfo> = audio
        .iter()
        .filter(|f| f.pts_time.is_some_and(|p| p >= audio_from))
        .cloned()
        .collect();
    let audio_gap_through = largest_gap(&audio_through);
    let audio_gap_at = {
        let pts: Vec<f64> = audio.iter().filter_map(|f| f.pts_time).collect();
        pts.windows(2)
            .find(|w| w[1] - w[0] >= audio_gap)
            .map(|w| w[0])
    };
    // What each phase really sent (x264 may undershoot its budget).
    let kbps_before = half_at.and_then(|t| video_kbps(&video, t - 3.0, t));
    let kbps_half = half_at.and_then(|t| video_kbps(&video, t, back_at.unwrap_or(t + 3.0)));
    let span = |f: &[FrameInfo]| {
        let pts: Vec<f64> = f.iter().filter_map(|f| f.pts_time).collect();
        pts.last().zip(pts.first()).map_or(0.0, |(l, f)| l - f)
    };
    let (video_span, audio_span) = (span(&video), span(&audio));
    let secs =
        |d: Option<Duration>| d.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64()));
    eprintln!(
        "MEASURED (d) link {BELOW_FLOOR_KBIT} kbit/s, 4000..2000 kbit/s video, 32 kbit/s audio: \
         half size on the server {} after the publish (pts {half_at:?}, keyframe {first_half_key:?}), \
         full size back {} after the unshape ({unshaped:?}; pts {back_at:?}, keyframe {back_key:?}); \
         frames in the 3 s before the halving {frames_before:?} (of {}), in the last 2 s {frames_at_end:?}; \
         video kbit/s in the 3 s before the halving {kbps_before:?}, while halved {kbps_half:?}; \
         size changes {changes}, other sizes {}; video {} frames over {video_span:.1} s, \
         audio {} frames over {audio_span:.1} s, largest audio gap {audio_gap:.3} s (from pts {audio_gap_at:?}), from the step-down on {audio_gap_through:.3} s; \
         publishes {publishes}, recordings {}, on air {:.1} s; packets with equal timestamps {equal_dts}; abr shapes {:?}; \
         abr targets {:?}; peak RSS {} KiB",
        secs(stepped_down_after),
        secs(restored_after),
        3 * FPS,
        odd_sizes.len(),
        video.len(),
        audio.len(),
        recs.len(),
        on_air.as_secs_f64(),
        shapes,
        abr_targets(&log),
        rss.map_or("?".into(), |r| r.to_string()),
    );
    if std::env::var_os("FC_VERBOSE").is_some() {
        let audio_pts: Vec<f64> = audio.iter().filter_map(|f| f.pts_time).collect();
        let audio_gaps: Vec<(f64, f64)> = audio_pts
            .windows(2)
            .filter(|w| w[1] - w[0] > 0.3)
            .map(|w| (w[0], w[1] - w[0]))
            .collect();
        eprintln!("audio gaps over 0.3 s (pts, length): {audio_gaps:?}");
        // What the server got, two seconds at a time: frames, bit rate, sizes.
        let end = video.last().and_then(|f| f.pts_time).unwrap_or(0.0);
        let mut t = 0.0;
        while t < end {
            let shown: Vec<&FrameInfo> = video
                .iter()
                .filter(|f| f.pts_time.is_some_and(|p| p >= t && p < t + 2.0))
                .collect();
            let mut sizes: Vec<(u32, u32)> = shown.iter().filter_map(|f| size(f)).collect();
            sizes.dedup();
            eprintln!(
                "server {t:5.1}..{:5.1} s: {:3} frames, {:6.0} kbit/s video, sizes {sizes:?}",
                t + 2.0,
                shown.len(),
                video_kbps(&video, t, t + 2.0).unwrap_or(0.0)
            );
            t += 2.0;
        }
        let abr: Vec<&str> = log.lines().filter(|l| l.contains("abr")).collect();
        eprintln!(
            "--- farmcast (abr) ---\n{}\n--- farmcast ---\n{log}\n--- nginx ---\n{}",
            abr.join("\n"),
            rig.nginx.error_log()
        );
    }
    assert_eq!(
        publishes,
        1,
        "the connection was dropped and made again; the server log:\n{}",
        rig.nginx.error_log()
    );
    assert!(
        first_half.is_some(),
        "no {HALF:?} frame reached the server within 45 s of a {BELOW_FLOOR_KBIT} kbit/s link; abr lines:\n{}",
        log.lines().filter(|l| l.contains("abr")).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        first_half_key,
        Some(true),
        "the first half-size frame is not a keyframe"
    );
    assert!(
        fewest_first && frames_before.is_some_and(|n| n <= (3 * FPS / 2) as usize),
        "frames were not dropped before the picture was halved: {frames_before:?} frames in the 3 s before, \
         abr shapes {shapes:?}"
    );
    assert!(
        back.is_some(),
        "the full picture did not come back within 30 s of the unshape"
    );
    assert_eq!(
        back_key,
        Some(true),
        "the picture grew back on a non-keyframe"
    );
    assert!(
        video.last().and_then(size) == Some(FULL),
        "the recording does not end at full size"
    );
    assert!(odd_sizes.is_empty(), "frames of other sizes: {odd_sizes:?}");
    let through_span = span(&audio_through);
    let video_through = video_end.zip(half_at).map_or(0.0, |(e, h)| e - (h - 1.0));
    assert!(
        !audio_through.is_empty()
            && audio_gap_through < 1.0
            && audio_span >= video_span - 1.0
            && through_span >= video_through - 1.0,
        "the sound did not go on through the step-down: largest gap {audio_gap_through:.3} s, \
         {through_span:.1} s of audio for {video_through:.1} s of video ({audio_span:.1} s for {video_span:.1} s in all)"
    );
    assert!(
        decode.is_empty(),
        "ffmpeg could not decode the recording cleanly: {decode:?}"
    );
}

/// (e) The same thin link over SRT, to srt-live-transmit in the namespace.
/// srtsink never blocks on a thin link (libsrt paces to the link and drops
/// what is too late), so no queue of ours grows: only SRT's own statistics
/// can tell the daemon to back off, and this test fails if they are not read.
#[test]
fn an_srt_link_that_drops_late_packets_adapts() {
    let _serial = common::serial();
    let Some(ns) = required(
        "an_srt_link_that_drops_late_packets_adapts",
        netns::NetNs::create(),
    ) else {
        return;
    };
    let mut srt = netns::srt_listener(&ns);
    ns.shape(LINK_KBIT).expect("tc tbf on the host end");
    let url = format!("srt://{}:{}", ns.ns_addr, netns::SRT_PORT);
    let (_cfg, toml) = daemon_config(&url, None, 4000, 400, None, None);

    let mut daemon = Farmcast::start(&toml);
    assert!(
        common::wait_until(Duration::from_secs(30), || srt.received_bytes() > 0),
        "nothing reached the SRT listener in the namespace\n{}",
        daemon.log()
    );
    let on_air_from = Instant::now();
    let mut adapted_after = None;
    while on_air_from.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(250));
        if adapted_after.is_none() && abr_targets(&daemon.log()).iter().any(|&t| t < LINK_KBIT) {
            adapted_after = Some(on_air_from.elapsed());
        }
    }
    let on_air = on_air_from.elapsed();
    let log = daemon.log();
    assert!(daemon.stop().is_some(), "farmcast did not exit\n{log}");
    std::thread::sleep(Duration::from_secs(2));
    srt.stop();

    let frames = ffprobe::frames(&srt.path(), "v");
    let pts: Vec<f64> = frames.iter().filter_map(|f| f.pts_time).collect();
    let last = pts.iter().cloned().fold(f64::MIN, f64::max);
    let late: usize = pts.iter().filter(|&&p| p > last - 30.0).count();
    let ratio_all = frames.len() as f64 / (on_air.as_secs_f64() * f64::from(FPS));
    let ratio_late = late as f64 / (30.0 * f64::from(FPS));
    let srt_lines = log.lines().filter(|l| l.contains("why=\"SRT ")).count();
    eprintln!(
        "MEASURED SRT link {LINK_KBIT} kbit/s, 4000 configured: frames {} in {:.0} s = {:.1}%, \
         last 30 s {late} = {:.1}%, first target below the link after {}, abr lines blaming SRT drops {srt_lines}, targets {:?}",
        frames.len(),
        on_air.as_secs_f64(),
        ratio_all * 100.0,
        ratio_late * 100.0,
        adapted_after.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64())),
        abr_targets(&log),
    );
    if std::env::var_os("FC_VERBOSE").is_some() {
        let gaps: Vec<(f64, f64)> = pts
            .windows(2)
            .filter(|w| w[1] - w[0] > 0.1)
            .map(|w| (w[0], w[1] - w[0]))
            .collect();
        eprintln!("video gaps over 0.1 s (pts, length): {gaps:?}");
        eprintln!("--- farmcast ---\n{log}");
    }
    assert!(
        adapted_after.is_some_and(|d| d <= Duration::from_secs(10)),
        "the encoder target did not fall below {LINK_KBIT} kbit/s within 10 s ({adapted_after:?})"
    );
    assert!(srt_lines > 0, "no cut was blamed on SRT's own statistics");
    assert!(
        ratio_late >= 0.95,
        "after adapting, only {late} frames of the last 30 s arrived ({:.1}%)",
        ratio_late * 100.0
    );
}

/// A missing rig fails in CI whatever the environment says, and elsewhere
/// unless the skip is asked for by name.
#[test]
fn a_missing_rig_fails_unless_skipped_explicitly_outside_ci() {
    assert_eq!(no_rig(true, false), NoRig::Fail);
    assert_eq!(no_rig(true, true), NoRig::Fail);
    assert_eq!(no_rig(false, false), NoRig::Fail);
    assert_eq!(no_rig(false, true), NoRig::Skip);
}

#[test]
fn abr_lines_are_read_from_the_daemon_log() {
    let log = "2026-01-01T00:00:00Z  INFO farmcast::app: abr target_kbps=2800 measured_kbps=1190\n\
               2026-01-01T00:00:01Z  INFO farmcast::app: connecting target_kbps=5\n\
               2026-01-01T00:00:01Z  INFO farmcast::app: abr target_kbps=1960";
    assert_eq!(abr_targets(log), [2800, 1960]);
    assert!(abr_targets("abr target_kbps=").is_empty());
    let shapes = "WARN farmcast::app: abr: even the lowest bitrate does not fit; fewer or smaller frames keep_one_in=4 scale_step=1\n\
                  WARN farmcast::app: abr: x keep_one_in=4 scale_step=0\n\
                  INFO farmcast::app: abr target_kbps=250 applied=true";
    assert_eq!(abr_shapes(shapes), [(4, 1), (4, 0)]);
}

/// The rig itself: the server answers over the pair, a cut leaves no route
/// (the blackhole, not the default gateway), and a restore brings it back.
#[test]
fn the_rig_cuts_and_restores_the_link_without_a_way_out() {
    let Some(rig) = rig_or_fail("the_rig_cuts_and_restores_the_link_without_a_way_out", None)
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
