//! The `sim` back end: simulated buttons, LEDs, scale and camera behind a Unix
//! stream socket at `gpio.sim_socket`.
//!
//! Any number of clients; one command a line (parsed by [`super::sim_parse`]);
//! each answered with one line, `ok` (`ok on` / `ok off` for `led`) or
//! `error: <why>`. A line longer than [`MAX_LINE`] bytes is answered with an error
//! and the connection is closed; invalid UTF-8 is answered with an error.
//!
//! `press` and `hold` become raw edges on the same path as real pins (down now,
//! up after 80 ms or the hold time), so the debouncer and long-press classifier
//! are exercised too. `ok` is sent once the button is down; commands on one
//! button queue, with a pause after each release longer than any debounce, so
//! two `press` lines are two presses. `weight` and `camera` go to the driver as
//! [`SimEvent`]s. The LEDs record their level where `led` can read it.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Mutex;

use super::buttons::ButtonId;
use super::sim_parse::{parse_sim_line, CameraCommand, LedKind, MicCommand, SimCommand};
use super::{ButtonInput, Hardware, Led, RawEdge, Setup};

/// Longest accepted line, in bytes, without its newline.
pub const MAX_LINE: usize = 256;
/// How long `press` holds the button down.
pub const PRESS_TIME: Duration = Duration::from_millis(80);
/// Pause after a release before the next command on the same button.
const RELEASE_GAP: Duration = Duration::from_millis(120);

/// What the simulated scale and camera report to the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum SimEvent {
    /// The scale now reads this many kg.
    Weight(f64),
    Camera(CameraCommand),
    Mic(MicCommand),
    /// `encoder fail`.
    EncoderFail,
}

/// LED levels shared between the LEDs and the socket.
#[derive(Debug, Default)]
pub struct SimLeds {
    tally: AtomicBool,
    status: AtomicBool,
}

impl SimLeds {
    pub fn get(&self, which: LedKind) -> bool {
        match which {
            LedKind::Tally => self.tally.load(Ordering::Relaxed),
            LedKind::Status => self.status.load(Ordering::Relaxed),
        }
    }
}

pub struct SimLed {
    leds: Arc<SimLeds>,
    which: LedKind,
}

impl Led for SimLed {
    fn set(&mut self, on: bool) -> anyhow::Result<()> {
        match self.which {
            LedKind::Tally => self.leds.tally.store(on, Ordering::Relaxed),
            LedKind::Status => self.leds.status.store(on, Ordering::Relaxed),
        }
        Ok(())
    }
}

pub fn build(setup: Setup<'_>) -> anyhow::Result<Hardware> {
    let leds = Arc::new(SimLeds::default());
    let led = |which| -> Box<dyn Led> {
        Box::new(SimLed {
            leds: leds.clone(),
            which,
        })
    };
    Ok(Hardware {
        tally: led(LedKind::Tally),
        status: Some(led(LedKind::Status)),
        buttons: Box::new(SimButtons {
            socket: PathBuf::from(&setup.gpio.sim_socket),
            products: setup.products.iter().map(|p| p.id.clone()).collect(),
            leds,
            events: setup.sim_events,
        }),
    })
}

pub struct SimButtons {
    socket: PathBuf,
    products: Vec<String>,
    leds: Arc<SimLeds>,
    events: Option<UnboundedSender<SimEvent>>,
}

impl ButtonInput for SimButtons {
    fn start(self: Box<Self>, tx: UnboundedSender<RawEdge>) -> anyhow::Result<()> {
        let listener = bind(&self.socket)?;
        let mut locks = HashMap::new();
        locks.insert(ButtonId::GoLive, Arc::new(Mutex::new(())));
        for id in &self.products {
            locks.insert(ButtonId::Product(id.clone()), Arc::new(Mutex::new(())));
        }
        let ctx = Arc::new(Ctx {
            products: self.products,
            leds: self.leds,
            events: self.events,
            edges: tx,
            locks,
        });
        tokio::spawn(serve(listener, ctx));
        Ok(())
    }
}

/// Binds the socket: makes its directory, replaces a stale socket file, refuses
/// to replace one another process still answers on, and sets mode 0660.
fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the sim socket directory {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "{} is in use by another process (is farmcast already running?)",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; not replacing it",
            path.display()
        ),
        Err(_) => {}
    }
    let std_listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding the sim socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    std_listener
        .set_nonblocking(true)
        .context("making the sim socket non-blocking")?;
    UnixListener::from_std(std_listener).context("registering the sim socket with tokio")
}

struct Ctx {
    products: Vec<String>,
    leds: Arc<SimLeds>,
    events: Option<UnboundedSender<SimEvent>>,
    edges: UnboundedSender<RawEdge>,
    /// One lock per button: its press sequences never overlap.
    locks: HashMap<ButtonId, Arc<Mutex<()>>>,
}

async fn serve(listener: UnixListener, ctx: Arc<Ctx>) {
    loop {
        tokio::select! {
            // The driver dropped the edge receiver: the daemon is stopping.
            _ = ctx.edges.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(client(stream, ctx.clone()));
                }
                Err(e) => {
                    tracing::warn!("sim socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn client(stream: UnixStream, ctx: Arc<Ctx>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::with_capacity(MAX_LINE + 2);
    loop {
        buf.clear();
        // +2 leaves room for "\r\n" after a line of exactly MAX_LINE bytes.
        let limit = (MAX_LINE + 2) as u64;
        let n = match (&mut reader).take(limit).read_until(b'\n', &mut buf).await {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let ended = buf.last() == Some(&b'\n');
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if buf.len() > MAX_LINE {
            let msg = format!("error: line longer than {MAX_LINE} bytes\n");
            let _ = write.write_all(msg.as_bytes()).await;
            let _ = write.shutdown().await;
            return;
        }
        let answer = match std::str::from_utf8(&buf) {
            Ok(line) => run(line, &ctx).await,
            Err(_) => Err("not UTF-8".to_string()),
        };
        let line = match answer {
            Ok(Some(extra)) => format!("ok {extra}\n"),
            Ok(None) => "ok\n".to_string(),
            Err(why) => format!("error: {why}\n"),
        };
        if write.write_all(line.as_bytes()).await.is_err() || !ended {
            return;
        }
    }
}

/// Executes one line; `Ok(Some(word))` is answered `ok <word>`.
async fn run(line: &str, ctx: &Ctx) -> Result<Option<&'static str>, String> {
    match parse_sim_line(line, &ctx.products)? {
        SimCommand::Press(button) => hold(ctx, button, PRESS_TIME).await.map(|_| None),
        SimCommand::Hold(button, time) => hold(ctx, button, time).await.map(|_| None),
        SimCommand::Weight(kg) => send(ctx, SimEvent::Weight(kg), "scale"),
        SimCommand::Camera(c) => send(ctx, SimEvent::Camera(c), "camera"),
        SimCommand::Mic(c) => send(ctx, SimEvent::Mic(c), "mic"),
        SimCommand::EncoderFail => send(ctx, SimEvent::EncoderFail, "encoder"),
        SimCommand::Led(which) => Ok(Some(if ctx.leds.get(which) { "on" } else { "off" })),
    }
}

fn send(ctx: &Ctx, event: SimEvent, what: &str) -> Result<Option<&'static str>, String> {
    let Some(events) = &ctx.events else {
        return Err(format!("no simulated {what} is configured"));
    };
    events
        .send(event)
        .map(|_| None)
        .map_err(|_| format!("nothing is listening for the simulated {what}"))
}

/// Puts the button down now and releases it after `time`, in the background.
async fn hold(ctx: &Ctx, button: ButtonId, time: Duration) -> Result<(), String> {
    let lock = ctx
        .locks
        .get(&button)
        .cloned()
        .ok_or_else(|| format!("no button {button}"))?;
    let guard = lock.lock_owned().await;
    let down = RawEdge {
        button: button.clone(),
        pressed: true,
        at: Instant::now(),
    };
    ctx.edges
        .send(down)
        .map_err(|_| "the daemon is not reading buttons".to_string())?;
    let edges = ctx.edges.clone();
    tokio::spawn(async move {
        tokio::time::sleep(time).await;
        let up = RawEdge {
            button,
            pressed: false,
            at: Instant::now(),
        };
        let _ = edges.send(up);
        tokio::time::sleep(RELEASE_GAP).await;
        drop(guard);
    });
    Ok(())
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
