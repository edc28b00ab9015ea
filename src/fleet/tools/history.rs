//! `farmcast fleet history --group G`: what the broker holds for a group,
//! nothing stored anywhere else: the group's desired envelope (version, hash,
//! apply, signed), the device-level envelopes of its boxes (canaries and
//! `--device` pushes) and each box's last report against them.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::conn::{BrokerArgs, Conn};
use super::status::report_filters;
use super::view::{DesiredView, FleetView};
use crate::excerpt::excerpt;

#[derive(Debug, Clone, clap::Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[arg(long)]
    pub group: String,
}

fn describe(d: &DesiredView) -> String {
    format!(
        "v{} {} hash {}…{}{}",
        d.version,
        d.target,
        &d.hash[..12.min(d.hash.len())],
        d.apply
            .as_deref()
            .map_or(String::new(), |a| format!(" apply {a}")),
        if d.signed { "" } else { " UNSIGNED" }
    )
}

/// The history text for `group` from what `view` holds.
pub fn render(view: &FleetView, group: &str) -> String {
    let mut out = String::new();
    let desired = view.group_desired.get(group);
    match desired {
        Some(d) => out.push_str(&format!(
            "group {}: desired {}\n",
            excerpt(group),
            describe(d)
        )),
        None => out.push_str(&format!(
            "group {}: nothing pushed (no retained envelope)\n",
            excerpt(group)
        )),
    }
    let boxes = view.sorted(Some(group));
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for b in &boxes {
        let r = b.reported.as_ref();
        let on_group = match (r, desired) {
            (Some(r), Some(d)) => r.version == Some(d.version) && r.hash == d.hash,
            _ => false,
        };
        let what = match r {
            Some(r) if on_group => format!("group v{} {}", r.version.unwrap_or(0), r.status),
            Some(r) => match r.version {
                Some(v) => format!("v{v} {}", r.status),
                // A rollback to the local file alone answers no version.
                None => r.status.clone(),
            },
            None => "no report".into(),
        };
        *tally.entry(what.clone()).or_default() += 1;
        let mut l = format!("  {:<24} {what}", excerpt(&b.id));
        if let Some(d) = &b.desired {
            l.push_str(&format!("; device layer {}", describe(d)));
        }
        if let Some(e) = r.and_then(|r| r.error.as_ref()) {
            l.push_str(&format!("; {e}"));
        }
        out.push_str(&l);
        out.push('\n');
    }
    let counts: Vec<String> = tally.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out.push_str(&format!("{} boxes: {}\n", boxes.len(), counts.join(", ")));
    out
}

pub async fn run(args: &HistoryArgs) -> Result<u8> {
    let prefix = &args.broker.prefix;
    let mut filters = report_filters(prefix);
    filters.push(format!("{prefix}/+/config/desired"));
    filters.push(crate::mqtt::topics::fleet_config_desired(
        prefix,
        &args.group,
    ));
    let (mut conn, retained) =
        Conn::open(&args.broker, "history", &filters, Duration::from_secs(5)).await?;
    let mut view = FleetView::new(prefix);
    let now = Instant::now();
    for m in &retained {
        view.on_message(&m.topic, &m.payload, m.retained, now);
    }
    print!("{}", render(&view, &args.group));
    conn.disconnect().await;
    Ok(0)
}
