//! Tests of `encoder`: the choice (by registry and by trial), the
//! fragments each element gets, and two that run through GStreamer.

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
    assert!(s.element_desc.contains("bitrate=2500 ") && s.element_desc.contains("key-int-max=60"));
    let s = settings("vaapih264enc", &v);
    assert!(s.element_desc.contains("keyframe-period=60"));
    let s = settings("nvv4l2h264enc", &v);
    assert!(
        s.element_desc.contains("bitrate=2500000 ") && s.element_desc.contains("iframeinterval=60")
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
    assert!(s.element_desc.contains("bitrate=2500000 ") && s.element_desc.ends_with("gop-size=60"));
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
