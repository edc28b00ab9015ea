//! Finding the camera and microphone `auto` means, at start and at every retry
//! (so a camera plugged in later is picked up).

use gstreamer as gst;
use gstreamer::prelude::*;

/// A capture device GStreamer's device monitor reports.
#[derive(Debug, Clone)]
pub struct FoundDevice {
    pub name: String,
    /// `/dev/videoN` for cameras, `hw:C,D` for ALSA capture devices.
    pub path: String,
    pub caps: Option<gst::Caps>,
}

/// The devices of a class (`Video/Source`, `Audio/Source`) present now.
pub(crate) fn devices(class: &str) -> Vec<gst::Device> {
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some(class), None);
    if monitor.start().is_err() {
        return Vec::new();
    }
    let list = monitor.devices().into_iter().collect();
    monitor.stop();
    list
}

/// A device property as text; the ALSA provider stores card numbers as integers.
pub(crate) fn prop(device: &gst::Device, key: &str) -> Option<String> {
    let props = device.properties()?;
    props
        .get::<String>(key)
        .ok()
        .or_else(|| props.get::<i32>(key).ok().map(|v| v.to_string()))
        .or_else(|| props.get::<u32>(key).ok().map(|v| v.to_string()))
}

/// V4L2 capture cameras, in the order the monitor lists them.
pub fn cameras() -> Vec<FoundDevice> {
    devices("Video/Source")
        .iter()
        .filter_map(|d| {
            // v4l2 devices carry device.path (pipewire/libcamera ones may not).
            let path = prop(d, "api.v4l2.path").or_else(|| prop(d, "device.path"))?;
            path.starts_with("/dev/video").then(|| FoundDevice {
                name: d.display_name().to_string(),
                path,
                caps: d.caps(),
            })
        })
        .collect()
}

/// The `device` property of the element the device would create, and that
/// element's factory name (for providers that name no path in their properties).
pub(crate) fn element_device(device: &gst::Device) -> Option<(String, String)> {
    let element = device.create_element(None).ok()?;
    let factory = element.factory()?.name().to_string();
    element.find_property("device")?;
    let dev = element.property_value("device").get::<String>().ok()?;
    Some((factory, dev))
}

/// ALSA capture devices as `hw:CARD,DEV`.
pub fn microphones() -> Vec<FoundDevice> {
    devices("Audio/Source")
        .iter()
        .filter_map(|d| {
            let card = prop(d, "alsa.card").or_else(|| prop(d, "api.alsa.card"))?;
            let dev = prop(d, "alsa.device")
                .or_else(|| prop(d, "api.alsa.pcm.device"))
                .unwrap_or_else(|| "0".into());
            Some(FoundDevice {
                name: d.display_name().to_string(),
                path: format!("hw:{card},{dev}"),
                caps: d.caps(),
            })
        })
        .collect()
}

pub fn first_camera() -> Option<String> {
    cameras().into_iter().next().map(|d| d.path)
}

pub fn first_microphone() -> Option<String> {
    microphones().into_iter().next().map(|d| d.path)
}

/// The caps a camera offers, for mode selection.
pub fn camera_caps(path: &str) -> Option<gst::Caps> {
    cameras()
        .into_iter()
        .find(|d| d.path == path)
        .and_then(|d| d.caps)
}
