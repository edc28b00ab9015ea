//! The `serial` back end: a USB-serial scale in continuous-output mode, read
//! on a blocking thread through the `serialport` crate (no libudev).
//!
//! The port is opened raw, without flow control, at `scale.serial_baud` with
//! `scale.serial_parity`, `serial_data_bits` and `serial_stop_bits`;
//! `scale.serial_port = "auto"` takes the first of `/dev/ttyUSB*`, then
//! `/dev/ttyACM*`. Bytes go through the pure [`Decoder`] (format named by
//! `scale.serial_format`, or recognised with `auto`, which also moves through
//! the common speeds while it reads only garbage). Unreadable lines become
//! [`RawReading::Error`] (the state layer reports each distinct cause once);
//! the format in use is sent as [`RawReading::Format`] for status. When the
//! device vanishes, [`RawReading::Disconnected`] is sent and the port is
//! reopened every [`REOPEN`] until it is back.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits, TTYPort};
use tokio::sync::mpsc::UnboundedSender;

use super::serial_detect::{Decoded, Decoder};
use super::serial_parse::ParseError;
use super::{Flags, Opened, RawReading, ScaleSource};
use crate::config::scale_serial::{SerialFormat, SerialParity};
use crate::config::schema::ScaleConfig;
use crate::config::validate_scale::SERIAL_BAUDS;

/// Pause between attempts to reopen a vanished port.
const REOPEN: Duration = Duration::from_secs(2);

/// How long a read waits for bytes before checking the device is still there.
const READ_WAIT: Duration = Duration::from_millis(500);

/// The line settings, parsed once from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSettings {
    pub baud: u32,
    pub format: SerialFormat,
    pub parity: SerialParity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

impl LineSettings {
    pub fn from_config(cfg: &ScaleConfig) -> anyhow::Result<LineSettings> {
        if !SERIAL_BAUDS.contains(&cfg.serial_baud) {
            bail!(
                "scale.serial_baud {} is not a serial speed",
                cfg.serial_baud
            );
        }
        if !matches!(cfg.serial_data_bits, 7 | 8) || !matches!(cfg.serial_stop_bits, 1 | 2) {
            bail!("scale.serial_data_bits must be 7 or 8 and serial_stop_bits 1 or 2");
        }
        Ok(LineSettings {
            baud: cfg.serial_baud,
            format: cfg.serial_format,
            parity: cfg.serial_parity,
            data_bits: cfg.serial_data_bits,
            stop_bits: cfg.serial_stop_bits,
        })
    }
}

impl LineSettings {
    /// The usual shorthand: `8N1`, `7E2`.
    pub fn framing(&self) -> String {
        let parity = match self.parity {
            SerialParity::None => 'N',
            SerialParity::Even => 'E',
            SerialParity::Odd => 'O',
        };
        format!("{}{parity}{}", self.data_bits, self.stop_bits)
    }
}

struct SerialScale {
    port: String,
    line: LineSettings,
}

pub fn build(cfg: &ScaleConfig) -> anyhow::Result<Opened> {
    Ok(Opened {
        source: Box::new(SerialScale {
            port: cfg.serial_port.clone(),
            line: LineSettings::from_config(cfg)?,
        }),
        sim_feed: None,
        needs_calibration: false,
    })
}

impl ScaleSource for SerialScale {
    fn start(self: Box<Self>, tx: UnboundedSender<RawReading>) -> anyhow::Result<()> {
        std::thread::Builder::new()
            .name("scale-serial".into())
            .spawn(move || self.run(&tx))
            .context("starting the serial scale thread")?;
        Ok(())
    }
}

impl SerialScale {
    fn run(&self, tx: &UnboundedSender<RawReading>) {
        let mut announced = false;
        while !tx.is_closed() {
            match resolve(&self.port).and_then(|p| open_port(&p, &self.line).map(|f| (p, f))) {
                Ok((path, port)) => {
                    tracing::info!(
                        port = %path.display(),
                        baud = self.line.baud,
                        framing = %self.line.framing(),
                        format = %self.line.format,
                        "scale port open"
                    );
                    announced = false;
                    read_lines(port, &path, &self.line, tx);
                    if tx.send(RawReading::Disconnected).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if !announced {
                        tracing::warn!("scale: {e:#}; retrying every {} s", REOPEN.as_secs());
                        announced = true;
                        if tx.send(RawReading::Error(format!("{e:#}"))).is_err() {
                            return;
                        }
                    }
                }
            }
            std::thread::sleep(REOPEN);
        }
    }
}

/// Reads until the device goes away or the receiver is dropped.
fn read_lines(
    mut port: TTYPort,
    path: &Path,
    line: &LineSettings,
    tx: &UnboundedSender<RawReading>,
) {
    let mut decoder = Decoder::new(line.format, line.baud);
    let mut buf = [0u8; 256];
    loop {
        if tx.is_closed() {
            return;
        }
        let n = match port.read(&mut buf) {
            // Nothing within READ_WAIT: still there?
            Ok(0) => 0,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => 0,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(port = %path.display(), "scale read failed: {e}");
                return;
            }
        };
        if n == 0 {
            if path.exists() {
                continue;
            }
            return;
        }
        let at = Instant::now();
        for d in decoder.push(buf.get(..n).unwrap_or_default()) {
            let msg = match d {
                Decoded::Reading(r) => match r.kg {
                    Some(kg) => RawReading::Grams {
                        value: kg * 1000.0,
                        at,
                        flags: r.flags,
                    },
                    None if r.flags == Flags::Overload => RawReading::Grams {
                        value: f64::NAN,
                        at,
                        flags: Flags::Overload,
                    },
                    // Busy: nothing to say.
                    None => continue,
                },
                Decoded::Format { format, baud } => {
                    tracing::info!(%format, baud, "scale format");
                    RawReading::Format { format, baud }
                }
                Decoded::Garbage => RawReading::Error(
                    "the scale sends garbage (check scale.serial_baud, serial_parity, serial_data_bits)"
                        .into(),
                ),
                Decoded::Unreadable(ParseError::Unknown) if decoder.format().is_none() => {
                    RawReading::Error(
                        "the scale sends lines of no known format (see scale.serial_format)".into(),
                    )
                }
                Decoded::Unreadable(e) => RawReading::Error(format!(
                    "the scale sent a line it cannot read as {} ({e})",
                    decoder.format().unwrap_or(SerialFormat::Auto)
                )),
                Decoded::TryBaud(baud) => {
                    tracing::info!(baud, "scale: only garbage so far; trying another speed");
                    if let Err(e) = port.set_baud_rate(baud) {
                        tracing::warn!("scale: setting {baud} baud: {e}");
                    }
                    let _ = port.clear(ClearBuffer::Input);
                    continue;
                }
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    }
}

/// `auto` → the first USB serial device; a path → itself.
fn resolve(port: &str) -> anyhow::Result<PathBuf> {
    if port != "auto" {
        return Ok(PathBuf::from(port));
    }
    for prefix in ["ttyUSB", "ttyACM"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/dev")
            .context("listing /dev")?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path())
            .collect();
        found.sort();
        if let Some(p) = found.into_iter().next() {
            return Ok(p);
        }
    }
    bail!("no USB serial scale found (no /dev/ttyUSB* or /dev/ttyACM*); plug it in, or set scale.serial_port")
}

/// Opens `path` raw with `line`'s settings; reads return after at most
/// [`READ_WAIT`].
fn open_port(path: &Path, line: &LineSettings) -> anyhow::Result<TTYPort> {
    let meta = std::fs::metadata(path).with_context(|| format!("opening {}", path.display()))?;
    if !meta.file_type().is_char_device() {
        bail!("{} is not a serial port", path.display());
    }
    let name = path.to_string_lossy();
    serialport::new(name.as_ref(), line.baud)
        .data_bits(if line.data_bits == 7 {
            DataBits::Seven
        } else {
            DataBits::Eight
        })
        .parity(match line.parity {
            SerialParity::None => Parity::None,
            SerialParity::Even => Parity::Even,
            SerialParity::Odd => Parity::Odd,
        })
        .stop_bits(if line.stop_bits == 2 {
            StopBits::Two
        } else {
            StopBits::One
        })
        .flow_control(FlowControl::None)
        .timeout(READ_WAIT)
        .open_native()
        .with_context(|| {
            format!(
                "opening {} at {} baud {}",
                path.display(),
                line.baud,
                line.framing()
            )
        })
}

/// What `farmcast probe` found on the configured serial scale's port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SerialProbe {
    pub port: String,
    /// The format named, or the one `auto` recognised.
    pub format: Option<String>,
    pub baud: Option<u32>,
    /// Why nothing was recognised (port busy or absent, only garbage ...).
    pub error: Option<String>,
}

/// Listens on the scale's port for up to `listen` with the config's settings
/// (hunting speeds with `auto`, as the daemon does) and says which format it
/// reads. Blocking; for the CLI.
pub fn probe(cfg: &ScaleConfig, listen: Duration) -> SerialProbe {
    let mut out = SerialProbe {
        port: cfg.serial_port.clone(),
        format: None,
        baud: None,
        error: None,
    };
    if let Err(e) = listen_for_format(cfg, listen, &mut out) {
        out.error = Some(crate::excerpt::excerpt(&format!("{e:#}")));
    }
    out
}

fn listen_for_format(
    cfg: &ScaleConfig,
    listen: Duration,
    out: &mut SerialProbe,
) -> anyhow::Result<()> {
    let line = LineSettings::from_config(cfg)?;
    let path = resolve(&cfg.serial_port)?;
    out.port = path.display().to_string();
    let mut port = open_port(&path, &line)?;
    let mut decoder = Decoder::new(line.format, line.baud);
    let deadline = Instant::now() + listen;
    let mut buf = [0u8; 256];
    let mut last_problem = None;
    while Instant::now() < deadline {
        let n = match port.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => 0,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e).context("reading the scale"),
        };
        for d in decoder.push(buf.get(..n).unwrap_or_default()) {
            match d {
                // A format counts as found once one of its lines reads (for
                // `auto`, once it is recognised).
                Decoded::Reading(_) => {
                    if let Some(f) = decoder.format() {
                        out.format = Some(f.to_string());
                        out.baud = Some(decoder.baud());
                        return Ok(());
                    }
                }
                Decoded::Format { format, baud } if line.format == SerialFormat::Auto => {
                    out.format = Some(format.to_string());
                    out.baud = Some(baud);
                    return Ok(());
                }
                Decoded::Format { .. } => {}
                Decoded::Garbage => last_problem = Some("only garbage".to_string()),
                Decoded::Unreadable(e) => last_problem = Some(e.to_string()),
                Decoded::TryBaud(b) => {
                    let _ = port.set_baud_rate(b);
                    let _ = port.clear(ClearBuffer::Input);
                }
            }
        }
    }
    out.error = Some(format!(
        "nothing recognised in {} s: {}",
        listen.as_secs(),
        last_problem.as_deref().unwrap_or("no bytes")
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(format: SerialFormat) -> LineSettings {
        LineSettings {
            baud: 9600,
            format,
            parity: SerialParity::None,
            data_bits: 8,
            stop_bits: 1,
        }
    }

    #[test]
    fn settings_come_from_the_config_once() {
        let cfg = ScaleConfig {
            serial_baud: 4800,
            serial_format: SerialFormat::Cas,
            serial_parity: SerialParity::Even,
            serial_data_bits: 7,
            serial_stop_bits: 2,
            ..ScaleConfig::default()
        };
        assert_eq!(
            LineSettings::from_config(&cfg).unwrap(),
            LineSettings {
                baud: 4800,
                format: SerialFormat::Cas,
                parity: SerialParity::Even,
                data_bits: 7,
                stop_bits: 2
            }
        );
        for bad in [
            ScaleConfig {
                serial_baud: 9601,
                ..ScaleConfig::default()
            },
            ScaleConfig {
                serial_data_bits: 9,
                ..ScaleConfig::default()
            },
        ] {
            assert!(LineSettings::from_config(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_plain_file_is_refused_with_its_name() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let err = open_port(f.path(), &settings(SerialFormat::Auto))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("not a serial port"), "{err}");
    }

    /// A pseudo-terminal stands in for the USB adapter: what the "scale"
    /// writes arrives as readings.
    #[test]
    fn reads_a_pty_like_a_scale() {
        use std::io::Write;
        // SAFETY: plain libc calls on descriptors this test owns.
        let (master, slave_path) = unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(m >= 0);
            assert_eq!(libc::grantpt(m), 0);
            assert_eq!(libc::unlockpt(m), 0);
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
            let p = std::ffi::CStr::from_ptr(name.as_ptr())
                .to_string_lossy()
                .into_owned();
            (std::os::fd::FromRawFd::from_raw_fd(m), p)
        };
        let mut master: std::fs::File = master;
        let file = open_port(Path::new(&slave_path), &settings(SerialFormat::StGs)).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let path = PathBuf::from(&slave_path);
        let line = settings(SerialFormat::StGs);
        let reader = std::thread::spawn(move || read_lines(file, &path, &line, &tx));
        master.write_all(b"ST,GS,+  1.2").unwrap();
        master
            .write_all(b"50kg\r\nOL,GS,+  -----kg\r\n@@@@\r\n")
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 4 {
            match rx.blocking_recv() {
                Some(r) => got.push(r),
                None => break,
            }
        }
        drop(rx);
        assert_eq!(
            got.remove(0),
            RawReading::Format {
                format: SerialFormat::StGs,
                baud: 9600
            }
        );
        assert!(
            matches!(got.first(), Some(RawReading::Grams { value, flags: Flags::Stable, .. }) if (*value - 1250.0).abs() < 1e-6),
            "{got:?}"
        );
        assert!(
            matches!(
                got.get(1),
                Some(RawReading::Grams {
                    flags: Flags::Overload,
                    ..
                })
            ),
            "{got:?}"
        );
        assert!(matches!(got.get(2), Some(RawReading::Error(_))), "{got:?}");
        drop(master);
        let _ = reader.join();
    }
}
