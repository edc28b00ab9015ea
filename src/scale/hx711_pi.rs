//! The `hx711` back end: an HX711 on two GPIO pins through rppal, read on a
//! dedicated blocking thread at the chip's own rate (10 or 80 Hz, set by its
//! RATE pin; we simply take each conversion when DOUT says it is ready).
//!
//! rppal compiles everywhere; off a Pi, opening the pins fails at start with
//! an error that points at `scale.kind = "sim"`. Readings are raw counts
//! (flagged stable: the chip has no notion of motion; the settle detector
//! decides); [`super::Scale`] applies the calibration.

use std::time::{Duration, Instant};

use anyhow::Context;
use rppal::gpio::{Gpio, InputPin, Level, OutputPin};
use tokio::sync::mpsc::UnboundedSender;

use super::hx711::{read_sample, Hx711Pins, SampleError};
use super::{Flags, Opened, RawReading, ScaleSource};
use crate::config::schema::ScaleConfig;

/// A conversion takes 100 ms at 10 Hz; four times that without DOUT going
/// low means the chip is not answering.
const READY_TIMEOUT: Duration = Duration::from_millis(400);
/// Discarded samples in a row before the scale is reported faulty.
const MAX_DISCARDS: u32 = 5;

pub struct PiPins {
    dout: InputPin,
    sck: OutputPin,
}

impl Hx711Pins for PiPins {
    fn dout(&mut self) -> bool {
        self.dout.read() == Level::High
    }

    fn set_sck(&mut self, high: bool) {
        if high {
            self.sck.set_high();
        } else {
            self.sck.set_low();
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

struct Hx711Scale {
    pins: PiPins,
    dout_pin: u8,
}

pub fn build(cfg: &ScaleConfig) -> anyhow::Result<Opened> {
    let (Some(dout_pin), Some(sck_pin)) = (cfg.hx711_dout_pin, cfg.hx711_sck_pin) else {
        anyhow::bail!("scale.kind = \"hx711\" needs scale.hx711_dout_pin and scale.hx711_sck_pin (BCM numbers)");
    };
    let gpio = Gpio::new().map_err(|e| {
        anyhow::anyhow!(
            "cannot open the GPIO for the HX711 scale ({e}); off a Raspberry Pi, \
             set scale.kind = \"sim\""
        )
    })?;
    let pin = |n: u8, what: &str| {
        gpio.get(n)
            .with_context(|| format!("HX711 {what} pin {n} (scale.hx711_{what}_pin)"))
    };
    let dout = pin(dout_pin, "dout")?.into_input();
    // Low from the start: a high SCK powers the chip down.
    let sck = pin(sck_pin, "sck")?.into_output_low();
    Ok(Opened {
        source: Box::new(Hx711Scale {
            pins: PiPins { dout, sck },
            dout_pin,
        }),
        sim_feed: None,
        needs_calibration: true,
    })
}

impl ScaleSource for Hx711Scale {
    fn start(self: Box<Self>, tx: UnboundedSender<RawReading>) -> anyhow::Result<()> {
        let Hx711Scale { mut pins, dout_pin } = *self;
        std::thread::Builder::new()
            .name("scale-hx711".into())
            .spawn(move || run(&mut pins, dout_pin, &tx))
            .context("starting the HX711 thread")?;
        Ok(())
    }
}

/// The next good sample, or why there is none.
pub(crate) fn next_sample(
    pins: &mut impl Hx711Pins,
    dout_pin: u8,
    wait: impl Fn(Duration),
) -> Result<i32, String> {
    let mut last = String::new();
    for _ in 0..MAX_DISCARDS {
        let start = pins.now();
        while pins.dout() {
            if pins.now().saturating_duration_since(start) > READY_TIMEOUT {
                return Err(format!(
                    "the HX711 does not answer (DOUT on pin {dout_pin} stays high); check its wiring and power"
                ));
            }
            wait(Duration::from_millis(1));
        }
        match read_sample(pins) {
            Ok(v) => return Ok(v),
            // Raced with a conversion that was not ready after all: try again.
            Err(SampleError::NotReady) => continue,
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!(
        "the HX711 gives no valid sample ({last}); check the load cell's wiring"
    ))
}

fn run(pins: &mut PiPins, dout_pin: u8, tx: &UnboundedSender<RawReading>) {
    while !tx.is_closed() {
        let msg = match next_sample(pins, dout_pin, std::thread::sleep) {
            Ok(v) => RawReading::Grams {
                value: f64::from(v),
                at: Instant::now(),
                flags: Flags::Stable,
            },
            Err(why) => {
                // Give a dead chip time rather than spinning on it.
                std::thread::sleep(Duration::from_millis(500));
                RawReading::Error(why)
            }
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hx711::fake::FakeChip;
    use super::*;

    #[test]
    fn a_silent_chip_is_reported_with_its_pin() {
        let mut chip = FakeChip::new(5);
        chip.ready = false;
        let err = next_sample(&mut chip, 5, |_| {}).unwrap_err();
        assert!(
            err.contains("pin 5") && err.contains("does not answer"),
            "{err}"
        );
    }

    #[test]
    fn a_good_chip_gives_its_value() {
        let mut chip = FakeChip::new(-4242);
        assert_eq!(next_sample(&mut chip, 5, |_| {}), Ok(-4242));
    }

    #[test]
    fn a_saturated_chip_is_reported_after_retries() {
        let mut chip = FakeChip::new(0x7F_FFFF);
        let err = next_sample(&mut chip, 5, |_| {}).unwrap_err();
        assert!(err.contains("no valid sample"), "{err}");
    }
}
