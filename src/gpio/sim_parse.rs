//! The line protocol of the simulated hardware socket, parsed purely.
//!
//! One command a line (see `shared/INTERFACES.md`): `press go_live`,
//! `hold go_live 2.5`, `press product:<id>`, `weight 1.250`; and, for tests,
//! `camera stall|resume|fail`, `mic fail|resume`, `encoder fail` and `led tally|status`. Errors are sentences for
//! the person at the other end of the socket.

use std::time::Duration;

use super::buttons::ButtonId;

/// Longest `hold`, in seconds.
pub const MAX_HOLD_S: f64 = 60.0;
/// Largest weight magnitude, in kg.
pub const MAX_WEIGHT_KG: f64 = 1000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraCommand {
    /// The camera stops delivering frames (as a stalled USB camera does).
    Stall,
    Resume,
    /// The camera vanishes: the next capture start fails.
    Fail,
}

/// The microphone, for tests: `fail` makes its pipeline fail now and every
/// reopen fail until `resume` (as an unplugged USB microphone would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicCommand {
    Fail,
    Resume,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedKind {
    Tally,
    Status,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SimCommand {
    Press(ButtonId),
    Hold(ButtonId, Duration),
    Weight(f64),
    Camera(CameraCommand),
    Mic(MicCommand),
    /// The encoder in use fails (as a hardware encoder whose device stops):
    /// the show falls back to the next one that works.
    EncoderFail,
    Led(LedKind),
}

fn button(word: &str, products: &[String]) -> Result<ButtonId, String> {
    if word == "go_live" {
        return Ok(ButtonId::GoLive);
    }
    if let Some(id) = word.strip_prefix("product:") {
        if products.iter().any(|p| p == id) {
            return Ok(ButtonId::Product(id.to_string()));
        }
        let known = if products.is_empty() {
            "none are configured".to_string()
        } else {
            format!("known: {}", products.join(", "))
        };
        return Err(format!("unknown product {id:?} ({known})"));
    }
    Err(format!(
        "unknown button {word:?} (use go_live or product:<id>)"
    ))
}

fn number(word: &str, what: &str) -> Result<f64, String> {
    let n: f64 = word
        .parse()
        .map_err(|_| format!("{what} must be a number, got {word:?}"))?;
    if !n.is_finite() {
        return Err(format!("{what} must be finite"));
    }
    Ok(n)
}

/// Parses one line (without its newline). `products` are the configured ids.
pub fn parse_sim_line(line: &str, products: &[String]) -> Result<SimCommand, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["press", b] => Ok(SimCommand::Press(button(b, products)?)),
        ["hold", b, s] => {
            let button = button(b, products)?;
            let s = number(s, "hold time")?;
            if s <= 0.0 || s > MAX_HOLD_S {
                return Err(format!("hold time must be in (0, {MAX_HOLD_S}] seconds"));
            }
            Ok(SimCommand::Hold(button, Duration::from_secs_f64(s)))
        }
        ["weight", kg] => {
            let kg = number(kg, "weight")?;
            if !(-MAX_WEIGHT_KG..=MAX_WEIGHT_KG).contains(&kg) {
                return Err(format!("weight must be within ±{MAX_WEIGHT_KG} kg"));
            }
            Ok(SimCommand::Weight(kg))
        }
        ["camera", "stall"] => Ok(SimCommand::Camera(CameraCommand::Stall)),
        ["camera", "resume"] => Ok(SimCommand::Camera(CameraCommand::Resume)),
        ["camera", "fail"] => Ok(SimCommand::Camera(CameraCommand::Fail)),
        ["camera", ..] => Err("usage: camera stall|resume|fail".into()),
        ["mic", "fail"] => Ok(SimCommand::Mic(MicCommand::Fail)),
        ["mic", "resume"] => Ok(SimCommand::Mic(MicCommand::Resume)),
        ["mic", ..] => Err("usage: mic fail|resume".into()),
        ["encoder", "fail"] => Ok(SimCommand::EncoderFail),
        ["encoder", ..] => Err("usage: encoder fail".into()),
        ["led", "tally"] => Ok(SimCommand::Led(LedKind::Tally)),
        ["led", "status"] => Ok(SimCommand::Led(LedKind::Status)),
        ["led", ..] => Err("usage: led tally|status".into()),
        ["press", ..] => Err("usage: press go_live | press product:<id>".into()),
        ["hold", ..] => Err("usage: hold go_live <seconds>".into()),
        ["weight", ..] => Err("usage: weight <kg>".into()),
        [] => Err("empty line".into()),
        [cmd, ..] => Err(format!(
            "unknown command {:?} (press, hold, weight, camera, mic, encoder, led)",
            cmd.chars().take(32).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn products() -> Vec<String> {
        vec!["mussels".into(), "eggs".into()]
    }

    fn parse(s: &str) -> Result<SimCommand, String> {
        parse_sim_line(s, &products())
    }

    #[test]
    fn mic_commands() {
        assert_eq!(parse("mic fail"), Ok(SimCommand::Mic(MicCommand::Fail)));
        assert_eq!(parse("mic resume"), Ok(SimCommand::Mic(MicCommand::Resume)));
        assert!(parse("mic explode").unwrap_err().contains("usage: mic"));
        assert_eq!(parse("encoder fail"), Ok(SimCommand::EncoderFail));
        assert!(parse("encoder")
            .unwrap_err()
            .contains("usage: encoder fail"));
    }

    #[test]
    fn the_interface_commands() {
        assert_eq!(
            parse("press go_live"),
            Ok(SimCommand::Press(ButtonId::GoLive))
        );
        assert_eq!(
            parse("hold go_live 2.5"),
            Ok(SimCommand::Hold(
                ButtonId::GoLive,
                Duration::from_millis(2500)
            ))
        );
        assert_eq!(
            parse("press product:eggs"),
            Ok(SimCommand::Press(ButtonId::Product("eggs".into())))
        );
        assert_eq!(parse("weight 1.250"), Ok(SimCommand::Weight(1.25)));
        assert_eq!(parse("  weight   -0.5 "), Ok(SimCommand::Weight(-0.5)));
    }

    #[test]
    fn the_test_extensions() {
        assert_eq!(
            parse("camera stall"),
            Ok(SimCommand::Camera(CameraCommand::Stall))
        );
        assert_eq!(
            parse("camera resume"),
            Ok(SimCommand::Camera(CameraCommand::Resume))
        );
        assert_eq!(
            parse("camera fail"),
            Ok(SimCommand::Camera(CameraCommand::Fail))
        );
        assert_eq!(parse("led tally"), Ok(SimCommand::Led(LedKind::Tally)));
        assert_eq!(parse("led status"), Ok(SimCommand::Led(LedKind::Status)));
    }

    #[test]
    fn unknown_product_names_the_known_ones() {
        let e = parse("press product:fish").err().unwrap_or_default();
        assert!(e.contains("\"fish\"") && e.contains("mussels, eggs"), "{e}");
        let e = parse_sim_line("press product:fish", &[])
            .err()
            .unwrap_or_default();
        assert!(e.contains("none are configured"), "{e}");
    }

    #[test]
    fn bad_numbers_and_ranges() {
        for line in [
            "hold go_live 0",
            "hold go_live -1",
            "hold go_live 60.001",
            "hold go_live NaN",
            "hold go_live inf",
            "hold go_live x",
            "weight 1000.5",
            "weight -1001",
            "weight nan",
            "weight 1,25",
        ] {
            assert!(parse(line).is_err(), "{line}");
        }
        assert!(parse("hold go_live 60").is_ok());
        assert!(parse("weight -1000").is_ok());
    }

    #[test]
    fn malformed_lines() {
        for line in [
            "",
            "   ",
            "press",
            "press go_live now",
            "jump",
            "camera",
            "led",
            "press golive",
        ] {
            assert!(parse(line).is_err(), "{line:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(line in ".{0,300}") {
            let _ = parse(&line);
        }

        #[test]
        fn hold_accepts_exactly_the_range(s in -100.0f64..100.0) {
            let r = parse(&format!("hold go_live {s}"));
            prop_assert_eq!(r.is_ok(), s > 0.0 && s <= MAX_HOLD_S);
            if let Ok(SimCommand::Hold(_, d)) = r {
                prop_assert!((d.as_secs_f64() - s).abs() < 1e-6);
            }
        }

        #[test]
        fn weight_round_trips(kg in -1000.0f64..=1000.0) {
            prop_assert_eq!(parse(&format!("weight {kg}")), Ok(SimCommand::Weight(kg)));
        }
    }
}
