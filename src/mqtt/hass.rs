//! Home Assistant MQTT discovery: one `config` document per entity, all sharing
//! one availability topic and one `device` block, published retained on every
//! ConnAck and whenever Home Assistant announces itself `online`.

use super::topics;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Serialize)]
pub struct HassDevice {
    pub identifiers: Vec<String>,
    pub name: String,
    pub manufacturer: &'static str,
    pub model: &'static str,
    pub sw_version: &'static str,
}

/// One discovery document. Fields that do not apply to a component are left out.
#[derive(Debug, Clone, Serialize)]
pub struct HassEntity {
    pub name: &'static str,
    pub unique_id: String,
    pub object_id: String,
    pub availability_topic: String,
    pub device: HassDevice,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_template: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_of_measurement: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_press: Option<String>,
}

/// Home Assistant allows `[a-zA-Z0-9_-]` in the node and object ids.
pub fn node_id(device: &str) -> String {
    device
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `(discovery topic, document)` for every entity of this device.
pub fn discovery(prefix: &str, device: &str) -> Vec<(String, HassEntity)> {
    let node = node_id(device);
    let dev = HassDevice {
        identifiers: vec![format!("farmcast_{node}")],
        name: device.to_string(),
        manufacturer: "farmcast",
        model: "farmcast livestream box",
        sw_version: env!("CARGO_PKG_VERSION"),
    };
    let status = topics::status(prefix, device);
    let base = |name: &'static str, object: &str| HassEntity {
        name,
        unique_id: format!("farmcast_{node}_{object}"),
        object_id: format!("{node}_{object}"),
        availability_topic: topics::availability(prefix, device),
        device: dev.clone(),
        state_topic: Some(status.clone()),
        value_template: None,
        device_class: None,
        unit_of_measurement: None,
        state_class: None,
        command_topic: None,
        payload_press: None,
    };
    let sensor = |name, object: &str, template, class, unit| HassEntity {
        value_template: Some(template),
        device_class: class,
        unit_of_measurement: unit,
        state_class: unit.map(|_| "measurement"),
        ..base(name, object)
    };
    let button = |name, object: &str, cmd: &str| HassEntity {
        state_topic: None,
        command_topic: Some(topics::cmd(prefix, device)),
        // A fixed id: Home Assistant cannot number presses, and the device does
        // not need unique ids to act on a command.
        payload_press: Some(
            json!({"id": format!("hass-{cmd}"), "cmd": cmd, "args": {}}).to_string(),
        ),
        ..base(name, object)
    };
    let entities = vec![
        (
            "binary_sensor",
            "on_air",
            HassEntity {
                value_template: Some("{{ 'ON' if value_json.state == 'live' else 'OFF' }}"),
                device_class: Some("running"),
                ..base("On air", "on_air")
            },
        ),
        (
            "sensor",
            "state",
            sensor("State", "state", "{{ value_json.state }}", None, None),
        ),
        (
            "sensor",
            "weight",
            sensor(
                "Scale weight",
                "weight",
                "{{ value_json.scale.weight_kg }}",
                Some("weight"),
                Some("kg"),
            ),
        ),
        (
            "sensor",
            "bitrate",
            sensor(
                "Video bitrate",
                "bitrate",
                "{{ value_json.video.bitrate_kbps }}",
                Some("data_rate"),
                Some("kbit/s"),
            ),
        ),
        (
            "sensor",
            "cpu_temp",
            sensor(
                "CPU temperature",
                "cpu_temp",
                "{{ value_json.cpu_temp_c }}",
                Some("temperature"),
                Some("°C"),
            ),
        ),
        ("button", "go_live", button("Go live", "go_live", "go_live")),
        (
            "button",
            "end_show",
            button("End show", "end_show", "end_show"),
        ),
    ];
    entities
        .into_iter()
        .map(|(component, object, e)| (topics::hass_discovery(component, &node, object), e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::commands::{self, CommandKind};

    #[test]
    fn every_entity_shares_availability_and_device() {
        let d = discovery("farmcast", "farm 01");
        assert_eq!(d.len(), 7);
        for (topic, e) in &d {
            assert!(
                topic.starts_with("homeassistant/") && topic.ends_with("/config"),
                "{topic}"
            );
            assert!(topic.contains("/farm_01/"), "{topic}");
            assert_eq!(e.availability_topic, "farmcast/farm 01/availability");
            assert_eq!(e.device.identifiers, vec!["farmcast_farm_01".to_string()]);
        }
    }

    #[test]
    fn buttons_send_commands_the_parser_accepts() {
        let d = discovery("P", "D");
        let mut kinds = vec![];
        for (_, e) in d
            .iter()
            .filter(|(t, _)| t.starts_with("homeassistant/button/"))
        {
            assert_eq!(e.command_topic.as_deref(), Some("P/D/cmd"));
            let payload = e.payload_press.as_deref().unwrap();
            kinds.push(commands::parse(payload.as_bytes()).unwrap().kind);
        }
        assert_eq!(kinds, vec![CommandKind::GoLive, CommandKind::EndShow]);
    }
}
