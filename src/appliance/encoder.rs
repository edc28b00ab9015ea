//! The encoder's fallback within a show, decided here and carried out by
//! the shell (`MediaCmd::SwitchEncoder`): which encoder comes next when the
//! one in use fails, when to give up, and whether the one that took over
//! keeps the frame rate (else the status light asks for a technician).
//!
//! The order is the one the media side found when it was built: the
//! encoders that encoded frames there, best first (`EncoderInfo::fallbacks`).

use std::time::{Duration, Instant};

use super::EncoderInfo;

/// How long a new encoder runs before its frame rate is judged (the
/// smoothed rate needs about a second, the first frames a moment more).
pub const RATE_GRACE: Duration = Duration::from_secs(3);

/// Below this share of the configured rate the encoder is too slow...
const SLOW_BELOW: f64 = 0.85;
/// ...and at or above this one it keeps up again (no flicker in between).
const FAST_AGAIN: f64 = 0.95;

/// What to do about a failed encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Put `to` in its place; `reason` is for status, the event and the log.
    Switch { to: EncoderInfo, reason: String },
    /// Nothing left that works: the capture has failed.
    GiveUp(String),
    /// An error of an encoder no longer in use (late, or repeated).
    Stale,
}

#[derive(Debug, Default)]
pub struct Fallback {
    /// The encoders that failed since the media side was built, with why.
    failed: Vec<(String, String)>,
    /// When the encoder in use took over from a failed one.
    since: Option<Instant>,
    /// The one in use falls short of the frame rate: the measured rate.
    slow: Option<f64>,
}

impl Fallback {
    /// `element` failed while `current` is in use.
    pub fn on_failure(
        &mut self,
        now: Instant,
        current: &EncoderInfo,
        element: &str,
        why: &str,
    ) -> Decision {
        if element != current.name || self.failed.iter().any(|(e, _)| e == element) {
            return Decision::Stale;
        }
        self.failed.push((element.to_string(), why.to_string()));
        self.slow = None;
        let mut rest = current
            .fallbacks
            .iter()
            .filter(|e| !self.failed.iter().any(|(f, _)| f == *e))
            .cloned();
        let Some(next) = rest.next() else {
            self.since = None;
            return Decision::GiveUp(format!(
                "the encoder {element} failed ({why}) and no other encoder works here"
            ));
        };
        self.since = Some(now);
        let reason = format!("{element} failed ({why}); fell back to {next}");
        Decision::Switch {
            to: EncoderInfo {
                resizable: crate::media::encoder::takes_new_size(&next),
                name: next,
                reason: reason.clone(),
                fallbacks: rest.collect(),
            },
            reason,
        }
    }

    /// The measured rate of the encoder in use (`fps`, smoothed), against
    /// the configured `want`; `decimation` > 1 means adaptive bitrate drops
    /// frames on purpose, which is no fault of the encoder. True when the
    /// verdict changed.
    pub fn judge_rate(&mut self, now: Instant, fps: f64, want: u32, decimation: u32) -> bool {
        let Some(since) = self.since else {
            return false;
        };
        if now.saturating_duration_since(since) < RATE_GRACE || decimation > 1 || want == 0 {
            return false;
        }
        let want = f64::from(want);
        let before = self.slow.is_some();
        if fps < want * SLOW_BELOW {
            self.slow = Some(fps);
        } else if fps >= want * FAST_AGAIN {
            self.slow = None;
        } else if let Some(s) = &mut self.slow {
            *s = fps;
        }
        before != self.slow.is_some()
    }

    /// The encoder in use cannot keep the frame rate.
    pub fn is_slow(&self) -> bool {
        self.slow.is_some()
    }

    /// Status `errors.encoder` after a fallback: what failed, what runs,
    /// and whether it keeps up.
    pub fn error(&self, current: &EncoderInfo, want: u32) -> Option<String> {
        let (last, why) = self.failed.last()?;
        let mut text = format!("{last} failed ({why}); {} in use", current.name);
        if let Some(fps) = self.slow {
            text.push_str(&format!(
                "; it cannot keep {want} fps ({fps:.1} fps measured)"
            ));
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, fallbacks: &[&str]) -> EncoderInfo {
        EncoderInfo {
            name: name.into(),
            resizable: false,
            reason: "auto".into(),
            fallbacks: fallbacks.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn switch(d: Decision) -> EncoderInfo {
        match d {
            Decision::Switch { to, .. } => to,
            other => panic!("expected a switch, got {other:?}"),
        }
    }

    /// Down the ladder one step per failure, software last; then give up.
    #[test]
    fn each_failure_steps_down_once_then_gives_up() {
        let t0 = Instant::now();
        let mut f = Fallback::default();
        let hw = info("v4l2h264enc", &["x264enc", "openh264enc"]);
        let d = f.on_failure(t0, &hw, "v4l2h264enc", "Failed to process frame");
        let Decision::Switch { to, reason } = d.clone() else {
            panic!("{d:?}")
        };
        assert_eq!(to.name, "x264enc");
        assert!(to.resizable, "x264enc takes a new size mid-stream");
        assert_eq!(to.fallbacks, ["openh264enc"]);
        assert_eq!(
            reason,
            "v4l2h264enc failed (Failed to process frame); fell back to x264enc"
        );
        assert_eq!(
            f.error(&to, 30).as_deref(),
            Some("v4l2h264enc failed (Failed to process frame); x264enc in use")
        );
        // The old encoder's follow-up errors change nothing.
        assert_eq!(
            f.on_failure(t0, &to, "v4l2h264enc", "again"),
            Decision::Stale
        );
        let last = switch(f.on_failure(t0, &to, "x264enc", "gone"));
        assert_eq!(last.name, "openh264enc");
        assert!(last.fallbacks.is_empty());
        match f.on_failure(t0, &last, "openh264enc", "also gone") {
            Decision::GiveUp(why) => assert!(why.contains("no other encoder works"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// No fallback found at build time: the first failure gives up.
    #[test]
    fn nothing_to_fall_back_to() {
        let mut f = Fallback::default();
        let only = info("x264enc", &[]);
        assert!(matches!(
            f.on_failure(Instant::now(), &only, "x264enc", "x"),
            Decision::GiveUp(_)
        ));
        assert!(f.error(&only, 30).is_some());
    }

    /// A switch that would not start comes back as a failure of the new
    /// one and goes on down; an encoder that failed once is not retried
    /// even if an older list names it.
    #[test]
    fn a_failed_encoder_is_never_chosen_again() {
        let t0 = Instant::now();
        let mut f = Fallback::default();
        let a = info("a", &["b", "c"]);
        let b = switch(f.on_failure(t0, &a, "a", "x"));
        let stale_list = info("b", &["a", "c"]);
        let c = switch(f.on_failure(t0, &stale_list, "b", "would not start"));
        assert_eq!(c.name, "c");
        let _ = b;
    }

    /// The rate is judged only after a fallback, after the grace, and not
    /// while frames are dropped on purpose; with hysteresis.
    #[test]
    fn a_fallback_that_cannot_keep_the_rate_is_slow() {
        let t0 = Instant::now();
        let mut f = Fallback::default();
        // No fallback yet: never slow.
        assert!(!f.judge_rate(t0 + Duration::from_secs(60), 5.0, 30, 1));
        let cur = switch(f.on_failure(t0, &info("a", &["b"]), "a", "x"));
        assert!(
            !f.judge_rate(t0 + Duration::from_secs(1), 5.0, 30, 1),
            "grace"
        );
        let later = t0 + RATE_GRACE + Duration::from_secs(1);
        assert!(!f.judge_rate(later, 10.0, 30, 2), "abr decimates");
        assert!(f.judge_rate(later, 21.0, 30, 1));
        assert!(f.is_slow());
        assert_eq!(
            f.error(&cur, 30).as_deref(),
            Some("a failed (x); b in use; it cannot keep 30 fps (21.0 fps measured)")
        );
        // Between the two bounds: still slow, figure updated.
        assert!(!f.judge_rate(later, 27.0, 30, 1));
        assert!(f.is_slow());
        assert!(f.judge_rate(later, 29.5, 30, 1));
        assert!(!f.is_slow());
        assert!(
            !f.judge_rate(later, 30.0, 0, 1),
            "no configured rate: no verdict"
        );
    }
}

/// The core with the fallback in it: what it asks of the shell, tells the
/// technician and shows on the status light.
#[cfg(test)]
mod core_tests {
    use std::time::Duration;

    use super::super::harness::{config, Sim};
    use super::super::{Input, MediaCmd, MediaReport};
    use crate::gpio::tally::Pattern;
    use crate::show::State;

    /// Live with x264enc (openh264enc behind it); the harness's capture
    /// gives 24 frames a second.
    fn live(framerate: u32) -> Sim {
        let mut c = config(&["yt"]);
        c.video.framerate = framerate;
        let mut sim = Sim::new(c);
        sim.run_for(Duration::from_secs(1));
        sim.go_live_press();
        sim.run_for(Duration::from_secs(2));
        assert_eq!(sim.core.state(), State::Live);
        sim
    }

    fn fail(sim: &mut Sim, element: &str) {
        sim.input(Input::Media(MediaReport::EncoderFailed {
            element: element.into(),
            why: "encoder: Could not encode stream.".into(),
        }));
    }

    fn encoder_events(sim: &Sim) -> Vec<String> {
        sim.events("error")
            .into_iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .filter(|v| v["part"] == "encoder")
            .map(|v| v["what"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn a_failed_encoder_is_replaced_within_the_show_and_reported() {
        let mut sim = live(24);
        fail(&mut sim, "x264enc");
        assert!(sim
            .media_cmds()
            .contains(&&MediaCmd::SwitchEncoder("openh264enc".into())));
        assert_eq!(
            encoder_events(&sim),
            ["encoder: x264enc failed (encoder: Could not encode stream.); fell back to openh264enc"]
        );
        sim.run_for(Duration::from_secs(6));
        assert_eq!(sim.core.state(), State::Live, "the show goes on");
        let st = sim.last_status();
        assert_eq!(st.video.encoder, "openh264enc");
        assert!(
            st.errors["encoder"].ends_with("; openh264enc in use"),
            "{:?}",
            st.errors
        );
        // It keeps the configured 24 fps: no technician needed.
        assert_eq!(sim.core.status_light(), Pattern::Off);
        // The old encoder's late errors change nothing.
        fail(&mut sim, "x264enc");
        assert_eq!(encoder_events(&sim).len(), 1);
        // The last one fails too: nothing left, the capture has failed.
        fail(&mut sim, "openh264enc");
        let said = encoder_events(&sim);
        assert!(said[1].contains("no other encoder works"), "{said:?}");
        let switches = sim
            .media_cmds()
            .into_iter()
            .filter(|c| matches!(c, MediaCmd::SwitchEncoder(_)))
            .count();
        assert_eq!(switches, 1);
    }

    #[test]
    fn a_fallback_that_cannot_keep_the_frame_rate_asks_for_a_technician() {
        // 30 configured, 24 delivered after the fallback.
        let mut sim = live(30);
        sim.run_for(Duration::from_secs(5));
        assert_eq!(sim.core.status_light(), Pattern::Off, "no fallback yet");
        fail(&mut sim, "x264enc");
        sim.run_for(Duration::from_secs(2));
        assert_eq!(
            sim.core.status_light(),
            Pattern::Off,
            "judged after the grace"
        );
        sim.run_for(Duration::from_secs(3));
        assert_eq!(sim.core.status_light(), Pattern::Attention);
        let st = sim.last_status();
        assert!(
            st.errors["encoder"].contains("it cannot keep 30 fps"),
            "{:?}",
            st.errors
        );
        assert_eq!(sim.core.state(), State::Live);
    }
}
