//! The `P/D/config/reported` payload:
//! `{"version", "status", "hash", "error"?, "field"?}`.
//!
//! `hash` is the SHA-256 (lowercase hex) of the `config` text of the envelope
//! the report answers, byte for byte. The fleet manager can check it against
//! what it pushed without knowing the box's local file; a report that answers
//! no envelope (a rollback at start) hashes the layer now in force for that
//! source, or the empty string when there is none.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Applied,
    /// Taken and stored; waits for the show to end.
    Pending,
    Rejected,
    RolledBack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    /// The envelope's version; `null` when the payload was not an envelope.
    pub version: Option<u64>,
    pub status: Status,
    pub hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Envelope field (`signature`, `version`, `target`) or config key path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why a taken push is not in force yet (`pending`): what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Reported {
    pub fn new(version: Option<u64>, status: Status, config_text: &str) -> Self {
        Reported {
            version,
            status,
            hash: hash(config_text),
            error: None,
            field: None,
            note: None,
        }
    }

    /// A `pending` report's reason: what the push waits for, and the key.
    pub fn with_note(mut self, note: impl Into<String>, field: Option<String>) -> Self {
        self.note = Some(note.into());
        self.field = field;
        self
    }

    pub fn with_error(mut self, error: impl Into<String>, field: Option<String>) -> Self {
        self.error = Some(error.into());
        self.field = field;
        self
    }

    /// The JSON object to publish (retained).
    pub fn to_json(&self) -> serde_json::Value {
        // A struct of strings and integers always serializes.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Lowercase hex SHA-256 of `text`.
pub fn hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn json_shape_follows_the_contract() {
        let ok = Reported::new(Some(7), Status::Applied, "").to_json();
        assert_eq!(
            ok,
            serde_json::json!({"version": 7, "status": "applied", "hash": hash("")})
        );
        let bad = Reported::new(Some(8), Status::Rejected, "x")
            .with_error("not newer", Some("version".into()))
            .to_json();
        assert_eq!(bad["status"], "rejected");
        assert_eq!(bad["error"], "not newer");
        assert_eq!(bad["field"], "version");
        let rb = Reported::new(None, Status::RolledBack, "").to_json();
        assert_eq!(rb["status"], "rolled_back");
        assert!(rb["version"].is_null());
        assert_eq!(
            Reported::new(None, Status::Pending, "").to_json()["status"],
            "pending"
        );
    }
}
