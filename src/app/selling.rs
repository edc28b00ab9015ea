//! The selling moment, seen from the driver: the scale's readings, tags from
//! product buttons and the `tag_product` command, the lower third on air, the
//! `product_tagged` event and the per-show sales log.
//!
//! Everything here is driven by the driver's loop (readings in, deadlines
//! polled); what must reach the picture or MQTT comes back as [`Output`]s.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::Config;
use crate::mqtt::payloads::{Event, ScaleStatus};
use crate::mqtt::IncomingCommand;
use crate::products::overlay::{lower_third_text, template_for, LowerThird};
use crate::products::tag::{TagOutcome, TagRecord, Tagger};
use crate::scale::sim::SimScaleFeed;
use crate::scale::{calibration, RawReading, Scale, ScaleEvent};

/// Where a tag came from: a button (nobody to answer) or a command (answer it).
pub enum Origin {
    Button,
    Command(IncomingCommand),
}

/// What the driver must carry out.
pub enum Output {
    LowerThird(Option<String>),
    Event(Event),
    Reply(IncomingCommand, Result<Value, String>),
}

/// The show a tag belongs to.
#[derive(Clone)]
pub struct ShowContext {
    pub show_id: Option<String>,
    pub offset: Option<Duration>,
    /// The show's recording folder, where its sales log goes.
    pub dir: Option<PathBuf>,
}

pub struct Selling {
    scale: Option<Scale>,
    sim_feed: Option<SimScaleFeed>,
    tagger: Tagger,
    lower_third: LowerThird,
    config: Config,
    /// A tag waiting for the scale to settle, with whom to answer.
    waiting: Option<(Origin, ShowContext)>,
}

impl Selling {
    /// Opens the scale `scale.kind` names and starts its readings. On an
    /// error the box goes on without it (piece products still sell) and the
    /// driver tries again later; `none` opens nothing.
    pub fn open_scale(
        &mut self,
        config: &Config,
        readings: UnboundedSender<RawReading>,
        now: Instant,
    ) -> Result<()> {
        let opened = crate::scale::open(&config.scale, Path::new(&config.state_dir), now)
            .with_context(|| format!("scale.kind = {:?}", config.scale.kind))?;
        if let Some((opened, scale)) = opened {
            opened
                .source
                .start(readings)
                .context("starting the scale")?;
            self.scale = Some(scale);
            self.sim_feed = opened.sim_feed;
        }
        Ok(())
    }

    /// What is wrong with the open scale's readings (a port that vanished or
    /// never appeared, garbage on the line), for status.
    pub fn scale_error(&self) -> Option<&str> {
        self.scale.as_ref()?.state().error.as_deref()
    }

    /// Selling without a scale; [`Selling::open_scale`] adds it. A box whose
    /// scale could not be opened still sells piece products.
    pub fn without_scale(config: &Config) -> Selling {
        Selling {
            scale: None,
            sim_feed: None,
            tagger: Tagger::new(
                &config.products,
                Duration::from_millis(config.scale.settle_wait_ms),
            ),
            lower_third: LowerThird::new(
                Duration::from_secs(config.scale.overlay_s),
                i64::from(config.scale.tolerance_g),
            ),
            config: config.clone(),
            waiting: None,
        }
    }

    /// New products or overlay settings from a fleet push, applied live.
    pub fn update_catalog(&mut self, config: &Config) {
        self.tagger = Tagger::new(
            &config.products,
            Duration::from_millis(config.scale.settle_wait_ms),
        );
        self.config = config.clone();
    }

    pub fn sim_weight(&self, kg: f64) {
        match &self.sim_feed {
            Some(feed) => feed.set(kg),
            None => tracing::warn!("`weight` from the sim, but scale.kind is not \"sim\""),
        }
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

    /// Tag `product_id` now, or as soon as the scale settles.
    pub fn tag(
        &mut self,
        now: Instant,
        product_id: &str,
        origin: Origin,
        show: ShowContext,
    ) -> Vec<Output> {
        let outcome = self
            .tagger
            .tag(product_id, self.scale.as_ref().map(Scale::state), now);
        self.resolve(now, outcome, origin, show)
    }

    /// Scale deadlines, a settled wait, the lower third's hold.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(s) = &mut self.scale {
            s.handle_timeout(now);
            while let Some(ev) = s.poll_event() {
                match ev {
                    ScaleEvent::Error(why) => {
                        tracing::warn!(reason = %why, "scale");
                        out.push(Output::Event(
                            Event::now("error")
                                .with("what", format!("scale: {why}"))
                                .with("part", "scale"),
                        ));
                    }
                    ScaleEvent::Recovered => tracing::info!("scale readings are good again"),
                }
            }
            self.lower_third.on_scale(s.state(), now);
        }
        if let Some(outcome) = self.tagger.poll(self.scale.as_ref().map(Scale::state), now) {
            if let Some((origin, show)) = self.waiting.take() {
                out.extend(self.resolve(now, outcome, origin, show));
            }
        }
        if self.lower_third.handle_timeout(now) {
            out.push(Output::LowerThird(None));
        }
        out
    }

    fn resolve(
        &mut self,
        now: Instant,
        outcome: TagOutcome,
        origin: Origin,
        show: ShowContext,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        match outcome {
            TagOutcome::Wait(_) => {
                // A newer tag replaces one still waiting; its asker hears so.
                if let Some((Origin::Command(old), _)) = self.waiting.take() {
                    out.push(Output::Reply(old, Err("replaced by a newer tag".into())));
                }
                self.waiting = Some((origin, show));
            }
            TagOutcome::Failed(e) => {
                tracing::warn!(reason = %e, "tag failed");
                out.push(Output::Event(
                    Event::now("error").with("what", format!("tag: {e}")),
                ));
                if let Origin::Command(cmd) = origin {
                    out.push(Output::Reply(cmd, Err(e.to_string())));
                }
            }
            TagOutcome::Tagged(record) => {
                let text = lower_third_text(&record, template_for(&self.config.scale, &record));
                self.lower_third.show(&record, text.clone(), now);
                out.push(Output::LowerThird(Some(text)));
                let event = product_event(&record, &show);
                tracing::info!(product = %record.product_id, price = %record.price, currency = %record.currency, "tagged");
                if let Some(dir) = &show.dir {
                    if let Err(e) = append_sales_log(dir, &event) {
                        tracing::warn!(error = %format!("{e:#}"), "sales log not written");
                    }
                }
                if let Origin::Command(cmd) = origin {
                    out.push(Output::Reply(
                        cmd,
                        serde_json::to_value(&record).map_err(|e| e.to_string()),
                    ));
                }
                out.push(Output::Event(event));
            }
        }
        out
    }

    /// Tare; the calibration before and after, saved.
    pub fn tare(&mut self) -> Result<CalChange, String> {
        let missing = self.no_scale();
        let scale = self.scale.as_mut().ok_or(missing)?;
        let old = scale.calibration();
        let cal = scale.tare().map_err(|e| e.to_string())?;
        self.save(old, cal)
    }

    /// Calibrate with a known weight; a large change of the factor needs `force`.
    pub fn calibrate(&mut self, known_kg: f64, force: bool) -> Result<CalChange, String> {
        let missing = self.no_scale();
        let scale = self.scale.as_mut().ok_or(missing)?;
        let old = scale.calibration();
        let new = scale.calibration_for(known_kg).map_err(|e| e.to_string())?;
        calibration::check_change(&old, &new, force)?;
        scale.set_calibration(new);
        self.save(old, new)
    }

    /// Put a calibration back (the undo of a change); bounded like calibrate.
    pub fn set_calibration(
        &mut self,
        new: calibration::Calibration,
        force: bool,
    ) -> Result<CalChange, String> {
        let missing = self.no_scale();
        let scale = self.scale.as_mut().ok_or(missing)?;
        let old = scale.calibration();
        calibration::check_change(&old, &new, force)?;
        scale.set_calibration(new);
        self.save(old, new)
    }

    /// Why there is no scale to tare or calibrate.
    fn no_scale(&self) -> String {
        match self.config.scale.kind.as_str() {
            "none" => "this box has no scale (scale.kind = \"none\")".into(),
            kind => format!(
                "the scale (scale.kind = {kind:?}) is not open; status errors.scale says why, and the box keeps trying"
            ),
        }
    }

    fn save(
        &self,
        old: calibration::Calibration,
        new: calibration::Calibration,
    ) -> Result<CalChange, String> {
        let path = crate::scale::calibration_path(Path::new(&self.config.state_dir));
        calibration::save(&path, &new).map_err(|e| format!("calibration not saved: {e:#}"))?;
        Ok(CalChange { old, new })
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
}

/// A calibration change that took effect (and was saved).
#[derive(Debug, Clone, Copy)]
pub struct CalChange {
    pub old: calibration::Calibration,
    pub new: calibration::Calibration,
}

fn product_event(record: &TagRecord, show: &ShowContext) -> Event {
    let mut ev = Event::now("product_tagged");
    if let Ok(Value::Object(fields)) = serde_json::to_value(record) {
        for (k, v) in fields {
            ev = ev.with(&k, v);
        }
    }
    ev.with(
        "show_id",
        show.show_id.clone().map_or(Value::Null, Value::from),
    )
    .with(
        "show_offset_s",
        show.offset.map_or(Value::Null, |d| {
            json!((d.as_secs_f64() * 10.0).round() / 10.0)
        }),
    )
}

/// One JSON line per tag in the show's folder, so the farmer has the list of
/// what was shown and the platform can make chapters of the recording.
fn append_sales_log(dir: &Path, event: &Event) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("sales.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let line = serde_json::to_string(event).context("serialising the tag")?;
    writeln!(file, "{line}").with_context(|| format!("writing {}", path.display()))?;
    file.sync_data().ok();
    Ok(())
}
