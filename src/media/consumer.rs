//! What a destination and the recorder have in common: a small pipeline of
//! their own that hangs off the capture's encoded stream (its appsrcs fed by
//! the capture's `StreamProducer`s, on the capture's clock and base time),
//! whose first bus error counts and whose later ones (while tearing down) do
//! not, and which ends either cleanly (EOS through the muxer, so the server
//! sees an unpublish and the last segment is finalized) or at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_utils::streamproducer::ConsumerSettings;
use gstreamer_utils::{ConsumptionLink, StreamProducer};

use super::bus::{self, BusError};
use super::capture::Capture;

/// How long a clean end waits for the sinks to take the end of stream.
const EOS_WAIT: Duration = Duration::from_secs(3);

pub(crate) struct Consumer {
    pipeline: gst::Pipeline,
    links: Vec<ConsumptionLink>,
    appsrcs: Vec<gst_app::AppSrc>,
    /// Cleared at the first error and when the owner lets go of the
    /// pipeline, so late bus messages are not taken for a new failure.
    alive: Arc<AtomicBool>,
}

impl Consumer {
    /// Adopt `pipeline` as a consumer of `capture`: the same clock and base
    /// time, so the buffers' timestamps (running time of the encode
    /// pipeline) mean the same here.
    pub(crate) fn new(pipeline: gst::Pipeline, capture: &Capture) -> Consumer {
        let (clock, base) = capture.timing();
        pipeline.use_clock(Some(&clock));
        pipeline.set_base_time(base);
        pipeline.set_start_time(gst::ClockTime::NONE);
        Consumer {
            pipeline,
            links: Vec::new(),
            appsrcs: Vec::new(),
            alive: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Watch the bus on GStreamer's threads: `on_error` gets the first error
    /// of a live pipeline only; `on_element` every element message.
    pub(crate) fn watch(
        &self,
        on_error: impl Fn(BusError) + Send + Sync + 'static,
        on_element: impl Fn(&gst::StructureRef) + Send + Sync + 'static,
    ) {
        let alive = self.alive.clone();
        bus::watch(&self.pipeline, move |msg| match msg.view() {
            gst::MessageView::Error(err) if alive.swap(false, Ordering::SeqCst) => {
                on_error(BusError::from_message(err));
            }
            gst::MessageView::Element(el) => {
                if let Some(s) = el.structure() {
                    on_element(s);
                }
            }
            _ => {}
        });
    }

    /// Feed `appsrc` from `producer` within `settings`' bounds. The producer
    /// configures the appsrc as it links it (live, leaky downstream, ...):
    /// set what should differ after this call, not before.
    pub(crate) fn attach(
        &mut self,
        producer: &StreamProducer,
        appsrc: gst_app::AppSrc,
        settings: ConsumerSettings,
    ) -> Result<()> {
        let link = producer
            .add_consumer_with(&appsrc, settings)
            .map_err(|e| anyhow!("linking to the capture: {e}"))?;
        self.links.push(link);
        self.appsrcs.push(appsrc);
        Ok(())
    }

    /// The appsrcs in the order attached.
    pub(crate) fn appsrcs(&self) -> &[gst_app::AppSrc] {
        &self.appsrcs
    }

    /// Start it, and ask the encoder for a keyframe now: a new consumer
    /// waits for one, and would otherwise wait up to a whole GOP.
    pub(crate) fn play(&self, capture: &Capture, what: &str) -> Result<()> {
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow!("{what}: the pipeline would not start"))?;
        request_keyframe(capture);
        Ok(())
    }

    /// No error yet and not let go of.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Buffers the bounded queues in front of it dropped.
    pub(crate) fn dropped(&self) -> u64 {
        self.links.iter().map(|l| l.dropped()).sum()
    }

    /// End cleanly: stop feeding (so no buffer lands after the EOS), EOS into
    /// the appsrcs, wait (bounded) until every sink has it, tear down, then
    /// `then`. On this thread with `wait` (shutdown), else on its own.
    pub(crate) fn end(self, wait: bool, then: impl FnOnce() + Send + 'static) {
        self.alive.store(false, Ordering::SeqCst);
        let Consumer {
            pipeline,
            links,
            appsrcs,
            ..
        } = self;
        drop(links);
        let work = move || {
            end_stream(&pipeline, &appsrcs);
            then();
        };
        if wait {
            work();
        } else {
            std::thread::spawn(work);
        }
    }

    /// Tear down at once (after a failure: nothing more can be sent anyway),
    /// off the caller's thread, then `then`.
    pub(crate) fn abort(self, then: impl FnOnce() + Send + 'static) {
        self.alive.store(false, Ordering::SeqCst);
        let Consumer {
            pipeline, links, ..
        } = self;
        drop(links);
        std::thread::spawn(move || {
            let _ = pipeline.set_state(gst::State::Null);
            then();
        });
    }
}

/// EOS into the appsrcs, wait (bounded) until every sink has it — the muxer
/// has written its trailer, the server has seen the unpublish — then tear
/// down. Blocking: never on the driver's loop.
fn end_stream(pipeline: &gst::Pipeline, appsrcs: &[gst_app::AppSrc]) {
    for src in appsrcs {
        let _ = src.end_of_stream();
    }
    let deadline = Instant::now() + EOS_WAIT;
    while Instant::now() < deadline && !all_sinks_eos(pipeline) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = pipeline.set_state(gst::State::Null);
}

/// The EOS message is consumed by our sync handler, so ask the sinks: EOS is
/// sticky on every sink pad that has received it.
fn all_sinks_eos(pipeline: &gst::Pipeline) -> bool {
    pipeline.iterate_sinks().into_iter().flatten().all(|sink| {
        sink.sink_pads()
            .iter()
            .all(|p| p.sticky_event::<gst::event::Eos>(0).is_some())
    })
}

/// Ask the encoder for a keyframe now (an upstream force-key-unit event).
fn request_keyframe(capture: &Capture) {
    let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    let _ = capture.video().appsink().send_event(event);
}
