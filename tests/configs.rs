//! Every shipped file in `configs/` loads and validates. A renamed or
//! misspelled key in a shipped file fails here, not on a farmer's box.

use std::path::{Path, PathBuf};

use farmcast::config::{
    check_file, AudioSource, GpioBackend, Problem, ScaleKind, Unit, VideoSource,
};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn shipped() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(configs_dir())
        .expect("configs/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// `farmcast.toml` points at `/etc/farmcast/keys/...`, which a build machine
/// does not have: that, and only that, is acceptable.
fn acceptable(file: &Path, p: &Problem) -> bool {
    file.ends_with("farmcast.toml")
        && p.path.ends_with(".key_file")
        && p.message.contains("cannot read")
}

#[test]
fn every_shipped_config_is_valid() {
    let files = shipped();
    assert!(
        files.len() >= 2,
        "expected farmcast.toml and demo.toml, found {files:?}"
    );
    for file in files {
        if let Err(problems) = check_file(&file) {
            let shown = file.display().to_string();
            let bad: Vec<String> = problems
                .iter()
                .filter(|p| !acceptable(&file, p))
                .map(|p| p.in_file(&shown).to_string())
                .collect();
            assert!(bad.is_empty(), "{}", bad.join("\n"));
        }
    }
}

#[test]
fn the_real_box_config_only_lacks_its_key_file() {
    let file = configs_dir().join("farmcast.toml");
    match check_file(&file) {
        Ok(c) => assert!(c.destinations.iter().all(|d| d.key.is_some())),
        Err(problems) => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].path, "destinations[0].key_file");
            assert!(problems[0].line.is_some());
        }
    }
}

#[test]
fn every_key_of_the_real_box_config_is_commented() {
    let src = std::fs::read_to_string(configs_dir().join("farmcast.toml")).expect("readable");
    let lines: Vec<&str> = src.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let is_key = !t.is_empty() && !t.starts_with('#') && !t.starts_with('[');
        if is_key {
            let above = i
                .checked_sub(1)
                .map(|j| lines[j].trim())
                .unwrap_or_default();
            assert!(
                above.starts_with('#'),
                "line {}: `{t}` has no comment above it",
                i + 1
            );
        }
    }
}

#[test]
fn the_demo_is_what_the_demo_promises() {
    let c = check_file(&configs_dir().join("demo.toml")).expect("demo.toml is valid");
    assert_eq!(c.video.source, VideoSource::Test);
    assert_eq!(
        (c.video.width, c.video.height, c.video.framerate),
        (1280, 720, 30)
    );
    assert_eq!(c.video.bitrate_kbps, 2500);
    assert_eq!(c.audio.source, AudioSource::Test);
    assert!(c.live.autostart);
    assert_eq!(c.destinations.len(), 1);
    assert_eq!(
        c.destinations[0].ingest_url(),
        "rtmp://127.0.0.1:1935/live/farm-show"
    );
    assert_eq!(c.gpio.backend, GpioBackend::Sim);
    assert_eq!(c.gpio.sim_socket, "/tmp/farmcast-demo/sim.sock");
    assert_eq!(c.scale.kind, ScaleKind::Sim);
    assert_eq!(c.recording.dir, "/tmp/farmcast-demo/recordings");
    // The demo script starts a local broker; everything demo lives under /tmp.
    assert!(c.mqtt.enabled);
    assert_eq!(c.mqtt.url, "mqtt://127.0.0.1:1883");
    assert!(c.state_dir.starts_with("/tmp/farmcast-demo"));
    let units: Vec<Unit> = c.products.iter().map(|p| p.unit).collect();
    assert_eq!(units, [Unit::Kg, Unit::Piece]);
    assert!(
        c.products.iter().any(|p| !p.name.is_ascii()),
        "one product has a Chinese name"
    );
    // The key is "farm-show"; Debug of the destinations must not show it.
    assert!(!format!("{:?}", c.destinations).contains("farm-show"));
    // Long enough not to draw the short-key warning (a key as short as the
    // device id would blank "demo" out of every log line).
    let report = farmcast::config::check_file_report(&configs_dir().join("demo.toml"));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

/// The SD-card image turns the packaged config's cleartext local broker into
/// TLS with the provisioned CA and login (`image-build/mqtt-tls.sh`): the
/// result is still a valid config, and it speaks `mqtts://`.
#[test]
fn the_image_config_talks_to_its_broker_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("farmcast.toml");
    std::fs::copy(configs_dir().join("farmcast.toml"), &conf).expect("copy");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("image-build/mqtt-tls.sh");
    let out = std::process::Command::new("sh")
        .arg(&script)
        .arg(&conf)
        .output()
        .expect("run mqtt-tls.sh");
    assert!(
        out.status.success(),
        "mqtt-tls.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let problems = match check_file(&conf) {
        Ok(_) => Vec::new(),
        Err(p) => p,
    };
    let unexpected: Vec<&Problem> = problems.iter().filter(|p| !acceptable(&conf, p)).collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let text = std::fs::read_to_string(&conf).expect("read");
    let table: toml::Table = toml::from_str(&text).expect("TOML");
    let mqtt = table["mqtt"].as_table().expect("[mqtt]");
    assert!(
        mqtt["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("mqtts://")),
        "{mqtt:?}"
    );
    assert!(mqtt.contains_key("ca_file") && mqtt.contains_key("password_file"));
    // Run twice (an image rebuilt from a customised tree): the build fails
    // loudly rather than ship a config it did not understand.
    let again = std::process::Command::new("sh")
        .arg(&script)
        .arg(&conf)
        .output()
        .expect("run mqtt-tls.sh again");
    assert!(!again.status.success());
}
