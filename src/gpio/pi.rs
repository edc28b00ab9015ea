//! The `rppal` back end: real pins on a Raspberry Pi (BCM numbering).
//!
//! Buttons are inputs with the internal pull-up, wired to ground: active-low, so
//! a falling edge is a press. rppal runs interrupt callbacks on its own thread;
//! each edge is stamped and sent into the tokio channel. Debouncing is left to
//! [`super::buttons`], which sees every edge. LEDs are active-high outputs.
//!
//! rppal compiles everywhere, but `Gpio::new()` fails at run time on anything
//! that is not a Pi it knows; the error says so and points at the `sim` back end.

use std::time::Instant;

use anyhow::Context;
use rppal::gpio::{Gpio, InputPin, Level, OutputPin, Trigger};
use tokio::sync::mpsc::UnboundedSender;

use super::buttons::ButtonId;
use super::{ButtonInput, Hardware, Led, RawEdge, Setup};

/// Active-low: the pin reads low while the button is held.
pub(crate) fn pressed_from_level(level: Level) -> bool {
    level == Level::Low
}

/// Active-low: falling = pressed, rising = released.
pub(crate) fn pressed_from_trigger(trigger: Trigger) -> Option<bool> {
    match trigger {
        Trigger::FallingEdge => Some(true),
        Trigger::RisingEdge => Some(false),
        _ => None,
    }
}

pub(crate) fn led_level(on: bool) -> Level {
    if on {
        Level::High
    } else {
        Level::Low
    }
}

/// Which button sits on which pin: go-live plus every product with a pin.
pub(crate) fn button_pins(setup: &Setup<'_>) -> Vec<(ButtonId, u8)> {
    let mut pins = vec![(ButtonId::GoLive, setup.gpio.go_live_pin)];
    pins.extend(setup.products.iter().filter_map(|p| {
        p.button_pin
            .map(|pin| (ButtonId::Product(p.id.clone()), pin))
    }));
    pins
}

fn explain(e: rppal::gpio::Error) -> anyhow::Error {
    match e {
        rppal::gpio::Error::UnknownModel => anyhow::anyhow!(
            "this machine is not a Raspberry Pi that rppal recognises (unknown model); \
             on a PC or in tests set gpio.backend = \"sim\""
        ),
        rppal::gpio::Error::PermissionDenied(path) => anyhow::anyhow!(
            "permission denied opening {path}; run as a member of the gpio group \
             (systemd: DeviceAllow=char-gpiochip rw)"
        ),
        other => anyhow::Error::new(other),
    }
}

fn pin_error(what: &str, pin: u8, e: rppal::gpio::Error) -> anyhow::Error {
    match e {
        rppal::gpio::Error::PinNotAvailable(_) => anyhow::anyhow!(
            "{what}: GPIO {pin} does not exist on this board (BCM numbering; \
             the 40-pin header has GPIO 0 to 27)"
        ),
        rppal::gpio::Error::PinUsed(_) => {
            anyhow::anyhow!("{what}: GPIO {pin} is already in use (assigned twice in the config?)")
        }
        other => anyhow::Error::new(other).context(format!("{what}: GPIO {pin}")),
    }
}

pub fn build(setup: Setup<'_>) -> anyhow::Result<Hardware> {
    let gpio = Gpio::new().map_err(explain)?;
    let mut inputs = Vec::new();
    for (button, pin) in button_pins(&setup) {
        let what = format!("button {button}");
        let p = gpio.get(pin).map_err(|e| pin_error(&what, pin, e))?;
        inputs.push((button, p.into_input_pullup()));
    }
    let led = |what: &str, pin: u8| -> anyhow::Result<Box<dyn Led>> {
        let p = gpio.get(pin).map_err(|e| pin_error(what, pin, e))?;
        Ok(Box::new(PiLed {
            pin: p.into_output_low(),
        }))
    };
    let tally = led("tally LED", setup.gpio.tally_led_pin)?;
    let status = match setup.gpio.status_led_pin {
        Some(pin) => Some(led("status LED", pin)?),
        None => None,
    };
    Ok(Hardware {
        buttons: Box::new(PiButtons { inputs }),
        tally,
        status,
    })
}

struct PiButtons {
    inputs: Vec<(ButtonId, InputPin)>,
}

impl ButtonInput for PiButtons {
    fn start(self: Box<Self>, tx: UnboundedSender<RawEdge>) -> anyhow::Result<()> {
        let mut armed = Vec::new();
        for (button, mut pin) in self.inputs {
            // A button held at boot must not look like a press starting later.
            let _ = tx.send(RawEdge {
                button: button.clone(),
                pressed: pressed_from_level(pin.read()),
                at: Instant::now(),
            });
            let edges = tx.clone();
            let id = button.clone();
            pin.set_async_interrupt(Trigger::Both, None, move |event| {
                if let Some(pressed) = pressed_from_trigger(event.trigger) {
                    // The receiver gone means the daemon is stopping.
                    let _ = edges.send(RawEdge {
                        button: id.clone(),
                        pressed,
                        at: Instant::now(),
                    });
                }
            })
            .with_context(|| format!("watching button {button}"))?;
            armed.push(pin);
        }
        // Dropping a pin clears its interrupt: keep them until nobody listens.
        tokio::spawn(async move {
            tx.closed().await;
            drop(armed);
        });
        Ok(())
    }
}

struct PiLed {
    pin: OutputPin,
}

impl Led for PiLed {
    fn set(&mut self, on: bool) -> anyhow::Result<()> {
        self.pin.write(led_level(on));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{GpioConfig, ProductConfig};

    #[test]
    fn active_low_buttons_and_active_high_leds() {
        assert!(pressed_from_level(Level::Low));
        assert!(!pressed_from_level(Level::High));
        assert_eq!(pressed_from_trigger(Trigger::FallingEdge), Some(true));
        assert_eq!(pressed_from_trigger(Trigger::RisingEdge), Some(false));
        assert_eq!(pressed_from_trigger(Trigger::Both), None);
        assert_eq!(led_level(true), Level::High);
        assert_eq!(led_level(false), Level::Low);
    }

    #[test]
    fn pins_for_go_live_and_products_with_a_pin() {
        let gpio = GpioConfig::default();
        let product = |id: &str, pin| ProductConfig {
            id: id.into(),
            name: id.into(),
            unit: "kg".parse().unwrap(),
            unit_price: "1.00".into(),
            currency: "CNY".into(),
            button_pin: pin,
        };
        let products = [product("eggs", Some(22)), product("fish", None)];
        let setup = Setup {
            gpio: &gpio,
            products: &products,
            sim_events: None,
        };
        assert_eq!(
            button_pins(&setup),
            vec![
                (ButtonId::GoLive, 17),
                (ButtonId::Product("eggs".into()), 22)
            ]
        );
    }

    #[test]
    fn off_the_board_the_error_points_at_sim() {
        let gpio = GpioConfig::default();
        let setup = Setup {
            gpio: &gpio,
            products: &[],
            sim_events: None,
        };
        // On a Pi this may succeed; off it, the message must help.
        if let Err(e) = build(setup) {
            let msg = format!("{e:#}");
            if Gpio::new().is_err_and(|e| matches!(e, rppal::gpio::Error::UnknownModel)) {
                assert!(msg.contains("gpio.backend = \"sim\""), "{msg}");
            }
        }
    }
}
