//! The driver: the one place that owns clocks, sockets, signals and GStreamer,
//! and feeds the pure show machine.
//!
//! Run-loop contract (quinn/str0m style): every input goes through
//! `Show::handle(now, input)`; after each, the driver drains
//! `Show::poll_action()` and carries the actions out; it sleeps until the
//! earliest of the machine's `poll_timeout()`, the buttons' and the LEDs'
//! next deadlines and the health tick. Actions whose execution fails at once
//! produce inputs that are fed back in the same turn.

mod commands;
mod disk_work;
mod fleet_link;
mod hardware;
mod leds;
mod media_ctl;
mod notify;
mod remote;
mod selling;
mod turns;
mod wake;
mod watchdog;

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::gpio::buttons::Buttons;
use crate::gpio::sim_parse::CameraCommand;
use crate::gpio::SimEvent;
use crate::media::capture::CameraFault;
use crate::show::{Action, Input, Show, ShowEvent, ShowSettings, State};
use wake::Wake;

pub use media_ctl::capture_settings;

/// How often the driver looks at frame counters, stalls and byte counters.
const HEALTH_TICK: Duration = Duration::from_millis(250);

/// Load the config and run the daemon until SIGTERM.
pub fn run(config_path: &Path) -> Result<()> {
    let loaded = fleet_link::load(config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(Driver::run(loaded))
}

/// How long a rebuilt pipeline has to reach standby before the config it was
/// built from is rolled back.
const TRIAL: Duration = Duration::from_secs(30);

struct Driver {
    show: Show,
    buttons: Buttons,
    media: media_ctl::MediaCtl,
    leds: leds::Leds,
    notify: notify::Notifier,
    pending: VecDeque<Input>,
    last_frames: u64,
    recorder_retry_at: Option<Instant>,
    exit: bool,
    config: Config,
    mqtt: Option<crate::mqtt::MqttHandle>,
    started: Instant,
    next_status: Instant,
    /// Encoded frames per second, measured over the last health tick.
    fps: f64,
    last_fps_at: Instant,
    selling: selling::Selling,
    abr: crate::media::abr::AbrController,
    decimation: u32,
    scale_step: u32,
    fleet: Option<crate::fleet::Session>,
    /// A config on trial after a rebuild: confirmed at standby, rolled back at the deadline.
    trial: Option<Instant>,
    /// The start-up config was saved as last known good (at the first standby).
    start_confirmed: bool,
    media_tx: mpsc::UnboundedSender<crate::media::MediaEvent>,
    /// Cheap TCP probes of down RTMP servers: (when the last one started, in flight).
    probes: std::collections::HashMap<String, Instant>,
    probe_tx: mpsc::UnboundedSender<String>,
    /// A new MQTT link's receiver, swapped in by the loop (after an MQTT change).
    new_incoming: Option<tokio::sync::mpsc::Receiver<crate::mqtt::Incoming>>,
    /// The GPIO and the scale: opened at start, reopened while missing.
    parts: hardware::Parts,
    /// Why the capture is down, while it is (status `errors.capture`).
    capture_error: Option<String>,
    /// When the show's state last changed, and when encoded frames last
    /// advanced: what the watchdog decision looks at.
    state_since: Instant,
    frames_changed_at: Instant,
    /// The watchdog is not being fed (logged once per spell).
    starving: bool,
    /// Pushed MQTT settings connecting beside the running link (remote.rs).
    mqtt_trial: Option<remote::MqttTrial>,
    /// How long the loop's turns take (status `loop`).
    turns: turns::TurnStats,
    /// The recordings' disk thread (budget passes, disk-use walks).
    disk_work: disk_work::DiskWork,
    /// The last disk-use figures: status reads these, never the disk.
    disk_usage: crate::recording::usage::UsageCache,
}

impl Driver {
    async fn run(loaded: fleet_link::Loaded) -> Result<()> {
        let fleet_link::Loaded {
            config,
            session,
            reported,
        } = loaded;
        crate::media::init()?;
        let (media_tx, mut media_rx) = mpsc::unbounded_channel();
        let (edge_tx, mut edge_rx) = mpsc::unbounded_channel();
        let (sim_tx, mut sim_rx) = mpsc::unbounded_channel();
        let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<String>();
        let (scale_tx, mut scale_rx) = mpsc::unbounded_channel();
        let (disk_tx, mut disk_rx) = mpsc::unbounded_channel();
        let disk_work = disk_work::DiskWork::spawn(disk_tx);
        let seed = u64::from(std::process::id());
        let parts = hardware::Parts {
            edges: edge_tx,
            sim: sim_tx,
            readings: scale_tx,
            gpio: hardware::Retry::new("gpio", seed ^ 0x9e37),
            scale: hardware::Retry::new("scale", seed ^ 0x7f4a),
        };
        let selling = selling::Selling::without_scale(&config);
        let (mqtt, mut incoming) = match remote::start(&config) {
            Ok(Some((h, rx))) => (Some(h), Some(rx)),
            Ok(None) => (None, None),
            // The show must go on without the technician's link.
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "MQTT not started; the box streams without it");
                (None, None)
            }
        };

        let now = Instant::now();
        let mut settings = ShowSettings::from_live(&config.live);
        settings.jitter_seed ^=
            u64::from(std::process::id()) << 17 ^ now.elapsed().as_nanos() as u64;
        let names = enabled_destinations(&config);
        let mut d = Driver {
            show: Show::new(settings, names, now),
            buttons: Buttons::new(
                Duration::from_millis(config.gpio.debounce_ms),
                Duration::from_millis(config.gpio.long_press_ms),
            ),
            media: media_ctl::MediaCtl::new(&config, media_tx.clone(), disk_work.clone()),
            // Null until the GPIO opens (just below, or on a later retry).
            leds: leds::Leds::new(
                Box::new(hardware::NullLed),
                Some(Box::new(hardware::NullLed)),
            ),
            notify: notify::Notifier::new(),
            pending: VecDeque::new(),
            last_frames: 0,
            recorder_retry_at: None,
            exit: false,
            config,
            mqtt,
            started: now,
            next_status: now,
            fps: 0.0,
            last_fps_at: now,
            selling,
            abr: crate::media::abr::AbrController::new(crate::media::abr::AbrSettings::new(1, 1)),
            decimation: 1,
            scale_step: 0,
            fleet: session,
            trial: None,
            start_confirmed: false,
            probes: std::collections::HashMap::new(),
            probe_tx,
            media_tx,
            new_incoming: None,
            parts,
            capture_error: None,
            state_since: now,
            frames_changed_at: now,
            starving: false,
            mqtt_trial: None,
            turns: turns::TurnStats::default(),
            disk_work,
            disk_usage: Default::default(),
        };
        // After MQTT, so that what is missing is reported there too.
        d.open_hardware(now, true);
        d.abr = abr_for(&d.config, &d.media.encoder_name);
        if let Some(r) = reported {
            d.report(&r);
        }
        let config = &d.config;
        tracing::info!(device = %config.device_id, destinations = config.destinations.len(), "farmcast starting");

        let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut next_health = Instant::now() + HEALTH_TICK;
        d.pump(Instant::now());

        while !d.exit {
            let deadline = [
                d.show.poll_timeout(),
                d.buttons.poll_timeout(),
                d.leds.next_change(),
                d.selling.poll_timeout(),
                d.recorder_retry_at,
                d.parts.poll_timeout(),
                Some(next_health),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_health);
            // Only receive here; the work happens below, timed from the wake.
            let wake = tokio::select! {
                // GStreamer's threads: bus errors, first bytes out, camera frames.
                Some(ev) = media_rx.recv() => Wake::Media(ev),
                // Button edges from rppal interrupts or the sim socket.
                Some(edge) = edge_rx.recv() => Wake::Edge(edge),
                // The rest of the simulated hardware.
                Some(sim) = sim_rx.recv() => Wake::Sim(sim),
                // A down server answers again: reconnect now, not at the next backoff.
                Some(name) = probe_rx.recv() => Wake::Probe(name),
                // Scale readings (serial, HX711 or sim).
                Some(r) = scale_rx.recv() => Wake::Scale(r),
                // Technicians' commands and fleet pushes (pending forever without MQTT).
                Some(inc) = recv_or_pending(&mut incoming) => Wake::Incoming(inc),
                // The recordings' disk thread: figures of a walk or a budget pass.
                Some(f) = disk_rx.recv() => Wake::Disk(f),
                // systemd stop or Ctrl-C: end the show cleanly, then exit.
                _ = sigterm.recv() => Wake::Signal,
                _ = sigint.recv() => Wake::Signal,
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            // One clock read per turn; the turn's work is timed from here.
            let woke = Instant::now();
            let mut turn = turns::Turn {
                input: wake.kind(),
                ..Default::default()
            };
            match wake {
                Wake::Media(ev) => {
                    if let crate::media::MediaEvent::DestinationDown { name, .. }
                    | crate::media::MediaEvent::DestinationStopped(name) = &ev
                    {
                        d.abr.forget(name);
                    }
                    if let Some(input) = d.media.on_event(ev) {
                        d.pending.push_back(input);
                    }
                }
                Wake::Edge(edge) => d.buttons.edge(&edge.button, edge.at, edge.pressed),
                Wake::Sim(sim) => d.on_sim(sim),
                Wake::Probe(name) => {
                    tracing::info!(destination = %name, "server reachable again");
                    d.pending
                        .push_back(Input::Command(crate::show::Command::ReconnectNow));
                }
                Wake::Scale(r) => d.selling.on_reading(woke, r),
                Wake::Incoming(inc) => d.on_incoming(inc),
                Wake::Disk(f) => d.disk_usage.measured(woke, f.used_bytes, f.free_bytes),
                Wake::Signal => d.pending.push_back(Input::Shutdown),
                Wake::Timer => {}
            }
            let now = Instant::now();
            if now >= next_health {
                next_health = now + HEALTH_TICK;
                turn.health = true;
                d.health(now);
            }
            d.open_hardware(now, false);
            if now >= d.next_status {
                turn.status = true;
                d.publish_status(now);
            }
            if let Some(rx) = d.new_incoming.take() {
                incoming = Some(rx);
            }
            if d.recorder_retry_at.is_some_and(|t| now >= t) {
                d.recorder_retry_at = None;
                turn.recorder = true;
                d.media.restart_recorder();
            }
            d.pump(now);
            d.end_turn(woke, turn);
        }
        // The recorder closes its last segment on EOS; it started when the show
        // ended, so a short wait more keeps the whole stop within systemd's 5 s.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
        while d.media.recorder_stopping() {
            match tokio::time::timeout_at(deadline, media_rx.recv()).await {
                Ok(Some(ev)) => {
                    let _ = d.media.on_event(ev);
                }
                _ => break,
            }
        }
        tracing::info!("stopped");
        d.media.shutdown();
        d.notify.stopping();
        Ok(())
    }

    /// Feed everything pending to the machine and carry out what it asks.
    fn pump(&mut self, now: Instant) {
        self.buttons.handle_timeout(now);
        while let Some(ev) = self.buttons.poll_event() {
            tracing::info!(button = ?ev.button, kind = ?ev.kind, "button");
            self.pending.push_back(Input::Button(ev));
        }
        self.pending.push_back(Input::Tick);
        while let Some(input) = self.pending.pop_front() {
            self.note_capture(&input);
            let before = self.show.state();
            self.show.handle(now, input);
            while let Some(action) = self.show.poll_action() {
                self.act(now, action);
            }
            if self.show.state() != before {
                if before == State::Stopping && self.show.state() == State::Standby {
                    self.show_ended(now);
                }
                self.notify.status(self.show.state().as_str());
                self.confirm_start();
                self.state_since = now;
                // Status goes out on every change, not only on the interval.
                self.next_status = now;
            }
        }
        let outputs = self.selling.tick(now);
        self.sell(outputs);
        self.leds.update(now);
    }

    /// Carry out what the selling side asks: the picture, MQTT.
    fn sell(&mut self, outputs: Vec<selling::Output>) {
        for out in outputs {
            match out {
                selling::Output::LowerThird(text) => {
                    if let Some(c) = self.media.capture() {
                        c.set_lower_third(text.as_deref());
                    }
                }
                selling::Output::Event(ev) => {
                    if let Some(m) = &self.mqtt {
                        m.event(ev);
                    }
                }
                selling::Output::Reply(cmd, outcome) => {
                    if let Some(m) = &self.mqtt {
                        m.reply(&cmd, outcome);
                    }
                }
            }
        }
    }

    /// The show a tag made now belongs to.
    fn show_context(&self, now: Instant) -> selling::ShowContext {
        let status = self.show.status();
        selling::ShowContext {
            show_id: status.show_id.clone().filter(|_| status.state.in_show()),
            offset: status
                .live_since
                .filter(|_| status.state.in_show())
                .map(|t| now.saturating_duration_since(t)),
            dir: self.media.recording_dir(),
        }
    }

    fn act(&mut self, now: Instant, action: Action) {
        let feedback = match action {
            Action::StartCapture => self.media.start_capture(false),
            Action::RestartCapture => self.media.start_capture(true),
            Action::Connect(name) => self.media.connect(&name),
            Action::Disconnect(name) => self.media.disconnect(&name),
            Action::StartRecording { show_id } => {
                self.media.start_recording(&show_id);
                None
            }
            Action::StopRecording => {
                self.recorder_retry_at = None;
                self.media.stop_recording();
                None
            }
            Action::Slate(on) => {
                tracing::info!(on, "slate");
                self.media.set_slate(on);
                None
            }
            Action::Tally(p) => {
                self.leds.set_tally(now, p);
                None
            }
            Action::StatusLed(p) => {
                self.leds.set_status(now, p);
                None
            }
            Action::Event(ShowEvent::ProductPressed { product_id, .. }) => {
                let ctx = self.show_context(now);
                let outputs = self
                    .selling
                    .tag(now, &product_id, selling::Origin::Button, ctx);
                self.sell(outputs);
                None
            }
            Action::Event(e) => {
                log_event(&e);
                if let (Some(mqtt), Some(ev)) = (&self.mqtt, remote::event(&e)) {
                    mqtt.event(ev);
                }
                None
            }
            Action::Ready => {
                self.notify.ready(self.show.state().as_str());
                None
            }
            Action::Exit => {
                self.exit = true;
                None
            }
        };
        if let Some(input) = feedback {
            self.pending.push_back(input);
        }
    }

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
            SimEvent::Weight(kg) => self.selling.sim_weight(kg),
        }
    }

    fn health(&mut self, now: Instant) {
        if let Some(input) = self.media.tick() {
            self.pending.push_back(input);
        }
        if let Some(c) = self.media.capture() {
            let frames = c
                .health()
                .frames_out
                .load(std::sync::atomic::Ordering::Relaxed);
            let dt = now.duration_since(self.last_fps_at).as_secs_f64();
            if dt > 0.0 {
                let inst = frames.saturating_sub(self.last_frames) as f64 / dt;
                // Smooth over about a second of ticks.
                self.fps = if self.fps == 0.0 {
                    inst
                } else {
                    0.75 * self.fps + 0.25 * inst
                };
            }
            self.last_fps_at = now;
        }
        self.feed_watchdog(now);
        self.adapt(now);
        self.probe_down_links(now);
        self.check_trial(now);
        self.check_mqtt_trial(now);
        if self.show.state().in_show()
            && self.recorder_retry_at.is_none()
            && !self.media.recorder_running()
        {
            self.recorder_retry_at = Some(now + Duration::from_secs(5));
        }
    }
}

impl Driver {
    /// Adaptive bitrate: feed the links' backlogs to the controller, and carry
    /// its target to the encoder (and, past the lowest bitrate, drop frames).
    fn adapt(&mut self, now: Instant) {
        if !self.config.live.adaptive_bitrate || self.config.video.passthrough {
            return;
        }
        for (name, sample) in self.media.link_samples() {
            self.abr.observe(now, &name, sample);
        }
        let Some(capture) = self.media.capture() else {
            return;
        };
        let target_moved = self.abr.poll_change().is_some();
        let (n, step) = (self.abr.frame_decimation(), self.abr.scale_step());
        let shape_moved = (n, step) != (self.decimation, self.scale_step);
        if shape_moved {
            if n != self.decimation {
                capture.set_frame_decimation(n);
            }
            if step != self.scale_step {
                capture.set_scale_step(step);
            }
            if n > self.decimation || step > self.scale_step {
                tracing::warn!(
                    keep_one_in = n,
                    scale_step = step,
                    "abr: even the lowest bitrate does not fit; fewer or smaller frames"
                );
            } else {
                tracing::info!(
                    keep_one_in = n,
                    scale_step = step,
                    "abr: the link has room again; frames or size restored"
                );
            }
            self.decimation = n;
            self.scale_step = step;
        }
        if target_moved || shape_moved {
            let kbps = self.abr.encoder_kbps();
            let applied = capture.set_bitrate(kbps);
            match self.abr.congestion() {
                Some((dest, why)) => tracing::info!(
                    target_kbps = kbps,
                    applied,
                    destination = dest,
                    why = why.as_str(),
                    "abr"
                ),
                None => tracing::info!(target_kbps = kbps, applied, "abr"),
            }
        }
    }
}

/// The adaptive-bitrate controller for a config and the encoder it got:
/// only software encoders take a new picture size mid-stream.
fn abr_for(config: &Config, encoder: &str) -> crate::media::abr::AbrController {
    let mut settings = crate::media::abr::AbrSettings::from_video(&config.video);
    if !crate::media::encoder::takes_new_size(encoder) {
        settings.max_scale_step = 0;
    }
    crate::media::abr::AbrController::new(settings)
}

/// How often a down RTMP server is probed with a bare TCP connect.
const PROBE_EVERY: Duration = Duration::from_millis(500);

impl Driver {
    /// While a destination is down, try a bare TCP connect to its server every
    /// half second (a SYN, closed at once): when it answers, reconnect at once
    /// rather than up to a whole backoff later. SRT (UDP) has nothing to
    /// probe and keeps to the backoff.
    fn probe_down_links(&mut self, now: Instant) {
        let down = self
            .show
            .status()
            .destinations
            .into_iter()
            .filter(|d| d.link == crate::show::LinkState::Down)
            // Only while the server could not be reached at all: one that
            // answers and then refuses the stream (a bad key, a duplicate
            // publish) is left to the backoff, not hammered.
            .filter(|d| self.media.server_unreachable(&d.name));
        for d in down {
            let Some(addr) = self.media.remote(&d.name) else {
                continue;
            };
            if self
                .probes
                .get(&d.name)
                .is_some_and(|t| now < *t + PROBE_EVERY)
            {
                continue;
            }
            self.probes.insert(d.name.clone(), now);
            let tx = self.probe_tx.clone();
            let name = d.name.clone();
            tokio::spawn(async move {
                let connect = tokio::net::TcpStream::connect(addr);
                if let Ok(Ok(_stream)) =
                    tokio::time::timeout(Duration::from_millis(400), connect).await
                {
                    let _ = tx.send(name);
                }
            });
        }
    }
}

/// The destinations a show connects to (the show machine knows only these).
fn enabled_destinations(config: &Config) -> Vec<String> {
    config
        .destinations
        .iter()
        .filter(|d| d.enabled)
        .map(|d| d.name.clone())
        .collect()
}

async fn recv_or_pending<T>(rx: &mut Option<tokio::sync::mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn log_event(e: &ShowEvent) {
    match e {
        ShowEvent::Error { what } => tracing::error!(what = %what, "show error"),
        ShowEvent::DestinationDown { name, reason } => {
            tracing::warn!(destination = %name, reason = %reason, "destination down")
        }
        other => tracing::info!(event = ?other, "show"),
    }
}
