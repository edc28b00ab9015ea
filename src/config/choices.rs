//! The config values that are a choice among words (`scale.kind`,
//! `gpio.backend`, `mqtt.protocol`, ...), parsed once into enums.
//!
//! Each type has `FromStr` and `Display`, and serde goes through them
//! (`try_from`/`into` `String`), so the TOML is spelled exactly as before and
//! the rest of the crate matches on variants instead of comparing strings.
//!
//! serde would stop at the first bad word; [`CHOICES`] lets the walk
//! ([`super::walk`]) check every choice key before serde runs, so each bad
//! value is reported on its own key path, with the words allowed there and a
//! bounded excerpt of what was written.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a word is not one of the choices; says what is allowed. The value
/// written is quoted as an excerpt: a fleet push may carry megabytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChoiceError(String);

impl ChoiceError {
    /// `"webcam" is not known; use one of: "a", "b"`.
    fn unknown(value: &str, allowed: &[&str]) -> Self {
        ChoiceError(format!(
            "\"{}\" is not known; use one of: {}",
            crate::excerpt::excerpt(value),
            quoted(allowed)
        ))
    }

    /// `"<value>"<rest>`, for a value whose form is known but not right.
    fn about(value: &str, rest: &str) -> Self {
        ChoiceError(format!("\"{}\"{rest}", crate::excerpt::excerpt(value)))
    }
}

/// `"a", "b", "c"`.
fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An enum of fixed words: `FromStr`, `Display`, serde as the word, and
/// `WORDS` (every word, in the order the docs list them).
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in the order of [`Self::WORDS`].
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Every word the config accepts here.
            pub const WORDS: &'static [&'static str] = &[$($word,)+];

            /// The word the config writes for this variant.
            pub fn word(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = ChoiceError;
            fn from_str(s: &str) -> Result<Self, ChoiceError> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(ChoiceError::unknown(s, Self::WORDS)),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.word())
            }
        }

        impl TryFrom<String> for $name {
            type Error = ChoiceError;
            fn try_from(s: String) -> Result<Self, ChoiceError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.word().to_string()
            }
        }
    };
}

words! {
    /// `scale.kind`: which weighing scale back end runs.
    ScaleKind {
        /// No scale: products sold by the kg cannot be tagged.
        None = "none",
        Hx711 = "hx711",
        Serial = "serial",
        /// Fed by `weight` lines on the sim socket.
        Sim = "sim",
    }
}

words! {
    /// `scale.serial_format`: the line layout a serial scale sends, or
    /// `auto` to recognise it (docs/scales.md). The order is the one `auto`
    /// tries them in: the strictest layouts first, OHAUS's plain "number
    /// unit" last.
    SerialFormat {
        /// Recognise the format from the first good lines (and try the
        /// common speeds while only garbage arrives).
        Auto = "auto",
        /// METTLER TOLEDO standard continuous output: STX, three status
        /// bytes, six weight digits, six tare digits, CR.
        MtContinuous = "mt_continuous",
        /// YAOHUA XK3190 continuous output: `=` and the shown digits reversed.
        Yaohua = "yaohua",
        /// Price-computing scales' and YAOHUA A12's `ww000.000kg` / `wn...`.
        Ww = "ww",
        /// CAS 22-byte format: `ST,GS,` id, lamp byte, `,`, weight, unit.
        Cas = "cas",
        /// `ST,GS,+  1.250kg`: T&T and OEM indicators, CAS's "AND" mode.
        StGs = "st_gs",
        /// A&D standard format: `ST,+00001.250  kg`.
        AandD = "a_and_d",
        /// METTLER TOLEDO MT-SICS replies: `S S     1.250 kg`.
        MtSics = "mt_sics",
        /// OHAUS print lines: `     1.250 kg ?  N` (`?` while unstable).
        Ohaus = "ohaus",
    }
}

words! {
    /// `scale.serial_parity`.
    SerialParity {
        None = "none",
        Even = "even",
        Odd = "odd",
    }
}

words! {
    /// `gpio.backend`: real pins, or the simulation socket.
    GpioBackend {
        Rppal = "rppal",
        Sim = "sim",
    }
}

words! {
    /// `mqtt.protocol`.
    MqttProtocol {
        /// MQTT 3.1.1.
        V4 = "v4",
        V5 = "v5",
    }
}

words! {
    /// `video.x264_preset`: x264enc's `speed-preset` names, fastest first.
    X264Preset {
        Ultrafast = "ultrafast",
        Superfast = "superfast",
        Veryfast = "veryfast",
        Faster = "faster",
        Fast = "fast",
        Medium = "medium",
        Slow = "slow",
        Slower = "slower",
        Veryslow = "veryslow",
        Placebo = "placebo",
    }
}

words! {
    /// `products[].unit`: how a product is sold.
    Unit {
        Kg = "kg",
        Piece = "piece",
    }
}

/// Serde and `String` conversions of a choice with data (`v4l2:/dev/video0`),
/// through its `FromStr` and `Display`.
macro_rules! via_string {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = ChoiceError;
            fn try_from(s: String) -> Result<Self, ChoiceError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.to_string()
            }
        }
    };
}

/// `video.source`: where the picture comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum VideoSource {
    /// The first capture device found at start (and at every retry).
    Auto,
    Test,
    /// `v4l2:/dev/videoN`: the device path.
    V4l2(String),
    /// `file:/path`: a clip replayed in real time, looping.
    File(String),
}

impl FromStr for VideoSource {
    type Err = ChoiceError;
    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        if let Some(dev) = s.strip_prefix("v4l2:") {
            if !dev.starts_with("/dev/") || dev.len() <= "/dev/".len() {
                return Err(ChoiceError::about(
                    s,
                    ": name the camera device, e.g. \"v4l2:/dev/video0\" (see `farmcast probe`)",
                ));
            }
            return Ok(VideoSource::V4l2(dev.to_string()));
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.trim().is_empty() {
                return Err(ChoiceError(
                    "\"file:\" needs a path, e.g. \"file:/var/lib/farmcast/clip.mp4\"".into(),
                ));
            }
            return Ok(VideoSource::File(path.to_string()));
        }
        match s {
            "auto" => Ok(VideoSource::Auto),
            "test" => Ok(VideoSource::Test),
            _ => Err(ChoiceError::about(
                s,
                " is not known; use \"auto\", \"test\", \"v4l2:/dev/video0\" or \"file:/path/clip.mp4\"",
            )),
        }
    }
}

impl fmt::Display for VideoSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoSource::Auto => f.write_str("auto"),
            VideoSource::Test => f.write_str("test"),
            VideoSource::V4l2(dev) => write!(f, "v4l2:{dev}"),
            VideoSource::File(path) => write!(f, "file:{path}"),
        }
    }
}

via_string!(VideoSource);

/// `audio.source`: where the sound comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AudioSource {
    Auto,
    Test,
    /// No microphone: the stream still carries a silent AAC track, because
    /// several platforms refuse or mute a stream without one.
    None,
    /// `alsa:hw:1,0`: the ALSA device name.
    Alsa(String),
}

impl FromStr for AudioSource {
    type Err = ChoiceError;
    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        if let Some(dev) = s.strip_prefix("alsa:") {
            if dev.trim().is_empty() || dev.contains(char::is_whitespace) {
                return Err(ChoiceError::about(
                    s,
                    ": name the ALSA device, e.g. \"alsa:hw:CARD=Device,DEV=0\" (the card by its id stays when USB devices come up in another order; `farmcast probe` lists them)",
                ));
            }
            return Ok(AudioSource::Alsa(dev.to_string()));
        }
        match s {
            "auto" => Ok(AudioSource::Auto),
            "test" => Ok(AudioSource::Test),
            "none" => Ok(AudioSource::None),
            _ => Err(ChoiceError::about(
                s,
                " is not known; use \"auto\", \"test\", \"none\" or \"alsa:<device>\" (e.g. \"alsa:hw:CARD=Device,DEV=0\")",
            )),
        }
    }
}

impl fmt::Display for AudioSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioSource::Auto => f.write_str("auto"),
            AudioSource::Test => f.write_str("test"),
            AudioSource::None => f.write_str("none"),
            AudioSource::Alsa(dev) => write!(f, "alsa:{dev}"),
        }
    }
}

via_string!(AudioSource);

/// `video.encoder`: `auto`, or a GStreamer element name. Whether the element
/// exists on this box is for the media module (`farmcast probe`); here only
/// its form is checked, so a name that cannot be an element (`x264 enc`,
/// `X264Enc`, a pipeline fragment) never reaches GStreamer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum VideoEncoder {
    /// The best H.264 encoder present (hardware first).
    Auto,
    Element(String),
}

impl FromStr for VideoEncoder {
    type Err = ChoiceError;
    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        if s == "auto" {
            return Ok(VideoEncoder::Auto);
        }
        let element_like = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if element_like {
            Ok(VideoEncoder::Element(s.to_string()))
        } else {
            Err(ChoiceError::about(
                s,
                " is not an encoder name; use \"auto\" or a GStreamer element such as \
                 \"x264enc\" or \"v4l2h264enc\" (see `farmcast probe`)",
            ))
        }
    }
}

impl fmt::Display for VideoEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoEncoder::Auto => f.write_str("auto"),
            VideoEncoder::Element(name) => f.write_str(name),
        }
    }
}

via_string!(VideoEncoder);

/// Checks a written value against its type, for the walk.
type Check = fn(&str) -> Result<(), ChoiceError>;

fn check<T: FromStr<Err = ChoiceError>>(s: &str) -> Result<(), ChoiceError> {
    s.parse::<T>().map(drop)
}

/// Every choice key of the schema (paths with `[]` for "every element", as
/// in [`super::ranges`]) and its parser. A unit test fails when a string key
/// that refuses some text has no row here.
pub const CHOICES: &[(&str, Check)] = &[
    ("video.source", check::<VideoSource>),
    ("video.encoder", check::<VideoEncoder>),
    ("video.x264_preset", check::<X264Preset>),
    ("audio.source", check::<AudioSource>),
    ("gpio.backend", check::<GpioBackend>),
    ("scale.kind", check::<ScaleKind>),
    ("scale.serial_format", check::<SerialFormat>),
    ("scale.serial_parity", check::<SerialParity>),
    ("products[].unit", check::<Unit>),
    ("mqtt.protocol", check::<MqttProtocol>),
];

/// The problem with `value` at the concrete key path `path`
/// (`products[3].unit`), if that key is a choice and the value is not one.
pub fn refuse(path: &str, value: &str) -> Option<ChoiceError> {
    let pattern = super::ranges::pattern_of(path);
    let (_, check) = CHOICES.iter().find(|(p, _)| *p == pattern)?;
    check(value).err()
}

#[cfg(test)]
#[path = "choices_tests.rs"]
mod tests;
