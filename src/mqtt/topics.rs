//! Every MQTT topic this device publishes or subscribes to, in one place.
//!
//! `P` is `mqtt.topic_prefix`, `D` is `device_id` (see INTERFACES.md). Callers never
//! format a topic themselves, so a rename happens here or nowhere.

/// `P/D/availability`: `online` / `offline` (retained; the last will).
pub fn availability(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/availability")
}

/// `P/D/status`: the retained status document.
pub fn status(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/status")
}

/// `P/D/events`: one JSON object per event, not retained.
pub fn events(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/events")
}

/// `P/D/cmd`: commands to the device.
pub fn cmd(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/cmd")
}

/// `P/D/cmd/result`: answers to commands.
pub fn cmd_result(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/cmd/result")
}

/// `P/D/config/desired`: a signed envelope for this device (retained).
pub fn config_desired(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/config/desired")
}

/// `P/fleet/<group>/config/desired`: a signed envelope for a group layer (retained).
pub fn fleet_config_desired(prefix: &str, group: &str) -> String {
    format!("{prefix}/fleet/{group}/config/desired")
}

/// `P/D/config/reported`: what the device did with the desired config (retained).
pub fn config_reported(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/config/reported")
}

/// Home Assistant's discovery prefix and its birth/will topic.
pub const HASS_PREFIX: &str = "homeassistant";

/// `homeassistant/<component>/<device>/<object>/config`.
pub fn hass_discovery(component: &str, device: &str, object: &str) -> String {
    format!("{HASS_PREFIX}/{component}/{device}/{object}/config")
}

/// `homeassistant/status`: Home Assistant says `online` when it (re)starts; we
/// answer with discovery and retained state, as govee2mqtt does.
pub fn hass_status() -> String {
    format!("{HASS_PREFIX}/status")
}

/// Where a desired config came from, told by its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Device,
    Group(String),
}

/// Which desired-config topic `topic` is, if any, for this device and its groups.
pub fn config_source(
    prefix: &str,
    device: &str,
    groups: &[String],
    topic: &str,
) -> Option<ConfigSource> {
    if topic == config_desired(prefix, device) {
        return Some(ConfigSource::Device);
    }
    groups
        .iter()
        .find(|g| topic == fleet_config_desired(prefix, g))
        .map(|g| ConfigSource::Group(g.clone()))
}

/// Whether a v5 request's response topic may be answered on: only under this
/// device's own `P/D/`, never one of the topics the box owns or listens to
/// (an answer there would pass for a status, a command or a config), and
/// never a wildcard (a publish to one is a protocol error that ends the
/// connection). Anything else could make the box write for whoever asked.
pub fn response_topic_allowed(prefix: &str, device: &str, topic: &str) -> bool {
    let own = format!("{prefix}/{device}/");
    let reserved = [
        availability(prefix, device),
        status(prefix, device),
        events(prefix, device),
        cmd(prefix, device),
        config_desired(prefix, device),
        config_reported(prefix, device),
    ];
    topic.len() > own.len()
        && topic.starts_with(&own)
        && !topic.contains(['+', '#', '\0'])
        && !reserved.iter().any(|r| r == topic)
}

#[cfg(test)]
mod tests {
    #[test]
    fn response_topics_only_under_the_device() {
        for good in ["p/d/cmd/result", "p/d/cmd/result/tech-7", "p/d/replies/x"] {
            assert!(response_topic_allowed("p", "d", good), "{good}");
        }
        for bad in [
            "p/other/cmd",
            "p/dd/cmd/result",
            "p/d/",
            "p/d",
            "q/d/cmd/result",
            "p/d/cmd",
            "p/d/status",
            "p/d/availability",
            "p/d/config/desired",
            "p/d/config/reported",
            "p/d/events",
            "p/d/cmd/#",
            "p/d/+/x",
            "attacker/inbox",
            "",
        ] {
            assert!(!response_topic_allowed("p", "d", bad), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn topics_follow_the_interface() {
        assert_eq!(
            availability("farmcast", "farm-01"),
            "farmcast/farm-01/availability"
        );
        assert_eq!(status("P", "D"), "P/D/status");
        assert_eq!(events("P", "D"), "P/D/events");
        assert_eq!(cmd("P", "D"), "P/D/cmd");
        assert_eq!(cmd_result("P", "D"), "P/D/cmd/result");
        assert_eq!(config_desired("P", "D"), "P/D/config/desired");
        assert_eq!(
            fleet_config_desired("P", "north"),
            "P/fleet/north/config/desired"
        );
        assert_eq!(config_reported("P", "D"), "P/D/config/reported");
        assert_eq!(
            hass_discovery("binary_sensor", "D", "on_air"),
            "homeassistant/binary_sensor/D/on_air/config"
        );
    }

    #[test]
    fn config_source_tells_device_from_group() {
        let groups = vec!["north".to_string(), "south".to_string()];
        assert_eq!(
            config_source("P", "D", &groups, "P/D/config/desired"),
            Some(ConfigSource::Device)
        );
        assert_eq!(
            config_source("P", "D", &groups, "P/fleet/south/config/desired"),
            Some(ConfigSource::Group("south".into()))
        );
        assert_eq!(
            config_source("P", "D", &groups, "P/fleet/east/config/desired"),
            None
        );
        assert_eq!(config_source("P", "D", &groups, "P/D/cmd"), None);
    }
}
