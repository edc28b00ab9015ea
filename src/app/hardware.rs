//! Opens the buttons and lights `gpio.backend` names and the scale
//! `scale.kind` names, and keeps trying when they cannot be opened.
//!
//! A box that is powered and online must stay reachable: a GPIO chip that is
//! not there (rppal off a Pi, a sim socket in a missing folder) or a scale
//! that does not answer is an error the box reports (status `errors`, an
//! `error` event naming the part) and retries on a capped backoff, never an
//! exit. Meanwhile the lights are null and the buttons silent; MQTT commands
//! (`go_live`, `end_show`, `tag_product`) still work.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc::UnboundedSender;

use crate::backoff::{Backoff, XorShift64};
use crate::config::Config;
use crate::gpio::{self, Led, RawEdge, SimEvent};
use crate::mqtt::payloads::Event;
use crate::scale::RawReading;

/// First wait before opening a missing part again; it doubles up to the cap.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// A part plugged in later is found within this long.
const RETRY_CAP: Duration = Duration::from_secs(30);
/// Longest error text a status or event carries.
const ERROR_CHARS: usize = 240;

pub struct Lights {
    pub tally: Box<dyn Led>,
    pub status: Option<Box<dyn Led>>,
}

/// The lights of a box whose GPIO is not open (yet): writes go nowhere.
pub struct NullLed;

impl Led for NullLed {
    fn set(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
}

/// Opens the GPIO back end and starts its buttons.
pub fn open_gpio(
    config: &Config,
    edges: UnboundedSender<RawEdge>,
    sim: UnboundedSender<SimEvent>,
) -> Result<Lights> {
    let hw = gpio::open(gpio::Setup {
        gpio: &config.gpio,
        products: &config.products,
        sim_events: Some(sim),
    })
    .with_context(|| format!("gpio.backend = \"{}\"", config.gpio.backend))?;
    hw.buttons.start(edges).context("starting the buttons")?;
    Ok(Lights {
        tally: hw.tally,
        status: hw.status,
    })
}

/// One part that may be missing: why, and when to try it again (pure; the
/// driver passes the time and does the opening).
#[derive(Debug)]
pub struct Retry {
    part: &'static str,
    error: Option<String>,
    backoff: Backoff,
    rng: XorShift64,
    at: Option<Instant>,
}

/// What a failed attempt means for the technician.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// A new problem (or a different one): worth an `error` event.
    New,
    /// The same problem again: logged quietly.
    Same,
}

impl Retry {
    pub fn new(part: &'static str, seed: u64) -> Retry {
        Retry {
            part,
            error: None,
            backoff: Backoff::new(RETRY_FIRST, 2, RETRY_CAP),
            rng: XorShift64::new(seed),
            at: None,
        }
    }

    pub fn part(&self) -> &'static str {
        self.part
    }

    /// The attempt at `now` failed: schedule the next one.
    pub fn failed(&mut self, now: Instant, why: &str) -> Failure {
        let why = crate::excerpt::excerpt_n(why, ERROR_CHARS);
        let kind = if self.error.as_deref() == Some(why.as_str()) {
            Failure::Same
        } else {
            Failure::New
        };
        self.error = Some(why);
        self.at = Some(now + self.backoff.next_delay(&mut self.rng));
        kind
    }

    /// The part is open. True when it had been missing.
    pub fn opened(&mut self) -> bool {
        self.at = None;
        self.backoff.reset();
        self.error.take().is_some()
    }

    /// Time to try again.
    pub fn due(&self, now: Instant) -> bool {
        self.at.is_some_and(|t| now >= t)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.at
    }

    /// Why the part is missing, while it is.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// The parts the driver opens and reopens, and the channels they feed.
pub struct Parts {
    pub edges: UnboundedSender<RawEdge>,
    pub sim: UnboundedSender<SimEvent>,
    pub readings: UnboundedSender<RawReading>,
    pub gpio: Retry,
    pub scale: Retry,
}

impl Parts {
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.gpio.poll_timeout(), self.scale.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}

impl super::Driver {
    /// What is broken now, by part (`capture`, `gpio`, `scale`): status
    /// `errors`, empty on a healthy box.
    pub(super) fn errors(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        if let Some(e) = &self.capture_error {
            out.insert("capture".to_string(), e.clone());
        }
        if let Some(e) = self.parts.gpio.error() {
            out.insert("gpio".to_string(), e.to_string());
        }
        let scale = self.parts.scale.error().or(self.selling.scale_error());
        if let Some(e) = scale {
            out.insert(
                "scale".to_string(),
                crate::excerpt::excerpt_n(e, ERROR_CHARS),
            );
        }
        out
    }

    /// Keeps `capture_error` in step with what the show machine is told.
    pub(super) fn note_capture(&mut self, input: &crate::show::Input) {
        use crate::show::Input;
        match input {
            Input::CaptureFailed(why) | Input::CameraLost(why) => {
                self.capture_error = Some(crate::excerpt::excerpt_n(why, ERROR_CHARS));
            }
            Input::CaptureReady | Input::CameraRestored => self.capture_error = None,
            _ => {}
        }
    }

    /// Opens the GPIO and the scale if they are missing and their retry is
    /// due (at start both are due at once).
    pub(super) fn open_hardware(&mut self, now: Instant, first: bool) {
        if first || self.parts.gpio.due(now) {
            let opened = open_gpio(
                &self.config,
                self.parts.edges.clone(),
                self.parts.sim.clone(),
            );
            match opened {
                Ok(lights) => {
                    self.leds.attach(lights.tally, lights.status);
                    if self.parts.gpio.opened() {
                        tracing::info!("GPIO open: buttons and lights work again");
                        self.next_status = now;
                    }
                }
                Err(e) => {
                    let failure = self.parts.gpio.failed(now, &format!("{e:#}"));
                    self.hardware_failed(now, |p| &p.gpio, failure);
                }
            }
        }
        if first || self.parts.scale.due(now) {
            let opened = self
                .selling
                .open_scale(&self.config, self.parts.readings.clone(), now);
            match opened {
                Ok(()) => {
                    if self.parts.scale.opened() {
                        tracing::info!("scale open");
                        self.next_status = now;
                    }
                }
                Err(e) => {
                    let failure = self.parts.scale.failed(now, &format!("{e:#}"));
                    self.hardware_failed(now, |p| &p.scale, failure);
                }
            }
        }
    }

    fn hardware_failed(&mut self, now: Instant, which: fn(&Parts) -> &Retry, failure: Failure) {
        let retry = which(&self.parts);
        let part = retry.part();
        let why = retry.error().unwrap_or_default().to_string();
        let in_s = retry
            .poll_timeout()
            .map_or(0.0, |t| t.saturating_duration_since(now).as_secs_f32());
        if failure == Failure::Same {
            tracing::debug!(part, error = %why, retry_in_s = in_s, "still missing");
            return;
        }
        tracing::error!(part, error = %why, retry_in_s = in_s, "cannot open; the box runs without it and retries");
        if let Some(m) = &self.mqtt {
            m.event(
                Event::now("error")
                    .with("what", format!("{part}: {why}"))
                    .with("part", part),
            );
        }
        self.next_status = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_cap_and_reset_when_open() {
        let t0 = Instant::now();
        let mut r = Retry::new("gpio", 7);
        assert!(!r.due(t0));
        assert_eq!(r.failed(t0, "no chip"), Failure::New);
        let first = r.poll_timeout().expect("scheduled") - t0;
        assert!(
            first >= RETRY_FIRST / 2 && first <= RETRY_FIRST,
            "{first:?}"
        );
        // Jump from deadline to deadline: an hour of a missing chip in no time.
        let mut now = t0;
        let mut last = Duration::ZERO;
        for _ in 0..200 {
            now = r.poll_timeout().expect("scheduled");
            assert!(r.due(now));
            assert_eq!(r.failed(now, "no chip"), Failure::Same);
            last = r.poll_timeout().expect("scheduled") - now;
            assert!(last <= RETRY_CAP, "{last:?}");
        }
        assert!(last >= RETRY_CAP / 2, "the delay grew to the cap: {last:?}");
        assert!(now - t0 > Duration::from_secs(60 * 30));
        assert_eq!(r.error(), Some("no chip"));
        assert!(r.opened());
        assert_eq!(r.error(), None);
        assert!(!r.due(now + Duration::from_secs(3600)));
        // Missing again: starts from the short delay.
        assert_eq!(r.failed(now, "no chip"), Failure::New);
        assert!(r.poll_timeout().expect("scheduled") - now <= RETRY_FIRST);
    }

    #[test]
    fn a_different_error_is_new_and_long_text_is_cut() {
        let t0 = Instant::now();
        let mut r = Retry::new("scale", 1);
        assert_eq!(r.failed(t0, "a"), Failure::New);
        assert_eq!(r.failed(t0, "b"), Failure::New);
        r.failed(t0, &"x".repeat(100_000));
        assert!(r.error().map_or(0, str::len) < 400);
    }

    #[test]
    fn null_leds_accept_writes() {
        assert!(NullLed.set(true).is_ok());
    }
}
