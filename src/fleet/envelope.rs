//! The signed envelope a fleet push arrives in (`shared/INTERFACES.md`):
//! `{"version": 7, "target": "farm-01", "config": "<TOML>", "signature": "<base64>"}`.
//!
//! Two envelope formats, told apart by the optional `"v"` field:
//! - v1 (no `"v"`, or `"v": 1`): Ed25519 over
//!   `farmcast-config-v1\n<target>\n<version>\n<config>`. It carries no `apply`:
//!   a v1 envelope with `apply` is refused, since anyone who can publish could
//!   otherwise add `"apply": "now"` to a signed push and cut a live show.
//! - v2 (`"v": 2`): `apply` (`now` or `after_show`) is required and signed:
//!   `farmcast-config-v2\n<target>\n<version>\n<apply>\n<config>`.

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::FleetError;

/// Largest envelope accepted; a layer is a few kilobytes of TOML.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Domain separation: a signature over anything else never verifies as a
/// config, and a v1 signature never verifies as a v2 one.
const CONTEXT_V1: &str = "farmcast-config-v1";
const CONTEXT_V2: &str = "farmcast-config-v2";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Envelope format: absent or 1 (apply not signed), 2 (apply signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
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

impl Apply {
    /// The word on the wire and in the v2 signing bytes.
    pub fn as_str(self) -> &'static str {
        match self {
            Apply::Now => "now",
            Apply::AfterShow => "after_show",
        }
    }
}

impl Envelope {
    /// True when the push asked to cut a running show if it must.
    pub fn apply_now(&self) -> bool {
        self.apply == Some(Apply::Now)
    }

    pub fn is_signed(&self) -> bool {
        self.signature.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// Ok when the format and `apply` agree: v1 without `apply`, v2 with it.
    /// Checked before the signature, whatever the trust: an `apply` no
    /// signature covers is never acted on.
    pub fn check_format(&self) -> Result<(), (&'static str, &'static str)> {
        match (self.v.unwrap_or(1), self.apply) {
            (1, None) | (2, Some(_)) => Ok(()),
            (1, Some(_)) => Err((
                "apply",
                "apply is not covered by a v1 signature: sign a v2 envelope (\"v\": 2, `config sign --apply`)",
            )),
            (2, None) => Err(("apply", "a v2 envelope must say apply: now or after_show")),
            _ => Err(("v", "unknown envelope format: expected v 1 or 2")),
        }
    }

    /// The bytes this envelope's signature must cover.
    pub fn signed_bytes(&self) -> Vec<u8> {
        match (self.v, self.apply) {
            (Some(2), Some(apply)) => {
                signing_bytes_v2(&self.target, self.version, apply, &self.config)
            }
            _ => signing_bytes(&self.target, self.version, &self.config),
        }
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
    // serde quotes the offending value: echo a bounded excerpt of it.
    serde_json::from_slice(bytes)
        .map_err(|e| FleetError::Malformed(crate::excerpt::excerpt_n(&e.to_string(), 160)))
}

/// The bytes a v1 signature covers.
pub fn signing_bytes(target: &str, version: u64, config: &str) -> Vec<u8> {
    format!("{CONTEXT_V1}\n{target}\n{version}\n{config}").into_bytes()
}

/// The bytes a v2 signature covers: `apply` on its own line before the config.
pub fn signing_bytes_v2(target: &str, version: u64, apply: Apply, config: &str) -> Vec<u8> {
    let apply = apply.as_str();
    format!("{CONTEXT_V2}\n{target}\n{version}\n{apply}\n{config}").into_bytes()
}

/// An envelope for `target` carrying `config`, signed with `key`.
pub fn sign(key: &SigningKey, target: &str, version: u64, config: &str) -> Envelope {
    let signature = key.sign(&signing_bytes(target, version, config));
    Envelope {
        v: None,
        version,
        target: target.to_string(),
        config: config.to_string(),
        signature: Some(base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())),
        apply: None,
    }
}

/// A v2 envelope: like [`sign`], with `apply` signed too.
pub fn sign_v2(
    key: &SigningKey,
    target: &str,
    version: u64,
    apply: Apply,
    config: &str,
) -> Envelope {
    let signature = key.sign(&signing_bytes_v2(target, version, apply, config));
    Envelope {
        v: Some(2),
        version,
        target: target.to_string(),
        config: config.to_string(),
        signature: Some(base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())),
        apply: Some(apply),
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
    let message = env.signed_bytes();
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
    fn v2_signing_bytes_cover_apply() {
        assert_eq!(
            signing_bytes_v2("farm-01", 8, Apply::Now, "[video]\nwidth = 640\n"),
            b"farmcast-config-v2\nfarm-01\n8\nnow\n[video]\nwidth = 640\n".to_vec()
        );
        let k = key(5);
        let env = sign_v2(&k, "farm-01", 8, Apply::AfterShow, "");
        let json = serde_json::to_string(&env).unwrap();
        assert!(
            json.contains("\"v\":2") && json.contains("\"apply\":\"after_show\""),
            "{json}"
        );
        let trusted = [k.verifying_key()];
        assert!(verify(&env, &trusted).is_ok());
        assert_eq!(env.check_format(), Ok(()));
        // Someone on the broker turns a signed after_show into now: refused.
        let mut now = env.clone();
        now.apply = Some(Apply::Now);
        assert_eq!(verify(&now, &trusted), Err(FleetError::BadSignature));
        // Or strips the format to v1 (the v2 signature never verifies as v1).
        let mut v1 = env.clone();
        v1.v = None;
        v1.apply = None;
        assert_eq!(verify(&v1, &trusted), Err(FleetError::BadSignature));
        // A v1 envelope with `apply` added is refused before its signature.
        let mut added = sign(&k, "farm-01", 8, "");
        added.apply = Some(Apply::Now);
        assert_eq!(added.check_format().unwrap_err().0, "apply");
        let mut bare_v2 = env.clone();
        bare_v2.apply = None;
        assert_eq!(bare_v2.check_format().unwrap_err().0, "apply");
        let mut v3 = env;
        v3.v = Some(3);
        assert_eq!(v3.check_format().unwrap_err().0, "v");
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
