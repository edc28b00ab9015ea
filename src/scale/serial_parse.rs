//! Frames of a serial scale's output, and the parsers of the two oldest
//! formats (pure: bytes in, readings out). The other formats are in
//! [`super::serial_formats`]; [`super::serial_detect`] picks one.
//!
//! Formats here:
//! - The widespread "ST,GS" family (T&T, many OEM indicators, CAS's 18-byte
//!   "AND" mode): `ST,GS,+  1.250kg`. Header `ST` stable, `US` unstable, `OL`
//!   overload; mode `GS`/`GW` gross, `NT`/`NW` net (both the weight on the
//!   pan), `TR` tare (not a weight: ignored). Some models drop the comma after
//!   the mode (`ST,GS    20.7g`). Captured lines, e.g. `ST,GS,+  4.876kg\r\n` as
//!   replayed by woxuankai/project_sperm `newhub/mods/test_mod_scales.py`, and
//!   `ST,GS,   245.6 g` / `ST,GS    20.7g` from T&T QHW/NHB captures in public
//!   scale-driver notes.
//! - Mettler Toledo MT-SICS: `S S     1.250 kg` (stable), `S D ...` (dynamic),
//!   `S +` / `S -` (over / under range), `S I` (busy), also `SI`/`SIR`
//!   headers. Examples in public MT-SICS drivers: `S S      2.168 kg`,
//!   `S S      100.00 g`, `S D     10.500 g`.
//!
//! Units `kg`, `g`, `t`, `lb`/`lbs` (converted exactly: 1 lb = 0.45359237 kg),
//! `oz`. A weight without a unit is refused unless the format defines one
//! (YAOHUA's `=` frames are kg): guessing g against kg would put a price a
//! thousand times off on air.

use super::Flags;
use crate::config::scale_serial::SerialFormat;

/// Longest frame kept; scales send ~20 bytes, so anything longer is noise.
pub const MAX_LINE: usize = 96;

const STX: u8 = 0x02;
const ETX: u8 = 0x03;

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
    #[error("not a line of the scale's format")]
    Unknown,
    #[error("the weight is not a number")]
    BadNumber,
    #[error("unit {0:?} is not known (kg, g, t, lb, oz)")]
    BadUnit(String),
    #[error("the weight has no unit")]
    NoUnit,
    /// A tare line (`TR`), a piece count, or a command reply that is not a
    /// weight.
    #[error("not a weight reading")]
    NotAWeight,
}

/// Parses one frame as `format` (`Auto` reads nothing: the detector tries
/// each format in turn).
pub fn parse_frame(format: SerialFormat, frame: &[u8]) -> Result<Reading, ParseError> {
    use super::serial_formats as f;
    match format {
        SerialFormat::Auto => Err(ParseError::Unknown),
        SerialFormat::StGs => parse_st_family(text(frame)?),
        SerialFormat::MtSics => parse_sics(text(frame)?),
        SerialFormat::AandD => f::parse_a_and_d(text(frame)?),
        SerialFormat::Ohaus => f::parse_ohaus(text(frame)?),
        SerialFormat::Cas => f::parse_cas(trim(frame)),
        SerialFormat::MtContinuous => f::parse_mt_continuous(frame),
        SerialFormat::Yaohua => f::parse_yaohua(text(frame)?),
        SerialFormat::Ww => f::parse_ww(text(frame)?),
    }
}

/// The frame without STX/ETX framing and blanks around it.
pub(super) fn trim(frame: &[u8]) -> &[u8] {
    let edge = |b: &u8| matches!(*b, STX | ETX | b' ' | b'\t');
    let start = frame.iter().position(|b| !edge(b)).unwrap_or(frame.len());
    let end = frame
        .iter()
        .rposition(|b| !edge(b))
        .map_or(start, |e| e + 1);
    frame.get(start..end).unwrap_or_default()
}

/// The trimmed frame as text, when it is printable ASCII.
pub(super) fn text(frame: &[u8]) -> Result<&str, ParseError> {
    let t = trim(frame);
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    if !t.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(ParseError::Unknown);
    }
    std::str::from_utf8(t).map_err(|_| ParseError::Unknown)
}

fn parse_st_family(line: &str) -> Result<Reading, ParseError> {
    let head = line.get(..2).ok_or(ParseError::Unknown)?;
    let flags = match head {
        "ST" => Flags::Stable,
        "US" => Flags::Unstable,
        "OL" => Flags::Overload,
        _ => return Err(ParseError::Unknown),
    };
    let rest = line
        .get(2..)
        .and_then(|r| r.strip_prefix(','))
        .ok_or(ParseError::Unknown)?;
    let mode = rest.get(..2).ok_or(ParseError::Unknown)?;
    let body = rest.get(2..).ok_or(ParseError::Unknown)?;
    let body = body.strip_prefix(',').unwrap_or(body);
    match mode {
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
    }
}

fn parse_sics(line: &str) -> Result<Reading, ParseError> {
    let mut parts = line.splitn(2, ' ');
    let cmd = parts.next().ok_or(ParseError::Unknown)?;
    if !matches!(cmd, "S" | "SI" | "SIR") {
        return Err(ParseError::Unknown);
    }
    let rest = parts
        .next()
        .ok_or(ParseError::Unknown)?
        .trim_start_matches(' ');
    let (status, body) = match rest.split_once(' ') {
        Some((s, b)) => (s, b),
        None => (rest, ""),
    };
    match status {
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
    }
}

/// `+  1.250kg`, `-0.5 g`, `   245.6 g`, `2.2 lb` → kg.
pub(super) fn weight(body: &str) -> Result<f64, ParseError> {
    let (v, unit) = number(body)?;
    Ok(v * unit_kg(unit)?)
}

/// A signed decimal and what follows it (trimmed): `- 12.5 kg` → (-12.5, "kg").
pub(super) fn number(body: &str) -> Result<(f64, &str), ParseError> {
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
    let (num, rest) = body.split_at(end);
    // Only digits and one point: `f64::from_str` would also take "inf" or "1e9".
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(ParseError::BadNumber);
    }
    let v: f64 = num.parse().map_err(|_| ParseError::BadNumber)?;
    Ok((if neg { -v } else { v }, rest.trim_matches(' ')))
}

/// kg per `unit`.
pub(super) fn unit_kg(unit: &str) -> Result<f64, ParseError> {
    Ok(match unit {
        "" => return Err(ParseError::NoUnit),
        "kg" | "KG" | "Kg" => 1.0,
        "g" | "G" => 0.001,
        "t" | "T" => 1000.0,
        "lb" | "LB" | "lbs" | "LBS" => 0.453_592_37,
        "oz" | "OZ" => 0.028_349_523_125,
        other => {
            return Err(ParseError::BadUnit(other.chars().take(8).collect()));
        }
    })
}

/// What the assembler hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Frame(Vec<u8>),
    /// A frame longer than [`MAX_LINE`] (dropped up to its end).
    Garbage,
}

/// Bytes in arbitrary chunks → frames. CR, LF and CRLF end a frame; so does a
/// `=` that follows a frame of only digits, points, signs and blanks (YAOHUA's
/// continuous output has no line end: each frame starts with `=`). Empty
/// frames are skipped; a frame is bounded by [`MAX_LINE`]. Byte by byte, so
/// how the bytes are cut into chunks changes nothing.
#[derive(Debug, Default)]
pub struct LineAssembler {
    buf: Vec<u8>,
    /// Dropping the rest of an over-long frame.
    skipping: bool,
    /// Bytes dropped since the last [`Line::Garbage`]: a stream without line
    /// ends (the wrong speed) gives one per [`MAX_LINE`] bytes.
    skipped: usize,
}

impl LineAssembler {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                self.end(&mut out);
                self.skipping = false;
            } else if b == b'=' && (self.skipping || self.numeric()) {
                self.end(&mut out);
                self.skipping = false;
                self.buf.push(b);
            } else if self.skipping {
                self.skipped += 1;
                if self.skipped == MAX_LINE {
                    self.skipped = 0;
                    out.push(Line::Garbage);
                }
            } else if self.buf.len() == MAX_LINE {
                self.buf.clear();
                self.skipping = true;
                self.skipped = 0;
                out.push(Line::Garbage);
            } else {
                self.buf.push(b);
            }
        }
        out
    }

    /// Whether the pending frame could be a YAOHUA frame (a CAS device id or
    /// a METTLER status byte may be `=`, but never after only digits).
    fn numeric(&self) -> bool {
        self.buf
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b' ' | b'='))
    }

    fn end(&mut self, out: &mut Vec<Line>) {
        if !self.skipping && !self.buf.is_empty() {
            out.push(Line::Frame(std::mem::take(&mut self.buf)));
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The two formats read before auto-detection, tried in turn.
    fn parse_line(line: &str) -> Result<Reading, ParseError> {
        match parse_frame(SerialFormat::StGs, line.as_bytes()) {
            Err(ParseError::Unknown) => parse_frame(SerialFormat::MtSics, line.as_bytes()),
            r => r,
        }
    }

    fn frame(s: &str) -> Line {
        Line::Frame(s.as_bytes().to_vec())
    }

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
                frame("ST,GS,+  1.250kg"),
                frame("ST,GS,+  1.251kg"),
                frame("S S 1 g"),
            ]
        );
        assert_eq!(a.push(b",GS,+  1.0kg\n"), vec![frame("US,GS,+  1.0kg")]);
        // Any bytes (a CAS lamp byte has its top bit set): the parsers judge.
        assert_eq!(a.push(b"\xff\xfe\n"), vec![Line::Frame(vec![0xff, 0xfe])]);
        // Too long: one Garbage per MAX_LINE bytes, and the rest of that line
        // is dropped.
        let long = vec![b'9'; MAX_LINE * 2 + 1];
        assert_eq!(a.push(&long), vec![Line::Garbage, Line::Garbage]);
        assert_eq!(a.push(b"kg\nS S 2 g\n"), vec![frame("S S 2 g")]);
        // YAOHUA: `=` starts a frame after digits, not inside a text line.
        assert_eq!(
            a.push(b"00=052.100=052.100=ST,GS,=\xc0,x\n"),
            vec![
                frame("00"),
                frame("=052.100"),
                frame("=052.100"),
                Line::Frame(b"=ST,GS,=\xc0,x".to_vec())
            ]
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,80}", bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            for &f in SerialFormat::ALL {
                let _ = parse_frame(f, s.as_bytes());
                let _ = parse_frame(f, &bytes);
            }
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
                if let Line::Frame(t) = l {
                    prop_assert!(t.len() <= MAX_LINE && !t.contains(&b'\r') && !t.contains(&b'\n'));
                    for &f in SerialFormat::ALL {
                        if let Ok(r) = parse_frame(f, &t) {
                            prop_assert!(r.kg.is_none_or(f64::is_finite));
                        }
                    }
                }
            }
        }
    }
}
