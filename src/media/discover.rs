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

/// Where the kernel lists sound cards (`cardN/id` holds a card's name).
const ASOUND: &str = "/proc/asound";

/// An ALSA device string with its card named by the card's id
/// (`hw:CARD=Device,DEV=0`) instead of its number (`hw:1,0`): the numbers
/// follow the order in which USB devices came up, which changes from one
/// boot to the next; the id stays. `hw:` and `plughw:` strings whose card
/// id cannot be read (or is not a plain word) are returned as they are.
pub fn stable_alsa_name(device: &str, asound: &std::path::Path) -> String {
    let Some((kind, rest)) = device.split_once(':') else {
        return device.to_string();
    };
    if !matches!(kind, "hw" | "plughw") {
        return device.to_string();
    }
    let (card, dev) = rest.split_once(',').unwrap_or((rest, "0"));
    let Ok(n) = card.parse::<u32>() else {
        return device.to_string();
    };
    let id = std::fs::read_to_string(asound.join(format!("card{n}/id")))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    match (id, dev.parse::<u32>()) {
        (Some(id), Ok(d)) => format!("{kind}:CARD={id},DEV={d}"),
        _ => device.to_string(),
    }
}

/// ALSA capture devices, named by their card's id where it can be read
/// (`hw:CARD=Device,DEV=0`; see [`stable_alsa_name`]).
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
                path: stable_alsa_name(&format!("hw:{card},{dev}"), std::path::Path::new(ASOUND)),
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

#[cfg(test)]
mod tests {
    use super::stable_alsa_name;

    #[test]
    fn cards_are_named_by_their_id_where_the_kernel_gives_one() {
        let dir = tempfile::tempdir().unwrap();
        let card = |n: u32, id: &str| {
            std::fs::create_dir_all(dir.path().join(format!("card{n}"))).unwrap();
            std::fs::write(dir.path().join(format!("card{n}/id")), format!("{id}\n")).unwrap();
        };
        card(1, "Device");
        card(2, "bad id;rm");
        card(3, "");
        let name = |d: &str| stable_alsa_name(d, dir.path());
        assert_eq!(name("hw:1,0"), "hw:CARD=Device,DEV=0");
        assert_eq!(name("plughw:1,2"), "plughw:CARD=Device,DEV=2");
        assert_eq!(name("hw:1"), "hw:CARD=Device,DEV=0");
        // Not a plain word, empty, or no such card: the numbers, as given.
        assert_eq!(name("hw:2,0"), "hw:2,0");
        assert_eq!(name("hw:3,0"), "hw:3,0");
        assert_eq!(name("hw:9,0"), "hw:9,0");
        // Already stable, or not ALSA hardware: untouched.
        assert_eq!(name("hw:CARD=Device,DEV=0"), "hw:CARD=Device,DEV=0");
        assert_eq!(name("default"), "default");
        assert_eq!(name("pulse:x"), "pulse:x");
    }
}
