//! The MQTT client: the handle the daemon talks to and how links start.
//!
//! Contract: [`spawn`] starts two tasks (the poll task in [`super::link`] and the
//! client task in [`super::task`]) and returns an [`MqttHandle`] plus a receiver of
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

use super::commands::{self, RateLimiter};
use super::link;
use super::payloads::{CmdResult, Event, Status};
use super::queue::EventQueue;
use super::task::ClientTask;
use super::topics::ConfigSource;
use crate::excerpt::excerpt;
use anyhow::{Context, Result};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};

/// At most this many events are in flight (published, not yet PubAck'd).
pub(super) const EVENT_WINDOW: usize = 16;
/// Room in a packet for what is not the answer's JSON: fixed header, topic,
/// v5 properties (the correlation data is counted on top).
pub(super) const PACKET_OVERHEAD: usize = 1024;
/// A flood of refusals is logged at its first and then every this many.
pub(super) const LOG_EVERY: u64 = 100;

/// `config/desired` pushes: a burst as large as the commands' (a fleet
/// manager's tool may send a few layers at once, and every group topic comes
/// at a reconnect), then two a second. Each one makes the driver verify a
/// signature and validate a layer; the retained message comes again at the
/// next connection, so a dropped push is late, not lost.
fn desired_limiter() -> RateLimiter {
    RateLimiter::new(2.0, 20.0)
}

pub use super::settings::{MqttSettings, Protocol};

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
    pub(super) reply_to: ReplyTo,
}

impl IncomingCommand {
    /// A command that came another way than MQTT (the phone's page, a
    /// test): its reply goes to the device's plain reply topic.
    pub fn new(command: commands::Command) -> IncomingCommand {
        IncomingCommand {
            command,
            reply_to: ReplyTo::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct ReplyTo {
    pub(super) response_topic: Option<String>,
    pub(super) correlation: Option<Vec<u8>>,
}

pub(super) enum Request {
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
            Err(_) => return warn!("mqtt event queue poisoned; event {} lost", event.kind()),
        };
        match pushed {
            Ok(()) => self.events_pending.notify_one(),
            Err(e) => warn!("mqtt event {} not queued: {e:#}", event.kind()),
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
