//! The recordings folder's slow work, on one thread of its own: budget passes
//! (a walk of every segment, then deletions), disk-use walks for status, and
//! the sales log's lines.
//! The driver's loop only queues jobs here and gets the figures back as an
//! input, so a big folder never stalls buttons, commands or the watchdog.
//!
//! One thread, not one per job: two budget passes at once would race over the
//! same files, and jobs queued while one runs are merged (the last budget
//! pass wins, a walk is dropped when a budget pass measures anyway).

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc::UnboundedSender;

use crate::config::RecordingConfig;

/// What the loop gets back: the recordings' use and the disk's free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskFigures {
    pub used_bytes: u64,
    pub free_bytes: u64,
}

enum Job {
    Budget {
        root: PathBuf,
        /// The live show's folder name: never deleted from.
        current: Option<String>,
        cfg: RecordingConfig,
    },
    Usage {
        root: PathBuf,
    },
    /// One line of a show's sales log (appended and synced: a sale is kept).
    SalesLog {
        dir: PathBuf,
        line: String,
    },
}

/// The handle the loop and `MediaCtl` queue jobs through; cheap to clone.
/// The thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct DiskWork {
    jobs: std_mpsc::Sender<Job>,
}

impl DiskWork {
    pub fn spawn(done: UnboundedSender<DiskFigures>) -> DiskWork {
        let (jobs, rx) = std_mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("disk-work".into())
            .spawn(move || work(rx, done));
        if let Err(e) = spawned {
            // Without the thread the jobs are dropped: no budget and no
            // figures, but the show goes on; say so once.
            tracing::error!(error = %e, "could not start the recordings' disk thread");
        }
        DiskWork { jobs }
    }

    /// Apply the disk budget under `root`, sparing the folder `current`.
    pub fn budget(&self, root: PathBuf, current: Option<String>, cfg: &RecordingConfig) {
        let _ = self.jobs.send(Job::Budget {
            root,
            current,
            cfg: cfg.clone(),
        });
    }

    /// Measure the recordings' disk use under `root`.
    pub fn usage(&self, root: PathBuf) {
        let _ = self.jobs.send(Job::Usage { root });
    }

    /// Append `line` to the show's sales log in `dir`, in order, off the loop
    /// (the sync of a busy SD card must not hold the buttons).
    pub fn sales_log(&self, dir: PathBuf, line: String) {
        let _ = self.jobs.send(Job::SalesLog { dir, line });
    }
}

fn work(rx: std_mpsc::Receiver<Job>, done: UnboundedSender<DiskFigures>) {
    while let Ok(first) = rx.recv() {
        let (mut budget, mut usage) = (None, None);
        for job in std::iter::once(first).chain(rx.try_iter()) {
            match job {
                b @ Job::Budget { .. } => budget = Some(b),
                Job::Usage { root } => usage = Some(root),
                // Sales lines are never merged: each is written, in order.
                Job::SalesLog { dir, line } => {
                    if let Err(e) = append_line(&dir, &line) {
                        tracing::warn!(error = %format!("{e:#}"), "sales log not written");
                    }
                }
            }
        }
        let figures = match budget {
            Some(Job::Budget { root, current, cfg }) => {
                // `enforce` logs what it removed and whether the show alone is over budget.
                match crate::recording::enforce(&root, current.as_deref(), &cfg) {
                    Ok(r) => Some(DiskFigures {
                        used_bytes: r.used_bytes,
                        free_bytes: r.disk_free_bytes,
                    }),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "could not apply the recording budget");
                        usage.take().map(measure)
                    }
                }
            }
            _ => usage.take().map(measure),
        };
        if let Some(f) = figures {
            if done.send(f).is_err() {
                return;
            }
        }
    }
}

/// One JSON line per tag in the show's folder, so the farmer has the list of
/// what was shown and the platform can make chapters of the recording.
fn append_line(dir: &std::path::Path, line: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("sales.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{line}").with_context(|| format!("writing {}", path.display()))?;
    file.sync_data().ok();
    Ok(())
}

fn measure(root: PathBuf) -> DiskFigures {
    let (used_bytes, free_bytes) = crate::recording::disk_usage(&root);
    DiskFigures {
        used_bytes,
        free_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_walk_comes_back_as_figures() {
        let dir = tempfile::tempdir().unwrap();
        let show = dir.path().join("20260101T000000Z_a");
        std::fs::create_dir_all(&show).unwrap();
        std::fs::write(show.join("seg-00001.ts"), vec![0u8; 1234]).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let w = DiskWork::spawn(tx);
        w.usage(dir.path().to_path_buf());
        let f = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.used_bytes, 1234);
        assert!(f.free_bytes > 0);
    }
}
