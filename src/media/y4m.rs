//! YUV4MPEG2 clips (`video.source = "file:…/clip.y4m"`): the header line and
//! the per-frame line, parsed without IO.
//!
//! A `.y4m` clip is the demo's and the benchmark's camera. When its frames
//! are laid out as GStreamer lays out I420 (4:2:0, progressive, the width a
//! multiple of 8 and the height even), the capture reads each frame straight
//! into a pooled buffer ([`crate::media::capture`]); any other clip goes
//! through `y4mdec`, which re-packs what it must.
//!
//! Format: `YUV4MPEG2 W<w> H<h> F<n>:<d> [I<p|t|b|m|?>] [A<n>:<d>] [C<space>] [X…]\n`,
//! then per frame `FRAME[ params]\n` and the planes.

use crate::excerpt::excerpt;

/// The longest header line read, newline included. Real headers are under
/// 100 bytes; a file that has no newline in this many is not a clip.
pub const MAX_HEADER: usize = 1024;
/// The longest `FRAME` line, newline included.
pub const MAX_FRAME_LINE: usize = 256;
/// The largest picture taken, each side (8K is 7680x4320).
pub const MAX_SIDE: u32 = 8192;

const MAGIC: &[u8] = b"YUV4MPEG2";
/// The per-frame line without parameters, as nearly every writer emits it.
pub const FRAME_LINE: &[u8] = b"FRAME\n";

/// What a clip's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Y4mHeader {
    pub width: u32,
    pub height: u32,
    pub fps_n: u32,
    pub fps_d: u32,
    /// Pixel aspect ratio; `A0:0` (unknown) is taken as square.
    pub par_n: u32,
    pub par_d: u32,
    /// The `C` tag; `420jpeg` when absent, as the format says.
    pub colorspace: String,
    /// The `I` tag: `p` progressive, `?` unknown, `t`/`b`/`m` interlaced.
    pub interlace: char,
    /// Bytes of the header line, its newline included: where frame 0 starts.
    pub len: usize,
}

/// Why a clip's header was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Y4mError {
    #[error("not a YUV4MPEG2 clip (it does not start with `YUV4MPEG2 `)")]
    NotY4m,
    #[error("the header line has no end within {MAX_HEADER} bytes")]
    HeaderTooLong,
    #[error("the header has no `{0}` tag")]
    Missing(char),
    #[error("bad `{tag}` tag in the header: `{value}`")]
    BadTag { tag: char, value: String },
    #[error("a frame does not start with `FRAME`: `{0}`")]
    BadFrameLine(String),
}

impl Y4mHeader {
    /// Bytes of one frame's planes when they are packed as GStreamer's I420,
    /// or `None` when this clip needs `y4mdec` (another chroma layout,
    /// interlaced, or rows GStreamer would pad).
    ///
    /// GStreamer pads each I420 row to 4 bytes (luma and chroma) and each
    /// plane to an even number of rows; y4m packs them tight. They agree
    /// when the width is a multiple of 8 and the height is even.
    pub fn i420_frame_size(&self) -> Option<usize> {
        let chroma_420 = matches!(
            self.colorspace.as_str(),
            "420jpeg" | "420paldv" | "420mpeg2" | "420"
        );
        let progressive = matches!(self.interlace, 'p' | '?');
        let packed_like_gst = self.width.is_multiple_of(8) && self.height.is_multiple_of(2);
        (chroma_420 && progressive && packed_like_gst).then(|| {
            let (w, h) = (self.width as usize, self.height as usize);
            w * h + 2 * (w / 2) * (h / 2)
        })
    }

    /// Caps of the frames read straight from this clip.
    pub fn i420_caps(&self) -> String {
        format!(
            "video/x-raw,format=I420,width={},height={},framerate={}/{},pixel-aspect-ratio={}/{},interlace-mode=progressive",
            self.width, self.height, self.fps_n, self.fps_d, self.par_n, self.par_d
        )
    }
}

/// Parses the header line at the start of `head` (the file's first bytes, at
/// most [`MAX_HEADER`] of them are looked at).
pub fn parse_header(head: &[u8]) -> Result<Y4mHeader, Y4mError> {
    let head = &head[..head.len().min(MAX_HEADER)];
    if !head.starts_with(MAGIC) || head.get(MAGIC.len()).is_none_or(|b| *b != b' ') {
        return Err(Y4mError::NotY4m);
    }
    let end = head
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(Y4mError::HeaderTooLong)?;
    let line = &head[MAGIC.len()..end];
    let (mut width, mut height, mut fps) = (None, None, None);
    let mut par = (1, 1);
    let mut colorspace = "420jpeg".to_string();
    let mut interlace = '?';
    for token in line.split(|b| *b == b' ').filter(|t| !t.is_empty()) {
        let tag = token[0] as char;
        let value = std::str::from_utf8(&token[1..]).map_err(|_| bad(tag, &token[1..]))?;
        match tag {
            'W' => width = Some(side(tag, value)?),
            'H' => height = Some(side(tag, value)?),
            'F' => {
                let (n, d) = ratio(tag, value)?;
                if n == 0 || d == 0 {
                    return Err(bad(tag, value.as_bytes()));
                }
                fps = Some((n, d));
            }
            'A' => {
                par = match ratio(tag, value)? {
                    (0, _) | (_, 0) => (1, 1),
                    r => r,
                }
            }
            'I' => {
                interlace = match value.as_bytes() {
                    [c @ (b'p' | b't' | b'b' | b'm' | b'?')] => *c as char,
                    _ => return Err(bad(tag, value.as_bytes())),
                }
            }
            'C' => colorspace = value.to_string(),
            // `X` carries comments and extensions; anything else is ignored
            // as the format asks.
            _ => {}
        }
    }
    let (fps_n, fps_d) = fps.ok_or(Y4mError::Missing('F'))?;
    Ok(Y4mHeader {
        width: width.ok_or(Y4mError::Missing('W'))?,
        height: height.ok_or(Y4mError::Missing('H'))?,
        fps_n,
        fps_d,
        par_n: par.0,
        par_d: par.1,
        colorspace,
        interlace,
        len: end + 1,
    })
}

/// Checks a frame's line (`FRAME` and its parameters, newline included).
pub fn check_frame_line(line: &[u8]) -> Result<(), Y4mError> {
    match line.strip_prefix(b"FRAME") {
        Some(b"\n") => Ok(()),
        Some([b' ', .., b'\n']) => Ok(()),
        _ => Err(Y4mError::BadFrameLine(excerpt(&String::from_utf8_lossy(
            line,
        )))),
    }
}

fn bad(tag: char, value: &[u8]) -> Y4mError {
    Y4mError::BadTag {
        tag,
        value: excerpt(&String::from_utf8_lossy(value)),
    }
}

fn side(tag: char, value: &str) -> Result<u32, Y4mError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|v| (1..=MAX_SIDE).contains(v))
        .ok_or_else(|| bad(tag, value.as_bytes()))
}

fn ratio(tag: char, value: &str) -> Result<(u32, u32), Y4mError> {
    let (n, d) = value
        .split_once(':')
        .ok_or_else(|| bad(tag, value.as_bytes()))?;
    match (n.parse(), d.parse()) {
        (Ok(n), Ok(d)) => Ok((n, d)),
        _ => Err(bad(tag, value.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FFMPEG: &[u8] =
        b"YUV4MPEG2 W1280 H720 F30:1 Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\nFRAME\n";

    #[test]
    fn ffmpeg_header() {
        let h = parse_header(FFMPEG).unwrap();
        assert_eq!((h.width, h.height, h.fps_n, h.fps_d), (1280, 720, 30, 1));
        assert_eq!((h.par_n, h.par_d, h.interlace), (1, 1, 'p'));
        assert_eq!(h.colorspace, "420jpeg");
        assert_eq!(h.len, FFMPEG.len() - FRAME_LINE.len());
        assert_eq!(h.i420_frame_size(), Some(1280 * 720 * 3 / 2));
        assert_eq!(
            h.i420_caps(),
            "video/x-raw,format=I420,width=1280,height=720,framerate=30/1,\
             pixel-aspect-ratio=1/1,interlace-mode=progressive"
        );
    }

    #[test]
    fn defaults_when_tags_are_absent() {
        let h = parse_header(b"YUV4MPEG2 W320 H240 F30000:1001 A0:0\n").unwrap();
        assert_eq!((h.fps_n, h.fps_d), (30000, 1001));
        assert_eq!((h.par_n, h.par_d), (1, 1));
        assert_eq!((h.colorspace.as_str(), h.interlace), ("420jpeg", '?'));
        assert_eq!(h.i420_frame_size(), Some(320 * 240 * 3 / 2));
    }

    /// Clips whose frames GStreamer would lay out differently go to y4mdec.
    #[test]
    fn other_layouts_are_left_to_y4mdec() {
        for head in [
            "YUV4MPEG2 W1280 H720 F30:1 C422\n",
            "YUV4MPEG2 W1280 H720 F30:1 Cmono\n",
            "YUV4MPEG2 W1280 H720 F30:1 C420p10\n",
            "YUV4MPEG2 W1280 H720 F30:1 It\n",
            "YUV4MPEG2 W1284 H720 F30:1\n",
            "YUV4MPEG2 W1276 H720 F30:1\n",
            "YUV4MPEG2 W1280 H719 F30:1\n",
        ] {
            let h = parse_header(head.as_bytes()).unwrap();
            assert_eq!(h.i420_frame_size(), None, "{head}");
        }
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        let cases: [(&[u8], Y4mError); 8] = [
            (b"RIFF....", Y4mError::NotY4m),
            (b"YUV4MPEG2W1 H1 F1:1\n", Y4mError::NotY4m),
            (b"YUV4MPEG2 W320 H240 F30:1", Y4mError::HeaderTooLong),
            (b"YUV4MPEG2 H240 F30:1\n", Y4mError::Missing('W')),
            (b"YUV4MPEG2 W320 F30:1\n", Y4mError::Missing('H')),
            (b"YUV4MPEG2 W320 H240\n", Y4mError::Missing('F')),
            (
                b"YUV4MPEG2 W0 H240 F30:1\n",
                Y4mError::BadTag {
                    tag: 'W',
                    value: "0".into(),
                },
            ),
            (
                b"YUV4MPEG2 W320 H240 F30:0\n",
                Y4mError::BadTag {
                    tag: 'F',
                    value: "30:0".into(),
                },
            ),
        ];
        for (head, want) in cases {
            assert_eq!(
                parse_header(head),
                Err(want),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        // A huge side is refused before any frame size is computed from it.
        assert!(matches!(
            parse_header(b"YUV4MPEG2 W99999999999 H240 F30:1\n"),
            Err(Y4mError::BadTag { tag: 'W', .. })
        ));
        assert!(matches!(
            parse_header(b"YUV4MPEG2 W9000 H240 F30:1\n"),
            Err(Y4mError::BadTag { tag: 'W', .. })
        ));
    }

    /// A header with no newline in its first MAX_HEADER bytes is refused
    /// even when one comes later: nothing past the bound is read.
    #[test]
    fn the_header_is_bounded() {
        let mut head = b"YUV4MPEG2 W320 H240 F30:1 X".to_vec();
        head.resize(MAX_HEADER, b'x');
        head.push(b'\n');
        assert_eq!(parse_header(&head), Err(Y4mError::HeaderTooLong));
    }

    #[test]
    fn frame_lines() {
        assert_eq!(check_frame_line(b"FRAME\n"), Ok(()));
        assert_eq!(check_frame_line(b"FRAME Ixyz\n"), Ok(()));
        for bad in [
            &b"FRAMX\n"[..],
            b"FRAME",
            b"FRAMEX\n",
            b"\x00\x01\x02\x03\x04\x05",
        ] {
            assert!(
                matches!(check_frame_line(bad), Err(Y4mError::BadFrameLine(_))),
                "{bad:?}"
            );
        }
        let Err(Y4mError::BadFrameLine(echo)) = check_frame_line(&[b'\x1b'; MAX_FRAME_LINE]) else {
            panic!("a line of escapes is not a frame line");
        };
        // Each escape prints as up to 8 characters (`\u{1b}`).
        assert!(
            echo.len() <= crate::excerpt::EXCERPT_CHARS * 8 + 20 && echo.ends_with("(256 bytes)"),
            "{echo}"
        );
    }

    proptest! {
        /// Whatever the file holds, the parser answers without panicking, and
        /// what it takes has sane sides and rate.
        #[test]
        fn any_bytes_are_answered(head in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(h) = parse_header(&head) {
                prop_assert!((1..=MAX_SIDE).contains(&h.width));
                prop_assert!((1..=MAX_SIDE).contains(&h.height));
                prop_assert!(h.fps_n > 0 && h.fps_d > 0 && h.par_n > 0 && h.par_d > 0);
                prop_assert!(h.len <= MAX_HEADER);
            }
            let _ = check_frame_line(&head);
        }

        /// Headers made of real tags in any order and spacing parse to what they say.
        #[test]
        fn tags_in_any_order(w in 1u32..=MAX_SIDE, h in 1u32..=MAX_SIDE, n in 1u32..120_000,
                             d in 1u32..1002,
                             order in Just(vec![0usize, 1, 2, 3]).prop_shuffle()) {
            let tags = [format!("W{w}"), format!("H{h}"), format!("F{n}:{d}"), "XANY=1".to_string()];
            let line = format!("YUV4MPEG2 {}\n", order.iter().map(|i| tags[*i].as_str()).collect::<Vec<_>>().join("  "));
            let got = parse_header(line.as_bytes()).unwrap();
            prop_assert_eq!((got.width, got.height, got.fps_n, got.fps_d), (w, h, n, d));
            prop_assert_eq!(got.len, line.len());
        }
    }
}
