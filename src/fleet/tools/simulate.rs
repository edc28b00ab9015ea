//! `farmcast fleet simulate` (hidden): [`super::sim`] from the command line,
//! for the benchmark. Prints `ready N` once every box is connected, then runs
//! until its standard input closes.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::sim::{SimOptions, Simulator};

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    #[arg(long)]
    pub broker: String,
    #[arg(long, default_value = "farmcast")]
    pub prefix: String,
    #[arg(long)]
    pub group: String,
    /// Box `i` is `<id-prefix>-<i, 4 digits>`.
    #[arg(long, default_value = "sim")]
    pub id_prefix: String,
    #[arg(long)]
    pub boxes: usize,
    /// The public key every box trusts (PEM).
    #[arg(long)]
    pub trusted_key: PathBuf,
    /// One folder per box is made here.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 5)]
    pub status_interval: u64,
    /// Boxes (by index) that trust another key and reject every push.
    #[arg(long, value_delimiter = ',')]
    pub reject: Vec<usize>,
    /// Boxes whose pipeline fails with any new config (they roll back).
    #[arg(long, value_delimiter = ',')]
    pub fail: Vec<usize>,
    /// Skip fsync of the boxes' state files: hundreds of boxes on one disk
    /// would measure its queue.
    #[arg(long)]
    pub no_fsync: bool,
    /// Boxes in a show (a push that needs a new pipeline is `pending`).
    #[arg(long, value_delimiter = ',')]
    pub live: Vec<usize>,
}

pub fn run(a: &SimulateArgs) -> Result<u8> {
    let pem = std::fs::read_to_string(&a.trusted_key)
        .with_context(|| format!("cannot read {}", a.trusted_key.display()))?;
    let mut o = SimOptions::new(&a.broker, &a.group, a.boxes, &a.dir, &pem);
    o.prefix = a.prefix.clone();
    o.status_interval = Duration::from_secs(a.status_interval.max(1));
    o.id_prefix = a.id_prefix.clone();
    o.reject = a.reject.clone();
    o.fail = a.fail.clone();
    o.live = a.live.clone();
    o.fsync = !a.no_fsync;
    let sim = Simulator::start(&o)?;
    let t0 = Instant::now();
    while sim.connected() < a.boxes {
        if t0.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("only {} of {} boxes connected", sim.connected(), a.boxes);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("ready {} {:.1}", a.boxes, t0.elapsed().as_secs_f64());
    let _ = std::io::stdout().flush();
    // Until whoever started us closes our input.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    drop(sim);
    Ok(0)
}
