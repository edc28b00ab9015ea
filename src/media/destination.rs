//! One ingest server: its own small pipeline fed from the capture's
//! `StreamProducer`s, so that it can fail, be torn down and be rebuilt alone.
//! A dead RTMP server in a single big pipeline takes the camera and the
//! recording down with it (`tee` passes the flow error upstream); here it only
//! ends this pipeline.
//!
//! Lifecycle: [`Destination::start`] → `DestinationUp` once bytes flow →
//! (`DestinationDown` on a bus error) → [`Destination::stop`] (EOS, so the
//! server sees an unpublish) or [`Destination::abort`] → `DestinationStopped`.
//! Retrying is the show machine's decision, not this module's.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_utils::streamproducer::ConsumerSettings;

use super::capture::{parse_pipeline, Capture};
use super::consumer::Consumer;
use super::link_signal::{LinkSample, SrtCounters};
use super::plan::{self, Transport};
use super::proc_net::{tcp_connections, tcp_send_queue};
use super::send_buffer;
use super::{EventTx, MediaEvent};
use crate::config::secret::redact;

/// The video appsrc's byte bound before the link's delivery is known.
const INITIAL_VIDEO_BYTES: u64 = 128 * 1024;

/// What may wait in front of a destination before old data is dropped
/// (bounded memory whatever the link does).
#[derive(Debug, Clone, Copy)]
pub struct QueueBounds {
    pub ms: u64,
    pub bytes: u64,
}

pub struct Destination {
    name: String,
    /// Its pipeline, fed from the capture (appsrcs: video, audio).
    consumer: Consumer,
    sink: gst::Element,
    up: bool,
    last_bytes: u64,
    last_at: Instant,
    bitrate_kbps: u32,
    /// SRT's own counters as of the last poll (SRT only).
    srt: Option<SrtCounters>,
    /// The sockets whose send buffer was capped, and at what.
    send_buffer_capped: Option<(Vec<u64>, u32)>,
    /// What the TCP connection delivers (RTMP).
    delivery: send_buffer::Delivery,
    bounds: QueueBounds,
    /// The video appsrc's byte bound as last set.
    video_bytes_bound: u64,
    /// The server's address, for the kernel's TCP send queue (RTMP); looked up
    /// off the driver's thread, as DNS can hang on a bad link.
    remote: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    events: EventTx,
}

impl Destination {
    /// Build the pipeline for `url` (the full ingest URL, key included) and
    /// start it. `secrets` are the parts of the URL to hide in error texts
    /// (see `DestinationConfig::secrets`), in every encoding they may take there.
    pub fn start(
        name: &str,
        url: &str,
        secrets: Vec<String>,
        capture: &Capture,
        bounds: QueueBounds,
        events: EventTx,
    ) -> Result<Destination> {
        // The config's one URL parser (validated at load); the URL is not
        // quoted in the error, it holds the key.
        let endpoint =
            crate::config::url::parse(url).map_err(|e| anyhow!("{name}: the URL {e}"))?;
        let transport = Transport::of_scheme(endpoint.scheme).ok_or_else(|| {
            anyhow!("{name}: unsupported URL scheme (use rtmp://, rtmps:// or srt://)")
        })?;
        // Where the server is, for the kernel's send queue and the probe of
        // a down server: RTMP only (SRT is UDP). IPv6 as well as IPv4.
        let target = match transport {
            Transport::Rtmp => endpoint.connect_target(),
            Transport::Srt => None,
        };
        // Not while the warm-up registers GIO's types on its thread: GLib
        // can deadlock on two threads doing that at once (`warm_up`).
        crate::media::warm_up::settle(crate::media::warm_up::SETTLE_BOUND);
        let pipeline = parse_pipeline(&plan::destination_pipeline(transport), name)?;
        pipeline.set_property("name", format!("dest-{name}"));
        let sink = pipeline
            .by_name("sink")
            .ok_or_else(|| anyhow!("{name}: no sink in pipeline"))?;
        match transport {
            Transport::Rtmp => sink.set_property("location", url),
            Transport::Srt => sink.set_property("uri", url),
        }

        // The appsrcs `plan::destination_pipeline` names, looked up once.
        let appsrc = |pad: &str| {
            pipeline
                .by_name(pad)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| anyhow!("{name}: no appsrc {pad}"))
        };
        let feeds = [
            (appsrc("video")?, capture.video(), true),
            (appsrc("audio")?, capture.audio(), false),
        ];
        let mut consumer = Consumer::new(pipeline, capture);
        {
            let tx = events.clone();
            let name = name.to_string();
            consumer.watch(
                move |e| {
                    // An element may quote the URL it failed on, the key
                    // raw or percent-encoded: hide every form.
                    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
                    let reason = redact(&e.short(), &refs);
                    tracing::warn!(destination = %name, error = %redact(&e.to_string(), &refs), "destination failed");
                    let _ = tx.send(MediaEvent::DestinationDown {
                        name: name.clone(),
                        reason,
                        fault: e.fault,
                    });
                },
                |_| {},
            );
        }

        for (appsrc, producer, video) in feeds {
            // Linking first: the producer configures its consumer (live,
            // leaky downstream, its own bounds), which the lines below
            // then override.
            consumer.attach(producer, appsrc.clone(), consumer_settings(bounds, video))?;
            // RTMP not live: a live flvmux stops waiting for a pad once the
            // clock passes its latency, and on a thin TCP link the output is
            // always seconds behind the clock, so it sent audio ahead of late
            // video and FLV timestamps went backwards. The bounds here, not
            // the clock, keep it near real time. SRT stays live: libsrt
            // keeps it near the clock, and its muxer needs the clock to pace.
            if transport == Transport::Rtmp {
                appsrc.set_is_live(false);
            }
            if video {
                // Full: drop the NEW frame, and the producer then skips to the
                // next keyframe. Dropping the oldest (the default) can drop a
                // keyframe and send the frames that refer to it: the viewers'
                // decoder shows garbage until the next one.
                appsrc.set_leaky_type(gst_app::AppLeakyType::Upstream);
                // RTMP: small until the link shows what it delivers (then
                // `bound_video_by_delivery`): 2 s of 4 Mbit/s queued before
                // that took a 400 kbit/s link 20 s to send, and the sound
                // behind it was dropped meanwhile. SRT bounds its own
                // latency (libsrt drops what is too late to play) and only
                // gets the configured bounds: bounding it by its send rate
                // as well cut half-second holes in a stream that fit.
                if transport == Transport::Rtmp {
                    appsrc.set_max_bytes(INITIAL_VIDEO_BYTES.min(bounds.bytes));
                }
                log_first_frame(&appsrc, name);
            }
        }
        consumer.play(capture, name)?;

        let remote = Arc::new(std::sync::Mutex::new(None));
        if let Some((host, port)) = target {
            let slot = remote.clone();
            std::thread::spawn(move || {
                use std::net::ToSocketAddrs;
                // An IPv4 address when the name has one (`localhost` often
                // resolves to ::1 first while the server listens on
                // 127.0.0.1 only; rtmp2sink falls back, a single probe
                // address would not); else the first, e.g. an IPv6 literal.
                // The send queue and its cap are read for either family.
                let addrs: Vec<_> = (host.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect)
                    .unwrap_or_default();
                let addr = addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .copied();
                if let Ok(mut s) = slot.lock() {
                    *s = addr;
                }
            });
        }

        Ok(Destination {
            remote,
            name: name.to_string(),
            consumer,
            sink,
            up: false,
            last_bytes: 0,
            last_at: Instant::now(),
            bitrate_kbps: 0,
            srt: None,
            send_buffer_capped: None,
            delivery: send_buffer::Delivery::default(),
            bounds,
            video_bytes_bound: match transport {
                Transport::Rtmp => INITIAL_VIDEO_BYTES.min(bounds.bytes),
                Transport::Srt => bounds.bytes,
            },
            events,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The server's address once looked up (RTMP only): a shared slot the
    /// driver keeps after this pipeline is gone, to probe the link.
    pub fn remote_slot(&self) -> Arc<std::sync::Mutex<Option<std::net::SocketAddr>>> {
        self.remote.clone()
    }

    /// The server's address once looked up (IPv4 or IPv6).
    fn remote(&self) -> Option<std::net::SocketAddr> {
        self.remote.lock().ok().and_then(|r| *r)
    }

    /// How much is waiting in front of the network: the congestion signal for
    /// adaptive bitrate. The kernel's send queue counts too: rtmp2sink writes
    /// into the socket, so a backlog can sit there while our queue looks empty.
    /// SRT's statistics count too: srtsink never blocks on a thin link, it
    /// drops what is too late (see `link_signal`).
    pub fn backlog(&self, tcp_tables: Option<&str>) -> LinkSample {
        let (mut ms, mut bytes) = (0u64, 0u64);
        if let Some(video) = self.consumer.appsrcs().first() {
            ms = video.current_level_time().mseconds();
        }
        for src in self.consumer.appsrcs() {
            bytes += src.current_level_bytes();
        }
        let remote = self.remote();
        if let (Some(table), Some(remote)) = (tcp_tables, remote) {
            bytes += tcp_send_queue(table, remote).unwrap_or(0);
        }
        LinkSample {
            queued_ms: ms,
            queued_bytes: bytes,
            sent_bytes_total: self.last_bytes,
            srt: self.srt,
        }
    }

    /// Caps the kernel's send buffer of this destination's connection (RTMP)
    /// at about a second of what the link delivers (see `send_buffer`); set
    /// again only when the cap moves by a fifth.
    pub fn cap_send_buffer(&mut self, tcp_tables: Option<&str>) {
        let remote = self.remote();
        let (Some(table), Some(remote)) = (tcp_tables, remote) else {
            return;
        };
        let conns = tcp_connections(table, remote);
        if conns.is_empty() {
            return;
        }
        let queued = conns.iter().fold(0u64, |s, c| s.saturating_add(c.tx_queue));
        self.delivery
            .observe(Instant::now(), self.last_bytes, queued);
        // Until the link has shown what it delivers, the smallest buffer:
        // it grows with the delivery (by about 1 s / RTT a step), where an
        // open start let the first second at full rate fill 500 kB that a
        // thin link then took 10 s to send, ahead of everything else.
        let kbps = self.delivery.kbps();
        if let Some(kbps) = kbps {
            self.bound_video_by_delivery(kbps);
        }
        let inodes: Vec<u64> = conns.iter().map(|c| c.inode).collect();
        let want = kbps.map_or(send_buffer::MIN_BYTES, |k| send_buffer::want(k, queued));
        if let Some((last_inodes, last)) = &self.send_buffer_capped {
            if *last_inodes == inodes && want.abs_diff(*last) <= *last / 5 {
                return;
            }
        }
        let set = send_buffer::cap(&inodes, remote, want);
        if set > 0 {
            tracing::debug!(destination = %self.name, bytes = want, delivered_kbps = ?kbps, queued, "send buffer capped");
            self.send_buffer_capped = Some((inodes, want));
        }
    }

    /// What waits for the network is bounded in time as the link drains it,
    /// not only in media time: 2 s of a 4 Mbit/s stream take 20 s to leave
    /// by a 400 kbit/s link, and the viewers would watch 20 s late. So the
    /// video appsrc holds at most `bounds.ms` of what the link delivers
    /// (never under 64 KiB, room for a keyframe), and past it drops the new
    /// frames to the next keyframe.
    fn bound_video_by_delivery(&mut self, delivered_kbps: u32) {
        let by_link = u64::from(delivered_kbps) * self.bounds.ms / 8;
        let bound = by_link.clamp(64 * 1024, self.bounds.bytes.max(64 * 1024));
        // Moves of a fifth or less are not worth a property change.
        if bound.abs_diff(self.video_bytes_bound) <= self.video_bytes_bound / 5 {
            return;
        }
        if let Some(video) = self.consumer.appsrcs().first() {
            video.set_max_bytes(bound);
            self.video_bytes_bound = bound;
        }
    }

    /// Buffers the bounded queues in front of this destination dropped.
    pub fn dropped(&self) -> u64 {
        self.consumer.dropped()
    }

    /// Measured send rate over the last poll interval.
    pub fn bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps
    }

    /// Read the sink's byte counter: the first bytes sent make the destination
    /// up; the rate between polls is its bitrate. Called on the driver's tick.
    pub fn poll(&mut self) {
        let Some(stats) = stats(&self.sink) else {
            return;
        };
        self.srt = srt_counters(&stats);
        let Some(bytes) = bytes_sent(&stats) else {
            return;
        };
        let now = Instant::now();
        let dt = now.duration_since(self.last_at).as_secs_f64();
        if dt > 0.0 && bytes >= self.last_bytes {
            self.bitrate_kbps = ((bytes - self.last_bytes) as f64 * 8.0 / 1000.0 / dt) as u32;
        }
        if !self.up && bytes > 0 && self.consumer.is_alive() {
            self.up = true;
            let _ = self
                .events
                .send(MediaEvent::DestinationUp(self.name.clone()));
        }
        self.last_bytes = bytes;
        self.last_at = now;
    }

    /// End the stream cleanly: EOS through the muxer so the server sees an
    /// unpublish, then tear down. Returns at once; `DestinationStopped` follows.
    pub fn stop(self) {
        let Destination {
            name,
            consumer,
            events,
            ..
        } = self;
        consumer.end(false, move || {
            let _ = events.send(MediaEvent::DestinationStopped(name));
        });
    }

    /// Tear down at once (after a failure): nothing more can be sent anyway.
    pub fn abort(self) {
        let Destination {
            name,
            consumer,
            events,
            ..
        } = self;
        consumer.abort(move || {
            let _ = events.send(MediaEvent::DestinationStopped(name));
        });
    }
}

/// The bounds of one consumer. Audio may wait four times as long as video:
/// on a stalled link the video is dropped first (to the next keyframe), and
/// sound, a few kB a second, is the last thing to go.
fn consumer_settings(bounds: QueueBounds, video: bool) -> ConsumerSettings {
    let scale = if video { 1 } else { 4 };
    ConsumerSettings {
        max_buffer: 0,
        max_bytes: gst::format::Bytes::from_u64(bounds.bytes),
        max_time: gst::ClockTime::from_mseconds(bounds.ms.saturating_mul(scale)),
        event_types: Vec::new(),
    }
}

/// The sink's `stats` structure (rtmp2sink and srtsink both have one).
fn stats(sink: &gst::Element) -> Option<gst::Structure> {
    sink.find_property("stats")?;
    sink.property::<Option<gst::Structure>>("stats")
}

/// The byte counter of rtmp2sink (`out-bytes-total`) or srtsink (`bytes-sent-total`).
fn bytes_sent(stats: &gst::StructureRef) -> Option<u64> {
    ["out-bytes-total", "bytes-sent-total"]
        .iter()
        .find_map(|f| counter(stats, f))
}

/// srtsink's counters of a caller connection; `None` before it connects
/// (the fields appear with the socket) and for RTMP.
fn srt_counters(stats: &gst::StructureRef) -> Option<SrtCounters> {
    Some(SrtCounters {
        packets_sent: counter(stats, "packets-sent")?,
        packets_lost: counter(stats, "packets-sent-lost").unwrap_or(0),
        packets_dropped: counter(stats, "packets-sent-dropped").unwrap_or(0),
        rtt_ms: counter(stats, "rtt-ms").map_or(0, |v| v.min(u64::from(u32::MAX)) as u32),
        latency_ms: counter(stats, "negotiated-latency-ms")
            .map_or(0, |v| v.min(u64::from(u32::MAX)) as u32),
    })
}

/// A non-negative number field whatever its type: srtsink mixes gint, gint64,
/// guint64 and double, and its types have changed between releases.
fn counter(stats: &gst::StructureRef, field: &str) -> Option<u64> {
    let v = stats.value(field).ok()?;
    if let Ok(n) = v.get::<u64>() {
        Some(n)
    } else if let Ok(n) = v.get::<i64>() {
        Some(n.max(0) as u64)
    } else if let Ok(n) = v.get::<i32>() {
        Some(n.max(0) as u64)
    } else if let Ok(n) = v.get::<u32>() {
        Some(u64::from(n))
    } else if let Ok(n) = v.get::<f64>() {
        // NaN and negatives are 0; `as` saturates the rest.
        Some(if n > 0.0 { n.round() as u64 } else { 0 })
    } else {
        None
    }
}

/// The running time of the first frame this destination sends, at debug
/// (`farmcast::frames`): with the lower third's `last_into_encoder_ms` it
/// places, to the frame, the first picture encoded after a tag among the
/// frames the server recorded (`bench/run.sh --only tag`).
fn log_first_frame(appsrc: &gst_app::AppSrc, name: &str) {
    if !tracing::enabled!(target: "farmcast::frames", tracing::Level::DEBUG) {
        return;
    }
    let Some(pad) = appsrc.static_pad("src") else {
        return;
    };
    let name = name.to_string();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let pts = info.buffer().and_then(|b| b.pts());
        if let Some(at) = pts.and_then(|pts| super::capture::running_time(pad, pts)) {
            tracing::debug!(
                target: "farmcast::frames",
                destination = %name,
                first_frame_ms = at.mseconds(),
                "first frame sent"
            );
            return gst::PadProbeReturn::Remove;
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// srtsink's `stats` of a caller, as this GStreamer printed it on a thin link.
    const SRT_STATS: &str = "application/x-srt-statistics, packets-sent=(gint64)944, \
        packets-sent-lost=(int)3, packets-retransmitted=(int)0, bytes-sent-dropped=(guint64)46048, \
        packets-sent-dropped=(int)4, send-rate-mbps=(double)1.1665, rtt-ms=(double)157.278, negotiated-latency-ms=(int)125, \
        bytes-sent-total=(guint64)128296;";

    #[test]
    fn srt_counters_are_read_from_srtsink_stats() {
        gst::init().expect("gstreamer");
        let s: gst::Structure = SRT_STATS.parse().expect("stats parse");
        assert_eq!(
            srt_counters(&s),
            Some(SrtCounters {
                packets_sent: 944,
                packets_lost: 3,
                packets_dropped: 4,
                rtt_ms: 157,
                latency_ms: 125,
            })
        );
        assert_eq!(bytes_sent(&s), Some(128_296));
    }

    #[test]
    fn rtmp_stats_have_bytes_and_no_srt_counters() {
        gst::init().expect("gstreamer");
        let s: gst::Structure =
            "GstRtmpStats, out-bytes-total=(guint64)5000, in-bytes-total=(guint64)10;"
                .parse()
                .expect("stats parse");
        assert_eq!(srt_counters(&s), None);
        assert_eq!(bytes_sent(&s), Some(5000));
        let odd: gst::Structure = "x, packets-sent=(double)-3, rtt-ms=(string)slow;"
            .parse()
            .expect("parse");
        assert_eq!(
            srt_counters(&odd),
            Some(SrtCounters::default()),
            "a negative count is 0, a field of another type is absent"
        );
    }
}
