//! A fleet simulator for tests and the benchmark: many boxes in one process,
//! no media. Each box is the daemon's fleet side as it is: its own state
//! folder and local file, the real [`Session`] (checks, store, last known
//! good, rollback) and the real MQTT client (`availability` with its will,
//! retained `status` and `config/reported`, the desired topics). What the
//! pipeline would do is a flag: a box told to fail rolls back after its
//! trial, as the daemon does when the new config never reaches standby.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use tokio::sync::mpsc;

use crate::fleet::{Action, Reported, Session, Store};
use crate::mqtt::payloads::Status;
use crate::mqtt::{Incoming, MqttHandle, MqttSettings};

/// How long a failing box runs the new config before it rolls back (the
/// daemon's trial is longer; the order of reports is the same).
const SIM_TRIAL: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub broker: String,
    pub prefix: String,
    pub group: String,
    pub boxes: usize,
    /// Box `i` is `<id_prefix>-<i, 4 digits>`.
    pub id_prefix: String,
    /// One folder per box is made under it.
    pub dir: PathBuf,
    /// The fleet manager's public key (PEM) every box trusts.
    pub trusted_pem: String,
    pub status_interval: Duration,
    /// Boxes that trust another key, so they reject every push (`signature`).
    pub reject: Vec<usize>,
    /// Boxes whose pipeline fails with any new config: they roll back.
    pub fail: Vec<usize>,
    /// Boxes in a show from the start.
    pub live: Vec<usize>,
    /// Boxes that start offline.
    pub offline: Vec<usize>,
    /// fsync the boxes' state files as the daemon does (on by default).
    pub fsync: bool,
}

impl SimOptions {
    pub fn new(broker: &str, group: &str, boxes: usize, dir: &Path, trusted_pem: &str) -> Self {
        SimOptions {
            broker: broker.into(),
            prefix: "farmcast".into(),
            group: group.into(),
            boxes,
            id_prefix: "sim".into(),
            dir: dir.into(),
            trusted_pem: trusted_pem.into(),
            status_interval: Duration::from_secs(5),
            reject: Vec::new(),
            fail: Vec::new(),
            live: Vec::new(),
            offline: Vec::new(),
            fsync: true,
        }
    }

    pub fn id(&self, i: usize) -> String {
        format!("{}-{i:04}", self.id_prefix)
    }
}

enum Ctl {
    Online(bool),
    Live(bool),
}

/// What a box did last, for tests.
#[derive(Debug, Clone, Default)]
pub struct BoxSeen {
    pub connected: bool,
    pub reported: Option<Reported>,
}

struct BoxCtl {
    id: String,
    tx: mpsc::UnboundedSender<Ctl>,
    seen: Arc<Mutex<BoxSeen>>,
}

/// The running boxes; dropping it ends them (their wills then say `offline`).
pub struct Simulator {
    rt: Option<tokio::runtime::Runtime>,
    boxes: Vec<BoxCtl>,
}

/// A public key no push is signed with.
fn stranger_pem() -> Result<String> {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .context("PEM of a key")
}

fn local_file(o: &SimOptions, id: &str) -> String {
    format!(
        "device_id = \"{id}\"\n\n[mqtt]\nurl = \"{}\"\ntopic_prefix = \"{}\"\nstatus_interval_s = {}\nhass_discovery = false\n\n\
         [fleet]\ngroups = [\"{}\"]\ntrusted_keys_file = \"trusted.pem\"\n",
        o.broker,
        o.prefix,
        o.status_interval.as_secs().max(1),
        o.group
    )
}

impl Simulator {
    /// Writes every box's folder and starts them on a runtime of their own.
    pub fn start(o: &SimOptions) -> Result<Simulator> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("tokio runtime")?;
        let stranger = stranger_pem()?;
        let mut boxes = Vec::with_capacity(o.boxes);
        for i in 0..o.boxes {
            let id = o.id(i);
            let dir = o.dir.join(&id);
            std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
            let pem = if o.reject.contains(&i) {
                &stranger
            } else {
                &o.trusted_pem
            };
            std::fs::write(dir.join("trusted.pem"), pem)?;
            let file = local_file(o, &id);
            std::fs::write(dir.join("farmcast.toml"), &file)?;
            let store = Store::open(&dir.join("state"))?;
            let store = if o.fsync {
                store
            } else {
                let fleet_dir = dir.join("state").join("fleet");
                Store::with_disk(fleet_dir, Box::new(NoSyncDisk))
            };
            let started = Session::start(store, file, dir.clone())
                .map_err(|ps| anyhow::anyhow!("{id}: local file does not load: {ps:?}"))?;
            let mut settings = MqttSettings::new(&o.broker, &o.prefix, &id, dir.join("state"));
            settings.fleet_groups = vec![o.group.clone()];
            settings.hass_discovery = false;
            settings.reconnect_min = Duration::from_millis(100);
            settings.reconnect_max = Duration::from_secs(2);
            let (tx, rx) = mpsc::unbounded_channel();
            let seen = Arc::new(Mutex::new(BoxSeen::default()));
            let sim = SimBox {
                id: id.clone(),
                settings,
                session: started.session,
                fail: o.fail.contains(&i),
                live: o.live.contains(&i),
                interval: o.status_interval,
                started: Instant::now(),
                seen: seen.clone(),
            };
            rt.spawn(sim.run(rx, !o.offline.contains(&i)));
            boxes.push(BoxCtl { id, tx, seen });
        }
        Ok(Simulator {
            rt: Some(rt),
            boxes,
        })
    }

    pub fn ids(&self) -> Vec<String> {
        self.boxes.iter().map(|b| b.id.clone()).collect()
    }

    /// Box `i` goes offline (its socket drops, the will says so) or back.
    pub fn set_online(&self, i: usize, online: bool) {
        let _ = self.boxes[i].tx.send(Ctl::Online(online));
    }

    /// Box `i` starts or ends a show.
    pub fn set_live(&self, i: usize, live: bool) {
        let _ = self.boxes[i].tx.send(Ctl::Live(live));
    }

    pub fn seen(&self, i: usize) -> BoxSeen {
        self.boxes[i]
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// How many boxes are connected to the broker now.
    pub fn connected(&self) -> usize {
        (0..self.boxes.len())
            .filter(|&i| self.seen(i).connected)
            .count()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

struct SimBox {
    id: String,
    settings: MqttSettings,
    session: Session,
    fail: bool,
    live: bool,
    interval: Duration,
    started: Instant,
    seen: Arc<Mutex<BoxSeen>>,
}

type Link = (MqttHandle, mpsc::Receiver<Incoming>);

/// The session writes and fsyncs its files, as on a box. Here hundreds of
/// boxes share two worker threads: without this one box's fsync would hold
/// back every other box, which real boxes, each with its own disk, never do.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The real file system without fsync: many boxes on one disk measure the
/// disk's queue, not the fleet (`SimOptions::fsync = false`, benchmarks only).
struct NoSyncDisk;

impl crate::fleet::store::Disk for NoSyncDisk {
    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        crate::fleet::store::RealDisk.read(path)
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        crate::fleet::store::RealDisk.write_new(path, bytes)
    }
    fn sync_file(&self, _: &Path) -> std::io::Result<()> {
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, _: &Path) -> std::io::Result<()> {
        Ok(())
    }
}

impl SimBox {
    async fn run(mut self, mut ctl: mpsc::UnboundedReceiver<Ctl>, online: bool) {
        let mut link: Option<Link> = if online { self.connect() } else { None };
        let mut tick = tokio::time::interval(self.interval);
        let mut connected_tick = tokio::time::interval(Duration::from_millis(200));
        let mut rollback_at: Option<tokio::time::Instant> = None;
        loop {
            let incoming = async {
                match &mut link {
                    Some((_, rx)) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let rollback = async {
                match rollback_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // A push (the daemon's on_push, without the pipeline).
                inc = incoming => match inc {
                    Some(Incoming::DesiredConfig { source, payload }) => {
                        if !self.session.is_current(&source, &payload) {
                            let live = self.live;
                            let (r, a) = blocking(|| self.session.handle(&source, &payload, live));
                            rollback_at = self.act(&link, r, a).or(rollback_at);
                        }
                    }
                    Some(Incoming::Command(_)) => {}
                    None => link = None,
                },
                c = ctl.recv() => match c {
                    Some(Ctl::Online(true)) if link.is_none() => link = self.connect(),
                    // Dropped without DISCONNECT: the broker publishes the will.
                    Some(Ctl::Online(false)) => {
                        link = None;
                        self.note(|s| s.connected = false);
                    }
                    Some(Ctl::Online(true)) => {}
                    Some(Ctl::Live(live)) => {
                        self.live = live;
                        if !live {
                            if let Some((r, a)) = blocking(|| self.session.show_ended()) {
                                rollback_at = self.act(&link, r, a).or(rollback_at);
                            }
                        }
                        self.status(&link);
                    }
                    None => return,
                },
                _ = rollback => {
                    rollback_at = None;
                    let why = "the box did not reach standby with the new configuration (simulated)";
                    if let Some((r, _)) = blocking(|| self.session.roll_back(why)) {
                        self.report(&link, &r);
                    }
                    self.status(&link);
                }
                _ = tick.tick() => self.status(&link),
                _ = connected_tick.tick() => {
                    let up = link.as_ref().is_some_and(|(h, _)| h.is_connected());
                    self.note(|s| s.connected = up);
                }
            }
        }
    }

    fn connect(&self) -> Option<Link> {
        match crate::mqtt::spawn(self.settings.clone()) {
            Ok(l) => {
                self.publish_status(&l.0);
                Some(l)
            }
            Err(e) => {
                tracing::error!(box_id = %self.id, "{e:#}");
                None
            }
        }
    }

    fn note(&self, f: impl FnOnce(&mut BoxSeen)) {
        if let Ok(mut s) = self.seen.lock() {
            f(&mut s);
        }
    }

    fn report(&self, link: &Option<Link>, r: &Reported) {
        if let Some((h, _)) = link {
            h.report_config(r.to_json());
        }
        self.note(|s| s.reported = Some(r.clone()));
    }

    /// Reports and "runs" the session's action; a failing box schedules its rollback.
    fn act(&mut self, link: &Option<Link>, r: Reported, a: Action) -> Option<tokio::time::Instant> {
        self.report(link, &r);
        let changed = !matches!(a, Action::None);
        if changed && self.fail {
            return Some(tokio::time::Instant::now() + SIM_TRIAL);
        }
        if changed {
            if let Err(e) = blocking(|| self.session.confirm_running()) {
                tracing::warn!(box_id = %self.id, "{e:#}");
            }
        }
        self.status(link);
        None
    }

    fn status(&self, link: &Option<Link>) {
        if let Some((h, _)) = link {
            self.publish_status(h);
        }
    }

    fn publish_status(&self, h: &MqttHandle) {
        h.set_status(Status {
            state: if self.live { "live" } else { "standby" }.into(),
            device_id: self.id.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_version: self.session.config_version(),
            // A plausible recordings disk, so tables look like a fleet's.
            recording: crate::mqtt::payloads::RecordingStatus {
                used_bytes: 0,
                free_bytes: 24 << 30,
            },
            ..Status::default()
        });
    }
}
