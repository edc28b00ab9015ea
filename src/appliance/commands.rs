//! Technicians' commands (MQTT `cmd`): which the core answers itself, and
//! which it hands to work off the loop (a snapshot, a device probe, the log).

use serde_json::json;

use super::selling::{CalAsk, Origin};
use super::{Core, Now, Output, Publish, Work};
use crate::mqtt::commands::CommandKind as K;
use crate::mqtt::IncomingCommand;
use crate::scale::Calibration;
use crate::show::{Command, Input as ShowInput, State};

/// Whether a show command did what it asked, judged by the state it left.
pub fn show_command_held(cmd: Command, state: State) -> bool {
    match cmd {
        Command::GoLive => state.in_show() || state == State::Stopping,
        Command::EndShow => !state.in_show(),
        Command::RestartPipeline | Command::ReconnectNow => true,
    }
}

impl Core {
    pub(super) fn on_command(&mut self, now: Now, cmd: IncomingCommand) {
        tracing::info!(cmd = cmd.command.kind.name(), id = ?cmd.command.id, "command");
        let show_cmd = match &cmd.command.kind {
            K::GoLive => Some(Command::GoLive),
            K::EndShow => Some(Command::EndShow),
            K::RestartPipeline => Some(Command::RestartPipeline),
            K::ReconnectNow => Some(Command::ReconnectNow),
            _ => None,
        };
        if let Some(c) = show_cmd {
            self.show_input(now, ShowInput::Command(c));
            let state = self.show.state();
            let answer = if show_command_held(c, state) {
                Ok(json!({ "state": state.as_str() }))
            } else {
                Err(format!("the show is {}", state.as_str()))
            };
            return self.publish(Publish::Reply(cmd, answer));
        }
        let work = |w| Output::Work(w);
        match cmd.command.kind.clone() {
            K::Snapshot => self.out.push_back(work(Work::Snapshot(cmd))),
            K::Probe => self.out.push_back(work(Work::ProbeDevices(cmd))),
            K::SetLogLevel { level } => self.out.push_back(work(Work::SetLogLevel(cmd, level))),
            K::Logs { lines } => self.out.push_back(work(Work::Logs(cmd, lines))),
            K::TagProduct { product_id } => self.tag(now, &product_id, Origin::Command(cmd)),
            K::Tare => self.calibrate(cmd, "tare", CalAsk::Tare),
            K::CalibrateScale { known_kg, force } => self.calibrate(
                cmd,
                "calibrate_scale",
                CalAsk::Calibrate { known_kg, force },
            ),
            K::SetCalibration {
                offset,
                factor,
                calibrated,
                force,
            } => {
                let cal = Calibration {
                    offset,
                    factor,
                    calibrated,
                };
                self.calibrate(cmd, "set_calibration", CalAsk::Set { cal, force })
            }
            K::SetPairingCode { code } => self.out.push_back(work(Work::SetPairingCode(cmd, code))),
            K::GoLive | K::EndShow | K::RestartPipeline | K::ReconnectNow => {}
        }
    }
}

impl Core {
    /// The phone page: the same inputs a button or a command makes.
    pub(super) fn on_web(&mut self, now: Now, ask: super::WebAsk) {
        use super::WebAsk as W;
        match ask {
            W::GoLive => self.show_input(now, ShowInput::Command(Command::GoLive)),
            W::EndShow => self.show_input(now, ShowInput::Command(Command::EndShow)),
            // A tap tags as the product's physical button does.
            W::Tag { product_id } => self.tag(now, &product_id, Origin::Button),
            // The key file is already written; the running config (the one
            // the next connect reads) takes the new server and key.
            W::SetPush {
                destination,
                server,
                key,
            } => {
                if let Some(d) = self
                    .config
                    .destinations
                    .iter_mut()
                    .find(|d| d.name == destination)
                {
                    d.url = server;
                    d.key = Some(key);
                }
            }
            W::EditProduct(edit) => {
                let edits = [(edit.id.clone(), edit)].into_iter().collect();
                crate::web::products::overlay(&mut self.config.products, &edits);
                self.selling.update_catalog(&self.config);
            }
        }
    }
}
