//! Where one push stands on every box of its target: a sans-IO machine fed
//! the boxes' `availability` and `config/reported` with the time, read for
//! the live tally, for when to stop waiting and for the exit status.
//!
//! A report answers the push when it carries the push's version and the hash
//! of its layer. A `rolled_back` report carries the layer the box went back
//! to, so it counts against the push when it arrives after the push began.
//! A box that was offline (or unknown) at the push and applies it later is
//! `applied`, marked late: the retained envelope waited for it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::view::ReportView;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Rejected,
    RolledBack,
    /// Online and no answer yet.
    Waiting,
    Offline,
    /// Taken; in force when the show ends.
    Pending,
    Applied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Rejected => "rejected",
            Outcome::RolledBack => "rolled_back",
            Outcome::Waiting => "waiting",
            Outcome::Offline => "offline",
            Outcome::Pending => "pending",
            Outcome::Applied => "applied",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub outcome: Outcome,
    /// Offline or not yet known when the push began, or went offline before answering.
    pub was_away: bool,
    /// Applied after having been away.
    pub late: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Since the push, when the outcome was reached.
    #[serde(skip)]
    pub after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: usize,
    pub applied: usize,
    pub late: usize,
    pub pending: usize,
    pub waiting: usize,
    pub offline: usize,
    pub rejected: usize,
    pub rolled_back: usize,
}

#[derive(Debug, Clone)]
pub struct Tally {
    version: u64,
    hash: String,
    started: Instant,
    entries: BTreeMap<String, Entry>,
}

impl Tally {
    /// A push of `version` whose layer hashes to `hash`, begun at `now`.
    pub fn new(version: u64, hash: &str, now: Instant) -> Self {
        Tally {
            version,
            hash: hash.to_string(),
            started: now,
            entries: BTreeMap::new(),
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// A box of the target, as known when it was added: `online` from its
    /// availability, `report` its retained report. `known_at_push` is false
    /// for a box first seen after the push began.
    pub fn add(
        &mut self,
        id: &str,
        online: Option<bool>,
        report: Option<&ReportView>,
        known_at_push: bool,
        now: Instant,
    ) {
        let away = online != Some(true) || !known_at_push;
        let outcome = if online == Some(true) {
            Outcome::Waiting
        } else {
            Outcome::Offline
        };
        self.entries.insert(
            id.to_string(),
            Entry {
                outcome,
                was_away: away,
                late: false,
                error: None,
                field: None,
                after: None,
            },
        );
        // A box that already answered this version (a retained report).
        if let Some(r) = report.filter(|r| self.answers(r)) {
            self.on_report(id, r, now);
        }
    }

    fn answers(&self, r: &ReportView) -> bool {
        r.version == Some(self.version) && r.hash == self.hash
    }

    pub fn on_availability(&mut self, id: &str, online: bool, _now: Instant) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        match (e.outcome, online) {
            (Outcome::Waiting, false) => {
                e.outcome = Outcome::Offline;
                e.was_away = true;
            }
            (Outcome::Offline, true) => e.outcome = Outcome::Waiting,
            _ => {}
        }
    }

    /// A report from `id`; returns the new outcome when it changed.
    pub fn on_report(&mut self, id: &str, r: &ReportView, now: Instant) -> Option<Outcome> {
        let ours = self.answers(r);
        let after = now.saturating_duration_since(self.started);
        let e = self.entries.get_mut(id)?;
        let outcome = match r.status.as_str() {
            "applied" if ours => Outcome::Applied,
            "pending" if ours => Outcome::Pending,
            "rejected" if ours => Outcome::Rejected,
            // It answers no envelope: the box went back from what it ran.
            "rolled_back"
                if matches!(
                    e.outcome,
                    Outcome::Applied | Outcome::Pending | Outcome::Waiting | Outcome::Offline
                ) =>
            {
                Outcome::RolledBack
            }
            _ => return None,
        };
        if outcome == e.outcome {
            return None;
        }
        e.outcome = outcome;
        e.late = outcome == Outcome::Applied && e.was_away;
        e.error = r.error.clone();
        e.field = r.field.clone();
        e.after = Some(after);
        Some(outcome)
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            total: self.entries.len(),
            ..Counts::default()
        };
        for e in self.entries.values() {
            match e.outcome {
                Outcome::Applied => c.applied += 1,
                Outcome::Pending => c.pending += 1,
                Outcome::Waiting => c.waiting += 1,
                Outcome::Offline => c.offline += 1,
                Outcome::Rejected => c.rejected += 1,
                Outcome::RolledBack => c.rolled_back += 1,
            }
            if e.late {
                c.late += 1;
            }
        }
        c
    }

    /// Every box answered (a pending one has: it waits for its show).
    pub fn settled(&self) -> bool {
        self.entries
            .values()
            .all(|e| !matches!(e.outcome, Outcome::Waiting | Outcome::Offline))
    }

    pub fn failed(&self) -> bool {
        self.entries
            .values()
            .any(|e| matches!(e.outcome, Outcome::Rejected | Outcome::RolledBack))
    }

    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// The first box that rejected or rolled back, with why.
    pub fn first_failure(&self) -> Option<(&String, &Entry)> {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e.outcome, Outcome::Rejected | Outcome::RolledBack))
            .min_by_key(|(_, e)| e.after)
    }

    /// When the last box applied, since the push began.
    pub fn last_applied(&self) -> Option<Duration> {
        self.entries
            .values()
            .filter(|e| e.outcome == Outcome::Applied)
            .filter_map(|e| e.after)
            .max()
    }
}

/// One line for a terminal: `applied 198/200 (late 1) · pending 1 · ...`.
pub fn summary(c: &Counts) -> String {
    let mut parts = vec![format!("applied {}/{}", c.applied, c.total)];
    if c.late > 0 {
        parts[0].push_str(&format!(" (late {})", c.late));
    }
    for (n, what) in [
        (c.pending, "pending until the show ends"),
        (c.waiting, "waiting"),
        (c.offline, "offline"),
        (c.rejected, "rejected"),
        (c.rolled_back, "rolled back"),
    ] {
        if n > 0 {
            parts.push(format!("{what} {n}"));
        }
    }
    parts.join(" · ")
}

/// `[#####.....]` of `width` for done out of total.
pub fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

#[cfg(test)]
#[path = "tally_tests.rs"]
mod tests;
