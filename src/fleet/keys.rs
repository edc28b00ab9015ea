//! Ed25519 keys in PEM, as OpenSSL writes them: a PKCS#8 private key
//! (`openssl genpkey -algorithm ed25519`) and SPKI public keys
//! (`openssl pkey -pubout`), several of which may share one trusted-keys file.
//!
//! Errors never quote the file's content: a private key pasted into the wrong
//! file must not end up in a log.

use std::path::Path;

use anyhow::Context as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::FleetError;

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";

/// The signing key in a PKCS#8 PEM text.
pub fn parse_private_key(pem: &str) -> Result<SigningKey, FleetError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| {
        FleetError::Key("not an Ed25519 private key in PEM (PKCS#8, as `openssl genpkey -algorithm ed25519` writes it)".into())
    })
}

/// Every public key in `pem`, in order. Text outside the PEM blocks (comments
/// naming whose key it is) is ignored; any block that is not an Ed25519
/// `PUBLIC KEY` is an error, as is a text with no key at all, so that a
/// configured but broken file can never mean "trust nothing is required".
pub fn parse_public_keys(pem: &str) -> Result<Vec<VerifyingKey>, FleetError> {
    let mut keys = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let end = block
            .find(END)
            .ok_or_else(|| FleetError::Key(format!("key {} has no END line", keys.len() + 1)))?;
        let after_end = &block[end..];
        let close = after_end.find('\n').map(|n| end + n).unwrap_or(block.len());
        let text = &block[..close];
        if !text.starts_with("-----BEGIN PUBLIC KEY-----") {
            return Err(FleetError::Key(format!(
                "block {} is not a PUBLIC KEY (only public keys belong in the trusted keys file)",
                keys.len() + 1
            )));
        }
        let key = VerifyingKey::from_public_key_pem(text.trim()).map_err(|_| {
            FleetError::Key(format!(
                "key {} is not an Ed25519 public key",
                keys.len() + 1
            ))
        })?;
        keys.push(key);
        rest = &block[close..];
    }
    if keys.is_empty() {
        return Err(FleetError::Key("no PUBLIC KEY block found".into()));
    }
    Ok(keys)
}

/// [`parse_private_key`] of a file.
pub fn read_private_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    parse_private_key(&text).with_context(|| format!("{}", path.display()))
}

/// [`parse_public_keys`] of a file.
pub fn read_public_keys(path: &Path) -> anyhow::Result<Vec<VerifyingKey>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the trusted keys file {}", path.display()))?;
    parse_public_keys(&text).with_context(|| format!("{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn public_pem(seed: u8) -> String {
        key(seed)
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn several_public_keys_with_comments_between() {
        let text = format!("# alice\n{}\n# bob\n{}", public_pem(1), public_pem(2));
        let keys = parse_public_keys(&text).unwrap();
        assert_eq!(keys, vec![key(1).verifying_key(), key(2).verifying_key()]);
    }

    #[test]
    fn a_private_key_in_the_trusted_file_is_refused_without_echo() {
        let private = key(1).to_pkcs8_pem(LineEnding::LF).unwrap();
        let text = format!("{}{}", public_pem(2), private.as_str());
        let e = parse_public_keys(&text).unwrap_err();
        assert!(e.to_string().contains("block 2"), "{e}");
        let body: Vec<&str> = private
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(body.iter().all(|l| !e.to_string().contains(l)));
    }

    #[test]
    fn empty_or_truncated_files_are_errors() {
        assert!(parse_public_keys("").is_err());
        assert!(parse_public_keys("# nobody yet\n").is_err());
        let pem = public_pem(1);
        assert!(parse_public_keys(&pem[..pem.len() - 20]).is_err());
    }

    #[test]
    fn private_key_round_trip() {
        let pem = key(9).to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(
            parse_private_key(&pem).unwrap().to_bytes(),
            key(9).to_bytes()
        );
        assert!(parse_private_key(&public_pem(9)).is_err());
    }
}
