//! The configuration file: shape ([`schema`]), the choice words parsed into
//! enums ([`choices`]), secrets ([`secret`]), loading
//! with key paths and lines ([`load`]), checks ([`validate`], the scale's in
//! [`validate_scale`], the number bounds in [`ranges`]), the lower-third
//! template language ([`template`]), stream keys ([`keys`]) and fleet layers
//! ([`layers`]).
//!
//! The bottom layer: config depends on no sibling but `excerpt`; the modules
//! that run things (`scale`, `products`, ...) depend on it, never back.
//!
//! The CLI and the daemon both call [`check_file`]: load, read the key files,
//! validate; each [`Problem`] names its key path and, where written, its line.

pub mod choices;
pub mod keys;
pub mod layers;
pub mod load;
pub mod problem;
pub mod ranges;
pub mod scale_serial;
pub mod schema;
pub mod secret;
pub mod spans;
pub mod template;
pub mod url;
pub mod validate;
pub mod validate_scale;
pub mod walk;

pub use choices::{
    AudioSource, ChoiceError, GpioBackend, MqttProtocol, ScaleKind, Unit, VideoEncoder,
    VideoSource, X264Preset,
};
pub use keys::resolve_keys;
pub use layers::{check_layers, load_layers, merge};
pub use load::{check_file, check_file_report, check_sources, check_str, load_str, Depth, Report};
pub use problem::Problem;
pub use schema::*;
pub use secret::Secret;
pub use spans::line_of;
pub use validate::validate;
