//! A weight in whole grams: what the scale hands to the price path.
//!
//! The scale's `f64` reading becomes a [`Weight`] exactly once
//! ([`Weight::from_kg_f64`], rounded to the scale's resolution); prices are
//! then integer arithmetic on grams (`products::price`).

use std::fmt;

/// Heaviest weight accepted, in grams (a 1 t pallet scale is the outer bound
/// of anything a farmer puts on camera; more is a broken reading).
pub const MAX_GRAMS: i64 = 1_000_000;

/// A reading that is not a weight: NaN, infinite or beyond [`MAX_GRAMS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("weight reading is not a number the scale could show")]
pub struct BadWeight;

/// A weight in whole grams: the scale's resolution on produce scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Weight {
    grams: i64,
}

impl Weight {
    pub fn from_grams(grams: i64) -> Weight {
        Weight { grams }
    }

    pub fn grams(&self) -> i64 {
        self.grams
    }

    /// The one place a float becomes a weight: rounded to the nearest multiple
    /// of `resolution_g` (at least 1 g). NaN, infinities and anything beyond
    /// [`MAX_GRAMS`] either way are [`BadWeight`].
    pub fn from_kg_f64(kg: f64, resolution_g: u32) -> Result<Weight, BadWeight> {
        let res = f64::from(resolution_g.max(1));
        let g = kg * 1000.0;
        if !g.is_finite() || g.abs() > MAX_GRAMS as f64 {
            return Err(BadWeight);
        }
        // In range (checked above), so the cast cannot saturate.
        let grams = ((g / res).round() * res) as i64;
        Ok(Weight { grams })
    }
}

impl fmt::Display for Weight {
    /// Kilograms, three decimals: `1.250`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.grams < 0 { "-" } else { "" };
        let abs = self.grams.unsigned_abs();
        write!(f, "{sign}{}.{:03}", abs / 1000, abs % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_weights_become_grams_once() {
        assert_eq!(Weight::from_kg_f64(1.2504, 1).unwrap().grams(), 1250);
        assert_eq!(Weight::from_kg_f64(1.2506, 1).unwrap().grams(), 1251);
        assert_eq!(Weight::from_kg_f64(1.253, 5).unwrap().grams(), 1255);
        assert_eq!(
            Weight::from_kg_f64(0.1 + 0.2, 1).unwrap().to_string(),
            "0.300"
        );
        assert_eq!(Weight::from_kg_f64(-0.002, 1).unwrap().grams(), -2);
        for bad in [f64::NAN, f64::INFINITY, -f64::INFINITY, 1.0e9] {
            assert_eq!(Weight::from_kg_f64(bad, 1), Err(BadWeight));
        }
    }

    #[test]
    fn displays_kilograms_with_three_decimals() {
        for (g, s) in [
            (1250, "1.250"),
            (0, "0.000"),
            (-2, "-0.002"),
            (-1500, "-1.500"),
            (7, "0.007"),
        ] {
            assert_eq!(Weight::from_grams(g).to_string(), s);
        }
    }
}
