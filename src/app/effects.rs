//! Carrying out the core's outputs: each is one effect on a handle, and
//! what fails at once is the matching input, returned for the same turn.

use serde_json::json;

use super::{hardware, remote, Shell};
use crate::appliance::{Input, Light, MediaCmd, MqttOp, NotifyOp, Now, Output, Publish, Work};

impl Shell {
    pub(super) fn carry_out(&mut self, now: Now, out: Output) -> Option<Input> {
        match out {
            Output::Media(cmd) => self.media_cmd(cmd),
            Output::Light { light, on } => {
                let led = match light {
                    Light::Tally => Some(&mut self.tally),
                    Light::Status => self.status_led.as_mut(),
                };
                if let Some(led) = led {
                    if let Err(e) = led.set(on) {
                        tracing::warn!(error = %format!("{e:#}"), "LED write failed");
                    }
                }
                None
            }
            Output::Probe(name) => {
                self.probe(&name);
                None
            }
            Output::Publish(p) => {
                self.publish(p);
                None
            }
            Output::Work(w) => self.work(w),
            Output::Fleet(op) => super::fleet_link::ask(&mut self.fleet, op).map(Input::Fleet),
            Output::Mqtt(op) => self.mqtt(op),
            Output::OpenGpio(config) => {
                let opened =
                    hardware::open_gpio(&config, self.edge_tx.clone(), self.sim_tx.clone());
                Some(Input::GpioOpened(match opened {
                    Ok(lights) => {
                        self.tally = lights.tally;
                        self.status_led = lights.status;
                        Ok(())
                    }
                    Err(e) => Err(format!("{e:#}")),
                }))
            }
            Output::OpenScale(config) => {
                let opened = hardware::open_scale(&config, self.scale_tx.clone(), now.at);
                Some(Input::ScaleOpened(match opened {
                    Ok(Some((scale, feed))) => {
                        self.sim_feed = feed;
                        Ok(Some(Box::new(scale)))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(format!("{e:#}")),
                }))
            }
            Output::Notify(op) => {
                match op {
                    NotifyOp::Ready(state) => self.notify.ready(state),
                    NotifyOp::Status(state) => self.notify.status(state),
                    NotifyOp::Watchdog => self.notify.watchdog(),
                }
                None
            }
            Output::Exit => {
                self.exit = true;
                None
            }
        }
    }

    fn media_cmd(&mut self, cmd: MediaCmd) -> Option<Input> {
        let capture = self.media.capture();
        match cmd {
            MediaCmd::StartCapture { .. } => return self.media.start_capture().map(Input::Media),
            MediaCmd::StartMic => self.media.start_mic(),
            MediaCmd::Connect(dest) => return self.media.connect(&dest).map(Input::Media),
            MediaCmd::Disconnect(name) => return self.media.disconnect(&name).map(Input::Media),
            MediaCmd::StartRecorder(dir) => {
                self.turn.recorder = true;
                return self.media.start_recorder(dir).map(Input::Media);
            }
            MediaCmd::StopRecorder => self.media.stop_recorder(),
            MediaCmd::Slate(on) => {
                tracing::info!(on, "slate");
                self.media.set_slate(on);
            }
            MediaCmd::CameraLost(lost) => self.media.set_camera_lost(lost),
            MediaCmd::Encode(on) => {
                if let Some(c) = capture {
                    c.set_encoding(on);
                    tracing::debug!(on, "encoder door");
                }
            }
            MediaCmd::LowerThird(text) => {
                if let Some(c) = capture {
                    c.set_lower_third(text.as_deref());
                }
            }
            MediaCmd::SetBitrate(kbps) => {
                if let Some(c) = capture {
                    let applied = c.set_bitrate(kbps);
                    tracing::debug!(kbps, applied, "encoder bitrate");
                }
            }
            MediaCmd::SetDecimation(n) => {
                if let Some(c) = capture {
                    c.set_frame_decimation(n);
                }
            }
            MediaCmd::SetScaleStep(step) => {
                if let Some(c) = capture {
                    c.set_scale_step(step);
                }
            }
            MediaCmd::SwitchEncoder(element) => {
                return self.media.switch_encoder(&element).map(Input::Media)
            }
            MediaCmd::Rebuild(config) => {
                let new = super::media_ctl::MediaCtl::new(&config, self.media_tx.clone());
                let mut old = std::mem::replace(&mut self.media, new);
                // The old pipelines go to NULL on a thread of their own: a
                // recorder finalising its last segment and a camera letting go
                // of its device took a second and more on the loop. A device
                // camera the new capture wants meanwhile is busy for that
                // while; its start fails and the show machine retries it.
                let spawned = std::thread::Builder::new()
                    .name("media-teardown".into())
                    .spawn(move || old.shutdown());
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "no thread for the old pipelines' teardown");
                }
                // `Input::MediaBuilt` follows when its settings are in.
                return None;
            }
        }
        None
    }

    /// A bare TCP connect to a down RTMP server (a SYN, closed at once);
    /// when it answers, the core reconnects at once. Nothing for SRT.
    fn probe(&self, name: &str) {
        let Some(addr) = self.media.remote(name) else {
            return;
        };
        let tx = self.probe_tx.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let connect = tokio::net::TcpStream::connect(addr);
            let timeout = std::time::Duration::from_millis(400);
            if let Ok(Ok(_stream)) = tokio::time::timeout(timeout, connect).await {
                let _ = tx.send(name);
            }
        });
    }

    fn publish(&mut self, p: Publish) {
        if let (Publish::Status(status), Some(web)) = (&p, &self.web) {
            web.status(status);
        }
        let Some(mqtt) = &self.links.current else {
            return;
        };
        match p {
            Publish::Status(mut status) => {
                self.turn.status = true;
                // What only the shell can measure: its loop, the board.
                let (last, total) = self.turns.take_interval();
                status.loop_turns = crate::mqtt::payloads::LoopStatus {
                    max_turn_ms: last.took.as_millis() as u64,
                    max_turn_what: last.what,
                    max_turn_ms_total: total.took.as_millis() as u64,
                    max_turn_what_total: total.what,
                    turns: self.turns.turns(),
                };
                status.cpu_temp_c = crate::mqtt::board::cpu_temp_c();
                status.throttled = crate::mqtt::board::throttled();
                mqtt.set_status(*status);
            }
            Publish::Event(ev) => mqtt.event(ev),
            Publish::Reply(cmd, outcome) => mqtt.reply(&cmd, outcome),
            Publish::Config(reported) => mqtt.report_config(reported.to_json()),
        }
    }

    fn work(&mut self, w: Work) -> Option<Input> {
        let mqtt = self.links.current.clone();
        match w {
            Work::Snapshot(cmd) => {
                let snap = self.media.capture().map(|c| c.snapshotter());
                if let Some(m) = mqtt {
                    remote::snapshot(m, cmd, snap);
                }
            }
            Work::ProbeDevices(cmd) => {
                if let Some(m) = mqtt {
                    remote::probe(m, cmd);
                }
            }
            Work::Logs(cmd, lines) => {
                if let Some(m) = mqtt {
                    m.reply(&cmd, Ok(remote::logs(lines, m.reply_budget())));
                }
            }
            Work::SetLogLevel(cmd, level) => {
                let m = mqtt?;
                match crate::logging::set_level(&level) {
                    Ok(change) => {
                        tracing::info!(old = %change.old, new = %change.new, "log level changed");
                        m.event(remote::log_level_event(&change));
                        m.reply(&cmd, Ok(json!({ "level": change.new, "old": change.old })));
                    }
                    Err(e) => m.reply(&cmd, Err(format!("{e:#}"))),
                }
            }
            // The phone page's code: kept by the page (src/web), all phones logged out.
            Work::SetPairingCode(cmd, code) => {
                let outcome = match &self.web {
                    Some(web) => {
                        web.set_code(code);
                        Ok(json!({ "sessions_closed": true }))
                    }
                    None => Err("the phone page is off ([web] enabled = false)".into()),
                };
                if let Some(m) = mqtt {
                    m.reply(&cmd, outcome);
                }
            }
            Work::DiskUsage(root) => self.disk_work.usage(root),
            Work::Budget { root, current, cfg } => self.disk_work.budget(root, current, &cfg),
            Work::SaveCalibration { state_dir, change } => {
                let path = crate::scale::calibration_path(&state_dir);
                let saved = crate::scale::calibration::save(&path, &change.new)
                    .map_err(|e| format!("{e:#}"));
                return Some(Input::CalibrationSaved { change, saved });
            }
            // A thread of its own: a sync of a busy SD card must not hold the
            // loop, and this is once a show.
            Work::SaveLinks { path, rates, wall } => {
                let spawned = std::thread::Builder::new()
                    .name("link-memory".into())
                    .spawn(
                        move || match crate::media::abr::memory::save(&path, &rates, wall) {
                            Ok(()) => tracing::info!(file = %path.display(), "link memory saved"),
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), "link memory not saved")
                            }
                        },
                    );
                match spawned {
                    Ok(handle) => {
                        self.link_writes.retain(|h| !h.is_finished());
                        self.link_writes.push(handle);
                    }
                    Err(e) => tracing::warn!(error = %e, "no thread to save the link memory"),
                }
            }
            Work::SalesLog { dir, event } => match serde_json::to_string(&event) {
                Ok(line) => self.disk_work.sales_log(dir, line),
                Err(e) => tracing::warn!(error = %e, "sales log line not made"),
            },
        }
        None
    }

    fn mqtt(&mut self, op: MqttOp) -> Option<Input> {
        match op {
            MqttOp::Start(config) => self.links.start(&config),
            MqttOp::Retire => self.links.retire(),
            MqttOp::Trial { config, mqtt } => {
                if let Err(why) = self.links.try_settings(&config, &mqtt) {
                    return Some(Input::MqttTrial(Err(why)));
                }
            }
            MqttOp::Promote { say_offline } => self.links.promote(say_offline),
            MqttOp::DropTrial => self.links.drop_trial(),
        }
        None
    }
}
