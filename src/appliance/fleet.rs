//! Fleet pushes as the core sees them: whether a push applies live, needs a
//! rebuild or waits for the show's end (the fleet session answers that from
//! the layers it keeps on disk), the trial of a rebuilt config and of new
//! MQTT settings, and their rollback. A report says `applied` only once the
//! change is in force: after the outputs that carry it out, and for new
//! MQTT settings only once their link has connected.

use std::time::{Duration, Instant};

use super::{Core, FleetAnswer, FleetOp, MediaCmd, MqttOp, Now, Output, Publish, TRIAL};
use crate::config::{Config, MqttConfig};
use crate::fleet::{Action, Reported, Source, Status};
use crate::mqtt::payloads::{ConfigReport, Event, EventBody};
use crate::show::{Show, ShowSettings, State};

/// How long new MQTT settings from a push have to connect before the box
/// rolls them back and stays on the old ones.
pub const MQTT_TRIAL: Duration = Duration::from_secs(30);

/// New MQTT settings connecting beside the link in use.
#[derive(Debug)]
struct MqttTrial {
    deadline: Instant,
    /// The new settings; the running config keeps the old ones until the swap.
    mqtt: MqttConfig,
    /// `applied`, told once the new link is up (on it).
    reported: Reported,
}

/// What a roll back that was asked for goes back from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RollBack {
    /// A rebuilt config that did not reach standby.
    Trial,
    /// MQTT settings that did not connect: only live changes go back.
    Mqtt,
}

pub struct FleetState {
    /// The box keeps fleet layers (else every push is refused).
    enabled: bool,
    config_version: u64,
    /// A rebuilt config on trial until this deadline.
    trial: Option<Instant>,
    mqtt_trial: Option<MqttTrial>,
    rolling_back: Option<RollBack>,
    /// The start-up config was confirmed as last known good.
    start_confirmed: bool,
}

impl FleetState {
    pub fn new(enabled: bool, config_version: u64, _now: Instant) -> FleetState {
        FleetState {
            enabled,
            config_version,
            trial: None,
            mqtt_trial: None,
            rolling_back: None,
            start_confirmed: false,
        }
    }

    pub fn config_version(&self) -> u64 {
        self.config_version
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.trial, self.mqtt_trial.as_ref().map(|t| t.deadline)]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The event a fleet report is told with on `P/D/events`.
pub fn config_event(r: &Reported, wall: std::time::SystemTime) -> Event {
    let report = ConfigReport {
        hash: r.hash.clone(),
        version: r.version,
        error: r.error.clone(),
        field: r.field.clone(),
        note: r.note.clone(),
    };
    let body = match r.status {
        Status::Applied => EventBody::ConfigApplied(report),
        Status::Pending => EventBody::ConfigPending(report),
        Status::Rejected => EventBody::ConfigRejected(report),
        Status::RolledBack => EventBody::ConfigRolledBack(report),
    };
    Event::at(body, wall)
}

impl Core {
    pub(super) fn report(&mut self, r: Reported) {
        match r.status {
            Status::Rejected | Status::RolledBack => {
                tracing::warn!(status = ?r.status, error = ?r.error, field = ?r.field, version = ?r.version, "config")
            }
            _ => {
                tracing::info!(status = ?r.status, version = ?r.version, note = ?r.note, field = ?r.field, "config")
            }
        }
        let ev = config_event(&r, self.wall);
        self.publish(Publish::Config(r));
        self.publish(Publish::Event(ev));
    }

    /// A signed config pushed by a fleet manager: the session decides.
    pub(super) fn on_push(&mut self, source: Source, payload: Vec<u8>) {
        if !self.fleet.enabled {
            let r = Reported::new(None, Status::Rejected, "").with_error(
                "this box cannot keep fleet layers (see its log: state_dir)",
                None,
            );
            return self.report(r);
        }
        let live = self.show.state().in_show();
        self.out.push_back(Output::Fleet(FleetOp::Handle {
            source,
            payload,
            live,
        }));
    }

    pub(super) fn on_fleet(&mut self, now: Now, answer: FleetAnswer) {
        let rolling_back = self.fleet.rolling_back.take();
        match answer {
            FleetAnswer::Current => {}
            FleetAnswer::NothingToRollBack => match rolling_back {
                Some(RollBack::Mqtt) => {
                    tracing::error!("nothing to roll back to; the old MQTT link stays")
                }
                _ => tracing::error!("nothing to roll back to; the box keeps retrying"),
            },
            FleetAnswer::Step {
                reported,
                action,
                config_version,
            } => {
                self.fleet.config_version = config_version;
                match (rolling_back, action) {
                    // The push changed only what applies live (that is why it
                    // was tried live), so going back applies live too.
                    (Some(RollBack::Mqtt), Action::Restart(c) | Action::ApplyLive(c)) => {
                        self.apply_live(now, *c, reported)
                    }
                    (_, action) => self.fleet_action(now, reported, action),
                }
                if rolling_back == Some(RollBack::Trial) {
                    // The last good config is not on trial again: it ran before.
                    self.fleet.trial = None;
                }
            }
        }
    }

    pub(super) fn show_ended(&mut self) {
        if self.fleet.enabled {
            self.out.push_back(Output::Fleet(FleetOp::ShowEnded));
        }
    }

    fn fleet_action(&mut self, now: Now, reported: Reported, action: Action) {
        match action {
            Action::None => self.report(reported),
            Action::ApplyLive(config) => self.apply_live(now, *config, reported),
            // The report follows the rebuild it tells of.
            Action::Restart(config) => {
                self.rebuild(now, *config);
                self.report(reported)
            }
        }
    }

    fn confirm_running(&mut self) {
        if self.fleet.enabled {
            self.out.push_back(Output::Fleet(FleetOp::ConfirmRunning));
        }
    }

    /// Changes that need no new pipeline: bitrate, products, overlay, MQTT.
    fn apply_live(&mut self, now: Now, mut config: Config, reported: Reported) {
        let rates = |c: &Config| (c.video.bitrate_kbps, c.video.min_bitrate_kbps);
        if rates(&config) != rates(&self.config) {
            self.media.abr = super::media::abr_for(&config, &self.media.encoder);
            self.media_cmd(MediaCmd::SetBitrate(config.video.bitrate_kbps));
        }
        self.selling.update_catalog(&config);
        // New MQTT settings go on trial beside the running link, which then
        // holds the report until they connect or roll back.
        let reported = if config.mqtt != self.config.mqtt {
            self.apply_mqtt(now, &mut config, reported)
        } else {
            Some(reported)
        };
        self.config = config;
        if let Some(reported) = reported {
            self.confirm_running();
            self.report(reported);
        }
    }

    /// The MQTT part of a live push. While the new settings are on trial,
    /// `config.mqtt` is set back to the running one (the rest applies at
    /// once). Returns the report to confirm and publish now, or `None` when
    /// the trial holds it.
    fn apply_mqtt(
        &mut self,
        now: Now,
        config: &mut Config,
        reported: Reported,
    ) -> Option<Reported> {
        if self.fleet.mqtt_trial.take().is_some() {
            tracing::warn!("a newer push replaces the MQTT settings on trial");
            self.out.push_back(Output::Mqtt(MqttOp::DropTrial));
        }
        match (self.mqtt_on, config.mqtt.enabled) {
            // No link to keep talking over: nothing to try, start it as before.
            (false, on) => {
                self.mqtt_on = on;
                if on {
                    self.out
                        .push_back(Output::Mqtt(MqttOp::Start(Box::new(config.clone()))));
                }
                Some(reported)
            }
            // MQTT switched off: say so on the link, then let it go.
            (true, false) => {
                self.confirm_running();
                self.report(reported);
                // Retired, not dropped: the report goes out before the goodbye.
                self.out.push_back(Output::Mqtt(MqttOp::Retire));
                self.mqtt_on = false;
                None
            }
            (true, true) => {
                let new_mqtt = config.mqtt.clone();
                config.mqtt = self.config.mqtt.clone();
                tracing::info!(url = %crate::excerpt::excerpt(&new_mqtt.url), "new MQTT settings on trial; the old link stays until they connect");
                let mut trial_config = config.clone();
                trial_config.mqtt = new_mqtt.clone();
                self.out.push_back(Output::Mqtt(MqttOp::Trial {
                    config: Box::new(trial_config),
                    mqtt: Box::new(new_mqtt.clone()),
                }));
                self.fleet.mqtt_trial = Some(MqttTrial {
                    deadline: now.at + MQTT_TRIAL,
                    mqtt: new_mqtt,
                    reported,
                });
                None
            }
        }
    }

    /// The trial link connected (swap to it) or could not be used (roll back).
    pub(super) fn mqtt_trial_done(&mut self, now: Now, result: Result<(), String>) {
        let Some(trial) = self.fleet.mqtt_trial.take() else {
            return;
        };
        if let Err(why) = result {
            return self.roll_back_mqtt(&why);
        }
        let old = &self.config.mqtt;
        // Another broker or prefix: the old availability topic says offline;
        // the same one: the new link has said online there already.
        let say_offline =
            (&old.url, &old.topic_prefix) != (&trial.mqtt.url, &trial.mqtt.topic_prefix);
        self.out
            .push_back(Output::Mqtt(MqttOp::Promote { say_offline }));
        tracing::info!(url = %crate::excerpt::excerpt(&trial.mqtt.url), "new MQTT settings connected; the old link is closed");
        self.config.mqtt = trial.mqtt;
        self.confirm_running();
        self.report(trial.reported);
        self.publish_status(now);
    }

    /// The pushed MQTT settings failed: back to the last good config (whose
    /// `[mqtt]` is the one still running), reported `rolled_back` on the old link.
    fn roll_back_mqtt(&mut self, why: &str) {
        tracing::error!("{why}; rolling back");
        self.out.push_back(Output::Mqtt(MqttOp::DropTrial));
        self.roll_back(RollBack::Mqtt, why);
    }

    fn roll_back(&mut self, kind: RollBack, why: &str) {
        if !self.fleet.enabled {
            return tracing::error!("nothing to roll back to (no fleet layers)");
        }
        self.fleet.rolling_back = Some(kind);
        self.out
            .push_back(Output::Fleet(FleetOp::RollBack(why.to_string())));
    }

    /// Changes that need a new pipeline (camera, encoder, destinations): tear
    /// down, build again, and keep the config on trial until standby.
    fn rebuild(&mut self, now: Now, config: Config) {
        let was_on_air = self.show.state().in_show();
        tracing::info!(was_on_air, "new configuration: rebuilding the pipeline");
        self.media_cmd(MediaCmd::Rebuild(Box::new(config.clone())));
        let mut settings = ShowSettings::from_live(&config.live);
        // A show cut for an `apply: now` push goes back on air by itself.
        settings.autostart = config.live.autostart || was_on_air;
        settings.shows_before = self.show.shows_started();
        settings.jitter_seed ^= self.seed;
        self.show = Show::new(settings, super::enabled_destinations(&config), now.at);
        let links = std::mem::take(&mut self.media.links);
        self.media = super::media::MediaState::new(&config);
        self.media.links = links;
        self.selling.update_catalog(&config);
        self.config = config;
        self.fleet.trial = Some(now.at + TRIAL);
        self.watchdog.state_changed(now.at);
        self.drain_show(now);
    }

    /// The config the box started with becomes the last known good the
    /// first time it reaches standby (no rollback at boot: a camera that is
    /// unplugged at power-on is not the config's fault). Called at the very
    /// state change, before any later input: a push that arrives right after
    /// standby must not be saved as last known good in its place. Never while
    /// pushed MQTT settings are on trial: what runs then is not yet known good.
    pub(super) fn confirm_start(&mut self) {
        let state = self.show.state();
        if self.fleet.start_confirmed
            || self.fleet.mqtt_trial.is_some()
            || !(state == State::Standby || state.in_show())
        {
            return;
        }
        self.fleet.start_confirmed = true;
        self.confirm_running();
    }

    /// A config on trial is kept once the box reaches standby (or goes on
    /// air) and rolled back when the deadline passes first; so are MQTT
    /// settings that do not connect in time.
    pub(super) fn check_trials(&mut self, now: Now) {
        self.confirm_start();
        let state = self.show.state();
        if let Some(deadline) = self.fleet.trial {
            if state == State::Standby || state.in_show() {
                self.fleet.trial = None;
                tracing::info!("new configuration confirmed");
                self.confirm_running();
            } else if now.at >= deadline {
                self.fleet.trial = None;
                let why = format!(
                    "the box did not reach standby within {} s with the new configuration (state {})",
                    TRIAL.as_secs(),
                    state.as_str()
                );
                tracing::error!("{why}; rolling back");
                self.roll_back(RollBack::Trial, &why);
            }
        }
        if self
            .fleet
            .mqtt_trial
            .as_ref()
            .is_some_and(|t| now.at >= t.deadline)
        {
            self.fleet.mqtt_trial = None;
            self.roll_back_mqtt(&format!(
                "the new MQTT settings did not connect within {} s",
                MQTT_TRIAL.as_secs()
            ));
        }
    }
}
