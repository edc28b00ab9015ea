//! The connection to the broker: rumqttc options (URL, TLS, credentials, last
//! will), the v3.1.1/v5 difference, and the poll task.
//!
//! The poll task owns the `EventLoop` and does nothing but `poll()`, translate what
//! comes out into [`LinkEvent`]s for the client task, and sleep a capped
//! exponential backoff after each error (rumqttc itself would reconnect at once,
//! forever). It is never cancelled mid-poll, so a half-made TLS handshake is never
//! thrown away by an unrelated wake-up. It ends when the client task goes away,
//! dropping the socket without a DISCONNECT so that the broker sends our will.

use super::client::{MqttSettings, Protocol};
use super::topics;
use crate::backoff::{Backoff, XorShift64};
use crate::config::Secret;
use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Commands larger than 64 KiB are refused by the parser; this bound only keeps a
/// runaway payload from taking memory (a larger one breaks the connection).
const MAX_INCOMING: usize = 1024 * 1024;
/// Snapshots (base64 JPEG) go out on cmd/result. rumqttc refuses to write a
/// larger packet and drops the connection, so the client checks answers
/// against this (and what a v5 broker announces) before sending them.
pub(crate) const MAX_OUTGOING: usize = 8 * 1024 * 1024;
const REQUEST_CAPACITY: usize = 128;
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// ConnAck: a new (clean) session, and the largest packet the broker
    /// takes, when it said (MQTT v5 `maximum_packet_size`).
    Up {
        max_packet: Option<u32>,
    },
    /// The connection failed or broke; the poll task is backing off.
    Down(String),
    Message(Message),
    /// The broker acknowledged one QoS 1 publish (only events use QoS 1).
    PubAck,
}

#[derive(Debug)]
pub(crate) struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// MQTT v5 request/response properties.
    pub response_topic: Option<String>,
    pub correlation: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Qos {
    AtMostOnce,
    AtLeastOnce,
}

/// The publishing half; every method is non-blocking (`try_*`): a full request
/// channel is an error for the caller to handle, never a wait.
pub(crate) enum Publisher {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

impl Publisher {
    pub fn publish(&self, topic: &str, qos: Qos, retain: bool, payload: Vec<u8>) -> Result<()> {
        match self {
            Publisher::V4(c) => c.try_publish(topic, qos4(qos), retain, payload)?,
            Publisher::V5(c) => c.try_publish(topic, qos5(qos), retain, payload)?,
        }
        Ok(())
    }

    /// An MQTT v5 response: to the request's response topic, with its correlation data.
    pub fn publish_response(
        &self,
        topic: &str,
        payload: Vec<u8>,
        correlation: Option<Vec<u8>>,
    ) -> Result<()> {
        match self {
            Publisher::V4(c) => c.try_publish(topic, rumqttc::QoS::AtMostOnce, false, payload)?,
            Publisher::V5(c) => {
                let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
                    correlation_data: correlation.map(Into::into),
                    content_type: Some("application/json".into()),
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, qos5(Qos::AtMostOnce), false, payload, props)?
            }
        }
        Ok(())
    }

    /// A clean DISCONNECT (the broker then drops our will); the poll task
    /// ends once it is sent.
    pub fn disconnect(&self) -> Result<()> {
        match self {
            Publisher::V4(c) => c.try_disconnect()?,
            Publisher::V5(c) => c.try_disconnect()?,
        }
        Ok(())
    }

    pub fn subscribe(&self, topic: &str, qos: Qos) -> Result<()> {
        match self {
            Publisher::V4(c) => c.try_subscribe(topic, qos4(qos))?,
            Publisher::V5(c) => c.try_subscribe(topic, qos5(qos))?,
        }
        Ok(())
    }
}

fn qos4(q: Qos) -> rumqttc::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
    }
}

fn qos5(q: Qos) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    }
}

/// `mqtt://host[:port]` or `mqtts://host[:port]` → (tls, host, port), by
/// the config's one URL parser (the host as rumqttc takes it: `::1`).
pub fn parse_url(url: &str) -> Result<(bool, String, u16)> {
    let b = crate::config::url::broker(url).map_err(|e| anyhow::anyhow!("mqtt.url {e}"))?;
    Ok((b.tls, b.host.connect_str(), b.port))
}

pub(crate) fn read_password(settings: &MqttSettings) -> Result<Option<(String, Secret)>> {
    let Some(path) = &settings.password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the MQTT password file {}", path.display()))?;
    let password = Secret::new(text.trim_end_matches(['\r', '\n']));
    let user = settings
        .username
        .clone()
        .unwrap_or_else(|| settings.device_id.clone());
    Ok(Some((user, password)))
}

pub(crate) fn tls_config(settings: &MqttSettings) -> Result<rustls::ClientConfig> {
    let ca = settings
        .ca_file
        .clone()
        .unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca)
        .with_context(|| format!("reading CA file {}", ca.display()))?
    {
        let cert = cert.with_context(|| format!("parsing CA file {}", ca.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("adding a CA from {}", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("no certificates in CA file {}", ca.display());
    }
    // The provider is passed explicitly, not installed process-wide: nothing else
    // in the daemon then depends on who installed it first.
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_root_certificates(roots);
    match (&settings.client_cert, &settings.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("reading client certificate {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing client certificate {}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading client key {}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .context("client certificate and key")
        }
        _ => bail!("mqtt client_cert and client_key go together"),
    }
}

/// Builds the client for `settings` and starts the poll task.
pub(crate) fn start(
    settings: &MqttSettings,
) -> Result<(
    Publisher,
    mpsc::Receiver<LinkEvent>,
    tokio::task::JoinHandle<()>,
)> {
    let (tls, host, port) = parse_url(&settings.url)?;
    let client_id = settings.client_id();
    let will_topic = topics::availability(&settings.topic_prefix, &settings.device_id);
    let creds = read_password(settings)?;
    let transport = if tls {
        Some(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(tls_config(settings)?)),
        ))
    } else {
        None
    };
    let keep_alive = settings.keep_alive.max(Duration::from_secs(5));
    // At least 10 ms between attempts whatever the settings say: rumqttc
    // would otherwise reconnect in a tight loop against a broker that is down.
    let backoff = Reconnect {
        backoff: Backoff::new(
            settings.reconnect_min.max(Duration::from_millis(10)),
            2,
            settings.reconnect_max,
        ),
        rng: XorShift64::new(seed()),
    };
    // Small: a message can be 1 MiB, and a flood must not queue hundreds.
    let (tx, rx) = mpsc::channel(32);
    match settings.protocol {
        Protocol::V4 => {
            let mut o = rumqttc::MqttOptions::new(client_id, host, port);
            o.set_keep_alive(keep_alive)
                .set_clean_session(true)
                .set_max_packet_size(MAX_INCOMING, MAX_OUTGOING)
                .set_last_will(rumqttc::LastWill::new(
                    will_topic,
                    "offline",
                    rumqttc::QoS::AtLeastOnce,
                    true,
                ));
            if let Some((user, pass)) = creds {
                o.set_credentials(user, pass.expose());
            }
            if let Some(t) = transport {
                o.set_transport(t);
            }
            let (client, el) = rumqttc::AsyncClient::new(o, REQUEST_CAPACITY);
            let task = tokio::spawn(drive_v4(el, tx, backoff));
            Ok((Publisher::V4(client), rx, task))
        }
        Protocol::V5 => {
            let mut o = rumqttc::v5::MqttOptions::new(client_id, host, port);
            o.set_keep_alive(keep_alive)
                .set_clean_start(true)
                .set_max_packet_size(Some(MAX_INCOMING as u32))
                .set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                    will_topic,
                    "offline",
                    qos5(Qos::AtLeastOnce),
                    true,
                    None,
                ));
            if let Some((user, pass)) = creds {
                o.set_credentials(user, pass.expose());
            }
            if let Some(t) = transport {
                o.set_transport(t);
            }
            let (client, el) = rumqttc::v5::AsyncClient::new(o, REQUEST_CAPACITY);
            let task = tokio::spawn(drive_v5(el, tx, backoff));
            Ok((Publisher::V5(client), rx, task))
        }
    }
}

/// Cheap jitter seed, so a fleet that lost the same broker does not come
/// back in lockstep: no RNG crate for this.
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
        .unwrap_or(0)
}

/// The broker reconnect delay: the crate's one backoff and its jitter source.
struct Reconnect {
    backoff: Backoff,
    rng: XorShift64,
}

impl Reconnect {
    fn next(&mut self) -> Duration {
        self.backoff.next_delay(&mut self.rng)
    }

    fn reset(&mut self) {
        self.backoff.reset();
    }
}

async fn drive_v4(mut el: rumqttc::EventLoop, tx: mpsc::Sender<LinkEvent>, mut backoff: Reconnect) {
    use rumqttc::{Event, Packet};
    loop {
        // The EventLoop keeps a sender of its own request channel, so dropping the
        // AsyncClient never ends poll(): watch for the client task going away.
        let polled = tokio::select! {
            r = el.poll() => r,
            _ = tx.closed() => return,
        };
        let ev = match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                LinkEvent::Up { max_packet: None }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => LinkEvent::Message(Message {
                topic: p.topic,
                payload: p.payload.to_vec(),
                response_topic: None,
                correlation: None,
            }),
            Ok(Event::Incoming(Packet::PubAck(_))) => LinkEvent::PubAck,
            // Our own DISCONNECT went out: this link is done.
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(rumqttc::ConnectionError::RequestsDone) => return,
            Err(e) => {
                if tx.send(LinkEvent::Down(e.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}

async fn drive_v5(
    mut el: rumqttc::v5::EventLoop,
    tx: mpsc::Sender<LinkEvent>,
    mut backoff: Reconnect,
) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    loop {
        // The EventLoop keeps a sender of its own request channel, so dropping the
        // AsyncClient never ends poll(): watch for the client task going away.
        let polled = tokio::select! {
            r = el.poll() => r,
            _ = tx.closed() => return,
        };
        let ev = match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                LinkEvent::Up {
                    max_packet: ack.properties.and_then(|p| p.max_packet_size),
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let (response_topic, correlation) = match p.properties {
                    Some(props) => (
                        props.response_topic,
                        props.correlation_data.map(|b| b.to_vec()),
                    ),
                    None => (None, None),
                };
                LinkEvent::Message(Message {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload.to_vec(),
                    response_topic,
                    correlation,
                })
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => LinkEvent::PubAck,
            // Our own DISCONNECT went out: this link is done.
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(rumqttc::v5::ConnectionError::RequestsDone) => return,
            Err(e) => {
                if tx.send(LinkEvent::Down(e.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883").unwrap(),
            (false, "127.0.0.1".into(), 1883)
        );
        assert_eq!(
            parse_url("mqtts://broker.example").unwrap(),
            (true, "broker.example".into(), 8883)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1884").unwrap(),
            (false, "::1".into(), 1884)
        );
        assert_eq!(
            parse_url("mqtt://[::1]").unwrap(),
            (false, "::1".into(), 1883)
        );
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://u:p@h:1",
            "mqtt://h:port",
            "mqtt://h/x",
            "mqtt://[::1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let e = parse_url("mqtt://user:hunter2@h").unwrap_err().to_string();
        assert!(!e.contains("hunter2"));
    }
}
