//! The signed envelope a fleet push arrives in (`shared/INTERFACES.md`):
//! `{"version": 7, "target": "farm-01", "config": "<TOML>", "signature": "<base64>"}`
//! plus an optional `"apply": "now"` asking for a pipeline rebuild mid-show.
//!
//! The signature is Ed25519 over `farmcast-config-v1\n<target>\n<version>\n<config>`.
//! `apply` is not covered by it (the signing bytes are fixed by the contract):
//! someone who can publish can only make an already-signed config apply sooner.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::FleetError;

/// Largest envelope accepted; a layer is a few kilobytes of TOML.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Domain separation: a signature over anything else never verifies as a config.
const CONTEXT: &str = "farmcast-config-v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub version: u64,
    /// A `device_id` or `group:<name>`.
    pub target: String,
    /// A TOML layer: any subset of the file's keys.
    pub config: String,
    /// Base64 of the 64-byte Ed25519 signature; absent or empty when unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<Apply>,
}

/// When a change that needs the pipeline rebuilt may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Apply {
    /// Rebuild now, even if that cuts a running show.
    Now,
    /// Wait for the show to end (what an envelope without `apply` gets).
    AfterShow,
}

impl Envelope {
    /// True when the push asked to cut a running show if it must.
    pub fn apply_now(&self) -> bool {
        self.apply == Some(Apply::Now)
    }

    pub fn is_signed(&self) -> bool {
        self.signature.as_deref().is_some_and(|s| !s.is_empty())
    }
}

/// Parses a payload off the wire: capped in size, strict in shape.
pub fn parse(bytes: &[u8]) -> Result<Envelope, FleetError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(FleetError::TooLarge {
            len: bytes.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| FleetError::Malformed(e.to_string()))
}

/// The bytes the signature covers.
pub fn signing_bytes(target: &str, version: u64, config: &str) -> Vec<u8> {
    format!("{CONTEXT}\n{target}\n{version}\n{config}").into_bytes()
}

/// An envelope for `target` carrying `config`, signed with `key`.
pub fn sign(key: &SigningKey, target: &str, version: u64, config: &str) -> Envelope {
    let signature = key.sign(&signing_bytes(target, version, config));
    Envelope {
        version,
        target: target.to_string(),
        config: config.to_string(),
        signature: Some(base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())),
        apply: None,
    }
}

/// Ok when `env` carries a signature that one of `trusted` made over its
/// target, version and config. Strict verification: no malleable signatures,
/// no weak keys.
pub fn verify(env: &Envelope, trusted: &[VerifyingKey]) -> Result<(), FleetError> {
    if trusted.is_empty() {
        return Err(FleetError::NoTrustedKeys);
    }
    let encoded = match env.signature.as_deref() {
        Some(s) if !s.is_empty() => s,
        _ => return Err(FleetError::Unsigned),
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| FleetError::SignatureEncoding)?;
    let raw: [u8; 64] = raw.try_into().map_err(|_| FleetError::SignatureEncoding)?;
    let signature = Signature::from_bytes(&raw);
    let message = signing_bytes(&env.target, env.version, &env.config);
    if trusted
        .iter()
        .any(|k| k.verify_strict(&message, &signature).is_ok())
    {
        Ok(())
    } else {
        Err(FleetError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn signing_bytes_follow_the_contract() {
        assert_eq!(
            signing_bytes("group:north", 7, "[video]\nwidth = 640\n"),
            b"farmcast-config-v1\ngroup:north\n7\n[video]\nwidth = 640\n".to_vec()
        );
    }

    #[test]
    fn signed_envelope_round_trips_and_verifies() {
        let k = key(1);
        let env = sign(&k, "farm-01", 7, "[video]\nbitrate_kbps = 1800\n");
        let json = serde_json::to_vec(&env).unwrap();
        let back = parse(&json).unwrap();
        assert_eq!(back, env);
        assert!(verify(&back, &[key(2).verifying_key(), k.verifying_key()]).is_ok());
        assert_eq!(
            verify(&back, &[key(2).verifying_key()]),
            Err(FleetError::BadSignature)
        );
        assert_eq!(verify(&back, &[]), Err(FleetError::NoTrustedKeys));
    }

    #[test]
    fn unsigned_and_garbled_signatures_are_told_apart() {
        let k = key(3);
        let mut env = sign(&k, "farm-01", 1, "");
        let trusted = [k.verifying_key()];
        env.signature = None;
        assert_eq!(verify(&env, &trusted), Err(FleetError::Unsigned));
        env.signature = Some(String::new());
        assert_eq!(verify(&env, &trusted), Err(FleetError::Unsigned));
        env.signature = Some("not base64!".into());
        assert_eq!(verify(&env, &trusted), Err(FleetError::SignatureEncoding));
        env.signature = Some("AAAA".into());
        assert_eq!(verify(&env, &trusted), Err(FleetError::SignatureEncoding));
    }

    #[test]
    fn parse_is_strict_and_capped() {
        let ok = br#"{"version": 7, "target": "farm-01", "config": "", "signature": "x", "apply": "now"}"#;
        let env = parse(ok).unwrap();
        assert!(env.apply_now());
        for bad in [
            &br#"{"version": 7, "target": "farm-01", "config": "", "extra": 1}"#[..],
            br#"{"version": -1, "target": "farm-01", "config": ""}"#,
            br#"{"version": 7.5, "target": "farm-01", "config": ""}"#,
            br#"{"target": "farm-01", "config": ""}"#,
            br#"{"version": 7, "target": "farm-01", "config": "", "apply": "later"}"#,
            b"[]",
            b"",
        ] {
            assert!(
                matches!(parse(bad), Err(FleetError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = sign(&key(4), "farm-01", 1, &"#".repeat(MAX_ENVELOPE_BYTES));
        let json = serde_json::to_vec(&big).unwrap();
        assert!(matches!(parse(&json), Err(FleetError::TooLarge { .. })));
    }
}
