//! Tagging a product on air: "this is what is on the scale, and its price"
//! (pure, time passed in).
//!
//! Contract: [`Tagger::tag`] answers at once with [`TagOutcome::Tagged`] or
//! [`TagOutcome::Failed`], or with [`TagOutcome::Wait`] when a `kg` product is
//! tagged while the scale is moving. A waiting tag is resolved by
//! [`Tagger::poll`], which the driver calls after every scale reading and at
//! [`Tagger::poll_timeout`]: tagged with the settled weight as soon as the scale
//! is stable, failed if it is not by the deadline or if the scale faults. One
//! tag waits at a time; a new tag replaces a waiting one (the farmer pressed
//! another button: the latest press is what they mean).
//!
//! A price is never computed from an unstable or faulty reading.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::price::{self, PriceError, Unit};
use crate::config::schema::ProductConfig;
use crate::scale::ScaleState;

/// What a tag shows and what the `product_tagged` event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRecord {
    pub product_id: String,
    pub name: String,
    /// kg with three decimals (`"1.250"`); `None` for products sold by the
    /// piece.
    pub weight_kg: Option<String>,
    /// With the currency's minor digits (`"30.00"`).
    pub unit_price: String,
    pub price: String,
    pub currency: String,
    /// Serialized as `"kg"` or `"piece"`.
    pub unit: Unit,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TagError {
    #[error("no product \"{id}\"; known products: {known}")]
    UnknownProduct { id: String, known: String },
    #[error("\"{0}\" is sold by the kg, but this box has no scale (scale.kind = \"none\")")]
    NoScale(String),
    #[error("the scale has a problem: {0}")]
    Scale(String),
    #[error("the scale did not settle within {0:?}; hold the produce still and tag again")]
    Unstable(Duration),
    #[error(transparent)]
    Price(#[from] PriceError),
}

#[derive(Debug, Clone, PartialEq)]
pub enum TagOutcome {
    Tagged(TagRecord),
    /// Waiting for the scale to settle, until at most this instant.
    Wait(Instant),
    Failed(TagError),
}

#[derive(Debug, Clone)]
struct Pending {
    product_id: String,
    since: Instant,
    until: Instant,
}

#[derive(Debug, Clone)]
pub struct Tagger {
    products: Vec<ProductConfig>,
    settle_wait: Duration,
    pending: Option<Pending>,
}

impl Tagger {
    pub fn new(products: &[ProductConfig], settle_wait: Duration) -> Tagger {
        Tagger {
            products: products.to_vec(),
            settle_wait,
            pending: None,
        }
    }

    /// Tags `product_id` now. `scale` is `None` when the box has no scale.
    pub fn tag(
        &mut self,
        product_id: &str,
        scale: Option<&ScaleState>,
        now: Instant,
    ) -> TagOutcome {
        self.pending = None;
        let Some(product) = self.products.iter().find(|p| p.id == product_id) else {
            return TagOutcome::Failed(TagError::UnknownProduct {
                id: product_id.to_string(),
                known: self
                    .products
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        match attempt(product, scale) {
            Attempt::Done(outcome) => outcome,
            // An empty pan waits like a moving one: the farmer presses the
            // button as the produce lands, before the scale has read it.
            Attempt::Unstable | Attempt::Empty(_) => {
                let until = now.checked_add(self.settle_wait).unwrap_or(now);
                self.pending = Some(Pending {
                    product_id: product_id.to_string(),
                    since: now,
                    until,
                });
                TagOutcome::Wait(until)
            }
        }
    }

    /// Resolves a waiting tag, if it can be: `None` while still waiting (or
    /// when nothing waits).
    pub fn poll(&mut self, scale: Option<&ScaleState>, now: Instant) -> Option<TagOutcome> {
        let pending = self.pending.as_ref()?;
        let product = self.products.iter().find(|p| p.id == pending.product_id)?;
        let outcome = match attempt(product, scale) {
            Attempt::Done(outcome) => outcome,
            Attempt::Unstable if now >= pending.until => TagOutcome::Failed(TagError::Unstable(
                now.saturating_duration_since(pending.since),
            )),
            Attempt::Empty(failed) if now >= pending.until => failed,
            Attempt::Unstable | Attempt::Empty(_) => return None,
        };
        self.pending = None;
        Some(outcome)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.until)
    }

    /// The product a tag is waiting for.
    pub fn waiting_for(&self) -> Option<&str> {
        self.pending.as_ref().map(|p| p.product_id.as_str())
    }
}

enum Attempt {
    Done(TagOutcome),
    Unstable,
    /// The pan is empty (or reads under zero): what to say if it stays so.
    Empty(TagOutcome),
}

fn attempt(product: &ProductConfig, scale: Option<&ScaleState>) -> Attempt {
    let failed = |e: TagError| Attempt::Done(TagOutcome::Failed(e));
    let unit = product.unit;
    let weight = match unit {
        Unit::Piece => None,
        Unit::Kg => {
            let Some(s) = scale else {
                return failed(TagError::NoScale(product.id.clone()));
            };
            if let Some(e) = &s.error {
                return failed(TagError::Scale(e.clone()));
            }
            match s.weight.filter(|_| s.stable) {
                Some(w) if w.grams() <= 0 => {
                    return match price::price(product, Some(w)) {
                        Err(e) => Attempt::Empty(TagOutcome::Failed(e.into())),
                        Ok(_) => Attempt::Unstable,
                    }
                }
                Some(w) => Some(w),
                None => return Attempt::Unstable,
            }
        }
    };
    let record = price::unit_price(product).and_then(|up| {
        let p = price::price(product, weight)?;
        Ok(TagRecord {
            product_id: product.id.clone(),
            name: product.name.clone(),
            weight_kg: weight.map(|w| w.to_string()),
            unit_price: up.to_string(),
            price: p.to_string(),
            currency: product.currency.clone(),
            unit,
        })
    });
    match record {
        Ok(r) => Attempt::Done(TagOutcome::Tagged(r)),
        Err(e) => failed(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::products::price::Weight;

    fn products() -> Vec<ProductConfig> {
        let p = |id: &str, unit: &str, price: &str| ProductConfig {
            id: id.into(),
            name: format!("{id} name"),
            unit: unit.parse().unwrap(),
            unit_price: price.into(),
            currency: "CNY".into(),
            button_pin: None,
        };
        vec![p("mussels", "kg", "30.00"), p("eggs", "piece", "18.5")]
    }

    fn scale(grams: i64, stable: bool) -> ScaleState {
        ScaleState {
            weight_kg: Some(grams as f64 / 1000.0),
            stable,
            error: None,
            weight: Some(Weight::from_grams(grams)),
            ..ScaleState::default()
        }
    }

    const WAIT: Duration = Duration::from_millis(1500);

    fn tagged(o: TagOutcome) -> TagRecord {
        match o {
            TagOutcome::Tagged(r) => r,
            other => panic!("not tagged: {other:?}"),
        }
    }

    #[test]
    fn stable_scale_tags_at_once_with_exact_price() {
        let mut t = Tagger::new(&products(), WAIT);
        let r = tagged(t.tag("mussels", Some(&scale(1250, true)), Instant::now()));
        assert_eq!(
            r,
            TagRecord {
                product_id: "mussels".into(),
                name: "mussels name".into(),
                weight_kg: Some("1.250".into()),
                unit_price: "30.00".into(),
                price: "37.50".into(),
                currency: "CNY".into(),
                unit: Unit::Kg,
            }
        );
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn pieces_need_no_scale() {
        let mut t = Tagger::new(&products(), WAIT);
        let r = tagged(t.tag("eggs", None, Instant::now()));
        assert_eq!(
            (r.price.as_str(), r.weight_kg, r.unit),
            ("18.50", None, Unit::Piece)
        );
    }

    /// The `product_tagged` event carries the unit as the config's word.
    #[test]
    fn the_record_shows_the_unit_as_its_word() {
        let mut t = Tagger::new(&products(), WAIT);
        let r = tagged(t.tag("eggs", None, Instant::now()));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["unit"], "piece", "{v}");
    }

    #[test]
    fn unstable_waits_then_tags_with_the_settled_weight() {
        let t0 = Instant::now();
        let mut t = Tagger::new(&products(), WAIT);
        assert_eq!(
            t.tag("mussels", Some(&scale(1180, false)), t0),
            TagOutcome::Wait(t0 + WAIT)
        );
        assert_eq!(t.waiting_for(), Some("mussels"));
        assert_eq!(
            t.poll(Some(&scale(1240, false)), t0 + Duration::from_millis(500)),
            None
        );
        let r = tagged(
            t.poll(Some(&scale(1250, true)), t0 + Duration::from_millis(900))
                .unwrap(),
        );
        assert_eq!(
            (r.weight_kg.as_deref(), r.price.as_str()),
            (Some("1.250"), "37.50")
        );
        assert_eq!(
            t.poll(Some(&scale(1250, true)), t0 + WAIT),
            None,
            "resolved once"
        );
    }

    #[test]
    fn unstable_past_the_deadline_fails_and_says_why() {
        let t0 = Instant::now();
        let mut t = Tagger::new(&products(), WAIT);
        let _ = t.tag("mussels", Some(&scale(1180, false)), t0);
        let out = t.poll(Some(&scale(1190, false)), t0 + WAIT);
        assert!(
            matches!(out, Some(TagOutcome::Failed(TagError::Unstable(_)))),
            "{out:?}"
        );
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn faults_and_unknowns_fail_with_reasons() {
        let now = Instant::now();
        let mut t = Tagger::new(&products(), WAIT);
        let err = |o: TagOutcome| match o {
            TagOutcome::Failed(e) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(err(t.tag("kale", None, now)).contains("known products: mussels, eggs"));
        assert!(err(t.tag("mussels", None, now)).contains("no scale"));
        let broken = ScaleState {
            error: Some("the scale is overloaded".into()),
            ..ScaleState::default()
        };
        assert!(err(t.tag("mussels", Some(&broken), now)).contains("overloaded"));
        // An empty pan waits for the produce, then says what is wrong.
        assert!(matches!(
            t.tag("mussels", Some(&scale(0, true)), now),
            TagOutcome::Wait(_)
        ));
        assert_eq!(t.poll(Some(&scale(0, true)), now + WAIT / 2), None);
        assert!(err(t.poll(Some(&scale(0, true)), now + WAIT).unwrap()).contains("not above zero"));
        // The produce lands just after the press: tagged with its weight.
        let _ = t.tag("mussels", Some(&scale(0, true)), now);
        match t.poll(Some(&scale(1250, true)), now + WAIT / 4) {
            Some(TagOutcome::Tagged(r)) => assert_eq!(r.price, "37.50"),
            other => panic!("{other:?}"),
        }
        // A fault while waiting ends the wait at once.
        let _ = t.tag("mussels", Some(&scale(900, false)), now);
        assert!(matches!(
            t.poll(Some(&broken), now),
            Some(TagOutcome::Failed(TagError::Scale(_)))
        ));
    }

    #[test]
    fn a_new_tag_replaces_a_waiting_one() {
        let t0 = Instant::now();
        let mut t = Tagger::new(&products(), WAIT);
        let _ = t.tag("mussels", Some(&scale(900, false)), t0);
        let r = tagged(t.tag("eggs", Some(&scale(900, false)), t0));
        assert_eq!(r.product_id, "eggs");
        assert_eq!(t.waiting_for(), None);
    }
}
