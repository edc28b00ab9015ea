//! A shaped link for uplink tests: a network namespace `fc-<pid>-<n>` joined
//! to the host by a veth pair with a link-local /30 (169.254.x.y, unique per
//! rig), an nginx-rtmp ingest started INSIDE the namespace on its end, `tc tbf`
//! on the host end to limit host→namespace traffic, and `ip link set down/up`
//! to cut the link. Nothing leaves the machine: the only addresses used are
//! the two ends of a pair this rig created, and a blackhole route for their
//! /30 keeps a cut link from sending them to the default gateway instead.
//!
//! Contract: [`Rig::create`] returns `Err(reason)` when the machine cannot make
//! a namespace (not root, no iproute2, no veth): the caller fails with that
//! reason (tests/uplink.rs `required`). Everything created is removed when the [`Rig`]
//! is dropped (the pair dies with its host end; the namespace is deleted after
//! nginx is killed).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::common::process::GroupChild;
use crate::common::srt::SrtListener;
use crate::common::{files_with_ext, require, wait_until};

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
pub const RTMP_PORT: u16 = 1935;
pub const HTTP_PORT: u16 = 8080;
pub const SRT_PORT: u16 = 9000;
const BLACKHOLE_METRIC: &str = "4096";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`; `Err` carries its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(bin: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {bin}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{bin} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespace, the veth pair and their addresses.
pub struct NetNs {
    pub name: String,
    /// `169.254.X.Y/30`, blackholed on the host whatever the link does.
    pub subnet: String,
    pub host_if: String,
    pub ns_if: String,
    pub host_addr: String,
    pub ns_addr: String,
}

impl NetNs {
    /// Creates and configures the namespace and the pair, or says why it cannot.
    pub fn create() -> Result<NetNs, String> {
        // SAFETY: a plain getter with no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root to create a network namespace (CI runs as root)".into());
        }
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // A /30 per rig inside 169.254.1.0–169.254.254.255 (the first and last
        // /24 of link-local are reserved): 64 subnets per third octet.
        let idx = (pid.wrapping_mul(16).wrapping_add(n)) % (254 * 64);
        let (third, base) = (1 + idx / 64, (idx % 64) * 4);
        let ns = NetNs {
            name: format!("fc-{pid}-{n}"),
            subnet: format!("169.254.{third}.{base}/30"),
            // Interface names are at most 15 bytes.
            host_if: format!("fc{}h{n}", pid % 10_000_000),
            ns_if: format!("fc{}n{n}", pid % 10_000_000),
            host_addr: format!("169.254.{third}.{}", base + 1),
            ns_addr: format!("169.254.{third}.{}", base + 2),
        };
        ip(&["netns", "add", &ns.name])?;
        // From here on, Drop cleans up whatever was made.
        ns.setup()?;
        Ok(ns)
    }

    fn setup(&self) -> Result<(), String> {
        // While the host end is down its connected route is gone, and the
        // namespace's address would follow the default route off this
        // machine. A blackhole route for the /30, below the connected one in
        // priority, keeps every packet here: a cut link loses them, as a real
        // one does. It goes in before the pair exists, so there is no window.
        ip(&[
            "route",
            "add",
            "blackhole",
            &self.subnet,
            "metric",
            BLACKHOLE_METRIC,
        ])?;
        ip(&[
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &self.ns_if,
        ])?;
        ip(&["link", "set", &self.ns_if, "netns", &self.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", self.host_addr),
            "dev",
            &self.host_if,
        ])?;
        ip(&["link", "set", &self.host_if, "up"])?;
        let ns_addr = format!("{}/30", self.ns_addr);
        for args in [
            vec!["addr", "add", ns_addr.as_str(), "dev", self.ns_if.as_str()],
            vec!["link", "set", self.ns_if.as_str(), "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut full = vec!["netns", "exec", self.name.as_str(), "ip"];
            full.extend(args);
            ip(&full)?;
        }
        match self.route_to_ns() {
            Some(r) if r.contains(&format!("dev {} ", self.host_if)) => Ok(()),
            other => Err(format!(
                "{} is not routed through {}: {other:?}",
                self.ns_addr, self.host_if
            )),
        }
    }

    /// Limits host→namespace traffic to `kbit` kbit/s: a token bucket with a
    /// 32 kbit burst and 400 ms of queue, what a thin rural uplink looks like.
    pub fn shape(&self, kbit: u32) -> Result<(), String> {
        run(
            "tc",
            &[
                "qdisc",
                "replace",
                "dev",
                &self.host_if,
                "root",
                "tbf",
                "rate",
                &format!("{kbit}kbit"),
                "burst",
                "32kbit",
                "latency",
                "400ms",
            ],
        )
    }

    /// Takes the limit of [`shape`](Self::shape) away: the link runs at the
    /// pair's own speed again. `Err` when there was no limit to take away.
    pub fn unshape(&self) -> Result<(), String> {
        run("tc", &["qdisc", "del", "dev", &self.host_if, "root"])
    }

    /// Cuts (`false`) or restores (`true`) the link at the host end. A cut
    /// is checked: if the kernel would still route to the namespace's address
    /// (anywhere but the blackhole), the link is restored and the test fails.
    pub fn set_link(&self, up: bool) -> Result<(), String> {
        ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }])?;
        if !up {
            if let Some(route) = self.route_to_ns() {
                let _ = self.set_link(true);
                return Err(format!(
                    "with the link down, {} still routes: {route}",
                    self.ns_addr
                ));
            }
        }
        Ok(())
    }

    /// `ip route get NS_ADDR`, or `None` when there is no usable route (the
    /// blackhole makes `ip route get` fail).
    pub fn route_to_ns(&self) -> Option<String> {
        let out = Command::new("ip")
            .args(["route", "get", &self.ns_addr])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `cmd` run inside the namespace: `ip netns exec NAME cmd…`.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting either end deletes the pair; the namespace goes last.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&[
            "route",
            "del",
            "blackhole",
            &self.subnet,
            "metric",
            BLACKHOLE_METRIC,
        ]);
    }
}

/// nginx-rtmp inside the namespace, recording everything it receives, with a
/// publish log like `common::nginx` (`date +%s.%N` per accepted publish).
pub struct NsNginx {
    pub record_dir: PathBuf,
    dir: tempfile::TempDir,
    proc: Option<GroupChild>,
    addr: String,
}

impl NsNginx {
    /// `drop_idle_publisher_s` (None: nginx's default, never): how long the server keeps a publisher that
    /// sends nothing (a cut link leaves its TCP session half-open, and
    /// nginx-rtmp refuses a second publish of the same stream meanwhile; real
    /// ingests drop such a session within seconds).
    pub fn start(ns: &NetNs, drop_idle_publisher_s: Option<u32>) -> NsNginx {
        let nginx = require("nginx", "nginx libnginx-mod-rtmp");
        assert!(
            Path::new(MODULE).is_file(),
            "{MODULE} missing: install the Debian package libnginx-mod-rtmp"
        );
        let dir = tempfile::tempdir().expect("tempdir for nginx");
        let record_dir = dir.path().join("rec");
        std::fs::create_dir_all(&record_dir).expect("create record dir");
        let d = dir.path().display();
        let log = dir.path().join("publish.log");
        let conf = format!(
            "load_module {MODULE};\n\
             daemon off;\nmaster_process on;\nuser root;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{\n  server {{\n    listen {a}:{RTMP_PORT};\n    chunk_size 4096;\n    \
             {drop_idle}\
             application live {{\n      live on;\n      record all;\n      \
             record_path {rec};\n      record_unique on;\n      \
             exec_publish /bin/sh -c \"date +%s.%N >> {log}\";\n    }}\n  }}\n}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/t_body;\n  proxy_temp_path {d}/t_proxy;\n  \
             fastcgi_temp_path {d}/t_fcgi;\n  uwsgi_temp_path {d}/t_uwsgi;\n  scgi_temp_path {d}/t_scgi;\n  \
             server {{\n    listen {a}:{HTTP_PORT};\n    location /stat {{ rtmp_stat all; }}\n  }}\n}}\n",
            a = ns.ns_addr,
            drop_idle = drop_idle_publisher_s
                .map(|s| format!("drop_idle_publisher {s}s;\n    "))
                .unwrap_or_default(),
            rec = record_dir.display(),
            log = log.display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut cmd = ns.command(&nginx);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut server = NsNginx {
            record_dir,
            dir,
            proc: Some(GroupChild::spawn(cmd, "nginx in namespace")),
            addr: ns.ns_addr.clone(),
        };
        let addr = server.addr.clone();
        let up = wait_until(Duration::from_secs(10), || {
            TcpStream::connect((addr.as_str(), RTMP_PORT)).is_ok()
        });
        if !up {
            let log = server.error_log();
            server.kill();
            panic!("nginx in the namespace did not listen on {addr}:{RTMP_PORT}: {log}");
        }
        server
    }

    /// `rtmp://NS_ADDR:1935/live`; the stream key goes after it.
    pub fn url(&self) -> String {
        format!("rtmp://{}:{RTMP_PORT}/live", self.addr)
    }

    /// Wall-clock seconds of each accepted publish, in order.
    pub fn publish_times(&self) -> Vec<f64> {
        std::fs::read_to_string(self.dir.path().join("publish.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .collect()
    }

    /// Recordings with media in them (more than the FLV header), by name.
    pub fn nonempty_recordings(&self) -> Vec<PathBuf> {
        files_with_ext(&self.record_dir, ".flv")
            .into_iter()
            .filter(|p| std::fs::metadata(p).map(|m| m.len() > 13).unwrap_or(false))
            .collect()
    }

    /// Bytes recorded so far, all files together.
    pub fn recorded_bytes(&self) -> u64 {
        files_with_ext(&self.record_dir, ".flv")
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Whether anybody publishes now (reached over the veth: the link must be up).
    pub fn is_publishing(&self) -> bool {
        let Ok(mut s) = TcpStream::connect((self.addr.as_str(), HTTP_PORT)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = write!(s, "GET /stat HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("<publishing/>")
    }

    pub fn wait_idle(&self, timeout: Duration) -> bool {
        wait_until(timeout, || !self.is_publishing())
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

impl Drop for NsNginx {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A namespace with nginx in it; fields drop in order (nginx before the namespace).
pub struct Rig {
    pub nginx: NsNginx,
    pub ns: NetNs,
}

impl Rig {
    pub fn create(drop_idle_publisher_s: Option<u32>) -> Result<Rig, String> {
        let ns = NetNs::create()?;
        let nginx = NsNginx::start(&ns, drop_idle_publisher_s);
        Ok(Rig { nginx, ns })
    }
}

/// srt-live-transmit inside the namespace on [`SRT_PORT`], writing the
/// stream it gets to a file (see `common::srt`).
pub fn srt_listener(ns: &NetNs) -> SrtListener {
    let bin = require("srt-live-transmit", "srt-tools");
    let stdbuf = require("stdbuf", "coreutils");
    let dir = tempfile::tempdir().expect("tempdir for srt");
    let out = std::fs::File::create(dir.path().join("received.ts")).expect("create .ts");
    let err = std::fs::File::create(dir.path().join("stderr.log")).expect("create log");
    let mut cmd = ns.command(&stdbuf);
    cmd.arg("-o0")
        .arg(&bin)
        .arg("-q")
        .arg(format!("srt://{}:{SRT_PORT}?mode=listener", ns.ns_addr))
        .arg("file://con")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let proc = GroupChild::spawn(cmd, "srt-live-transmit in namespace");
    // UDP has nothing to connect to; give it a moment to bind.
    std::thread::sleep(Duration::from_millis(500));
    SrtListener::adopt(SRT_PORT, dir, proc)
}
