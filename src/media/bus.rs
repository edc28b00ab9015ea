//! Bus messages turned into words: a failing element's path, the error and the
//! debug string, as the gstreamer-rs examples do, so a log line says which
//! element failed and why.

use gstreamer as gst;
use gstreamer::prelude::*;

use super::fault::{classify, Failure, Fault};

/// An error posted on a pipeline's bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{element}: {message}{}", debug.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct BusError {
    /// Path of the element that posted it, e.g. `/GstPipeline:pipeline3/GstRTMP2Sink:sink`.
    pub element: String,
    pub message: String,
    pub debug: Option<String>,
    /// What it means, classified once from its domain and kind (see `fault`).
    pub fault: Fault,
}

impl BusError {
    pub fn from_message(err: &gst::message::Error) -> BusError {
        let debug = err.debug().map(|d| d.to_string());
        BusError {
            fault: classify(&err.error(), debug.as_deref()),
            element: err
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_else(|| "unknown element".into()),
            message: err.error().to_string(),
            debug,
        }
    }

    /// The short form with its class, for the events.
    pub fn failure(&self) -> Failure {
        Failure::new(self.fault, self.short())
    }

    /// The short form for status and events: element name and message, no debug dump.
    pub fn short(&self) -> String {
        let name = self.element.rsplit(':').next().unwrap_or(&self.element);
        format!("{name}: {}", self.message)
    }
}

/// Forward a pipeline's bus to a callback on GStreamer's own threads: no GLib
/// main loop is needed, and the callback must not block (it sends on a channel).
pub fn watch(pipeline: &gst::Pipeline, on_message: impl Fn(&gst::Message) + Send + Sync + 'static) {
    if let Some(bus) = pipeline.bus() {
        bus.set_sync_handler(move |_, msg| {
            on_message(msg);
            gst::BusSyncReply::Drop
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_names_the_element() {
        let e = BusError {
            element: "/GstPipeline:dest-a/GstRTMP2Sink:sink".into(),
            message: "Connection refused".into(),
            debug: Some("long".into()),
            fault: Fault::Refused,
        };
        assert_eq!(e.short(), "sink: Connection refused");
        assert!(e.to_string().contains("(long)"));
        assert_eq!(
            e.failure(),
            Failure::new(Fault::Refused, "sink: Connection refused")
        );
    }
}
