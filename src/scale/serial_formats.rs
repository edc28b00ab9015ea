//! Parsers of the serial formats beyond ST,GS and MT-SICS (pure). Each reads
//! one frame from [`super::serial_parse::LineAssembler`]; the layouts are the
//! makers' manuals', named beside each parser, with a sample line per format in
//! the tests below and in `tests/scale_formats.rs`.

use super::serial_parse::{number, unit_kg, weight, ParseError, Reading};
use super::Flags;

/// The status headers several makers share: `ST` stable, `US` unstable,
/// `OL` overload.
fn header(h: &str) -> Option<Flags> {
    Some(match h {
        "ST" => Flags::Stable,
        "US" => Flags::Unstable,
        "OL" => Flags::Overload,
        _ => return None,
    })
}

const OVERLOAD: Reading = Reading {
    kg: None,
    flags: Flags::Overload,
};

/// A&D standard format (A&D GF/GX/EK-i/FX-i manuals, "A&D standard format"):
/// two header characters (`ST`, `US`, `OL`, `QT` for a piece count), a comma,
/// nine characters of signed weight with leading zeros, three of unit:
/// `ST,+00123.45  g`, `US,-0001.278 kg`, `OL,+9999999E+19`.
pub fn parse_a_and_d(line: &str) -> Result<Reading, ParseError> {
    let (head, body) = line.split_at_checked(3).ok_or(ParseError::Unknown)?;
    let head = head.strip_suffix(',').ok_or(ParseError::Unknown)?;
    // The data starts with its sign (or a digit, or a blank): not `GS,` as in
    // the ST,GS family.
    if !body.starts_with(['+', '-', ' ']) && !body.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(ParseError::Unknown);
    }
    if head == "QT" {
        return Err(ParseError::NotAWeight);
    }
    let flags = header(head).ok_or(ParseError::Unknown)?;
    if flags == Flags::Overload {
        return Ok(OVERLOAD);
    }
    let (v, unit) = number(body)?;
    if matches!(unit, "PC" | "pc" | "%") {
        return Err(ParseError::NotAWeight);
    }
    Ok(Reading {
        kg: Some(v * unit_kg(unit)?),
        flags,
    })
}

/// OHAUS print lines (Scout, Adventurer, Ranger, Navigator manuals, "print
/// format"): the weight right-aligned with its sign, a blank, the unit, then
/// `?` while the reading is unstable and the mode (`G`, `N`/`NET`; `T` is a
/// tare print): `     1.250 kg ?  N`, `    53.98 g`, `       0.01     g`.
pub fn parse_ohaus(line: &str) -> Result<Reading, ParseError> {
    let mut words = line.split_ascii_whitespace().peekable();
    let mut num = String::new();
    if words.peek() == Some(&"-") {
        num.push('-');
        words.next();
    }
    let first = words.next().ok_or(ParseError::Empty)?;
    if !first
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.')
    {
        return Err(ParseError::Unknown);
    }
    num.push_str(first);
    let (v, rest) = number(&num)?;
    // The unit is a word of its own; a number glued to its unit is another
    // maker's line.
    if !rest.is_empty() {
        return Err(ParseError::Unknown);
    }
    let unit = words.next().ok_or(ParseError::NoUnit)?;
    let per_kg = unit_kg(unit)?;
    let mut flags = Flags::Stable;
    for w in words {
        match w {
            "?" => flags = Flags::Unstable,
            "*" | "G" | "N" | "NET" | "GROSS" | "GR" => {}
            "T" | "TARE" | "PT" => return Err(ParseError::NotAWeight),
            _ => return Err(ParseError::Unknown),
        }
    }
    Ok(Reading {
        kg: Some(v * per_kg),
        flags,
    })
}

/// CAS 22-byte format (CAS CI-200/CI-400/CI-600/NT-200 manuals, "CAS 22
/// bytes"): header (`ST`/`US`/`OL`), `,`, `GS`/`NT`, `,`, one byte of device
/// id, one lamp-status byte (top bit set: not text), `,`, eight bytes of
/// weight, a blank, the unit (`kg`, ` t`), CR LF.
pub fn parse_cas(frame: &[u8]) -> Result<Reading, ParseError> {
    let ascii = |r: std::ops::Range<usize>| {
        frame
            .get(r)
            .filter(|b| b.iter().all(|c| (0x20..0x7f).contains(c)))
            .and_then(|b| std::str::from_utf8(b).ok())
    };
    let (Some(head), Some(mode), Some(data)) = (ascii(0..6), ascii(8..9), ascii(9..frame.len()))
    else {
        return Err(ParseError::Unknown);
    };
    let flags = header(head.get(..2).unwrap_or_default()).ok_or(ParseError::Unknown)?;
    if !matches!(head.get(2..), Some(",GS," | ",NT," | ",GW," | ",NW,")) || mode != "," {
        return Err(ParseError::Unknown);
    }
    if flags == Flags::Overload {
        return Ok(OVERLOAD);
    }
    weight(data).map(|kg| Reading {
        kg: Some(kg),
        flags,
    })
}

/// METTLER TOLEDO standard continuous output (IND-series and 8142 manuals,
/// "standard continuous output"): STX, status words A, B, C, six digits of
/// weight and six of tare (no sign, no point: leading digits may be blanks),
/// CR, and an optional checksum byte (which then leads the next frame, so the
/// frame is read from its last STX).
///
/// - A, bits 0-2: where the point is (0 → ×100, 1 → ×10, 2 → ×1, 3 → 0.1 ...
///   7 → 0.00001); bit 5 always set.
/// - B: bit 1 negative, bit 2 out of range, bit 3 in motion, bit 4 kg (else
///   lb); bit 5 always set.
/// - C, bits 0-2: 0 → lb/kg as B says, 1 → g, 2 → t, 3 → oz; bit 5 always set.
pub fn parse_mt_continuous(frame: &[u8]) -> Result<Reading, ParseError> {
    let start = frame
        .iter()
        .rposition(|b| *b == 0x02)
        .ok_or(ParseError::Unknown)?;
    let body = frame.get(start + 1..).unwrap_or_default();
    let [a, b, c, digits @ ..] = body else {
        return Err(ParseError::Unknown);
    };
    if digits.len() != 12 || [a, b, c].iter().any(|s| **s & 0xa0 != 0x20) {
        return Err(ParseError::Unknown);
    }
    let (w, tare) = digits.split_at(6);
    let digits_ok = |d: &[u8]| d.iter().all(|x| x.is_ascii_digit() || *x == b' ');
    if !digits_ok(w) || !digits_ok(tare) || !w.iter().any(u8::is_ascii_digit) {
        return Err(ParseError::Unknown);
    }
    if b & 0x04 != 0 {
        return Ok(OVERLOAD);
    }
    let n: f64 = w
        .iter()
        .filter(|x| x.is_ascii_digit())
        .fold(0.0, |acc, x| acc * 10.0 + f64::from(x - b'0'));
    let scale = match a & 0x07 {
        0 => 100.0,
        1 => 10.0,
        2 => 1.0,
        3 => 0.1,
        4 => 0.01,
        5 => 0.001,
        6 => 0.0001,
        _ => 0.00001,
    };
    let per_kg = match c & 0x07 {
        0 if b & 0x10 != 0 => 1.0,
        0 => unit_kg("lb")?,
        1 => unit_kg("g")?,
        2 => unit_kg("t")?,
        3 => unit_kg("oz")?,
        other => return Err(ParseError::BadUnit(format!("unit code {other}"))),
    };
    let v = n * scale * per_kg;
    Ok(Reading {
        kg: Some(if b & 0x02 != 0 { -v } else { v }),
        flags: if b & 0x08 != 0 {
            Flags::Unstable
        } else {
            Flags::Stable
        },
    })
}

/// YAOHUA XK3190-A9 continuous output (its manual, communication mode
/// `tF = 0`): no line end; each frame is `=` and the seven displayed
/// characters, lowest digit first: `1.250` shown as `001.250` is sent as
/// `=052.100`. The indicator weighs in kg and sends no unit or stability.
pub fn parse_yaohua(line: &str) -> Result<Reading, ParseError> {
    let digits = line.strip_prefix('=').ok_or(ParseError::Unknown)?;
    if digits.is_empty() || digits.len() > 8 {
        return Err(ParseError::Unknown);
    }
    let shown: String = digits.chars().rev().collect();
    let (v, rest) = number(&shown)?;
    if !rest.is_empty() {
        return Err(ParseError::Unknown);
    }
    Ok(Reading {
        kg: Some(v),
        flags: Flags::Stable,
    })
}

/// The continuous lines of price-computing scales and YAOHUA's A12 series:
/// `w`, then `w` (weight) or `n` (net) or `t` (tare, not a weight), then the
/// signed weight and its unit: `ww000.000kg`, `wn-0000.1kg`, `ww001.250lb`.
pub fn parse_ww(line: &str) -> Result<Reading, ParseError> {
    let body = line.strip_prefix('w').ok_or(ParseError::Unknown)?;
    let (kind, body) = body.split_at_checked(1).ok_or(ParseError::Unknown)?;
    match kind {
        "w" | "n" => {}
        "t" => return Err(ParseError::NotAWeight),
        _ => return Err(ParseError::Unknown),
    }
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return Err(ParseError::Unknown);
    }
    weight(body).map(|kg| Reading {
        kg: Some(kg),
        flags: Flags::Stable,
    })
}

#[cfg(test)]
mod tests {
    use super::super::serial_parse::parse_frame;
    use super::*;
    use crate::config::scale_serial::SerialFormat as F;

    fn ok(f: F, line: &[u8]) -> (Option<f64>, Flags) {
        let r = parse_frame(f, line).unwrap_or_else(|e| panic!("{f} {line:?}: {e}"));
        (r.kg.map(|k| (k * 1e6).round() / 1e6), r.flags)
    }

    #[test]
    fn a_and_d_lines() {
        assert_eq!(
            ok(F::AandD, b"ST,+00001.250  kg"),
            (Some(1.25), Flags::Stable)
        );
        assert_eq!(
            ok(F::AandD, b"ST,+00123.45  g"),
            (Some(0.12345), Flags::Stable)
        );
        assert_eq!(
            ok(F::AandD, b"US,-0001.278 kg"),
            (Some(-1.278), Flags::Unstable)
        );
        assert_eq!(ok(F::AandD, b"OL,+9999999E+19"), (None, Flags::Overload));
        assert_eq!(
            parse_frame(F::AandD, b"QT,+0000123 PC"),
            Err(ParseError::NotAWeight)
        );
        assert_eq!(
            parse_frame(F::AandD, b"ST,GS,+  1.250kg"),
            Err(ParseError::Unknown)
        );
    }

    #[test]
    fn ohaus_lines() {
        assert_eq!(
            ok(F::Ohaus, b"     1.250 kg ?  N"),
            (Some(1.25), Flags::Unstable)
        );
        assert_eq!(
            ok(F::Ohaus, b"    53.98 g     "),
            (Some(0.05398), Flags::Stable)
        );
        assert_eq!(
            ok(F::Ohaus, b"       0.01     g     "),
            (Some(0.00001), Flags::Stable)
        );
        assert_eq!(
            ok(F::Ohaus, b"  -   2.5 lb    G"),
            (Some(-1.133981), Flags::Stable)
        );
        assert_eq!(
            parse_frame(F::Ohaus, b"   0.500 kg    T"),
            Err(ParseError::NotAWeight)
        );
        assert_eq!(
            parse_frame(F::Ohaus, b"S S 1.250 kg"),
            Err(ParseError::Unknown)
        );
        assert_eq!(parse_frame(F::Ohaus, b"1.250kg"), Err(ParseError::Unknown));
    }

    #[test]
    fn cas_lines() {
        assert_eq!(
            ok(F::Cas, b"ST,GS,1\xc0,+001.250 kg"),
            (Some(1.25), Flags::Stable)
        );
        assert_eq!(
            ok(F::Cas, b"US,NT,1\x80,000013.5 kg"),
            (Some(13.5), Flags::Unstable)
        );
        assert_eq!(
            ok(F::Cas, b"OL,GS,1\x80,        kg"),
            (None, Flags::Overload)
        );
        assert_eq!(
            ok(F::Cas, b"ST,GS,1\xc0,00001.25  t"),
            (Some(1250.0), Flags::Stable)
        );
        assert_eq!(
            parse_frame(F::Cas, b"ST,GS,+  1.250kg"),
            Err(ParseError::Unknown)
        );
    }

    #[test]
    fn mt_continuous_frames() {
        // A: point X.XXX (5), increment x1 (bit 3), bit 5; B: kg (bit 4), bit 5;
        // C: bit 5. Weight "  1250", tare "000000".
        assert_eq!(
            ok(F::MtContinuous, b"\x02-0   1250000000"),
            (Some(1.25), Flags::Stable)
        );
        // With a checksum byte from the frame before, in motion, negative.
        assert_eq!(
            ok(F::MtContinuous, b"\x15\x02-:   1250000000"),
            (Some(-1.25), Flags::Unstable)
        );
        // Grams (C = 1), point XX (2).
        assert_eq!(
            ok(F::MtContinuous, b"\x02*0!   500000000"),
            (Some(0.5), Flags::Stable)
        );
        assert_eq!(
            ok(F::MtContinuous, b"\x02-4   1250000000"),
            (None, Flags::Overload)
        );
        assert_eq!(
            parse_frame(F::MtContinuous, b"\x02-0   125000000"),
            Err(ParseError::Unknown)
        );
        assert_eq!(
            parse_frame(F::MtContinuous, b"ST,GS,+  1.250kg"),
            Err(ParseError::Unknown)
        );
    }

    #[test]
    fn yaohua_frames() {
        assert_eq!(ok(F::Yaohua, b"=052.100"), (Some(1.25), Flags::Stable));
        assert_eq!(ok(F::Yaohua, b"=5.43210"), (Some(1234.5), Flags::Stable));
        assert_eq!(ok(F::Yaohua, b"=052.10-"), (Some(-1.25), Flags::Stable));
        assert_eq!(
            parse_frame(F::Yaohua, b"=ST,GS"),
            Err(ParseError::BadNumber)
        );
        assert_eq!(parse_frame(F::Yaohua, b"052.100"), Err(ParseError::Unknown));
    }

    #[test]
    fn ww_lines() {
        assert_eq!(ok(F::Ww, b"ww001.250kg"), (Some(1.25), Flags::Stable));
        assert_eq!(ok(F::Ww, b"wn-0000.1kg"), (Some(-0.1), Flags::Stable));
        assert_eq!(ok(F::Ww, b"ww000.000lb"), (Some(0.0), Flags::Stable));
        assert_eq!(
            parse_frame(F::Ww, b"wt000.000kg"),
            Err(ParseError::NotAWeight)
        );
        assert_eq!(parse_frame(F::Ww, b"ww001.250"), Err(ParseError::NoUnit));
    }
}
