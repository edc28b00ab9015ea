//! The fleet as the retained topics tell it: one [`BoxView`] per device,
//! built from `availability`, `status` and `config/reported` (and the
//! desired envelopes, for `fleet history`). Pure: messages and the time in.
//!
//! Everything here came from the broker, where any client may have written
//! anything: documents are capped in size, strings are excerpted, lists are
//! cut, and the number of boxes is bounded, so a hostile retained message
//! costs a line marked unreadable, never the tool.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::excerpt::{excerpt, excerpt_n};

/// Larger documents are not parsed (a status is about 1 KB).
pub const MAX_DOC: usize = 64 * 1024;
/// Boxes beyond this many are counted, not kept.
pub const MAX_BOXES: usize = 100_000;
const MAX_LIST: usize = 16;

/// A box's `config/reported`, bounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportView {
    pub version: Option<u64>,
    pub status: String,
    pub hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A desired envelope seen on a topic (its config is not kept, only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredView {
    pub version: u64,
    pub target: String,
    pub hash: String,
    pub apply: Option<String>,
    pub signed: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BoxView {
    /// The topic level as sent (at most 128 bytes): excerpt it to show it.
    pub id: String,
    /// `availability`: `Some(true)` online, `Some(false)` offline.
    pub online: Option<bool>,
    pub state: Option<String>,
    pub version: Option<String>,
    pub config_version: Option<u64>,
    pub groups: Vec<String>,
    pub uplink: Option<String>,
    pub disk_free_bytes: Option<u64>,
    /// The status's `errors`, and documents that could not be read.
    pub problems: Vec<String>,
    pub reported: Option<ReportView>,
    /// The device-level desired envelope (a canary or a `--device` push).
    pub desired: Option<DesiredView>,
    /// When a message from it last arrived live (not from the broker's store).
    #[serde(skip)]
    pub last_seen: Option<Instant>,
}

/// How urgent a box's line is; lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    Failed,
    Broken,
    Offline,
    Pending,
    Unknown,
    Ok,
}

impl BoxView {
    pub fn rank(&self) -> Rank {
        let report = self.reported.as_ref().map(|r| r.status.as_str());
        if matches!(report, Some("rejected" | "rolled_back")) {
            Rank::Failed
        } else if self.state.as_deref() == Some("error") || !self.problems.is_empty() {
            Rank::Broken
        } else if self.online == Some(false) {
            Rank::Offline
        } else if report == Some("pending") {
            Rank::Pending
        } else if self.online.is_none() || self.state.is_none() {
            Rank::Unknown
        } else {
            Rank::Ok
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Live in a show: a canary never picks it.
    pub fn is_live(&self) -> bool {
        matches!(
            self.state.as_deref(),
            Some("live" | "connecting" | "reconnecting")
        )
    }

    pub fn seen_ago(&self, now: Instant) -> Option<Duration> {
        self.last_seen.map(|t| now.saturating_duration_since(t))
    }
}

/// What a topic is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Availability(String),
    Status(String),
    Reported(String),
    Desired(String),
    GroupDesired(String),
}

/// The topic's kind and device (or group), or `None` for other topics.
pub fn classify(prefix: &str, topic: &str) -> Option<Topic> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let id = |s: &str| s.to_string();
    match parts.as_slice() {
        ["fleet", group, "config", "desired"] => Some(Topic::GroupDesired(id(group))),
        [d, "availability"] => Some(Topic::Availability(id(d))),
        [d, "status"] => Some(Topic::Status(id(d))),
        [d, "config", "reported"] => Some(Topic::Reported(id(d))),
        [d, "config", "desired"] => Some(Topic::Desired(id(d))),
        _ => None,
    }
}

/// The fleet seen so far.
#[derive(Debug, Default)]
pub struct FleetView {
    pub prefix: String,
    pub boxes: BTreeMap<String, BoxView>,
    pub group_desired: BTreeMap<String, DesiredView>,
    /// Messages for boxes beyond [`MAX_BOXES`], or on ids too long to be one.
    pub ignored: u64,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(excerpt)
}

fn parse_doc(payload: &[u8]) -> Result<Value, String> {
    if payload.len() > MAX_DOC {
        return Err(format!("{} bytes, more than {MAX_DOC}", payload.len()));
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(excerpt_n(&e.to_string(), 80)),
    }
}

/// An envelope's public parts; `None` when the payload is not one.
pub fn desired_view(payload: &[u8]) -> Option<DesiredView> {
    let env = crate::fleet::envelope::parse(payload).ok()?;
    Some(DesiredView {
        version: env.version,
        target: excerpt(&env.target),
        hash: crate::fleet::reported::hash(&env.config),
        apply: env.apply.map(|a| a.as_str().to_string()),
        signed: env.is_signed(),
    })
}

impl FleetView {
    pub fn new(prefix: &str) -> Self {
        FleetView {
            prefix: prefix.to_string(),
            ..Default::default()
        }
    }

    fn entry(&mut self, id: &str) -> Option<&mut BoxView> {
        // A device id is a topic level a box chose; a very long one is junk.
        if id.is_empty() || id.len() > 128 {
            self.ignored += 1;
            return None;
        }
        if !self.boxes.contains_key(id) && self.boxes.len() >= MAX_BOXES {
            self.ignored += 1;
            return None;
        }
        Some(self.boxes.entry(id.to_string()).or_insert_with(|| BoxView {
            id: id.to_string(),
            ..Default::default()
        }))
    }

    /// Takes one message; returns the device it was about, if any.
    pub fn on_message(
        &mut self,
        topic: &str,
        payload: &[u8],
        retained: bool,
        now: Instant,
    ) -> Option<String> {
        let kind = classify(&self.prefix, topic)?;
        if let Topic::GroupDesired(g) = &kind {
            if g.len() <= 128 {
                match desired_view(payload) {
                    Some(d) => self.group_desired.insert(g.clone(), d),
                    None => self.group_desired.remove(g),
                };
            }
            return None;
        }
        let id = match &kind {
            Topic::Availability(d) | Topic::Status(d) | Topic::Reported(d) | Topic::Desired(d) => {
                d.clone()
            }
            Topic::GroupDesired(_) => return None,
        };
        // An empty retained payload deletes the retained message.
        if payload.is_empty() {
            if let Some(b) = self.boxes.get_mut(&id) {
                match kind {
                    Topic::Reported(_) => b.reported = None,
                    Topic::Desired(_) => b.desired = None,
                    _ => {}
                }
            }
            return Some(id);
        }
        let b = self.entry(&id)?;
        if !retained {
            b.last_seen = Some(now);
        }
        match kind {
            Topic::Availability(_) => {
                b.online = match payload {
                    b"online" => Some(true),
                    b"offline" => Some(false),
                    _ => None,
                }
            }
            Topic::Status(_) => apply_status(b, payload),
            Topic::Reported(_) => {
                b.problems.retain(|p| !p.starts_with("config/reported"));
                match parse_doc(payload) {
                    Ok(v) => b.reported = Some(report_view(&v)),
                    Err(e) => {
                        b.reported = None;
                        b.problems.push(format!("config/reported unreadable: {e}"));
                    }
                }
            }
            Topic::Desired(_) => b.desired = desired_view(payload),
            Topic::GroupDesired(_) => {}
        }
        Some(id)
    }

    /// Boxes in `group` (all when `None`), problems first, then by id.
    pub fn sorted(&self, group: Option<&str>) -> Vec<&BoxView> {
        let mut v: Vec<&BoxView> = self
            .boxes
            .values()
            .filter(|b| group.is_none_or(|g| b.in_group(g)))
            .collect();
        v.sort_by(|a, b| a.rank().cmp(&b.rank()).then_with(|| a.id.cmp(&b.id)));
        v
    }
}

fn report_view(v: &Value) -> ReportView {
    ReportView {
        version: v.get("version").and_then(Value::as_u64),
        status: text(v, "status").unwrap_or_else(|| "?".into()),
        hash: text(v, "hash").unwrap_or_default(),
        error: v
            .get("error")
            .and_then(Value::as_str)
            .map(|e| excerpt_n(e, 160)),
        field: text(v, "field"),
        note: v
            .get("note")
            .and_then(Value::as_str)
            .map(|e| excerpt_n(e, 160)),
    }
}

fn apply_status(b: &mut BoxView, payload: &[u8]) {
    b.problems.retain(|p| !p.starts_with("status"));
    let v = match parse_doc(payload) {
        Ok(v) => v,
        Err(e) => {
            b.problems.push(format!("status unreadable: {e}"));
            return;
        }
    };
    // Short words on a real box; a line stays a line whatever is written.
    let word = |key: &str| v.get(key).and_then(Value::as_str).map(|s| excerpt_n(s, 16));
    b.state = word("state");
    b.version = word("version");
    b.config_version = v.get("config_version").and_then(Value::as_u64);
    b.uplink = text(&v, "uplink_addr");
    b.disk_free_bytes = v
        .get("recording")
        .and_then(|r| r.get("free_bytes"))
        .and_then(Value::as_u64);
    b.groups = v
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .take(MAX_LIST)
                .map(excerpt)
                .collect()
        })
        .unwrap_or_default();
    if let Some(errors) = v.get("errors").and_then(Value::as_object) {
        for (part, why) in errors.iter().take(MAX_LIST) {
            let why = why.as_str().map(|w| excerpt_n(w, 80)).unwrap_or_default();
            b.problems.push(format!("status: {}: {why}", excerpt(part)));
        }
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
