//! Every serial scale format, end to end: a pseudo-terminal stands in for the
//! USB-serial adapter (its slave's path, behind a symlink, is
//! `scale.serial_port`), a writer thread plays the scale's continuous output
//! on the master, and the real daemon must read it, say in status which format
//! `auto` recognised, and price a tag from the reading (1.250 kg of mussels at
//! 30.00 CNY/kg = 37.50). Then the scale is unplugged (the master closed), the
//! link moved to a scale of the next format, and the same again.
//!
//! The sample lines follow the makers' manuals' layouts (named per line in
//! [`SAMPLES`]); what each parser reads of them is also unit-tested in
//! `src/scale/serial_formats.rs`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::config::TestConfig;
use common::observer::{topic, Observer, WAIT};
use common::{serial, wait_until, Farmcast, Mosquitto};
use serde_json::{json, Value};

/// One line of each format, weighing 1.250 kg, and where its layout is from.
const SAMPLES: &[(&str, &[u8], &str)] = &[
    (
        "st_gs",
        b"ST,GS,+  1.250kg\r\n",
        "T&T / OEM indicators; the capture replayed by woxuankai/project_sperm test_mod_scales.py",
    ),
    (
        "a_and_d",
        b"ST,+00001.250  kg\r\n",
        "A&D standard format (A&D FX-i / EK-i manuals: header, comma, 9 data, 3 unit)",
    ),
    (
        "mt_sics",
        b"S S     1.250 kg\r\n",
        "METTLER TOLEDO MT-SICS reference manual, S response",
    ),
    (
        "mt_continuous",
        b"\x02-0   1250000000\r",
        "METTLER TOLEDO standard continuous output (IND-series manuals): STX SWA SWB SWC weight tare CR, checksum added below",
    ),
    (
        "ohaus",
        b"     1.250 kg     N\r\n",
        "OHAUS Scout/Ranger print format (weight, unit, stability, mode)",
    ),
    (
        "cas",
        b"ST,GS,1\xc0,+001.250 kg\r\n",
        "CAS CI-400 / NT-200 manuals, CAS 22-byte format (device id, lamp byte)",
    ),
    (
        "yaohua",
        b"=052.100",
        "YAOHUA XK3190-A9 manual, continuous mode tF=0 (= and reversed digits)",
    ),
    (
        "ww",
        b"ww001.250kg\r\n",
        "price-computing scales / YAOHUA XK3190-A12 continuous line",
    ),
];

/// A pseudo-terminal: the master the "scale" writes to, and the slave's path.
/// The slave is put in raw mode and kept open here, so that nothing is echoed
/// back and the line stays up until the master is closed.
struct Pty {
    master: std::fs::File,
    path: PathBuf,
    slave: std::fs::File,
}

fn pty() -> Pty {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: openpty writes two fds and a NUL-terminated name into buffers
    // we own and sized as it requires.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            name.as_mut_ptr(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: tcgetattr fills `tio` before it is read; both fds are ours.
    unsafe {
        let mut tio: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave, &mut tio), 0);
        libc::cfmakeraw(&mut tio);
        assert_eq!(libc::tcsetattr(slave, libc::TCSANOW, &tio), 0);
    }
    // SAFETY: the name is NUL-terminated by openpty.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: fds openpty just gave us; the Files own them now.
    unsafe {
        Pty {
            master: std::fs::File::from_raw_fd(master),
            path: path.into(),
            slave: std::fs::File::from_raw_fd(slave),
        }
    }
}

/// METTLER's optional checksum: the two's complement of the frame's sum, 7 bits.
fn with_checksum(frame: &[u8]) -> Vec<u8> {
    let sum = frame.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let mut v = frame.to_vec();
    v.push(sum.wrapping_neg() & 0x7f);
    v
}

/// A scale sending `line` ten times a second until dropped (then it is
/// unplugged: the master closes).
struct Scale {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    slave: Option<std::fs::File>,
}

impl Scale {
    /// Links `link` to `pty`'s slave, then sends `line` on its master.
    fn plug(pty: Pty, line: Vec<u8>, link: &Path) -> Scale {
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&pty.path, link).expect("link the scale's port");
        // The slave stays open while the scale sends.
        let Pty { master, slave, .. } = pty;
        let mut s = Scale::plug_master(master, line);
        s.slave = Some(slave);
        s
    }

    fn plug_master(mut master: std::fs::File, line: Vec<u8>) -> Scale {
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                // A full buffer (nobody reading yet) is no failure of the scale.
                let _ = master.write_all(&line);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Scale {
            stop,
            thread: Some(thread),
            slave: None,
        }
    }
}

impl Drop for Scale {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn config(tc: &TestConfig, broker: u16, link: &Path, scale: &str) -> String {
    let mut t = tc.mqtt_table(broker);
    let fragment: toml::Table = toml::from_str(&format!(
        "[scale]\nkind = \"serial\"\nserial_port = {link:?}\nsettle_wait_ms = 4000\n{scale}\n\
         [[products]]\nid = \"mussels\"\nname = \"Mussels\"\nunit = \"kg\"\n\
         unit_price = \"30.00\"\ncurrency = \"CNY\"\n",
        link = link.display().to_string(),
    ))
    .expect("scale fragment");
    farmcast::config::merge(&mut t, &fragment);
    toml::to_string(&t).expect("config TOML")
}

/// Waits for a status whose scale reads 1.250 kg, stable, in `format`; tags
/// mussels and checks the price and the event.
fn priced(obs: &mut Observer, d: &Farmcast, format: &str, id: &str) -> Value {
    let st = obs.until_json("status", WAIT, |v| {
        v["scale"]["format"] == format
            && v["scale"]["stable"] == true
            && v["scale"]["weight_kg"]
                .as_f64()
                .is_some_and(|w| (w - 1.25).abs() < 0.0005)
    });
    let r = obs.command(
        id,
        json!({"cmd": "tag_product", "args": {"product_id": "mussels"}}),
    );
    assert_eq!(r["ok"], true, "{format}: tag_product: {r}\n{}", d.log());
    assert_eq!(r["result"]["price"], "37.50", "{format}: {r}");
    let ev = obs.until_json("events", WAIT, |v| v["type"] == "product_tagged");
    assert_eq!(
        (&ev["weight_kg"], &ev["price"]),
        (&json!("1.250"), &json!("37.50")),
        "{format}: {ev}"
    );
    st
}

#[test]
fn auto_reads_every_format_and_prices_a_tag_from_it() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "scale-formats", true, &[&topic("#")]);
    let tc = TestConfig::new().autostart(false);
    let link = tc.dir.path().join("ttyScale");
    let d = Farmcast::start(&config(&tc, broker.port, &link, ""));
    obs.wait_standby();

    // The first scale speaks only noise at first: `auto` moves from 9600 to
    // the next speed (a pty takes any speed, so the move shows in status).
    let Pty {
        mut master,
        path,
        slave,
    } = pty();
    std::os::unix::fs::symlink(&path, &link).expect("link the scale's port");
    assert!(
        wait_until(WAIT, || d.log().contains("scale port open")),
        "{}",
        d.log()
    );
    let noise = [0x80u8, 0xfe, b'\r'].repeat(6);
    master.write_all(&noise).expect("noise");
    assert!(
        wait_until(WAIT, || d.log().contains("trying another speed")),
        "{}",
        d.log()
    );
    let (name, line, _) = SAMPLES[0];
    let mut first = Scale::plug_master(master, line.to_vec());
    first.slave = Some(slave);
    let mut scale = Some(first);
    let st = priced(&mut obs, &d, name, "tag-0");
    assert_eq!(st["scale"]["baud"], 4800, "{st}");

    for (i, (name, line, source)) in SAMPLES.iter().enumerate().skip(1) {
        drop(scale.take());
        let line = if *name == "mt_continuous" {
            with_checksum(line)
        } else {
            line.to_vec()
        };
        // Unplugged: the old master is closed; the box reopens the link,
        // which now leads to the next scale.
        scale = Some(Scale::plug(pty(), line, &link));
        let st = priced(&mut obs, &d, name, &format!("tag-{i}"));
        assert!(st["scale"]["baud"].is_u64(), "{name} ({source}): {st}");
    }
    drop(scale);
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

/// A named format with 7 data bits, even parity and 2 stop bits: the port is
/// opened so and the format's own lines are read and priced.
#[test]
fn a_named_format_and_framing_are_used_as_written() {
    let _g = serial();
    let broker = Mosquitto::start();
    let mut obs = Observer::new(broker.port, "scale-named", true, &[&topic("#")]);
    let tc = TestConfig::new().autostart(false);
    let link = tc.dir.path().join("ttyScale");
    let p = pty();
    let master = p.master.try_clone().expect("clone master");
    let slave = p.path.clone();
    let _ = std::os::unix::fs::symlink(&slave, &link);
    let d = Farmcast::start(&config(
        &tc,
        broker.port,
        &link,
        "serial_format = \"yaohua\"\nserial_baud = 2400\nserial_parity = \"even\"\n\
         serial_data_bits = 7\nserial_stop_bits = 2\n",
    ));
    obs.wait_standby();
    assert!(
        wait_until(WAIT, || d.log().contains("scale port open")),
        "{}",
        d.log()
    );
    // Linux's pty driver forces 8 data bits and no parity on itself, so the
    // line settings are read from what the daemon says it opened.
    assert!(
        d.log().contains("framing=7E2"),
        "the port was not opened 7E2\n{}",
        d.log()
    );
    let _scale = Scale::plug_master(master, b"=052.100".to_vec());
    let st = priced(&mut obs, &d, "yaohua", "tag-y");
    assert_eq!(st["scale"]["baud"], 2400, "{st}");
    drop(p);
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

/// `farmcast probe` listens to the configured scale and names the format
/// `auto` recognises, in text and JSON.
#[test]
fn probe_names_the_format_auto_recognises() {
    let _g = serial();
    let tc = TestConfig::new().autostart(false);
    let link = tc.dir.path().join("ttyScale");
    let file = tc.dir.path().join("probe.toml");
    std::fs::write(&file, config(&tc, common::free_port(), &link, "")).expect("write config");
    let _scale = Scale::plug(pty(), b"ST,+00001.250  kg\r\n".to_vec(), &link);
    let run = |json: bool| {
        let mut cmd = std::process::Command::new(common::farmcast::BIN);
        cmd.arg("probe").arg("--config").arg(&file);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run farmcast probe");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run(false);
    assert!(
        text.contains(&format!(
            "Serial scale:\n  {}: a_and_d at 9600 baud",
            link.display()
        )),
        "{text}"
    );
    let v: Value = serde_json::from_str(&run(true)).expect("probe --json is JSON");
    assert_eq!(v["scale"]["format"], "a_and_d", "{v}");
    assert_eq!(v["scale"]["baud"], 9600, "{v}");
}
