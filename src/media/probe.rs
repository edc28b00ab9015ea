//! `farmcast probe`: what this box has, for a technician on SSH and (as JSON)
//! for the MQTT `probe` command.
//!
//! Contract: [`probe`] looks at the machine (GStreamer's device monitor and
//! registry, `/dev`, `/proc/device-tree`) and returns a [`ProbeReport`]; a box
//! with no camera, microphone, GPIO or serial port gives a normal report with
//! empty lists, never an error. [`render_human`] formats it for a terminal;
//! `serde_json` serialises it. Opening each microphone for a moment is the
//! only side effect (it tells "listed" from "really captures"), beside
//! encoding a few frames with each H.264 encoder present (it tells "listed"
//! from "really encodes"; see `encoder_trial`).

use std::path::Path;

use anyhow::Result;
use gstreamer as gst;
use gstreamer::prelude::*;
use serde::Serialize;

use super::encoder::{self, EncoderChoice, TrialResult};
use super::modes::{self, CameraMode};
use crate::config::{VideoConfig, VideoEncoder};

mod render;
pub use render::render_human;

/// The size and rate `probe` reports a mode choice for (the default config).
pub const PROBE_WANT: (u32, u32, u32) = (1280, 720, 30);

/// How long a microphone may take to deliver its first buffers.
const CAPTURE_CHECK_TIMEOUT_S: u64 = 3;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    pub gstreamer_version: String,
    /// `/proc/device-tree/model`, e.g. "Raspberry Pi 4 Model B Rev 1.4".
    pub board: Option<String>,
    pub cameras: Vec<CameraInfo>,
    pub audio_inputs: Vec<AudioInput>,
    pub encoders: EncodersInfo,
    /// JPEG decoders present, best first; the first is what MJPEG cameras use.
    pub jpeg_decoders: Vec<String>,
    pub gpio_chips: Vec<String>,
    pub serial_ports: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraInfo {
    pub name: String,
    /// `/dev/videoN` when the monitor says.
    pub device: Option<String>,
    pub modes: Vec<CameraMode>,
    /// The mode 1280x720@30 would use, e.g. "MJPEG 1280x720@30".
    pub mode_for_720p30: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioInput {
    pub name: String,
    /// `hw:X,Y` for ALSA devices.
    pub alsa_device: Option<String>,
    /// It delivered sound within a few seconds.
    pub can_capture: bool,
    /// Why not (busy: another program, maybe farmcast itself, has it open).
    pub capture_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncoderInfo {
    pub element: String,
    pub hardware: bool,
    pub package: String,
    /// It encoded a few frames here.
    pub works: bool,
    /// Why not (`None` when it works).
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncodersInfo {
    /// Every ranked H.264 encoder present here, best first, each tried.
    pub present: Vec<EncoderInfo>,
    /// What `video.encoder = "auto"` resolves to (the best that works)...
    pub auto: Option<EncoderChoice>,
    /// ...or why it cannot.
    pub auto_error: Option<String>,
}

/// Look at this box.
pub fn probe() -> Result<ProbeReport> {
    super::init()?;
    let available = |name: &str| encoder::registry_available(name);
    let (w, h, fps) = PROBE_WANT;
    let video = VideoConfig {
        width: w,
        height: h,
        framerate: fps,
        ..VideoConfig::default()
    };
    let trials = super::encoder_trial::try_all(
        &encoder::candidates(&VideoEncoder::Auto, &available),
        &video,
    );
    let tried = |name: &str| trials.get(name).cloned();
    Ok(ProbeReport {
        gstreamer_version: gst::version_string().to_string(),
        board: board_model(Path::new("/proc/device-tree/model")),
        cameras: cameras(),
        audio_inputs: audio_inputs(),
        encoders: encoders_info(&available, &tried),
        jpeg_decoders: modes::JPEG_DECODERS
            .iter()
            .filter(|d| available(d))
            .map(|d| d.to_string())
            .collect(),
        gpio_chips: list_dev(Path::new("/dev"), &["gpiochip"]),
        serial_ports: serial_ports(),
    })
}

/// The encoder part of the report for a registry that has what `available`
/// says and trials that gave what `tried` says: a function of its own so
/// that tests can hand it a fake registry.
fn encoders_info(
    available: &dyn Fn(&str) -> bool,
    tried: &dyn Fn(&str) -> Option<TrialResult>,
) -> EncodersInfo {
    let auto = encoder::choose_working(&VideoEncoder::Auto, available, tried);
    EncodersInfo {
        present: encoder::present(available)
            .into_iter()
            .map(|k| {
                let failure = match tried(k.element) {
                    Some(Ok(())) => None,
                    Some(Err(why)) => Some(why),
                    None => Some("not tried".into()),
                };
                EncoderInfo {
                    element: k.element.into(),
                    hardware: k.hardware,
                    package: k.package.into(),
                    works: failure.is_none(),
                    failure,
                }
            })
            .collect(),
        auto: auto.as_ref().ok().cloned(),
        auto_error: auto.err().map(|e| e.to_string()),
    }
}

/// `farmcast probe [--json]`: the text to print.
pub fn run(json: bool) -> Result<String> {
    let report = probe()?;
    if json {
        Ok(serde_json::to_string_pretty(&report)?)
    } else {
        Ok(render_human(&report))
    }
}

fn board_model(path: &Path) -> Option<String> {
    let raw = std::fs::read(path).ok()?;
    // The device tree stores it NUL-terminated.
    let text = String::from_utf8_lossy(&raw)
        .trim_matches(char::from(0))
        .trim()
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// Entries of `dir` whose names start with one of `prefixes`, as full paths, sorted.
fn list_dev(dir: &Path, prefixes: &[&str]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            prefixes.iter().any(|p| name.starts_with(p))
        })
        .map(|e| e.path().display().to_string())
        .collect();
    out.sort();
    out
}

fn serial_ports() -> Vec<String> {
    let mut ports = list_dev(Path::new("/dev"), &["ttyUSB", "ttyACM"]);
    // The by-id names survive re-plugging; show where each points.
    for link in list_dev(Path::new("/dev/serial/by-id"), &[""]) {
        match std::fs::read_link(&link) {
            Ok(target) => ports.push(format!("{link} -> {}", target.display())),
            Err(_) => ports.push(link),
        }
    }
    ports
}

use super::discover::{devices as monitor, element_device, prop as prop_text};

fn cameras() -> Vec<CameraInfo> {
    monitor("Video/Source")
        .iter()
        .map(|d| {
            let device = prop_text(d, "api.v4l2.path")
                .or_else(|| prop_text(d, "device.path"))
                .or_else(|| element_device(d).map(|(_, dev)| dev));
            let modes = d
                .caps()
                .map(|c| modes::parse_caps(&c.to_string()))
                .unwrap_or_default();
            let mode_for_720p30 = modes::choose(&modes, PROBE_WANT, false).map(|c| c.summary());
            CameraInfo {
                name: d.display_name().to_string(),
                device,
                modes,
                mode_for_720p30,
            }
        })
        .collect()
}

fn audio_inputs() -> Vec<AudioInput> {
    monitor("Audio/Source")
        .iter()
        .map(|d| {
            // The name to put in `audio.source`: the card by its id, which
            // stays when USB devices come up in another order.
            let alsa = element_device(d)
                .filter(|(factory, _)| factory == "alsasrc")
                .map(|(_, dev)| {
                    crate::media::discover::stable_alsa_name(
                        &dev,
                        std::path::Path::new("/proc/asound"),
                    )
                });
            let check = capture_check(d);
            AudioInput {
                name: d.display_name().to_string(),
                alsa_device: alsa,
                can_capture: check.is_ok(),
                capture_error: check.err(),
            }
        })
        .collect()
}

/// Open the device and wait for a few buffers: a listed microphone may still
/// be busy or broken.
fn capture_check(device: &gst::Device) -> Result<(), String> {
    let src = device
        .create_element(None)
        .map_err(|e| format!("cannot create its source element: {e}"))?;
    if src.find_property("num-buffers").is_some() {
        src.set_property("num-buffers", 4i32);
    }
    let sink = gst::ElementFactory::make("fakesink")
        .build()
        .map_err(|e| e.to_string())?;
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([&src, &sink])
        .map_err(|e| e.to_string())?;
    src.link(&sink).map_err(|e| e.to_string())?;
    let result = run_until_eos(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run_until_eos(pipeline: &gst::Pipeline) -> Result<(), String> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "could not be opened (busy or gone)".to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let timeout = gst::ClockTime::from_seconds(CAPTURE_CHECK_TIMEOUT_S);
    match bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error]) {
        Some(msg) => match msg.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(e) => Err(e.error().to_string()),
            _ => Err("unexpected message".into()),
        },
        None => Err(format!("no sound within {} s", CAPTURE_CHECK_TIMEOUT_S)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe runs on whatever machine the tests run on (with or without
    /// a camera or a hardware encoder): every encoder present is tried, and
    /// `auto` is the first of the preference order that encoded. Here that
    /// passes over libav's OpenMAX encoder, which is listed and fails.
    #[test]
    fn probe_runs_here_and_auto_picks_the_best_working_encoder() {
        let r = probe().expect("probe is a normal report even without devices");
        assert!(
            r.gstreamer_version.starts_with("GStreamer 1."),
            "{}",
            r.gstreamer_version
        );
        let x264 = r.encoders.present.iter().find(|e| e.element == "x264enc");
        assert!(x264.is_some_and(|e| e.works), "{:?}", r.encoders);
        let omx = r
            .encoders
            .present
            .iter()
            .find(|e| e.element == "avenc_h264_omx")
            .expect("gstreamer1.0-libav lists avenc_h264_omx");
        assert!(!omx.works);
        let why = omx.failure.as_deref().unwrap_or_default();
        assert!(why.contains("not-negotiated"), "{why}");
        let best = r.encoders.present.iter().find(|e| e.works).unwrap();
        let auto = r.encoders.auto.as_ref().expect("auto resolves");
        assert_eq!(auto.element, best.element, "{:?}", r.encoders);
        assert!(
            auto.reason.contains("avenc_h264_omx fails: "),
            "{}",
            auto.reason
        );
        assert!(r.jpeg_decoders.iter().any(|d| d == "jpegdec"));
        let text = render_human(&r);
        assert!(
            text.contains(&format!("auto picks {}", best.element)),
            "{text}"
        );
        let line = |name: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_default()
                .to_string()
        };
        assert!(line("x264enc").contains(" works "), "{text}");
        assert!(line("avenc_h264_omx").contains(" fails: "), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["encoders"]["auto"]["element"], best.element.as_str());
    }

    /// The rule, on fake registries: `auto` picks the first element of
    /// [`encoder::RANKING`] that the registry has, and `present` lists what
    /// it has in that order, whatever order the registry would list them in.
    #[test]
    fn auto_picks_the_first_present_in_preference_order() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["x264enc"], Some("x264enc")),
            (&["openh264enc", "x264enc"], Some("x264enc")),
            (&["x264enc", "v4l2h264enc"], Some("v4l2h264enc")),
            (&["x264enc", "vaapih264enc", "vah264enc"], Some("vah264enc")),
            (&["openh264enc", "nvv4l2h264enc"], Some("nvv4l2h264enc")),
            (&["openh264enc"], Some("openh264enc")),
            // Not H.264 encoders we rank: nothing for auto to pick.
            (&["jpegdec", "x265enc"], None),
            (&[], None),
        ];
        for &(registry, want) in cases {
            let has = |n: &str| registry.contains(&n);
            let info = encoders_info(&has, &|_| Some(Ok(())));
            assert_eq!(
                info.auto.as_ref().map(|c| c.element.as_str()),
                want,
                "registry {registry:?}: {info:?}"
            );
            let expected: Vec<&str> = encoder::RANKING
                .iter()
                .map(|k| k.element)
                .filter(|e| registry.contains(e))
                .collect();
            let present: Vec<&str> = info.present.iter().map(|e| e.element.as_str()).collect();
            assert_eq!(present, expected, "registry {registry:?}");
            if let Some(w) = want {
                assert_eq!(present.first(), Some(&w), "auto is the head of present");
                let hw = encoder::RANKING
                    .iter()
                    .any(|k| k.element == w && k.hardware);
                assert_eq!(info.auto.as_ref().map(|c| c.hardware), Some(hw));
                assert!(info.auto_error.is_none());
            } else {
                assert!(info.auto_error.is_some(), "no reason for no auto: {info:?}");
            }
        }
        // What fails its trial is listed, marked, and passed over.
        let has = |n: &str| ["v4l2h264enc", "x264enc"].contains(&n);
        let tried = |n: &str| {
            Some(if n == "x264enc" {
                Ok(())
            } else {
                Err("busy".into())
            })
        };
        let info = encoders_info(&has, &tried);
        assert_eq!(
            info.auto.as_ref().map(|c| c.element.as_str()),
            Some("x264enc")
        );
        let v4l2 = &info.present[0];
        assert_eq!((v4l2.works, v4l2.failure.as_deref()), (false, Some("busy")));
    }

    fn two_camera_report() -> ProbeReport {
        let c920 = modes::parse_caps(
            "video/x-raw, format=(string)YUY2, width=(int)1280, height=(int)720, framerate=(fraction){ 10/1, 15/2, 5/1 }; \
             image/jpeg, width=(int)1920, height=(int)1080, framerate=(fraction){ 30/1, 24/1 }; \
             image/jpeg, width=(int)1280, height=(int)720, framerate=(fraction){ 30/1, 24/1 }",
        );
        let cheap = modes::parse_caps(
            "image/jpeg, width=(int)640, height=(int)480, framerate=(fraction)30/1",
        );
        let pick = |m: &[CameraMode]| modes::choose(m, PROBE_WANT, false).map(|c| c.summary());
        ProbeReport {
            gstreamer_version: "GStreamer 1.22.0".into(),
            board: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
            cameras: vec![
                CameraInfo {
                    name: "HD Pro Webcam C920".into(),
                    device: Some("/dev/video0".into()),
                    mode_for_720p30: pick(&c920),
                    modes: c920,
                },
                CameraInfo {
                    name: "USB Camera".into(),
                    device: Some("/dev/video2".into()),
                    mode_for_720p30: pick(&cheap),
                    modes: cheap,
                },
            ],
            audio_inputs: vec![AudioInput {
                name: "USB Audio".into(),
                alsa_device: Some("hw:1,0".into()),
                can_capture: false,
                capture_error: Some("could not be opened (busy or gone)".into()),
            }],
            encoders: EncodersInfo {
                present: vec![
                    EncoderInfo {
                        element: "v4l2h264enc".into(),
                        hardware: true,
                        package: "gstreamer1.0-plugins-good".into(),
                        works: true,
                        failure: None,
                    },
                    EncoderInfo {
                        element: "avenc_h264_omx".into(),
                        hardware: true,
                        package: "gstreamer1.0-libav".into(),
                        works: false,
                        failure: Some("not-negotiated".into()),
                    },
                ],
                auto: encoder::choose_working(
                    &VideoEncoder::Auto,
                    &|n| n == "v4l2h264enc" || n == "avenc_h264_omx",
                    &|n| {
                        Some(if n == "v4l2h264enc" {
                            Ok(())
                        } else {
                            Err("not-negotiated".into())
                        })
                    },
                )
                .ok(),
                auto_error: None,
            },
            jpeg_decoders: vec!["v4l2jpegdec".into(), "jpegdec".into()],
            gpio_chips: vec!["/dev/gpiochip0".into()],
            serial_ports: Vec::new(),
        }
    }

    #[test]
    fn human_report_with_two_cameras() {
        let text = render_human(&two_camera_report());
        let expected_lines = [
            "Board:      Raspberry Pi 4 Model B Rev 1.4",
            "  HD Pro Webcam C920 (/dev/video0)",
            "    YUY2: 1280x720@10",
            "    MJPEG: 1920x1080@30, 1280x720@30",
            "    for 1280x720@30: MJPEG 1280x720@30",
            "  USB Camera (/dev/video2)",
            "    MJPEG: 640x480@30",
            "    for 1280x720@30: MJPEG 640x480@30",
            "  USB Audio (audio.source = \"alsa:hw:1,0\"): cannot capture: could not be opened (busy or gone)",
            "  auto picks v4l2h264enc: v4l2h264enc is the best that encodes here (hardware)",
            "  v4l2h264enc    hardware  works  (gstreamer1.0-plugins-good)",
            "  avenc_h264_omx hardware  fails: not-negotiated  (gstreamer1.0-libav)",
            "  v4l2jpegdec, jpegdec (MJPEG cameras use v4l2jpegdec)",
            "  /dev/gpiochip0",
        ];
        for line in expected_lines {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // The one empty section says so, with a hint.
        let serial = text.split("Serial ports:\n").nth(1).unwrap_or("");
        assert!(serial.starts_with("  none found (a serial scale"), "{text}");
        // Cameras come in the order the monitor gave them.
        let a = text.find("HD Pro Webcam C920").unwrap();
        let b = text.find("USB Camera").unwrap();
        assert!(a < b);
    }

    #[test]
    fn empty_report_says_none_found_everywhere() {
        let mut r = two_camera_report();
        r.cameras.clear();
        r.audio_inputs.clear();
        r.encoders = EncodersInfo {
            present: Vec::new(),
            auto: None,
            auto_error: encoder::choose(&VideoEncoder::Auto, &|_| false)
                .err()
                .map(|e| e.to_string()),
        };
        r.jpeg_decoders.clear();
        r.gpio_chips.clear();
        r.board = None;
        let text = render_human(&r);
        assert_eq!(text.matches("none found").count(), 6, "{text}");
        assert!(text.contains("gstreamer1.0-plugins-ugly"));
        assert!(text.contains("unknown (no /proc/device-tree/model)"));
    }

    #[test]
    fn board_model_and_device_listing() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::write(&model, b"Raspberry Pi 5 Model B Rev 1.0\0").unwrap();
        assert_eq!(
            board_model(&model).as_deref(),
            Some("Raspberry Pi 5 Model B Rev 1.0")
        );
        std::fs::write(&model, b"\0").unwrap();
        assert_eq!(board_model(&model), None);
        assert_eq!(board_model(&dir.path().join("absent")), None);
        for f in ["gpiochip1", "gpiochip0", "ttyUSB0", "tty0"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let chips = list_dev(dir.path(), &["gpiochip"]);
        let names: Vec<&str> = chips.iter().filter_map(|p| p.rsplit('/').next()).collect();
        assert_eq!(names, ["gpiochip0", "gpiochip1"]);
        assert_eq!(list_dev(dir.path(), &["ttyUSB", "ttyACM"]).len(), 1);
        assert!(list_dev(&dir.path().join("nope"), &[""]).is_empty());
    }
}
