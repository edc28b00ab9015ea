//! The scale as the rest of the box sees it: raw readings in, a weight that is
//! either stable and trustworthy or clearly not, out (pure, time passed in).
//!
//! Contract:
//! - Feed every [`RawReading`] to [`Scale::handle`]; call
//!   [`Scale::handle_timeout`] at [`Scale::poll_timeout`] (the silence
//!   watchdog); drain [`Scale::poll_event`] for `error` events.
//! - [`ScaleState::weight`] is `Some` only when the back end gives a plausible
//!   value; `stable` only when the back end does not say "unstable" *and* the
//!   filtered weight stayed within tolerance for the settle time.
//! - Disconnection, garbage, saturation, overload and silence all give
//!   `weight = None`, `stable = false` and `error = Some(why)`; the error event
//!   is raised once per distinct cause, not once per sample.
//! - [`Scale::tare`] and [`Scale::calibrate`] need a stable reading; they
//!   return the new [`Calibration`] for the caller to save.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::calibration::Calibration;
use super::filter::{Median, Settle};
use super::weight::{Weight, MAX_GRAMS};
use super::{Flags, RawReading};
use crate::config::schema::ScaleConfig;

/// No reading for this long is an error: a hung USB adapter, a loose wire.
pub const SILENCE: Duration = Duration::from_secs(3);

const UNCALIBRATED: &str =
    "the scale is not calibrated: tare, then calibrate_scale with a known weight";

/// Grams per HX711 count for a typical 5 kg, 1 mV/V load cell at gain 128
/// (about 420 counts a gram); only used before calibration.
pub const HX711_NOMINAL_FACTOR: f64 = 1.0 / 420.0;

/// What status and the tagger read.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ScaleState {
    /// Rounded to the scale's resolution; for status only (prices use `weight`).
    pub weight_kg: Option<f64>,
    pub stable: bool,
    pub error: Option<String>,
    /// A serial scale's line format, once named or recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The speed a serial scale is read at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
    /// The same weight, exact, for prices.
    #[serde(skip)]
    pub weight: Option<Weight>,
}

/// Something the driver should publish.
#[derive(Debug, Clone, PartialEq)]
pub enum ScaleEvent {
    /// The scale cannot be trusted now (an `error` event).
    Error(String),
    /// Good readings again after an error.
    Recovered,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScaleError {
    #[error("the scale is not stable; wait until the reading settles")]
    Unstable,
    #[error("the scale has a problem: {0}")]
    Faulty(String),
    #[error("the known weight must be a positive number of kg, e.g. 1.000")]
    BadKnownWeight,
    #[error("the scale reads the same with and without the weight; check the load cell")]
    NoSpan,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub settle: Duration,
    pub tolerance_g: f64,
    pub resolution_g: u32,
    /// HX711 counts mean nothing until calibrated with a known weight.
    pub needs_calibration: bool,
}

impl Settings {
    pub fn from_config(cfg: &ScaleConfig, needs_calibration: bool) -> Settings {
        Settings {
            settle: Duration::from_millis(cfg.settle_ms),
            tolerance_g: f64::from(cfg.tolerance_g),
            resolution_g: cfg.resolution_g.max(1),
            needs_calibration,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scale {
    settings: Settings,
    cal: Calibration,
    median: Median,
    settle: Settle,
    state: ScaleState,
    last_at: Option<Instant>,
    /// Silence is measured from here until the first reading.
    started: Instant,
    events: VecDeque<ScaleEvent>,
}

impl Scale {
    pub fn new(settings: Settings, mut cal: Calibration, now: Instant) -> Scale {
        if settings.needs_calibration && !cal.calibrated {
            // Counts are not grams; a nominal factor keeps the settle tolerance
            // meaningful until the real one is measured.
            cal.factor = HX711_NOMINAL_FACTOR;
        }
        Scale {
            settle: Settle::new(settings.settle, settings.tolerance_g),
            settings,
            cal,
            median: Median::default(),
            state: ScaleState::default(),
            last_at: None,
            started: now,
            events: VecDeque::new(),
        }
    }

    pub fn state(&self) -> &ScaleState {
        &self.state
    }

    pub fn calibration(&self) -> Calibration {
        self.cal
    }

    pub fn handle(&mut self, now: Instant, reading: RawReading) {
        match reading {
            RawReading::Grams { value, at, flags } => {
                // Silence is counted from when readings arrive, not from the
                // back end's stamp: after a stall of the loop (a loaded CPU)
                // the queued readings each cleared the error and the next
                // check raised it again, a flood of `error` events.
                self.last_at = Some(now);
                self.sample(value, at, flags);
            }
            RawReading::Error(why) => {
                self.last_at = Some(now);
                self.fail(why);
            }
            RawReading::Disconnected => {
                self.last_at = Some(now);
                self.fail("the scale is disconnected".into());
            }
            // Not a reading: the silence watchdog keeps running.
            RawReading::Format { format, baud } => {
                self.state.format = Some(format.to_string());
                self.state.baud = Some(baud);
            }
        }
    }

    /// The silence watchdog.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|t| now >= t) {
            self.fail(format!(
                "no readings from the scale for {} s",
                SILENCE.as_secs()
            ));
        }
    }

    /// When the silence watchdog fires; `None` while an error is already
    /// shown (a back end that is reconnecting stays silent, and its own error
    /// says more than "no readings").
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state.error {
            Some(_) => None,
            None => Some(self.last_at.unwrap_or(self.started) + SILENCE),
        }
    }

    pub fn poll_event(&mut self) -> Option<ScaleEvent> {
        self.events.pop_front()
    }

    /// Takes the current stable reading as zero.
    pub fn tare(&mut self) -> Result<Calibration, ScaleError> {
        let raw = self.stable_raw()?;
        self.cal.offset = raw;
        self.restart_filter();
        Ok(self.cal)
    }

    /// The current stable reading is `known_kg` (tare first, with the pan
    /// empty).
    pub fn calibrate(&mut self, known_kg: f64) -> Result<Calibration, ScaleError> {
        let cal = self.calibration_for(known_kg)?;
        self.set_calibration(cal);
        Ok(self.cal)
    }

    /// What [`calibrate`](Self::calibrate) would set, without setting it (the
    /// caller may refuse a change that is too large).
    pub fn calibration_for(&self, known_kg: f64) -> Result<Calibration, ScaleError> {
        if !(known_kg.is_finite() && known_kg > 0.0 && known_kg * 1000.0 <= MAX_GRAMS as f64) {
            return Err(ScaleError::BadKnownWeight);
        }
        let raw = self.stable_raw()?;
        let span = raw - self.cal.offset;
        let factor = known_kg * 1000.0 / span;
        if span.abs() < 1e-9 || !factor.is_finite() {
            return Err(ScaleError::NoSpan);
        }
        Ok(Calibration {
            factor,
            calibrated: true,
            ..self.cal
        })
    }

    /// Puts in a calibration (an undo, or one checked by the caller).
    pub fn set_calibration(&mut self, cal: Calibration) {
        self.cal = cal;
        self.restart_filter();
    }

    fn stable_raw(&self) -> Result<f64, ScaleError> {
        // Uncalibrated is the one error taring and calibrating are meant to fix.
        if let Some(e) = self.state.error.as_deref().filter(|e| *e != UNCALIBRATED) {
            return Err(ScaleError::Faulty(e.to_string()));
        }
        let raw = self.median.value().ok_or(ScaleError::Unstable)?;
        let now = self.last_at.ok_or(ScaleError::Unstable)?;
        if !self.settle.is_stable(now) {
            return Err(ScaleError::Unstable);
        }
        Ok(raw)
    }

    fn restart_filter(&mut self) {
        self.settle.reset();
        self.state.stable = false;
        self.state.weight = None;
        self.state.weight_kg = None;
    }

    fn sample(&mut self, value: f64, at: Instant, flags: Flags) {
        if flags == Flags::Overload {
            return self.fail("the scale is overloaded (or under its zero)".into());
        }
        if !value.is_finite() {
            return self.fail("the scale sent an unreadable value".into());
        }
        let Some(raw) = self.median.push(value) else {
            return;
        };
        let grams = self.cal.grams(raw);
        if !grams.is_finite() || grams.abs() > MAX_GRAMS as f64 {
            return self.fail("the reading is out of the scale's range".into());
        }
        let settled = self.settle.push(at, grams);
        if self.settings.needs_calibration && !self.cal.calibrated {
            // The filters keep running: tare and calibrate need them.
            self.state.weight = None;
            self.state.weight_kg = None;
            self.state.stable = false;
            return self.flag(UNCALIBRATED.into());
        }
        let Ok(weight) = Weight::from_kg_f64(grams / 1000.0, self.settings.resolution_g) else {
            return self.fail("the scale sent an unreadable value".into());
        };
        if self.state.error.take().is_some() {
            self.events.push_back(ScaleEvent::Recovered);
        }
        self.state.weight = Some(weight);
        self.state.weight_kg = Some(weight.grams() as f64 / 1000.0);
        self.state.stable = settled && flags == Flags::Stable;
    }

    fn fail(&mut self, why: String) {
        // Filters restart so that a good value after the fault must settle anew.
        self.median.reset();
        self.settle.reset();
        self.state.weight = None;
        self.state.weight_kg = None;
        self.state.stable = false;
        self.flag(why);
    }

    fn flag(&mut self, why: String) {
        if self.state.error.as_deref() != Some(why.as_str()) {
            self.events.push_back(ScaleEvent::Error(why.clone()));
            self.state.error = Some(why);
        }
    }
}
