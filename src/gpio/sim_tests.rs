//! The sim socket end to end: a real server on a temporary socket.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::*;
use crate::config::schema::{GpioConfig, ProductConfig};
use crate::gpio::buttons::{Buttons, PressKind, DEFAULT_DEBOUNCE, DEFAULT_LONG_PRESS};

struct Sim {
    _dir: tempfile::TempDir,
    path: PathBuf,
    edges: UnboundedReceiver<RawEdge>,
    events: UnboundedReceiver<SimEvent>,
    tally: Box<dyn Led>,
}

fn start() -> Sim {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory that does not exist yet: the server must create it.
    let path = dir.path().join("run/farmcast/sim.sock");
    let gpio = GpioConfig {
        backend: "sim".parse().unwrap(),
        sim_socket: path.to_string_lossy().into_owned(),
        ..GpioConfig::default()
    };
    let products = [ProductConfig {
        id: "mussels".into(),
        name: "Fresh mussels".into(),
        unit: "kg".parse().unwrap(),
        unit_price: "30.00".into(),
        currency: "CNY".into(),
        button_pin: None,
    }];
    let (ev_tx, events) = unbounded_channel();
    let hw = crate::gpio::open(Setup {
        gpio: &gpio,
        products: &products,
        sim_events: Some(ev_tx),
    })
    .expect("sim builds");
    let (tx, edges) = unbounded_channel();
    hw.buttons.start(tx).expect("sim starts");
    Sim {
        _dir: dir,
        path,
        edges,
        events,
        tally: hw.tally,
    }
}

struct Client {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    write: tokio::net::unix::OwnedWriteHalf,
}

impl Client {
    async fn connect(path: &Path) -> Client {
        let (r, w) = UnixStream::connect(path)
            .await
            .expect("connect")
            .into_split();
        Client {
            lines: BufReader::new(r).lines(),
            write: w,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> Option<String> {
        self.write.write_all(bytes).await.ok()?;
        tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
            .await
            .ok()?
            .ok()?
    }

    async fn send(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\n").as_bytes())
            .await
            .unwrap_or_else(|| "<closed>".into())
    }
}

/// Classifies the next `count` edges (waiting for them, not for a time).
async fn presses(
    edges: &mut UnboundedReceiver<RawEdge>,
    count: usize,
) -> Vec<(ButtonId, PressKind)> {
    let mut b = Buttons::new(DEFAULT_DEBOUNCE, DEFAULT_LONG_PRESS);
    for _ in 0..count {
        let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(20), edges.recv()).await else {
            break;
        };
        // As the driver does: settle what is due before the new edge.
        b.handle_timeout(e.at);
        b.edge(&e.button, e.at, e.pressed);
    }
    b.handle_timeout(Instant::now() + Duration::from_secs(120));
    std::iter::from_fn(|| b.poll_event())
        .map(|e| (e.button, e.kind))
        .collect()
}

#[tokio::test]
async fn every_command_is_answered_and_forwarded() {
    let mut sim = start();
    let mode = std::fs::metadata(&sim.path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    let mut c = Client::connect(&sim.path).await;

    assert_eq!(c.send("press go_live").await, "ok");
    assert_eq!(c.send("press product:mussels").await, "ok");
    assert_eq!(c.send("press go_live").await, "ok");
    let got = presses(&mut sim.edges, 6).await;
    // Each button keeps its own order; across buttons a product press (which
    // fires when it settles) may come before the end of a go-live press
    // (classified on release) that started earlier.
    let of = |b: ButtonId| -> Vec<PressKind> {
        got.iter()
            .filter(|(id, _)| *id == b)
            .map(|(_, k)| *k)
            .collect()
    };
    assert_eq!(
        of(ButtonId::GoLive),
        vec![
            PressKind::Down,
            PressKind::Short,
            PressKind::Down,
            PressKind::Short
        ]
    );
    assert_eq!(
        of(ButtonId::Product("mussels".into())),
        vec![PressKind::Short]
    );
    assert_eq!(got.len(), 5, "{got:?}");

    assert_eq!(c.send("hold go_live 0.3").await, "ok");
    let edges: Vec<bool> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            if let Ok(Some(e)) =
                tokio::time::timeout(Duration::from_secs(5), sim.edges.recv()).await
            {
                v.push(e.pressed);
            }
        }
        v
    };
    assert_eq!(edges, vec![true, false]);

    assert_eq!(c.send("weight 1.250").await, "ok");
    assert_eq!(c.send("camera stall").await, "ok");
    assert_eq!(sim.events.recv().await, Some(SimEvent::Weight(1.25)));
    assert_eq!(
        sim.events.recv().await,
        Some(SimEvent::Camera(CameraCommand::Stall))
    );

    assert_eq!(c.send("led tally").await, "ok off");
    sim.tally.set(true).expect("led");
    assert_eq!(c.send("led tally").await, "ok on");
    assert_eq!(c.send("led status").await, "ok off");

    let e = c.send("press product:fish").await;
    assert!(e.starts_with("error: ") && e.contains("mussels"), "{e}");
    assert!(c.send("hold go_live 61").await.starts_with("error: "));
    assert!(c.send("fly away").await.starts_with("error: "));
    let e = c.send_raw(b"press \xff\xfe\n").await.unwrap_or_default();
    assert_eq!(e, "error: not UTF-8");
    // Still usable after errors.
    assert_eq!(c.send("led status").await, "ok off");
}

#[tokio::test]
async fn long_hold_classifies_as_long() {
    let mut sim = start();
    let mut c = Client::connect(&sim.path).await;
    assert_eq!(c.send("hold go_live 2.1").await, "ok");
    let got = presses(&mut sim.edges, 2).await;
    assert_eq!(
        got,
        vec![
            (ButtonId::GoLive, PressKind::Down),
            (ButtonId::GoLive, PressKind::Long)
        ]
    );
}

#[tokio::test]
async fn overlong_line_is_refused_and_closed_and_others_keep_working() {
    let sim = start();
    let mut a = Client::connect(&sim.path).await;
    let mut b = Client::connect(&sim.path).await;
    let long = format!("press {}\n", "x".repeat(400));
    let answer = a.send_raw(long.as_bytes()).await.unwrap_or_default();
    assert!(answer.starts_with("error: line longer than"), "{answer}");
    assert_eq!(a.send("led tally").await, "<closed>");
    assert_eq!(b.send("led tally").await, "ok off");
}

#[tokio::test]
async fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sim.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let listener = bind(&path);
    assert!(listener.is_ok());
    // A socket someone still answers on is not taken over.
    let again = bind(&path).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(again.contains("in use"), "{again}");
    // A regular file is never removed.
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").expect("write");
    assert!(bind(&file).is_err());
    assert!(file.exists());
}
