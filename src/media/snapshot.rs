//! JPEG snapshots of what the viewers see, from any thread.

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;

use super::plan::RawFormat;

/// Makes JPEGs of the last frame that went into the encoder (slate and lower
/// third included: what the viewers see).
#[derive(Clone)]
pub struct Snapshotter {
    pub(super) last_raw: Arc<Mutex<Option<gst::Sample>>>,
    pub(super) raw: RawFormat,
}

impl Snapshotter {
    /// The current frame as a JPEG no wider than `max_width`. Blocking (runs a
    /// small conversion pipeline): call it from a blocking task.
    pub fn jpeg(&self, max_width: u32) -> Result<Vec<u8>> {
        let sample = self
            .last_raw
            .lock()
            .map_err(|_| anyhow!("snapshot lock poisoned"))?
            .clone()
            .ok_or_else(|| anyhow!("no frame yet"))?;
        let raw = &self.raw;
        let width = max_width.min(raw.width).max(2) & !1;
        let height = ((u64::from(raw.height) * u64::from(width) / u64::from(raw.width.max(1)))
            as u32)
            .max(2)
            & !1;
        let caps = gst::Caps::builder("image/jpeg")
            .field("width", width as i32)
            .field("height", height as i32)
            .build();
        let jpeg =
            gstreamer_video::convert_sample(&sample, &caps, Some(gst::ClockTime::from_seconds(2)))
                .context("JPEG conversion")?;
        let buffer = jpeg.buffer().ok_or_else(|| anyhow!("empty JPEG"))?;
        let map = buffer
            .map_readable()
            .map_err(|_| anyhow!("JPEG not readable"))?;
        Ok(map.as_slice().to_vec())
    }
}
