//! nginx with the RTMP module on a free loopback port: the ingest server the
//! platforms run, close enough to judge what farmcast publishes.
//!
//! Every application (`live` by default) records all it receives into
//! `record_dir` (`record_unique on`, so a reconnect makes a new file) and
//! appends `date +%s.%N` to `publish-<app>.log` at each accepted publish:
//! the wall-clock moment the server said yes, for tests and the benchmark.
//! A small HTTP server serves `rtmp_stat all` at `/stat`, which tells whether
//! anybody is publishing right now.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::GroupChild;
use super::{files_with_ext, free_port, require, wait_for_tcp, wait_until};

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
const PACKAGES: &str = "nginx libnginx-mod-rtmp";

pub struct NginxRtmp {
    /// Where the RTMP server listens: `127.0.0.1`, or `[::1]` for
    /// [`NginxRtmp::start_ipv6`] (only there: IPv4 cannot reach it).
    pub host: &'static str,
    pub port: u16,
    pub http_port: u16,
    pub record_dir: PathBuf,
    apps: Vec<String>,
    dir: tempfile::TempDir,
    proc: Option<GroupChild>,
}

impl NginxRtmp {
    /// One application, `live`.
    pub fn start() -> NginxRtmp {
        Self::start_with_apps(&["live"])
    }

    pub fn start_with_apps(apps: &[&str]) -> NginxRtmp {
        Self::start_on("127.0.0.1", apps)
    }

    /// One application, `live`, with RTMP on the IPv6 loopback `[::1]` only
    /// (the stat page stays on 127.0.0.1).
    pub fn start_ipv6() -> NginxRtmp {
        Self::start_on("[::1]", &["live"])
    }

    fn start_on(host: &'static str, apps: &[&str]) -> NginxRtmp {
        let dir = tempfile::tempdir().expect("tempdir for nginx");
        let record_dir = dir.path().join("rec");
        std::fs::create_dir_all(&record_dir).expect("create record dir");
        let mut server = NginxRtmp {
            host,
            port: 0,
            http_port: 0,
            record_dir,
            apps: apps.iter().map(|a| a.to_string()).collect(),
            dir,
            proc: None,
        };
        // A port can still be taken between the pick and nginx's bind (by a
        // process outside this test binary): try anew on fresh ports.
        let mut why = String::new();
        for _ in 0..3 {
            server.port = free_port();
            server.http_port = free_port();
            server.write_config();
            match server.try_launch() {
                Ok(()) => return server,
                Err(e) => why = e,
            }
        }
        panic!("{why}");
    }

    /// `rtmp://HOST:PORT/APP`; the stream key goes after it.
    pub fn url(&self, app: &str) -> String {
        format!("rtmp://{}:{}/{app}", self.host, self.port)
    }

    /// Every `.flv` recorded so far, in name order.
    pub fn recordings(&self) -> Vec<PathBuf> {
        files_with_ext(&self.record_dir, ".flv")
    }

    /// Recordings that hold more than the FLV header, i.e. somebody sent media.
    pub fn nonempty_recordings(&self) -> Vec<PathBuf> {
        self.recordings()
            .into_iter()
            .filter(|p| std::fs::metadata(p).map(|m| m.len() > 13).unwrap_or(false))
            .collect()
    }

    /// Wall-clock times (seconds since the epoch) of each publish accepted by
    /// `app`, in order.
    pub fn publish_times(&self, app: &str) -> Vec<f64> {
        std::fs::read_to_string(self.publish_log(app))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .collect()
    }

    pub fn publish_log(&self, app: &str) -> PathBuf {
        self.dir.path().join(format!("publish-{app}.log"))
    }

    /// Waits until `app` has accepted at least `n` publishes.
    pub fn wait_for_publishes(&self, app: &str, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.publish_times(app).len() >= n)
    }

    /// The `rtmp_stat all` XML page, or an empty string when unreachable.
    pub fn stat(&self) -> String {
        http_get(self.http_port, "/stat").unwrap_or_default()
    }

    /// Whether any client is publishing to any application right now.
    pub fn is_publishing(&self) -> bool {
        self.stat().contains("<publishing/>")
    }

    /// Bytes recorded so far over all recordings: grows while media arrives.
    pub fn recorded_bytes(&self) -> u64 {
        self.recordings()
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Whether media keeps arriving: somebody publishes and the recordings
    /// grow within 10 s.
    pub fn media_flows(&self) -> bool {
        let before = self.recorded_bytes();
        wait_until(Duration::from_secs(10), || {
            self.is_publishing() && self.recorded_bytes() > before
        })
    }

    /// Waits until nobody publishes, so that recordings are closed and whole.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        wait_until(timeout, || !self.is_publishing())
    }

    /// The error log, for assertion messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Fast shutdown (SIGTERM): clients see the connection close.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(libc::SIGTERM, Duration::from_secs(5));
        }
    }

    /// A crash: SIGKILL to master and workers.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts again on the same ports with the same record dir (after `stop`
    /// or `kill`; stops a running server first).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().map(|p| p.is_running()).unwrap_or(false)
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let rec = self.record_dir.display();
        let apps: String = self
            .apps
            .iter()
            .map(|app| {
                let log = self.publish_log(app);
                format!(
                    "    application {app} {{\n      live on;\n      record all;\n      \
                     record_path {rec};\n      record_unique on;\n      \
                     exec_publish /bin/sh -c \"date +%s.%N >> {log}\";\n    }}\n",
                    log = log.display()
                )
            })
            .collect();
        // `user root` keeps the worker able to write the record dir when the
        // tests run as root (the default would be `nobody`); as non-root nginx
        // ignores it with a warning and runs as the caller.
        let conf = format!(
            "load_module {MODULE};\n\
             daemon off;\nmaster_process on;\nuser root;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 128; }}\n\
             rtmp {{\n  server {{\n    listen {host}:{port};\n    chunk_size 4096;\n{apps}  }}\n}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/t_body;\n  proxy_temp_path {d}/t_proxy;\n  \
             fastcgi_temp_path {d}/t_fcgi;\n  uwsgi_temp_path {d}/t_uwsgi;\n  scgi_temp_path {d}/t_scgi;\n  \
             server {{\n    listen 127.0.0.1:{http};\n    location /stat {{ rtmp_stat all; }}\n  }}\n}}\n",
            host = self.host,
            port = self.port,
            http = self.http_port,
        );
        std::fs::write(self.conf_path(), conf).expect("write nginx.conf");
        set_mode(&self.record_dir, 0o777);
    }

    fn launch(&mut self) {
        if let Err(why) = self.try_launch() {
            panic!("{why}");
        }
    }

    fn try_launch(&mut self) -> Result<(), String> {
        let nginx = require("nginx", PACKAGES);
        assert!(
            Path::new(MODULE).is_file(),
            "{MODULE} missing: install the Debian package libnginx-mod-rtmp"
        );
        let pid_file = self.dir.path().join("nginx.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut cmd = Command::new(nginx);
        cmd.arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = GroupChild::spawn(cmd, "nginx");
        // nginx writes its pid file only once every listen socket is bound,
        // so a pid file naming this master says the ports are ours: a bare
        // connect would also succeed against whoever else holds them.
        let master = proc.pid().unwrap_or(-1).to_string();
        let ours = wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == master)
                || !proc.is_running()
        }) && proc.is_running();
        let rtmp = format!("{}:{}", self.host, self.port);
        let up =
            ours && wait_until(Duration::from_secs(10), || {
                TcpStream::connect(&rtmp).is_ok()
            }) && wait_for_tcp(self.http_port, Duration::from_secs(5));
        if !up {
            proc.kill();
            return Err(format!(
                "nginx did not listen on {} / {}: {}",
                self.port,
                self.http_port,
                self.error_log()
            ));
        }
        self.proc = Some(proc);
        Ok(())
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        self.kill();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// A bare HTTP/1.0 GET on loopback: enough for nginx's stat page.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}
