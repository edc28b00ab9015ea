//! Line parsers for USB-serial scales in continuous-output mode, and a line
//! assembler for the bytes the port hands over (pure).
//!
//! Formats:
//! - The widespread "ST,GS" family (A&D, T&T, many OEM indicators):
//!   `ST,GS,+  1.250kg`. Header `ST` stable, `US` unstable, `OL` overload;
//!   mode `GS`/`GW` gross, `NT`/`NW` net (both the weight on the pan), `TR`
//!   tare (not a weight: ignored). Some models drop the comma after the mode
//!   (`ST,GS    20.7g`). Captured lines, e.g. `ST,GS,+  4.876kg\r\n` as replayed
//!   by woxuankai/project_sperm `newhub/mods/test_mod_scales.py`, and
//!   `ST,GS,   245.6 g` / `ST,GS    20.7g` from T&T QHW/NHB captures in public
//!   scale-driver notes.
//! - Mettler Toledo MT-SICS: `S S     1.250 kg` (stable), `S D ...` (dynamic),
//!   `S +` / `S -` (over / under range), `S I` (busy), also `SI`/`SIR`
//!   headers. Examples in public MT-SICS drivers: `S S      2.168 kg`,
//!   `S S      100.00 g`, `S D     10.500 g`.
//!
//! Units `kg`, `g`, `lb`/`lbs` (converted exactly: 1 lb = 0.45359237 kg),
//! `oz`. A weight without a unit is refused: guessing g against kg would
//! put a price a thousand times off on air.

use super::Flags;

/// Longest line kept; scales send ~20 bytes, so anything longer is noise.
pub const MAX_LINE: usize = 96;

/// One parsed line. `kg` is `None` when the scale says nothing usable about
/// the weight (overload, busy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub kg: Option<f64>,
    pub flags: Flags,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty line")]
    Empty,
    #[error("not a weight line the known formats (ST,GS / MT-SICS) can read")]
    Unknown,
    #[error("the weight is not a number")]
    BadNumber,
    #[error("unit {0:?} is not known (kg, g, lb, oz)")]
    BadUnit(String),
    #[error("the weight has no unit")]
    NoUnit,
    /// A tare line (`TR`) or a SICS command reply that is not a weight.
    #[error("not a weight reading")]
    NotAWeight,
}

pub fn parse_line(line: &str) -> Result<Reading, ParseError> {
    // STX/ETX framing and stray spaces around the line.
    let line = line.trim_matches(|c: char| c.is_ascii_control() || c == ' ');
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    if let Some(r) = parse_st_family(line) {
        return r;
    }
    if let Some(r) = parse_sics(line) {
        return r;
    }
    Err(ParseError::Unknown)
}

fn parse_st_family(line: &str) -> Option<Result<Reading, ParseError>> {
    let head = line.get(..2)?;
    let flags = match head {
        "ST" => Flags::Stable,
        "US" => Flags::Unstable,
        "OL" => Flags::Overload,
        _ => return None,
    };
    let rest = line.get(2..)?.strip_prefix(',')?;
    let mode = rest.get(..2)?;
    let body = rest.get(2..)?;
    let body = body.strip_prefix(',').unwrap_or(body);
    Some(match mode {
        "GS" | "GW" | "NT" | "NW" => {
            if flags == Flags::Overload {
                Ok(Reading { kg: None, flags })
            } else {
                weight(body).map(|kg| Reading {
                    kg: Some(kg),
                    flags,
                })
            }
        }
        "TR" => Err(ParseError::NotAWeight),
        _ => Err(ParseError::Unknown),
    })
}

fn parse_sics(line: &str) -> Option<Result<Reading, ParseError>> {
    let mut parts = line.splitn(2, ' ');
    let cmd = parts.next()?;
    if !matches!(cmd, "S" | "SI" | "SIR") {
        return None;
    }
    let rest = parts.next()?.trim_start_matches(' ');
    let (status, body) = match rest.split_once(' ') {
        Some((s, b)) => (s, b),
        None => (rest, ""),
    };
    Some(match status {
        "S" => weight(body).map(|kg| Reading {
            kg: Some(kg),
            flags: Flags::Stable,
        }),
        "D" => weight(body).map(|kg| Reading {
            kg: Some(kg),
            flags: Flags::Unstable,
        }),
        "+" | "-" => Ok(Reading {
            kg: None,
            flags: Flags::Overload,
        }),
        "I" => Ok(Reading {
            kg: None,
            flags: Flags::Unstable,
        }),
        _ => Err(ParseError::NotAWeight),
    })
}

/// `+  1.250kg`, `-0.5 g`, `   245.6 g`, `2.2 lb` → kg.
fn weight(body: &str) -> Result<f64, ParseError> {
    let body = body.trim_matches(' ');
    let (neg, body) = match body.as_bytes().first() {
        Some(b'+') => (false, body.get(1..).unwrap_or("")),
        Some(b'-') => (true, body.get(1..).unwrap_or("")),
        _ => (false, body),
    };
    let body = body.trim_start_matches(' ');
    let end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(end);
    // Only digits and one point: `f64::from_str` would also take "inf" or "1e9".
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(ParseError::BadNumber);
    }
    let v: f64 = num.parse().map_err(|_| ParseError::BadNumber)?;
    let per_kg = match unit.trim_matches(' ') {
        "" => return Err(ParseError::NoUnit),
        "kg" | "KG" | "Kg" => 1.0,
        "g" | "G" => 0.001,
        "lb" | "LB" | "lbs" | "LBS" => 0.453_592_37,
        "oz" | "OZ" => 0.028_349_523_125,
        other => {
            return Err(ParseError::BadUnit(other.chars().take(8).collect()));
        }
    };
    let kg = v * per_kg;
    Ok(if neg { -kg } else { kg })
}

/// What the assembler hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// A line longer than [`MAX_LINE`] (dropped up to its end) or not UTF-8.
    Garbage,
}

/// Bytes in arbitrary chunks → lines. CR, LF and CRLF all end a line; empty
/// lines are skipped; a line is bounded by [`MAX_LINE`].
#[derive(Debug, Default)]
pub struct LineAssembler {
    buf: Vec<u8>,
    /// Dropping the rest of an over-long line.
    skipping: bool,
}

impl LineAssembler {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if self.skipping {
                    self.skipping = false;
                } else if !self.buf.is_empty() {
                    out.push(match String::from_utf8(std::mem::take(&mut self.buf)) {
                        Ok(s) => Line::Text(s),
                        Err(_) => Line::Garbage,
                    });
                }
                self.buf.clear();
            } else if !self.skipping {
                if self.buf.len() == MAX_LINE {
                    self.buf.clear();
                    self.skipping = true;
                    out.push(Line::Garbage);
                } else {
                    self.buf.push(b);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(line: &str) -> (Option<f64>, Flags) {
        let r = parse_line(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        (r.kg.map(|k| (k * 1e6).round() / 1e6), r.flags)
    }

    #[test]
    fn st_family_captured_lines() {
        assert_eq!(ok("ST,GS,+  4.876kg"), (Some(4.876), Flags::Stable));
        assert_eq!(ok("ST,GS,+  1.250kg"), (Some(1.25), Flags::Stable));
        assert_eq!(ok("ST,GS,   245.6 g"), (Some(0.2456), Flags::Stable));
        assert_eq!(ok("ST,GS    20.7g"), (Some(0.0207), Flags::Stable));
        assert_eq!(ok("US,GS,+  1.180kg"), (Some(1.18), Flags::Unstable));
        assert_eq!(ok("ST,NT,-  0.015kg"), (Some(-0.015), Flags::Stable));
        assert_eq!(ok("ST,GS,+  2.000lb"), (Some(0.907185), Flags::Stable));
        assert_eq!(ok("\x02ST,GS,+000.500kg\x03"), (Some(0.5), Flags::Stable));
        assert_eq!(ok("OL,GS,+  -----kg"), (None, Flags::Overload));
        assert_eq!(ok("OL,GS"), (None, Flags::Overload));
        assert_eq!(parse_line("ST,TR,+  0.100kg"), Err(ParseError::NotAWeight));
        assert_eq!(parse_line("ST,GS,+  1.250"), Err(ParseError::NoUnit));
        assert_eq!(parse_line("ST,GS,+  1.2.5kg"), Err(ParseError::BadNumber));
        assert_eq!(parse_line("ST,GS,+  infkg"), Err(ParseError::BadNumber));
        assert!(matches!(
            parse_line("ST,GS,+  1.250 pcs"),
            Err(ParseError::BadUnit(_))
        ));
    }

    #[test]
    fn sics_captured_lines() {
        assert_eq!(ok("S S     1.250 kg"), (Some(1.25), Flags::Stable));
        assert_eq!(ok("S S      2.168 kg"), (Some(2.168), Flags::Stable));
        assert_eq!(ok("S S      100.00 g"), (Some(0.1), Flags::Stable));
        assert_eq!(ok("S D     10.500 g"), (Some(0.0105), Flags::Unstable));
        assert_eq!(ok("SI D   -12.345 g"), (Some(-0.012345), Flags::Unstable));
        assert_eq!(ok("S +"), (None, Flags::Overload));
        assert_eq!(ok("S -"), (None, Flags::Overload));
        assert_eq!(ok("S I"), (None, Flags::Unstable));
        assert_eq!(parse_line("S L"), Err(ParseError::NotAWeight));
        assert_eq!(parse_line("I4 A \"B123\""), Err(ParseError::Unknown));
        assert_eq!(parse_line("   "), Err(ParseError::Empty));
        assert_eq!(parse_line("hello"), Err(ParseError::Unknown));
    }

    #[test]
    fn assembler_handles_split_joined_and_mixed_line_ends() {
        let mut a = LineAssembler::default();
        assert!(a.push(b"ST,GS,+  1.2").is_empty());
        let got = a.push(b"50kg\r\nST,GS,+  1.251kg\rS S 1 g\n\n\r\nUS");
        assert_eq!(
            got,
            vec![
                Line::Text("ST,GS,+  1.250kg".into()),
                Line::Text("ST,GS,+  1.251kg".into()),
                Line::Text("S S 1 g".into()),
            ]
        );
        assert_eq!(
            a.push(b",GS,+  1.0kg\n"),
            vec![Line::Text("US,GS,+  1.0kg".into())]
        );
        // Not UTF-8.
        assert_eq!(a.push(b"\xff\xfe\n"), vec![Line::Garbage]);
        // Too long: one Garbage, then the rest of that line is dropped.
        let long = vec![b'9'; MAX_LINE * 3];
        assert_eq!(a.push(&long), vec![Line::Garbage]);
        assert_eq!(a.push(b"kg\nS S 2 g\n"), vec![Line::Text("S S 2 g".into())]);
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,80}") {
            let _ = parse_line(&s);
        }

        #[test]
        fn parser_never_panics_on_near_misses(
            head in "(ST|US|OL|S|SI|XX),?(GS|NT|TR|S|D|\\+|-|I)?[, ]{0,3}[+-]? {0,3}[0-9.]{0,8} ?(kg|g|lb|oz|x)?"
        ) {
            if let Ok(r) = parse_line(&head) {
                prop_assert!(r.kg.is_none_or(f64::is_finite));
            }
        }

        #[test]
        fn st_lines_round_trip(grams in 0u32..1_000_000, stable: bool) {
            let line = format!("{},GS,+{:>8}.{:03}kg", if stable { "ST" } else { "US" }, grams / 1000, grams % 1000);
            let r = parse_line(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(r.kg.map(|k| (k * 1000.0).round() as u32), Some(grams));
            prop_assert_eq!(r.flags, if stable { Flags::Stable } else { Flags::Unstable });
        }

        #[test]
        fn assembler_is_chunking_independent(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            cut in 0usize..400,
        ) {
            let mut whole = LineAssembler::default();
            let a = whole.push(&bytes);
            let cut = cut.min(bytes.len());
            let mut split = LineAssembler::default();
            let mut b = split.push(&bytes[..cut]);
            b.extend(split.push(&bytes[cut..]));
            prop_assert_eq!(&a, &b);
            for l in a {
                if let Line::Text(t) = l {
                    prop_assert!(t.len() <= MAX_LINE && !t.contains(['\r', '\n']));
                    if let Ok(r) = parse_line(&t) {
                        prop_assert!(r.kg.is_none_or(f64::is_finite));
                    }
                }
            }
        }
    }
}
