//! The shell: the one place that owns clocks, sockets, signals, threads and
//! GStreamer, around the pure core (`crate::appliance`), which decides.
//!
//! One `select!` loop: whatever wakes it becomes a core [`Input`]; the core's
//! [`Output`]s are carried out in order (`effects.rs`), and an output that
//! fails at once comes back as an input in the same turn. Slow work (device
//! discovery, pipeline teardown, folder walks, snapshots, probes) runs on
//! threads and tasks and comes back through the channels below, so nothing
//! the outside does stalls the buttons, the commands or the watchdog.

mod disk_work;
mod effects;
mod fleet_link;
mod hardware;
mod media_ctl;
mod media_settings;
mod notify;
mod remote;
mod turns;
mod wake;

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::appliance::{Core, Input, Now, Start, HEALTH_TICK};
use crate::gpio::sim_parse::CameraCommand;
use crate::gpio::{Led, SimEvent};
use crate::media::capture::CameraFault;
use wake::Wake;

pub use media_settings::capture_settings;

/// Load the config and run the daemon until SIGTERM.
pub fn run(config_path: &Path) -> Result<()> {
    let loaded = fleet_link::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let config_dir = config_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    runtime.block_on(run_loop(loaded, config_dir))
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        wall: SystemTime::now(),
    }
}

/// The handles the shell keeps; none of them holds a decision.
struct Shell {
    media: media_ctl::MediaCtl,
    links: remote::Links,
    fleet: Option<crate::fleet::Session>,
    tally: Box<dyn Led>,
    status_led: Option<Box<dyn Led>>,
    /// The simulated scale's feed (sim socket `weight`), while one is open.
    sim_feed: Option<crate::scale::sim::SimScaleFeed>,
    notify: notify::Notifier,
    disk_work: disk_work::DiskWork,
    media_tx: mpsc::UnboundedSender<crate::media::MediaEvent>,
    edge_tx: mpsc::UnboundedSender<crate::gpio::RawEdge>,
    sim_tx: mpsc::UnboundedSender<SimEvent>,
    scale_tx: mpsc::UnboundedSender<crate::scale::RawReading>,
    probe_tx: mpsc::UnboundedSender<String>,
    /// The phone page's side of the bridge (status, preview, scale, code).
    web: Option<crate::web::Handle>,
    /// How long the loop's turns take (status `loop`).
    turns: turns::TurnStats,
    /// What the current turn did, for the turn statistics.
    turn: turns::Turn,
    /// The link memory being written (joined before the process exits: the
    /// show's end is also the daemon's at a SIGTERM).
    link_writes: Vec<std::thread::JoinHandle<()>>,
    exit: bool,
}

async fn run_loop(loaded: fleet_link::Loaded, config_dir: std::path::PathBuf) -> Result<()> {
    let fleet_link::Loaded {
        mut config,
        session,
        reported,
    } = loaded;
    // The farmer's product edits and pasted servers from the phone page: a
    // layer over all others.
    crate::web::products::apply_saved(&mut config);
    crate::web::push::apply_saved_servers(&mut config);
    crate::media::init()?;
    if let Some(ca) = &config.live.tls_ca_file {
        // A bad file leaves the system's CAs: rtmps:// then says which
        // certificate it refused, and the rest of the box runs.
        if let Err(e) = crate::media::tls_trust::trust_only(std::path::Path::new(ca)) {
            tracing::error!("live.tls_ca_file: {e:#}");
        }
    }
    let (media_tx, mut media_rx) = mpsc::unbounded_channel();
    let (edge_tx, mut edge_rx) = mpsc::unbounded_channel();
    let (sim_tx, mut sim_rx) = mpsc::unbounded_channel();
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<String>();
    let (scale_tx, mut scale_rx) = mpsc::unbounded_channel();
    let (disk_tx, mut disk_rx) = mpsc::unbounded_channel();
    tracing::info!(device = %config.device_id, destinations = config.destinations.len(), "farmcast starting");
    if !crate::tcp_nodelay::interposed() {
        // Built without build.rs's export: every RTMP start waits out delayed ACKs.
        tracing::warn!("TCP_NODELAY is not applied to GStreamer's connections: going live takes about 130 ms longer");
    }
    // The phone page (src/web): its requests arrive on `web_rx`.
    let (web, mut web_rx) = crate::web::start(&config, &config_dir).unzip();
    let mut shell = Shell {
        // Built by the core's first `Rebuild`.
        media: media_ctl::MediaCtl::idle(&config, media_tx.clone()),
        links: remote::Links::default(),
        tally: Box::new(hardware::NullLed),
        status_led: None,
        sim_feed: None,
        notify: notify::Notifier::new(),
        disk_work: disk_work::DiskWork::spawn(disk_tx),
        media_tx,
        edge_tx,
        sim_tx,
        scale_tx,
        probe_tx,
        turns: turns::TurnStats::default(),
        turn: turns::Turn::default(),
        link_writes: Vec::new(),
        exit: false,
        fleet: None,
        web,
    };
    let start = Start {
        config_version: session.as_ref().map_or(0, |s| s.config_version()),
        fleet: session.is_some(),
        reported,
        seed: u64::from(std::process::id())
            ^ SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        config,
    };
    shell.fleet = session;
    let mut core = Core::new(now(), start);
    let links = crate::media::abr::memory::path_in(std::path::Path::new(&core.config().state_dir));
    let (rates, warning) = crate::media::abr::memory::load(&links);
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    shell.drain(&mut core, now(), VecDeque::from([Input::LinkMemory(rates)]));
    let mut incoming = shell.links.new_incoming.take();

    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut next_health = Instant::now() + HEALTH_TICK;
    while !shell.exit {
        let deadline = core
            .poll_timeout()
            .map_or(next_health, |t| t.min(next_health));
        // Only receive here; the work happens below, timed from the wake.
        let wake = tokio::select! {
            // GStreamer's threads: bus errors, first bytes out, camera frames.
            Some(ev) = media_rx.recv() => Wake::Media(ev),
            // Button edges from rppal interrupts or the sim socket.
            Some(edge) = edge_rx.recv() => Wake::Edge(edge),
            // The rest of the simulated hardware.
            Some(sim) = sim_rx.recv() => Wake::Sim(sim),
            // A down server answers again.
            Some(name) = probe_rx.recv() => Wake::Probe(name),
            // Scale readings (serial, HX711 or sim).
            Some(r) = scale_rx.recv() => Wake::Scale(r),
            // Technicians' commands and fleet pushes (pending forever without MQTT).
            Some(inc) = recv_or_pending(&mut incoming) => Wake::Incoming(inc),
            // The recordings' disk thread: figures of a walk or a budget pass.
            Some(f) = disk_rx.recv() => Wake::Disk(f),
            // The farmer's phone page (pending forever with `[web]` off).
            Some(req) = recv_or_pending(&mut web_rx) => Wake::Web(req),
            // systemd stop or Ctrl-C: end the show cleanly, then exit.
            _ = sigterm.recv() => Wake::Signal,
            _ = sigint.recv() => Wake::Signal,
            _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
        };
        // One clock read per turn; the turn's work is timed from here.
        let woke = Instant::now();
        shell.turn = turns::Turn {
            input: wake.kind(),
            ..Default::default()
        };
        let mut inputs = VecDeque::new();
        match wake {
            Wake::Media(ev) => {
                let report = shell.media.on_event(ev);
                inputs.extend(shell.media.take_built().map(Input::MediaBuilt));
                inputs.extend(report.map(Input::Media));
            }
            Wake::Edge(edge) => inputs.push_back(Input::Edge {
                button: edge.button,
                pressed: edge.pressed,
                at: edge.at,
            }),
            Wake::Sim(sim) => shell.on_sim(sim),
            Wake::Probe(name) => {
                tracing::info!(destination = %name, "server reachable again");
                inputs.push_back(Input::ServerReachable(name));
            }
            Wake::Scale(r) => inputs.push_back(Input::Reading(r)),
            Wake::Incoming(crate::mqtt::Incoming::Command(c)) => {
                inputs.push_back(Input::Command(c))
            }
            Wake::Incoming(crate::mqtt::Incoming::DesiredConfig { source, payload }) => {
                inputs.push_back(Input::Push { source, payload })
            }
            Wake::Disk(f) => inputs.push_back(Input::Disk {
                used_bytes: f.used_bytes,
                free_bytes: f.free_bytes,
            }),
            Wake::Web(req) => inputs.extend(shell.on_web(&core, req)),
            Wake::Signal => inputs.push_back(Input::Shutdown),
            Wake::Timer => {}
        }
        let t = now();
        if t.at >= next_health {
            next_health = t.at + HEALTH_TICK;
            shell.turn.health = true;
            inputs.push_back(Input::Health(shell.media.sample()));
            // The phone page's live parts: the scale and the frame tap.
            if let Some(web) = &shell.web {
                web.scale(core.scale_status());
                web.preview(shell.media.capture().map(|c| c.snapshotter()));
            }
            if shell.links.trial_connected() {
                inputs.push_back(Input::MqttTrial(Ok(())));
            }
        }
        inputs.push_back(Input::Tick);
        shell.drain(&mut core, t, inputs);
        if let Some(rx) = shell.links.new_incoming.take() {
            incoming = Some(rx);
        }
        shell.end_turn(woke);
    }
    // The recorder closes its last segment on EOS; it started when the show
    // ended, so a short wait more keeps the whole stop within systemd's 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while shell.media.recorder_stopping() {
        match tokio::time::timeout_at(deadline, media_rx.recv()).await {
            Ok(Some(ev)) => {
                let _ = shell.media.on_event(ev);
            }
            _ => break,
        }
    }
    for w in shell.link_writes.drain(..) {
        let _ = w.join();
    }
    tracing::info!("stopped");
    shell.media.shutdown();
    shell.notify.stopping();
    Ok(())
}

impl Shell {
    /// Feed the inputs to the core and carry out everything it asks,
    /// feeding back what an output answers at once.
    fn drain(&mut self, core: &mut Core, now: Now, mut inputs: VecDeque<Input>) {
        loop {
            while let Some(out) = core.poll_output() {
                if let Some(input) = self.carry_out(now, out) {
                    inputs.push_back(input);
                }
            }
            match inputs.pop_front() {
                Some(input) => core.handle(now, input),
                None => break,
            }
        }
    }

    /// A phone page request as the core's input. The page checked and saved
    /// it already; what it asks of a destination is answered here from the
    /// core's config.
    fn on_web(&self, core: &Core, req: crate::web::WebRequest) -> Option<Input> {
        use crate::appliance::WebAsk;
        use crate::web::WebRequest as R;
        Some(Input::Web(match req {
            R::GoLive => WebAsk::GoLive,
            R::EndShow => WebAsk::EndShow,
            R::Tag { product_id } => WebAsk::Tag { product_id },
            R::SetPush {
                destination,
                server,
                key,
                reply,
            } => {
                let known = core
                    .config()
                    .destinations
                    .iter()
                    .any(|d| d.name == destination);
                let _ = reply.send(if known {
                    Ok(())
                } else {
                    Err("no such destination".into())
                });
                if !known {
                    return None;
                }
                WebAsk::SetPush {
                    destination,
                    server,
                    key,
                }
            }
            R::EditProduct { edit, reply } => {
                let _ = reply.send(Ok(()));
                WebAsk::EditProduct(edit)
            }
        }))
    }

    /// The simulated hardware that is not a button: camera faults and the
    /// sim scale's weight go straight to the parts they simulate.
    fn on_sim(&mut self, sim: SimEvent) {
        match sim {
            SimEvent::Camera(cmd) => {
                let fault = match cmd {
                    CameraCommand::Stall => CameraFault::Stall,
                    CameraCommand::Resume => CameraFault::Resume,
                    CameraCommand::Fail => CameraFault::Fail,
                };
                tracing::info!(?fault, "simulated camera fault");
                self.media.simulate_camera(fault);
            }
            SimEvent::Mic(cmd) => {
                let gone = cmd == crate::gpio::sim_parse::MicCommand::Fail;
                tracing::info!(gone, "simulated microphone fault");
                self.media.simulate_mic(gone);
            }
            SimEvent::EncoderFail => {
                tracing::info!("simulated encoder failure");
                self.media.simulate_encoder_failure();
            }
            SimEvent::Weight(kg) => match &self.sim_feed {
                Some(feed) => feed.set(kg),
                None => tracing::warn!("`weight` from the sim, but scale.kind is not \"sim\""),
            },
        }
    }
}

async fn recv_or_pending<T>(rx: &mut Option<tokio::sync::mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Drop for Shell {
    /// Lights off when the daemon is down: a dark light means "not running".
    fn drop(&mut self) {
        let _ = self.tally.set(false);
        if let Some(s) = &mut self.status_led {
            let _ = s.set(false);
        }
    }
}
