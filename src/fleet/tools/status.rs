//! `farmcast fleet status`: one line per box from the retained topics,
//! problems first; `--watch` redraws in place; `--json` for machines.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::conn::{BrokerArgs, Conn};
use super::view::{BoxView, FleetView};
use crate::excerpt::excerpt;

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Only the boxes in this group (from their status).
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// Keep following and redraw every 2 s.
    #[arg(long)]
    pub watch: bool,
}

/// The topics a fleet view is built from.
pub fn report_filters(prefix: &str) -> Vec<String> {
    ["availability", "status", "config/reported"]
        .iter()
        .map(|t| format!("{prefix}/+/{t}"))
        .collect()
}

fn human_bytes(b: u64) -> String {
    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;
    if b >= G {
        format!("{:.1}G", b as f64 / G as f64)
    } else {
        format!("{}M", b / M)
    }
}

fn report_cell(b: &BoxView) -> String {
    match &b.reported {
        None => "-".into(),
        Some(r) => {
            // A rollback to the local file alone answers no version.
            let mut s = match r.version {
                Some(v) => format!("v{v} {}", r.status),
                None => r.status.clone(),
            };
            if let Some(f) = &r.field {
                s.push_str(&format!(" ({f})"));
            }
            s
        }
    }
}

/// One box's line (every field already bounded by the view).
pub fn line(b: &BoxView, now: Instant) -> String {
    let avail = match b.online {
        Some(true) => "online",
        Some(false) => "OFFLINE",
        None => "?",
    };
    let seen = match b.seen_ago(now) {
        Some(d) => format!("{}s ago", d.as_secs()),
        None => "retained".into(),
    };
    let mut l = format!(
        "{:<24} {:<7} {:<12} {:<8} cfg {:<5} {:<22} uplink {:<15} disk {:<7} {seen}",
        excerpt(&b.id),
        avail,
        b.state.as_deref().unwrap_or("?"),
        b.version.as_deref().unwrap_or("?"),
        b.config_version.map_or("?".into(), |v| v.to_string()),
        report_cell(b),
        b.uplink.as_deref().unwrap_or("-"),
        b.disk_free_bytes.map_or("-".into(), human_bytes),
    );
    if let Some(e) = b.reported.as_ref().and_then(|r| r.error.as_ref()) {
        l.push_str(&format!("\n    config: {e}"));
    }
    for p in &b.problems {
        l.push_str(&format!("\n    {p}"));
    }
    l
}

/// The whole table: a summary line, then one line per box.
pub fn render(view: &FleetView, group: Option<&str>, now: Instant) -> String {
    let boxes = view.sorted(group);
    let online = boxes.iter().filter(|b| b.online == Some(true)).count();
    let live = boxes.iter().filter(|b| b.is_live()).count();
    let problems = boxes
        .iter()
        .filter(|b| b.rank() <= super::view::Rank::Offline)
        .count();
    let mut out = format!(
        "{} boxes{}: {online} online, {live} live, {problems} with problems\n",
        boxes.len(),
        group.map_or(String::new(), |g| format!(" in group {}", excerpt(g))),
    );
    for b in boxes {
        out.push_str(&line(b, now));
        out.push('\n');
    }
    if view.ignored > 0 {
        out.push_str(&format!(
            "({} message(s) ignored: device ids over 128 bytes, or boxes beyond {})\n",
            view.ignored,
            super::view::MAX_BOXES
        ));
    }
    out
}

pub fn render_json(view: &FleetView, group: Option<&str>, now: Instant) -> String {
    let rows: Vec<serde_json::Value> = view
        .sorted(group)
        .into_iter()
        .map(|b| {
            let mut v = serde_json::to_value(b).unwrap_or_default();
            v["seen_s_ago"] = serde_json::json!(b.seen_ago(now).map(|d| d.as_secs()));
            v
        })
        .collect();
    serde_json::to_string_pretty(&rows).unwrap_or_default()
}

pub async fn run(args: &StatusArgs) -> Result<u8> {
    let filters = report_filters(&args.broker.prefix);
    let (mut conn, retained) =
        Conn::open(&args.broker, "status", &filters, Duration::from_secs(5)).await?;
    let mut view = FleetView::new(&args.broker.prefix);
    let now = Instant::now();
    for m in &retained {
        view.on_message(&m.topic, &m.payload, m.retained, now);
    }
    let group = args.group.as_deref();
    if !args.watch {
        let text = if args.json {
            render_json(&view, group, now)
        } else {
            render(&view, group, now)
        };
        println!("{text}");
        conn.disconnect().await;
        return Ok(0);
    }
    let mut redraw = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            m = conn.recv() => match m {
                Some(m) => { view.on_message(&m.topic, &m.payload, m.retained, Instant::now()); }
                None => anyhow::bail!("the MQTT connection ended"),
            },
            _ = redraw.tick() => {
                let text = render(&view, group, Instant::now());
                // Home, clear the screen, draw: in place on a terminal.
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\x1b[H\x1b[2J{text}");
                let _ = out.flush();
            }
            _ = tokio::signal::ctrl_c() => {
                conn.disconnect().await;
                return Ok(0);
            }
        }
    }
}
