//! Camera modes: what a V4L2 camera offers and which of it we ask for.
//!
//! Contract: [`parse_caps`] reads the caps text of a camera, as
//! `gst::Caps::to_string()` writes it (`; ` between structures, typed values)
//! or as `gst-device-monitor-1.0` prints it (one structure a line, untyped
//! values on 1.22), into [`CameraMode`]s; it never panics and drops what it
//! cannot read. [`choose`] picks the mode for a wanted size and rate, and
//! [`source_desc`] writes the gst-launch head from the camera to raw video.
//! All pure: no GStreamer call.

use serde::Serialize;

mod caps_text;
#[cfg(test)]
mod fixtures;

pub use caps_text::parse_caps;

/// What the camera sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ModeFormat {
    /// `video/x-raw` with its GStreamer format (`YUY2`, `NV12`, ...); empty when
    /// the caps did not say.
    Raw(String),
    /// `image/jpeg` (MJPEG).
    Mjpeg,
    /// `video/x-h264` encoded by the camera.
    H264,
}

/// One size a camera offers in one format, with its frame rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CameraMode {
    pub format: ModeFormat,
    pub width: u32,
    pub height: u32,
    /// As `(numerator, denominator)`, in the camera's order; a range is stored
    /// as its max and min, with `rate_range` set.
    pub framerates: Vec<(i32, i32)>,
    /// The camera takes any rate between the two in `framerates`.
    pub rate_range: bool,
    /// Set when the size is a range (ISP or CSI sources): the camera takes any
    /// size from this up to `width` x `height`.
    pub min_size: Option<(u32, u32)>,
}

/// How well the chosen mode fits what was wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fit {
    /// The wanted size at (at least) the wanted rate.
    Exact,
    /// A larger size at the wanted rate; the pipeline scales it down.
    ScaleDown,
    /// Nothing fits; the closest rate, then the largest size.
    Fallback,
}

/// The mode to ask the camera for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeChoice {
    pub format: ModeFormat,
    pub width: u32,
    pub height: u32,
    pub framerate: (i32, i32),
    /// The camera's H.264 goes out as is (no decode, no encode).
    pub passthrough: bool,
    pub fit: Fit,
}

impl ModeChoice {
    /// "MJPEG 1280x720@30" for logs and `farmcast probe`.
    pub fn summary(&self) -> String {
        format!(
            "{} {}x{}@{}{}",
            format_name(&self.format),
            self.width,
            self.height,
            rate_text(self.framerate),
            if self.passthrough {
                " (passthrough)"
            } else {
                ""
            }
        )
    }
}

/// "YUY2", "MJPEG", "H.264".
pub fn format_name(f: &ModeFormat) -> String {
    match f {
        ModeFormat::Raw(s) if s.is_empty() => "raw".into(),
        ModeFormat::Raw(s) => s.clone(),
        ModeFormat::Mjpeg => "MJPEG".into(),
        ModeFormat::H264 => "H.264".into(),
    }
}

/// "30", "7.5", "29.97".
pub fn rate_text((n, d): (i32, i32)) -> String {
    if d == 1 {
        return n.to_string();
    }
    let v = f64::from(n) / f64::from(d.max(1));
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `r >= fps`, with room for NTSC rates (29.97 counts as 30).
fn rate_at_least((n, d): (i32, i32), fps: u32) -> bool {
    i128::from(n) * 1000 >= i128::from(fps) * i128::from(d) * 999
}

fn rate_value((n, d): (i32, i32)) -> f64 {
    f64::from(n) / f64::from(d.max(1))
}

/// The rate to ask this mode for: the wanted one when a range allows it, else
/// the slowest rate that is fast enough, else the fastest there is.
fn best_rate(m: &CameraMode, fps: u32) -> Option<(i32, i32)> {
    if m.rate_range {
        if let [max, min] = m.framerates.as_slice() {
            let want = (i32::try_from(fps).ok()?, 1);
            if rate_value(*min) <= f64::from(fps) && rate_at_least(*max, fps) {
                return Some(want);
            }
        }
    }
    let by_value = |a: &&(i32, i32), b: &&(i32, i32)| rate_value(**a).total_cmp(&rate_value(**b));
    m.framerates
        .iter()
        .filter(|r| rate_at_least(**r, fps))
        .min_by(by_value)
        .or_else(|| m.framerates.iter().max_by(by_value))
        .copied()
}

fn format_rank(f: &ModeFormat) -> u8 {
    match f {
        ModeFormat::H264 => 0,
        ModeFormat::Mjpeg => 1,
        ModeFormat::Raw(_) => 2,
    }
}

/// Whether a mode can give exactly `w` x `h`.
fn has_size(m: &CameraMode, w: u32, h: u32) -> bool {
    match m.min_size {
        None => m.width == w && m.height == h,
        Some((mw, mh)) => (mw..=m.width).contains(&w) && (mh..=m.height).contains(&h),
    }
}

/// Pick the camera mode for `want = (width, height, fps)`.
///
/// Preference, and why:
/// 1. The wanted size at a rate at least the wanted one. Among those, H.264
///    when `allow_h264` (passthrough: the camera's encoder saves us a core),
///    then MJPEG (small enough for USB 2.0, and decoding JPEG is cheap), then
///    raw (YUYV at 720p30 needs about 440 Mbit/s, more than USB 2.0 gives,
///    which is why cameras offer it only at 5-10 fps there).
/// 2. Else the smallest larger size at the wanted rate, scaled down (MJPEG
///    before raw; H.264 would need a decode, so it is not used).
/// 3. Else the mode whose rate comes closest to the wanted one, the largest of
///    those: a live show at a smaller size reads better than a slide show.
///
/// `None` only when no mode is usable (no modes, or only H.264 and
/// `allow_h264` is false).
pub fn choose(modes: &[CameraMode], want: (u32, u32, u32), allow_h264: bool) -> Option<ModeChoice> {
    let (w, h, fps) = want;
    let usable = |m: &&CameraMode| best_rate(m, fps).is_some();
    let fast_enough = |m: &&CameraMode| best_rate(m, fps).is_some_and(|r| rate_at_least(r, fps));
    let pick = |m: &CameraMode, width: u32, height: u32, fit: Fit| {
        best_rate(m, fps).map(|framerate| ModeChoice {
            format: m.format.clone(),
            width,
            height,
            framerate,
            passthrough: m.format == ModeFormat::H264,
            fit,
        })
    };

    let exact = modes
        .iter()
        .filter(|m| allow_h264 || m.format != ModeFormat::H264)
        .filter(|m| has_size(m, w, h))
        .filter(fast_enough)
        .min_by_key(|m| format_rank(&m.format));
    if let Some(m) = exact {
        return pick(m, w, h, Fit::Exact);
    }

    let decodable: Vec<&CameraMode> = modes
        .iter()
        .filter(|m| m.format != ModeFormat::H264)
        .collect();
    let larger = decodable
        .iter()
        .copied()
        .filter(|m| m.width >= w && m.height >= h)
        .filter(fast_enough)
        .min_by_key(|m| {
            (
                u64::from(m.width) * u64::from(m.height),
                format_rank(&m.format),
            )
        });
    if let Some(m) = larger {
        return pick(m, m.width, m.height, Fit::ScaleDown);
    }

    // Only H.264 left: passthrough at whatever size it has, if allowed.
    let pool: Vec<&CameraMode> = if decodable.is_empty() && allow_h264 {
        modes.iter().collect()
    } else {
        decodable
    };
    let closest = pool.into_iter().filter(usable).max_by(|a, b| {
        let score = |m: &CameraMode| {
            best_rate(m, fps)
                .map_or(0.0, rate_value)
                .min(f64::from(fps))
        };
        score(a)
            .total_cmp(&score(b))
            .then(
                (u64::from(a.width) * u64::from(a.height))
                    .cmp(&(u64::from(b.width) * u64::from(b.height))),
            )
            .then(format_rank(&b.format).cmp(&format_rank(&a.format)))
    })?;
    pick(closest, closest.width, closest.height, Fit::Fallback)
}

/// JPEG decoders, best first: the V4L2 memory-to-memory one uses the Pi's
/// hardware; `jpegdec` (libjpeg-turbo) is the everywhere fallback.
pub const JPEG_DECODERS: &[&str] = &["v4l2jpegdec", "jpegdec", "avdec_mjpeg"];

/// The JPEG decoder to put after an MJPEG camera, if any is present.
pub fn jpeg_decoder(available: &dyn Fn(&str) -> bool) -> Option<&'static str> {
    JPEG_DECODERS.iter().copied().find(|d| available(d))
}

/// gst-launch value for a device path; quoted unless plainly safe.
fn device_arg(device: &str) -> String {
    if !device.is_empty()
        && device
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-:".contains(c))
    {
        return device.to_string();
    }
    let mut out = String::from("\"");
    for c in device.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The pipeline head from the camera to raw video (any raw format; the caller
/// converts and scales), or to parsed H.264 for a passthrough choice.
pub fn source_desc(device: &str, choice: &ModeChoice, jpeg_decoder: &str) -> String {
    let (n, d) = choice.framerate;
    let size = format!(
        "width={},height={},framerate={n}/{d}",
        choice.width, choice.height
    );
    let tail = match &choice.format {
        ModeFormat::Raw(f) if f.is_empty() => format!("video/x-raw,{size}"),
        ModeFormat::Raw(f) => format!("video/x-raw,format={f},{size}"),
        ModeFormat::Mjpeg => format!("image/jpeg,{size} ! {jpeg_decoder}"),
        ModeFormat::H264 => {
            format!("video/x-h264,stream-format=byte-stream,alignment=au,{size} ! h264parse")
        }
    };
    format!(
        "v4l2src device={} do-timestamp=true ! {tail}",
        device_arg(device)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use super::fixtures::*;

    fn choice(caps: &str, want: (u32, u32, u32), h264: bool) -> ModeChoice {
        choose(&parse_caps(caps), want, h264).expect("a mode")
    }

    #[test]
    fn c920_with_h264() {
        let c = choice(C920_H264, (1280, 720, 30), true);
        assert_eq!(
            (c.format.clone(), c.width, c.framerate, c.passthrough),
            (ModeFormat::H264, 1280, (30, 1), true)
        );
        let c = choice(C920_H264, (1280, 720, 30), false);
        assert_eq!((c.format.clone(), c.fit), (ModeFormat::Mjpeg, Fit::Exact));
        let c = choice(C920_H264, (1920, 1080, 30), false);
        assert_eq!(
            (c.format.clone(), c.height, c.framerate),
            (ModeFormat::Mjpeg, 1080, (30, 1))
        );
        let c = choice(C920_H264, (640, 480, 30), false);
        assert_eq!((c.format.clone(), c.width), (ModeFormat::Mjpeg, 640));
        // At 10 fps raw is good enough, but MJPEG is still preferred.
        let c = choice(C920_H264, (1280, 720, 10), false);
        assert_eq!((c.format, c.framerate), (ModeFormat::Mjpeg, (10, 1)));
    }

    #[test]
    fn c920_bookworm() {
        let c = choice(C920_BOOKWORM, (1280, 720, 30), true);
        assert_eq!(c.summary(), "MJPEG 1280x720@30");
        let c = choice(C920_BOOKWORM, (1920, 1080, 30), false);
        assert_eq!((c.format, c.fit), (ModeFormat::Mjpeg, Fit::Exact));
        // No 854x480: the smallest larger mode at 30 fps (864x480), scaled down.
        let c = choice(C920_BOOKWORM, (854, 480, 30), false);
        assert_eq!((c.width, c.height, c.fit), (864, 480, Fit::ScaleDown));
        let c = choice(C920_BOOKWORM, (960, 540, 30), false);
        assert_eq!((c.width, c.height, c.fit), (1280, 720, Fit::ScaleDown));
        // Raw only: 720p raw is 10 fps, so 640x480@30 wins over 720p@10.
        let raw: Vec<CameraMode> = parse_caps(C920_BOOKWORM)
            .into_iter()
            .filter(|m| m.format != ModeFormat::Mjpeg)
            .collect();
        let c = choose(&raw, (1280, 720, 30), false).unwrap();
        assert_eq!((c.width, c.framerate, c.fit), (640, (30, 1), Fit::Fallback));
    }

    #[test]
    fn cheap_mjpeg_camera() {
        assert_eq!(choice(CHEAP_MJPEG, (1280, 720, 30), true).fit, Fit::Exact);
        let c = choice(CHEAP_MJPEG, (1920, 1080, 30), true);
        assert_eq!((c.width, c.fit), (1280, Fit::Fallback));
        let c = choice(CHEAP_MJPEG, (640, 480, 30), true);
        assert_eq!((c.width, c.fit), (1280, Fit::ScaleDown));
    }

    #[test]
    fn ranges_give_the_wanted_size_and_rate() {
        let c = choice(PI_ISP, (1280, 720, 30), false);
        assert_eq!(
            (c.width, c.height, c.framerate, c.fit),
            (1280, 720, (30, 1), Fit::Exact)
        );
    }

    #[test]
    fn ntsc_rate_counts_and_h264_only_needs_permission() {
        let caps = "video/x-h264, width=(int)1280, height=(int)720, framerate=(fraction)30000/1001";
        assert!(choose(&parse_caps(caps), (1280, 720, 30), false).is_none());
        let c = choice(caps, (1280, 720, 30), true);
        assert_eq!((c.framerate, c.fit), ((30000, 1001), Fit::Exact));
        assert!(choose(&[], (1280, 720, 30), true).is_none());
    }

    #[test]
    fn source_descriptions() {
        let c = choice(CHEAP_MJPEG, (1280, 720, 30), false);
        assert_eq!(
            source_desc("/dev/video0", &c, "v4l2jpegdec"),
            "v4l2src device=/dev/video0 do-timestamp=true ! image/jpeg,width=1280,height=720,framerate=30/1 ! v4l2jpegdec"
        );
        let c = choice(C920_H264, (1280, 720, 30), true);
        let d = source_desc("/dev/v4l/by-id/usb-046d_C920 x", &c, "jpegdec");
        assert!(
            d.starts_with("v4l2src device=\"/dev/v4l/by-id/usb-046d_C920 x\" "),
            "{d}"
        );
        assert!(d.ends_with("video/x-h264,stream-format=byte-stream,alignment=au,width=1280,height=720,framerate=30/1 ! h264parse"), "{d}");
        let raw = ModeChoice {
            format: ModeFormat::Raw("YUY2".into()),
            width: 640,
            height: 480,
            framerate: (15, 2),
            passthrough: false,
            fit: Fit::Fallback,
        };
        assert!(source_desc("/dev/video2", &raw, "jpegdec")
            .ends_with("! video/x-raw,format=YUY2,width=640,height=480,framerate=15/2"));
        assert_eq!(raw.summary(), "YUY2 640x480@7.5");
    }

    /// The MJPEG head really negotiates in GStreamer (v4l2src swapped for a
    /// JPEG test source, since this machine has no camera).
    #[test]
    fn mjpeg_head_negotiates() {
        use gstreamer as gst;
        use gstreamer::prelude::*;
        crate::media::init_for_tests();
        let c = choice(CHEAP_MJPEG, (1280, 720, 30), false);
        let head = source_desc("/dev/video0", &c, "jpegdec");
        let tail = head.split_once(" ! ").map(|(_, t)| t).unwrap_or("");
        let desc = format!(
            "videotestsrc num-buffers=3 ! video/x-raw,width=1280,height=720,framerate=30/1 ! jpegenc ! {tail} ! fakesink"
        );
        let p = gst::parse::launch(&desc)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let msg = p
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(20),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("EOS");
        p.set_state(gst::State::Null).unwrap();
        assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    }

    fn capsish() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            Just("video/x-raw".to_string()),
            Just("image/jpeg".to_string()),
            Just("video/x-h264".to_string()),
            Just(", width=".to_string()),
            Just(", height=".to_string()),
            Just(", framerate=".to_string()),
            Just(", format=".to_string()),
            Just("(int)".to_string()),
            Just("(fraction)".to_string()),
            "[0-9/{}\\[\\](), ;\n\"-]{0,6}",
            "-?[0-9]{1,11}(/[0-9]{1,11})?",
        ];
        prop::collection::vec(atom, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_yields_sane_modes(text in capsish(), junk in ".{0,200}") {
            for t in [text.as_str(), junk.as_str()] {
                let modes = parse_caps(t);
                for m in &modes {
                    prop_assert!(m.width > 0 && m.height > 0);
                    prop_assert!(m.framerates.iter().all(|&(n, d)| n >= 0 && d > 0));
                }
                for want in [(1280, 720, 30), (0, 0, 0), (u32::MAX, 1, u32::MAX)] {
                    if let Some(c) = choose(&modes, want, true) {
                        prop_assert!(modes.iter().any(|m| m.format == c.format));
                        let _ = source_desc("/dev/video0", &c, "jpegdec");
                    }
                }
                // Something usable that is not H.264 always yields a choice.
                if modes.iter().any(|m| m.format != ModeFormat::H264 && !m.framerates.is_empty()) {
                    prop_assert!(choose(&modes, (1280, 720, 30), false).is_some());
                }
            }
        }
    }
}
