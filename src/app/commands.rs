//! Technicians' commands (MQTT `cmd`) and the status they read, on the driver.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{remote, selling, Driver};
use crate::show::{Command, Input, State};

impl Driver {
    pub(super) fn on_incoming(&mut self, inc: crate::mqtt::Incoming) {
        use crate::mqtt::commands::CommandKind as K;
        let Some(mqtt) = self.mqtt.clone() else {
            return;
        };
        let cmd = match inc {
            crate::mqtt::Incoming::Command(c) => c,
            crate::mqtt::Incoming::DesiredConfig { source, payload } => {
                return self.on_push(&source, &payload);
            }
        };
        tracing::info!(cmd = cmd.command.kind.name(), id = ?cmd.command.id, "command");
        let show_cmd = match &cmd.command.kind {
            K::GoLive => Some(Command::GoLive),
            K::EndShow => Some(Command::EndShow),
            K::RestartPipeline => Some(Command::RestartPipeline),
            K::ReconnectNow => Some(Command::ReconnectNow),
            _ => None,
        };
        if let Some(c) = show_cmd {
            self.pending.push_back(Input::Command(c));
            self.pump(Instant::now());
            let state = self.show.state();
            let ok = match c {
                Command::GoLive => state.in_show() || state == State::Stopping,
                Command::EndShow => !state.in_show(),
                _ => true,
            };
            let answer = json!({ "state": state.as_str() });
            mqtt.reply(
                &cmd,
                if ok {
                    Ok(answer)
                } else {
                    Err(format!("the show is {}", state.as_str()))
                },
            );
            return;
        }
        match &cmd.command.kind {
            K::Snapshot => {
                remote::snapshot(mqtt, cmd, self.media.capture().map(|c| c.snapshotter()))
            }
            K::Probe => remote::probe(mqtt, cmd),
            K::SetLogLevel { level } => match crate::logging::set_level(level) {
                Ok(change) => {
                    tracing::info!(old = %change.old, new = %change.new, "log level changed");
                    mqtt.event(remote::log_level_event(&change));
                    mqtt.reply(&cmd, Ok(json!({ "level": change.new, "old": change.old })));
                }
                Err(e) => mqtt.reply(&cmd, Err(format!("{e:#}"))),
            },
            K::Logs { lines } => mqtt.reply(&cmd, Ok(remote::logs(*lines, mqtt.reply_budget()))),
            K::TagProduct { product_id } => {
                let now = Instant::now();
                let ctx = self.show_context(now);
                let product_id = product_id.clone();
                let outputs =
                    self.selling
                        .tag(now, &product_id, selling::Origin::Command(cmd), ctx);
                self.sell(outputs);
            }
            K::Tare => {
                let outcome = self.selling.tare();
                remote::calibration_changed(&mqtt, &cmd, "tare", outcome);
            }
            K::CalibrateScale { known_kg, force } => {
                let outcome = self.selling.calibrate(*known_kg, *force);
                remote::calibration_changed(&mqtt, &cmd, "calibrate_scale", outcome);
            }
            K::SetCalibration {
                offset,
                factor,
                calibrated,
                force,
            } => {
                let cal = crate::scale::Calibration {
                    offset: *offset,
                    factor: *factor,
                    calibrated: *calibrated,
                };
                let outcome = self.selling.set_calibration(cal, *force);
                remote::calibration_changed(&mqtt, &cmd, "set_calibration", outcome);
            }
            // The phone page's code: kept by the page (src/web), all phones logged out.
            K::SetPairingCode { code } => match &self.web {
                Some(web) => {
                    web.set_code(code.clone());
                    mqtt.reply(&cmd, Ok(json!({ "sessions_closed": true })));
                }
                None => mqtt.reply(
                    &cmd,
                    Err("the phone page is off ([web] enabled = false)".into()),
                ),
            },
            _ => mqtt.reply(&cmd, Err("not handled".into())),
        }
    }

    pub(super) fn publish_status(&mut self, now: Instant) {
        use crate::mqtt::payloads as p;
        let interval = Duration::from_secs(self.config.mqtt.status_interval_s.max(1));
        self.next_status = now + interval;
        if self.mqtt.is_none() && self.web.is_none() {
            return;
        }
        let show = self.show.status();
        // A walk of every recording is too slow for the loop: status reads the
        // last figures, and a walk runs on the disk thread when they are stale.
        if self.disk_usage.poll_refresh(now) {
            self.disk_work
                .usage(PathBuf::from(&self.config.recording.dir));
        }
        let (used, free) = self.disk_usage.figures();
        let status = p::Status {
            state: show.state.as_str().into(),
            device_id: self.config.device_id.clone(),
            uptime_s: now.duration_since(self.started).as_secs(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_version: self.fleet.as_ref().map_or(0, |f| f.config_version()),
            video: p::VideoStatus {
                encoder: self.media.encoder_name.clone(),
                fps: (self.fps * 10.0).round() / 10.0,
                bitrate_kbps: self.abr.target_kbps(),
                dropped_frames: self.media.dropped_frames(),
            },
            destinations: show
                .destinations
                .iter()
                .map(|d| p::DestinationStatus {
                    name: d.name.clone(),
                    state: d.link.as_str().into(),
                    bitrate_kbps: self.media.destination_bitrate(&d.name),
                    target_kbps: self.abr.target_kbps(),
                    reconnects: d.reconnects,
                    congestion: self
                        .abr
                        .link(&d.name)
                        .and_then(|l| l.cause)
                        .map(|c| c.as_str().into()),
                    srt: self
                        .abr
                        .link(&d.name)
                        .and_then(|l| l.srt())
                        .map(|s| p::SrtStatus {
                            rtt_ms: s.rtt_ms,
                            packets_sent: s.packets_sent,
                            packets_lost: s.packets_lost,
                            packets_dropped: s.packets_dropped,
                        }),
                })
                .collect(),
            scale: self.selling.status(),
            recording: p::RecordingStatus {
                used_bytes: used,
                free_bytes: free,
            },
            cpu_temp_c: crate::mqtt::board::cpu_temp_c(),
            throttled: crate::mqtt::board::throttled(),
            uplink_addr: None,
            errors: self.errors(),
            loop_turns: {
                let (last, total) = self.turns.take_interval();
                p::LoopStatus {
                    max_turn_ms: last.took.as_millis() as u64,
                    max_turn_what: last.what,
                    max_turn_ms_total: total.took.as_millis() as u64,
                    max_turn_what_total: total.what,
                    turns: self.turns.turns(),
                }
            },
            mqtt: Default::default(),
        };
        if let Some(web) = &self.web {
            web.status(&status);
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.set_status(status);
        }
    }
}
