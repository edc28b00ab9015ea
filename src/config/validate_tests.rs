//! One case per validation rule: each bad value must yield exactly one problem
//! on its key path, and each boundary value must yield none.

use super::*;
use crate::config::secret::Secret;

const DEST: &str =
    "[[destinations]]\nname = \"main\"\nurl = \"rtmp://127.0.0.1:1935/live\"\nkey = \"k\"\n";
const PROD: &str = "[[products]]\nid = \"p\"\nname = \"n\"\nunit = \"kg\"\nunit_price = \"1.00\"\ncurrency = \"CNY\"\n";

/// Problems of `src` as `check-config` finds them (key files aside), lines
/// left out: the walk finds ranges and types, [`validate`] the rest.
fn problems(src: &str) -> Vec<Problem> {
    crate::config::load::check_values(src)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.at_line(None))
        .collect()
}

fn product(field: &str) -> String {
    let mut lines: Vec<String> = PROD.lines().map(String::from).collect();
    let key = field.split('=').next().unwrap_or_default().trim();
    lines.retain(|l| !l.starts_with(&format!("{key} ")));
    lines.push(field.to_string());
    lines.join("\n") + "\n"
}

fn dest(fields: &str) -> String {
    format!("[[destinations]]\nname = \"main\"\n{fields}\n")
}

#[test]
fn defaults_are_valid() {
    assert_eq!(validate(&Config::default()), vec![]);
}

#[test]
fn each_bad_value_is_one_problem_on_its_path() {
    let cases: Vec<(String, &str, &str)> = vec![
        // (TOML, key path, fragment of the message)
        ("device_id = \"\"".into(), "device_id", "empty"),
        ("device_id = \"farm/01\"".into(), "device_id", "'/'"),
        ("device_id = \"farm+\"".into(), "device_id", "'+'"),
        ("device_id = \"farm#1\"".into(), "device_id", "'#'"),
        (
            format!("device_id = \"{}\"", "a".repeat(65)),
            "device_id",
            "64",
        ),
        (
            "[video]\nsource = \"webcam\"".into(),
            "video.source",
            "v4l2:/dev/video0",
        ),
        (
            "[video]\nsource = \"v4l2:video0\"".into(),
            "video.source",
            "/dev/",
        ),
        (
            "[video]\nsource = \"v4l2:/dev/\"".into(),
            "video.source",
            "/dev/",
        ),
        ("[video]\nsource = \"file:\"".into(), "video.source", "path"),
        ("[video]\nwidth = 1279".into(), "video.width", "even"),
        ("[video]\nheight = 721".into(), "video.height", "even"),
        ("[video]\nwidth = 158".into(), "video.width", "160 to 3840"),
        ("[video]\nwidth = 3842".into(), "video.width", "160 to 3840"),
        (
            "[video]\nheight = 118".into(),
            "video.height",
            "120 to 2160",
        ),
        (
            "[video]\nheight = 2162".into(),
            "video.height",
            "120 to 2160",
        ),
        (
            "[video]\nframerate = 0".into(),
            "video.framerate",
            "1 to 60",
        ),
        (
            "[video]\nframerate = 61".into(),
            "video.framerate",
            "1 to 60",
        ),
        (
            "[video]\nbitrate_kbps = 50001".into(),
            "video.bitrate_kbps",
            "100 to 50000",
        ),
        (
            "[video]\nmin_bitrate_kbps = 99".into(),
            "video.min_bitrate_kbps",
            "100 to 50000",
        ),
        (
            "[video]\nbitrate_kbps = 1000\nmin_bitrate_kbps = 1001".into(),
            "video.min_bitrate_kbps",
            "video.bitrate_kbps",
        ),
        (
            "[video]\nencoder = \"x264 enc\"".into(),
            "video.encoder",
            "auto",
        ),
        (
            "[video]\nencoder = \"X264Enc\"".into(),
            "video.encoder",
            "x264enc",
        ),
        ("[video]\nencoder = \"\"".into(), "video.encoder", "auto"),
        (
            "[video]\nkeyframe_interval_s = 0".into(),
            "video.keyframe_interval_s",
            "1 to 10",
        ),
        (
            "[video]\nkeyframe_interval_s = 11".into(),
            "video.keyframe_interval_s",
            "1 to 10",
        ),
        (
            "[video]\nx264_preset = \"fastest\"".into(),
            "video.x264_preset",
            "\"ultrafast\"",
        ),
        (
            "[audio]\nsource = \"mic\"".into(),
            "audio.source",
            "alsa:hw:CARD=Device,DEV=0",
        ),
        (
            "[audio]\nsource = \"alsa:\"".into(),
            "audio.source",
            "ALSA device",
        ),
        (
            "[audio]\nbitrate_kbps = 31".into(),
            "audio.bitrate_kbps",
            "32 to 320",
        ),
        (
            "[audio]\nbitrate_kbps = 321".into(),
            "audio.bitrate_kbps",
            "32 to 320",
        ),
        (
            "[audio]\noffset_ms = -5001".into(),
            "audio.offset_ms",
            "-5000 to 5000",
        ),
        (
            "[audio]\noffset_ms = 5001".into(),
            "audio.offset_ms",
            "-5000 to 5000",
        ),
        (
            "[live]\nreconnect_cap_ms = 99".into(),
            "live.reconnect_cap_ms",
            "100 to 60000",
        ),
        (
            "[live]\nreconnect_cap_ms = 60001".into(),
            "live.reconnect_cap_ms",
            "100 to 60000",
        ),
        (
            "[live]\nslate_image = \" \"".into(),
            "live.slate_image",
            "empty",
        ),
        (
            "[[destinations]]\nname = \"\"\nurl = \"rtmp://h/live\"\nkey = \"k\"".into(),
            "destinations[0].name",
            "empty",
        ),
        (
            "[[destinations]]\nname = \"a b\"\nurl = \"rtmp://h/live\"\nkey = \"k\"".into(),
            "destinations[0].name",
            "' '",
        ),
        (
            format!("{DEST}{DEST}"),
            "destinations[1].name",
            "destinations[0].name",
        ),
        (
            dest("url = \"http://h/live\"\nkey = \"k\""),
            "destinations[0].url",
            "rtmp://",
        ),
        (
            dest("url = \"h/live\"\nkey = \"k\""),
            "destinations[0].url",
            "no scheme",
        ),
        (
            dest("url = \"rtmp:///live\"\nkey = \"k\""),
            "destinations[0].url",
            "server name",
        ),
        (
            dest("url = \"rtmp://h/live \"\nkey = \"k\""),
            "destinations[0].url",
            "space",
        ),
        (
            dest("url = \"rtmp://h:70000/live\"\nkey = \"k\""),
            "destinations[0].url",
            "70000",
        ),
        (
            dest("url = \"srt://h\"\nkey = \"k\""),
            "destinations[0].url",
            "port",
        ),
        (
            dest("url = \"rtmp://h\"\nkey = \"k\""),
            "destinations[0].url",
            "application",
        ),
        (
            dest("url = \"rtmp://h/live\""),
            "destinations[0].url",
            "stream key",
        ),
        (
            dest("url = \"rtmp://h/live\"\nkey = \"k\"\nkey_file = \"/k\""),
            "destinations[0].key",
            "both",
        ),
        (
            dest("url = \"rtmp://h/live\"\nkey = \"\""),
            "destinations[0].key",
            "empty",
        ),
        (
            dest("url = \"rtmp://h/live\"\nkey_file = \"\""),
            "destinations[0].key_file",
            "empty",
        ),
        ("[recording]\ndir = \"\"".into(), "recording.dir", "empty"),
        (
            "[recording]\nsegment_s = 9".into(),
            "recording.segment_s",
            "10 to 3600",
        ),
        (
            "[recording]\nsegment_s = 3601".into(),
            "recording.segment_s",
            "10 to 3600",
        ),
        (
            "[recording]\nmax_gb = 0.0".into(),
            "recording.max_gb",
            "0.001 to 1000000",
        ),
        (
            "[recording]\nmax_gb = -1.0".into(),
            "recording.max_gb",
            "0.001 to 1000000",
        ),
        (
            "[recording]\nmax_gb = nan".into(),
            "recording.max_gb",
            "out of range",
        ),
        (
            "[gpio]\nbackend = \"wiringpi\"".into(),
            "gpio.backend",
            "\"rppal\", \"sim\"",
        ),
        (
            "[gpio]\nbackend = \"sim\"\nsim_socket = \"\"".into(),
            "gpio.sim_socket",
            "empty",
        ),
        (
            "[gpio]\ngo_live_pin = 28".into(),
            "gpio.go_live_pin",
            "0 to 27",
        ),
        (
            "[gpio]\ntally_led_pin = 40".into(),
            "gpio.tally_led_pin",
            "0 to 27",
        ),
        (
            "[gpio]\nstatus_led_pin = 28".into(),
            "gpio.status_led_pin",
            "0 to 27",
        ),
        (
            "[gpio]\ntally_led_pin = 17".into(),
            "gpio.tally_led_pin",
            "gpio.go_live_pin",
        ),
        (
            "[gpio]\nstatus_led_pin = 27".into(),
            "gpio.status_led_pin",
            "gpio.tally_led_pin",
        ),
        (
            product("button_pin = 17"),
            "products[0].button_pin",
            "gpio.go_live_pin",
        ),
        (
            product("button_pin = 30"),
            "products[0].button_pin",
            "0 to 27",
        ),
        (
            "[gpio]\ndebounce_ms = 0".into(),
            "gpio.debounce_ms",
            "1 to 500",
        ),
        (
            "[gpio]\ndebounce_ms = 501".into(),
            "gpio.debounce_ms",
            "1 to 500",
        ),
        (
            "[gpio]\nlong_press_ms = 499".into(),
            "gpio.long_press_ms",
            "500 to 10000",
        ),
        (
            "[gpio]\nlong_press_ms = 10001".into(),
            "gpio.long_press_ms",
            "500 to 10000",
        ),
        (
            "[scale]\nkind = \"hx712\"".into(),
            "scale.kind",
            "\"hx711\"",
        ),
        (product("id = \"\""), "products[0].id", "empty"),
        (product("id = \"a/b\""), "products[0].id", "'/'"),
        (format!("{PROD}{PROD}"), "products[1].id", "products[0].id"),
        (product("name = \" \""), "products[0].name", "empty"),
        (
            product("unit = \"g\""),
            "products[0].unit",
            "\"kg\", \"piece\"",
        ),
        (
            product("unit_price = \"\""),
            "products[0].unit_price",
            "not a price",
        ),
        (
            product("unit_price = \"1,50\""),
            "products[0].unit_price",
            "not a price",
        ),
        (
            product("unit_price = \"-1\""),
            "products[0].unit_price",
            "not a price",
        ),
        (
            product("unit_price = \".5\""),
            "products[0].unit_price",
            "not a price",
        ),
        (
            product("unit_price = \"5.\""),
            "products[0].unit_price",
            "not a price",
        ),
        (
            product("unit_price = \"1e3\""),
            "products[0].unit_price",
            "not a price",
        ),
        (
            product("unit_price = \"1.005\""),
            "products[0].unit_price",
            "at most 2",
        ),
        (
            format!(
                "{}currency = \"JPY\"\n",
                product("unit_price = \"300.5\"").replace("currency = \"CNY\"\n", "")
            ),
            "products[0].unit_price",
            "none",
        ),
        (
            product("currency = \"cny\""),
            "products[0].currency",
            "three capital",
        ),
        (
            product("currency = \"RMB1\""),
            "products[0].currency",
            "three capital",
        ),
        (
            "[mqtt]\nurl = \"tcp://h:1883\"".into(),
            "mqtt.url",
            "mqtt://",
        ),
        (
            "[mqtt]\nurl = \"broker:1883\"".into(),
            "mqtt.url",
            "no scheme",
        ),
        ("[mqtt]\nurl = \"mqtt://\"".into(), "mqtt.url", "broker"),
        ("[mqtt]\nurl = \"mqtt://h:x\"".into(), "mqtt.url", "port"),
        (
            "[mqtt]\ntopic_prefix = \"\"".into(),
            "mqtt.topic_prefix",
            "empty",
        ),
        (
            "[mqtt]\ntopic_prefix = \"farm/#\"".into(),
            "mqtt.topic_prefix",
            "'#'",
        ),
        (
            "[mqtt]\ntopic_prefix = \"farm/+/x\"".into(),
            "mqtt.topic_prefix",
            "'+'",
        ),
        (
            "[mqtt]\ntopic_prefix = \"farm cast\"".into(),
            "mqtt.topic_prefix",
            "' '",
        ),
        (
            "[mqtt]\ntopic_prefix = \"/farmcast\"".into(),
            "mqtt.topic_prefix",
            "start or end",
        ),
        (
            "[mqtt]\ntopic_prefix = \"farmcast/\"".into(),
            "mqtt.topic_prefix",
            "start or end",
        ),
        (
            "[fleet]\ngroups = [\"north county\"]".into(),
            "fleet.groups[0]",
            "' '",
        ),
        (
            "[fleet]\ngroups = [\"n\", \"\"]".into(),
            "fleet.groups[1]",
            "empty",
        ),
        (
            "[fleet]\ngroups = [\"n\", \"n\"]".into(),
            "fleet.groups[1]",
            "fleet.groups[0]",
        ),
        (
            "[fleet]\ntrusted_keys_file = \"\"".into(),
            "fleet.trusted_keys_file",
            "empty",
        ),
    ];
    let mut failed = Vec::new();
    for (src, path, fragment) in &cases {
        let ps = problems(src);
        if ps.len() != 1 || &ps[0].path != path || !ps[0].message.contains(fragment) {
            failed.push(format!("{src}\n=> {ps:?} (wanted {path}: {fragment:?})"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn boundary_and_typical_values_are_valid() {
    let cases: Vec<String> = vec![
        "device_id = \"Farm_01-a\"".into(),
        format!("device_id = \"{}\"", "a".repeat(64)),
        "[video]\nsource = \"test\"".into(),
        "[video]\nsource = \"v4l2:/dev/video0\"".into(),
        "[video]\nsource = \"file:/tmp/clip.mp4\"".into(),
        "[video]\nwidth = 160\nheight = 120".into(),
        "[video]\nwidth = 3840\nheight = 2160".into(),
        "[video]\nframerate = 1".into(),
        "[video]\nframerate = 60".into(),
        "[video]\nbitrate_kbps = 100\nmin_bitrate_kbps = 100".into(),
        "[video]\nbitrate_kbps = 50000".into(),
        "[video]\nencoder = \"v4l2h264enc\"".into(),
        "[video]\nencoder = \"x264enc\"\nkeyframe_interval_s = 10\nx264_preset = \"ultrafast\"".into(),
        "[audio]\nsource = \"none\"\nbitrate_kbps = 32\noffset_ms = -5000".into(),
        "[audio]\nsource = \"alsa:hw:1,0\"\nbitrate_kbps = 320\noffset_ms = 5000".into(),
        "[live]\nreconnect_cap_ms = 100".into(),
        "[live]\nreconnect_cap_ms = 60000".into(),
        DEST.into(),
        dest("url = \"rtmps://live.example.com:443/app\"\nkey_file = \"keys/x\""),
        dest("url = \"rtmp://h/live/streamkey\""),
        dest("url = \"srt://[::1]:9000?latency=200\"\nkey = \"k\""),
        dest("url = \"srt://h:9000\""),
        "[recording]\nsegment_s = 10\nmax_gb = 0.5".into(),
        "[recording]\nsegment_s = 3600".into(),
        "[gpio]\nbackend = \"sim\"\ngo_live_pin = 0\ntally_led_pin = 27\nstatus_led_pin = 5\ndebounce_ms = 1\nlong_press_ms = 500".into(),
        "[gpio]\ndebounce_ms = 500\nlong_press_ms = 10000".into(),
        "[scale]\nkind = \"hx711\"\nhx711_dout_pin = 5\nhx711_sck_pin = 6".into(),
        "[scale]\nkind = \"serial\"".into(),
        PROD.into(),
        product("button_pin = 22"),
        product("unit_price = \"30\""),
        product("unit = \"piece\""),
        format!("{}currency = \"JPY\"\n", product("unit_price = \"300\"").replace("currency = \"CNY\"\n", "")),
        format!("{}currency = \"KWD\"\n", product("unit_price = \"1.250\"").replace("currency = \"CNY\"\n", "")),
        "[mqtt]\nurl = \"mqtts://broker.example.com:8883\"\ntopic_prefix = \"coop/farmcast\"".into(),
        "[fleet]\ngroups = [\"north-county\", \"mussels\"]\ntrusted_keys_file = \"/etc/farmcast/trusted_keys.pem\"".into(),
    ];
    for src in &cases {
        assert_eq!(problems(src), vec![], "{src}");
    }
}

#[test]
fn too_low_a_bitrate_also_undercuts_the_floor() {
    let ps = problems("[video]\nbitrate_kbps = 99\nmin_bitrate_kbps = 99\n");
    let paths: Vec<_> = ps.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["video.bitrate_kbps", "video.min_bitrate_kbps"]);
    assert!(ps[0].message.contains("100 to 50000"));
}

#[test]
fn many_problems_are_all_reported() {
    let ps = problems("device_id = \"\"\n[video]\nwidth = 1\nframerate = 0\n");
    let paths: Vec<_> = ps.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["device_id", "video.width", "video.framerate"]);
}

#[test]
fn urls_are_not_echoed_as_they_may_hold_keys() {
    let ps = problems(&dest("url = \"live.example.com/app/sup3r-secret\""));
    assert_eq!(ps.len(), 1);
    assert!(!ps[0].message.contains("sup3r"), "{}", ps[0].message);
    let ps = problems("[mqtt]\nurl = \"user:sup3r-secret@broker\"\n");
    assert_eq!(ps.len(), 1);
    assert!(!ps[0].message.contains("sup3r"), "{}", ps[0].message);
}

#[test]
fn messages_never_carry_the_key() {
    let mut c = Config::default();
    c.destinations.push(crate::config::DestinationConfig {
        name: "main".into(),
        url: "rtmp://h/live".into(),
        key_file: Some("/k".into()),
        key: Some(Secret::new("sup3r-secret")),
        enabled: true,
    });
    let ps = validate(&c);
    assert!(!ps.is_empty());
    assert!(!format!("{ps:?}").contains("sup3r"));
    assert!(!format!("{c:?}").contains("sup3r"));
}

/// The daemon refuses credentials in `mqtt.url`; check-config says so first,
/// pointing to the keys that hold them and never echoing the password.
#[test]
fn mqtt_url_with_credentials_is_refused_without_the_password() {
    for url in [
        "mqtt://farm:s3cretPW@broker.example.com:1883",
        "mqtts://s3cretPW@broker.example.com",
        "mqtt://farm:s3cretPW@[::1]:1883",
    ] {
        let got = problems(&format!("[mqtt]\nurl = \"{url}\""));
        assert_eq!(got.len(), 1, "{url}: {got:?}");
        assert_eq!(got[0].path, "mqtt.url");
        let m = &got[0].message;
        assert!(
            m.contains("mqtt.username") && m.contains("mqtt.password_file"),
            "{m}"
        );
        assert!(!m.contains("s3cretPW") && !m.contains("farm"), "{m}");
    }
}
