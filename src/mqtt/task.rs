//! The client task: one per link, owning the publishing half, the state of
//! the connection (subscriptions, in-flight events, limits) and the decisions
//! on what arrives. See [`super::client`] for the contract.

use super::client::{
    Incoming, IncomingCommand, ReplyTo, Request, EVENT_WINDOW, LOG_EVERY, PACKET_OVERHEAD,
};
use super::commands::{self, CommandError, RateLimiter};
use super::hass;
use super::link::{self, LinkEvent, Message, Publisher, Qos};
use super::payloads::{CmdResult, MqttStats, Status};
use super::queue::EventQueue;
use super::topics;
use crate::excerpt::excerpt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, info, warn};

pub(super) struct ClientTask {
    pub(super) publisher: Publisher,
    pub(super) prefix: String,
    pub(super) device: String,
    pub(super) groups: Vec<String>,
    pub(super) hass: bool,
    pub(super) broker: (String, u16),
    pub(super) queue: Arc<Mutex<EventQueue>>,
    pub(super) events_pending: Arc<Notify>,
    /// Events published and not yet PubAck'd: the oldest `inflight` of the queue.
    pub(super) inflight: usize,
    pub(super) connected: bool,
    pub(super) status_rx: watch::Receiver<Option<Status>>,
    pub(super) incoming: mpsc::Sender<Incoming>,
    pub(super) limiter: RateLimiter,
    pub(super) desired_limiter: RateLimiter,
    pub(super) commands_limited: u64,
    pub(super) desired_dropped: u64,
    pub(super) max_packet: Arc<AtomicUsize>,
    pub(super) link_up: Arc<AtomicBool>,
    pub(super) retired: Arc<AtomicBool>,
    /// A link on trial connects and waits: no subscriptions, no publishes.
    pub(super) trial: bool,
    /// Retiring: the task ends when the poll task does, or at this time.
    pub(super) retire_by: Option<Instant>,
    pub(super) uplink: Arc<Mutex<Option<String>>>,
}

impl ClientTask {
    pub(super) async fn run(
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
        let own = |rt: &str| topics::response_topic_allowed(&self.prefix, &self.device, rt);
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
        // The groups come from the local file: `farmcast fleet` finds a
        // group's boxes by them (the broker has no other list of members).
        let doc = serde_json::to_value(&status).map(|mut v| {
            v["groups"] = serde_json::json!(self.groups);
            v
        });
        match doc.and_then(|v| serde_json::to_vec(&v)) {
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
