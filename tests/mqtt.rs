//! The MQTT client against a real mosquitto on a free loopback port.
//!
//! Each test starts its own broker (`mosquitto -c <tempconf>`), killed on drop. A
//! missing binary fails the test naming the Debian package. The test's own
//! observer is a plain rumqttc client (or `mosquitto_sub` for TLS).

use farmcast::mqtt::commands::CommandKind;
use farmcast::mqtt::payloads::{Event, Status};
use farmcast::mqtt::{self, Incoming, MqttHandle, MqttSettings};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;

const PREFIX: &str = "farmcast";
const WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Broker {
    child: Option<Child>,
    conf: PathBuf,
    port: u16,
}

impl Broker {
    /// `extra` is appended to the config (TLS, passwords, ACL).
    fn start(dir: &Path, port: u16, extra: &str) -> Broker {
        let conf = dir.join("mosquitto.conf");
        let text = if extra.is_empty() {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
                dir.display()
            )
        } else {
            format!("listener {port} 127.0.0.1\n{extra}")
        };
        std::fs::write(&conf, text).unwrap();
        let mut b = Broker { child: None, conf, port };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run mosquitto ({e}); install the Debian package `mosquitto`")
            });
        self.child = Some(child);
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mosquitto did not listen on port {}", self.port);
    }

    /// SIGTERM, so that mosquitto saves its persistent sessions.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A test client subscribed to `topics`; messages come out as (topic, payload).
struct Observer {
    rx: mpsc::UnboundedReceiver<(String, String)>,
    backlog: Vec<(String, String)>,
    client: rumqttc::AsyncClient,
}

impl Observer {
    async fn new(port: u16, id: &str, clean: bool, topics: &[String]) -> Observer {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(clean).set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let subs = client.clone();
        let topics = topics.to_vec();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        for t in &topics {
                            let _ = subs.subscribe(t, rumqttc::QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let s = String::from_utf8_lossy(&p.payload).into_owned();
                        if tx.send((p.topic, s)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Observer { rx, backlog: Vec::new(), client }
    }

    /// The next message on `topic` satisfying `pred`, looking first at those
    /// received earlier and not yet matched.
    async fn until(&mut self, topic: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self.backlog.iter().position(|(t, p)| t == topic && pred(p)) {
            return self.backlog.remove(i).1;
        }
        let backlog = &mut self.backlog;
        let rx = &mut self.rx;
        let fut = async {
            while let Some((t, p)) = rx.recv().await {
                if t == topic && pred(&p) {
                    return p;
                }
                backlog.push((t, p));
            }
            panic!("observer ended");
        };
        match timeout(WAIT, fut).await {
            Ok(p) => p,
            Err(_) => panic!("nothing matching on {topic} within {WAIT:?}; saw {:?}", self.backlog),
        }
    }
}

fn t(kind: fn(&str, &str) -> String) -> String {
    kind(PREFIX, "farm-01")
}

fn settings(port: u16, state: &Path) -> MqttSettings {
    let mut s = MqttSettings::new(&format!("mqtt://127.0.0.1:{port}"), PREFIX, "farm-01", state);
    s.reconnect_min = Duration::from_millis(200);
    s.reconnect_max = Duration::from_secs(1);
    s
}

fn status(state: &str, uptime: u64) -> Status {
    Status { state: state.into(), device_id: "farm-01".into(), uptime_s: uptime, ..Default::default() }
}

async fn start_client(s: MqttSettings) -> (MqttHandle, mpsc::Receiver<Incoming>) {
    mqtt::spawn(s).expect("spawn")
}

#[tokio::test]
async fn online_status_and_discovery_are_retained() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port, "");
    let (h, _rx) = start_client(settings(port, &dir.path().join("state"))).await;
    h.set_status(status("standby", 3));
    // Subscribed only now: what it sees is retained.
    let mut obs = Observer::new(port, "obs", true, &[t(topics_availability), t(topics_status), "homeassistant/#".into()]).await;
    obs.until(&t(topics_availability), |p| p == "online").await;
    let st = obs.until(&t(topics_status), |p| p.contains("\"uptime_s\":3")).await;
    let v: Value = serde_json::from_str(&st).unwrap();
    assert_eq!(v["state"], "standby");
    assert_eq!(v["device_id"], "farm-01");
    assert_eq!(v["uplink_addr"].as_str().map(|_| ()), v["uplink_addr"].as_str().map(|_| ()));
    let disc = obs
        .until("homeassistant/button/farm-01/go_live/config", |_| true)
        .await;
    let d: Value = serde_json::from_str(&disc).unwrap();
    assert_eq!(d["command_topic"], t(topics_cmd));
    assert_eq!(d["availability_topic"], t(topics_availability));
    // A later status replaces the retained one.
    h.set_status(status("live", 9));
    obs.until(&t(topics_status), |p| p.contains("\"state\":\"live\"")).await;
}

fn topics_availability(p: &str, d: &str) -> String {
    mqtt::topics::availability(p, d)
}
fn topics_status(p: &str, d: &str) -> String {
    mqtt::topics::status(p, d)
}
fn topics_cmd(p: &str, d: &str) -> String {
    mqtt::topics::cmd(p, d)
}
fn topics_result(p: &str, d: &str) -> String {
    mqtt::topics::cmd_result(p, d)
}
fn topics_events(p: &str, d: &str) -> String {
    mqtt::topics::events(p, d)
}

#[tokio::test]
async fn commands_arrive_and_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port, "");
    let (h, mut rx) = start_client(settings(port, &dir.path().join("state"))).await;
    let mut obs = Observer::new(port, "obs", true, &[t(topics_availability), t(topics_result)]).await;
    obs.until(&t(topics_availability), |p| p == "online").await;
    // The client subscribes right after ConnAck; give the subscription a moment by
    // repeating the command until it arrives rather than sleeping a fixed time.
    let cmd = json!({"id": "c1", "cmd": "tag_product", "args": {"product_id": "mussels"}}).to_string();
    let inc = timeout(WAIT, async {
        loop {
            obs.client.publish(t(topics_cmd), rumqttc::QoS::AtLeastOnce, false, cmd.clone()).await.unwrap();
            if let Ok(Some(i)) = timeout(Duration::from_millis(500), rx.recv()).await {
                return i;
            }
        }
    })
    .await
    .expect("command never arrived");
    let Incoming::Command(ic) = inc else { panic!("not a command") };
    assert_eq!(ic.command.id.as_deref(), Some("c1"));
    assert_eq!(ic.command.kind, CommandKind::TagProduct { product_id: "mussels".into() });
    h.reply(&ic, Ok(json!({"tagged": "mussels"})));
    let r = obs.until(&t(topics_result), |p| p.contains("\"c1\"")).await;
    let v: Value = serde_json::from_str(&r).unwrap();
    assert_eq!(v, json!({"id": "c1", "ok": true, "result": {"tagged": "mussels"}}));

    let bad = [
        ("c2", json!({"id": "c2", "cmd": "self_destruct"}).to_string(), "unknown command"),
        ("c3", json!({"id": "c3"}).to_string(), "no \\\"cmd\\\""),
        ("c4", json!({"id": "c4", "cmd": "calibrate_scale", "args": {"known_kg": "heavy"}}).to_string(), "bad args"),
        ("c5", json!({"id": "c5", "cmd": "go_live", "pad": "x".repeat(70_000)}).to_string(), "too large"),
    ];
    for (id, payload, why) in bad {
        obs.client.publish(t(topics_cmd), rumqttc::QoS::AtLeastOnce, false, payload).await.unwrap();
        let r = obs.until(&t(topics_result), |p| p.contains(&format!("\"{id}\""))).await;
        let v: Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["ok"], false, "{r}");
        assert!(v["error"].as_str().unwrap().contains(why.trim_matches('\\')) || r.contains(why), "{r}");
    }
    // None of the refused commands reached the daemon.
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn dropping_the_client_fires_the_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port, "");
    let (h, rx) = start_client(settings(port, &dir.path().join("state"))).await;
    let mut obs = Observer::new(port, "obs", true, &[t(topics_availability)]).await;
    obs.until(&t(topics_availability), |p| p == "online").await;
    drop(h);
    drop(rx);
    obs.until(&t(topics_availability), |p| p == "offline").await;
}

#[tokio::test]
async fn reconnects_after_broker_restart_and_delivers_queued_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = Broker::start(dir.path(), port, "");
    let (h, _rx) = start_client(settings(port, &dir.path().join("state"))).await;
    h.set_status(status("live", 1));
    // A persistent session, so that events published before it reconnects are kept for it.
    let mut obs = Observer::new(port, "obs-persistent", false, &[t(topics_events), t(topics_status)]).await;
    obs.until(&t(topics_status), |p| p.contains("\"uptime_s\":1")).await;
    h.event(Event::now("live_started").with("n", 0));
    obs.until(&t(topics_events), |p| p.contains("live_started")).await;

    broker.stop();
    for n in 1..=5 {
        h.event(Event::now("destination_down").with("n", n));
    }
    h.set_status(status("reconnecting", 77));
    broker.spawn();

    let mut seen = Vec::new();
    while seen.len() < 5 {
        let p = obs.until(&t(topics_events), |p| p.contains("destination_down")).await;
        let v: Value = serde_json::from_str(&p).unwrap();
        let n = v["n"].as_u64().unwrap();
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        // At least once: a repeat of the last one is allowed, a gap or reorder is not.
        if seen.last() != Some(&n) {
            seen.push(n);
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    // The status set during the outage was published after the reconnect.
    obs.until(&t(topics_status), |p| p.contains("\"uptime_s\":77")).await;
}
