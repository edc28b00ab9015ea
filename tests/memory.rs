//! Issue 14's memory savings hold in the real daemon (figures in
//! BENCHMARKS.md, section `memory`): a box that streams to RTMP maps
//! neither gst-libav (its AAC comes from voaacenc; gst-libav alone was
//! about 40 MiB resident) nor SRT's libraries, and runs without transparent
//! huge pages (x264 asks for them; 5-6 MiB). What reached the server is still
//! valid H.264 and AAC.

mod common;

use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::ffprobe::{self, Expect};
use common::{Farmcast, NginxRtmp};

/// Time for the daemon to build its pipeline and connect, on a busy machine.
const CONNECT: Duration = Duration::from_secs(20);

#[test]
fn an_rtmp_box_maps_neither_gst_libav_nor_srt_and_has_no_huge_pages() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start();
    let cfg = TestConfig::new().destination("main", &nginx.url("live"), Some("mem"));
    let mut daemon = Farmcast::start(&cfg.toml());
    assert!(
        nginx.wait_for_publishes("live", 1, CONNECT),
        "no publish within {CONNECT:?}\n{}",
        daemon.log()
    );
    let on_air = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let pid = daemon.pid().expect("the daemon runs");
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let on_air = on_air.elapsed();
    assert!(daemon.stop().is_some(), "no clean exit\n{}", daemon.log());

    let mapped = |lib: &str| maps.lines().any(|l| l.ends_with(lib));
    assert!(mapped("libgstvoaacenc.so"), "AAC by voaacenc\n{maps}");
    assert!(!mapped("libgstlibav.so"), "gst-libav is not loaded\n{maps}");
    assert!(
        !mapped("libgstsrt.so"),
        "no SRT destination, no SRT plugin\n{maps}"
    );
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(thp, Some("0"), "transparent huge pages off\n{status}");

    assert!(nginx.wait_idle(Duration::from_secs(10)), "{}", nginx.stat());
    let recs = nginx.nonempty_recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let expect = Expect {
        width: cfg.width,
        height: cfg.height,
        fps: cfg.fps,
        min_frames: (on_air.as_secs() as usize).saturating_sub(1) * cfg.fps as usize,
    };
    ffprobe::assert_valid_av(&recs[0], &expect);
}
