//! A staged rollout: the push goes first to a few boxes (device-level
//! envelopes), and to the group only once each of them has applied it and
//! stayed healthy for `hold`. Sans-IO: reports, availability and states in
//! with the time; [`Step`]s out; [`Rollout::next_deadline`] says when to poll.
//!
//! Healthy means: applied, not rolled back since, and in `standby` or `live`
//! `hold` after applying (the daemon rolls back a config that does not reach
//! standby, so a hold longer than its trial sees that rollback). The first
//! rejection or rollback stops the rollout before the group push.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::tally::{Outcome, Tally};
use super::view::{BoxView, ReportView};

/// How many boxes go first: a count, or a percentage of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanarySize {
    Count(usize),
    Percent(u8),
}

/// `3` or `10%`.
pub fn parse_size(s: &str) -> Result<CanarySize, String> {
    let bad = || format!("expected a count (3) or a percentage (10%), got {s:?}");
    match s.strip_suffix('%') {
        Some(p) => match p.trim().parse::<u8>() {
            Ok(p) if (1..=100).contains(&p) => Ok(CanarySize::Percent(p)),
            _ => Err(bad()),
        },
        None => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(CanarySize::Count(n)),
            _ => Err(bad()),
        },
    }
}

/// The canary boxes: online and not in a show, by device id, the first
/// `size` of them (a percentage of all `boxes`, at least one).
pub fn pick(boxes: &[&BoxView], size: CanarySize) -> Vec<String> {
    let n = match size {
        CanarySize::Count(n) => n,
        CanarySize::Percent(p) => (boxes.len() * usize::from(p)).div_ceil(100).max(1),
    };
    let mut ids: Vec<&str> = boxes
        .iter()
        .filter(|b| b.online == Some(true) && !b.is_live() && b.state.is_some())
        .map(|b| b.id.as_str())
        .collect();
    ids.sort_unstable();
    ids.into_iter().take(n).map(str::to_string).collect()
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every canary box is healthy: push to the group.
    PushGroup,
    /// Do not push to the group; the reason names the box and what it said.
    Stop(String),
}

#[derive(Debug)]
pub struct Rollout {
    pub tally: Tally,
    hold: Duration,
    applied_at: BTreeMap<String, Instant>,
    states: BTreeMap<String, String>,
    done: bool,
}

impl Rollout {
    /// Canary boxes `ids`, with their availability, state and retained report.
    pub fn new(
        version: u64,
        hash: &str,
        canary: &[&BoxView],
        hold: Duration,
        now: Instant,
    ) -> Rollout {
        let mut tally = Tally::new(version, hash, now);
        let mut states = BTreeMap::new();
        for b in canary {
            tally.add(&b.id, b.online, b.reported.as_ref(), true, now);
            if let Some(s) = &b.state {
                states.insert(b.id.clone(), s.clone());
            }
        }
        let mut r = Rollout {
            tally,
            hold,
            applied_at: BTreeMap::new(),
            states,
            done: false,
        };
        r.note_applied(now);
        r
    }

    fn note_applied(&mut self, now: Instant) {
        for (id, e) in self.tally.entries() {
            if e.outcome == Outcome::Applied && !self.applied_at.contains_key(id) {
                self.applied_at.insert(id.clone(), now);
            }
        }
    }

    pub fn on_report(&mut self, id: &str, r: &ReportView, now: Instant) {
        if let Some(o) = self.tally.on_report(id, r, now) {
            if o == Outcome::Applied {
                self.applied_at.insert(id.to_string(), now);
            } else {
                self.applied_at.remove(id);
            }
        }
    }

    pub fn on_availability(&mut self, id: &str, online: bool, now: Instant) {
        self.tally.on_availability(id, online, now);
    }

    pub fn on_state(&mut self, id: &str, state: &str) {
        if self.tally.contains(id) {
            self.states.insert(id.to_string(), state.to_string());
        }
    }

    fn healthy(&self, id: &str, now: Instant) -> bool {
        let state = self.states.get(id).map(String::as_str);
        self.applied_at
            .get(id)
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.hold)
            && matches!(state, Some("standby" | "live"))
    }

    /// The step due at `now`, once: a stop at the first failure, the group
    /// push once every canary box is healthy.
    pub fn poll(&mut self, now: Instant) -> Option<Step> {
        if self.done {
            return None;
        }
        if let Some((id, e)) = self.tally.first_failure() {
            self.done = true;
            let why = match (&e.field, &e.error) {
                (Some(f), Some(err)) => format!("{f}: {err}"),
                (None, Some(err)) => err.clone(),
                _ => "no reason given".into(),
            };
            return Some(Step::Stop(format!(
                "canary box {id} {}: {why}; the group was not pushed",
                e.outcome.as_str().replace('_', " ")
            )));
        }
        let ids: Vec<&String> = self.tally.entries().map(|(id, _)| id).collect();
        if !ids.is_empty() && ids.iter().all(|id| self.healthy(id, now)) {
            self.done = true;
            return Some(Step::PushGroup);
        }
        None
    }

    /// When a canary box's hold ends next (`None`: nothing to wait for but messages).
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.applied_at
            .values()
            .map(|t| *t + self.hold)
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
#[path = "canary_tests.rs"]
mod tests;
