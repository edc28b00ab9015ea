use super::*;
use crate::fleet::envelope::{sign, sign_v2, Apply};
use ed25519_dalek::SigningKey;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn acceptor(trust: Trust) -> Acceptor {
    Acceptor {
        device_id: "farm-01".into(),
        groups: vec!["north".into(), "dairy".into()],
        trust,
        applied_versions: BTreeMap::from([("device".into(), 7), ("group:north".into(), 3)]),
    }
}

fn group(g: &str) -> Source {
    Source::Group(g.into())
}

#[test]
fn check_table() {
    let k = key(1);
    let signed = Trust::Keys(vec![key(9).verifying_key(), k.verifying_key()]);
    let closed = Trust::Keys(vec![]);
    let unsigned = |target: &str, version| {
        let mut e = sign(&k, target, version, "");
        e.signature = None;
        e
    };
    let with_apply = |mut e: Envelope| {
        e.apply = Some(Apply::Now);
        e
    };
    let mut tampered = sign(&k, "farm-01", 8, "[video]\nbitrate_kbps = 900\n");
    tampered.config = "[video]\nbitrate_kbps = 9000\n".into();
    #[rustfmt::skip]
    let cases: Vec<(&str, &Trust, Source, Envelope, Option<&str>)> = vec![
        ("device, newer, signed", &signed, Source::Device, sign(&k, "farm-01", 8, ""), None),
        ("group, newer, signed", &signed, group("north"), sign(&k, "group:north", 4, ""), None),
        ("first push of a group", &signed, group("dairy"), sign(&k, "group:dairy", 1, ""), None),
        ("same version is a replay", &signed, Source::Device, sign(&k, "farm-01", 7, ""), Some("version")),
        ("older is a downgrade", &signed, group("north"), sign(&k, "group:north", 2, ""), Some("version")),
        ("another device", &signed, Source::Device, sign(&k, "farm-02", 8, ""), Some("target")),
        ("group envelope on the device topic", &signed, Source::Device, sign(&k, "group:north", 8, ""), Some("target")),
        ("device envelope on a group topic", &signed, group("north"), sign(&k, "farm-01", 8, ""), Some("target")),
        ("other group's envelope", &signed, group("north"), sign(&k, "group:dairy", 8, ""), Some("target")),
        ("group we are not in", &signed, group("south"), sign(&k, "group:south", 8, ""), Some("target")),
        ("no keys, no allow_unsigned: refused", &Trust::Refuse, Source::Device, unsigned("farm-01", 8), Some("fleet.trusted_keys_file")),
        ("no keys: refused even when signed", &Trust::Refuse, Source::Device, sign(&k, "farm-01", 8, ""), Some("fleet.trusted_keys_file")),
        ("v1 with an unsigned apply", &signed, Source::Device, with_apply(sign(&k, "farm-01", 8, "")), Some("apply")),
        ("v1 with apply, open trust", &Trust::Open, Source::Device, with_apply(unsigned("farm-01", 8)), Some("apply")),
        ("v2 signed apply", &signed, Source::Device, sign_v2(&k, "farm-01", 8, Apply::Now, ""), None),
        ("v2 apply changed after signing", &signed, Source::Device, with_apply(sign_v2(&k, "farm-01", 8, Apply::AfterShow, "")), Some("signature")),
        ("unsigned with keys", &signed, Source::Device, unsigned("farm-01", 8), Some("signature")),
        ("untrusted signer", &signed, Source::Device, sign(&key(2), "farm-01", 8, ""), Some("signature")),
        ("config changed after signing", &signed, Source::Device, tampered, Some("signature")),
        ("keys file broken: fail closed", &closed, Source::Device, sign(&k, "farm-01", 8, ""), Some("signature")),
        ("open trust takes unsigned", &Trust::Open, Source::Device, unsigned("farm-01", 8), None),
        ("open trust still refuses replays", &Trust::Open, Source::Device, unsigned("farm-01", 7), Some("version")),
    ];
    for (name, trust, source, env, want) in cases {
        let got = acceptor(trust.clone()).check(&source, &env);
        assert_eq!(
            got.as_ref().err().and_then(|r| r.field.as_deref()),
            want,
            "{name}: {got:?}"
        );
    }
}

#[test]
fn trust_follows_the_file() {
    let mut fleet = crate::config::FleetConfig::default();
    assert_eq!(Trust::load(&fleet, Path::new(".")).0, Trust::Refuse);
    fleet.allow_unsigned = true;
    assert_eq!(Trust::load(&fleet, Path::new(".")).0, Trust::Open);
    // Keys configured but unreadable: closed, whatever allow_unsigned says.
    fleet.trusted_keys_file = Some("/nonexistent/keys.pem".into());
    let (trust, err) = Trust::load(&fleet, Path::new("."));
    assert_eq!(trust, Trust::Keys(vec![]));
    assert!(err.is_some());
}

#[test]
fn layers_may_not_set_identity_or_trust() {
    assert!(check_layer("[video]\nwidth = 640\n").is_ok());
    assert!(check_layer("").is_ok());
    for (layer, field) in [
        ("device_id = \"x\"\n", "device_id"),
        ("[fleet]\ngroups = [\"south\"]\n", "fleet"),
        ("[fleet]\ntrusted_keys_file = \"/tmp/k\"\n", "fleet"),
        ("[video\n", "config"),
    ] {
        assert_eq!(
            check_layer(layer).unwrap_err().field.as_deref(),
            Some(field),
            "{layer}"
        );
    }
}

const FILE: &str = "device_id = \"farm-01\"\n[video]\nsource = \"test\"\nwidth = 1920\nheight = 1080\n[fleet]\ngroups = [\"north\", \"dairy\"]\n";

fn texts(groups: &[(&str, &str)], device: Option<&str>) -> LayerTexts {
    LayerTexts {
        groups: groups
            .iter()
            .map(|(g, t)| (g.to_string(), t.to_string()))
            .collect(),
        device: device.map(str::to_string),
    }
}

#[test]
fn groups_merge_in_file_order_then_the_device() {
    // BTreeMap order would put "dairy" first; the file lists "north" first.
    let layers = texts(
        &[
            ("dairy", "[video]\nbitrate_kbps = 1500\nframerate = 25\n"),
            (
                "north",
                "[video]\nbitrate_kbps = 1000\nwidth = 1280\nheight = 720\n",
            ),
            ("south", "[video]\nwidth = 640\n"),
        ],
        Some("[video]\nframerate = 20\n"),
    );
    let c = effective(FILE, &layers, Path::new(".")).unwrap();
    assert_eq!(c.video.bitrate_kbps, 1500, "dairy is listed after north");
    assert_eq!(c.video.width, 1280, "south is not a group of this device");
    assert_eq!(c.video.framerate, 20, "device layer last");
    assert_eq!(c.device_id, "farm-01");
}

#[test]
fn effective_reports_invalid_merges() {
    let layers = texts(&[("north", "[video]\nwidth = 641\n")], None);
    let ps = effective(FILE, &layers, Path::new(".")).unwrap_err();
    assert_eq!(ps[0].path, "video.width");
    assert!(effective("[video\n", &LayerTexts::default(), Path::new(".")).is_err());
}

type Edit = fn(&mut Config);

#[test]
fn diff_class_table() {
    let base = Config::default();
    #[rustfmt::skip]
    let cases: Vec<(&str, Edit, ChangeClass)> = vec![
        ("nothing", |_| {}, ChangeClass::None),
        ("bitrate", |c| c.video.bitrate_kbps = 1800, ChangeClass::Live),
        ("bitrate floor", |c| c.video.min_bitrate_kbps = 300, ChangeClass::Live),
        ("products", |c| c.products.push(crate::config::ProductConfig {
            id: "eggs".into(), name: "Eggs".into(), unit: "piece".parse().unwrap(),
            unit_price: "2.00".into(), currency: "CNY".into(), button_pin: None,
        }), ChangeClass::Live),
        ("mqtt", |c| c.mqtt.topic_prefix = "x".into(), ChangeClass::Live),
        ("reconnect cap", |c| c.live.reconnect_cap_ms = 5000, ChangeClass::Live),
        ("disk budget", |c| c.recording.max_gb = 2.0, ChangeClass::Live),
        ("camera", |c| c.video.source = "test".parse().unwrap(), ChangeClass::NeedsRestart),
        ("size", |c| c.video.width = 640, ChangeClass::NeedsRestart),
        ("encoder", |c| c.video.encoder = "x264enc".parse().unwrap(), ChangeClass::NeedsRestart),
        ("audio", |c| c.audio.source = "none".parse().unwrap(), ChangeClass::NeedsRestart),
        ("gpio", |c| c.gpio.go_live_pin = 5, ChangeClass::NeedsDaemonRestart),
        ("gpio backend", |c| c.gpio.backend = "sim".parse().unwrap(), ChangeClass::NeedsDaemonRestart),
        ("scale", |c| c.scale.kind = "sim".parse().unwrap(), ChangeClass::NeedsDaemonRestart),
        ("scale settle", |c| c.scale.settle_ms = 900, ChangeClass::NeedsDaemonRestart),
        ("product button", |c| c.products.push(crate::config::ProductConfig {
            id: "eggs".into(), name: "Eggs".into(), unit: "piece".parse().unwrap(),
            unit_price: "2.00".into(), currency: "CNY".into(), button_pin: Some(22),
        }), ChangeClass::NeedsDaemonRestart),
        ("gpio and bitrate", |c| { c.video.bitrate_kbps = 1; c.gpio.tally_led_pin = 5 }, ChangeClass::NeedsDaemonRestart),
        ("recording dir", |c| c.recording.dir = "/tmp".into(), ChangeClass::NeedsRestart),
        ("destinations", |c| c.destinations.push(crate::config::DestinationConfig {
            name: "a".into(), url: "rtmp://h/live".into(), key_file: None, key: None, enabled: true,
        }), ChangeClass::NeedsRestart),
        ("bitrate and camera", |c| { c.video.bitrate_kbps = 1; c.video.source = "test".parse().unwrap() }, ChangeClass::NeedsRestart),
    ];
    for (name, change, want) in cases {
        let mut new = base.clone();
        change(&mut new);
        assert_eq!(diff_class(&base, &new), want, "{name}");
    }
}

#[test]
fn a_changed_stream_key_alone_needs_a_rebuild() {
    // Secrets serialize redacted; the class must not miss the change.
    let mut a = Config::default();
    a.destinations.push(crate::config::DestinationConfig {
        name: "a".into(),
        url: "rtmp://h/live".into(),
        key_file: None,
        key: Some(crate::config::Secret::new("one")),
        enabled: true,
    });
    let mut b = a.clone();
    b.destinations[0].key = Some(crate::config::Secret::new("two"));
    assert_eq!(diff_class(&a, &b), ChangeClass::NeedsRestart);
}

#[test]
fn prefixes_match_whole_keys_only() {
    assert_eq!(class_of("products"), ChangeClass::Live);
    assert_eq!(class_of("mqtt.url"), ChangeClass::Live);
    assert_eq!(
        class_of("video.bitrate_kbps_extra"),
        ChangeClass::NeedsRestart
    );
    assert_eq!(class_of("mqttx"), ChangeClass::NeedsRestart);
    assert_eq!(
        class_of("gpio.go_live_pin"),
        ChangeClass::NeedsDaemonRestart
    );
    assert_eq!(class_of("gpiox"), ChangeClass::NeedsRestart);
    assert_eq!(
        class_of("products[].button_pin"),
        ChangeClass::NeedsDaemonRestart
    );
}
