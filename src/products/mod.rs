//! What is for sale and what it costs: exact prices, product tags and the
//! lower-third text viewers see.
//!
//! - [`price`] (pure): an exact decimal, weights in grams, `weight × unit price`
//!   rounded half-up to the currency's minor unit.
//! - [`tag`] (pure): [`tag::Tagger`] turns "tag product X now" plus the scale's
//!   state into a [`tag::TagRecord`], waiting a little for an unstable scale.
//! - [`overlay`] (pure): the lower third's text from a template, and how long
//!   it stays on screen.
//!
//! No I/O and no clocks here: the driver passes `now` and the scale's state.

pub mod overlay;
pub mod price;
pub mod tag;

pub use overlay::{lower_third_text, validate_template, LowerThird, TemplateError};
pub use price::{price, Decimal, Price, PriceError, Unit, Weight};
pub use tag::{TagError, TagOutcome, TagRecord, Tagger};
