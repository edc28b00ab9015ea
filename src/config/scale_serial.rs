//! The choice keys of a serial scale (`scale.serial_format`,
//! `scale.serial_parity`): enums of [`super::choices`], parsed once by serde
//! and checked by the walk like every other choice. Re-exported here for the
//! scale back end.

pub use super::choices::{SerialFormat, SerialParity};
