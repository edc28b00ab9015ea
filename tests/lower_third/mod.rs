//! Is the lower third's text on air in its own glyphs, or as missing-glyph
//! boxes? The recording is compared with textoverlay's own rendering of the
//! text, set up as the daemon sets it up, once with the machine's fonts and
//! once with a fontconfig that has no CJK font (Pango's hex boxes): over the
//! name's area, the strokes on air must match the first and not the second.

use std::path::{Path, PathBuf};

/// The lower third's font size at a picture height: 16 pt at 720p, at
/// least 10 (`font_pt` in src/media/plan.rs).
fn lower_pt(height: u32) -> u32 {
    (16 * height / 720).max(10)
}

/// Luma above which a pixel is a glyph's stroke: textoverlay draws white
/// text; the picture under its shaded box is darkened, and the snow of the
/// test pattern averages to mid-grey over a window.
const INK: f64 = 160.0;

/// `text` rendered at full size by textoverlay as the daemon sets it up
/// (same font, size, placement, shading) on a black picture, as gray
/// pixels. `fontconfig`: a fontconfig file to render with instead of the
/// machine's fonts (one without CJK fonts gives missing-glyph boxes).
fn render_reference(
    text: &str,
    (width, height): (u32, u32),
    fontconfig: Option<&Path>,
    dir: &Path,
) -> Vec<u8> {
    let out = dir.join(format!("ref-{}.gray", fontconfig.is_some()));
    let mut cmd = std::process::Command::new(crate::common::require(
        "gst-launch-1.0",
        "gstreamer1.0-tools",
    ));
    // gst-launch joins its arguments into one description: quote values.
    cmd.arg("-q")
        .args(["videotestsrc", "pattern=black", "num-buffers=1", "!"])
        .arg(format!("video/x-raw,width={width},height={height}"))
        .args(["!", "textoverlay", "valignment=bottom", "halignment=left"])
        .args(["line-alignment=left", "shaded-background=true"])
        .arg(format!(
            "font-desc=\"Noto Sans CJK SC Bold {}\"",
            lower_pt(height)
        ))
        .arg(format!("text=\"{text}\""))
        .args(["!", "videoconvert", "!", "video/x-raw,format=GRAY8", "!"])
        .arg("filesink")
        .arg(format!("location={}", out.display()));
    if let Some(conf) = fontconfig {
        cmd.env("FONTCONFIG_FILE", conf);
    }
    let run = cmd.output().expect("run gst-launch-1.0");
    assert!(
        run.status.success(),
        "rendering the reference failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let px = std::fs::read(&out).expect("the reference frame");
    assert_eq!(px.len(), (width * height) as usize, "reference frame size");
    px
}

/// A fontconfig setup with the DejaVu fonts only (no CJK): what a box
/// without fonts-noto-cjk would draw, missing-glyph boxes for the name.
fn fontconfig_without_cjk(dir: &Path) -> PathBuf {
    let conf = dir.join("fonts.conf");
    let cache = dir.join("fc-cache");
    std::fs::write(
        &conf,
        format!(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n\
             <fontconfig><dir>/usr/share/fonts/truetype/dejavu</dir>\
             <cachedir>{}</cachedir></fontconfig>\n",
            cache.display()
        ),
    )
    .expect("write fonts.conf");
    conf
}

/// Pixels of `region` (indices into a full frame) brighter than [`INK`].
fn ink(px: impl Fn(usize) -> f64, region: &[usize]) -> Vec<usize> {
    region.iter().copied().filter(|&i| px(i) > INK).collect()
}

/// Intersection over union of two sorted pixel sets.
fn iou(a: &[usize], b: &[usize]) -> f64 {
    let both = a.iter().filter(|i| b.binary_search(i).is_ok()).count();
    let either = a.len() + b.len() - both;
    both as f64 / either.max(1) as f64
}

/// The product's name is on air in its own glyphs: over the name's area,
/// the strokes of the recording (mean of the frames from `from` to `to`
/// seconds) match textoverlay's own rendering of the name with the
/// machine's fonts, and not its rendering with missing-glyph boxes.
pub fn assert_name_on_air(rec: &Path, size: (u32, u32), from: f64, to: f64, name: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let with_font = render_reference(name, size, None, dir.path());
    let tofu = render_reference(
        name,
        size,
        Some(&fontconfig_without_cjk(dir.path())),
        dir.path(),
    );
    let (w, h) = (size.0 as usize, size.1 as usize);
    // The name's area: where either rendering has ink.
    let inked: Vec<usize> = (0..w * h)
        .filter(|&i| f64::from(with_font[i]) > INK || f64::from(tofu[i]) > INK)
        .collect();
    assert!(!inked.is_empty(), "the references have no text");
    let (x0, x1) = inked
        .iter()
        .fold((w, 0), |(a, b), i| (a.min(i % w), b.max(i % w)));
    let (y0, y1) = (inked[0] / w, inked[inked.len() - 1] / w);
    let region: Vec<usize> = (y0..=y1)
        .flat_map(|y| (x0..=x1).map(move |x| y * w + x))
        .collect();
    let font_ink = ink(|i| f64::from(with_font[i]), &region);
    let tofu_ink = ink(|i| f64::from(tofu[i]), &region);
    assert!(
        iou(&font_ink, &tofu_ink) < 0.5,
        "this machine draws {name:?} as missing-glyph boxes: install fonts-noto-cjk"
    );

    let gray = crate::common::ffprobe::decode_gray(rec, w, h);
    let pts: Vec<f64> = crate::common::ffprobe::frames(rec, "v")
        .iter()
        .map(|f| f.pts_time.unwrap_or(f64::NAN))
        .collect();
    let t0 = pts.first().copied().unwrap_or_default();
    let chosen: Vec<&[u8]> = gray
        .chunks_exact(w * h)
        .zip(&pts)
        .filter(|(_, &t)| t - t0 >= from && t - t0 < to)
        .map(|(f, _)| f)
        .collect();
    assert!(
        chosen.len() >= 5,
        "{} frames with the name on air",
        chosen.len()
    );
    let mean = |i: usize| chosen.iter().map(|f| f64::from(f[i])).sum::<f64>() / chosen.len() as f64;
    let on_air = ink(mean, &region);
    let (as_font, as_tofu) = (iou(&on_air, &font_ink), iou(&on_air, &tofu_ink));
    eprintln!(
        "MEASURED name strokes on air {} px in {}x{} at ({x0},{y0}); match with the font's rendering {as_font:.2}, with missing-glyph boxes {as_tofu:.2}",
        on_air.len(),
        x1 - x0 + 1,
        y1 - y0 + 1
    );
    assert!(
        as_font > 0.5 && as_font > as_tofu + 0.3,
        "the name {name:?} on air does not look like its glyphs (match {as_font:.2}) \
         rather than missing-glyph boxes ({as_tofu:.2})"
    );
}
