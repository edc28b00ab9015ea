//! Checks of `[scale]` that the range table ([`super::ranges`]) cannot
//! express: which serial speeds exist, whether the lower-third templates
//! parse, and the pins an HX711 needs.
//!
//! Numbers out of their bounds (`settle_ms`, `tolerance_g`, `resolution_g`,
//! `settle_wait_ms`, the HX711 pins) are the range table's alone: it runs
//! first and owns the one message for such a key.

use super::choices::ScaleKind;
use super::schema::ScaleConfig;
use super::template::validate_template;

/// The values `scale.serial_baud` takes: the speeds USB-serial scales speak
/// and termios names (`scale::serial` maps each to its constant).
pub const SERIAL_BAUDS: &[u32] = &[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200];

/// Problems in `[scale]` beyond the ranges, as `(key path, message)`.
pub fn check_scale(cfg: &ScaleConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut bad = |k: &str, m: String| out.push((format!("scale.{k}"), m));
    for (k, t) in [
        ("overlay_template", &cfg.overlay_template),
        ("overlay_template_piece", &cfg.overlay_template_piece),
    ] {
        if let Some(Err(e)) = t.as_deref().map(validate_template) {
            bad(k, e.to_string());
        }
    }
    if !SERIAL_BAUDS.contains(&cfg.serial_baud) {
        bad(
            "serial_baud",
            format!(
                "{} is not a serial speed; use one of: {}",
                cfg.serial_baud,
                SERIAL_BAUDS
                    .iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if cfg.kind == ScaleKind::Hx711 {
        for (k, p) in [
            ("hx711_dout_pin", cfg.hx711_dout_pin),
            ("hx711_sck_pin", cfg.hx711_sck_pin),
        ] {
            if p.is_none() {
                bad(
                    k,
                    "is needed for scale.kind = \"hx711\"; give the BCM pin number, e.g. 5".into(),
                );
            }
        }
        if cfg.hx711_dout_pin.is_some() && cfg.hx711_dout_pin == cfg.hx711_sck_pin {
            bad("hx711_sck_pin", "must differ from hx711_dout_pin".into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::Config;
    use crate::config::validate;

    fn scale_problems(scale: ScaleConfig) -> Vec<(String, String)> {
        validate(&Config {
            scale,
            ..Config::default()
        })
        .into_iter()
        .filter(|p| p.path.starts_with("scale."))
        .map(|p| (p.path, p.message))
        .collect()
    }

    #[test]
    fn config_checks_name_the_key() {
        assert!(check_scale(&ScaleConfig::default()).is_empty());
        let cfg = ScaleConfig {
            kind: ScaleKind::Hx711,
            serial_baud: 9601,
            overlay_template: Some("{name} {prise}".into()),
            settle_ms: 0,
            ..ScaleConfig::default()
        };
        let keys: Vec<String> = scale_problems(cfg).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "scale.settle_ms",
                "scale.overlay_template",
                "scale.serial_baud",
                "scale.hx711_dout_pin",
                "scale.hx711_sck_pin"
            ]
        );
    }

    #[test]
    fn serial_choices_and_framing_are_checked() {
        let cfg = ScaleConfig {
            serial_data_bits: 6,
            serial_stop_bits: 3,
            ..ScaleConfig::default()
        };
        let keys: Vec<String> = scale_problems(cfg).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["scale.serial_data_bits", "scale.serial_stop_bits"]);
        // Bad words are the walk's: each on its own key, with the choices.
        let problems = crate::config::check_str(
            "[scale]\nserial_format = \"toledo\"\nserial_parity = \"mark\"\n",
            std::path::Path::new("."),
        )
        .unwrap_err();
        let got: Vec<(String, String)> =
            problems.into_iter().map(|p| (p.path, p.message)).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "scale.serial_format");
        assert!(
            got[0]
                .1
                .contains("\"toledo\" is not known; use one of: \"auto\""),
            "{got:?}"
        );
        assert_eq!(got[1].0, "scale.serial_parity");
        assert!(got[1].1.contains("\"none\", \"even\", \"odd\""), "{got:?}");
        let ok = ScaleConfig {
            serial_format: "yaohua".parse().unwrap(),
            serial_parity: "even".parse().unwrap(),
            serial_data_bits: 7,
            serial_stop_bits: 2,
            ..ScaleConfig::default()
        };
        assert!(scale_problems(ok).is_empty());
    }

    /// One message per key: a number out of range gets the range table's, and
    /// the pins a wired HX711 needs are checked on both ends.
    #[test]
    fn ranges_own_the_numbers_and_pins_must_differ() {
        let cfg = ScaleConfig {
            kind: ScaleKind::Hx711,
            settle_ms: 20_000,
            tolerance_g: 2000,
            resolution_g: 0,
            settle_wait_ms: 20_000,
            serial_baud: 300,
            hx711_dout_pin: Some(30),
            hx711_sck_pin: Some(30),
            ..ScaleConfig::default()
        };
        let got = scale_problems(cfg);
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "scale.settle_ms",
                "scale.tolerance_g",
                "scale.resolution_g",
                "scale.settle_wait_ms",
                "scale.serial_baud",
                "scale.hx711_dout_pin",
                "scale.hx711_sck_pin"
            ]
        );
        assert!(
            got.iter().all(|(_, m)| m.contains("out of range")),
            "{got:?}"
        );
        let same = ScaleConfig {
            kind: ScaleKind::Hx711,
            hx711_dout_pin: Some(5),
            hx711_sck_pin: Some(5),
            ..ScaleConfig::default()
        };
        assert_eq!(
            check_scale(&same),
            [(
                "scale.hx711_sck_pin".to_string(),
                "must differ from hx711_dout_pin".to_string()
            )]
        );
        let piece = ScaleConfig {
            overlay_template_piece: Some("{name".into()),
            serial_baud: 1300,
            ..ScaleConfig::default()
        };
        let got = check_scale(&piece);
        assert_eq!(got[0].0, "scale.overlay_template_piece");
        assert_eq!(got[1].0, "scale.serial_baud");
        assert!(got[1]
            .1
            .contains("1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200"));
    }
}
