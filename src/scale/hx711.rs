//! The HX711 load-cell amplifier's bit protocol over a narrow pin trait, so
//! it can be tested against a simulated chip.
//!
//! Protocol (datasheet): DOUT low means a conversion is ready; 24 clock pulses
//! on PD_SCK shift the value out MSB first (DOUT valid 0.1 µs after the rising
//! edge); a 25th pulse selects channel A, gain 128, for the next conversion.
//! The value is 24-bit two's complement; 0x7FFFFF and 0x800000 are the
//! saturation codes. PD_SCK high for more than 60 µs powers the chip down.
//!
//! User-space bit-banging can be pre-empted for that long mid-pulse, so every
//! sample is checked: any SCK-high period measured over [`MAX_HIGH`] (50 µs,
//! short of the chip's 60 µs) discards it, as do the saturation codes and
//! 0xFFFFFF (what a powered-down or unplugged chip clocks out). The caller
//! retries; the median filter downstream handles what slips through.

use std::time::{Duration, Instant};

/// Longest SCK-high period that still trusts the sample.
pub const MAX_HIGH: Duration = Duration::from_micros(50);
/// Data bits plus the gain-128 pulse.
pub const PULSES: u32 = 25;

pub trait Hx711Pins {
    fn dout(&mut self) -> bool;
    fn set_sck(&mut self, high: bool);
    fn now(&self) -> Instant;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("no conversion ready (DOUT high)")]
    NotReady,
    #[error("a clock pulse was stretched to {0:?} (pre-empted); the chip may have powered down")]
    Stretched(Duration),
    #[error("saturated or invalid code {0:#08x}")]
    Saturated(u32),
}

/// Clocks one sample out of a ready chip. Leaves SCK low in every case, so
/// the chip stays (or comes back) powered up.
pub fn read_sample(pins: &mut impl Hx711Pins) -> Result<i32, SampleError> {
    if pins.dout() {
        return Err(SampleError::NotReady);
    }
    let mut raw: u32 = 0;
    let mut longest = Duration::ZERO;
    for i in 0..PULSES {
        let start = pins.now();
        pins.set_sck(true);
        let bit = pins.dout();
        pins.set_sck(false);
        // Measured from before the rising edge to after the falling one, so
        // it over-estimates the high time: a stretched pulse cannot hide.
        longest = longest.max(pins.now().saturating_duration_since(start));
        if i < 24 {
            raw = (raw << 1) | u32::from(bit);
        }
    }
    if longest > MAX_HIGH {
        return Err(SampleError::Stretched(longest));
    }
    if matches!(raw, 0x7F_FFFF | 0x80_0000 | 0xFF_FFFF) {
        return Err(SampleError::Saturated(raw));
    }
    Ok(sign_extend(raw))
}

/// 24-bit two's complement → i32.
pub fn sign_extend(raw: u32) -> i32 {
    ((raw << 8) as i32) >> 8
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    /// A simulated HX711 with a simulated clock: every pin call takes 1 µs,
    /// except the rising edges listed in `stretch`, which take 80 µs (a
    /// pre-emption). A high period over 60 µs powers the chip down: from then
    /// on DOUT reads high, as on the real chip.
    pub struct FakeChip {
        pub value: u32,
        pub ready: bool,
        pub stretch: Vec<u32>,
        pub pulses: u32,
        /// Pulses of the last complete read (the chip starts a new conversion
        /// after the 25th).
        pub last_pulses: u32,
        pub sck: bool,
        pub powered_down: bool,
        t0: Instant,
        elapsed: Duration,
        high_since: Duration,
    }

    impl FakeChip {
        pub fn new(value: i32) -> FakeChip {
            FakeChip {
                value: (value as u32) & 0xFF_FFFF,
                ready: true,
                stretch: Vec::new(),
                pulses: 0,
                last_pulses: 0,
                sck: false,
                powered_down: false,
                t0: Instant::now(),
                elapsed: Duration::ZERO,
                high_since: Duration::ZERO,
            }
        }
    }

    impl Hx711Pins for FakeChip {
        fn dout(&mut self) -> bool {
            self.elapsed += Duration::from_micros(1);
            if self.powered_down || (!self.ready && self.pulses == 0) {
                return true;
            }
            if self.pulses == 0 {
                return false;
            }
            // After rising edge n (1-based), bit 24-n is on DOUT.
            match self.pulses {
                1..=24 => (self.value >> (24 - self.pulses)) & 1 == 1,
                _ => true,
            }
        }

        fn set_sck(&mut self, high: bool) {
            self.elapsed += Duration::from_micros(1);
            if high && !self.sck {
                self.pulses += 1;
                self.high_since = self.elapsed;
                if self.stretch.contains(&self.pulses) {
                    self.elapsed += Duration::from_micros(80);
                }
            }
            if !high && self.sck && self.elapsed - self.high_since > Duration::from_micros(60) {
                self.powered_down = true;
            }
            if !high && self.sck && self.pulses == PULSES {
                self.last_pulses = self.pulses;
                self.pulses = 0;
            }
            self.sck = high;
        }

        fn now(&self) -> Instant {
            self.t0 + self.elapsed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeChip;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_values_msb_first_with_the_gain_pulse() {
        for v in [0, 1, -2, 123_456, -123_456, 0x7F_FFFE, -0x7F_FFFF] {
            let mut chip = FakeChip::new(v);
            assert_eq!(read_sample(&mut chip), Ok(v));
            assert_eq!(chip.last_pulses, PULSES, "gain 128 needs exactly 25 pulses");
            assert_eq!(chip.pulses, 0);
            assert!(!chip.sck, "SCK must end low or the chip powers down");
        }
    }

    #[test]
    fn saturation_and_all_ones_are_discarded() {
        for raw in [0x7F_FFFFi32, -0x80_0000, -1] {
            let mut chip = FakeChip::new(raw);
            assert!(matches!(
                read_sample(&mut chip),
                Err(SampleError::Saturated(_))
            ));
        }
    }

    #[test]
    fn not_ready_clocks_nothing() {
        let mut chip = FakeChip::new(5);
        chip.ready = false;
        assert_eq!(read_sample(&mut chip), Err(SampleError::NotReady));
        assert_eq!(chip.pulses, 0);
    }

    #[test]
    fn a_preempted_pulse_discards_the_sample() {
        // Stretching bit 10 powers the chip down: the rest reads as ones, so
        // the value would be wrong. It must be refused, not returned.
        let mut chip = FakeChip::new(1000);
        chip.stretch = vec![10];
        let got = read_sample(&mut chip);
        assert!(chip.powered_down);
        assert!(
            matches!(got, Err(SampleError::Stretched(d)) if d > MAX_HIGH),
            "{got:?}"
        );
        // Even on the last (gain) pulse, where the value itself is intact.
        let mut chip = FakeChip::new(1000);
        chip.stretch = vec![25];
        assert!(matches!(
            read_sample(&mut chip),
            Err(SampleError::Stretched(_))
        ));
    }

    proptest! {
        #[test]
        fn any_valid_value_round_trips(v in -0x7F_FFFFi32..0x7F_FFFF) {
            prop_assume!(v != -1);
            let mut chip = FakeChip::new(v);
            prop_assert_eq!(read_sample(&mut chip), Ok(v));
        }

        #[test]
        fn any_stretched_pulse_is_caught(v in -0x7F_FFFFi32..0x7F_FFFF, at in 1u32..=25) {
            let mut chip = FakeChip::new(v);
            chip.stretch = vec![at];
            prop_assert!(matches!(read_sample(&mut chip), Err(SampleError::Stretched(_))));
        }
    }
}
