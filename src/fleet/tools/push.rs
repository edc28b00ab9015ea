//! `farmcast fleet push`: sign (as `config sign`), publish retained, follow
//! every box of the target on `config/reported` with a live tally; with
//! `--canary`, a few boxes first (see [`super::canary`]).
//!
//! Exit status: 0 when every box applied (or waits for its show, or was
//! offline: the retained envelope waits for it), 1 when a box rejected or
//! rolled back or a canary stopped the rollout, 3 when online boxes did not
//! answer within `--wait`.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use super::canary::{self, CanarySize, Rollout, Step};
use super::conn::{BrokerArgs, Conn};
use super::status::report_filters;
use super::tally::{bar, summary, Outcome, Tally};
use super::view::{BoxView, FleetView, ReportView, Topic};
use crate::excerpt::excerpt;
use crate::fleet::envelope::Apply;

#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Ed25519 private key, PEM (`openssl genpkey -algorithm ed25519`).
    #[arg(long)]
    pub key: PathBuf,
    /// Push to a group (`P/fleet/<group>/config/desired`).
    #[arg(long, required_unless_present = "device", conflicts_with = "device")]
    pub group: Option<String>,
    /// Push to one box (`P/<device>/config/desired`).
    #[arg(long)]
    pub device: Option<String>,
    /// Must be newer than the version the boxes run for this target.
    #[arg(long)]
    pub version: u64,
    /// `now` or `after_show` (a v2 envelope); absent: waits for the show.
    #[arg(long, value_parser = crate::fleet::cli::parse_apply)]
    pub apply: Option<Apply>,
    /// Follow the boxes for at most this many seconds.
    #[arg(long, default_value_t = 120)]
    pub wait: u64,
    /// First push to N boxes (or P% of the group) and stop at the first
    /// rejection or rollback before the group push.
    #[arg(long, value_parser = canary::parse_size, requires = "group")]
    pub canary: Option<CanarySize>,
    /// How long each canary box must stay healthy after applying, seconds
    /// (longer than the daemon's 30 s trial, so its rollback is seen).
    #[arg(long, default_value_t = 35)]
    pub canary_hold: u64,
    /// Once every box answered, keep following this many seconds after the
    /// last `applied` for rollbacks (a box rolls back a config that does not
    /// reach standby within its 30 s trial). 0: return at once.
    #[arg(long, default_value_t = 35)]
    pub hold: u64,
    /// The layer (TOML): any subset of the config file's keys.
    pub file: PathBuf,
}

struct Progress {
    tty: bool,
    last: Option<Instant>,
    last_text: String,
}

impl Progress {
    fn show(&mut self, phase: &str, tally: &Tally, now: Instant, force: bool) {
        let c = tally.counts();
        let text = format!("{phase}: {}", summary(&c));
        let due = self.last.is_none_or(|t| {
            now.duration_since(t) >= Duration::from_millis(if self.tty { 200 } else { 2000 })
        });
        if !force && (!due || text == self.last_text) {
            return;
        }
        self.last = Some(now);
        let mut out = std::io::stdout().lock();
        if self.tty {
            let done = c.applied + c.pending + c.rejected + c.rolled_back;
            let _ = write!(out, "\r\x1b[2K{} {text}", bar(done, c.total, 30));
            if force {
                let _ = writeln!(out);
            }
        } else {
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
        self.last_text = text;
    }
}

fn desired_topic(prefix: &str, target: &str) -> String {
    match target.strip_prefix("group:") {
        Some(g) => crate::mqtt::topics::fleet_config_desired(prefix, g),
        None => crate::mqtt::topics::config_desired(prefix, target),
    }
}

pub async fn run(args: &PushArgs) -> Result<u8> {
    let layer = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read the layer {}", args.file.display()))?;
    let hash = crate::fleet::reported::hash(&layer);
    let target = match (&args.group, &args.device) {
        (Some(g), _) => format!("group:{g}"),
        (None, Some(d)) => d.clone(),
        (None, None) => bail!("--group or --device"),
    };
    let sign = |t: &str| {
        crate::fleet::cli::sign_command(&args.key, t, args.version, args.apply, &args.file)
    };
    // Checked and signed before anything is published.
    let envelope = sign(&target)?;
    let prefix = args.broker.prefix.clone();
    let (mut conn, retained) = Conn::open(
        &args.broker,
        "push",
        &report_filters(&prefix),
        Duration::from_secs(5),
    )
    .await?;
    let mut view = FleetView::new(&prefix);
    let t0 = Instant::now();
    for m in &retained {
        view.on_message(&m.topic, &m.payload, m.retained, t0);
    }
    let deadline = t0 + Duration::from_secs(args.wait);
    let mut progress = Progress {
        tty: std::io::stdout().is_terminal(),
        last: None,
        last_text: String::new(),
    };
    let members: Vec<String> = match (&args.group, &args.device) {
        (Some(g), _) => view.sorted(Some(g)).iter().map(|b| b.id.clone()).collect(),
        (_, Some(d)) => vec![d.clone()],
        _ => Vec::new(),
    };
    if members.is_empty() {
        println!(
            "no box reports group {} in its status yet; the push waits for them (retained)",
            excerpt(args.group.as_deref().unwrap_or(""))
        );
    }

    if let (Some(size), Some(_)) = (args.canary, &args.group) {
        let boxes: Vec<_> = members.iter().filter_map(|id| view.boxes.get(id)).collect();
        let picked = canary::pick(&boxes, size);
        if picked.is_empty() {
            bail!("no box of the group is online and off air to take the canary");
        }
        println!(
            "canary: {} box(es) first: {}",
            picked.len(),
            picked
                .iter()
                .map(|i| excerpt(i))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let chosen: Vec<_> = picked.iter().filter_map(|id| view.boxes.get(id)).collect();
        let now = Instant::now();
        let mut rollout = Rollout::new(
            args.version,
            &hash,
            &chosen,
            Duration::from_secs(args.canary_hold),
            now,
        );
        for id in &picked {
            conn.publish(&desired_topic(&prefix, id), sign(id)?.into_bytes(), true)
                .await?;
        }
        conn.flush(Duration::from_secs(10)).await?;
        loop {
            let now = Instant::now();
            match rollout.poll(now) {
                Some(Step::PushGroup) => {
                    progress.show("canary", &rollout.tally, now, true);
                    println!(
                        "canary healthy for {} s: pushing to the group",
                        args.canary_hold
                    );
                    break;
                }
                Some(Step::Stop(why)) => {
                    progress.show("canary", &rollout.tally, now, true);
                    println!("STOPPED: {why}");
                    conn.disconnect().await;
                    return Ok(1);
                }
                None => {}
            }
            progress.show("canary", &rollout.tally, now, false);
            if now >= deadline {
                progress.show("canary", &rollout.tally, now, true);
                println!("STOPPED: the canary boxes were not healthy within --wait {} s; the group was not pushed", args.wait);
                conn.disconnect().await;
                return Ok(3);
            }
            let wake = rollout
                .next_deadline(now)
                .unwrap_or(now + Duration::from_millis(250))
                .min(now + Duration::from_millis(250));
            let Some((id, topic, now)) = next_box(&mut conn, &mut view, wake).await? else {
                continue;
            };
            if let Some(b) = view.boxes.get(&id) {
                feed(&mut rollout, b, &prefix, &topic, now);
            }
        }
    }

    let pushed_at = Instant::now();
    conn.publish(
        &desired_topic(&prefix, &target),
        envelope.into_bytes(),
        true,
    )
    .await?;
    conn.flush(Duration::from_secs(10)).await?;
    println!(
        "pushed version {} to {} ({} box(es) known)",
        args.version,
        excerpt(&target),
        members.len()
    );
    let mut tally = Tally::new(args.version, &hash, pushed_at);
    for id in &members {
        let b = view.boxes.get(id);
        tally.add(
            id,
            b.and_then(|b| b.online),
            b.and_then(|b| b.reported.as_ref()),
            b.is_some(),
            pushed_at,
        );
    }
    let hold = Duration::from_secs(args.hold);
    let mut holding = false;
    loop {
        let now = Instant::now();
        progress.show("push", &tally, now, false);
        let end = if tally.settled() {
            if hold.is_zero() {
                break;
            }
            if !holding {
                holding = true;
                progress.show("push", &tally, now, true);
                println!(
                    "every box answered; watching {} s more for rollbacks (--hold)",
                    args.hold
                );
            }
            let last = pushed_at + tally.last_applied().unwrap_or_default();
            (last + hold).min(deadline)
        } else {
            deadline
        };
        if now >= end {
            break;
        }
        let wake = (now + Duration::from_millis(250)).min(end);
        let Some((id, topic, now)) = next_box(&mut conn, &mut view, wake).await? else {
            continue;
        };
        let Some(b) = view.boxes.get(&id) else {
            continue;
        };
        let member = match &args.group {
            Some(g) => b.in_group(g),
            None => args.device.as_deref() == Some(id.as_str()),
        };
        if member && !tally.contains(&id) {
            // A box first seen now: it was away when the push went out.
            tally.add(&id, b.online, b.reported.as_ref(), false, now);
            continue;
        }
        feed(&mut tally, b, &prefix, &topic, now);
    }
    progress.show("push", &tally, Instant::now(), true);
    conn.disconnect().await;
    Ok(report(&tally))
}

/// The next message about a box before `wake`, taken into `view`: the
/// device, the topic and when it arrived. `None` at `wake` or for other topics.
async fn next_box(
    conn: &mut Conn,
    view: &mut FleetView,
    wake: Instant,
) -> Result<Option<(String, String, Instant)>> {
    let m = match tokio::time::timeout_at(wake.into(), conn.recv()).await {
        Ok(Some(m)) => m,
        Ok(None) => bail!("the MQTT connection ended"),
        Err(_) => return Ok(None),
    };
    let now = Instant::now();
    let id = view.on_message(&m.topic, &m.payload, m.retained, now);
    Ok(id.map(|id| (id, m.topic, now)))
}

/// What follows the boxes: the canary's rollout and the group's tally.
trait Follow {
    fn report(&mut self, id: &str, r: &ReportView, now: Instant);
    fn availability(&mut self, id: &str, online: bool, now: Instant);
    fn state(&mut self, _id: &str, _state: &str) {}
}

impl Follow for Tally {
    fn report(&mut self, id: &str, r: &ReportView, now: Instant) {
        self.on_report(id, r, now);
    }
    fn availability(&mut self, id: &str, online: bool, now: Instant) {
        self.on_availability(id, online, now);
    }
}

impl Follow for Rollout {
    fn report(&mut self, id: &str, r: &ReportView, now: Instant) {
        self.on_report(id, r, now);
    }
    fn availability(&mut self, id: &str, online: bool, now: Instant) {
        self.on_availability(id, online, now);
    }
    fn state(&mut self, id: &str, state: &str) {
        self.on_state(id, state);
    }
}

/// Hands what a message on `topic` changed in box `b` to `f`.
fn feed(f: &mut impl Follow, b: &BoxView, prefix: &str, topic: &str, now: Instant) {
    match super::view::classify(prefix, topic) {
        Some(Topic::Reported(_)) => {
            if let Some(r) = &b.reported {
                f.report(&b.id, r, now);
            }
        }
        Some(Topic::Availability(_)) => {
            if let Some(on) = b.online {
                f.availability(&b.id, on, now);
            }
        }
        Some(Topic::Status(_)) => {
            if let Some(s) = &b.state {
                f.state(&b.id, s);
            }
        }
        _ => {}
    }
}

/// The lines after the tally, and the exit status.
fn report(tally: &Tally) -> u8 {
    let c = tally.counts();
    if let Some(d) = tally.last_applied() {
        println!("last applied {:.1} s after the push", d.as_secs_f64());
    }
    let mut shown = 0;
    for (id, e) in tally.entries() {
        let interesting = e.late || !matches!(e.outcome, Outcome::Applied);
        if !interesting {
            continue;
        }
        shown += 1;
        if shown > 50 {
            continue;
        }
        let mut l = format!("  {:<24} {}", excerpt(id), e.outcome.as_str());
        if e.late {
            l.push_str(" (late: was offline at the push)");
        }
        if e.outcome == Outcome::Offline {
            l.push_str(" (takes it when it comes back: the push is retained)");
        }
        match (&e.field, &e.error) {
            (Some(f), Some(err)) => l.push_str(&format!(": {f}: {err}")),
            (None, Some(err)) => l.push_str(&format!(": {err}")),
            (Some(f), None) => l.push_str(&format!(": {f}")),
            (None, None) => {}
        }
        println!("{l}");
    }
    if shown > 50 {
        println!("  ... and {} more", shown - 50);
    }
    if tally.failed() {
        1
    } else if c.waiting > 0 {
        3
    } else {
        0
    }
}
