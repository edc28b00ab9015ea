//! The MQTT client against a real mosquitto on a free loopback port.
//!
//! Each test starts its own broker (`mosquitto -c <tempconf>`), killed on drop. A
//! missing binary fails the test naming the Debian package. The test's own
//! observer is a plain rumqttc client (or `mosquitto_sub` for TLS).

mod common;

use common::free_port;
use farmcast::mqtt::commands::CommandKind;
use farmcast::mqtt::payloads::{Event, EventBody, Status};
use farmcast::mqtt::{self, Incoming, MqttSettings};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;

const PREFIX: &str = "farmcast";
const WAIT: Duration = Duration::from_secs(20);

struct Broker {
    child: Option<Child>,
    conf: PathBuf,
    port: u16,
}

impl Broker {
    /// `extra` is appended to the config (TLS, passwords, ACL).
    fn start(dir: &Path, port: u16, extra: &str) -> Broker {
        let conf = dir.join("mosquitto.conf");
        let mut text = if extra.is_empty() {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
                dir.display()
            )
        } else {
            format!("listener {port} 127.0.0.1\n{extra}")
        };
        // As root, mosquitto would switch to the `mosquitto` user, which cannot
        // read or write our private temp dir.
        if unsafe { libc::geteuid() } == 0 {
            text.push_str("user root\n");
        }
        std::fs::write(&conf, text).unwrap();
        let mut b = Broker {
            child: None,
            conf,
            port,
        };
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
            // A broker that exited (port taken, bad config) must not be mistaken
            // for one that listens.
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "mosquitto exited at start ({st}); config {}",
                        self.conf.display()
                    );
                }
            }
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
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
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
        o.set_clean_session(clean)
            .set_max_packet_size(1 << 20, 1 << 20);
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
        Observer {
            rx,
            backlog: Vec::new(),
            client,
        }
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
            Err(_) => panic!(
                "nothing matching on {topic} within {WAIT:?}; saw {:?}",
                self.backlog
            ),
        }
    }
}

/// Topics of one device; each test has its own device so that nothing is shared.
struct Dev(&'static str);

impl Dev {
    fn availability(&self) -> String {
        mqtt::topics::availability(PREFIX, self.0)
    }
    fn status(&self) -> String {
        mqtt::topics::status(PREFIX, self.0)
    }
    fn cmd(&self) -> String {
        mqtt::topics::cmd(PREFIX, self.0)
    }
    fn result(&self) -> String {
        mqtt::topics::cmd_result(PREFIX, self.0)
    }
    fn events(&self) -> String {
        mqtt::topics::events(PREFIX, self.0)
    }
    fn settings(&self, url: &str, state: &Path) -> MqttSettings {
        let mut s = MqttSettings::new(url, PREFIX, self.0, state);
        s.reconnect_min = Duration::from_millis(200);
        s.reconnect_max = Duration::from_secs(1);
        s
    }
    fn status_doc(&self, state: &str, uptime: u64) -> Status {
        Status {
            state: state.into(),
            device_id: self.0.into(),
            uptime_s: uptime,
            ..Default::default()
        }
    }
}

fn url(port: u16) -> String {
    format!("mqtt://127.0.0.1:{port}")
}

#[tokio::test]
async fn online_status_and_discovery_are_retained() {
    let dev = Dev("farm-ret");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port, "");
    let (h, _rx) = mqtt::spawn(dev.settings(&url(port), &dir.path().join("state"))).unwrap();
    h.set_status(dev.status_doc("standby", 3));
    // Subscribed only now: what it sees is retained.
    let topics = [dev.availability(), dev.status(), "homeassistant/#".into()];
    let mut obs = Observer::new(port, "obs", true, &topics).await;
    obs.until(&dev.availability(), |p| p == "online").await;
    let st = obs
        .until(&dev.status(), |p| p.contains("\"uptime_s\":3"))
        .await;
    let v: Value = serde_json::from_str(&st).unwrap();
    assert_eq!(v["state"], "standby");
    assert_eq!(v["device_id"], dev.0);
    assert_eq!(v["mqtt"]["events_dropped"], 0);
    let disc = obs
        .until("homeassistant/button/farm-ret/go_live/config", |_| true)
        .await;
    let d: Value = serde_json::from_str(&disc).unwrap();
    assert_eq!(d["command_topic"], dev.cmd());
    assert_eq!(d["availability_topic"], dev.availability());
    // Later statuses replace the retained one, and carry the uplink address once
    // the client has found it.
    let found = timeout(WAIT, async {
        for n in 10.. {
            h.set_status(dev.status_doc("live", n));
            let p = obs
                .until(&dev.status(), |p| p.contains(&format!("\"uptime_s\":{n}")))
                .await;
            let v: Value = serde_json::from_str(&p).unwrap();
            assert_eq!(v["state"], "live");
            if v["uplink_addr"] == "127.0.0.1" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "status never carried uplink_addr");
}

#[tokio::test]
async fn commands_arrive_and_are_answered() {
    let dev = Dev("farm-cmd");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port, "");
    let (h, mut rx) = mqtt::spawn(dev.settings(&url(port), &dir.path().join("state"))).unwrap();
    let mut obs = Observer::new(port, "obs", true, &[dev.availability(), dev.result()]).await;
    obs.until(&dev.availability(), |p| p == "online").await;
    // The client subscribes right after ConnAck; repeat the command until it
    // arrives rather than sleeping a fixed time.
    let cmd =
        json!({"id": "c1", "cmd": "tag_product", "args": {"product_id": "mussels"}}).to_string();
    let inc = timeout(WAIT, async {
        loop {
            obs.client
                .publish(dev.cmd(), rumqttc::QoS::AtLeastOnce, false, cmd.clone())
                .await
                .unwrap();
            if let Ok(Some(i)) = timeout(Duration::from_millis(500), rx.recv()).await {
                return i;
            }
        }
    })
    .await
    .expect("command never arrived");
    let Incoming::Command(ic) = inc else {
        panic!("not a command")
    };
    assert_eq!(ic.command.id.as_deref(), Some("c1"));
    assert_eq!(
        ic.command.kind,
        CommandKind::TagProduct {
            product_id: "mussels".into()
        }
    );
    h.reply(&ic, Ok(json!({"tagged": "mussels"})));
    let r = obs
        .until(&dev.result(), |p| {
            p.contains("\"c1\"") && p.contains("tagged")
        })
        .await;
    let v: Value = serde_json::from_str(&r).unwrap();
    assert_eq!(
        v,
        json!({"id": "c1", "ok": true, "result": {"tagged": "mussels"}})
    );

    let bad = [
        (
            "c2",
            json!({"id": "c2", "cmd": "self_destruct"}).to_string(),
            "unknown command",
        ),
        ("c3", json!({"id": "c3"}).to_string(), "no \"cmd\""),
        (
            "c4",
            json!({"id": "c4", "cmd": "calibrate_scale", "args": {"known_kg": "heavy"}})
                .to_string(),
            "bad args",
        ),
        (
            "c5",
            json!({"id": "c5", "cmd": "go_live", "pad": "x".repeat(70_000)}).to_string(),
            "too large",
        ),
    ];
    for (id, payload, why) in bad {
        obs.client
            .publish(dev.cmd(), rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        let r = obs
            .until(&dev.result(), |p| p.contains(&format!("\"{id}\"")))
            .await;
        let v: Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["ok"], false, "{r}");
        assert!(v["error"].as_str().unwrap().contains(why), "{r}");
    }
    // None of the refused commands reached the daemon; only retries of c1 may have.
    while let Ok(Incoming::Command(c)) = rx.try_recv() {
        assert_eq!(c.command.id.as_deref(), Some("c1"));
    }
}

#[tokio::test]
async fn dropping_the_client_fires_the_last_will() {
    let dev = Dev("farm-will");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port, "");
    let (h, rx) = mqtt::spawn(dev.settings(&url(port), &dir.path().join("state"))).unwrap();
    let mut obs = Observer::new(port, "obs", true, &[dev.availability()]).await;
    obs.until(&dev.availability(), |p| p == "online").await;
    drop(h);
    drop(rx);
    obs.until(&dev.availability(), |p| p == "offline").await;
}

#[tokio::test]
async fn reconnects_after_broker_restart_and_delivers_queued_events_in_order() {
    let dev = Dev("farm-restart");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = Broker::start(dir.path(), port, "");
    let (h, _rx) = mqtt::spawn(dev.settings(&url(port), &dir.path().join("state"))).unwrap();
    h.set_status(dev.status_doc("live", 1));
    // A persistent session (saved by mosquitto on SIGTERM), so that events the
    // client publishes before the observer is back are kept for it.
    let mut obs = Observer::new(port, "obs-persistent", false, &[dev.events(), dev.status()]).await;
    obs.until(&dev.status(), |p| p.contains("\"uptime_s\":1"))
        .await;
    h.event(Event::now(EventBody::LiveStarted {
        show_id: "show-0000".into(),
    }));
    obs.until(&dev.events(), |p| p.contains("live_started"))
        .await;

    broker.stop();
    for n in 1..=5 {
        h.event(Event::now(EventBody::DestinationDown {
            name: format!("n{n}"),
            reason: "broker test".into(),
        }));
    }
    h.set_status(dev.status_doc("reconnecting", 77));
    broker.spawn();

    let mut seen = Vec::new();
    while seen.len() < 5 {
        let p = obs
            .until(&dev.events(), |p| p.contains("destination_down"))
            .await;
        let v: Value = serde_json::from_str(&p).unwrap();
        let n: u64 = v["name"].as_str().unwrap()[1..].parse().unwrap();
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        // At least once: a repeat of the last one is allowed, a gap or reorder is not.
        if seen.last() != Some(&n) {
            seen.push(n);
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    // The status set during the outage was published after the reconnect.
    obs.until(&dev.status(), |p| p.contains("\"uptime_s\":77"))
        .await;
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (Debian packages openssl, mosquitto)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for `localhost`/127.0.0.1, made with openssl.
fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=farmcast test CA",
        ]));
    run(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]));
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]));
}

#[tokio::test]
async fn tls_with_password_file_and_acl() {
    let dev = Dev("farm-tls");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_pki(d);
    let passwd = d.join("passwd");
    run(Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["farm-tls", "s3cret-pw"]));
    run(Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&passwd)
        .args(["tech", "tech-pw"]));
    std::fs::write(
        d.join("acl"),
        "user farm-tls\ntopic readwrite farmcast/farm-tls/#\ntopic write homeassistant/#\ntopic read homeassistant/status\n\
         user tech\ntopic read farmcast/#\ntopic write farmcast/+/cmd\n",
    )
    .unwrap();
    let port = free_port();
    let extra = format!(
        "cafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\nallow_anonymous false\npassword_file {0}/passwd\nacl_file {0}/acl\n",
        d.display()
    );
    let _broker = Broker::start(d, port, &extra);
    std::fs::write(d.join("mqtt-password"), "s3cret-pw\n").unwrap();
    let mut s = dev.settings(&format!("mqtts://localhost:{port}"), &d.join("state"));
    s.ca_file = Some(d.join("ca.pem"));
    s.password_file = Some(d.join("mqtt-password"));
    assert!(!format!("{s:?}").contains("s3cret"));
    let (h, _rx) = mqtt::spawn(s).unwrap();
    h.set_status(dev.status_doc("standby", 5));
    // mosquitto_sub as the technician: retained availability and status over TLS.
    let sub = |topic: String| {
        let port = port.to_string();
        let ca = d.join("ca.pem");
        tokio::task::spawn_blocking(move || {
            Command::new("mosquitto_sub")
                .args(["-h", "localhost", "-p", &port, "--cafile"])
                .arg(ca)
                .args([
                    "-u", "tech", "-P", "tech-pw", "-C", "1", "-W", "15", "-t", &topic,
                ])
                .output()
                .expect("mosquitto_sub (Debian package mosquitto-clients)")
        })
    };
    // Retried: the client may not have connected yet when the first one subscribes.
    let mut online = false;
    for _ in 0..10 {
        let out = sub(dev.availability()).await.unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() == "online" {
            online = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(online, "the TLS client never published online");
    let out = sub(dev.status()).await.unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).expect("retained status");
    assert_eq!(v["uptime_s"], 5);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"));
}

#[tokio::test]
async fn mqtt_v5_replies_honour_response_topic_and_correlation_data() {
    // Response topics are honoured under the device's own topics only
    // (tests/control_plane.rs shows a stranger's is not).
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS;
    let dev = Dev("farm-v5");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port, "");
    let mut s = dev.settings(&url(port), &dir.path().join("state"));
    s.protocol = mqtt::Protocol::V5;
    let (h, mut rx) = mqtt::spawn(s).unwrap();

    let mut o = rumqttc::v5::MqttOptions::new("obs-v5", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 16);
    let (tx, mut responses) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let rumqttc::v5::Event::Incoming(Packet::Publish(p)) = ev {
                let corr = p
                    .properties
                    .and_then(|pp| pp.correlation_data)
                    .map(|b| b.to_vec());
                let _ = tx.send((
                    String::from_utf8_lossy(&p.topic).into_owned(),
                    p.payload.to_vec(),
                    corr,
                ));
            }
        }
    });
    let replies = format!("{}/result/tech-7", dev.cmd());
    client
        .subscribe(replies.as_str(), QoS::AtLeastOnce)
        .await
        .unwrap();
    let props = PublishProperties {
        response_topic: Some(replies.clone()),
        correlation_data: Some(b"req-7".to_vec().into()),
        ..Default::default()
    };
    let payload = json!({"id": "v1", "cmd": "probe"}).to_string();
    let inc = timeout(WAIT, async {
        loop {
            client
                .publish_with_properties(
                    dev.cmd(),
                    QoS::AtLeastOnce,
                    false,
                    payload.clone(),
                    props.clone(),
                )
                .await
                .unwrap();
            if let Ok(Some(i)) = timeout(Duration::from_millis(500), rx.recv()).await {
                return i;
            }
        }
    })
    .await
    .expect("v5 command never arrived");
    let Incoming::Command(ic) = inc else {
        panic!("not a command")
    };
    assert_eq!(ic.command.kind, CommandKind::Probe);
    h.reply(&ic, Err("no cameras".into()));
    let (topic, body, corr) = timeout(WAIT, responses.recv())
        .await
        .expect("no v5 response")
        .unwrap();
    assert_eq!(topic, replies);
    assert_eq!(corr.as_deref(), Some(&b"req-7"[..]));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, json!({"id": "v1", "ok": false, "error": "no cameras"}));
}
