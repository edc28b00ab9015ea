//! The encode pipeline's knobs the driver turns while it runs (bitrate,
//! picture size, slate, lower third), looked up once when the pipeline is
//! built into typed fields, not by name at each use. An element that the
//! pipeline lacks (passthrough has no encoder, overlays or scaler) is `None`
//! and its knob does nothing.

use gstreamer as gst;
use gstreamer::prelude::*;

use super::encoder::{BitrateControl, ENCODER_ELEMENT_NAME};

/// How the slate is shown: an image faded in, or a text overlay.
enum Slate {
    Image(gst::Element),
    Text(gst::Element),
    None,
}

pub(crate) struct EncodeControls {
    encoder: Option<gst::Element>,
    bitrate_control: BitrateControl,
    /// The capsfilter in front of the encoder that sets the picture size.
    size: Option<gst::Element>,
    /// The configured picture size, halved from by `set_scale_step`.
    full_size: (u32, u32),
    slate: Slate,
    lower_third: Option<gst::Element>,
}

impl EncodeControls {
    /// The names are those `plan::encode_pipeline` gives its elements.
    pub(crate) fn find(
        encode: &gst::Pipeline,
        bitrate_control: BitrateControl,
        full_size: (u32, u32),
    ) -> EncodeControls {
        let slate = match (encode.by_name("slate_image"), encode.by_name("slate")) {
            (Some(image), _) => Slate::Image(image),
            (None, Some(text)) => Slate::Text(text),
            (None, None) => Slate::None,
        };
        EncodeControls {
            encoder: encode.by_name(ENCODER_ELEMENT_NAME),
            bitrate_control,
            size: encode.by_name("size"),
            full_size,
            slate,
            lower_third: encode.by_name("lower_third"),
        }
    }

    /// The encoder element, if the pipeline encodes (not passthrough).
    pub(crate) fn encoder(&self) -> Option<&gst::Element> {
        self.encoder.as_ref()
    }

    /// Change the encoder's bitrate while PLAYING; false where the encoder
    /// cannot (passthrough, or an encoder without a run-time control).
    pub(crate) fn set_bitrate(&self, kbps: u32) -> bool {
        let Some(enc) = &self.encoder else {
            return false;
        };
        match &self.bitrate_control {
            BitrateControl::Property { name, unit } => {
                let value = unit.from_kbps(kbps).to_string();
                enc.find_property(name).is_some() && {
                    enc.set_property_from_str(name, &value);
                    true
                }
            }
            BitrateControl::ExtraControls { key, unit } => {
                let value = i32::try_from(unit.from_kbps(kbps)).unwrap_or(i32::MAX);
                let controls = gst::Structure::builder("controls")
                    .field(*key, value)
                    .build();
                enc.set_property("extra-controls", &controls);
                true
            }
            BitrateControl::None => false,
        }
    }

    /// Halve the picture `step` times in front of the encoder (0 = the
    /// configured size). Only for encoders that take a new size mid-stream
    /// (`encoder::takes_new_size`); the driver's controller never asks others.
    pub(crate) fn set_scale_step(&self, step: u32) {
        let Some(size) = &self.size else {
            return;
        };
        let div = 1u32 << step.min(3);
        let even = |v: u32| (v / div).max(16) & !1;
        let (w, h) = self.full_size;
        let caps = gst::Caps::builder("video/x-raw")
            .field("width", even(w) as i32)
            .field("height", even(h) as i32)
            .build();
        size.set_property("caps", &caps);
    }

    /// Show or hide the slate over the picture.
    pub(crate) fn set_slate(&self, on: bool) {
        match &self.slate {
            Slate::Image(image) => image.set_property("alpha", if on { 1.0f64 } else { 0.0 }),
            Slate::Text(text) => text.set_property("silent", !on),
            Slate::None => {}
        }
    }

    /// Set or clear the lower third (product name, weight, price).
    pub(crate) fn set_lower_third(&self, text: Option<&str>) {
        let Some(lt) = &self.lower_third else {
            return;
        };
        match text {
            Some(t) => {
                lt.set_property("text", t);
                lt.set_property("silent", false);
            }
            None => lt.set_property("silent", true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(desc: &str) -> gst::Pipeline {
        crate::media::init_for_tests();
        gst::parse::launch(desc)
            .expect("parse")
            .downcast::<gst::Pipeline>()
            .expect("pipeline")
    }

    #[test]
    fn the_knobs_reach_the_elements_found_once() {
        let p = pipeline(
            "videotestsrc ! textoverlay name=slate silent=true ! textoverlay name=lower_third silent=true \
             ! videoscale ! capsfilter name=size ! x264enc name=encoder bitrate=1000 ! fakesink",
        );
        let c = EncodeControls::find(
            &p,
            BitrateControl::Property {
                name: "bitrate",
                unit: crate::media::encoder::BitrateUnit::Kbps,
            },
            (320, 240),
        );
        assert!(c.set_bitrate(700));
        let enc = p.by_name("encoder").expect("encoder");
        assert_eq!(enc.property::<u32>("bitrate"), 700);
        c.set_scale_step(1);
        let caps = p
            .by_name("size")
            .expect("size")
            .property::<gst::Caps>("caps");
        assert_eq!(
            caps.to_string(),
            "video/x-raw, width=(int)160, height=(int)120"
        );
        c.set_slate(true);
        assert!(!p
            .by_name("slate")
            .expect("slate")
            .property::<bool>("silent"));
        c.set_lower_third(Some("Eggs 1.20"));
        let lt = p.by_name("lower_third").expect("lower third");
        assert_eq!(lt.property::<String>("text"), "Eggs 1.20");
        assert!(!lt.property::<bool>("silent"));
        c.set_lower_third(None);
        assert!(lt.property::<bool>("silent"));
    }

    /// Passthrough: no encoder, no overlays; every knob is a no-op.
    #[test]
    fn a_pipeline_without_the_elements_has_inert_knobs() {
        let p = pipeline("videotestsrc ! fakesink");
        let c = EncodeControls::find(&p, BitrateControl::None, (320, 240));
        assert!(c.encoder().is_none());
        assert!(!c.set_bitrate(500));
        c.set_scale_step(2);
        c.set_slate(true);
        c.set_lower_third(Some("x"));
    }
}
