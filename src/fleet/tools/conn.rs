//! The fleet manager's MQTT connection: the daemon's TLS and credential
//! options, no last will (a tool is not a box), and a bounded inbox.
//!
//! MQTT v5 by default: the CONNECT announces [`MAX_PACKET`], so the broker
//! itself drops any larger message for us and a huge retained message on a
//! report topic never reaches the tool. With `--mqtt-v4` (brokers without v5)
//! the client refuses larger packets instead, which costs the connection.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::sync::{mpsc, Notify};

use crate::mqtt::{MqttSettings, Protocol};

/// Largest message the tools take: a status is about 1 KB, an envelope at
/// most 64 KB.
pub const MAX_PACKET: usize = 256 * 1024;

/// How to reach the broker; the same options as the daemon's `[mqtt]`.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    #[arg(long)]
    pub broker: String,
    /// `mqtt.topic_prefix` of the boxes.
    #[arg(long, default_value = "farmcast")]
    pub prefix: String,
    #[arg(long)]
    pub username: Option<String>,
    /// A file holding only the password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// PEM CA bundle for mqtts:// (the system bundle otherwise).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    #[arg(long)]
    pub client_cert: Option<PathBuf>,
    #[arg(long)]
    pub client_key: Option<PathBuf>,
    /// Speak MQTT 3.1.1 (for brokers without v5).
    #[arg(long)]
    pub mqtt_v4: bool,
}

/// A message as it arrived; `retained` when the broker sent it from its store.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retained: bool,
}

enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// One connection; reconnects by itself and subscribes again after each ConnAck.
pub struct Conn {
    client: Client,
    inbox: mpsc::Receiver<Msg>,
    acks: Arc<AtomicU64>,
    acked: Arc<Notify>,
    published: u64,
    sync_topic: String,
    client_id: String,
}

fn settings(args: &BrokerArgs, client_id: &str) -> MqttSettings {
    let mut s = MqttSettings::new(&args.broker, &args.prefix, client_id, "/nonexistent");
    s.username = Some(args.username.clone().unwrap_or_else(|| "fleet".into()));
    s.password_file = args.password_file.clone();
    s.ca_file = args.ca_file.clone();
    s.client_cert = args.client_cert.clone();
    s.client_key = args.client_key.clone();
    s.protocol = if args.mqtt_v4 {
        Protocol::V4
    } else {
        Protocol::V5
    };
    s
}

/// A client id no box uses (boxes are `farmcast-<device_id>`).
pub fn tool_client_id(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("farmcast-fleet-{what}-{}-{nanos:x}", std::process::id())
}

impl Conn {
    /// Connects and subscribes to `filters`; returns once the broker has sent
    /// every retained message they match (or after `settle` when the broker
    /// does not echo our marker), with those messages.
    pub async fn open(
        args: &BrokerArgs,
        what: &str,
        filters: &[String],
        settle: Duration,
    ) -> Result<(Conn, Vec<Msg>)> {
        let client_id = tool_client_id(what);
        let s = settings(args, &client_id);
        let (tls, host, port) = crate::mqtt::parse_url(&s.url)?;
        let creds = crate::mqtt::read_password(&s)?;
        let tls = if tls {
            Some(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(crate::mqtt::tls_config(&s)?)),
            ))
        } else {
            None
        };
        let sync_topic = format!("{}/_fleet_tools/{client_id}/sync", args.prefix);
        let mut all: Vec<String> = filters.to_vec();
        all.push(sync_topic.clone());
        let (tx, inbox) = mpsc::channel(4096);
        let acks = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(Notify::new());
        let (up_tx, mut up_rx) = mpsc::channel::<std::result::Result<(), String>>(4);
        let (client, el) = if s.protocol == Protocol::V4 {
            let mut o = rumqttc::MqttOptions::new(&client_id, host, port);
            o.set_keep_alive(Duration::from_secs(30))
                .set_clean_session(true)
                .set_max_packet_size(MAX_PACKET, 128 * 1024);
            if let Some((user, pass)) = creds {
                o.set_credentials(user, pass.expose());
            }
            if let Some(t) = tls {
                o.set_transport(t);
            }
            let (c, el) = rumqttc::AsyncClient::new(o, 1024);
            (Client::V4(c.clone()), Loop::V4(el, c))
        } else {
            let mut o = rumqttc::v5::MqttOptions::new(&client_id, host, port);
            o.set_keep_alive(Duration::from_secs(30))
                .set_clean_start(true)
                .set_max_packet_size(Some(MAX_PACKET as u32));
            if let Some((user, pass)) = creds {
                o.set_credentials(user, pass.expose());
            }
            if let Some(t) = tls {
                o.set_transport(t);
            }
            let (c, el) = rumqttc::v5::AsyncClient::new(o, 1024);
            (Client::V5(c.clone()), Loop::V5(el, c))
        };
        tokio::spawn(drive(el, all, tx, up_tx, acks.clone(), acked.clone()));
        let mut conn = Conn {
            client,
            inbox,
            acks,
            acked,
            published: 0,
            sync_topic,
            client_id,
        };
        // The first connection decides: a wrong address or password is an
        // error now, not a tool that waits forever.
        match tokio::time::timeout(Duration::from_secs(10), up_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => bail!(
                "cannot connect to {}: {e}",
                crate::excerpt::excerpt(&args.broker)
            ),
            _ => bail!(
                "no answer from the broker {} within 10 s",
                crate::excerpt::excerpt(&args.broker)
            ),
        }
        let retained = conn.sync(settle).await?;
        Ok((conn, retained))
    }

    /// Publishes a marker to ourselves and collects what arrives before it:
    /// the broker handles our SUBSCRIBE (and queues its retained messages)
    /// before our PUBLISH, and sends to us in order.
    async fn sync(&mut self, settle: Duration) -> Result<Vec<Msg>> {
        let marker = self.client_id.clone().into_bytes();
        self.publish(&self.sync_topic.clone(), marker.clone(), false)
            .await?;
        let deadline = Instant::now() + settle;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.inbox.recv()).await {
                Ok(Some(m)) if m.topic == self.sync_topic && m.payload == marker => return Ok(out),
                Ok(Some(m)) if m.topic == self.sync_topic => {}
                Ok(Some(m)) => out.push(m),
                Ok(None) => bail!("the MQTT connection ended"),
                Err(_) => return Ok(out),
            }
        }
    }

    /// Queues a QoS 1 publish.
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<()> {
        match &self.client {
            Client::V4(c) => c
                .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload)
                .await
                .context("publish")?,
            Client::V5(c) => c
                .publish(
                    topic,
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    retain,
                    payload,
                )
                .await
                .context("publish")?,
        }
        self.published += 1;
        Ok(())
    }

    /// Waits until the broker acknowledged every publish so far.
    pub async fn flush(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.acks.load(Ordering::SeqCst) < self.published {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the broker did not acknowledge the publishes");
            }
            let _ =
                tokio::time::timeout(left.min(Duration::from_millis(100)), self.acked.notified())
                    .await;
        }
        Ok(())
    }

    /// The next message other than our own markers; `None` when the
    /// connection task ended.
    pub async fn recv(&mut self) -> Option<Msg> {
        loop {
            let m = self.inbox.recv().await?;
            if m.topic != self.sync_topic {
                return Some(m);
            }
        }
    }

    /// A clean DISCONNECT.
    pub async fn disconnect(&mut self) {
        let _ = match &self.client {
            Client::V4(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Client::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }
}

/// Either protocol's event loop, with what the tools need of its events.
/// One per connection, moved once into its task: the size is no matter.
#[allow(clippy::large_enum_variant)]
enum Loop {
    V4(rumqttc::EventLoop, rumqttc::AsyncClient),
    V5(rumqttc::v5::EventLoop, rumqttc::v5::AsyncClient),
}

enum Ev {
    ConnAck,
    Publish(Msg),
    PubAck,
    Disconnected,
    Other,
    Error(String),
}

impl Loop {
    async fn poll(&mut self) -> Ev {
        match self {
            Loop::V4(el, _) => {
                use rumqttc::{Event, Outgoing, Packet};
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Ev::ConnAck,
                    Ok(Event::Incoming(Packet::Publish(p))) => Ev::Publish(Msg {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                        retained: p.retain,
                    }),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Ev::PubAck,
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => Ev::Disconnected,
                    Ok(_) => Ev::Other,
                    Err(e) => Ev::Error(e.to_string()),
                }
            }
            Loop::V5(el, _) => {
                use rumqttc::v5::mqttbytes::v5::Packet;
                use rumqttc::v5::Event;
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Ev::ConnAck,
                    Ok(Event::Incoming(Packet::Publish(p))) => Ev::Publish(Msg {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        retained: p.retain,
                    }),
                    Ok(Event::Incoming(Packet::PubAck(_))) => Ev::PubAck,
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => Ev::Disconnected,
                    Ok(_) => Ev::Other,
                    Err(e) => Ev::Error(e.to_string()),
                }
            }
        }
    }

    /// Subscribes to `filters` (clean sessions: again after every ConnAck).
    async fn subscribe(&mut self, filters: &[String]) {
        match self {
            Loop::V4(_, c) => {
                let subs = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), rumqttc::QoS::AtLeastOnce));
                let _ = c.subscribe_many(subs).await;
            }
            Loop::V5(_, c) => {
                use rumqttc::v5::mqttbytes::v5::Filter;
                let subs = filters
                    .iter()
                    .map(|f| Filter::new(f.clone(), rumqttc::v5::mqttbytes::QoS::AtLeastOnce));
                let _ = c.subscribe_many(subs).await;
            }
        }
    }
}

/// Polls the connection: messages to the inbox, acks counted, the first
/// connection's outcome to `up`; reconnects with a pause of its own.
async fn drive(
    mut el: Loop,
    filters: Vec<String>,
    tx: mpsc::Sender<Msg>,
    up: mpsc::Sender<std::result::Result<(), String>>,
    acks: Arc<AtomicU64>,
    acked: Arc<Notify>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        match el.poll().await {
            Ev::ConnAck => {
                delay = Duration::from_millis(200);
                el.subscribe(&filters).await;
                let _ = up.try_send(Ok(()));
            }
            Ev::Publish(m) => {
                if tx.send(m).await.is_err() {
                    return;
                }
            }
            Ev::PubAck => {
                acks.fetch_add(1, Ordering::SeqCst);
                acked.notify_waiters();
            }
            Ev::Disconnected => return,
            Ev::Other => {}
            Ev::Error(e) => {
                let _ = up.try_send(Err(e));
                if tx.is_closed() {
                    return;
                }
                // rumqttc reconnects at the next poll with no pause of its own.
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
