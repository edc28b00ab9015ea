//! Which H.264 encoder this box uses, and how to configure it for live work.
//!
//! Contract: [`choose`] turns the configured `video.encoder` ("auto" or an
//! element name) into an [`EncoderChoice`], given a predicate saying which
//! GStreamer elements exist here (in the daemon [`registry_available`]; in tests
//! any closure). [`settings`] turns the chosen element and the video config into
//! gst-launch fragments (caps before, the element with its properties, caps
//! after) and says how the bitrate can be changed while PLAYING
//! ([`BitrateControl`]). Both are pure: no GStreamer call except inside
//! [`registry_available`].
//!
//! Pipeline fragment produced, left to right:
//!
//! ```text
//!  raw video ─▶ input_caps ─▶ element_desc (name=encoder) ─▶ output_caps ─▶ h264parse ...
//! ```
//!
//! Property names were checked with `gst-inspect-1.0` 1.22 for x264enc and
//! openh264enc (installed here); for the hardware encoders, from their sources
//! (v4l2 controls; gst-plugins-bad `va`; gstreamer-vaapi; gstreamer-rockchip
//! `gstmppenc.c`; NVIDIA L4T `nvv4l2h264enc`), not on the hardware itself.

use thiserror::Error;

use crate::config::{VideoConfig, VideoEncoder};

/// Name given to the encoder element in [`EncoderSettings::element_desc`], so the
/// driver can find it with `pipeline.by_name(ENCODER_ELEMENT_NAME)` to change
/// the bitrate at run time.
pub const ENCODER_ELEMENT_NAME: &str = "encoder";

/// One known H.264 encoder: its element, whether it is hardware, and the
/// Debian package that ships it (for error messages and `farmcast probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownEncoder {
    pub element: &'static str,
    pub hardware: bool,
    pub package: &'static str,
    /// Takes a new picture size mid-stream (a caps change in front of it):
    /// it starts a new sequence on a keyframe, which flvmux and mpegtsmux
    /// carry through. The software encoders do; the hardware ones here
    /// either refuse a renegotiation or need their pipeline rebuilt, so
    /// adaptive bitrate never scales the picture in front of them.
    pub takes_new_size: bool,
}

/// Best first. Hardware before software because a Pi-class CPU cannot spare
/// the core x264 needs at 720p30; x264 before openh264 because it gives far
/// better pictures per bit and supports main/high profiles.
pub const RANKING: &[KnownEncoder] = &[
    KnownEncoder {
        element: "v4l2h264enc",
        hardware: true,
        package: "gstreamer1.0-plugins-good",
        takes_new_size: false,
    },
    KnownEncoder {
        element: "mpph264enc",
        hardware: true,
        package: "gstreamer1.0-rockchip (vendor)",
        takes_new_size: false,
    },
    KnownEncoder {
        element: "vah264enc",
        hardware: true,
        package: "gstreamer1.0-plugins-bad",
        takes_new_size: false,
    },
    KnownEncoder {
        element: "vaapih264enc",
        hardware: true,
        package: "gstreamer1.0-vaapi",
        takes_new_size: false,
    },
    KnownEncoder {
        element: "nvv4l2h264enc",
        hardware: true,
        package: "nvidia-l4t-gstreamer (JetPack)",
        takes_new_size: false,
    },
    // libav's wrapper of FFmpeg's `h264_omx`: the OpenMAX IL encoder, which
    // on a Raspberry Pi under the older Raspberry Pi OS (with /opt/vc's
    // libopenmaxil.so) drives the VideoCore's hardware encoder. Newer
    // systems still list it (gstreamer1.0-libav registers every FFmpeg
    // encoder) but cannot open it, so it is last of the hardware ones and,
    // like every encoder, used only once it encoded frames here.
    KnownEncoder {
        element: "avenc_h264_omx",
        hardware: true,
        package: "gstreamer1.0-libav (OpenMAX IL, older Raspberry Pi OS)",
        takes_new_size: false,
    },
    KnownEncoder {
        element: "x264enc",
        hardware: false,
        package: "gstreamer1.0-plugins-ugly",
        takes_new_size: true,
    },
    KnownEncoder {
        element: "openh264enc",
        hardware: false,
        package: "gstreamer1.0-plugins-bad",
        takes_new_size: true,
    },
];

/// The encoder the pipeline will use and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EncoderChoice {
    pub element: String,
    pub hardware: bool,
    /// "auto: v4l2h264enc is the best that encodes here (hardware)" or "configured".
    pub reason: String,
    /// The encoders that encoded frames here and come after it, best
    /// first: what a show falls back to when it fails mid-show.
    pub fallbacks: Vec<String>,
}

/// What encoding a few frames with an element gave (`Err`: why not).
pub type TrialResult = Result<(), String>;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncoderError {
    #[error("video.encoder = \"{configured}\" is not available on this box; H.264 encoders here: {}", list_or_none(.available))]
    NotAvailable {
        configured: String,
        available: Vec<String>,
    },
    #[error("no H.264 encoder found on this box; install gstreamer1.0-plugins-ugly (x264enc) or a hardware encoder plugin")]
    NoneAvailable,
    #[error("no H.264 encoder encodes on this box ({failures}); install gstreamer1.0-plugins-ugly (x264enc)")]
    NoneWorks { failures: String },
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none (install gstreamer1.0-plugins-ugly for x264enc)".into()
    } else {
        v.join(", ")
    }
}

/// True when GStreamer's registry has an element factory of that name.
/// Needs `gst::init()` to have been called.
pub fn registry_available(name: &str) -> bool {
    gstreamer::ElementFactory::find(name).is_some()
}

/// What we know of an element (`None`: not one we rank, e.g. a vendor's own).
pub fn known(element: &str) -> Option<&'static KnownEncoder> {
    RANKING.iter().find(|k| k.element == element)
}

/// Whether `element` takes a new picture size mid-stream (see
/// [`KnownEncoder::takes_new_size`]); an element we do not know is assumed
/// not to.
pub fn takes_new_size(element: &str) -> bool {
    known(element).is_some_and(|k| k.takes_new_size)
}

/// Every element of [`RANKING`] that exists here, best first.
pub fn present(available: &dyn Fn(&str) -> bool) -> Vec<&'static KnownEncoder> {
    RANKING.iter().filter(|k| available(k.element)).collect()
}

/// Resolve `video.encoder` against what exists here.
pub fn choose(
    configured: &VideoEncoder,
    available: &dyn Fn(&str) -> bool,
) -> Result<EncoderChoice, EncoderError> {
    let VideoEncoder::Element(configured) = configured else {
        let best = present(available)
            .into_iter()
            .next()
            .ok_or(EncoderError::NoneAvailable)?;
        let kind = if best.hardware {
            "hardware"
        } else {
            "software"
        };
        return Ok(EncoderChoice {
            element: best.element.to_string(),
            hardware: best.hardware,
            reason: format!("auto: {} is the best available ({kind})", best.element),
            fallbacks: Vec::new(),
        });
    };
    if !available(configured) {
        return Err(EncoderError::NotAvailable {
            configured: configured.to_string(),
            available: present(available)
                .iter()
                .map(|k| k.element.to_string())
                .collect(),
        });
    }
    // An element we do not rank (e.g. a vendor's own) is allowed; we just
    // cannot tell whether it is hardware.
    let hardware = known(configured).is_some_and(|k| k.hardware);
    Ok(EncoderChoice {
        element: configured.to_string(),
        hardware,
        reason: "configured".into(),
        fallbacks: Vec::new(),
    })
}

fn kind(element: &str) -> &'static str {
    if known(element).is_some_and(|k| k.hardware) {
        "hardware"
    } else {
        "software"
    }
}

/// The encoders worth encoding a few frames with for `configured`, best
/// first: for `auto` every ranked encoder present; for a named one, it and
/// then the software encoders present (where a box whose named encoder
/// fails goes on).
pub fn candidates(configured: &VideoEncoder, available: &dyn Fn(&str) -> bool) -> Vec<String> {
    let present = present(available);
    match configured {
        VideoEncoder::Auto => present.iter().map(|k| k.element.to_string()).collect(),
        VideoEncoder::Element(name) => std::iter::once(name.clone())
            .filter(|n| available(n))
            .chain(
                present
                    .iter()
                    .filter(|k| !k.hardware && k.element != name)
                    .map(|k| k.element.to_string()),
            )
            .collect(),
    }
}

/// Resolve `video.encoder` against what encodes here, not merely what the
/// registry lists: `tried(element)` is what encoding a few frames with it
/// gave (`None`: not tried, which counts as failing). `auto` takes the best
/// of [`candidates`] that encoded; a named encoder that fails gives way to
/// the best one that works, and says so. Pure: the trials ran before.
pub fn choose_working(
    configured: &VideoEncoder,
    available: &dyn Fn(&str) -> bool,
    tried: &dyn Fn(&str) -> Option<TrialResult>,
) -> Result<EncoderChoice, EncoderError> {
    if matches!(configured, VideoEncoder::Element(_)) {
        // The registry's answer first: a name that is not there at all is a
        // config mistake, said as before.
        choose(configured, available)?;
    }
    let all = candidates(configured, available);
    if all.is_empty() {
        return Err(EncoderError::NoneAvailable);
    }
    let failure = |e: &str| match tried(e) {
        Some(Ok(())) => None,
        Some(Err(why)) => Some(why),
        None => Some("not tried".to_string()),
    };
    let works: Vec<&String> = all.iter().filter(|e| failure(e).is_none()).collect();
    let failed: Vec<String> = all
        .iter()
        .filter_map(|e| failure(e).map(|why| format!("{e} fails: {why}")))
        .collect();
    let Some(&chosen) = works.first() else {
        return Err(EncoderError::NoneWorks {
            failures: failed.join("; "),
        });
    };
    let fallbacks = works[1..].iter().map(|e| e.to_string()).collect();
    // What was passed over, best first, so status and probe say why the
    // hardware encoder is not the one in use.
    let passed_over: Vec<&String> = all.iter().take_while(|e| *e != chosen).collect();
    let skipped = failed
        .iter()
        .filter(|f| passed_over.iter().any(|e| f.starts_with(&format!("{e} "))))
        .cloned()
        .collect::<Vec<_>>();
    let why_not = if skipped.is_empty() {
        String::new()
    } else {
        format!("; {}", skipped.join("; "))
    };
    let reason = match configured {
        VideoEncoder::Auto => {
            format!(
                "auto: {chosen} is the best that encodes here ({}){why_not}",
                kind(chosen)
            )
        }
        VideoEncoder::Element(name) if name == chosen => "configured".to_string(),
        VideoEncoder::Element(name) => {
            format!("video.encoder = \"{name}\" does not encode here, {chosen} does{why_not}")
        }
    };
    Ok(EncoderChoice {
        element: chosen.clone(),
        hardware: known(chosen).is_some_and(|k| k.hardware),
        reason,
        fallbacks,
    })
}

/// Unit in which a bitrate property or control is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BitrateUnit {
    Kbps,
    Bps,
}

impl BitrateUnit {
    /// The value to set for a bitrate of `kbps` kbit/s.
    pub fn from_kbps(self, kbps: u32) -> u64 {
        match self {
            BitrateUnit::Kbps => u64::from(kbps),
            BitrateUnit::Bps => u64::from(kbps) * 1000,
        }
    }
}

/// How the encoder's bitrate changes while PLAYING (for adaptive bitrate).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum BitrateControl {
    /// Set this GObject property (an unsigned integer) on the encoder.
    Property {
        name: &'static str,
        unit: BitrateUnit,
    },
    /// Set `extra-controls` to a `GstStructure` named `controls` with this key
    /// (v4l2 encoders apply it at run time).
    ExtraControls {
        key: &'static str,
        unit: BitrateUnit,
    },
    /// Unknown element: the bitrate cannot be changed while live.
    None,
}

/// gst-launch fragments for one encoder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EncoderSettings {
    /// Raw caps forced before the encoder (after videoconvert).
    pub input_caps: String,
    /// The encoder (and, for Jetson, its memory upload) with its properties,
    /// named [`ENCODER_ELEMENT_NAME`].
    pub element_desc: String,
    /// Caps forced after the encoder.
    pub output_caps: String,
    pub bitrate_control: BitrateControl,
}

/// Keyframe distance in frames; at least 1 so a bad config cannot turn GOP
/// limits off (0 means "automatic" to x264, i.e. 250 frames).
pub fn gop_frames(v: &VideoConfig) -> u32 {
    v.framerate
        .max(1)
        .saturating_mul(v.keyframe_interval_s.max(1))
}

/// The fragments for `element` configured from `v`.
pub fn settings(element: &str, v: &VideoConfig) -> EncoderSettings {
    let kbps = v.bitrate_kbps.max(1);
    let bps = u64::from(kbps) * 1000;
    let gop = gop_frames(v);
    let name = ENCODER_ELEMENT_NAME;
    let nv12 = "video/x-raw,format=NV12".to_string();
    match element {
        "x264enc" => {
            let preset = v.x264_preset;
            // zerolatency: no frame lookahead, no B-frames, sliced threads, so
            // a frame leaves the encoder as soon as it is coded; the explicit
            // rc-lookahead/bframes repeat that so a later tune change cannot
            // bring 40 frames of delay back. vbv-buf-capacity=300 ms: a
            // keyframe's burst fits a thin uplink's queue, and a new
            // bitrate takes hold in about a second. x264's rate control
            // averages over about four buffers (its CBR decay), so at
            // 1000 ms each rise of adaptive bitrate took 4-5 s to be
            // written (900 → 1350 on a 2000 kbit/s link: 4.5 s), and slow
            // start waits for that (BENCHMARKS.md, uplink). threads is left
            // to x264 (one per core), which with sliced threads costs no
            // latency.
            EncoderSettings {
                input_caps: "video/x-raw,format=I420".into(),
                element_desc: format!(
                    "x264enc name={name} tune=zerolatency speed-preset={preset} bitrate={kbps} \
                     key-int-max={gop} vbv-buf-capacity=300 rc-lookahead=0 bframes=0"
                ),
                output_caps: "video/x-h264,profile=main".into(),
                bitrate_control: BitrateControl::Property {
                    name: "bitrate",
                    unit: BitrateUnit::Kbps,
                },
            }
        }
        "v4l2h264enc" => EncoderSettings {
            input_caps: nv12,
            element_desc: format!(
                "v4l2h264enc name={name} extra-controls=\"controls,video_bitrate={bps},\
                 h264_i_frame_period={gop},repeat_sequence_header=1\""
            ),
            // The Pi's encoder refuses 720p30 without an explicit level.
            output_caps: "video/x-h264,level=(string)4".into(),
            bitrate_control: BitrateControl::ExtraControls {
                key: "video_bitrate",
                unit: BitrateUnit::Bps,
            },
        },
        "openh264enc" => EncoderSettings {
            input_caps: "video/x-raw,format=I420".into(),
            element_desc: format!(
                "openh264enc name={name} rate-control=bitrate bitrate={bps} gop-size={gop} \
                 usage-type=camera complexity=low"
            ),
            output_caps: "video/x-h264".into(),
            bitrate_control: BitrateControl::Property {
                name: "bitrate",
                unit: BitrateUnit::Bps,
            },
        },
        "vah264enc" => EncoderSettings {
            input_caps: nv12,
            element_desc: format!(
                "vah264enc name={name} rate-control=cbr bitrate={kbps} key-int-max={gop} b-frames=0"
            ),
            output_caps: "video/x-h264,profile=main".into(),
            bitrate_control: BitrateControl::Property {
                name: "bitrate",
                unit: BitrateUnit::Kbps,
            },
        },
        "vaapih264enc" => EncoderSettings {
            input_caps: nv12,
            element_desc: format!(
                "vaapih264enc name={name} rate-control=cbr bitrate={kbps} keyframe-period={gop} \
                 max-bframes=0"
            ),
            output_caps: "video/x-h264,profile=main".into(),
            bitrate_control: BitrateControl::Property {
                name: "bitrate",
                unit: BitrateUnit::Kbps,
            },
        },
        "mpph264enc" => EncoderSettings {
            input_caps: nv12,
            element_desc: format!("mpph264enc name={name} rc-mode=cbr bps={bps} gop={gop}"),
            output_caps: "video/x-h264".into(),
            // gstmppenc.c marks properties dirty and applies them on the next frame.
            bitrate_control: BitrateControl::Property {
                name: "bps",
                unit: BitrateUnit::Bps,
            },
        },
        // FFmpeg's omx encoder takes only planar 4:2:0; its generic options
        // are read when the codec opens, so the bitrate is fixed while live.
        "avenc_h264_omx" => EncoderSettings {
            input_caps: "video/x-raw,format=I420".into(),
            element_desc: format!("avenc_h264_omx name={name} bitrate={bps} gop-size={gop}"),
            output_caps: "video/x-h264".into(),
            bitrate_control: BitrateControl::None,
        },
        "nvv4l2h264enc" => EncoderSettings {
            input_caps: nv12,
            // The Jetson encoder only takes NVMM memory: nvvidconv uploads.
            element_desc: format!(
                "nvvidconv ! video/x-raw(memory:NVMM),format=NV12 ! nvv4l2h264enc name={name} \
                 control-rate=1 bitrate={bps} iframeinterval={gop} idrinterval={gop} \
                 insert-sps-pps=true"
            ),
            output_caps: "video/x-h264".into(),
            bitrate_control: BitrateControl::Property {
                name: "bitrate",
                unit: BitrateUnit::Bps,
            },
        },
        other => EncoderSettings {
            // Unknown element: let it negotiate; we know none of its properties.
            input_caps: "video/x-raw".into(),
            element_desc: format!("{other} name={name}"),
            output_caps: "video/x-h264".into(),
            bitrate_control: BitrateControl::None,
        },
    }
}

#[cfg(test)]
#[path = "encoder_tests.rs"]
mod tests;
