//! The MQTT client task and the handle the daemon talks to.
//!
//! Contract: [`spawn`] starts two tasks (the poll task in [`super::link`] and the
//! client task here) and returns an [`MqttHandle`] plus a receiver of
//! [`Incoming`] messages. No handle method waits for the broker:
//! - `set_status` is latest-wins (a watch channel); the client publishes it
//!   retained when it changes and again on every ConnAck;
//! - `event` appends to the on-disk queue; the client delivers the queue in order,
//!   QoS 1, at least once, whenever connected;
//! - `reply` and `report_config` are dropped (and logged) if the request channel
//!   is full or the broker is away: the technician can ask again.
//!
//! On every ConnAck the client subscribes again (clean sessions), publishes
//! `online`, Home Assistant discovery and the latest status (all retained), and
//! restarts event delivery from the oldest unacknowledged event. Dropping every
//! handle ends both tasks; the socket closes without DISCONNECT and the broker
//! publishes the will, `offline`.

use super::commands::{self, CommandError, RateLimiter};
use super::hass;
use super::link::{self, LinkEvent, Message, Publisher, Qos};
use super::payloads::{CmdResult, Event, MqttStats, Status};
use super::queue::{EventQueue, DEFAULT_CAP};
use super::topics::{self, ConfigSource};
use crate::excerpt::excerpt;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, info, warn};

/// At most this many events are in flight (published, not yet PubAck'd).
const EVENT_WINDOW: usize = 16;
/// Room in a packet for what is not the answer's JSON: fixed header, topic,
/// v5 properties (the correlation data is counted on top).
const PACKET_OVERHEAD: usize = 1024;
/// A flood of refusals is logged at its first and then every this many.
const LOG_EVERY: u64 = 100;

/// `config/desired` pushes: a burst as large as the commands' (a fleet
/// manager's tool may send a few layers at once, and every group topic comes
/// at a reconnect), then two a second. Each one makes the driver verify a
/// signature and validate a layer; the retained message comes again at the
/// next connection, so a dropped push is late, not lost.
fn desired_limiter() -> RateLimiter {
    RateLimiter::new(2.0, 20.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 3.1.1
    V4,
    V5,
}

/// Everything the client needs. Holds paths, never secrets: the password is read
/// from `password_file` when connecting, so `Debug` shows nothing to hide.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub url: String,
    pub topic_prefix: String,
    pub device_id: String,
    /// Defaults to the device id when a password file is given.
    pub username: Option<String>,
    /// A file holding only the password (a trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// PEM CA bundle for mqtts://; the system bundle when `None`.
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub keep_alive: Duration,
    pub protocol: Protocol,
    /// Where the event queue lives (`events.jsonl`).
    pub state_dir: PathBuf,
    /// Fleet groups whose `P/fleet/<group>/config/desired` to follow.
    pub fleet_groups: Vec<String>,
    pub hass_discovery: bool,
    pub event_queue_cap: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// `farmcast-<device_id>` when `None`.
    pub client_id: Option<String>,
}

impl MqttSettings {
    /// The MQTT client id this link connects with.
    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("farmcast-{}", self.device_id))
    }
}

impl MqttSettings {
    pub fn new(
        url: &str,
        topic_prefix: &str,
        device_id: &str,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        MqttSettings {
            url: url.into(),
            topic_prefix: topic_prefix.into(),
            device_id: device_id.into(),
            username: None,
            password_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive: Duration::from_secs(30),
            protocol: Protocol::V4,
            state_dir: state_dir.into(),
            fleet_groups: Vec::new(),
            hass_discovery: true,
            event_queue_cap: DEFAULT_CAP,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            client_id: None,
        }
    }
}

/// What arrives from the broker for the daemon to act on.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A valid command; answer it with [`MqttHandle::reply`].
    Command(IncomingCommand),
    /// A signed config envelope (raw bytes, unverified) from a desired-config topic.
    DesiredConfig {
        source: ConfigSource,
        payload: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub struct IncomingCommand {
    pub command: commands::Command,
    reply_to: ReplyTo,
}

#[derive(Debug, Clone, Default)]
struct ReplyTo {
    response_topic: Option<String>,
    correlation: Option<Vec<u8>>,
}

enum Request {
    Reply(ReplyTo, CmdResult),
    ConfigReported(Value),
    /// A trial link becomes the link: subscribe, announce, deliver events.
    Promote,
    /// The link is replaced: say `offline` (when the new one lives elsewhere)
    /// and disconnect cleanly, so that no will overwrites the new `online`.
    Retire {
        say_offline: bool,
    },
}

/// Cheap to clone; every method returns at once.
#[derive(Clone)]
pub struct MqttHandle {
    requests: mpsc::Sender<Request>,
    status: Arc<watch::Sender<Option<Status>>>,
    queue: Arc<Mutex<EventQueue>>,
    events_pending: Arc<Notify>,
    dropped_requests: Arc<AtomicU64>,
    /// The largest packet we may send now: our own bound, lowered to what a v5
    /// broker announced in its ConnAck.
    max_packet: Arc<AtomicUsize>,
    /// Between ConnAck and the connection's loss.
    connected: Arc<AtomicBool>,
    /// Set when this link is replaced: it no longer retires queued events
    /// (the new link delivers them; at least once stays true).
    retired: Arc<AtomicBool>,
    client_id: String,
}

impl MqttHandle {
    /// The latest status; published retained when it differs from the last one.
    pub fn set_status(&self, status: Status) {
        self.status.send_if_modified(|cur| {
            let changed = cur.as_ref() != Some(&status);
            *cur = Some(status);
            changed
        });
    }

    /// Queues an event on disk for in-order delivery.
    pub fn event(&self, event: Event) {
        let pushed = match self.queue.lock() {
            Ok(mut q) => q.push(&event),
            Err(_) => return warn!("mqtt event queue poisoned; event {} lost", event.kind),
        };
        match pushed {
            Ok(()) => self.events_pending.notify_one(),
            Err(e) => warn!("mqtt event {} not queued: {e:#}", event.kind),
        }
    }

    /// Answers a command on `P/D/cmd/result` (and its v5 response topic).
    pub fn reply(&self, cmd: &IncomingCommand, outcome: Result<Value, String>) {
        let result = CmdResult::from_result(cmd.command.id.clone(), outcome);
        self.request(Request::Reply(cmd.reply_to.clone(), result));
    }

    /// How many bytes of JSON an answer may carry so that its packet still
    /// fits what the broker takes (the `logs` answer is cut to this).
    pub fn reply_budget(&self) -> usize {
        self.max_packet
            .load(Ordering::Relaxed)
            .saturating_sub(PACKET_OVERHEAD)
    }

    /// Whether the link is connected (ConnAck seen, not lost since).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// A trial link takes over: it subscribes and publishes from now on.
    pub fn promote(&self) {
        self.request(Request::Promote);
    }

    /// This link is being replaced. From this call on it retires no event
    /// from the shared queue; it then says `offline` if `say_offline` (the
    /// new link lives on another broker or prefix) and disconnects cleanly.
    pub fn retire(&self, say_offline: bool) {
        self.retired.store(true, Ordering::SeqCst);
        self.request(Request::Retire { say_offline });
    }

    /// Publishes `P/D/config/reported` (retained).
    pub fn report_config(&self, reported: Value) {
        self.request(Request::ConfigReported(reported));
    }

    fn request(&self, r: Request) {
        if self.requests.try_send(r).is_err() {
            self.dropped_requests.fetch_add(1, Ordering::Relaxed);
            warn!("mqtt request channel full; reply dropped");
        }
    }
}

/// Starts the client. Fails only on local problems (bad URL, unreadable password,
/// CA or key file, state directory); an unreachable broker is retried forever.
pub fn spawn(settings: MqttSettings) -> Result<(MqttHandle, mpsc::Receiver<Incoming>)> {
    let queue =
        EventQueue::open(&settings.state_dir, settings.event_queue_cap).with_context(|| {
            format!(
                "opening the MQTT event queue in {}",
                settings.state_dir.display()
            )
        })?;
    let (status_tx, _) = watch::channel(None);
    start(
        settings,
        Arc::new(Mutex::new(queue)),
        Arc::new(status_tx),
        false,
    )
}

/// Starts a second link beside `current`, for new settings on trial: it
/// connects (with another client id, so that on the same broker neither
/// takes the other's session) but subscribes to nothing and publishes
/// nothing until [`MqttHandle::promote`]. It shares `current`'s event queue
/// and status, so nothing is lost or doubled at the swap.
pub fn spawn_trial(
    mut settings: MqttSettings,
    current: &MqttHandle,
) -> Result<(MqttHandle, mpsc::Receiver<Incoming>)> {
    let base = format!("farmcast-{}", settings.device_id);
    settings.client_id = Some(if current.client_id == base {
        format!("{base}-b")
    } else {
        base
    });
    start(
        settings,
        current.queue.clone(),
        current.status.clone(),
        true,
    )
}

fn start(
    settings: MqttSettings,
    queue: Arc<Mutex<EventQueue>>,
    status: Arc<watch::Sender<Option<Status>>>,
    trial: bool,
) -> Result<(MqttHandle, mpsc::Receiver<Incoming>)> {
    let (tls, host, port) = link::parse_url(&settings.url)?;
    let (publisher, link_rx, _poll_task) = link::start(&settings)?;
    let (req_tx, req_rx) = mpsc::channel(64);
    let status_rx = status.subscribe();
    let (in_tx, in_rx) = mpsc::channel(64);
    let handle = MqttHandle {
        requests: req_tx,
        status,
        queue,
        events_pending: Arc::new(Notify::new()),
        dropped_requests: Arc::new(AtomicU64::new(0)),
        max_packet: Arc::new(AtomicUsize::new(link::MAX_OUTGOING)),
        connected: Arc::new(AtomicBool::new(false)),
        retired: Arc::new(AtomicBool::new(false)),
        client_id: settings.client_id(),
    };
    info!(url = %excerpt(&settings.url), tls, device = %settings.device_id, trial, "mqtt client starting");
    let task = ClientTask {
        publisher,
        prefix: settings.topic_prefix.clone(),
        device: settings.device_id.clone(),
        groups: settings.fleet_groups.clone(),
        hass: settings.hass_discovery,
        broker: (host, port),
        queue: handle.queue.clone(),
        events_pending: handle.events_pending.clone(),
        inflight: 0,
        connected: false,
        status_rx,
        incoming: in_tx,
        limiter: RateLimiter::default(),
        desired_limiter: desired_limiter(),
        commands_limited: 0,
        desired_dropped: 0,
        max_packet: handle.max_packet.clone(),
        link_up: handle.connected.clone(),
        retired: handle.retired.clone(),
        trial,
        retire_by: None,
        uplink: Arc::new(Mutex::new(None)),
    };
    tokio::spawn(task.run(link_rx, req_rx));
    Ok((handle, in_rx))
}

struct ClientTask {
    publisher: Publisher,
    prefix: String,
    device: String,
    groups: Vec<String>,
    hass: bool,
    broker: (String, u16),
    queue: Arc<Mutex<EventQueue>>,
    events_pending: Arc<Notify>,
    /// Events published and not yet PubAck'd: the oldest `inflight` of the queue.
    inflight: usize,
    connected: bool,
    status_rx: watch::Receiver<Option<Status>>,
    incoming: mpsc::Sender<Incoming>,
    limiter: RateLimiter,
    desired_limiter: RateLimiter,
    commands_limited: u64,
    desired_dropped: u64,
    max_packet: Arc<AtomicUsize>,
    link_up: Arc<AtomicBool>,
    retired: Arc<AtomicBool>,
    /// A link on trial connects and waits: no subscriptions, no publishes.
    trial: bool,
    /// Retiring: the task ends when the poll task does, or at this time.
    retire_by: Option<Instant>,
    uplink: Arc<Mutex<Option<String>>>,
}

impl ClientTask {
    async fn run(
        mut self,
        mut link_rx: mpsc::Receiver<LinkEvent>,
        mut req_rx: mpsc::Receiver<Request>,
    ) {
        // Retries event publishes that met a full request channel.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let events_pending = self.events_pending.clone();
        let mut requests_open = true;
        loop {
            tokio::select! {
                // The broker: ConnAck, messages, acks, disconnections.
                ev = link_rx.recv() => match ev {
                    Some(ev) => self.on_link(ev),
                    None => break, // poll task ended
                },
                // Replies and config reports from the daemon; None: every handle is gone.
                req = req_rx.recv(), if requests_open => match req {
                    Some(r) => self.on_request(r),
                    // A retiring link waits for its DISCONNECT to go out (the
                    // poll task then ends): leaving now would drop the socket
                    // first and the broker would publish our will.
                    None if self.retire_by.is_some() => requests_open = false,
                    None => break,
                },
                // A new status from the daemon.
                changed = self.status_rx.changed() => match changed {
                    Ok(()) => self.publish_status(),
                    Err(_) => break,
                },
                // New events on disk.
                _ = events_pending.notified() => self.flush_events(),
                _ = tick.tick() => {
                    if self.retire_by.is_some_and(|t| Instant::now() >= t) {
                        break;
                    }
                    self.flush_events()
                }
            }
        }
        debug!("mqtt client task ends");
    }

    fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Up { max_packet } => {
                let ours = link::MAX_OUTGOING;
                let limit = max_packet.map_or(ours, |m| (m as usize).min(ours));
                self.max_packet.store(limit, Ordering::Relaxed);
                self.link_up.store(true, Ordering::Relaxed);
                if self.trial {
                    self.connected = true;
                    info!("mqtt trial link connected");
                } else {
                    self.on_connect();
                }
            }
            LinkEvent::Down(why) => {
                if self.connected {
                    warn!("mqtt connection lost: {why}");
                } else {
                    debug!("mqtt connect failed: {why}");
                }
                self.connected = false;
                self.link_up.store(false, Ordering::Relaxed);
                // Unacknowledged events are sent again after the next ConnAck.
                self.inflight = 0;
            }
            LinkEvent::PubAck => {
                // Only events are published with QoS 1, in queue order, so each
                // PubAck retires the oldest event in flight.
                if self.inflight > 0 {
                    self.inflight -= 1;
                    // `retired` is read under the queue's lock: once the
                    // driver has set it, the new link's first look at the
                    // queue comes after any ack of ours.
                    if let Err(e) = self
                        .queue
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))
                        .and_then(|mut q| {
                            if self.retired.load(Ordering::SeqCst) {
                                Ok(())
                            } else {
                                q.ack(1)
                            }
                        })
                    {
                        warn!("mqtt event queue ack failed: {e:#}");
                    }
                }
            }
            LinkEvent::Message(m) => self.on_message(m),
        }
    }

    fn on_connect(&mut self) {
        info!("mqtt connected");
        self.connected = true;
        self.inflight = 0;
        let mut subs = vec![
            (topics::cmd(&self.prefix, &self.device), Qos::AtLeastOnce),
            (
                topics::config_desired(&self.prefix, &self.device),
                Qos::AtLeastOnce,
            ),
        ];
        for g in &self.groups {
            subs.push((
                topics::fleet_config_desired(&self.prefix, g),
                Qos::AtLeastOnce,
            ));
        }
        if self.hass {
            subs.push((topics::hass_status(), Qos::AtMostOnce));
        }
        for (t, q) in subs {
            if let Err(e) = self.publisher.subscribe(&t, q) {
                warn!("mqtt subscribe {t} failed: {e}");
            }
        }
        self.announce();
        self.spawn_uplink_probe();
        self.flush_events();
    }

    /// `online`, discovery and status, all retained.
    fn announce(&mut self) {
        self.publish(
            &topics::availability(&self.prefix, &self.device),
            true,
            b"online".to_vec(),
        );
        if self.hass {
            for (topic, entity) in hass::discovery(&self.prefix, &self.device) {
                match serde_json::to_vec(&entity) {
                    Ok(p) => self.publish(&topic, true, p),
                    Err(e) => warn!("hass discovery {topic}: {e}"),
                }
            }
        }
        self.publish_status();
    }

    /// Which local address reaches the broker, found off the task (DNS may block).
    fn spawn_uplink_probe(&self) {
        let (host, port) = self.broker.clone();
        let slot = self.uplink.clone();
        tokio::spawn(async move {
            let addr = async {
                let sock = tokio::net::UdpSocket::bind(("0.0.0.0", 0)).await.ok()?;
                sock.connect((host.as_str(), port)).await.ok()?;
                sock.local_addr().ok()
            }
            .await;
            if let (Some(a), Ok(mut s)) = (addr, slot.lock()) {
                *s = Some(a.ip().to_string());
            }
        });
    }

    fn on_message(&mut self, m: Message) {
        if m.topic == topics::cmd(&self.prefix, &self.device) {
            return self.on_command(m);
        }
        if let Some(source) =
            topics::config_source(&self.prefix, &self.device, &self.groups, &m.topic)
        {
            // An empty retained message clears the topic; nothing to apply.
            if m.payload.is_empty() {
                return;
            }
            if !self.desired_limiter.allow(Instant::now()) {
                self.desired_dropped += 1;
                if self.desired_dropped % LOG_EVERY == 1 {
                    warn!(
                        topic = %excerpt(&m.topic),
                        dropped = self.desired_dropped,
                        "desired config rate limited; dropped (a retained one comes again at reconnect)"
                    );
                }
                return;
            }
            if self
                .incoming
                .try_send(Incoming::DesiredConfig {
                    source,
                    payload: m.payload,
                })
                .is_err()
            {
                warn!(
                    "mqtt incoming channel full; desired config from {} dropped",
                    excerpt(&m.topic)
                );
            }
            return;
        }
        if self.hass && m.topic == topics::hass_status() && m.payload == b"online" {
            // Home Assistant restarted and forgot us: tell it again.
            self.announce();
        }
    }

    fn on_command(&mut self, m: Message) {
        let reply_to = ReplyTo {
            response_topic: m.response_topic,
            correlation: m.correlation,
        };
        let parsed = commands::parse(&m.payload);
        let id = match &parsed {
            Ok(c) => c.id.clone(),
            Err(r) => r.id.clone(),
        };
        if !self.limiter.allow(Instant::now()) {
            self.commands_limited += 1;
            if self.commands_limited % LOG_EVERY == 1 {
                warn!(
                    limited = self.commands_limited,
                    "mqtt commands rate limited"
                );
            }
            return self.answer(
                &reply_to,
                CmdResult::from_result(id, Err(CommandError::RateLimited.to_string())),
            );
        }
        match parsed {
            Ok(command) => {
                debug!(cmd = command.kind.name(), id = ?command.id, "mqtt command");
                let inc = Incoming::Command(IncomingCommand {
                    command,
                    reply_to: reply_to.clone(),
                });
                if self.incoming.try_send(inc).is_err() {
                    self.answer(
                        &reply_to,
                        CmdResult::from_result(id, Err("busy, try again".into())),
                    );
                }
            }
            Err(rejected) => {
                // The error's outside parts are excerpts already.
                warn!(
                    "mqtt command refused: {}",
                    crate::excerpt::excerpt_n(&rejected.error.to_string(), 256)
                );
                // Without an id or a response topic nobody could match the answer.
                if rejected.id.is_some() || reply_to.response_topic.is_some() {
                    self.answer(
                        &reply_to,
                        CmdResult::from_result(rejected.id, Err(rejected.error.to_string())),
                    );
                }
            }
        }
    }

    fn on_request(&mut self, r: Request) {
        match r {
            Request::Reply(to, result) => self.answer(&to, result),
            Request::Promote => {
                if self.trial {
                    self.trial = false;
                    info!("mqtt trial link takes over");
                    if self.connected {
                        self.on_connect();
                    }
                }
            }
            Request::Retire { say_offline } => {
                if say_offline {
                    self.publish(
                        &topics::availability(&self.prefix, &self.device),
                        true,
                        b"offline".to_vec(),
                    );
                }
                self.trial = true; // publishes nothing more
                self.retire_by = Some(Instant::now() + Duration::from_secs(5));
                if let Err(e) = self.publisher.disconnect() {
                    debug!("mqtt disconnect of the replaced link: {e}");
                }
            }
            Request::ConfigReported(v) => match serde_json::to_vec(&v) {
                Ok(p) => self.publish(
                    &topics::config_reported(&self.prefix, &self.device),
                    true,
                    p,
                ),
                Err(e) => warn!("config reported: {e}"),
            },
        }
    }

    fn answer(&mut self, to: &ReplyTo, result: CmdResult) {
        let id = result.id.clone();
        let mut payload = match serde_json::to_vec(&result) {
            Ok(p) => p,
            Err(e) => return warn!("cmd result: {e}"),
        };
        // rumqttc drops the connection rather than send a packet over the
        // limit: an answer that does not fit is replaced by one that says so.
        let room = self
            .max_packet
            .load(Ordering::Relaxed)
            .saturating_sub(PACKET_OVERHEAD + to.correlation.as_ref().map_or(0, Vec::len));
        if payload.len() > room {
            warn!(
                bytes = payload.len(),
                room, "mqtt answer too large; refused instead"
            );
            let why = format!(
                "the answer is {} bytes; the broker takes at most {room}",
                payload.len()
            );
            match serde_json::to_vec(&CmdResult::from_result(id, Err(why))) {
                Ok(p) => payload = p,
                Err(e) => return warn!("cmd result: {e}"),
            }
        }
        let own = |rt: &str| response_topic_allowed(&self.prefix, &self.device, rt);
        let response_topic = to.response_topic.as_deref().filter(|rt| {
            own(rt) || {
                warn!(
                    response_topic = %excerpt(rt),
                    "mqtt v5 response topic outside this device's topics; answered on cmd/result only"
                );
                false
            }
        });
        if let Some(rt) = response_topic {
            if self.connected {
                if let Err(e) =
                    self.publisher
                        .publish_response(rt, payload.clone(), to.correlation.clone())
                {
                    warn!("mqtt response not sent: {e}");
                }
            }
        }
        self.publish(
            &topics::cmd_result(&self.prefix, &self.device),
            false,
            payload,
        );
    }

    fn publish_status(&mut self) {
        let Some(mut status) = self.status_rx.borrow_and_update().clone() else {
            return;
        };
        if !self.connected {
            return; // published on the next ConnAck
        }
        if let Ok(q) = self.queue.lock() {
            status.mqtt = MqttStats {
                events_queued: q.len() as u64,
                events_dropped: q.dropped(),
                commands_limited: self.commands_limited,
                desired_dropped: self.desired_dropped,
            };
        }
        if status.uplink_addr.is_none() {
            status.uplink_addr = self.uplink.lock().ok().and_then(|s| s.clone());
        }
        match serde_json::to_vec(&status) {
            Ok(p) => self.publish(&topics::status(&self.prefix, &self.device), true, p),
            Err(e) => warn!("status: {e}"),
        }
    }

    /// QoS 0 publish; dropped when disconnected, on trial, or the request
    /// channel is full.
    fn publish(&self, topic: &str, retain: bool, payload: Vec<u8>) {
        if self.trial {
            return;
        }
        if !self.connected {
            return debug!("mqtt offline; {topic} not published");
        }
        if let Err(e) = self
            .publisher
            .publish(topic, Qos::AtMostOnce, retain, payload)
        {
            warn!("mqtt publish to {topic} dropped: {e}");
        }
    }

    /// Publishes queued events past those in flight, up to the window.
    fn flush_events(&mut self) {
        if self.trial || !self.connected || self.inflight >= EVENT_WINDOW {
            return;
        }
        let batch = match self.queue.lock() {
            Ok(q) => q.peek_batch(self.inflight, EVENT_WINDOW - self.inflight),
            Err(_) => return,
        };
        let topic = topics::events(&self.prefix, &self.device);
        for json in batch {
            if self
                .publisher
                .publish(&topic, Qos::AtLeastOnce, false, json.into_bytes())
                .is_err()
            {
                break; // channel full: the tick retries
            }
            self.inflight += 1;
        }
    }
}

/// Whether a v5 request's response topic may be answered on: only under this
/// device's own `P/D/`, never one of the topics the box owns or listens to
/// (an answer there would pass for a status, a command or a config), and
/// never a wildcard (a publish to one is a protocol error that ends the
/// connection). Anything else could make the box write for whoever asked.
pub fn response_topic_allowed(prefix: &str, device: &str, topic: &str) -> bool {
    let own = format!("{prefix}/{device}/");
    let reserved = [
        topics::availability(prefix, device),
        topics::status(prefix, device),
        topics::events(prefix, device),
        topics::cmd(prefix, device),
        topics::config_desired(prefix, device),
        topics::config_reported(prefix, device),
    ];
    topic.len() > own.len()
        && topic.starts_with(&own)
        && !topic.contains(['+', '#', '\0'])
        && !reserved.iter().any(|r| r == topic)
}

#[cfg(test)]
mod tests {
    use super::response_topic_allowed as ok;

    #[test]
    fn response_topics_only_under_the_device() {
        for good in ["p/d/cmd/result", "p/d/cmd/result/tech-7", "p/d/replies/x"] {
            assert!(ok("p", "d", good), "{good}");
        }
        for bad in [
            "p/other/cmd",
            "p/dd/cmd/result",
            "p/d/",
            "p/d",
            "q/d/cmd/result",
            "p/d/cmd",
            "p/d/status",
            "p/d/availability",
            "p/d/config/desired",
            "p/d/config/reported",
            "p/d/events",
            "p/d/cmd/#",
            "p/d/+/x",
            "attacker/inbox",
            "",
        ] {
            assert!(!ok("p", "d", bad), "{bad}");
        }
    }
}
