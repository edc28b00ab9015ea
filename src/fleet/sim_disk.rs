//! A model of a disk for power-cut tests: written data becomes durable only
//! when its file is fsynced, and names (creations, renames) only when their
//! directory is. [`SimDisk::crash`] drops everything not yet durable; a file
//! whose name survived but whose data did not comes back empty, as ext4 can
//! leave it. [`SimDisk::fail_after`] cuts the power after that many operations.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::store::Disk;

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    live: BTreeMap<PathBuf, usize>,
    durable: BTreeMap<PathBuf, usize>,
    /// Operations left before the power goes; `None` never.
    budget: Option<usize>,
    ops: usize,
}

/// Cheap to clone: clones share the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimDisk(Arc<Mutex<State>>);

fn lost() -> io::Error {
    io::Error::other("simulated power cut")
}

impl SimDisk {
    pub fn new() -> Self {
        SimDisk::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding it has failed already.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every operation after the next `n` fails, as if the power went.
    pub fn fail_after(&self, n: usize) {
        self.state().budget = Some(n);
    }

    /// How many mutating operations were done.
    pub fn ops(&self) -> usize {
        self.state().ops
    }

    /// Power back on: only what was durable remains, and operations work again.
    pub fn crash(&self) {
        let mut s = self.state();
        s.live = s.durable.clone();
        for inode in &mut s.inodes {
            inode.data = inode.synced.clone();
        }
        s.budget = None;
    }

    fn step(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        let mut s = self.state();
        match s.budget {
            Some(0) => return Err(lost()),
            Some(n) => s.budget = Some(n - 1),
            None => {}
        }
        s.ops += 1;
        Ok(s)
    }
}

impl Disk for SimDisk {
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let s = self.state();
        Ok(s.live
            .get(path)
            .and_then(|&i| s.inodes.get(i))
            .map(|n| n.data.clone()))
    }

    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.step()?;
        match s.live.get(path).copied() {
            Some(i) => {
                if let Some(n) = s.inodes.get_mut(i) {
                    n.data = bytes.to_vec();
                }
            }
            None => {
                s.inodes.push(Inode {
                    data: bytes.to_vec(),
                    synced: Vec::new(),
                });
                let i = s.inodes.len() - 1;
                s.live.insert(path.to_path_buf(), i);
            }
        }
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.step()?;
        let i = *s
            .live
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if let Some(n) = s.inodes.get_mut(i) {
            n.synced = n.data.clone();
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.step()?;
        let i = s
            .live
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.live.insert(to.to_path_buf(), i);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.step()?;
        let State { live, durable, .. } = &mut *s;
        durable.retain(|p, _| p.parent() != Some(dir));
        for (p, &i) in live.iter() {
            if p.parent() == Some(dir) {
                durable.insert(p.clone(), i);
            }
        }
        Ok(())
    }
}
