//! The lower third: its text from a template, and how long it stays (pure).
//!
//! Templates are plain text with placeholders `{name}`, `{weight}`,
//! `{unit_price}`, `{price}`, `{currency}`, `{unit}`, `{product_id}`; `{{` and
//! `}}` are literal braces. The syntax is the config's
//! (`crate::config::template`): [`validate_template`] is for config loading,
//! so an unknown placeholder is an error there and not a surprise on air.
//!
//! textoverlay parses its `text` property as Pango markup, so the rendered
//! text is escaped: a product called "Salt & Pepper <big>" shows as written
//! and cannot break the overlay.
//!
//! [`LowerThird`]: a tag shows the text; for a product sold by the kg it stays
//! while the produce is on the scale and for `hold` after it is taken off
//! (put back in time, it stays); a piece product's text stays for `hold`.

use std::time::{Duration, Instant};

use super::tag::TagRecord;
use crate::config::schema::ScaleConfig;
use crate::config::template::{parse, Piece};
pub use crate::config::template::{validate_template, TemplateError};
use crate::config::Unit;
use crate::scale::ScaleState;

pub const DEFAULT_KG_TEMPLATE: &str =
    "{name}  {weight} kg  ×  {unit_price} {currency}/kg  =  {price} {currency}";
pub const DEFAULT_PIECE_TEMPLATE: &str = "{name}  {price} {currency}";

/// The template for this record's unit: the configured one or the default.
pub fn template_for<'a>(cfg: &'a ScaleConfig, record: &TagRecord) -> &'a str {
    if record.unit == Unit::Kg {
        cfg.overlay_template
            .as_deref()
            .unwrap_or(DEFAULT_KG_TEMPLATE)
    } else {
        cfg.overlay_template_piece
            .as_deref()
            .unwrap_or(DEFAULT_PIECE_TEMPLATE)
    }
}

/// The lower third's text, escaped for Pango markup. An invalid template
/// (config validation should have caught it) falls back to the default.
pub fn lower_third_text(record: &TagRecord, template: &str) -> String {
    let pieces = parse(template).or_else(|_| {
        parse(if record.unit == Unit::Kg {
            DEFAULT_KG_TEMPLATE
        } else {
            DEFAULT_PIECE_TEMPLATE
        })
    });
    let mut out = String::new();
    for piece in pieces.unwrap_or_default() {
        let s = match piece {
            Piece::Text(t) => t,
            Piece::Field("name") => &record.name,
            Piece::Field("weight") => record.weight_kg.as_deref().unwrap_or(""),
            Piece::Field("unit_price") => &record.unit_price,
            Piece::Field("price") => &record.price,
            Piece::Field("currency") => &record.currency,
            Piece::Field("unit") => record.unit.word(),
            Piece::Field("product_id") => &record.product_id,
            Piece::Field(_) => "",
        };
        out.push_str(&pango_escape(s));
    }
    out
}

/// Escapes the characters Pango markup gives meaning to.
pub fn pango_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Shown {
    text: String,
    by_weight: bool,
    hide_at: Option<Instant>,
}

/// When the lower third is on screen.
#[derive(Debug, Clone)]
pub struct LowerThird {
    hold: Duration,
    removed_below_g: i64,
    shown: Option<Shown>,
}

impl LowerThird {
    /// `removed_below_g`: a reading under this counts as "taken off" (use the
    /// scale's tolerance).
    pub fn new(hold: Duration, removed_below_g: i64) -> LowerThird {
        LowerThird {
            hold,
            removed_below_g: removed_below_g.max(1),
            shown: None,
        }
    }

    pub fn show(&mut self, record: &TagRecord, text: String, now: Instant) {
        let by_weight = record.weight_kg.is_some();
        self.shown = Some(Shown {
            text,
            by_weight,
            // checked: a hold past the clock's end means the text stays up.
            hide_at: (!by_weight).then(|| now.checked_add(self.hold)).flatten(),
        });
    }

    /// Call with every scale state change.
    pub fn on_scale(&mut self, state: &ScaleState, now: Instant) {
        let removed = state
            .weight
            .is_none_or(|w| w.grams() < self.removed_below_g);
        let hold = self.hold;
        if let Some(s) = self.shown.as_mut().filter(|s| s.by_weight) {
            s.hide_at = match (removed, s.hide_at) {
                (true, None) => now.checked_add(hold),
                (true, t) => t,
                (false, _) => None,
            };
        }
    }

    /// Hides the text when its time is up; `true` when it just went away.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.poll_timeout().is_some_and(|t| now >= t) {
            self.shown = None;
            return true;
        }
        false
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shown.as_ref().and_then(|s| s.hide_at)
    }

    pub fn text(&self) -> Option<&str> {
        self.shown.as_ref().map(|s| s.text.as_str())
    }

    pub fn hide(&mut self) {
        self.shown = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::products::price::Weight;
    use proptest::prelude::*;

    fn record(unit: &str) -> TagRecord {
        TagRecord {
            product_id: "mussels".into(),
            name: "Salt & <b>mussels</b>".into(),
            weight_kg: (unit == "kg").then(|| "1.250".into()),
            unit_price: "30.00".into(),
            price: "37.50".into(),
            currency: "CNY".into(),
            unit: unit.parse().unwrap(),
        }
    }

    #[test]
    fn default_templates_render_and_escape() {
        assert_eq!(
            lower_third_text(&record("kg"), DEFAULT_KG_TEMPLATE),
            "Salt &amp; &lt;b&gt;mussels&lt;/b&gt;  1.250 kg  ×  30.00 CNY/kg  =  37.50 CNY"
        );
        assert_eq!(
            lower_third_text(&record("piece"), DEFAULT_PIECE_TEMPLATE),
            "Salt &amp; &lt;b&gt;mussels&lt;/b&gt;  37.50 CNY"
        );
        assert_eq!(
            lower_third_text(&record("kg"), "{{{product_id}}} {price}<"),
            "{mussels} 37.50&lt;"
        );
    }

    #[test]
    fn bad_templates_are_rejected_with_the_culprit() {
        assert_eq!(
            validate_template("{name} {wieght}"),
            Err(TemplateError::Unknown("wieght".into()))
        );
        assert!(validate_template("{wieght}")
            .unwrap_err()
            .to_string()
            .contains("{weight}"));
        assert_eq!(validate_template("{name"), Err(TemplateError::Unclosed));
        assert_eq!(validate_template("a } b"), Err(TemplateError::Stray));
        assert_eq!(validate_template(DEFAULT_KG_TEMPLATE), Ok(()));
        assert_eq!(validate_template(""), Ok(()));
        // Rendering a bad one falls back to the default rather than failing.
        assert!(lower_third_text(&record("kg"), "{oops}").contains("37.50 CNY"));
    }

    fn state(grams: Option<i64>) -> ScaleState {
        ScaleState {
            weight: grams.map(Weight::from_grams),
            weight_kg: grams.map(|g| g as f64 / 1000.0),
            stable: true,
            error: None,
            ..ScaleState::default()
        }
    }

    #[test]
    fn by_weight_stays_while_on_the_scale_then_hold_after_removal() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut lt = LowerThird::new(Duration::from_secs(8), 5);
        lt.show(&record("kg"), "x".into(), t0);
        lt.on_scale(&state(Some(1250)), s(60));
        assert_eq!((lt.poll_timeout(), lt.text()), (None, Some("x")));
        lt.on_scale(&state(Some(2)), s(61));
        lt.on_scale(&state(None), s(62));
        assert_eq!(lt.poll_timeout(), Some(s(69)));
        // Put back before the time is up: stays.
        lt.on_scale(&state(Some(1250)), s(65));
        assert_eq!(lt.poll_timeout(), None);
        lt.on_scale(&state(Some(0)), s(70));
        assert!(!lt.handle_timeout(s(77)));
        assert!(lt.handle_timeout(s(78)));
        assert_eq!(lt.text(), None);
    }

    #[test]
    fn pieces_stay_for_the_hold_time() {
        let t0 = Instant::now();
        let mut lt = LowerThird::new(Duration::from_secs(8), 5);
        lt.show(&record("piece"), "eggs".into(), t0);
        lt.on_scale(&state(Some(1250)), t0);
        assert_eq!(lt.poll_timeout(), Some(t0 + Duration::from_secs(8)));
    }

    /// A hold past the clock's end (once `overlay_s = 2^63-1`) never panics.
    #[test]
    fn an_endless_hold_does_not_overflow_the_clock() {
        let t0 = Instant::now();
        let mut lt = LowerThird::new(Duration::MAX, 5);
        lt.show(&record("piece"), "eggs".into(), t0);
        lt.show(&record("kg"), "x".into(), t0);
        lt.on_scale(&state(None), t0);
        assert_eq!(lt.text(), Some("x"));
    }

    proptest! {
        #[test]
        fn rendering_any_template_never_panics_and_is_markup_safe(
            t in "\\PC{0,60}", name in "\\PC{0,30}"
        ) {
            let _ = validate_template(&t);
            let mut r = record("kg");
            r.name = name;
            let out = lower_third_text(&r, &t);
            prop_assert!(!out.contains('<') && !out.contains('>'));
        }
    }
}
