//! The selling moment: the scale's readings, tags from product buttons and
//! the `tag_product` command, the lower third on air, the `product_tagged`
//! event and the per-show sales log line, and the scale's calibration.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{CalChange, Core, MediaCmd, Now, Output, Publish, Work};
use crate::config::{Config, ScaleKind};
use crate::mqtt::payloads::{Event, EventBody, ScaleStatus};
use crate::mqtt::IncomingCommand;
use crate::products::overlay::{lower_third_text, template_for, LowerThird};
use crate::products::tag::{TagOutcome, TagRecord, Tagger};
use crate::scale::{calibration, Calibration, RawReading, Scale, ScaleEvent};

/// Where a tag came from: a button (nobody to answer) or a command (answer it).
#[derive(Debug)]
pub enum Origin {
    Button,
    Command(IncomingCommand),
}

/// The show a tag belongs to, fixed when the tag was asked for.
#[derive(Debug, Clone)]
struct ShowContext {
    show_id: Option<String>,
    offset: Option<Duration>,
    /// The show's recording folder, where its sales log goes.
    dir: Option<PathBuf>,
}

pub struct Selling {
    scale: Option<Scale>,
    tagger: Tagger,
    lower_third: LowerThird,
    /// A tag waiting for the scale to settle, with whom to answer.
    waiting: Option<(Origin, ShowContext)>,
    /// What was tagged since start (status `sales`, `/metrics`).
    pub sales: crate::mqtt::payloads::SalesStatus,
}

impl Selling {
    /// Selling without a scale (the shell opens it; piece products sell
    /// meanwhile).
    pub fn new(config: &Config) -> Selling {
        Selling {
            scale: None,
            tagger: tagger_for(config),
            lower_third: LowerThird::new(
                Duration::from_secs(config.scale.overlay_s),
                i64::from(config.scale.tolerance_g),
            ),
            waiting: None,
            sales: Default::default(),
        }
    }

    pub fn set_scale(&mut self, scale: Option<Scale>) {
        self.scale = scale;
    }

    /// New products from a fleet push, applied live.
    pub fn update_catalog(&mut self, config: &Config) {
        self.tagger = tagger_for(config);
    }

    pub fn on_reading(&mut self, now: Instant, reading: RawReading) {
        if let Some(s) = &mut self.scale {
            s.handle(now, reading);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.scale.as_ref().and_then(Scale::poll_timeout),
            self.tagger.poll_timeout(),
            self.lower_third.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What is wrong with the open scale's readings, for status.
    pub fn scale_error(&self) -> Option<&str> {
        self.scale.as_ref()?.state().error.as_deref()
    }

    pub fn status(&self) -> ScaleStatus {
        match &self.scale {
            Some(s) => ScaleStatus {
                weight_kg: s.state().weight_kg,
                stable: s.state().stable,
                format: s.state().format.clone(),
                baud: s.state().baud,
            },
            None => ScaleStatus::default(),
        }
    }

    /// The scale to tare or calibrate, or why there is none.
    fn scale_mut(&mut self, config: &Config) -> Result<&mut Scale, String> {
        let kind = config.scale.kind;
        self.scale.as_mut().ok_or_else(|| match kind {
            ScaleKind::None => "this box has no scale (scale.kind = \"none\")".into(),
            kind => format!(
                "the scale (scale.kind = \"{kind}\") is not open; status errors.scale says why, and the box keeps trying"
            ),
        })
    }
}

fn tagger_for(config: &Config) -> Tagger {
    Tagger::new(
        &config.products,
        Duration::from_millis(config.scale.settle_wait_ms),
    )
}

/// What a calibration command asks for.
#[derive(Debug, Clone, Copy)]
pub enum CalAsk {
    Tare,
    Calibrate { known_kg: f64, force: bool },
    Set { cal: Calibration, force: bool },
}

impl Core {
    /// Tag `product_id` now, or as soon as the scale settles.
    pub(super) fn tag(&mut self, now: Now, product_id: &str, origin: Origin) {
        let status = self.show.status();
        let in_show = status.state.in_show();
        let show = ShowContext {
            show_id: status.show_id.clone().filter(|_| in_show),
            offset: status
                .live_since
                .filter(|_| in_show)
                .map(|t| now.at.saturating_duration_since(t)),
            dir: self.media.show_dir().cloned(),
        };
        let s = &mut self.selling;
        let outcome = s
            .tagger
            .tag(product_id, s.scale.as_ref().map(Scale::state), now.at);
        self.resolve(now, outcome, origin, show);
    }

    /// Scale deadlines, a settled wait, the lower third's hold.
    pub(super) fn sell_tick(&mut self, now: Now) {
        let mut events = Vec::new();
        let s = &mut self.selling;
        if let Some(scale) = &mut s.scale {
            scale.handle_timeout(now.at);
            while let Some(ev) = scale.poll_event() {
                match ev {
                    ScaleEvent::Error(why) => {
                        tracing::warn!(reason = %why, "scale");
                        events.push(Event::at(
                            EventBody::Error {
                                what: format!("scale: {why}"),
                                part: Some("scale".into()),
                            },
                            now.wall,
                        ));
                    }
                    ScaleEvent::Recovered => tracing::info!("scale readings are good again"),
                }
            }
            s.lower_third.on_scale(scale.state(), now.at);
        }
        let settled = s.tagger.poll(s.scale.as_ref().map(Scale::state), now.at);
        let hide = s.lower_third.handle_timeout(now.at);
        for ev in events {
            self.publish(Publish::Event(ev));
        }
        if let Some(outcome) = settled {
            if let Some((origin, show)) = self.selling.waiting.take() {
                self.resolve(now, outcome, origin, show);
            }
        }
        if hide {
            self.media_cmd(MediaCmd::LowerThird(None));
        }
    }

    fn reply(&mut self, cmd: IncomingCommand, outcome: Result<Value, String>) {
        self.publish(Publish::Reply(cmd, outcome));
    }

    fn resolve(&mut self, now: Now, outcome: TagOutcome, origin: Origin, show: ShowContext) {
        match outcome {
            TagOutcome::Wait(_) => {
                // A newer tag replaces one still waiting; its asker hears so.
                if let Some((Origin::Command(old), _)) = self.selling.waiting.take() {
                    self.reply(old, Err("replaced by a newer tag".into()));
                }
                self.selling.waiting = Some((origin, show));
            }
            TagOutcome::Failed(e) => {
                tracing::warn!(reason = %e, "tag failed");
                let ev = Event::at(
                    EventBody::Error {
                        what: format!("tag: {e}"),
                        part: None,
                    },
                    now.wall,
                );
                self.publish(Publish::Event(ev));
                if let Origin::Command(cmd) = origin {
                    self.reply(cmd, Err(e.to_string()));
                }
            }
            TagOutcome::Tagged(record) => {
                let text = lower_third_text(&record, template_for(&self.config.scale, &record));
                self.selling.lower_third.show(&record, text.clone(), now.at);
                self.media_cmd(MediaCmd::LowerThird(Some(text)));
                let event = product_event(&record, &show, now);
                tracing::info!(product = %record.product_id, price = %record.price, currency = %record.currency, "tagged");
                self.selling
                    .sales
                    .record(&record.product_id, &record.currency, &record.price);
                if let Some(dir) = show.dir {
                    self.out.push_back(Output::Work(Work::SalesLog {
                        dir,
                        event: event.clone(),
                    }));
                }
                if let Origin::Command(cmd) = origin {
                    self.reply(
                        cmd,
                        serde_json::to_value(&record).map_err(|e| e.to_string()),
                    );
                }
                self.publish(Publish::Event(event));
            }
        }
    }

    /// Tare, calibrate or put a calibration back: the scale machine takes
    /// the new calibration now; the answer waits for it to be saved.
    pub(super) fn calibrate(&mut self, cmd: IncomingCommand, cause: &'static str, ask: CalAsk) {
        let scale = match self.selling.scale_mut(&self.config) {
            Ok(s) => s,
            Err(why) => return self.reply(cmd, Err(why)),
        };
        let old = scale.calibration();
        let new = match ask {
            CalAsk::Tare => scale.tare().map_err(|e| e.to_string()),
            CalAsk::Calibrate { known_kg, force } => scale
                .calibration_for(known_kg)
                .map_err(|e| e.to_string())
                .and_then(|new| calibration::check_change(&old, &new, force).map(|()| new)),
            CalAsk::Set { cal, force } => {
                calibration::check_change(&old, &cal, force).map(|()| cal)
            }
        };
        let new = match new {
            Ok(new) => new,
            Err(why) => return self.reply(cmd, Err(why)),
        };
        scale.set_calibration(new);
        self.out.push_back(Output::Work(Work::SaveCalibration {
            state_dir: PathBuf::from(&self.config.state_dir),
            change: CalChange {
                old,
                new,
                cause,
                cmd,
            },
        }));
    }

    /// Answers a tare, calibration or undo once saved, and tells
    /// `P/D/events` what changed: `calibration_changed` with `old`, `new` and
    /// `undo` (the command that puts the old one back).
    pub(super) fn calibration_saved(&mut self, change: CalChange, saved: Result<(), String>) {
        let CalChange {
            old,
            new,
            cause,
            cmd,
        } = change;
        if let Err(e) = saved {
            return self.reply(cmd, Err(format!("calibration not saved: {e}")));
        }
        tracing::info!(
            cause,
            old_offset = old.offset,
            old_factor = old.factor,
            new_offset = new.offset,
            new_factor = new.factor,
            "scale calibration changed"
        );
        let ev = Event::at(
            EventBody::CalibrationChanged {
                cause: cause.to_string(),
                old,
                new,
                undo: calibration_undo(&old),
            },
            self.wall,
        );
        self.publish(Publish::Event(ev));
        self.reply(cmd, Ok(json!(new)));
    }
}

/// `{"cmd": "set_calibration", …}` that puts `cal` back; `force`, because an
/// undo must not be refused for the size of the change it reverts.
fn calibration_undo(cal: &Calibration) -> Value {
    json!({
        "cmd": "set_calibration",
        "args": {
            "offset": cal.offset,
            "factor": cal.factor,
            "calibrated": cal.calibrated,
            "force": true,
        }
    })
}

fn product_event(record: &TagRecord, show: &ShowContext, now: Now) -> Event {
    Event::at(
        EventBody::ProductTagged {
            record: record.clone(),
            show_id: show.show_id.clone(),
            show_offset_s: show.offset.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
        },
        now.wall,
    )
}
