//! `farmcast`: the command line. Wiring only; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "farmcast",
    version,
    about = "Live shopping shows from a box in the barn"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once at start; the size of the fleet variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon: standby, then live on the button, a command, or at start.
    Run {
        #[arg(long, default_value = "/etc/farmcast/farmcast.toml")]
        config: PathBuf,
    },
    /// Check a configuration file; print each problem with its key path and line.
    CheckConfig { file: PathBuf },
    /// Fleet configuration: sign a layer for a push.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// The fleet manager's tools: status, push (with canary), history.
    Fleet {
        #[command(subcommand)]
        command: farmcast::fleet::tools::FleetCmd,
    },
    /// Install a farmcast.toml (and keys/) copied onto the boot partition (first boot).
    Provision {
        #[arg(long, default_value = "/boot/firmware")]
        boot: PathBuf,
        #[arg(long, default_value = "/etc/farmcast")]
        etc: PathBuf,
    },
    /// What this box has: cameras, audio inputs, encoders, GPIO chips, serial
    /// ports, and the format the configured serial scale sends.
    Probe {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// The config whose `[scale]` names the serial scale to listen to.
        #[arg(long, default_value = "/etc/farmcast/farmcast.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the signed envelope of a config layer (JSON, for `P/D/config/desired`).
    Sign {
        /// Ed25519 private key, PEM (`openssl genpkey -algorithm ed25519`).
        #[arg(long)]
        key: PathBuf,
        /// A device id, or `group:<name>`.
        #[arg(long)]
        target: String,
        /// Must be newer than the version the box runs.
        #[arg(long)]
        version: u64,
        /// When a change that needs a new pipeline may cut a running show:
        /// `now` or `after_show` (`next`). Given, the envelope is v2 and its
        /// signature covers it; absent, a v1 envelope (waits for the show).
        #[arg(long, value_parser = farmcast::fleet::cli::parse_apply)]
        apply: Option<farmcast::fleet::Apply>,
        /// The layer: any subset of the config file's keys (TOML).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run { config } => {
            tune_memory();
            farmcast::logging::init();
            match farmcast::app::run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    // No config to run: an exit status systemd does not restart on.
                    match e.downcast_ref::<farmcast::fleet::NoUsableConfig>() {
                        Some(_) => ExitCode::from(farmcast::fleet::NoUsableConfig::EXIT_STATUS),
                        None => ExitCode::FAILURE,
                    }
                }
            }
        }
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::Fleet { command } => farmcast::fleet::tools::run(command),
        Cmd::Provision { boot, etc } => {
            farmcast::logging::init();
            farmcast::provision::run_cli(&boot, &etc)
        }
        Cmd::Config {
            command:
                ConfigCmd::Sign {
                    key,
                    target,
                    version,
                    apply,
                    file,
                },
        } => match farmcast::fleet::cli::sign_command(&key, &target, version, apply, &file) {
            Ok(envelope) => {
                println!("{envelope}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("farmcast config sign: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Probe { json, config } => match farmcast::media::probe::probe() {
            Ok(report) => {
                let scale = probe_scale(&config);
                if json {
                    let mut v = serde_json::to_value(&report).unwrap_or_default();
                    if let (Some(obj), Some(s)) = (v.as_object_mut(), &scale) {
                        obj.insert("scale".into(), serde_json::json!(s));
                    }
                    match serde_json::to_string_pretty(&v) {
                        Ok(s) => println!("{s}"),
                        Err(e) => {
                            eprintln!("farmcast probe: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                } else {
                    print!("{}", farmcast::media::probe::render_human(&report));
                    if let Some(s) = &scale {
                        print!("{}", render_scale(s));
                    }
                    // Where a phone finds the page (the config's `[web]`).
                    for line in farmcast::web::probe::for_config(&config) {
                        println!("{line}");
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("farmcast probe: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Memory settings of the process, before any thread starts.
///
/// At most two malloc arenas: glibc gives every thread that allocates an
/// arena of its own, up to 8 per core, and the daemon's ~20 threads
/// (GStreamer's streaming threads, x264's, tokio's) each kept freed memory
/// in theirs. `MALLOC_ARENA_MAX` in the environment (systemd's
/// `Environment=`, or a benchmark comparing) wins over this.
///
/// No transparent huge pages: x264 asks for them (`MADV_HUGEPAGE`) on each
/// buffer of 1.75 MiB or more, and a huge page is resident whole however
/// little of it is touched: 6 MiB of the encoder's memory at 720p, for no
/// measurable CPU (BENCHMARKS.md, section `memory`). `FARMCAST_THP=1` keeps
/// them, for that comparison.
fn tune_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called on the main thread before any other thread exists;
        // mallopt only sets a parameter of the allocator.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("FARMCAST_THP").is_none() {
        // SAFETY: prctl with integer arguments only; it sets a flag of this
        // process (and of the children it starts). A kernel without it
        // answers EINVAL, which leaves things as they were.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// The serial scale `config` names, listened to for a few seconds (`None`
/// without a readable config or a serial scale in it).
fn probe_scale(config: &std::path::Path) -> Option<farmcast::scale::SerialProbe> {
    let cfg = farmcast::config::check_file(config).ok()?;
    (cfg.scale.kind == farmcast::config::choices::ScaleKind::Serial)
        .then(|| farmcast::scale::probe_serial(&cfg.scale, std::time::Duration::from_secs(4)))
}

fn render_scale(s: &farmcast::scale::SerialProbe) -> String {
    match (&s.format, s.baud, &s.error) {
        (Some(f), Some(b), _) => format!("Serial scale:\n  {}: {f} at {b} baud\n", s.port),
        (_, _, Some(e)) => format!("Serial scale:\n  {}: {e}\n", s.port),
        _ => format!("Serial scale:\n  {}: nothing recognised\n", s.port),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let name = file.display().to_string();
    let report = farmcast::config::check_file_report(file);
    // Warnings do not fail the check: `FILE:LINE: key: warning: ...`.
    for w in &report.warnings {
        let mut w = w.clone();
        w.message = format!("warning: {}", w.message);
        eprintln!("{}", w.in_file(&name));
    }
    match report.into_result() {
        Ok(config) => {
            println!(
                "{name}: ok (device {}, {} destination(s), {} product(s))",
                config.device_id,
                config.destinations.len(),
                config.products.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{}", p.in_file(&name));
            }
            eprintln!("{name}: not valid");
            ExitCode::from(2)
        }
    }
}
