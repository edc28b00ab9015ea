//! `farmcast probe`'s report as a technician reads it on a terminal.

use super::modes::{self, CameraMode, ModeFormat};
use super::{ProbeReport, PROBE_WANT};

/// One line per format: "MJPEG: 1920x1080@30, 1280x720@30, ..." (each size
/// with its fastest rate, in the camera's order).
fn mode_lines(modes: &[CameraMode]) -> Vec<String> {
    let mut formats: Vec<&ModeFormat> = Vec::new();
    for m in modes {
        if !formats.contains(&&m.format) {
            formats.push(&m.format);
        }
    }
    formats
        .into_iter()
        .map(|f| {
            let sizes: Vec<String> = modes
                .iter()
                .filter(|m| &m.format == f)
                .map(|m| {
                    let fastest = m
                        .framerates
                        .iter()
                        .copied()
                        .max_by(|a, b| {
                            (f64::from(a.0) / f64::from(a.1.max(1)))
                                .total_cmp(&(f64::from(b.0) / f64::from(b.1.max(1))))
                        })
                        .map(|r| format!("@{}", modes::rate_text(r)))
                        .unwrap_or_default();
                    let min = m
                        .min_size
                        .map(|(w, h)| format!("{w}x{h}-"))
                        .unwrap_or_default();
                    format!("{min}{}x{}{fastest}", m.width, m.height)
                })
                .collect();
            format!("{}: {}", modes::format_name(f), sizes.join(", "))
        })
        .collect()
}

/// The report as a technician reads it on a terminal.
pub fn render_human(r: &ProbeReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Board:      {}",
        r.board
            .as_deref()
            .unwrap_or("unknown (no /proc/device-tree/model)")
    );
    let _ = writeln!(s, "GStreamer:  {}", r.gstreamer_version);

    let _ = writeln!(s, "\nCameras:");
    if r.cameras.is_empty() {
        let _ = writeln!(s, "  none found (plug in a USB camera; check `ls /dev/video*` and that farmcast's user is in the video group)");
    }
    for c in &r.cameras {
        let _ = writeln!(
            s,
            "  {} ({})",
            c.name,
            c.device.as_deref().unwrap_or("no device path")
        );
        for line in mode_lines(&c.modes) {
            let _ = writeln!(s, "    {line}");
        }
        let (w, h, fps) = PROBE_WANT;
        let _ = writeln!(
            s,
            "    for {w}x{h}@{fps}: {}",
            c.mode_for_720p30.as_deref().unwrap_or("no usable mode")
        );
    }

    let _ = writeln!(s, "\nAudio inputs:");
    if r.audio_inputs.is_empty() {
        let _ = writeln!(
            s,
            "  none found (plug in a USB microphone or sound card; check `arecord -l`)"
        );
    }
    for a in &r.audio_inputs {
        let status = match (&a.capture_error, a.can_capture) {
            (_, true) => "captures".to_string(),
            (Some(e), false) => format!("cannot capture: {e}"),
            (None, false) => "cannot capture".to_string(),
        };
        let dev = a
            .alsa_device
            .as_deref()
            .map(|d| format!(" (audio.source = \"alsa:{d}\")"))
            .unwrap_or_default();
        let _ = writeln!(s, "  {}{dev}: {status}", a.name);
    }

    let _ = writeln!(s, "\nH.264 encoders:");
    if r.encoders.present.is_empty() {
        let _ = writeln!(
            s,
            "  none found (install gstreamer1.0-plugins-ugly for x264enc)"
        );
    }
    for e in &r.encoders.present {
        let kind = if e.hardware { "hardware" } else { "software" };
        let works = match &e.failure {
            None => "works".to_string(),
            Some(why) => format!("fails: {why}"),
        };
        let _ = writeln!(s, "  {:<14} {kind:<8}  {works}  ({})", e.element, e.package);
    }
    match (&r.encoders.auto, &r.encoders.auto_error) {
        (Some(c), _) => {
            let why = c.reason.strip_prefix("auto: ").unwrap_or(&c.reason);
            let _ = writeln!(s, "  auto picks {}: {why}", c.element);
        }
        (None, e) => {
            let _ = writeln!(s, "  auto: {}", e.as_deref().unwrap_or("nothing to pick"));
        }
    }

    let _ = writeln!(s, "\nJPEG decoders:");
    match r.jpeg_decoders.first() {
        None => {
            let _ = writeln!(s, "  none found (install gstreamer1.0-plugins-good for jpegdec; MJPEG cameras need one)");
        }
        Some(first) => {
            let _ = writeln!(
                s,
                "  {} (MJPEG cameras use {first})",
                r.jpeg_decoders.join(", ")
            );
        }
    }

    let _ = writeln!(s, "\nGPIO chips:");
    if r.gpio_chips.is_empty() {
        let _ = writeln!(s, "  none found (not a Raspberry Pi-class board, or /dev/gpiochip* hidden from this service; gpio.backend = \"sim\" works anywhere)");
    }
    for g in &r.gpio_chips {
        let _ = writeln!(s, "  {g}");
    }

    let _ = writeln!(s, "\nSerial ports:");
    if r.serial_ports.is_empty() {
        let _ = writeln!(s, "  none found (a serial scale shows up as /dev/ttyUSB* or /dev/ttyACM* when plugged in)");
    }
    for p in &r.serial_ports {
        let _ = writeln!(s, "  {p}");
    }
    s
}
