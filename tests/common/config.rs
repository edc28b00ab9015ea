//! Small, honest daemon configs for streaming tests: test camera and tone,
//! 320x240 x264 ultrafast (two cores must keep up), sim buttons, recordings
//! and the sim socket in a temp dir that lives as long as the value.

use std::fmt::Write as _;
use std::path::PathBuf;

pub struct TestConfig {
    pub dir: tempfile::TempDir,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub autostart: bool,
    destinations: Vec<(String, String, Option<String>)>,
}

impl TestConfig {
    pub fn new() -> TestConfig {
        TestConfig {
            dir: tempfile::tempdir().expect("tempdir for config"),
            width: 320,
            height: 240,
            fps: 30,
            autostart: true,
            destinations: Vec::new(),
        }
    }

    pub fn autostart(mut self, on: bool) -> Self {
        self.autostart = on;
        self
    }

    /// Adds a destination; `key` is the stream key (the RTMP stream name).
    pub fn destination(mut self, name: &str, url: &str, key: Option<&str>) -> Self {
        self.destinations
            .push((name.into(), url.into(), key.map(str::to_string)));
        self
    }

    pub fn sim_socket(&self) -> PathBuf {
        self.dir.path().join("sim.sock")
    }

    pub fn recording_dir(&self) -> PathBuf {
        self.dir.path().join("recordings")
    }

    /// The daemon's `state_dir`: always in the temp dir, so that no test
    /// reads or writes the machine's `/var/lib/farmcast`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// [`toml`](Self::toml) as a table with `[mqtt]` on `mqtt_port` with a status every second: the base of
    /// the daemon-over-MQTT tests' configs.
    pub fn mqtt_table(&self, mqtt_port: u16) -> toml::Table {
        let mut t: toml::Table = toml::from_str(&self.toml()).expect("harness config is TOML");
        let mqtt: toml::Table = toml::from_str(&format!(
            "enabled = true\nurl = \"mqtt://127.0.0.1:{mqtt_port}\"\nstatus_interval_s = 1\n"
        ))
        .expect("mqtt table");
        t.insert("mqtt".into(), toml::Value::Table(mqtt));
        t
    }

    pub fn toml(&self) -> String {
        let mut t = format!(
            "device_id = \"test-box\"\nstate_dir = {state:?}\n\n\
             [video]\nsource = \"test\"\nwidth = {w}\nheight = {h}\nframerate = {fps}\n\
             bitrate_kbps = 600\nmin_bitrate_kbps = 200\nencoder = \"x264enc\"\n\
             x264_preset = \"ultrafast\"\nkeyframe_interval_s = 1\n\n\
             [audio]\nsource = \"test\"\n\n\
             [live]\nautostart = {auto}\n\n\
             [recording]\ndir = {rec:?}\n\n\
             [gpio]\nbackend = \"sim\"\nsim_socket = {sock:?}\n\n\
             [scale]\nkind = \"none\"\n\n\
             [mqtt]\nenabled = false\n",
            w = self.width,
            h = self.height,
            fps = self.fps,
            auto = self.autostart,
            rec = self.recording_dir().display().to_string(),
            sock = self.sim_socket().display().to_string(),
            state = self.state_dir().display().to_string(),
        );
        for (name, url, key) in &self.destinations {
            let _ = write!(t, "\n[[destinations]]\nname = {name:?}\nurl = {url:?}\n");
            if let Some(key) = key {
                let _ = writeln!(t, "key = {key:?}");
            }
        }
        t
    }
}

/// A sim scale that settles well within its wait, and one product sold by
/// weight (`mussels`, 30.00 CNY/kg): the selling part of the command tests.
pub const SIM_SCALE_AND_MUSSELS: &str = "[scale]\nkind = \"sim\"\nsettle_wait_ms = 4000\n\n\
     [[products]]\nid = \"mussels\"\nname = \"Mussels\"\nunit = \"kg\"\n\
     unit_price = \"30.00\"\ncurrency = \"CNY\"\n";
