//! The appliance core: every decision the box makes, in one sans-IO machine.
//!
//! No tokio, GStreamer, sockets, files or clock reads in here (the
//! quinn-proto / str0m shape). **Run-loop contract:** the shell creates
//! [`Core::new`], then for everything that happens calls
//! [`Core::handle`]`(now, input)` and drains [`Core::poll_output`] until
//! `None`, carrying out each [`Output`] in order; an output whose execution
//! fails at once comes back as the matching [`Input`] in the same turn. It
//! sleeps until [`Core::poll_timeout`] and then calls `handle(now,
//! Input::Tick)`. `now` is monotonic; the wall clock comes beside it (show
//! folders and event stamps are named with it, and a Pi without a real-time
//! clock learns the date from NTP only after boot).
//!
//! **Who owns what:** the show machine (`crate::show`) owns the show's state;
//! this core owns it, the buttons' debouncing, the lights, the running
//! config, the show folder's name, the recorder's and the hardware's retries,
//! the bitrate controller and what it has set on the encoder, selling (scale
//! machine, tags, the lower third), command replies, and the fleet trial and
//! rollback. The shell owns only handles: pipelines, sockets, the MQTT link,
//! the fleet layers on disk, threads. See `docs/design.md`.

mod commands;
mod encoder;
mod fleet;
mod io;
mod lights;
mod media;
mod parts;
mod selling;
mod status;
pub mod watchdog;

#[cfg(test)]
mod abr_tests;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

pub use io::{
    CalChange, EncoderInfo, FleetAnswer, FleetOp, HealthSample, Input, Light, MediaCmd,
    MediaReport, MqttOp, NotifyOp, Output, Publish, WebAsk, Work,
};

use crate::config::Config;
use crate::gpio::buttons::Buttons;
use crate::show::{Action, Show, ShowSettings, State};

/// How often the shell samples the media edge's counters ([`Input::Health`]).
pub const HEALTH_TICK: Duration = Duration::from_millis(250);

/// How long a rebuilt pipeline has to reach standby before the config it was
/// built from is rolled back.
pub const TRIAL: Duration = Duration::from_secs(30);

/// The time a turn is handled at: monotonic for every decision, the wall
/// clock for names and stamps.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: SystemTime,
}

pub struct Core {
    config: Config,
    show: Show,
    buttons: Buttons,
    lights: lights::Lights,
    media: media::MediaState,
    selling: selling::Selling,
    parts: parts::Parts,
    fleet: fleet::FleetState,
    status: status::StatusState,
    watchdog: watchdog::Watch,
    /// The MQTT link runs (a status, an event, a reply has somewhere to go).
    mqtt_on: bool,
    out: VecDeque<Output>,
    exiting: bool,
    /// The last wall clock seen: event stamps made between turns use it.
    wall: SystemTime,
    /// Seeds retry jitter (of show machines made again after a push too).
    seed: u64,
}

/// What the core starts from.
pub struct Start {
    pub config: Config,
    /// The fleet session's config version (0 without fleet layers).
    pub config_version: u64,
    /// Whether the box keeps fleet layers at all (pushes are refused without).
    pub fleet: bool,
    /// A report from the start (a rolled back config), told once MQTT is up.
    pub reported: Option<crate::fleet::Reported>,
    /// Seeds the jitter of retries (different boxes retry at different times).
    pub seed: u64,
}

impl Core {
    /// A core in `Starting`: its first outputs build the media side, start
    /// MQTT, open the hardware and start the capture.
    pub fn new(now: Now, start: Start) -> Core {
        let Start {
            config,
            config_version,
            fleet,
            reported,
            seed,
        } = start;
        let mut settings = ShowSettings::from_live(&config.live);
        settings.jitter_seed ^= seed << 17;
        let mut core = Core {
            show: Show::new(settings, enabled_destinations(&config), now.at),
            buttons: buttons_for(&config),
            lights: lights::Lights::new(now.at),
            media: media::MediaState::new(&config),
            selling: selling::Selling::new(&config),
            parts: parts::Parts::new(seed),
            fleet: fleet::FleetState::new(fleet, config_version, now.at),
            status: status::StatusState::new(now.at),
            watchdog: watchdog::Watch::new(now.at),
            mqtt_on: config.mqtt.enabled,
            out: VecDeque::new(),
            exiting: false,
            wall: now.wall,
            seed: seed << 17,
            config,
        };
        core.out.push_back(Output::Media(MediaCmd::Rebuild(Box::new(
            core.config.clone(),
        ))));
        if core.mqtt_on {
            core.out
                .push_back(Output::Mqtt(MqttOp::Start(Box::new(core.config.clone()))));
        }
        core.open_parts(now.at, true);
        if let Some(r) = reported {
            core.report(r);
        }
        core.drain_show(now);
        core
    }

    /// The running config (the one owner of it).
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state(&self) -> State {
        self.show.state()
    }

    /// The encoder in use.
    #[cfg(test)]
    pub fn encoder_name(&self) -> &str {
        &self.media.encoder.name
    }

    /// The status light's pattern now.
    #[cfg(test)]
    pub fn status_light(&self) -> crate::gpio::tally::Pattern {
        self.lights.status_pattern()
    }

    /// The scale's reading, for the phone page's live display.
    pub fn scale_status(&self) -> crate::mqtt::payloads::ScaleStatus {
        self.selling.status()
    }

    /// Feed one input at `now`.
    pub fn handle(&mut self, now: Now, input: Input) {
        self.wall = now.wall;
        match input {
            Input::Edge {
                button,
                pressed,
                at,
            } => self.buttons.edge(&button, at, pressed),
            Input::Media(report) => self.on_media(now, report),
            Input::MediaBuilt(info) => self.media_built(info),
            Input::ServerReachable(name) => self.server_reachable(now, &name),
            Input::Reading(r) => self.selling.on_reading(now.at, r),
            Input::Health(sample) => self.health(now, sample),
            Input::Command(cmd) => self.on_command(now, cmd),
            Input::Push { source, payload } => self.on_push(source, payload),
            Input::Fleet(answer) => self.on_fleet(now, answer),
            Input::Disk {
                used_bytes,
                free_bytes,
            } => self.status.disk_measured(now.at, used_bytes, free_bytes),
            Input::GpioOpened(result) => self.gpio_opened(now.at, result),
            Input::ScaleOpened(result) => self.scale_opened(now.at, result),
            Input::MqttTrial(result) => self.mqtt_trial_done(now, result),
            Input::CalibrationSaved { change, saved } => self.calibration_saved(change, saved),
            Input::Web(ask) => self.on_web(now, ask),
            Input::LinkMemory(rates) => self.links_remembered(rates),
            Input::Shutdown => self.show_input(now, crate::show::Input::Shutdown),
            Input::Tick => {}
        }
        self.on_time(now);
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call `handle(now, Input::Tick)` next at the latest.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.show.poll_timeout(),
            self.buttons.poll_timeout(),
            self.lights.poll_timeout(),
            self.selling.poll_timeout(),
            self.media.poll_timeout(),
            self.parts.poll_timeout(),
            self.fleet.poll_timeout(),
            Some(self.status.next_status()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whatever is due at `now`: presses, the show's and selling's timers,
    /// retries, lights, status.
    fn on_time(&mut self, now: Now) {
        self.buttons.handle_timeout(now.at);
        while let Some(ev) = self.buttons.poll_event() {
            tracing::info!(button = %ev.button, kind = ?ev.kind, "button");
            self.show_input(now, crate::show::Input::Button(ev));
        }
        self.show_input(now, crate::show::Input::Tick);
        self.media_timers(now);
        self.open_parts(now.at, false);
        self.check_trials(now);
        self.sell_tick(now);
        if now.at >= self.status.next_status() {
            self.publish_status(now);
        }
        self.update_attention(now.at);
        self.lights.update(now.at, &mut self.out);
    }

    /// One input to the show machine, and what it asks for.
    fn show_input(&mut self, now: Now, input: crate::show::Input) {
        self.status.note_capture(&input);
        let before = self.show.state();
        self.show.handle(now.at, input);
        self.drain_show(now);
        self.sync_encoder_door();
        let after = self.show.state();
        if after != before {
            if before == State::Stopping && after == State::Standby {
                self.show_ended();
            }
            self.out
                .push_back(Output::Notify(NotifyOp::Status(after.as_str())));
            self.confirm_start();
            self.watchdog.state_changed(now.at);
            // Status goes out on every change, not only on the interval.
            self.status.due_now(now.at);
        }
    }

    fn drain_show(&mut self, now: Now) {
        while let Some(action) = self.show.poll_action() {
            self.act(now, action);
        }
    }

    fn act(&mut self, now: Now, action: Action) {
        match action {
            Action::StartCapture => self.media_cmd(MediaCmd::StartCapture { restart: false }),
            Action::RestartCapture => self.media_cmd(MediaCmd::StartCapture { restart: true }),
            Action::Connect(name) => {
                match self.config.destinations.iter().find(|d| d.name == name) {
                    Some(d) => self.media_cmd(MediaCmd::Connect(Box::new(d.clone()))),
                    // The show machine knows only the config's destinations.
                    None => tracing::error!(destination = %name, "no such destination"),
                }
            }
            Action::Disconnect(name) => {
                self.media.abr.forget(&name);
                self.media_cmd(MediaCmd::Disconnect(name))
            }
            Action::StartRecording { show_id } => {
                self.start_abr(true);
                self.start_recording(now, &show_id)
            }
            Action::StopRecording => {
                self.remember_links(now);
                self.stop_recording()
            }
            Action::Slate(on) => self.media_cmd(MediaCmd::Slate(on)),
            Action::Tally(p) => self.lights.set(Light::Tally, now.at, p),
            Action::StatusLed(p) => self.lights.set(Light::Status, now.at, p),
            Action::Event(crate::show::ShowEvent::ProductPressed { product_id, .. }) => {
                self.tag(now, &product_id, selling::Origin::Button)
            }
            Action::Event(e) => {
                if let Some(ev) = status::show_event(&e, now.wall) {
                    self.publish(Publish::Event(ev));
                }
            }
            Action::Ready => self
                .out
                .push_back(Output::Notify(NotifyOp::Ready(self.show.state().as_str()))),
            Action::Exit => {
                self.exiting = true;
                self.out.push_back(Output::Exit);
            }
        }
    }

    fn media_cmd(&mut self, cmd: MediaCmd) {
        self.out.push_back(Output::Media(cmd));
    }

    /// MQTT publications go out only while a link runs.
    fn publish(&mut self, p: Publish) {
        if self.mqtt_on {
            self.out.push_back(Output::Publish(p));
        }
    }
}

fn buttons_for(config: &Config) -> Buttons {
    Buttons::new(
        Duration::from_millis(config.gpio.debounce_ms),
        Duration::from_millis(config.gpio.long_press_ms),
    )
}

/// The destinations a show connects to (the show machine knows only these).
fn enabled_destinations(config: &Config) -> Vec<String> {
    config
        .destinations
        .iter()
        .filter(|d| d.enabled)
        .map(|d| d.name.clone())
        .collect()
}
