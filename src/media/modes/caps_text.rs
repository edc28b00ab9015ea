//! The caps text of a camera into [`CameraMode`]s: as `gst::Caps::to_string()`
//! writes it (`; ` between structures, typed values) or as
//! `gst-device-monitor-1.0` prints it (one structure a line, untyped values
//! on 1.22). Never panics; drops what it cannot read.

use super::{CameraMode, ModeFormat};

/// Split at `seps` outside brackets and quotes.
fn split_top<'a>(s: &'a str, seps: &[char]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '{' | '[' | '(' | '<' if !quoted => depth += 1,
            '}' | ']' | ')' | '>' if !quoted => depth -= 1,
            c if !quoted && depth <= 0 && seps.contains(&c) => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Drop a leading `(type)` annotation and surrounding quotes.
fn strip_type(v: &str) -> &str {
    let v = v.trim();
    let v = match (v.starts_with('('), v.find(')')) {
        (true, Some(end)) => v.get(end + 1..).unwrap_or("").trim(),
        _ => v,
    };
    v.trim_matches('"')
}

/// A field's value: one item, a `{ list }` or a `[ range ]` (step dropped).
enum Value<'a> {
    List(Vec<&'a str>),
    Range(&'a str, &'a str),
}

fn parse_value(v: &str) -> Value<'_> {
    let v = strip_type(v);
    let inner = |open: char, close: char| {
        v.strip_prefix(open)
            .and_then(|x| x.strip_suffix(close))
            .map(|x| split_top(x, &[',']).into_iter().map(strip_type).collect())
    };
    if let Some(items) = inner('{', '}') {
        return Value::List(items);
    }
    if let Some(items) = inner('[', ']') {
        let items: Vec<&str> = items;
        if let [min, max, ..] = items.as_slice() {
            return Value::Range(min, max);
        }
        return Value::List(items);
    }
    Value::List(vec![v])
}

fn parse_int(s: &str) -> Option<u32> {
    s.trim().parse::<u32>().ok().filter(|&n| n > 0)
}

fn parse_fraction(s: &str) -> Option<(i32, i32)> {
    let s = s.trim();
    let (n, d) = match s.split_once('/') {
        Some((n, d)) => (n.trim().parse().ok()?, d.trim().parse().ok()?),
        None => (s.parse().ok()?, 1),
    };
    (n >= 0 && d > 0).then_some((n, d))
}

/// A size field: (max, min) — equal unless it is a range.
fn parse_size(v: &str) -> Option<(u32, u32)> {
    match parse_value(v) {
        Value::Range(min, max) => {
            let max = parse_int(max)?;
            Some((max, parse_int(min).unwrap_or(1).min(max)))
        }
        // A list of sizes is unusual for cameras: keep the largest.
        Value::List(items) => items
            .into_iter()
            .filter_map(parse_int)
            .max()
            .map(|n| (n, n)),
    }
}

fn parse_structure(s: &str) -> Vec<CameraMode> {
    let mut parts = split_top(s, &[',']).into_iter();
    let Some(name) = parts.next() else {
        return Vec::new();
    };
    // Interlaced modes would need a deinterlacer; no camera we target needs one.
    if name.contains("Interlaced") {
        return Vec::new();
    }
    // `video/x-raw(memory:DMABuf)` → `video/x-raw`.
    let name = name.split('(').next().unwrap_or("").trim();
    let (mut width, mut height, mut rates, mut range, mut formats) =
        (None, None, Vec::new(), false, Vec::new());
    for field in parts {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key.trim() {
            "width" => width = parse_size(value),
            "height" => height = parse_size(value),
            "framerate" => match parse_value(value) {
                Value::Range(min, max) => {
                    rates = [max, min].into_iter().filter_map(parse_fraction).collect();
                    range = rates.len() == 2;
                }
                Value::List(items) => {
                    rates = items.into_iter().filter_map(parse_fraction).collect();
                }
            },
            "format" => {
                if let Value::List(items) = parse_value(value) {
                    formats = items
                        .into_iter()
                        .filter(|f| {
                            !f.is_empty()
                                && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        })
                        .map(str::to_string)
                        .collect();
                }
            }
            _ => {}
        }
    }
    let (Some((w, min_w)), Some((h, min_h))) = (width, height) else {
        return Vec::new();
    };
    let min_size = (min_w != w || min_h != h).then_some((min_w, min_h));
    let kinds: Vec<ModeFormat> = match name {
        "video/x-raw" if formats.is_empty() => vec![ModeFormat::Raw(String::new())],
        "video/x-raw" => formats.into_iter().map(ModeFormat::Raw).collect(),
        "image/jpeg" => vec![ModeFormat::Mjpeg],
        "video/x-h264" => vec![ModeFormat::H264],
        _ => Vec::new(),
    };
    kinds
        .into_iter()
        .map(|format| CameraMode {
            format,
            width: w,
            height: h,
            framerates: rates.clone(),
            rate_range: range,
            min_size,
        })
        .collect()
}

/// Every mode in a caps text; structures that are not video, or that lack a
/// size, are dropped.
pub fn parse_caps(text: &str) -> Vec<CameraMode> {
    split_top(text, &[';', '\n'])
        .into_iter()
        .flat_map(parse_structure)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn parses_typed_and_untyped_caps() {
        let modes = parse_caps(C920_H264);
        assert_eq!(modes.len(), 13);
        assert_eq!(modes[2].format, ModeFormat::Raw("YUY2".into()));
        assert_eq!((modes[2].width, modes[2].height), (1280, 720));
        assert_eq!(modes[2].framerates, vec![(10, 1), (15, 2), (5, 1)]);
        assert_eq!(modes[12].format, ModeFormat::H264);
        let modes = parse_caps(C920_BOOKWORM);
        assert_eq!(modes.len(), 8);
        assert_eq!(modes[3].framerates.first(), Some(&(30, 1)));
        assert_eq!(modes[5].format, ModeFormat::Mjpeg);
        let isp = parse_caps(PI_ISP);
        assert_eq!(isp.len(), 2);
        assert_eq!(isp[1].min_size, Some((64, 64)));
        assert!(isp[1].rate_range);
        // From the same bookworm capture: interlaced variants are dropped.
        let both = "video/x-raw, format=NV12, width=[ 64, 16384, 2 ], height=[ 64, 16384, 2 ], framerate=[ 0/1, 2147483647/1 ]
            video/x-raw(format:Interlaced), format=NV12, width=[ 64, 16384, 2 ], height=[ 64, 16384, 2 ], framerate=[ 0/1, 2147483647/1 ], interlace-mode=alternate";
        assert_eq!(parse_caps(both).len(), 1);
    }
}
