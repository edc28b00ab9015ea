//! Wall-clock instants as UTC text, through the `time` crate (a leaf).
//!
//! The show folder stamp and the events' RFC 3339 times share the clamping:
//! a clock before 1970 reads as the epoch, one past the year 9999 (what
//! `time` represents without `large-dates`) as its last second, so the text
//! keeps its length and sorts in time order whatever the clock says.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::FormatItem;
use time::macros::datetime;
use time::OffsetDateTime;

/// The last second `time` represents without its `large-dates` feature.
const LAST: OffsetDateTime = datetime!(9999-12-31 23:59:59 UTC);

/// `t` in UTC, to the second, written as `format` says.
pub fn format(t: SystemTime, format: &[FormatItem<'_>]) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(LAST);
    // Fails only for a description asking what a UTC date-time lacks (none
    // of ours); an empty text beats a panic in the driver.
    at.format(format).unwrap_or_default()
}
