//! From a serial scale's bytes to readings (pure, no clock): frames, the
//! format (named, or recognised by `auto`), and, for `auto`, the next speed
//! to try while only garbage arrives.
//!
//! `auto` picks a format once [`AGREE`] frames in a row parse as the same
//! format: the first frame after the port opens is often the tail of a line
//! (`1.250  kg` of `ST,+00001.250  kg` reads as an OHAUS line), and nothing is
//! reported as a weight before the choice. Formats are tried in
//! [`SerialFormat::ALL`]'s order, strict layouts before OHAUS's plain
//! "number unit".

use super::serial_parse::{parse_frame, Line, LineAssembler, ParseError, Reading};
use crate::config::scale_serial::SerialFormat;

/// Frames in a row that must agree before `auto` settles on a format.
pub const AGREE: u32 = 2;

/// Unreadable frames, with no good one since the last change of speed, after
/// which `auto` tries the next speed.
pub const HUNT_AFTER: u32 = 6;

/// The speeds `auto` tries, most common first (indicators ship at 9600 or
/// 4800; lab balances at 2400 or 1200).
pub const HUNT_BAUDS: [u32; 8] = [9600, 4800, 2400, 1200, 19200, 38400, 57600, 115200];

/// What the bytes said.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Reading(Reading),
    /// The format in use (at the start for a named format, on recognition for
    /// `auto`) and the speed it was read at.
    Format {
        format: SerialFormat,
        baud: u32,
    },
    /// Bytes that are no scale's line: noise, or the wrong speed.
    Garbage,
    /// A line of the format that cannot be read (a unit, a number).
    Unreadable(ParseError),
    /// Set the port to this speed (only `auto`, only before a format is
    /// recognised); the decoder has already forgotten the old bytes.
    TryBaud(u32),
}

#[derive(Debug)]
pub struct Decoder {
    lines: LineAssembler,
    /// The named format, or the one `auto` recognised.
    format: Option<SerialFormat>,
    auto: bool,
    baud: u32,
    /// `auto`: the last frame's format and how many frames in a row had it.
    streak: Option<(SerialFormat, u32)>,
    bad: u32,
    announced: bool,
}

impl Decoder {
    pub fn new(format: SerialFormat, baud: u32) -> Decoder {
        let auto = format == SerialFormat::Auto;
        Decoder {
            lines: LineAssembler::default(),
            format: (!auto).then_some(format),
            auto,
            baud,
            streak: None,
            bad: 0,
            announced: false,
        }
    }

    /// The format in use, once known.
    pub fn format(&self) -> Option<SerialFormat> {
        self.format
    }

    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// Bytes in, in any chunks; what they said out.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Decoded> {
        let mut out = Vec::new();
        if !self.announced {
            if let Some(format) = self.format {
                self.announced = true;
                out.push(Decoded::Format {
                    format,
                    baud: self.baud,
                });
            }
        }
        for line in self.lines.push(bytes) {
            let frame = match line {
                Line::Frame(f) => f,
                Line::Garbage => {
                    self.unreadable(&mut out, Decoded::Garbage);
                    continue;
                }
            };
            match self.format {
                Some(f) => match parse_frame(f, &frame) {
                    Ok(r) => out.push(Decoded::Reading(r)),
                    Err(ParseError::Empty | ParseError::NotAWeight) => {}
                    Err(ParseError::Unknown) => out.push(if printable(&frame) {
                        Decoded::Unreadable(ParseError::Unknown)
                    } else {
                        Decoded::Garbage
                    }),
                    Err(e) => out.push(Decoded::Unreadable(e)),
                },
                None => self.recognise(&frame, &mut out),
            }
            if let Some(Decoded::TryBaud(_)) = out.last() {
                // The rest of this chunk was read at the old speed.
                break;
            }
        }
        out
    }

    fn recognise(&mut self, frame: &[u8], out: &mut Vec<Decoded>) {
        let found = SerialFormat::ALL
            .iter()
            .skip(1)
            .find_map(|f| match parse_frame(*f, frame) {
                Ok(r) => Some((*f, Some(r))),
                Err(ParseError::NotAWeight) => Some((*f, None)),
                Err(_) => None,
            });
        let Some((format, reading)) = found else {
            self.streak = None;
            if trimmed_empty(frame) {
            } else if printable(frame) {
                // Text of no known layout (a print header, an unknown
                // maker): the speed is right, so no reason to hunt.
                out.push(Decoded::Unreadable(ParseError::Unknown));
            } else {
                self.unreadable(out, Decoded::Garbage);
            }
            return;
        };
        self.bad = 0;
        let n = match self.streak {
            Some((f, n)) if f == format => n + 1,
            _ => 1,
        };
        self.streak = Some((format, n));
        if n >= AGREE {
            self.format = Some(format);
            self.announced = true;
            out.push(Decoded::Format {
                format,
                baud: self.baud,
            });
            if let Some(r) = reading {
                out.push(Decoded::Reading(r));
            }
        }
    }

    /// Counts a bad frame; with `auto` and no format yet, moves to the next
    /// speed after [`HUNT_AFTER`] of them.
    fn unreadable(&mut self, out: &mut Vec<Decoded>, what: Decoded) {
        out.push(what);
        if !self.auto || self.format.is_some() {
            return;
        }
        self.bad += 1;
        if self.bad >= HUNT_AFTER {
            self.bad = 0;
            self.streak = None;
            self.lines = LineAssembler::default();
            let at = HUNT_BAUDS.iter().position(|b| *b == self.baud);
            self.baud = match at {
                Some(i) => HUNT_BAUDS[(i + 1) % HUNT_BAUDS.len()],
                None => HUNT_BAUDS[0],
            };
            out.push(Decoded::TryBaud(self.baud));
        }
    }
}

/// Text a person could read: a line of an unknown layout rather than noise.
fn printable(frame: &[u8]) -> bool {
    frame
        .iter()
        .all(|b| (0x20..0x7f).contains(b) || matches!(b, 0x02 | 0x03 | b'\t'))
}

fn trimmed_empty(frame: &[u8]) -> bool {
    super::serial_parse::trim(frame).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::Flags;
    use proptest::prelude::*;

    fn kgs(out: &[Decoded]) -> Vec<f64> {
        out.iter()
            .filter_map(|d| match d {
                Decoded::Reading(r) => r.kg.map(|k| (k * 1e6).round() / 1e6),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn auto_waits_for_two_agreeing_lines_and_ignores_a_torn_first_one() {
        let mut d = Decoder::new(SerialFormat::Auto, 9600);
        // A torn A&D line reads as OHAUS; the next two are A&D.
        let out = d.push(b"1.250  kg\r\nST,+00001.250  kg\r\nST,+00001.260  kg\r\n");
        assert_eq!(
            out.first(),
            Some(&Decoded::Format {
                format: SerialFormat::AandD,
                baud: 9600
            }),
            "{out:?}"
        );
        assert_eq!(kgs(&out), [1.26]);
        assert_eq!(d.format(), Some(SerialFormat::AandD));
        // From now on only A&D: an OHAUS line is unreadable.
        assert_eq!(
            d.push(b"  1.250 kg\r\n"),
            [Decoded::Unreadable(ParseError::Unknown)]
        );
    }

    #[test]
    fn each_format_is_recognised_from_its_own_lines() {
        let samples: [(SerialFormat, &[u8]); 8] = [
            (SerialFormat::StGs, b"ST,GS,+  1.250kg\r\n"),
            (SerialFormat::AandD, b"ST,+00001.250  kg\r\n"),
            (SerialFormat::MtSics, b"S S     1.250 kg\r\n"),
            (SerialFormat::MtContinuous, b"\x02-0   1250000000\r"),
            (SerialFormat::Ohaus, b"     1.250 kg    N\r\n"),
            (SerialFormat::Cas, b"ST,GS,1\xc0,+001.250 kg\r\n"),
            (SerialFormat::Yaohua, b"=052.100"),
            (SerialFormat::Ww, b"ww001.250kg\r\n"),
        ];
        for (want, line) in samples {
            let mut d = Decoder::new(SerialFormat::Auto, 9600);
            let bytes = line.repeat(4);
            let out = d.push(&bytes);
            assert_eq!(d.format(), Some(want), "{want}: {out:?}");
            assert!(kgs(&out).iter().all(|k| *k == 1.25), "{want}: {out:?}");
            assert!(!kgs(&out).is_empty(), "{want}: {out:?}");
        }
    }

    #[test]
    fn a_named_format_reads_only_its_own_and_says_so_first() {
        let mut d = Decoder::new(SerialFormat::Ww, 4800);
        let out = d.push(b"ww001.250kg\r\nST,GS,+  1.250kg\r\n\x80\x81\r\n");
        assert_eq!(
            out,
            [
                Decoded::Format {
                    format: SerialFormat::Ww,
                    baud: 4800
                },
                Decoded::Reading(Reading {
                    kg: Some(1.25),
                    flags: Flags::Stable
                }),
                Decoded::Unreadable(ParseError::Unknown),
                Decoded::Garbage,
            ]
        );
        // Never hunts: the speed is the technician's.
        let noise = vec![0x80u8; 2000];
        assert!(!d
            .push(&noise)
            .iter()
            .any(|x| matches!(x, Decoded::TryBaud(_))));
    }

    #[test]
    fn auto_hunts_through_the_speeds_on_garbage_then_stays() {
        let mut d = Decoder::new(SerialFormat::Auto, 9600);
        let noise = [0x80u8, 0xfe, b'\r'].repeat(HUNT_AFTER as usize);
        assert_eq!(d.push(&noise).last(), Some(&Decoded::TryBaud(4800)));
        assert_eq!(d.push(&noise).last(), Some(&Decoded::TryBaud(2400)));
        // Long runs without a line end are garbage too.
        let long = vec![b'x'; 96 * HUNT_AFTER as usize + 1];
        assert_eq!(d.push(&long).last(), Some(&Decoded::TryBaud(1200)));
        let out = d.push(b"ST,GS,+  1.250kg\r\nST,GS,+  1.250kg\r\n");
        assert_eq!(
            out.first(),
            Some(&Decoded::Format {
                format: SerialFormat::StGs,
                baud: 1200
            })
        );
        assert_eq!(d.baud(), 1200);
        assert!(!d
            .push(&noise)
            .iter()
            .any(|x| matches!(x, Decoded::TryBaud(_))));
        // An unknown speed starts the list over.
        let mut d = Decoder::new(SerialFormat::Auto, 300);
        assert_eq!(d.push(&noise).last(), Some(&Decoded::TryBaud(9600)));
    }

    proptest! {
        /// Cutting the same bytes into chunks anywhere reads the same.
        #[test]
        fn chunking_does_not_change_what_is_read(
            lines in proptest::collection::vec(prop_oneof![
                Just(b"ST,GS,+  1.250kg\r\n".to_vec()),
                Just(b"ST,+00001.250  kg\r\n".to_vec()),
                Just(b"S D     1.250 kg\r\n".to_vec()),
                Just(b"\x02-0   1250000000\r\x15".to_vec()),
                Just(b"     1.250 kg ?  N\r\n".to_vec()),
                Just(b"ST,GS,1\xc0,+001.250 kg\r\n".to_vec()),
                Just(b"=052.100".to_vec()),
                Just(b"wn-0000.1kg\r\n".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..30),
            ], 0..30),
            cuts in proptest::collection::vec(0usize..2000, 0..12),
            auto: bool,
        ) {
            let bytes: Vec<u8> = lines.concat();
            let format = if auto { SerialFormat::Auto } else { SerialFormat::StGs };
            let whole = Decoder::new(format, 9600).push(&bytes);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut d = Decoder::new(format, 9600);
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                pieces.extend(d.push(&bytes[at..c]));
                at = c;
            }
            // A speed change drops the rest of its chunk (read at the old
            // speed), so compare up to the first one.
            let upto = |v: &[Decoded]| -> Vec<Decoded> {
                v.iter().take_while(|x| !matches!(x, Decoded::TryBaud(_))).cloned().collect()
            };
            prop_assert_eq!(upto(&whole), upto(&pieces));
            for r in &whole {
                if let Decoded::Reading(r) = r {
                    prop_assert!(r.kg.is_none_or(f64::is_finite));
                }
            }
        }

        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for &f in SerialFormat::ALL {
                let _ = Decoder::new(f, 9600).push(&bytes);
            }
        }
    }
}
