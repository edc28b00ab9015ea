//! Exact prices: a small decimal type, weights in whole grams, and
//! `price = weight × unit price` rounded to the currency's minor unit.
//!
//! Contract:
//! - No floating point in the price path. The scale's `f64` reading is turned
//!   into a [`Weight`] (the scale's, `crate::scale::weight`) exactly once
//!   ([`Weight::from_kg_f64`], rounded to the scale's resolution); everything
//!   after is integer arithmetic on an `i128` mantissa with a decimal scale.
//! - Rounding is **half-up** (half away from zero), as shop tills do: 0.005 CNY
//!   becomes 0.01. Banker's rounding would surprise a customer checking the
//!   sum by hand.
//! - Overflow is an error ([`PriceError::Overflow`]), never a panic or a wrap.
//! - `kg` products need a positive weight; `piece` products ignore the scale.

use std::fmt;

use crate::config::schema::ProductConfig;
use crate::config::validate::minor_digits;
// Weights are the scale's; prices use them.
pub use crate::scale::weight::{BadWeight, Weight, MAX_GRAMS};

/// Most decimals a [`Decimal`] may carry; far beyond any price or weight, small
/// enough that `10^MAX_SCALE` fits an `i128` comfortably.
pub const MAX_SCALE: u32 = 18;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("\"{0}\" is not a decimal number; write digits with an optional '.', e.g. \"30.00\"")]
    NotADecimal(String),
    #[error("no weight: the product is sold by the kg and there is no scale reading")]
    NoWeight,
    #[error("weight {0} kg is not above zero; put the produce on the scale")]
    NotPositive(Weight),
    #[error("weight reading is not a number the scale could show")]
    BadWeight,
    #[error("the price is too large to compute")]
    Overflow,
}

impl From<BadWeight> for PriceError {
    fn from(_: BadWeight) -> PriceError {
        PriceError::BadWeight
    }
}

/// An exact decimal number: `mantissa × 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Decimal {
    pub fn new(mantissa: i128, scale: u32) -> Option<Decimal> {
        (scale <= MAX_SCALE).then_some(Decimal { mantissa, scale })
    }

    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// Parses `"30"`, `"30.5"`, `"0.125"` (no sign, no exponent, no spaces):
    /// the form config files and MQTT use for prices.
    pub fn parse(s: &str) -> Result<Decimal, PriceError> {
        let bad = || PriceError::NotADecimal(s.to_string());
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(frac)
            || (s.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        let scale = u32::try_from(frac.len()).map_err(|_| bad())?;
        if scale > MAX_SCALE {
            return Err(bad());
        }
        let mut m: i128 = 0;
        for b in whole.bytes().chain(frac.bytes()) {
            m = m
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or(PriceError::Overflow)?;
        }
        Ok(Decimal { mantissa: m, scale })
    }

    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        Decimal::new(
            self.mantissa.checked_mul(other.mantissa)?,
            self.scale + other.scale,
        )
    }

    /// The same value with exactly `digits` decimals: padded with zeros, or
    /// rounded half away from zero.
    pub fn round_to(self, digits: u32) -> Option<Decimal> {
        if digits >= self.scale {
            let m = self.mantissa.checked_mul(pow10(digits - self.scale)?)?;
            return Decimal::new(m, digits);
        }
        let div = pow10(self.scale - digits)?;
        let q = self.mantissa / div;
        let r = self.mantissa % div;
        // |r| ≥ div/2, compared without overflow: 2|r| ≥ div.
        let up = r.unsigned_abs() * 2 >= div.unsigned_abs();
        let m = match (up, self.mantissa < 0) {
            (false, _) => q,
            (true, false) => q.checked_add(1)?,
            (true, true) => q.checked_sub(1)?,
        };
        Decimal::new(m, digits)
    }

    pub fn is_positive(&self) -> bool {
        self.mantissa > 0
    }
}

impl fmt::Display for Decimal {
    /// With exactly `self.scale` decimals: `36.00`, `1234`, `-0.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let abs = self.mantissa.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let div = 10u128.pow(self.scale);
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / div,
            abs % div,
            width = self.scale as usize
        )
    }
}

/// Kilograms with exactly three decimals, for exact arithmetic.
pub fn kg(weight: Weight) -> Decimal {
    Decimal {
        mantissa: i128::from(weight.grams()),
        scale: 3,
    }
}

/// How a product is sold: `products[].unit`, parsed with the config.
pub use crate::config::Unit;

/// An amount in a currency, with exactly the currency's minor digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    pub amount: Decimal,
    pub currency: String,
}

impl fmt::Display for Price {
    /// The amount only (`36.00`); the currency is shown by the caller's template.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.amount.fmt(f)
    }
}

/// The product's unit price with the currency's minor digits (`"18.5"` CNY →
/// `18.50`).
pub fn unit_price(product: &ProductConfig) -> Result<Decimal, PriceError> {
    Decimal::parse(&product.unit_price)?
        .round_to(minor_digits(&product.currency))
        .ok_or(PriceError::Overflow)
}

/// What the viewer pays: `weight × unit_price` for `kg` products (weight
/// required and above zero), `unit_price` for `piece` products (weight
/// ignored), rounded half-up to the currency's minor unit.
pub fn price(product: &ProductConfig, weight: Option<Weight>) -> Result<Price, PriceError> {
    let digits = minor_digits(&product.currency);
    let unit_price = Decimal::parse(&product.unit_price)?;
    let exact = match product.unit {
        Unit::Piece => unit_price,
        Unit::Kg => {
            let w = weight.ok_or(PriceError::NoWeight)?;
            if w.grams() <= 0 {
                return Err(PriceError::NotPositive(w));
            }
            unit_price.checked_mul(kg(w)).ok_or(PriceError::Overflow)?
        }
    };
    Ok(Price {
        amount: exact.round_to(digits).ok_or(PriceError::Overflow)?,
        currency: product.currency.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn product(unit: &str, price: &str, currency: &str) -> ProductConfig {
        ProductConfig {
            id: "p".into(),
            name: "P".into(),
            unit: unit.parse().unwrap(),
            unit_price: price.into(),
            currency: currency.into(),
            button_pin: None,
        }
    }

    fn priced(unit: &str, up: &str, cur: &str, grams: i64) -> Result<String, PriceError> {
        price(&product(unit, up, cur), Some(Weight::from_grams(grams))).map(|p| p.to_string())
    }

    #[test]
    fn parse_and_display_round_trip_exactly() {
        for s in ["0", "30", "30.00", "0.125", "1234.5", "007.10"] {
            let d = Decimal::parse(s).unwrap();
            assert_eq!(d.to_string(), s.trim_start_matches("00"));
        }
        for bad in ["", ".5", "5.", "-1", "1e3", " 1", "1,5", "1.2.3", "+1", "١"] {
            assert!(Decimal::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Decimal::parse("1234567890123456789012345678901234567890"),
            Err(PriceError::Overflow)
        );
    }

    #[test]
    fn by_weight_hand_worked() {
        // 1.250 kg × 30.00 CNY = 37.5000 → 37.50
        assert_eq!(priced("kg", "30.00", "CNY", 1250).unwrap(), "37.50");
        // 1.200 kg × 30 = 36.00 (the example)
        assert_eq!(priced("kg", "30", "CNY", 1200).unwrap(), "36.00");
        // 0.333 kg × 4.99 USD = 1.66167 → 1.66
        assert_eq!(priced("kg", "4.99", "USD", 333).unwrap(), "1.66");
        // 0.505 kg × 2.99 EUR = 1.50995 → 1.51
        assert_eq!(priced("kg", "2.99", "EUR", 505).unwrap(), "1.51");
        // 0.750 kg × 1645 JPY = 1233.75 → 1234
        assert_eq!(priced("kg", "1645", "JPY", 750).unwrap(), "1234");
        // 0.250 kg × 3.125 KWD = 0.78125 → 0.781
        assert_eq!(priced("kg", "3.125", "KWD", 250).unwrap(), "0.781");
    }

    #[test]
    fn half_up_at_exact_halves() {
        // 0.500 kg × 0.01 = 0.005 → 0.01 (banker's would give 0.00)
        assert_eq!(priced("kg", "0.01", "CNY", 500).unwrap(), "0.01");
        // 0.500 kg × 0.05 = 0.025 → 0.03 (banker's: 0.02)
        assert_eq!(priced("kg", "0.05", "USD", 500).unwrap(), "0.03");
        // 0.500 kg × 1 JPY = 0.5 → 1
        assert_eq!(priced("kg", "1", "JPY", 500).unwrap(), "1");
        // just below the half rounds down: 0.499 × 0.01 = 0.00499 → 0.00
        assert_eq!(priced("kg", "0.01", "CNY", 499).unwrap(), "0.00");
        let neg = Decimal::new(-25, 3).unwrap().round_to(2).unwrap();
        assert_eq!(neg.to_string(), "-0.03");
    }

    #[test]
    fn pieces_ignore_the_scale_and_pad_to_minor_digits() {
        let eggs = product("piece", "18.5", "CNY");
        assert_eq!(price(&eggs, None).unwrap().to_string(), "18.50");
        assert_eq!(
            price(&eggs, Some(Weight::from_grams(-40)))
                .unwrap()
                .to_string(),
            "18.50"
        );
        assert_eq!(
            price(&product("piece", "300", "JPY"), None)
                .unwrap()
                .to_string(),
            "300"
        );
        assert_eq!(
            price(&product("piece", "1.5", "KWD"), None)
                .unwrap()
                .to_string(),
            "1.500"
        );
    }

    #[test]
    fn weight_is_required_and_positive_for_kg_products() {
        let p = product("kg", "30.00", "CNY");
        assert_eq!(price(&p, None), Err(PriceError::NoWeight));
        assert!(matches!(
            priced("kg", "30", "CNY", 0),
            Err(PriceError::NotPositive(_))
        ));
        assert!(matches!(
            priced("kg", "30", "CNY", -5),
            Err(PriceError::NotPositive(_))
        ));
        assert!(matches!(
            priced("kg", "3O", "CNY", 5),
            Err(PriceError::NotADecimal(_))
        ));
    }

    #[test]
    fn huge_values_are_errors_not_panics() {
        let up = format!("{}.{}", "9".repeat(20), "9".repeat(18));
        assert_eq!(
            priced("kg", &up, "CNY", i64::MAX),
            Err(PriceError::Overflow)
        );
        let d = Decimal::new(i128::MAX, 18).unwrap();
        assert_eq!(
            d.round_to(0).map(|d| d.mantissa()),
            Some(i128::MAX / 10i128.pow(18) + 1)
        );
        assert_eq!(Decimal::new(i128::MAX, 0).unwrap().round_to(2), None);
        assert_eq!(Decimal::new(1, 19), None);
    }

    proptest! {
        #[test]
        fn price_matches_integer_arithmetic(cents in 0i64..10_000_000, grams in 1i64..MAX_GRAMS) {
            // Independent model: price in milli-cents = cents × grams; round half-up to cents.
            let up = format!("{}.{:02}", cents / 100, cents % 100);
            let got = priced("kg", &up, "USD", grams).unwrap();
            let milli = i128::from(cents) * i128::from(grams);
            let rounded = (milli + 500) / 1000;
            prop_assert_eq!(got, format!("{}.{:02}", rounded / 100, rounded % 100));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = Decimal::parse(&s);
        }
    }
}
