//! The microphone pipeline: rebuilt alone when it fails; without one the
//! encoder sends silence.

use anyhow::{anyhow, Result};
use gstreamer as gst;
use gstreamer::prelude::*;

use super::{parse_pipeline, Capture};
use crate::media::bus::{self, BusError};
use crate::media::plan::{self, AudioSource};
use crate::media::MediaEvent;

impl Capture {
    /// (Re)build the mic pipeline. No mic configured is not an error: the
    /// encoder sends silence.
    /// `auto` looks for the mic off the caller's thread (the device monitor
    /// is slow); `MediaEvent::MicFound` brings it back to [`Capture::open_mic`].
    pub fn start_mic(&mut self) -> Result<()> {
        // Off the caller's thread: a state change to NULL can wait on the device.
        crate::media::camera::teardown(self.mic.take());
        self.mic_discovery = self.mic_discovery.wrapping_add(1);
        match &self.settings.audio_source {
            AudioSource::Auto => {
                crate::media::camera::discover_mic(self.mic_discovery, self.events.clone());
                Ok(())
            }
            other => self.build_mic(other.clone()),
        }
    }

    /// The mic discovery started by [`Capture::start_mic`] came back.
    pub fn open_mic(&mut self, discovery: u64, device: Option<String>) -> Result<()> {
        if discovery != self.mic_discovery || self.mic.is_some() {
            return Ok(());
        }
        match device {
            Some(dev) => self.build_mic(AudioSource::Alsa(dev)),
            None => {
                tracing::info!("no microphone found; the stream carries silence");
                Ok(())
            }
        }
    }

    fn build_mic(&mut self, source: AudioSource) -> Result<()> {
        let Some(desc) = plan::audio_pipeline(&source, &self.audio_channel) else {
            return Ok(());
        };
        if self.mic_gone {
            return Err(anyhow!("the microphone is gone (simulated)"));
        }
        tracing::info!(pipeline = %desc, "mic pipeline");
        let mic = parse_pipeline(&desc, "mic")?;
        mic.use_clock(Some(&gst::SystemClock::obtain()));
        let tx = self.events.clone();
        bus::watch(&mic, move |msg| {
            if let gst::MessageView::Error(err) = msg.view() {
                let e = BusError::from_message(err);
                tracing::warn!(error = %e, "mic pipeline failed");
                let _ = tx.send(MediaEvent::MicLost(e.failure()));
            }
        });
        mic.set_state(gst::State::Playing)
            .map_err(|_| anyhow!("the microphone would not start ({desc})"))?;
        self.mic = Some(mic);
        Ok(())
    }
}

impl Capture {
    /// Whether a microphone pipeline runs (none: silence goes out).
    pub fn mic_running(&self) -> bool {
        self.mic.is_some()
    }

    /// For tests and the sim: the microphone fails now, and every reopen
    /// fails until `resume`, as an unplugged USB microphone would.
    pub fn simulate_mic(&mut self, gone: bool) {
        self.mic_gone = gone;
        if !gone {
            return;
        }
        if let Some(mic) = &self.mic {
            let el = mic.upcast_ref::<gst::Element>();
            gst::element_error!(
                el,
                gst::ResourceError::Read,
                ["simulated microphone failure"]
            );
        }
    }
}
