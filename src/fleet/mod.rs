//! Fleet configuration: layers pushed by the fleet manager as signed envelopes,
//! checked, merged over the local file, persisted so a power cut never leaves
//! the box without a valid config, and answered on `config/reported`.
//!
//! The pieces, each with one concern:
//! - [`envelope`]: the wire format, its size cap, the signing bytes, Ed25519.
//! - [`keys`]: PEM keys as `openssl genpkey` / `openssl pkey -pubout` write them.
//! - [`accept`]: pure decisions: is this envelope for us, newer, trusted; what
//!   the merged config is; whether a change can be applied during a show.
//! - [`store`]: the state directory, atomic writes, last known good, rollback;
//!   [`sim_disk`] models power cuts for its tests.
//! - [`reported`]: the `config/reported` payload.
//! - [`session`]: the above in the order the daemon needs them.
//! - [`cli`]: `farmcast config sign`.
//! - [`tools`]: `farmcast fleet status|push|history`, and a fleet simulator.
//!
//! Contract for the daemon: feed every `config/desired` payload to
//! [`session::Session::handle`], publish the [`reported::Reported`] it returns,
//! and act on its [`session::Action`]; nothing on disk or in the running
//! config changes unless the envelope passed every check.

pub mod accept;
pub mod cli;
pub mod envelope;
pub mod keys;
pub mod reported;
pub mod session;
pub mod sim_disk;
pub mod store;
pub mod tools;

pub use accept::{Acceptor, ChangeClass, Rejection, Source, Trust};
pub use envelope::{Apply, Envelope};
pub use reported::{Reported, Status};
pub use session::{Action, Session};
pub use store::{Layers, Store};

/// `farmcast run` found no config it may run: the file is missing, unreadable,
/// empty or broken, and no last known good exists. The message is the one line
/// to log; the daemon exits with [`NoUsableConfig::EXIT_STATUS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoUsableConfig(pub String);

impl NoUsableConfig {
    /// `EX_CONFIG` from sysexits.h; the unit's `RestartPreventExitStatus=`
    /// names it, so a box with no config stops instead of restarting forever.
    pub const EXIT_STATUS: u8 = 78;
}

/// Why an envelope or a key could not be used; the daemon reports these as
/// `rejected`, so each says what to fix without quoting the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("envelope is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("envelope is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    #[error("envelope is not signed")]
    Unsigned,
    #[error("signature is not 64 bytes of base64")]
    SignatureEncoding,
    #[error("signature does not verify with any trusted key")]
    BadSignature,
    #[error("no usable trusted key is configured")]
    NoTrustedKeys,
    #[error("key: {0}")]
    Key(String),
}
