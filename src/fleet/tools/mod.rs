//! The fleet manager's tools, `farmcast fleet ...`: see the fleet at a glance
//! ([`status`]), push a signed layer and follow it to every box ([`push`]),
//! in stages ([`canary`]), and read back what the broker holds ([`history`]).
//!
//! Everything comes from the retained topics the boxes already publish
//! (`availability`, `status` with its `groups`, `config/reported`); nothing
//! is stored off the broker, and nothing assumes one broker process, so a
//! clustered broker carries a larger fleet. The decisions ([`view`],
//! [`tally`], [`canary`]) are sans-IO; [`conn`] and the commands are the
//! edges. [`sim`] runs many simulated boxes for the tests and the benchmark.

pub mod canary;
pub mod conn;
pub mod history;
pub mod push;
pub mod sim;
pub mod simulate;
pub mod status;
pub mod tally;
pub mod view;

use std::process::ExitCode;

/// `farmcast fleet ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum FleetCmd {
    /// One line per box (availability, state, versions, last report, uplink, disk), problems first.
    Status(status::StatusArgs),
    /// Sign a layer, publish it retained and follow every box of the target.
    Push(push::PushArgs),
    /// The versions the broker holds for a group and each box's last report.
    History(history::HistoryArgs),
    /// Run simulated boxes (tests and benchmarks; no media).
    #[command(hide = true)]
    Simulate(simulate::SimulateArgs),
}

/// Runs a fleet command on a runtime of its own.
pub fn run(cmd: FleetCmd) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("farmcast fleet: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &cmd {
        FleetCmd::Status(a) => rt.block_on(status::run(a)),
        FleetCmd::Push(a) => rt.block_on(push::run(a)),
        FleetCmd::History(a) => rt.block_on(history::run(a)),
        FleetCmd::Simulate(a) => simulate::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("farmcast fleet: {e:#}");
            ExitCode::from(2)
        }
    }
}
