//! The test's hand on the MQTT side of a daemon test: a plain rumqttc client
//! ([`Observer`]) on its own thread, subscribed (QoS 1) to the topics it was
//! given on every ConnAck, so it follows the broker through a restart.
//!
//! Contract: [`Observer::new`] returns once every subscription is
//! acknowledged; [`Observer::until`] returns the next message on a topic that
//! satisfies a predicate, looking first at those received earlier and not
//! matched yet (the `backlog`), and panics with what it did see after its
//! deadline. Every message ever received is also kept, so a test can check at
//! the end that a secret never went out on any topic.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::wait_until;

/// `mqtt.topic_prefix` as the daemon defaults it.
pub const PREFIX: &str = "farmcast";
/// `device_id` as `TestConfig` writes it.
pub const DEVICE: &str = "test-box";
/// Long enough for a daemon start, a GStreamer pipeline and an RTMP handshake
/// on a loaded two-core machine; a pass takes a fraction of it.
pub const WAIT: Duration = Duration::from_secs(30);

/// The test box's topic `leaf`: `farmcast/test-box/{leaf}`.
pub fn topic(leaf: &str) -> String {
    format!("{PREFIX}/{DEVICE}/{leaf}")
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
}

impl Msg {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.topic, self.payload))
    }
}

/// A rumqttc client subscribed (QoS 1) to its topics on every ConnAck.
pub struct Observer {
    client: rumqttc::Client,
    rx: Receiver<Msg>,
    /// Received, not yet matched by `until`.
    pub backlog: Vec<Msg>,
    /// Everything ever received, for the secret check.
    history: Arc<Mutex<Vec<Msg>>>,
    stop: Arc<AtomicBool>,
}

impl Observer {
    /// Connects as `id` (a persistent session unless `clean`) and returns once
    /// the broker has acknowledged the subscriptions to `topics`.
    pub fn new(port: u16, id: &str, clean: bool, topics: &[&str]) -> Observer {
        Observer::connect(port, id, clean, topics, None)
    }

    /// [`new`](Self::new) with a clean session, logged in as `user`.
    pub fn with_login(port: u16, user: &str, password: &str, topics: &[&str]) -> Observer {
        Observer::connect(port, user, true, topics, Some((user, password)))
    }

    fn connect(
        port: u16,
        id: &str,
        clean: bool,
        topics: &[&str],
        login: Option<(&str, &str)>,
    ) -> Observer {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(clean)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        if let Some((user, password)) = login {
            o.set_credentials(user, password);
        }
        let (client, mut conn) = rumqttc::Client::new(o, 512);
        let (tx, rx) = mpsc::channel();
        let history = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let subacks = Arc::new(AtomicUsize::new(0));
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let n = topics.len();
        {
            let (sub, history, stop, subacks) = (
                client.clone(),
                history.clone(),
                stop.clone(),
                subacks.clone(),
            );
            std::thread::spawn(move || {
                use rumqttc::{Event, Packet};
                for ev in conn.iter() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match ev {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            for t in &topics {
                                let _ = sub.try_subscribe(t.as_str(), rumqttc::QoS::AtLeastOnce);
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            subacks.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let m = Msg {
                                topic: p.topic.clone(),
                                payload: String::from_utf8_lossy(&p.payload).into_owned(),
                                retain: p.retain,
                            };
                            if let Ok(mut h) = history.lock() {
                                h.push(m.clone());
                            }
                            if tx.send(m).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        // The broker is away (restart test): rumqttc reconnects on
                        // the next poll; do not spin.
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            });
        }
        assert!(
            wait_until(WAIT, || subacks.load(Ordering::Relaxed) >= n),
            "observer {id}: subscriptions never acknowledged"
        );
        Observer {
            client,
            rx,
            backlog: Vec::new(),
            history,
            stop,
        }
    }

    /// Publishes at QoS 1, not retained.
    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .expect("observer publish");
    }

    /// Publishes retained, as a fleet manager leaves the desired config.
    pub fn push(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, true, payload)
            .expect("observer publish");
    }

    /// The next message on `topic` satisfying `pred`, looking first at those
    /// received earlier and not matched yet; panics after `within` with the
    /// newest unmatched messages (statuses left out unless `topic` is one:
    /// they come every second and would hide the rest).
    pub fn until(&mut self, topic: &str, within: Duration, pred: impl Fn(&Msg) -> bool) -> Msg {
        if let Some(i) = self
            .backlog
            .iter()
            .position(|m| m.topic == topic && pred(m))
        {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) if m.topic == topic && pred(&m) => return m,
                Ok(m) => self.backlog.push(m),
                Err(_) => {
                    let statuses = topic.ends_with("/status");
                    let seen: Vec<String> = self
                        .backlog
                        .iter()
                        .rev()
                        .filter(|m| statuses || !m.topic.ends_with("/status"))
                        .take(20)
                        .map(|m| format!("{}: {}", m.topic, short(&m.payload)))
                        .collect();
                    panic!("nothing matching on {topic} within {within:?}; last seen (newest first): {seen:#?}");
                }
            }
        }
    }

    /// [`until`](Self::until) on the box's topic `leaf`, for JSON payloads.
    pub fn until_json(
        &mut self,
        leaf: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.until(&topic(leaf), within, |m| {
            serde_json::from_str::<Value>(&m.payload).is_ok_and(|v| pred(&v))
        })
        .json()
    }

    /// Moves everything received so far into the backlog.
    pub fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.backlog.push(m);
        }
    }

    /// Forgets everything received so far (the secret check still sees it).
    pub fn clear(&mut self) {
        while self.rx.try_recv().is_ok() {}
        self.backlog.clear();
    }

    /// Every JSON message on the box's topic `leaf` received and not matched
    /// yet, in order.
    pub fn pending(&mut self, leaf: &str) -> Vec<Value> {
        self.drain();
        let topic = topic(leaf);
        self.backlog
            .iter()
            .filter(|m| m.topic == topic)
            .map(Msg::json)
            .collect()
    }

    /// Publishes a command with `id` and waits for the `cmd/result` answering it.
    pub fn command(&mut self, id: &str, cmd: Value) -> Value {
        let mut cmd = cmd;
        cmd["id"] = json!(id);
        self.publish(&topic("cmd"), cmd.to_string());
        self.result(id)
    }

    /// The `cmd/result` answering `id`.
    pub fn result(&mut self, id: &str) -> Value {
        self.until_json("cmd/result", WAIT, |v| v["id"] == id)
    }

    /// The next status whose state is `state`.
    pub fn status(&mut self, state: &str) -> Value {
        self.until_json("status", WAIT, |v| v["state"] == state)
    }

    /// Waits for `online` and the first `standby` status from a daemon just started.
    pub fn wait_standby(&mut self) -> Value {
        self.until(&topic("availability"), WAIT, |m| m.payload == "online");
        self.status("standby")
    }

    /// Panics if `secret` was in the topic or payload of anything ever
    /// received (or if nothing was received, which would prove nothing).
    pub fn assert_no_secret(&self, secret: &str) {
        let h = self.history.lock().expect("observer history");
        assert!(!h.is_empty(), "the observer saw nothing at all");
        for m in h.iter() {
            assert!(
                !m.topic.contains(secret) && !m.payload.contains(secret),
                "the stream key went out on {}: {}",
                m.topic,
                short(&m.payload)
            );
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// A fresh clean-session client's view of `topic`: the retained message, which
/// the broker sends at once on subscribing. Panics if it is not retained.
pub fn retained(port: u16, topic: &str) -> Msg {
    let id = format!("retained-{}", std::process::id());
    let mut o = Observer::new(port, &id, true, &[topic]);
    let m = o.until(topic, Duration::from_secs(5), |_| true);
    assert!(m.retain, "{topic} is not retained: {}", short(&m.payload));
    m
}

/// `s` cut to at most 300 bytes (on a char boundary) for a panic message.
pub fn short(s: &str) -> String {
    if s.len() <= 300 {
        s.to_string()
    } else {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}
