//! The configuration file: shape ([`schema`]), secrets ([`secret`]).
//! Loading and validation are added by the config module's owner.

pub mod schema;
pub mod secret;

pub use schema::*;
pub use secret::Secret;
