//! A fleet manager's tools for the tests: an Ed25519 key pair made by the
//! real `openssl`, and envelopes made by the real `farmcast config sign`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private key (`NAME.pem`) and its public key (`NAME.pub.pem`), made by
/// `openssl` in `dir` as the README tells a fleet manager to.
pub fn openssl_keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("openssl (Debian package `openssl`)");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&private));
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-out"])
        .arg(&public)
        .arg("-in")
        .arg(&private));
    (private, public)
}

/// The envelope `farmcast config sign` prints for `layer` (with
/// `--apply APPLY` when given: a v2 envelope).
pub fn cli_sign(
    key: &Path,
    target: &str,
    version: u64,
    apply: Option<&str>,
    layer: &str,
) -> String {
    let dir = tempfile::tempdir().expect("tempdir for a layer");
    let file = dir.path().join("layer.toml");
    std::fs::write(&file, layer).expect("write layer");
    let mut cmd = Command::new(super::farmcast::BIN);
    cmd.args(["config", "sign", "--key"]).arg(key).args([
        "--target",
        target,
        "--version",
        &version.to_string(),
    ]);
    if let Some(apply) = apply {
        cmd.args(["--apply", apply]);
    }
    let out = cmd.arg(&file).output().expect("run farmcast config sign");
    assert!(
        out.status.success(),
        "config sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("envelope is UTF-8")
        .trim()
        .to_string()
}
