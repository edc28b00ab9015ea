//! The choice keys of a serial scale, as enums parsed once (`FromStr`) and
//! printed back exactly as written (`Display`): `scale.serial_format` and
//! `scale.serial_parity`. The schema keeps the TOML strings; validation
//! ([`super::validate_scale`]) parses them with these, so a bad value names
//! the allowed ones, and the scale back end parses them again into the enum
//! it matches on.

use std::fmt;
use std::str::FromStr;

/// The line layout a serial scale sends, or `Auto` to recognise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SerialFormat {
    /// Recognise the format from the first good lines (and try the common
    /// speeds while only garbage arrives).
    Auto,
    /// `ST,GS,+  1.250kg`: T&T and many OEM indicators, CAS's 18-byte "AND"
    /// mode.
    StGs,
    /// A&D standard format: `ST,+00001.250  kg`.
    AandD,
    /// METTLER TOLEDO MT-SICS replies: `S S     1.250 kg`.
    MtSics,
    /// METTLER TOLEDO standard continuous output: STX, three status bytes,
    /// six weight digits, six tare digits, CR.
    MtContinuous,
    /// OHAUS print lines: `     1.250 kg ?  N` (`?` while unstable).
    Ohaus,
    /// CAS 22-byte format: `ST,GS,` device id, lamp byte, `,`, 8 bytes of
    /// weight, a blank and the unit.
    Cas,
    /// YAOHUA XK3190 continuous output: `=` and the displayed digits reversed.
    Yaohua,
    /// Price-computing scales' and YAOHUA A12's `ww000.000kg` / `wn...`.
    Ww,
}

impl SerialFormat {
    /// Every value, in the order `auto` tries the formats (the strictest
    /// layouts first, OHAUS's plain "number unit" last).
    pub const ALL: [SerialFormat; 9] = [
        SerialFormat::Auto,
        SerialFormat::MtContinuous,
        SerialFormat::Yaohua,
        SerialFormat::Ww,
        SerialFormat::Cas,
        SerialFormat::StGs,
        SerialFormat::AandD,
        SerialFormat::MtSics,
        SerialFormat::Ohaus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SerialFormat::Auto => "auto",
            SerialFormat::StGs => "st_gs",
            SerialFormat::AandD => "a_and_d",
            SerialFormat::MtSics => "mt_sics",
            SerialFormat::MtContinuous => "mt_continuous",
            SerialFormat::Ohaus => "ohaus",
            SerialFormat::Cas => "cas",
            SerialFormat::Yaohua => "yaohua",
            SerialFormat::Ww => "ww",
        }
    }
}

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SerialParity {
    None,
    Even,
    Odd,
}

impl SerialParity {
    pub const ALL: [SerialParity; 3] = [SerialParity::None, SerialParity::Even, SerialParity::Odd];

    pub fn as_str(self) -> &'static str {
        match self {
            SerialParity::None => "none",
            SerialParity::Even => "even",
            SerialParity::Odd => "odd",
        }
    }
}

/// A value that is not one of a key's choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not one of: {allowed}")]
pub struct BadChoice {
    /// An excerpt of what was written.
    pub value: String,
    pub allowed: String,
}

fn parse<T: Copy>(s: &str, all: &[T], name: fn(T) -> &'static str) -> Result<T, BadChoice> {
    all.iter()
        .copied()
        .find(|v| name(*v) == s)
        .ok_or_else(|| BadChoice {
            value: crate::excerpt::excerpt(s),
            allowed: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
        })
}

impl FromStr for SerialFormat {
    type Err = BadChoice;
    fn from_str(s: &str) -> Result<Self, BadChoice> {
        parse(s, &Self::ALL, Self::as_str)
    }
}

impl FromStr for SerialParity {
    type Err = BadChoice;
    fn from_str(s: &str) -> Result<Self, BadChoice> {
        parse(s, &Self::ALL, Self::as_str)
    }
}

impl fmt::Display for SerialFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SerialParity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        for f in SerialFormat::ALL {
            assert_eq!(f.to_string().parse::<SerialFormat>(), Ok(f));
        }
        for p in SerialParity::ALL {
            assert_eq!(p.to_string().parse::<SerialParity>(), Ok(p));
        }
    }

    #[test]
    fn a_bad_value_names_the_choices_and_excerpts_the_echo() {
        let e = "Ohaus".parse::<SerialFormat>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"Ohaus\" is not one of: auto, mt_continuous, yaohua, ww, cas, st_gs, a_and_d, mt_sics, ohaus"
        );
        let long = "x".repeat(5000);
        let e = long.parse::<SerialParity>().unwrap_err();
        assert!(e.to_string().len() < 400, "{e}");
        assert!(e.to_string().ends_with("none, even, odd"), "{e}");
    }
}
