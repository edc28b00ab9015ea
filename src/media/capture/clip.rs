//! A `.y4m` clip read straight into the camera pipeline: one read per frame
//! into a pooled buffer, pushed into the `appsrc` that heads the pipeline
//! ([`plan::clip_head`]).
//!
//! `filesrc ! y4mdec` reads the file in 64 KiB blocks and copies each frame
//! out of them again. At 720p30 that second copy and the twenty-odd blocks
//! a frame arrives in cost about 0.2 core-seconds per 20 s more than this
//! reader (which reads each frame once, as ffmpeg's does), and 5 MiB more
//! resident memory (BENCHMARKS.md, `main`). Clips this reader does not take
//! (see [`Y4mHeader::i420_frame_size`]) still go through `y4mdec`.

use std::fs::File;
use std::io::{ErrorKind, Read};

use anyhow::{anyhow, Context, Result};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::media::plan;
use crate::media::y4m::{self, Y4mHeader, FRAME_LINE, MAX_FRAME_LINE, MAX_HEADER};

/// The `appsrc` of [`plan::clip_head`].
pub(super) const APPSRC: &str = "clip_in";

/// An open clip, positioned at its first frame.
pub(super) struct Clip {
    file: File,
    header: Y4mHeader,
    frame_size: usize,
    frame: u64,
}

impl Clip {
    /// Opens `path` for the direct reader; `Ok(None)` when the clip needs
    /// `y4mdec` (its layout, or a header this parser does not take: y4mdec's
    /// own error then reaches the log and the show the usual way).
    pub(super) fn open(path: &str) -> Result<Option<Clip>> {
        let mut file = File::open(path).with_context(|| format!("opening the clip {path}"))?;
        let mut head = Vec::with_capacity(MAX_HEADER);
        (&mut file)
            .take(MAX_HEADER as u64)
            .read_to_end(&mut head)
            .with_context(|| format!("reading the clip {path}"))?;
        let header = match y4m::parse_header(&head) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(clip = %path, error = %e, "clip left to y4mdec");
                return Ok(None);
            }
        };
        let Some(frame_size) = header.i420_frame_size() else {
            return Ok(None);
        };
        // Back to the end of the header: the read above went past it.
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(header.len as u64))
            .with_context(|| format!("reading the clip {path}"))?;
        Ok(Some(Clip {
            file,
            header,
            frame_size,
            frame: 0,
        }))
    }

    /// The head of the camera pipeline for this clip.
    pub(super) fn head(&self) -> String {
        plan::clip_head(APPSRC, &self.header.i420_caps())
    }

    /// The next frame into a buffer from `pool`; `None` at the end of the clip
    /// (a frame cut short by the end of the file is dropped).
    fn next(&mut self, pool: &gst::BufferPool) -> Result<Option<gst::Buffer>> {
        if !self.frame_line()? {
            return Ok(None);
        }
        let mut buffer = pool
            .acquire_buffer(None)
            .map_err(|e| anyhow!("no buffer for frame {}: {e}", self.frame))?;
        {
            let buffer = buffer.make_mut();
            let mut map = buffer
                .map_writable()
                .map_err(|_| anyhow!("the frame buffer cannot be written"))?;
            match self.file.read_exact(&mut map) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e).context(format!("reading frame {}", self.frame)),
            }
        }
        let (n, d) = (u64::from(self.header.fps_n), u64::from(self.header.fps_d));
        // Saturating: a header's rate is outside input (u32 both ways).
        let at = |frame: u64| gst::ClockTime::SECOND.mul_div_floor(frame.saturating_mul(d), n);
        {
            let buffer = buffer.make_mut();
            buffer.set_pts(at(self.frame));
            buffer.set_duration(at(self.frame + 1).zip(at(self.frame)).map(|(b, a)| b - a));
        }
        self.frame += 1;
        Ok(Some(buffer))
    }

    /// Reads the `FRAME` line; `false` at a clean end of the file.
    fn frame_line(&mut self) -> Result<bool> {
        let mut line = [0u8; MAX_FRAME_LINE];
        let n = FRAME_LINE.len();
        match self.file.read_exact(&mut line[..n]) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e).context(format!("reading frame {}", self.frame)),
        }
        // Parameters after `FRAME`: read on to the newline, bounded.
        let mut len = n;
        while line[len - 1] != b'\n' && len < MAX_FRAME_LINE && line.starts_with(b"FRAME ") {
            if self.file.read(&mut line[len..=len])? == 0 {
                return Ok(false);
            }
            len += 1;
        }
        y4m::check_frame_line(&line[..len])
            .with_context(|| format!("frame {} of the clip", self.frame))?;
        Ok(true)
    }
}

/// Feeds `clip` into the pipeline's [`APPSRC`] from its own streaming thread,
/// a frame each time it asks; the end of the clip is EOS (the capture loops
/// it), a read error a pipeline error.
pub(super) fn feed(pipeline: &gst::Pipeline, mut clip: Clip) -> Result<()> {
    let src = pipeline
        .by_name(APPSRC)
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| anyhow!("no {APPSRC} appsrc in the camera pipeline"))?;
    let pool = gst::BufferPool::new();
    let mut config = pool.config();
    // No upper bound: the encoder and the inter elements hold a few frames,
    // and a bounded pool would block the clip on them. Freed buffers come
    // back, so in practice the pool stays at what is in flight.
    config.set_params(None, clip.frame_size as u32, 2, 0);
    pool.set_config(config)
        .context("configuring the clip's buffers")?;
    pool.set_active(true)
        .context("allocating the clip's buffers")?;
    let mut done = false;
    src.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |src, _| {
                if done {
                    return;
                }
                match clip.next(&pool) {
                    Ok(Some(buffer)) => {
                        let _ = src.push_buffer(buffer);
                    }
                    Ok(None) => {
                        done = true;
                        let _ = src.end_of_stream();
                    }
                    Err(e) => {
                        done = true;
                        gst::element_error!(src, gst::ResourceError::Read, ("{e:#}"));
                    }
                }
            })
            .build(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const W: usize = 16;
    const H: usize = 8;
    const FRAME: usize = W * H * 3 / 2;

    /// A clip of `frames` frames whose bytes are all the frame's number;
    /// `lines` gives each frame's `FRAME` line.
    fn write_clip(dir: &std::path::Path, frames: usize, line: &dyn Fn(usize) -> Vec<u8>) -> String {
        let path = dir.join("clip.y4m");
        let mut f = File::create(&path).unwrap();
        f.write_all(
            format!("YUV4MPEG2 W{W} H{H} F25:1 Ip A1:1 C420jpeg XYSCSS=420JPEG\n").as_bytes(),
        )
        .unwrap();
        for i in 0..frames {
            f.write_all(&line(i)).unwrap();
            f.write_all(&[i as u8; FRAME]).unwrap();
        }
        path.display().to_string()
    }

    /// Runs the clip through `clip_head ! appsink` as fast as it goes; the
    /// frames (first byte, length, PTS in ms) and the error, if any.
    fn play(path: &str) -> (Vec<(u8, usize, u64)>, Option<String>) {
        crate::media::init_for_tests();
        let clip = Clip::open(path)
            .unwrap()
            .expect("the direct reader takes the clip");
        let desc = format!("{} ! appsink name=out sync=false", clip.head());
        let pipeline = gst::parse::launch(&desc)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        feed(&pipeline, clip).unwrap();
        let sink = super::super::appsink(&pipeline, "out").unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut frames = Vec::new();
        // A read error stops the clip without EOS: the pull gives up after a
        // second without a frame.
        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(1)) {
            let b = sample.buffer().unwrap();
            let map = b.map_readable().unwrap();
            frames.push((map[0], map.len(), b.pts().unwrap().mseconds()));
        }
        let bus = pipeline.bus().unwrap();
        let error = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(5),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.error().to_string()),
                _ => None,
            });
        pipeline.set_state(gst::State::Null).unwrap();
        (frames, error)
    }

    #[test]
    fn frames_come_out_whole_in_order_and_timed() {
        let dir = tempfile::tempdir().unwrap();
        // Frame 2's line carries parameters, as the format allows.
        let path = write_clip(dir.path(), 4, &|i| {
            if i == 2 {
                b"FRAME Ixyz XTAG=1\n".to_vec()
            } else {
                FRAME_LINE.to_vec()
            }
        });
        let (frames, error) = play(&path);
        assert_eq!(error, None);
        assert_eq!(
            frames,
            vec![
                (0, FRAME, 0),
                (1, FRAME, 40),
                (2, FRAME, 80),
                (3, FRAME, 120)
            ]
        );
    }

    /// A clip cut off mid-frame (a copy that did not finish) ends at its
    /// last whole frame; the capture loops it as any clip.
    #[test]
    fn a_frame_cut_short_ends_the_clip() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_clip(dir.path(), 3, &|_| FRAME_LINE.to_vec());
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let (frames, error) = play(&path);
        assert_eq!(error, None);
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), [0, 1]);
    }

    /// Garbage where a frame should start is a pipeline error that names
    /// the frame and echoes a bounded excerpt; the frames before it went out.
    #[test]
    fn a_corrupt_frame_is_an_error_that_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_clip(dir.path(), 3, &|i| {
            if i == 2 {
                vec![0x1b; 6]
            } else {
                FRAME_LINE.to_vec()
            }
        });
        let (frames, error) = play(&path);
        assert_eq!(frames.len(), 2);
        let error = error.expect("an error on the bus");
        assert!(
            error.contains("frame 2") && error.contains("FRAME"),
            "{error}"
        );
        // A `FRAME ` line that never ends is bounded too.
        let path = write_clip(dir.path(), 2, &|i| {
            if i == 1 {
                [&b"FRAME "[..], &[b'x'; 4 * MAX_FRAME_LINE]].concat()
            } else {
                FRAME_LINE.to_vec()
            }
        });
        let (frames, error) = play(&path);
        assert_eq!(frames.len(), 1);
        let error = error.expect("an error on the bus");
        assert!(error.len() < 400 && error.contains("frame 1"), "{error}");
    }

    /// Clips the reader does not take are left to y4mdec, and a header that
    /// is not one is too (y4mdec's own error then names the file).
    #[test]
    fn other_clips_are_left_to_y4mdec() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("odd.y4m");
        std::fs::write(&odd, b"YUV4MPEG2 W18 H8 F25:1\nFRAME\n").unwrap();
        assert!(Clip::open(odd.to_str().unwrap()).unwrap().is_none());
        let junk = dir.path().join("junk.y4m");
        std::fs::write(&junk, [0u8; 4096]).unwrap();
        assert!(Clip::open(junk.to_str().unwrap()).unwrap().is_none());
        assert!(Clip::open(dir.path().join("missing.y4m").to_str().unwrap()).is_err());
    }
}
