//! The status payload and the events of the show, as the technician reads
//! them: built from what the core holds, when it is due.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::parts::ERROR_CHARS;
use super::{Core, Now, Output, Publish, Work};
use crate::mqtt::payloads::{self as p, Event, EventBody};
use crate::recording::usage::UsageCache;
use crate::show::{Input as ShowInput, ShowEvent};

pub struct StatusState {
    started: Instant,
    next_status: Instant,
    /// The last disk-use figures: status reads these, never the disk.
    disk: UsageCache,
    /// Why the capture is down, while it is (status `errors.capture`).
    capture_error: Option<String>,
}

impl StatusState {
    pub fn new(now: Instant) -> StatusState {
        StatusState {
            started: now,
            next_status: now,
            disk: UsageCache::default(),
            capture_error: None,
        }
    }

    pub fn next_status(&self) -> Instant {
        self.next_status
    }

    /// Status goes out at the next turn.
    pub fn due_now(&mut self, now: Instant) {
        self.next_status = self.next_status.min(now);
    }

    pub fn disk_measured(&mut self, now: Instant, used: u64, free: u64) {
        self.disk.measured(now, used, free);
    }

    /// Keeps `capture_error` in step with what the show machine is told.
    pub fn note_capture(&mut self, input: &ShowInput) {
        match input {
            ShowInput::CaptureFailed(why) | ShowInput::CameraLost(why) => {
                self.capture_error = Some(crate::excerpt::excerpt_n(why, ERROR_CHARS));
            }
            ShowInput::CaptureReady | ShowInput::CameraRestored => self.capture_error = None,
            _ => {}
        }
    }
}

impl Core {
    pub(super) fn publish_status(&mut self, now: Now) {
        let interval = Duration::from_secs(self.config.mqtt.status_interval_s.max(1));
        self.status.next_status = now.at + interval;
        // The phone page shows the same status, MQTT or not.
        if !self.mqtt_on && !self.config.web.enabled {
            return;
        }
        // A walk of every recording is too slow for the loop: status reads the
        // last figures, and a walk runs on the disk thread when they are stale.
        if self.status.disk.poll_refresh(now.at) {
            self.out
                .push_back(Output::Work(Work::DiskUsage(PathBuf::from(
                    &self.config.recording.dir,
                ))));
        }
        let (used, free) = self.status.disk.figures();
        let show = self.show.status();
        let abr = &self.media.abr;
        let status = p::Status {
            state: show.state.as_str().into(),
            device_id: self.config.device_id.clone(),
            uptime_s: now.at.duration_since(self.status.started).as_secs(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_version: self.fleet.config_version(),
            video: p::VideoStatus {
                encoder: self.media.encoder.name.clone(),
                fps: (self.media.fps * 10.0).round() / 10.0,
                bitrate_kbps: abr.target_kbps(),
                dropped_frames: self.media.dropped_frames,
            },
            destinations: show
                .destinations
                .iter()
                .map(|d| p::DestinationStatus {
                    name: d.name.clone(),
                    state: d.link.as_str().into(),
                    bitrate_kbps: self.media.bitrate(&d.name),
                    target_kbps: abr.target_kbps(),
                    reconnects: d.reconnects,
                    last_error: d.last_error.as_deref().map(crate::excerpt::excerpt),
                    congestion: abr
                        .link(&d.name)
                        .and_then(|l| l.cause)
                        .map(|c| c.as_str().into()),
                    srt: abr
                        .link(&d.name)
                        .and_then(|l| l.srt())
                        .map(|s| p::SrtStatus {
                            rtt_ms: s.rtt_ms,
                            packets_sent: s.packets_sent,
                            packets_lost: s.packets_lost,
                            packets_dropped: s.packets_dropped,
                        }),
                })
                .collect(),
            scale: self.selling.status(),
            sales: self.selling.sales.clone(),
            recording: p::RecordingStatus {
                used_bytes: used,
                free_bytes: free,
            },
            cpu_temp_c: None,
            throttled: None,
            uplink_addr: None,
            errors: self.errors(),
            loop_turns: Default::default(),
            mqtt: Default::default(),
        };
        self.out
            .push_back(Output::Publish(Publish::Status(Box::new(status))));
    }

    /// What is broken now, by part (`capture`, `gpio`, `scale`): status
    /// `errors`, empty on a healthy box.
    fn errors(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(e) = &self.status.capture_error {
            out.insert("capture".to_string(), e.clone());
        }
        if let Some(e) = self.parts.gpio.error() {
            out.insert("gpio".to_string(), e.to_string());
        }
        if let Some(e) = self.parts.scale.error().or(self.selling.scale_error()) {
            out.insert(
                "scale".to_string(),
                crate::excerpt::excerpt_n(e, ERROR_CHARS),
            );
        }
        if let Some(e) = self.disk_error() {
            out.insert("disk".to_string(), e);
        }
        if let Some(e) = self.media.mic.error() {
            out.insert("mic".to_string(), e.to_string());
        }
        let m = &self.media;
        if let Some(e) = m.fallback.error(&m.encoder, self.config.video.framerate) {
            out.insert("encoder".to_string(), e);
        }
        out
    }

    /// The recordings' disk has less free space than `recording.min_free_mb`
    /// after the budget removed what it may: recording may stop.
    fn disk_error(&self) -> Option<String> {
        let free_mb = self.disk_low()?;
        let min = self.config.recording.min_free_mb;
        Some(format!(
            "the recordings' disk has {free_mb} MB free, under recording.min_free_mb = {min}: old shows are removed first, then recording stops"
        ))
    }

    /// The free MB, when under `recording.min_free_mb`.
    fn disk_low(&self) -> Option<u64> {
        let (_, free) = self.status.disk.measured_figures()?;
        let free_mb = free / (1024 * 1024);
        (self.config.recording.enabled && free_mb < self.config.recording.min_free_mb)
            .then_some(free_mb)
    }

    /// The status light says "needs a technician" while a part that the
    /// show can do without is missing or failing (an encoder that took over
    /// from a failed one and cannot keep the frame rate among them) (the capture's own faults
    /// have the show's error pattern).
    pub(super) fn update_attention(&mut self, now: Instant) {
        let needed = self.parts.gpio.error().is_some()
            || self.parts.scale.error().is_some()
            || self.selling.scale_error().is_some()
            || self.disk_low().is_some()
            || self.media.mic.error().is_some()
            || self.media.fallback.is_slow();
        self.lights.attention(now, needed);
    }
}

/// The MQTT form of a show event (logged on the way); `None` for those only
/// the log needs.
pub fn show_event(e: &ShowEvent, wall: SystemTime) -> Option<Event> {
    match e {
        ShowEvent::Error { what } => tracing::error!(what = %what, "show error"),
        ShowEvent::DestinationDown { name, reason } => {
            tracing::warn!(destination = %name, reason = %reason, "destination down")
        }
        other => tracing::info!(event = ?other, "show"),
    }
    let s = |t: &str| t.to_string();
    let body = match e {
        ShowEvent::LiveStarted { show_id } => EventBody::LiveStarted {
            show_id: s(show_id),
        },
        ShowEvent::LiveStopped { show_id, reason } => EventBody::LiveStopped {
            show_id: s(show_id),
            reason: s(reason.as_str()),
        },
        ShowEvent::DestinationDown { name, reason } => EventBody::DestinationDown {
            name: s(name),
            reason: s(reason),
        },
        ShowEvent::DestinationUp { name } => EventBody::DestinationUp { name: s(name) },
        ShowEvent::Error { what } => EventBody::Error {
            what: s(what),
            part: None,
        },
        ShowEvent::StateChanged { from, to } => EventBody::StateChanged {
            from: s(from.as_str()),
            to: s(to.as_str()),
        },
        ShowEvent::Ack => EventBody::ButtonPressed {
            button: s("go_live"),
        },
        ShowEvent::ProductPressed { product_id, .. } => EventBody::ButtonPressed {
            button: format!("product:{product_id}"),
        },
    };
    Some(Event::at(body, wall))
}
