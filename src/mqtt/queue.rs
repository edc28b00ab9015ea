//! A bounded event queue kept on disk, so that events survive a broker outage and a
//! restart of the daemon.
//!
//! Layout in the state directory:
//! - `events.jsonl`: append-only, one `{"seq": N, "event": {...}}` a line;
//! - `events.acked`: the highest `seq` already delivered (or dropped).
//!
//! Loading skips lines at or below the acked seq and lines that do not parse (a torn
//! last line after a power cut), so neither file has to be written atomically with
//! the other. The queue holds at most `cap` events: a push into a full queue drops
//! the oldest and counts it. The log is compacted when it is empty (truncate) or
//! holds more than twice `cap` lines (rewrite and rename). Writes are not fsynced:
//! a daemon crash loses nothing, a power cut may lose the last moments, and the SD
//! card is spared a sync per event.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub const DEFAULT_CAP: usize = 1000;
const LOG: &str = "events.jsonl";
const ACKED: &str = "events.acked";

#[derive(Serialize)]
struct LineOut<'a> {
    seq: u64,
    event: &'a Value,
}

#[derive(Deserialize)]
struct LineIn {
    seq: u64,
    event: Value,
}

pub struct EventQueue {
    dir: PathBuf,
    log: File,
    /// (seq, event) oldest first.
    items: VecDeque<(u64, Value)>,
    next_seq: u64,
    acked_through: u64,
    log_lines: usize,
    cap: usize,
    dropped: u64,
}

impl EventQueue {
    /// Opens (or creates) the queue in `dir`, keeping at most `cap` events.
    pub fn open(dir: &Path, cap: usize) -> Result<Self> {
        let cap = cap.max(1);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let acked_through = std::fs::read_to_string(dir.join(ACKED))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let mut items = VecDeque::new();
        let mut max_seq = acked_through;
        let log_path = dir.join(LOG);
        if let Ok(f) = File::open(&log_path) {
            // split on '\n' rather than lines(): a torn line may not be UTF-8.
            for raw in BufReader::new(f).split(b'\n') {
                let raw = raw.with_context(|| format!("reading {}", log_path.display()))?;
                let Ok(line) = serde_json::from_slice::<LineIn>(&raw) else {
                    continue;
                };
                max_seq = max_seq.max(line.seq);
                if line.seq > acked_through {
                    items.push_back((line.seq, line.event));
                }
            }
        }
        let mut dropped = 0;
        while items.len() > cap {
            items.pop_front();
            dropped += 1;
        }
        let log = File::create(dir.join(LOG))
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut q = EventQueue {
            dir: dir.to_path_buf(),
            log,
            items,
            next_seq: max_seq + 1,
            acked_through,
            log_lines: 0,
            cap,
            dropped,
        };
        // Start from a clean file: no torn tail for the next append to glue onto.
        q.rewrite()?;
        Ok(q)
    }

    /// Appends one event (any JSON value), dropping the oldest when full.
    pub fn push<T: Serialize>(&mut self, event: &T) -> Result<()> {
        let event = serde_json::to_value(event).context("serializing event")?;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.append(seq, &event)?;
        self.items.push_back((seq, event));
        if self.items.len() > self.cap {
            if let Some((s, _)) = self.items.pop_front() {
                self.dropped += 1;
                self.set_acked(s)?;
            }
        }
        self.maybe_compact()
    }

    /// Up to `max` events (JSON text) after skipping the `skip` oldest, oldest first.
    pub fn peek_batch(&self, skip: usize, max: usize) -> Vec<String> {
        self.items
            .iter()
            .skip(skip)
            .take(max)
            .map(|(_, e)| e.to_string())
            .collect()
    }

    /// Forgets the `n` oldest events: they were delivered.
    pub fn ack(&mut self, n: usize) -> Result<()> {
        let mut last = None;
        for _ in 0..n {
            match self.items.pop_front() {
                Some((s, _)) => last = Some(s),
                None => break,
            }
        }
        if let Some(s) = last {
            self.set_acked(s)?;
            self.maybe_compact()?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Events dropped because the queue was full, since it was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn append(&mut self, seq: u64, event: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(&LineOut { seq, event }).context("serializing line")?;
        line.push(b'\n');
        self.log
            .write_all(&line)
            .context("appending to the event queue")?;
        self.log_lines += 1;
        Ok(())
    }

    fn set_acked(&mut self, seq: u64) -> Result<()> {
        self.acked_through = seq;
        let tmp = self.dir.join(format!("{ACKED}.tmp"));
        std::fs::write(&tmp, format!("{seq}\n"))
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join(ACKED)).context("renaming the acked marker")
    }

    fn maybe_compact(&mut self) -> Result<()> {
        if self.items.is_empty() && self.log_lines > 0 {
            self.log.set_len(0).context("truncating the event queue")?;
            self.log_lines = 0;
        } else if self.log_lines > 2 * self.cap {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Writes the live events to a new file and renames it over the log.
    fn rewrite(&mut self) -> Result<()> {
        let tmp = self.dir.join(format!("{LOG}.tmp"));
        let mut out = Vec::new();
        for (seq, event) in &self.items {
            out.extend(
                serde_json::to_vec(&LineOut { seq: *seq, event }).context("serializing line")?,
            );
            out.push(b'\n');
        }
        std::fs::write(&tmp, &out).with_context(|| format!("writing {}", tmp.display()))?;
        let path = self.dir.join(LOG);
        std::fs::rename(&tmp, &path).context("renaming the event queue")?;
        self.log = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        self.log_lines = self.items.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn ev(n: u64) -> Value {
        json!({"type": "test", "n": n})
    }

    fn ns(q: &EventQueue) -> Vec<u64> {
        q.peek_batch(0, usize::MAX)
            .iter()
            .map(|j| {
                serde_json::from_str::<Value>(j).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn survives_reopen_in_order_and_forgets_acked() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = EventQueue::open(dir.path(), 10).unwrap();
        for n in 0..5 {
            q.push(&ev(n)).unwrap();
        }
        q.ack(2).unwrap();
        drop(q);
        let mut q = EventQueue::open(dir.path(), 10).unwrap();
        assert_eq!(ns(&q), vec![2, 3, 4]);
        q.push(&ev(5)).unwrap();
        assert_eq!(q.peek_batch(1, 2).len(), 2);
        drop(q);
        let q = EventQueue::open(dir.path(), 10).unwrap();
        assert_eq!(ns(&q), vec![2, 3, 4, 5]);
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = EventQueue::open(dir.path(), 3).unwrap();
        for n in 0..7 {
            q.push(&ev(n)).unwrap();
        }
        assert_eq!(ns(&q), vec![4, 5, 6]);
        assert_eq!(q.dropped(), 4);
        drop(q);
        let q = EventQueue::open(dir.path(), 3).unwrap();
        assert_eq!(ns(&q), vec![4, 5, 6]);
    }

    #[test]
    fn torn_last_line_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = EventQueue::open(dir.path(), 10).unwrap();
        q.push(&ev(1)).unwrap();
        q.push(&ev(2)).unwrap();
        drop(q);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG))
            .unwrap();
        f.write_all(b"{\"seq\": 3, \"event\": {\"type\": \"te\xff")
            .unwrap();
        drop(f);
        let mut q = EventQueue::open(dir.path(), 10).unwrap();
        assert_eq!(ns(&q), vec![1, 2]);
        // The next append must not be glued onto the torn fragment.
        q.push(&ev(3)).unwrap();
        drop(q);
        let q = EventQueue::open(dir.path(), 10).unwrap();
        assert_eq!(ns(&q), vec![1, 2, 3]);
    }

    #[test]
    fn emptied_queue_truncates_and_seq_keeps_growing() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = EventQueue::open(dir.path(), 10).unwrap();
        q.push(&ev(1)).unwrap();
        q.ack(1).unwrap();
        assert!(q.is_empty());
        assert_eq!(std::fs::metadata(dir.path().join(LOG)).unwrap().len(), 0);
        q.push(&ev(2)).unwrap();
        drop(q);
        let q = EventQueue::open(dir.path(), 10).unwrap();
        assert_eq!(ns(&q), vec![2]);
    }

    #[test]
    fn log_is_compacted_under_churn() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = EventQueue::open(dir.path(), 4).unwrap();
        q.push(&ev(0)).unwrap();
        for n in 1..100 {
            q.push(&ev(n)).unwrap();
            q.ack(1).unwrap();
        }
        let lines = std::fs::read_to_string(dir.path().join(LOG))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 8, "log has {lines} lines");
        drop(q);
        let q = EventQueue::open(dir.path(), 4).unwrap();
        assert_eq!(ns(&q), vec![99]);
    }
}
