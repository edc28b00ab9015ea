//! The configuration's shape: one struct per TOML table, spelled as in
//! `shared/INTERFACES.md`. Every table denies unknown keys so that a typo is an
//! error with a line number, not a setting silently ignored.
//!
//! Defaults are the embedded ones: a box with no file at all would run the test
//! camera and tone into no destination, which is safe.

use serde::{Deserialize, Serialize};

use super::choices::{
    AudioSource, GpioBackend, MqttProtocol, ScaleKind, SerialFormat, SerialParity, Unit,
    VideoEncoder, VideoSource, X264Preset,
};
use super::secret::Secret;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub device_id: String,
    /// Where the box keeps what must survive a restart (calibration, the MQTT
    /// event queue, fleet layers).
    pub state_dir: String,
    pub video: VideoConfig,
    pub audio: AudioConfig,
    pub live: LiveConfig,
    pub destinations: Vec<DestinationConfig>,
    pub recording: RecordingConfig,
    pub gpio: GpioConfig,
    pub scale: ScaleConfig,
    pub products: Vec<ProductConfig>,
    pub mqtt: MqttConfig,
    pub fleet: FleetConfig,
    pub web: WebConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            device_id: "farmcast".into(),
            state_dir: "/var/lib/farmcast".into(),
            video: VideoConfig::default(),
            audio: AudioConfig::default(),
            live: LiveConfig::default(),
            destinations: Vec::new(),
            recording: RecordingConfig::default(),
            gpio: GpioConfig::default(),
            scale: ScaleConfig::default(),
            products: Vec::new(),
            mqtt: MqttConfig::default(),
            fleet: FleetConfig::default(),
            web: WebConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// "auto" | "test" | "v4l2:/dev/videoN" | "file:/path"
    pub source: VideoSource,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub bitrate_kbps: u32,
    /// Floor for adaptive bitrate on a thin uplink.
    pub min_bitrate_kbps: u32,
    /// "auto" or a GStreamer element name.
    pub encoder: VideoEncoder,
    /// Seconds between keyframes; platforms want 1 to 4.
    pub keyframe_interval_s: u32,
    /// x264enc speed preset when the software encoder is used.
    pub x264_preset: X264Preset,
    /// Pass camera-native H.264 through without re-encoding when the camera has it
    /// (saves a core; loses the on-air overlay and the slate).
    pub passthrough: bool,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            source: VideoSource::Auto,
            width: 1280,
            height: 720,
            framerate: 30,
            bitrate_kbps: 2500,
            min_bitrate_kbps: 400,
            encoder: VideoEncoder::Auto,
            keyframe_interval_s: 2,
            x264_preset: X264Preset::Veryfast,
            passthrough: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioConfig {
    /// "auto" | "test" | "none" | "alsa:hw:1,0"
    pub source: AudioSource,
    pub bitrate_kbps: u32,
    /// Delay applied to the sound, for cameras whose picture lags it. May be negative.
    pub offset_ms: i32,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            source: AudioSource::Auto,
            bitrate_kbps: 128,
            offset_ms: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    pub autostart: bool,
    /// Text shown to viewers while the camera is lost.
    pub slate_text: String,
    /// Optional image (PNG/JPEG) shown instead of the text.
    pub slate_image: Option<String>,
    /// Longest reconnect backoff, in milliseconds.
    pub reconnect_cap_ms: u64,
    /// PEM file of the CAs `rtmps://` destinations trust, instead of the
    /// system's store (read at start; see `media::tls_trust`).
    pub tls_ca_file: Option<String>,
    /// Bounds of what may wait in front of each destination (time, KiB):
    /// past them video is dropped to the next keyframe, whatever the link
    /// does (sound may wait four times as long). For RTMP the time is what
    /// the link takes to send it, not media time.
    pub destination_queue_ms: u64,
    pub destination_queue_kb: u64,
    /// The same for the local recorder (an SD card can stall for a while).
    pub recording_queue_ms: u64,
    pub recording_queue_kb: u64,
    /// Steer the encoder's bitrate to what the slowest link carries.
    pub adaptive_bitrate: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            autostart: false,
            slate_text: "Back in a moment".into(),
            slate_image: None,
            reconnect_cap_ms: 2000,
            tls_ca_file: None,
            // 2 s of 2.5 Mbit/s is under 1 MiB; the byte caps only bite when
            // a misconfigured bitrate would make the time bound too generous
            // for a 1 GB board.
            destination_queue_ms: 2000,
            destination_queue_kb: 16 * 1024,
            recording_queue_ms: 5000,
            recording_queue_kb: 32 * 1024,
            adaptive_bitrate: true,
        }
    }
}

// `Debug` by hand in `keys.rs`: the URL may hold an SRT passphrase.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub name: String,
    /// rtmp://, rtmps:// or srt://
    pub url: String,
    /// File holding the stream key (kept out of the main file).
    #[serde(default)]
    pub key_file: Option<String>,
    /// The stream key inline; accepted, but `key_file` is preferred.
    #[serde(default)]
    pub key: Option<Secret>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    pub enabled: bool,
    pub dir: String,
    /// Length of one segment file, in seconds.
    pub segment_s: u32,
    /// Disk budget for all recordings, in GB (oldest past shows are removed first).
    pub max_gb: f64,
    /// Free space to keep on the disk, in MB.
    pub min_free_mb: u64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: true,
            dir: "/var/lib/farmcast/recordings".into(),
            segment_s: 120,
            max_gb: 8.0,
            min_free_mb: 512,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpioConfig {
    /// "rppal" | "sim"
    pub backend: GpioBackend,
    pub sim_socket: String,
    /// BCM numbering.
    pub go_live_pin: u8,
    pub tally_led_pin: u8,
    /// Optional second LED for faults.
    pub status_led_pin: Option<u8>,
    pub debounce_ms: u64,
    pub long_press_ms: u64,
}

impl Default for GpioConfig {
    fn default() -> Self {
        GpioConfig {
            backend: GpioBackend::Rppal,
            sim_socket: "/run/farmcast/sim.sock".into(),
            go_live_pin: 17,
            tally_led_pin: 27,
            status_led_pin: None,
            debounce_ms: 30,
            long_press_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScaleConfig {
    /// "none" | "hx711" | "serial" | "sim"
    pub kind: ScaleKind,
    /// A reading is stable once it stays within `tolerance_g` for this long.
    pub settle_ms: u64,
    /// Largest wobble, in grams, that still counts as stable.
    pub tolerance_g: u32,
    /// The scale's display step in grams; readings are rounded to it.
    pub resolution_g: u32,
    /// How long a product tag waits for an unstable scale to settle.
    pub settle_wait_ms: u64,
    /// Lower-third text for products sold by the kg; placeholders `{name}`,
    /// `{weight}`, `{unit_price}`, `{price}`, `{currency}`, `{unit}`.
    pub overlay_template: Option<String>,
    /// Lower-third text for products sold by the piece.
    pub overlay_template_piece: Option<String>,
    /// Seconds the lower third stays after the produce is taken off the scale.
    pub overlay_s: u64,
    /// "auto" (first /dev/ttyUSB*, then /dev/ttyACM*) or a device path.
    pub serial_port: String,
    /// The speed to open the port at (`auto` format tries others while it
    /// reads only garbage).
    pub serial_baud: u32,
    /// `auto` or a format name.
    pub serial_format: SerialFormat,
    pub serial_parity: SerialParity,
    /// 7 or 8.
    pub serial_data_bits: u8,
    /// 1 or 2.
    pub serial_stop_bits: u8,
    /// BCM pins of an HX711 load-cell amplifier.
    pub hx711_dout_pin: Option<u8>,
    pub hx711_sck_pin: Option<u8>,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        ScaleConfig {
            kind: ScaleKind::None,
            settle_ms: 800,
            tolerance_g: 5,
            resolution_g: 1,
            settle_wait_ms: 1500,
            overlay_template: None,
            overlay_template_piece: None,
            overlay_s: 8,
            serial_port: "auto".into(),
            serial_baud: 9600,
            serial_format: SerialFormat::Auto,
            serial_parity: SerialParity::None,
            serial_data_bits: 8,
            serial_stop_bits: 1,
            hx711_dout_pin: None,
            hx711_sck_pin: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    pub id: String,
    pub name: String,
    /// "kg" | "piece"
    pub unit: Unit,
    /// Decimal string, never a float.
    pub unit_price: String,
    pub currency: String,
    #[serde(default)]
    pub button_pin: Option<u8>,
}

/// Keys not written in a `[mqtt]` table take [`MqttConfig::written`]: a table
/// with a `url` is meant to connect. Without the table at all the box stays
/// off the broker ([`Default`]).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default = "MqttConfig::written")]
pub struct MqttConfig {
    /// On when the `[mqtt]` table is written, unless it says `enabled = false`.
    pub enabled: bool,
    /// mqtt:// or mqtts://
    pub url: String,
    pub topic_prefix: String,
    /// Defaults to the device id when a password file is given.
    pub username: Option<String>,
    /// A file holding only the password (kept out of the main file).
    pub password_file: Option<String>,
    /// CA certificate (PEM) for mqtts://; the system's roots otherwise.
    pub ca_file: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub keep_alive_s: u64,
    /// "v4" (MQTT 3.1.1) or "v5".
    pub protocol: MqttProtocol,
    /// Publish Home Assistant discovery so the box appears there as a device.
    pub hass_discovery: bool,
    /// Status is re-published this often while live (and on every change).
    pub status_interval_s: u64,
}

impl MqttConfig {
    /// The defaults of a `[mqtt]` table that is written: switched on.
    pub fn written() -> Self {
        MqttConfig {
            enabled: true,
            ..MqttConfig::default()
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: false,
            url: "mqtt://127.0.0.1:1883".into(),
            topic_prefix: "farmcast".into(),
            username: None,
            password_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive_s: 30,
            protocol: MqttProtocol::V4,
            hass_discovery: true,
            status_interval_s: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    pub groups: Vec<String>,
    pub trusted_keys_file: Option<String>,
    /// Take unsigned pushes when no `trusted_keys_file` is set: for labs only.
    /// Off by default: without trusted keys a box refuses every push, since
    /// any client of the broker could otherwise re-point its destinations.
    pub allow_unsigned: bool,
}

/// The farmer's phone page (`docs/web.md`). Off unless switched on: the
/// shipped image config switches it on, test configs leave it off.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub enabled: bool,
    /// Address and port of the page, on the LAN.
    pub listen: String,
    /// Address and port of `GET /metrics` (Prometheus text), for the
    /// technicians' Prometheus; none means no metrics endpoint.
    pub metrics_listen: Option<String>,
    /// The code printed on the box's label; a phone that enters it gets a
    /// session. The MQTT command `set_pairing_code` replaces it (kept in
    /// the state directory, which then wins over this key).
    pub pairing_code: Option<Secret>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: false,
            listen: "0.0.0.0:80".into(),
            metrics_listen: None,
            pairing_code: None,
        }
    }
}
