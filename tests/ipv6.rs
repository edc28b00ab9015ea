//! An ingest server on an IPv6 address (issue 13, one URL parser): the
//! `farmcast` binary streams to nginx-rtmp listening on `[::1]` only, and
//! when that server goes down and comes back, the down-server probe (a bare
//! TCP connect every half second) brings the stream back at once. The old
//! destination parser made `[::1]:1935:1935` of such a URL and the probe
//! kept IPv4 addresses only, so an IPv6 server waited out the whole backoff.
//!
//! Small and serial: 320x240 at 15 fps, x264 ultrafast, `common::serial()`.

mod common;

use std::time::{Duration, Instant};

use common::config::TestConfig;
use common::ffprobe::{self, Expect};
use common::{Farmcast, NginxRtmp};

/// Time for the daemon to build its pipeline and connect, on a busy machine.
const CONNECT: Duration = Duration::from_secs(20);
const FPS: u32 = 15;

fn config(nginx: &NginxRtmp) -> TestConfig {
    let mut cfg = TestConfig::new().destination("main", &nginx.url("live"), Some("show"));
    cfg.fps = FPS;
    cfg
}

fn wait_publishes(nginx: &NginxRtmp, n: usize, daemon: &Farmcast, within: Duration) {
    assert!(
        nginx.wait_for_publishes("live", n, within),
        "nginx on {} saw {} publish(es), expected {n} within {within:?}\n--- farmcast log ---\n{}\n--- nginx ---\n{}",
        nginx.url("live"),
        nginx.publish_times("live").len(),
        daemon.log(),
        nginx.error_log()
    );
}

#[test]
fn streams_to_an_ipv6_server() {
    let _serial = common::serial();
    let nginx = NginxRtmp::start_ipv6();
    assert!(nginx.url("live").starts_with("rtmp://[::1]:"));
    let mut daemon = Farmcast::start(&config(&nginx).toml());
    wait_publishes(&nginx, 1, &daemon, CONNECT);
    assert!(nginx.media_flows(), "no media at [::1]\n{}", daemon.log());
    std::thread::sleep(Duration::from_secs(3));
    daemon.kill_with(libc::SIGTERM);
    assert!(
        daemon.wait_exit(Duration::from_secs(15)).is_some(),
        "farmcast did not exit\n{}",
        daemon.log()
    );
    assert!(nginx.wait_idle(Duration::from_secs(15)), "{}", nginx.stat());
    let recs = nginx.nonempty_recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    ffprobe::assert_valid_av(
        &recs[0],
        &Expect {
            width: 320,
            height: 240,
            fps: FPS,
            min_frames: 2 * FPS as usize,
        },
    );
    // nginx saw an IPv6 client: the daemon did not reach it some other way.
    assert!(
        nginx.error_log().contains("client: ::1"),
        "{}",
        nginx.error_log()
    );
}

/// The reconnect backoff is allowed to grow to a minute; after 25 s of
/// outage the next attempt is several seconds to half a minute away. The
/// probe must notice the server's return within about a second: the stream
/// is back within 6 s of the restart (the old code waited out the backoff).
#[test]
fn a_down_ipv6_server_is_probed_and_rejoined_at_once() {
    let _serial = common::serial();
    let mut nginx = NginxRtmp::start_ipv6();
    let mut doc: toml::Table = toml::from_str(&config(&nginx).toml()).expect("config is TOML");
    doc.entry("live")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("[live] is a table")
        .insert("reconnect_cap_ms".into(), toml::Value::Integer(60_000));
    let mut daemon = Farmcast::start(&toml::to_string(&doc).expect("config TOML"));
    wait_publishes(&nginx, 1, &daemon, CONNECT);

    nginx.kill();
    std::thread::sleep(Duration::from_secs(25));
    assert!(daemon.is_running(), "farmcast died\n{}", daemon.log());
    nginx.restart();
    let restarted = Instant::now();
    wait_publishes(&nginx, 2, &daemon, Duration::from_secs(6));
    let back_in = restarted.elapsed();
    assert!(
        daemon.log().contains("server reachable again"),
        "the stream came back in {back_in:?} without the probe\n{}",
        daemon.log()
    );
    assert!(
        nginx.media_flows(),
        "no media after the return\n{}",
        daemon.log()
    );
    eprintln!("back on air {back_in:?} after the IPv6 server's restart");
}
