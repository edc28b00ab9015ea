//! The daemon under test, as a farmer's box runs it: `farmcast run --config
//! FILE` as a child with `RUST_LOG=info`, its stderr kept in a file so that a
//! failing assertion can show what the daemon said. The simulated hardware
//! socket (`gpio.sim_socket`) is the test's hand on the buttons.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::process::GroupChild;

pub const BIN: &str = env!("CARGO_BIN_EXE_farmcast");

pub struct Farmcast {
    dir: tempfile::TempDir,
    sim_socket: PathBuf,
    proc: GroupChild,
    pub started: Instant,
}

impl Farmcast {
    /// Writes `config_toml` to a temp file and starts the daemon on it. The
    /// sim socket path is read from the text's `gpio.sim_socket`.
    pub fn start(config_toml: &str) -> Farmcast {
        Farmcast::spawn(config_toml, None)
    }

    /// [`start`](Self::start) with `NOTIFY_SOCKET` set to `notify_socket`, as
    /// systemd starts a `Type=notify` unit (see `common::notify`).
    pub fn start_notifying(config_toml: &str, notify_socket: &Path) -> Farmcast {
        Farmcast::spawn(config_toml, Some(notify_socket))
    }

    fn spawn(config_toml: &str, notify_socket: Option<&Path>) -> Farmcast {
        let value: toml::Value = toml::from_str(config_toml).expect("test config is TOML");
        let sim_socket = value
            .get("gpio")
            .and_then(|g| g.get("sim_socket"))
            .and_then(|s| s.as_str())
            .map(PathBuf::from)
            .expect("test config sets gpio.sim_socket");
        let dir = tempfile::tempdir().expect("tempdir for farmcast");
        let config = dir.path().join("farmcast.toml");
        std::fs::write(&config, config_toml).expect("write farmcast.toml");
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("create log");
        let log_out = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            // Only the socket a test hands it, never the one of a test run
            // that itself runs under systemd.
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log_out)
            .stderr(log);
        if let Some(n) = notify_socket {
            cmd.env("NOTIFY_SOCKET", n);
        }
        let proc = GroupChild::spawn(cmd, "farmcast");
        Farmcast {
            dir,
            sim_socket,
            proc,
            started: Instant::now(),
        }
    }

    /// Everything the daemon has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("farmcast.toml")
    }

    pub fn sim_socket(&self) -> &Path {
        &self.sim_socket
    }

    /// Sends one line to the sim socket and returns the answer line (without
    /// its newline). Retries the connection until the daemon has created the
    /// socket; panics with the daemon's log after 20 s.
    pub fn sim(&mut self, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match sim_once(&self.sim_socket, line) {
                Ok(answer) => return answer,
                Err(e) => {
                    if !self.proc.is_running() || Instant::now() >= deadline {
                        panic!(
                            "sim socket {} did not answer {line:?}: {e}; farmcast running: {}\n--- farmcast log ---\n{}",
                            self.sim_socket.display(),
                            self.proc.is_running(),
                            self.log()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// One attempt, no retry: for "is the daemon still answering?".
    pub fn try_sim(&self, line: &str) -> std::io::Result<String> {
        sim_once(&self.sim_socket, line)
    }

    pub fn kill_with(&mut self, signal: i32) {
        self.proc.signal(signal);
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_timeout(timeout)
    }

    /// SIGTERM, the way systemd stops it; waits up to 10 s for a clean exit and
    /// returns its status (None: it had to be killed).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.kill_with(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(10));
        self.proc.kill();
        status
    }

    pub fn pid(&self) -> Option<i32> {
        self.proc.pid()
    }
}

impl Drop for Farmcast {
    fn drop(&mut self) {
        self.proc.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- farmcast log (last 60 lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn sim_once(socket: &Path, line: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "socket closed without an answer",
        ));
    }
    Ok(answer.trim_end().to_string())
}

/// `farmcast check-config FILE`.
pub fn check_config(file: &Path) -> Output {
    Command::new(BIN)
        .arg("check-config")
        .arg(file)
        .output()
        .expect("run farmcast check-config")
}
