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
            // bring 40 frames of delay back. vbv-buf-capacity=1000 ms caps
            // bursts at about one second of bitrate, which RTMP uplinks
            // absorb. threads is left to x264 (one per core), which with
            // sliced threads costs no latency.
            EncoderSettings {
                input_caps: "video/x-raw,format=I420".into(),
                element_desc: format!(
                    "x264enc name={name} tune=zerolatency speed-preset={preset} bitrate={kbps} \
                     key-int-max={gop} vbv-buf-capacity=1000 rc-lookahead=0 bframes=0"
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
mod tests {
    use super::*;
    use crate::config::X264Preset;

    fn element(name: &str) -> VideoEncoder {
        VideoEncoder::Element(name.into())
    }

    fn only(names: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |n: &str| names.contains(&n)
    }

    #[test]
    fn only_the_software_encoders_take_a_new_size_mid_stream() {
        assert!(takes_new_size("x264enc"));
        assert!(takes_new_size("openh264enc"));
        for hw in RANKING.iter().filter(|k| k.hardware) {
            assert!(!takes_new_size(hw.element), "{}", hw.element);
        }
        assert!(!takes_new_size("vendorh264enc"), "unknown: assume not");
        assert!(!takes_new_size(""));
    }

    fn cfg(fps: u32, kf: u32, kbps: u32) -> VideoConfig {
        VideoConfig {
            framerate: fps,
            keyframe_interval_s: kf,
            bitrate_kbps: kbps,
            ..VideoConfig::default()
        }
    }

    #[test]
    fn auto_picks_best_by_ranking() {
        let cases: &[(&'static [&'static str], &str, bool)] = &[
            (&["x264enc", "openh264enc"], "x264enc", false),
            (&["openh264enc"], "openh264enc", false),
            (&["x264enc", "v4l2h264enc"], "v4l2h264enc", true),
            (&["vaapih264enc", "vah264enc", "x264enc"], "vah264enc", true),
            (&["nvv4l2h264enc", "x264enc"], "nvv4l2h264enc", true),
            (&["mpph264enc", "vah264enc"], "mpph264enc", true),
        ];
        for (set, want, hw) in cases {
            let c = choose(&VideoEncoder::Auto, &only(set)).unwrap();
            assert_eq!(c.element, *want, "set {set:?}");
            assert_eq!(c.hardware, *hw);
            assert!(c.reason.starts_with("auto: "), "{}", c.reason);
            assert!(c.reason.contains(want));
        }
        let c = choose(&VideoEncoder::Auto, &only(&["v4l2h264enc"])).unwrap();
        assert_eq!(
            c.reason,
            "auto: v4l2h264enc is the best available (hardware)"
        );
    }

    /// A trial table: these elements encode, the rest of `present` fail.
    fn trials(works: &'static [&'static str]) -> impl Fn(&str) -> Option<TrialResult> {
        move |n: &str| {
            Some(if works.contains(&n) {
                Ok(())
            } else {
                Err("not-negotiated".to_string())
            })
        }
    }

    /// `auto` takes the best encoder that encoded frames, not the best the
    /// registry lists; the ones that encoded after it are its fallbacks.
    #[test]
    fn auto_picks_the_best_that_encodes() {
        let here = only(&["avenc_h264_omx", "x264enc", "openh264enc"]);
        let c = choose_working(
            &VideoEncoder::Auto,
            &here,
            &trials(&["x264enc", "openh264enc"]),
        )
        .unwrap();
        assert_eq!(c.element, "x264enc");
        assert!(!c.hardware);
        assert_eq!(c.fallbacks, ["openh264enc"]);
        assert_eq!(
            c.reason,
            "auto: x264enc is the best that encodes here (software); avenc_h264_omx fails: not-negotiated"
        );
        // Everything encodes: the hardware one, with both software ones behind it.
        let c = choose_working(
            &VideoEncoder::Auto,
            &here,
            &trials(&["avenc_h264_omx", "x264enc", "openh264enc"]),
        )
        .unwrap();
        assert_eq!(c.element, "avenc_h264_omx");
        assert!(c.hardware);
        assert_eq!(c.fallbacks, ["x264enc", "openh264enc"]);
        assert_eq!(
            c.reason,
            "auto: avenc_h264_omx is the best that encodes here (hardware)"
        );
        // A failure below the chosen one is no reason to mention it.
        let c = choose_working(
            &VideoEncoder::Auto,
            &here,
            &trials(&["avenc_h264_omx", "x264enc"]),
        )
        .unwrap();
        assert_eq!(c.fallbacks, ["x264enc"]);
        assert!(!c.reason.contains("openh264enc"), "{}", c.reason);
        // Nothing encodes: every failure is named.
        let e = choose_working(&VideoEncoder::Auto, &here, &trials(&[])).unwrap_err();
        let text = e.to_string();
        for name in ["avenc_h264_omx", "x264enc", "openh264enc"] {
            assert!(
                text.contains(&format!("{name} fails: not-negotiated")),
                "{text}"
            );
        }
        // Not tried counts as failing.
        let e = choose_working(&VideoEncoder::Auto, &here, &|_| None).unwrap_err();
        assert!(e.to_string().contains("x264enc fails: not tried"), "{e}");
        assert_eq!(
            choose_working(&VideoEncoder::Auto, &only(&[]), &trials(&[])).unwrap_err(),
            EncoderError::NoneAvailable
        );
    }

    /// A named encoder is used when it encodes; when it does not, the best
    /// software one that does, said in the reason; a name the registry
    /// lacks is the config mistake it was.
    #[test]
    fn a_named_encoder_that_fails_gives_way() {
        let here = only(&["v4l2h264enc", "x264enc", "openh264enc"]);
        let named = element("v4l2h264enc");
        assert_eq!(
            candidates(&named, &here),
            ["v4l2h264enc", "x264enc", "openh264enc"]
        );
        let c = choose_working(
            &named,
            &here,
            &trials(&["v4l2h264enc", "x264enc", "openh264enc"]),
        )
        .unwrap();
        assert_eq!(
            (c.element.as_str(), c.reason.as_str()),
            ("v4l2h264enc", "configured")
        );
        assert_eq!(c.fallbacks, ["x264enc", "openh264enc"]);
        let c = choose_working(&named, &here, &trials(&["openh264enc"])).unwrap();
        assert_eq!(c.element, "openh264enc");
        assert_eq!(
            c.reason,
            "video.encoder = \"v4l2h264enc\" does not encode here, openh264enc does; \
             v4l2h264enc fails: not-negotiated; x264enc fails: not-negotiated"
        );
        assert!(c.fallbacks.is_empty());
        // A named software encoder falls back to the other software one only.
        assert_eq!(
            candidates(&element("openh264enc"), &here),
            ["openh264enc", "x264enc"]
        );
        let e = choose_working(&element("nosuchenc"), &here, &trials(&["x264enc"])).unwrap_err();
        assert!(matches!(e, EncoderError::NotAvailable { .. }), "{e}");
    }

    #[test]
    fn configured_overrides_ranking() {
        let c = choose(&element("x264enc"), &only(&["x264enc", "v4l2h264enc"])).unwrap();
        assert_eq!(c.element, "x264enc");
        assert_eq!(c.reason, "configured");
        assert!(!c.hardware);
        // An unranked element that exists is accepted.
        let c = choose(&element("myvendorenc"), &only(&["myvendorenc"])).unwrap();
        assert_eq!(c.element, "myvendorenc");
    }

    #[test]
    fn missing_configured_lists_what_exists() {
        let e = choose(&element("v4l2h264enc"), &only(&["x264enc", "openh264enc"])).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("v4l2h264enc"), "{text}");
        assert!(text.contains("x264enc, openh264enc"), "{text}");
        let e = choose(&element("v4l2h264enc"), &only(&[])).unwrap_err();
        assert!(e.to_string().contains("gstreamer1.0-plugins-ugly"));
    }

    #[test]
    fn auto_with_nothing_names_package() {
        let e = choose(&VideoEncoder::Auto, &only(&["jpegdec"])).unwrap_err();
        assert_eq!(e, EncoderError::NoneAvailable);
        assert!(e.to_string().contains("gstreamer1.0-plugins-ugly"));
    }

    #[test]
    fn x264_settings_follow_config() {
        for (fps, kf, kbps) in [(30, 2, 2500), (25, 4, 800), (15, 1, 6000)] {
            let s = settings("x264enc", &cfg(fps, kf, kbps));
            assert!(s.element_desc.contains(&format!("bitrate={kbps} ")));
            assert!(s
                .element_desc
                .contains(&format!("key-int-max={} ", fps * kf)));
            assert!(s.element_desc.contains("tune=zerolatency"));
            assert!(s.element_desc.contains("speed-preset=veryfast"));
            assert_eq!(s.input_caps, "video/x-raw,format=I420");
        }
        let mut v = cfg(30, 2, 2500);
        // Any text but a preset is refused when the config is parsed
        // (`config::choices`), so each word reaches the element as written.
        for &preset in X264Preset::ALL {
            v.x264_preset = preset;
            assert!(settings("x264enc", &v)
                .element_desc
                .contains(&format!("speed-preset={preset} ")));
        }
    }

    #[test]
    fn hardware_settings_use_their_units() {
        let v = cfg(30, 2, 2500);
        let s = settings("v4l2h264enc", &v);
        assert!(s.element_desc.contains("video_bitrate=2500000,"));
        assert!(s.element_desc.contains("h264_i_frame_period=60,"));
        assert!(s.element_desc.contains("repeat_sequence_header=1"));
        assert_eq!(s.output_caps, "video/x-h264,level=(string)4");
        assert_eq!(
            s.bitrate_control,
            BitrateControl::ExtraControls {
                key: "video_bitrate",
                unit: BitrateUnit::Bps
            }
        );
        let s = settings("openh264enc", &cfg(25, 2, 1000));
        assert!(s.element_desc.contains("bitrate=1000000 "));
        assert!(s.element_desc.contains("gop-size=50"));
        let s = settings("mpph264enc", &v);
        assert!(s.element_desc.contains("bps=2500000 ") && s.element_desc.contains("gop=60"));
        let s = settings("vah264enc", &v);
        assert!(
            s.element_desc.contains("bitrate=2500 ") && s.element_desc.contains("key-int-max=60")
        );
        let s = settings("vaapih264enc", &v);
        assert!(s.element_desc.contains("keyframe-period=60"));
        let s = settings("nvv4l2h264enc", &v);
        assert!(
            s.element_desc.contains("bitrate=2500000 ")
                && s.element_desc.contains("iframeinterval=60")
        );
        assert_eq!(
            settings("weirdenc", &v).bitrate_control,
            BitrateControl::None
        );
        for k in RANKING {
            let s = settings(k.element, &v);
            assert!(s
                .element_desc
                .contains(&format!("name={ENCODER_ELEMENT_NAME}")));
            // libav reads its bitrate when the codec opens, never while live.
            let live = k.element != "avenc_h264_omx";
            assert_eq!(
                s.bitrate_control != BitrateControl::None,
                live,
                "{}",
                k.element
            );
        }
        let s = settings("avenc_h264_omx", &v);
        assert!(
            s.element_desc.contains("bitrate=2500000 ") && s.element_desc.ends_with("gop-size=60")
        );
    }

    #[test]
    fn zero_config_values_do_not_disable_gop() {
        assert_eq!(gop_frames(&cfg(0, 0, 0)), 1);
        assert!(settings("x264enc", &cfg(0, 0, 0))
            .element_desc
            .contains("bitrate=1 "));
        assert_eq!(BitrateUnit::Bps.from_kbps(2500), 2_500_000);
        assert_eq!(BitrateUnit::Kbps.from_kbps(2500), 2500);
    }

    /// Encode 30 small frames through the fragments for `element`, change the
    /// bitrate while PLAYING the way [`BitrateControl`] says, and return the
    /// caps h264parse delivered.
    fn encode_through(element: &str) -> gstreamer::Caps {
        use gstreamer as gst;
        use gstreamer::prelude::*;
        crate::media::init_for_tests();
        let s = settings(element, &cfg(30, 1, 500));
        let desc = format!(
            "videotestsrc num-buffers=30 ! video/x-raw,width=320,height=240,framerate=30/1 ! \
             videoconvert ! {} ! {} ! {} ! h264parse ! fakesink name=out",
            s.input_caps, s.element_desc, s.output_caps
        );
        let pipeline = gst::parse::launch(&desc)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let enc = pipeline.by_name(ENCODER_ELEMENT_NAME).unwrap();
        let BitrateControl::Property { name, unit } = s.bitrate_control else {
            panic!("{element}: expected a bitrate property");
        };
        let value = u32::try_from(unit.from_kbps(400)).unwrap();
        enc.set_property(name, value);
        let msg = pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("no EOS within 30 s");
        let sink = pipeline.by_name("out").unwrap();
        let caps = sink.static_pad("sink").unwrap().current_caps();
        pipeline.set_state(gst::State::Null).unwrap();
        assert!(
            matches!(msg.view(), gst::MessageView::Eos(_)),
            "{element}: pipeline error: {msg:?}"
        );
        assert_eq!(enc.property::<u32>(name), value);
        caps.unwrap()
    }

    /// x264enc with the default preset comes out Main profile, not the High
    /// 4:4:4 Predictive that `videotestsrc ! x264enc` gives and platforms reject.
    #[test]
    fn x264_fragment_runs_and_is_main_profile() {
        let caps = encode_through("x264enc");
        let st = caps.structure(0).unwrap();
        assert_eq!(st.get::<&str>("profile").unwrap(), "main", "{caps}");
    }

    /// openh264enc is installed here too: its property values must parse.
    #[test]
    fn openh264_fragment_runs() {
        let caps = encode_through("openh264enc");
        assert_eq!(caps.structure(0).unwrap().name(), "video/x-h264");
    }
}
