//! A child process in its own process group, so that killing it also kills
//! what it forked (nginx workers, `exec_publish` shells). Dropping the handle
//! kills the group; nothing outlives a test.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

pub struct GroupChild {
    child: Option<Child>,
    what: String,
}

impl GroupChild {
    /// Spawns `cmd` as the leader of a new process group.
    pub fn spawn(mut cmd: Command, what: &str) -> GroupChild {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        GroupChild {
            child: Some(child),
            what: what.to_string(),
        }
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Sends `signal` to the leader only (a graceful stop lets it tell its
    /// children itself).
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain syscall on a pid we spawned and have not reaped.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Sends `signal` to the whole group.
    pub fn signal_group(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain syscall; the group id is our child's pid.
            unsafe { libc::kill(-pid, signal) };
        }
    }

    /// `None` while running; the exit status once it has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_status().is_none()
    }

    /// Waits up to `timeout` for the leader to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asks the leader to stop with `signal`, waits up to `grace`, then kills
    /// the whole group. Returns the leader's status if it exited by itself.
    pub fn stop(&mut self, signal: i32, grace: Duration) -> Option<ExitStatus> {
        self.signal(signal);
        let status = self.wait_timeout(grace);
        self.kill();
        status
    }

    /// SIGKILL to the whole group, then reap the leader.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            // SAFETY: plain syscall; the group id is our child's pid.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.kill();
    }
}
