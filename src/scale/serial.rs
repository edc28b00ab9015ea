//! The `serial` back end: a USB-serial scale in continuous-output mode, read
//! on a blocking thread through std and termios (no libudev, no extra crate).
//!
//! The port is opened raw (8N1, no flow control, no echo) at `scale.serial_baud`;
//! `scale.serial_port = "auto"` takes the first of `/dev/ttyUSB*`, then
//! `/dev/ttyACM*`. Lines go through [`LineAssembler`] and [`parse_line`];
//! unreadable lines become [`RawReading::Error`] (the state layer reports each
//! distinct cause once). When the device vanishes, [`RawReading::Disconnected`]
//! is sent and the port is reopened every [`REOPEN`] until it is back.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::sync::mpsc::UnboundedSender;

use super::serial_parse::{parse_line, Line, LineAssembler};
use super::{Flags, Opened, RawReading, ScaleSource};
use crate::config::schema::ScaleConfig;

/// Pause between attempts to reopen a vanished port.
const REOPEN: Duration = Duration::from_secs(2);

/// The termios constant of a speed in `config::validate_scale::SERIAL_BAUDS`
/// (the list config validation accepts); `None` for any other.
pub fn baud_const(baud: u32) -> Option<libc::speed_t> {
    Some(match baud {
        1200 => libc::B1200,
        2400 => libc::B2400,
        4800 => libc::B4800,
        9600 => libc::B9600,
        19200 => libc::B19200,
        38400 => libc::B38400,
        57600 => libc::B57600,
        115200 => libc::B115200,
        _ => return None,
    })
}

struct SerialScale {
    port: String,
    baud: u32,
}

pub fn build(cfg: &ScaleConfig) -> anyhow::Result<Opened> {
    if baud_const(cfg.serial_baud).is_none() {
        bail!(
            "scale.serial_baud {} is not a serial speed",
            cfg.serial_baud
        );
    }
    Ok(Opened {
        source: Box::new(SerialScale {
            port: cfg.serial_port.clone(),
            baud: cfg.serial_baud,
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
            match resolve(&self.port).and_then(|p| open_raw(&p, self.baud).map(|f| (p, f))) {
                Ok((path, file)) => {
                    tracing::info!(port = %path.display(), baud = self.baud, "scale port open");
                    announced = false;
                    read_lines(file, &path, tx);
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
fn read_lines(mut file: File, path: &Path, tx: &UnboundedSender<RawReading>) {
    let mut lines = LineAssembler::default();
    let mut buf = [0u8; 256];
    loop {
        if tx.is_closed() {
            return;
        }
        let n = match file.read(&mut buf) {
            // VTIME expired with nothing to read: still there?
            Ok(0) if path.exists() => continue,
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(port = %path.display(), "scale read failed: {e}");
                return;
            }
        };
        let at = Instant::now();
        for line in lines.push(buf.get(..n).unwrap_or_default()) {
            let msg = match line {
                Line::Garbage => {
                    RawReading::Error("the scale sends garbage (check scale.serial_baud)".into())
                }
                Line::Text(t) => match parse_line(&t) {
                    Ok(r) => match r.kg {
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
                    Err(super::serial_parse::ParseError::NotAWeight) => continue,
                    Err(super::serial_parse::ParseError::Empty) => continue,
                    Err(e) => {
                        RawReading::Error(format!("the scale sent a line it cannot read ({e})"))
                    }
                },
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

/// Opens `path` raw at `baud`, reads returning after at most 0.5 s.
fn open_raw(path: &Path, baud: u32) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let speed = baud_const(baud).with_context(|| format!("{baud} is not a serial speed"))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is open for the lifetime of `file`; `tio` is a plain C struct
    // that tcgetattr fills before any field is read.
    unsafe {
        let mut tio: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut tio) != 0 {
            bail!(
                "{} is not a serial port: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        libc::cfmakeraw(&mut tio);
        tio.c_cflag |= libc::CLOCAL | libc::CREAD;
        tio.c_cflag &= !(libc::CRTSCTS | libc::CSTOPB | libc::PARENB);
        tio.c_cc[libc::VMIN] = 0;
        tio.c_cc[libc::VTIME] = 5;
        if libc::cfsetispeed(&mut tio, speed) != 0
            || libc::cfsetospeed(&mut tio, speed) != 0
            || libc::tcsetattr(fd, libc::TCSANOW, &tio) != 0
        {
            bail!(
                "setting {} to {baud} baud: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        libc::tcflush(fd, libc::TCIFLUSH);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate_scale::SERIAL_BAUDS as BAUDS;

    #[test]
    fn every_listed_speed_has_a_constant_and_others_do_not() {
        assert!(BAUDS.iter().all(|b| baud_const(*b).is_some()));
        assert!(baud_const(9601).is_none());
    }

    #[test]
    fn a_plain_file_is_refused_with_its_name() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let err = open_raw(f.path(), 9600)
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
        let mut master: File = master;
        let file = open_raw(Path::new(&slave_path), 9600).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let path = PathBuf::from(&slave_path);
        let reader = std::thread::spawn(move || read_lines(file, &path, &tx));
        master.write_all(b"ST,GS,+  1.2").unwrap();
        master
            .write_all(b"50kg\r\nOL,GS,+  -----kg\r\n@@@@\r\n")
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            match rx.blocking_recv() {
                Some(r) => got.push(r),
                None => break,
            }
        }
        drop(rx);
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
