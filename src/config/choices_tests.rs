//! Every allowed value round-trips through `FromStr` and `Display` (and serde
//! as the same word); every bad value is refused with the allowed values and
//! an excerpt of what was written.

use super::*;

/// What every choice type offers.
trait Word:
    FromStr<Err = ChoiceError>
    + fmt::Display
    + fmt::Debug
    + PartialEq
    + Serialize
    + serde::de::DeserializeOwned
{
}

impl<T> Word for T where
    T: FromStr<Err = ChoiceError>
        + fmt::Display
        + fmt::Debug
        + PartialEq
        + Serialize
        + serde::de::DeserializeOwned
{
}

/// `T` parsed from `word`, shown again, and through serde (TOML and JSON).
fn round_trips<T: Word>(word: &str) {
    let v: T = word
        .parse()
        .unwrap_or_else(|e| panic!("{word:?} refused: {e}"));
    assert_eq!(v.to_string(), word);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json, serde_json::Value::String(word.into()));
    assert_eq!(serde_json::from_value::<T>(json).unwrap(), v);
    #[derive(Deserialize)]
    struct Doc<T> {
        k: T,
    }
    let doc: Doc<T> = toml::from_str(&format!("k = {word:?}")).unwrap();
    assert_eq!(doc.k, v);
}

#[test]
fn every_word_round_trips() {
    fn all<T: Word>(words: &[&str], all: &[T]) {
        assert_eq!(words.len(), all.len());
        for (w, v) in words.iter().zip(all) {
            round_trips::<T>(w);
            assert_eq!(&w.parse::<T>().unwrap(), v);
        }
    }
    all(ScaleKind::WORDS, ScaleKind::ALL);
    all(GpioBackend::WORDS, GpioBackend::ALL);
    all(MqttProtocol::WORDS, MqttProtocol::ALL);
    all(X264Preset::WORDS, X264Preset::ALL);
    all(Unit::WORDS, Unit::ALL);
    // The words INTERFACES.md promises.
    assert_eq!(ScaleKind::WORDS, ["none", "hx711", "serial", "sim"]);
    assert_eq!(GpioBackend::WORDS, ["rppal", "sim"]);
    assert_eq!(MqttProtocol::WORDS, ["v4", "v5"]);
    assert_eq!(Unit::WORDS, ["kg", "piece"]);
}

#[test]
fn sources_and_encoders_round_trip() {
    for w in ["auto", "test", "v4l2:/dev/video0", "file:/tmp/a b.y4m"] {
        round_trips::<VideoSource>(w);
    }
    assert_eq!(
        "v4l2:/dev/video2".parse(),
        Ok(VideoSource::V4l2("/dev/video2".into()))
    );
    assert_eq!(
        "file:/tmp/a b.y4m".parse(),
        Ok(VideoSource::File("/tmp/a b.y4m".into()))
    );
    for w in [
        "auto",
        "test",
        "none",
        "alsa:hw:1,0",
        "alsa:plughw:CARD=U0x46d",
    ] {
        round_trips::<AudioSource>(w);
    }
    assert_eq!(
        "alsa:hw:1,0".parse(),
        Ok(AudioSource::Alsa("hw:1,0".into()))
    );
    for w in [
        "auto",
        "x264enc",
        "v4l2h264enc",
        "openh264enc",
        "vendor_h264-enc2",
    ] {
        round_trips::<VideoEncoder>(w);
    }
    assert_eq!("auto".parse(), Ok(VideoEncoder::Auto));
    assert_eq!(
        "x264enc".parse(),
        Ok(VideoEncoder::Element("x264enc".into()))
    );
}

/// The message names every allowed word and quotes what was written.
#[test]
fn a_bad_word_names_the_allowed_ones() {
    let e = "hx712".parse::<ScaleKind>().unwrap_err().to_string();
    assert_eq!(
        e,
        "\"hx712\" is not known; use one of: \"none\", \"hx711\", \"serial\", \"sim\""
    );
    let e = "wiringpi".parse::<GpioBackend>().unwrap_err().to_string();
    assert!(
        e.contains("\"wiringpi\"") && e.contains("\"rppal\", \"sim\""),
        "{e}"
    );
    let e = "5".parse::<MqttProtocol>().unwrap_err().to_string();
    assert!(e.contains("\"v4\", \"v5\""), "{e}");
    let e = "bogus; rm".parse::<X264Preset>().unwrap_err().to_string();
    assert!(
        e.contains("\"ultrafast\"") && e.contains("\"placebo\""),
        "{e}"
    );
    let e = "g".parse::<Unit>().unwrap_err().to_string();
    assert!(e.contains("\"kg\", \"piece\""), "{e}");
    // Words are exact: the file's spelling is the contract.
    for bad in ["SIM", " sim", "sim ", ""] {
        assert!(bad.parse::<GpioBackend>().is_err(), "{bad:?}");
    }
}

#[test]
fn bad_sources_and_encoders_say_what_would_do() {
    let cases: &[(&str, &str)] = &[
        ("webcam", "v4l2:/dev/video0"),
        ("v4l2:video0", "/dev/"),
        ("v4l2:/dev/", "/dev/"),
        ("v4l2:", "/dev/"),
        ("file:", "path"),
        ("file:  ", "path"),
    ];
    for (bad, hint) in cases {
        let e = bad.parse::<VideoSource>().unwrap_err().to_string();
        assert!(e.contains(hint), "{bad:?}: {e}");
    }
    for bad in ["mic", "alsa:", "alsa:hw 1", "pulse"] {
        let e = bad.parse::<AudioSource>().unwrap_err().to_string();
        assert!(e.contains("alsa:hw:CARD=Device,DEV=0"), "{bad:?}: {e}");
    }
    for bad in ["", "x264 enc", "X264Enc", "AUTO", "x264enc ! fakesink"] {
        let e = bad.parse::<VideoEncoder>().unwrap_err().to_string();
        assert!(
            e.contains("\"auto\"") && e.contains("x264enc"),
            "{bad:?}: {e}"
        );
    }
}

/// A megabyte (or control characters) written as a choice is echoed as a
/// bounded excerpt, never whole.
#[test]
fn the_echo_is_an_excerpt() {
    let huge = format!("{}\n\u{1b}[2J", "w".repeat(1 << 20));
    let errors = [
        huge.parse::<ScaleKind>().unwrap_err(),
        huge.parse::<GpioBackend>().unwrap_err(),
        huge.parse::<MqttProtocol>().unwrap_err(),
        huge.parse::<X264Preset>().unwrap_err(),
        huge.parse::<Unit>().unwrap_err(),
        huge.parse::<VideoSource>().unwrap_err(),
        format!("v4l2:{huge}").parse::<VideoSource>().unwrap_err(),
        huge.parse::<AudioSource>().unwrap_err(),
        format!("alsa:{huge}").parse::<AudioSource>().unwrap_err(),
        huge.parse::<VideoEncoder>().unwrap_err(),
    ];
    for e in errors {
        let m = e.to_string();
        assert!(m.len() < 400, "{} bytes: {}", m.len(), &m[..200]);
        assert!(m.contains("bytes)"), "{m}");
        assert!(!m.contains('\u{1b}') && !m.contains('\n'), "{m}");
    }
    let short = "web\ncam".parse::<VideoSource>().unwrap_err().to_string();
    assert!(short.starts_with("\"web\\ncam\""), "{short}");
}

/// Every string key whose type refuses some text has a row in [`CHOICES`]
/// (or the walk would leave it to serde, which stops at the first), and
/// every row names such a key.
#[test]
fn every_choice_key_has_a_row() {
    use crate::config::schema::Config;
    use toml::Value;
    fn leaves(v: &Value, path: String, out: &mut Vec<String>) {
        match v {
            Value::Table(t) => {
                for (k, v) in t {
                    leaves(v, super::super::spans::join(&path, k), out)
                }
            }
            Value::Array(a) => {
                if let Some(first) = a.first() {
                    leaves(first, format!("{path}[0]"), out)
                }
            }
            Value::String(_) => out.push(path),
            _ => {}
        }
    }
    let sample = Value::try_from(crate::config::walk::full_sample()).unwrap();
    let mut paths = Vec::new();
    leaves(&sample, String::new(), &mut paths);
    let mut refusing = Vec::new();
    for path in &paths {
        let mut doc = sample.clone();
        let mut at = &mut doc;
        for seg in path.split('.') {
            at = match seg.strip_suffix("[0]") {
                Some(name) => &mut at[name][0],
                None => &mut at[seg],
            };
        }
        *at = Value::String("no such \u{7} value".into());
        if doc.try_into::<Config>().is_err() {
            refusing.push(super::super::ranges::pattern_of(path));
        }
    }
    let mut rows: Vec<String> = CHOICES.iter().map(|(p, _)| p.to_string()).collect();
    refusing.sort();
    rows.sort();
    assert_eq!(refusing, rows);
}

#[test]
fn refuse_finds_the_row_of_a_concrete_path() {
    assert!(refuse("products[3].unit", "g").is_some());
    assert!(refuse("products[3].unit", "kg").is_none());
    assert!(refuse("scale.kind", "sim").is_none());
    assert!(refuse("device_id", "anything at all").is_none());
}
