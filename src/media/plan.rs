//! What the pipelines are made of: config in, gst-launch descriptions out.
//!
//! Pure functions, so the choice of elements is unit-tested without GStreamer
//! running. The runtime modules (`capture`, `destination`, `recorder`) parse
//! these descriptions and own the running pipelines.
//!
//! ```text
//!  camera pipeline (rebuilt alone when the camera stalls or vanishes)
//!  v4l2src|videotestsrc|appsrc|filesrc ! convert/scale ! caps ! intervideosink ─┐
//!  mic pipeline (rebuilt alone)                                                  │
//!  alsasrc|audiotestsrc ! convert/resample ! caps ! interaudiosink ───────────┐  │
//!                                                                             │  │
//!  encode pipeline (never stops while the daemon runs)                        │  │
//!  intervideosrc ◄────────────────────────────────────────────────────────────┼──┘
//!     ! slate textoverlay ! lower-third textoverlay ! encoder ! h264parse ! appsink "video" ─┐
//!  interaudiosrc ◄────────────────────────────────────────────────────────────┘              │
//!     ! AAC encoder ! aacparse ! appsink "audio" ────────────────────────────────────────────┤
//!                                                                                            │
//!  one small pipeline per destination and one for the recorder, fed by StreamProducer ◄─────┘
//!  appsrc video ! h264parse ! flvmux|mpegtsmux ! rtmp2sink|srtsink|splitmuxsink
//! ```
//!
//! The inter elements decouple the sources from the encoder: when the camera
//! stalls, `intervideosrc` repeats the last frame and then sends black, on
//! which the slate is drawn, so the viewers never lose the stream; when the
//! microphone goes, `interaudiosrc` sends silence.

use std::fmt::Write as _;

use crate::config::url::Scheme;
use crate::config::{AudioConfig, VideoConfig};

/// Where the picture and the sound come from: `video.source` and
/// `audio.source`, parsed once with the config.
pub use crate::config::{AudioSource, VideoSource};

/// The raw format every source is converted to before the encode pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFormat {
    /// GStreamer video format the encoder wants, e.g. `I420` or `NV12`.
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
}

impl RawFormat {
    pub fn caps(&self) -> String {
        format!(
            "video/x-raw,format={},width={},height={},framerate={}/1,pixel-aspect-ratio=1/1",
            self.format, self.width, self.height, self.framerate
        )
    }
}

/// Sample rate and channels of the sound between the mic pipeline and the encoder.
pub const AUDIO_CAPS: &str = "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2";

/// The tail every video source shares: whatever the source gives becomes the
/// raw format and size the encode pipeline expects. No `videorate`:
/// `intervideosrc` produces frames at the configured rate whatever the camera
/// delivers (repeating or skipping), and a videorate would hold one more raw
/// frame in memory.
fn video_tail(raw: &RawFormat, channel: &str) -> String {
    format!(
        "videoconvert ! videoscale ! video/x-raw,format={},width={},height={},pixel-aspect-ratio=1/1 \
         ! intervideosink channel={channel}",
        raw.format, raw.width, raw.height
    )
}

/// The camera pipeline for the test source and for files. V4L2 cameras get
/// their head from [`crate::media::modes::source_desc`] and go through
/// [`camera_pipeline`] too.
pub fn camera_pipeline(head: &str, raw: &RawFormat, channel: &str) -> String {
    format!("{head} ! {}", video_tail(raw, channel))
}

/// How much `filesrc` reads at a time from a `.y4m` clip.
const Y4M_READ_BYTES: u32 = 64 * 1024;

/// Head of the camera pipeline for the sources that are not cameras.
pub fn synthetic_video_head(source: &VideoSource) -> Option<String> {
    match source {
        // The moving ball and the clock make a frozen picture obvious in a demo.
        VideoSource::Test => Some(
            "videotestsrc is-live=true pattern=smpte horizontal-speed=2 ! timeoverlay halignment=right valignment=top"
                .to_string(),
        ),
        // `sync` on the inter sink paces the file in real time; EOS rebuilds the
        // pipeline, which loops the clip. A raw `.y4m` clip (the demo's and
        // the benchmark's) is read as it is: by the capture itself into
        // [`clip_head`] when its frames are laid out as GStreamer's I420,
        // else by y4mdec, here. Anything else (mp4, mkv, ...) goes through
        // decodebin: its video goes on, its sound (the microphone is the
        // show's sound) into a sink that drops it.
        // 64 KiB reads instead of filesrc's 4 KiB: a 720p frame is 1.3 MiB,
        // and 340 reads a frame cost twice the CPU of the parse itself.
        VideoSource::File(path) if is_y4m(path) => Some(format!(
            "filesrc location={} blocksize={Y4M_READ_BYTES} ! y4mdec",
            quote(path)
        )),
        VideoSource::File(path) => Some(format!(
            "filesrc location={} ! decodebin name=clip \
             clip. ! audio/x-raw ! fakesink sync=false async=false \
             clip. ! video/x-raw ! queue",
            quote(path)
        )),
        VideoSource::Auto | VideoSource::V4l2(_) => None,
    }
}

/// Whether a clip is a raw YUV4MPEG2 one, by its name.
pub fn is_y4m(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".y4m")
}

/// Head of the camera pipeline for a `.y4m` clip the capture reads itself
/// (`capture::clip`): one buffer a frame, in `caps`, timestamped from the
/// clip's frame rate; the inter sink's `sync` paces it.
pub fn clip_head(appsrc: &str, caps: &str) -> String {
    format!(
        "appsrc name={appsrc} format=time is-live=false stream-type=stream caps={}",
        quote(caps)
    )
}

/// The mic pipeline; `None` when there is no microphone to open.
pub fn audio_pipeline(source: &AudioSource, channel: &str) -> Option<String> {
    let head = match source {
        // sine-table: the same tone from a table, not a sin() a sample.
        // One buffer per AUDIO_PERIOD_NS, the size interaudiosrc takes, not
        // the 1024 samples (47 a second) it sends by default.
        AudioSource::Test => format!(
            "audiotestsrc is-live=true wave=sine-table freq=440 volume=0.2 samplesperbuffer={}",
            AUDIO_PERIOD_NS * 48_000 / 1_000_000_000
        ),
        // A small buffer: the sound card's clock is slaved to the pipeline's
        // (`slave-method=re-timestamp`), so a long show does not drift.
        AudioSource::Alsa(dev) => format!(
            "alsasrc device={} buffer-time=200000 latency-time=10000 slave-method=re-timestamp",
            quote(dev)
        ),
        AudioSource::None | AudioSource::Auto => return None,
    };
    Some(format!(
        "{head} ! audioconvert ! audioresample ! {AUDIO_CAPS} ! interaudiosink channel={channel}"
    ))
}

/// What the encoder needs, as chosen by [`crate::media::encoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderPlan {
    /// Raw caps the encoder wants in front of it (decides [`RawFormat::format`]).
    pub input_caps: String,
    /// The element with its properties, gst-launch syntax; named `encoder` by the runtime.
    pub element_desc: String,
    /// Caps after the encoder (profile, level).
    pub output_caps: String,
    /// How the bitrate changes while PLAYING (adaptive bitrate).
    pub bitrate_control: crate::media::encoder::BitrateControl,
}

/// The encode pipeline: inter sources, overlays, encoders, and the two appsinks
/// the destinations and the recorder are fed from.
pub fn encode_pipeline(
    raw: &RawFormat,
    enc: &EncoderPlan,
    aac_desc: &str,
    video_channel: &str,
    audio_channel: &str,
    slate_text: &str,
    slate_image: Option<&str>,
) -> String {
    let mut d = String::new();
    // An image slate, when configured, sits over the text one; invisible (alpha 0) until needed.
    let image = slate_image
        .map(|path| {
            format!(
                "! gdkpixbufoverlay name=slate_image alpha=0 location={} overlay-width={} overlay-height={} ",
                quote(path),
                raw.width,
                raw.height
            )
        })
        .unwrap_or_default();
    // The slate sits over whatever intervideosrc sends once the camera is gone
    // (black after its timeout); silent until the show machine asks for it.
    let _ = write!(
        d,
        "intervideosrc name=camera_in channel={video_channel} timeout=1000000000 ! {caps} \
         ! textoverlay name=slate silent=true valignment=center halignment=center \
           font-desc=\"Noto Sans CJK SC Bold {slate_pt}\" shaded-background=true text={slate} \
         {image}! textoverlay name=lower_third silent=true valignment=bottom halignment=left \
           font-desc=\"Noto Sans CJK SC Bold {lower_pt}\" shaded-background=true line-alignment=left \
         ! videoscale ! capsfilter name=size caps=\"video/x-raw,width={w},height={h}\" \
         ! videoconvert name=pre_encoder ! {input} ! {encoder} ! {output} \
         ! h264parse name=post_encoder config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=video ",
        caps = raw.caps(),
        // Adaptive bitrate's last resort on a thin link: a smaller picture.
        // At full size videoscale passes frames through untouched.
        w = raw.width,
        h = raw.height,
        slate = quote(slate_text),
        // Sizes that read well on a phone at 720p (about 5% of the height for
        // the lower third), scaled with the picture.
        slate_pt = font_pt(36, raw.height),
        lower_pt = font_pt(16, raw.height),
        input = enc.input_caps,
        encoder = enc.element_desc,
        output = enc.output_caps,
    );
    d.push_str(&audio_branch(aac_desc, audio_channel));
    d
}

/// How much sound `interaudiosrc` hands the AAC encoder at a time: 50 ms,
/// not its default 25. Every buffer wakes the encoder's sound thread, then
/// the destination's `appsrc`, `flvmux` and `rtmp2sink` threads; at 50 ms
/// the sound's share of the daemon's CPU falls by about a third, 0.15 core-s
/// per 20 s at 720p (3%, thread by thread; BENCHMARKS.md, `memory`). What it costs: the sound
/// reaches the muxer up to 25 ms later, which the muxer's interleaving
/// absorbs (timestamps, not arrival, keep picture and sound together).
pub(crate) const AUDIO_PERIOD_NS: u64 = 50_000_000;

fn audio_branch(aac_desc: &str, audio_channel: &str) -> String {
    format!(
        "interaudiosrc name=mic_in channel={audio_channel} period-time={AUDIO_PERIOD_NS} ! {AUDIO_CAPS} ! audioconvert name=aac_in \
         ! {aac_desc} ! aacparse ! audio/mpeg,mpegversion=4,stream-format=raw ! appsink name=audio"
    )
}

/// The encode pipeline when the camera's own H.264 is passed through: the
/// camera pipeline pushes its access units into `camera_h264`; nothing is
/// decoded or encoded, so there is no slate and no lower third.
pub fn passthrough_pipeline(aac_desc: &str, audio_channel: &str) -> String {
    format!(
        "appsrc name=camera_h264 is-live=true format=time do-timestamp=false handle-segment-change=true max-bytes=4194304 leaky-type=downstream \
         ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=video {}",
        audio_branch(aac_desc, audio_channel)
    )
}

/// The camera pipeline in passthrough: H.264 straight to an appsink.
pub fn passthrough_camera_pipeline(head: &str) -> String {
    format!("{head} ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=camera_out sync=false max-buffers=30 drop=true")
}

/// A camera that delivers H.264 itself, simulated for `video.source = "test"`
/// with `video.passthrough = true`, so the passthrough path runs everywhere.
pub fn synthetic_h264_head(raw: &RawFormat) -> String {
    format!(
        "videotestsrc is-live=true pattern=smpte horizontal-speed=2 ! video/x-raw,format=I420,width={w},height={h},framerate={f}/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! video/x-h264,profile=main ! h264parse",
        w = raw.width,
        h = raw.height,
        f = raw.framerate,
        gop = raw.framerate.max(1) * 2
    )
}

/// A font size given for 720p, scaled to `height`.
fn font_pt(at_720p: u32, height: u32) -> u32 {
    (at_720p * height / 720).max(10)
}

/// The AAC encoder, best first among those present.
///
/// `voaacenc` (gstreamer1.0-plugins-bad, a dependency of the package) comes
/// before `avenc_aac`: loading gst-libav for its AAC encoder maps libavcodec,
/// libavformat, libavfilter and their ~170 libraries (x265, rav1e, flite's
/// voices, librsvg, ...): about 40 MiB of the daemon's resident memory, for
/// a 128k stereo encode that voaacenc does in about 1% of a core
/// (BENCHMARKS.md, section `memory`). `avenc_aac` stays as the fallback.
pub fn aac_encoder(audio: &AudioConfig, available: &dyn Fn(&str) -> bool) -> Option<String> {
    let bps = audio.bitrate_kbps.saturating_mul(1000);
    ["fdkaacenc", "voaacenc", "avenc_aac"]
        .into_iter()
        .find(|e| available(e))
        .map(|e| format!("{e} bitrate={bps}"))
}

/// How a destination's URL is muxed and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Rtmp,
    Srt,
}

impl Transport {
    pub fn of_url(url: &str) -> Option<Transport> {
        Self::of_scheme(crate::config::url::parse(url).ok()?.scheme)
    }

    pub fn of_scheme(scheme: Scheme) -> Option<Transport> {
        match scheme {
            Scheme::Rtmp | Scheme::Rtmps => Some(Transport::Rtmp),
            Scheme::Srt => Some(Transport::Srt),
            Scheme::Mqtt | Scheme::Mqtts => None,
        }
    }
}

/// A destination pipeline. The URL (which carries the stream key) is set on
/// the element named `sink` by the runtime, never written into a description
/// that could reach a log.
pub fn destination_pipeline(transport: Transport) -> String {
    // No queue between the appsrcs and the muxer: the appsrcs are the bound
    // on what waits for the network (see `destination`), and they drop whole
    // groups of pictures. A queue here held 300 ms of media whatever the
    // link: 3 s of sending at 400 kbit/s, ahead of the sound. flvmux runs
    // not live (the appsrcs say so): it interleaves by timestamp, however far
    // behind the clock a thin link leaves it. mpegtsmux stays live, with the
    // latency it waits for a late pad. RTMP goes out in 4096-byte chunks as
    // ffmpeg and OBS send it, not rtmp2sink's 128: 80 chunk headers a
    // second at 2.5 Mbit/s instead of 2,400.
    match transport {
        Transport::Rtmp => "appsrc name=video ! h264parse ! video/x-h264,stream-format=avc,alignment=au ! mux.video \
             appsrc name=audio ! aacparse ! mux.audio \
             flvmux name=mux streamable=true ! rtmp2sink name=sink chunk-size=4096 sync=false async=false"
            .to_string(),
        // alignment=7: seven TS packets per UDP payload, what SRT ingest expects.
        Transport::Srt => "appsrc name=video ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! mux. \
             appsrc name=audio ! aacparse ! mux. \
             mpegtsmux name=mux alignment=7 latency=100000000 \
             ! srtsink name=sink sync=false async=false wait-for-connection=false auto-reconnect=false"
            .to_string(),
    }
}

/// Quote a value for a gst-launch description.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

pub fn raw_format(video: &VideoConfig, enc: &EncoderPlan) -> RawFormat {
    RawFormat {
        format: format_of_caps(&enc.input_caps).unwrap_or_else(|| "I420".into()),
        width: video.width,
        height: video.height,
        framerate: video.framerate,
    }
}

/// The `format=` field of a raw caps string, if it names one.
fn format_of_caps(caps: &str) -> Option<String> {
    caps.split(',')
        .filter_map(|f| f.trim().strip_prefix("format="))
        .map(|v| v.trim_start_matches("(string)").trim().to_string())
        .find(|v| !v.is_empty() && !v.starts_with('{'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x264() -> EncoderPlan {
        EncoderPlan {
            input_caps: "video/x-raw,format=I420".into(),
            element_desc: "x264enc name=encoder tune=zerolatency speed-preset=ultrafast bitrate=500 key-int-max=30".into(),
            output_caps: "video/x-h264,profile=main".into(),
            bitrate_control: crate::media::encoder::BitrateControl::None,
        }
    }

    #[test]
    fn raw_format_follows_the_encoder() {
        let v = VideoConfig::default();
        assert_eq!(raw_format(&v, &x264()).format, "I420");
        let mut hw = x264();
        hw.input_caps = "video/x-raw,format=(string)NV12".into();
        assert_eq!(raw_format(&v, &hw).format, "NV12");
        hw.input_caps = "video/x-raw".into();
        assert_eq!(raw_format(&v, &hw).format, "I420");
    }

    #[test]
    fn quoting_survives_quotes_and_backslashes() {
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }

    #[test]
    fn stream_key_never_in_a_description() {
        for t in [Transport::Rtmp, Transport::Srt] {
            let d = destination_pipeline(t);
            assert!(d.contains("name=sink"));
            assert!(!d.contains("location=") && !d.contains("uri="));
        }
    }

    #[test]
    fn transports_by_scheme() {
        assert_eq!(Transport::of_url("rtmps://a/b"), Some(Transport::Rtmp));
        assert_eq!(Transport::of_url("srt://a:1"), Some(Transport::Srt));
        assert_eq!(Transport::of_url("http://a"), None);
    }

    /// The descriptions must be accepted by GStreamer's own parser; this is what
    /// catches a typo in an element or property name.
    #[test]
    fn descriptions_parse_in_gstreamer() {
        crate::media::init_for_tests();
        let v = VideoConfig {
            width: 320,
            height: 240,
            framerate: 15,
            ..VideoConfig::default()
        };
        let raw = raw_format(&v, &x264());
        let avail = |n: &str| gstreamer::ElementFactory::find(n).is_some();
        let aac =
            aac_encoder(&AudioConfig::default(), &avail).expect("an AAC encoder is installed");
        let descs = [
            camera_pipeline(
                &synthetic_video_head(&VideoSource::Test).unwrap(),
                &raw,
                "v",
            ),
            camera_pipeline(
                &synthetic_video_head(&VideoSource::File("/x".into())).unwrap(),
                &raw,
                "v",
            ),
            camera_pipeline(
                &synthetic_video_head(&VideoSource::File("/x.y4m".into())).unwrap(),
                &raw,
                "v",
            ),
            camera_pipeline(
                &clip_head(
                    "clip_in",
                    &crate::media::y4m::parse_header(b"YUV4MPEG2 W320 H240 F30:1\n")
                        .unwrap()
                        .i420_caps(),
                ),
                &raw,
                "v",
            ),
            audio_pipeline(&AudioSource::Test, "a").unwrap(),
            audio_pipeline(&AudioSource::Alsa("hw:9,0".into()), "a").unwrap(),
            encode_pipeline(&raw, &x264(), &aac, "v", "a", "Back in a \"moment\"", None),
            encode_pipeline(&raw, &x264(), &aac, "v", "a", "x", Some("/tmp/slate.png")),
            passthrough_pipeline(&aac, "a"),
            passthrough_camera_pipeline(&synthetic_h264_head(&raw)),
            destination_pipeline(Transport::Rtmp),
            destination_pipeline(Transport::Srt),
        ];
        for d in descs {
            gstreamer::parse::launch(&d).unwrap_or_else(|e| panic!("{d}\n{e}"));
        }
    }
}
