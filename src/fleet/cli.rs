//! `farmcast config sign --key KEYFILE --target T --version N [--apply now|after_show] FILE`:
//! the fleet manager's side. Without `--apply` it writes a v1 envelope; with
//! it, a v2 envelope whose signature covers `apply`. The layer is checked
//! before it is signed, so a broken layer can never carry a valid signature.

use std::path::Path;

use anyhow::{bail, Context as _};

use super::accept::check_layer;
use super::envelope::{sign, sign_v2, Apply};
use super::keys::read_private_key;
use crate::config;

/// `--apply`'s words: `now`, or `after_show` (`next` is accepted for it).
pub fn parse_apply(word: &str) -> Result<Apply, String> {
    match word {
        "now" => Ok(Apply::Now),
        "after_show" | "next" => Ok(Apply::AfterShow),
        _ => Err("expected now or after_show".into()),
    }
}

/// The envelope JSON (one line) for `file`'s layer, addressed to `target`
/// (a device id or `group:<name>`), signed with the PEM key in `key_file`;
/// v2 with `apply` signed when `apply` is given.
pub fn sign_command(
    key_file: &Path,
    target: &str,
    version: u64,
    apply: Option<Apply>,
    file: &Path,
) -> anyhow::Result<String> {
    if target.is_empty() || target == "group:" {
        bail!("--target must be a device id or group:<name>");
    }
    let layer = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the layer {}", file.display()))?;
    if let Err(r) = check_layer(&layer) {
        bail!("{}: {r}", file.display());
    }
    // Against an empty base: the layer alone must be well-formed keys and values
    // of the right types. Cross-key checks need the device's file, which the
    // device does on arrival.
    // Then the values themselves (ranges, schemes, ...), over the defaults: a
    // problem counts when the key it is about is written in the layer.
    let problems = match config::load_layers("", &[layer.as_str()]) {
        Err(problems) => problems,
        Ok(merged) => config::validate(&merged)
            .into_iter()
            .filter_map(|p| config::line_of(&layer, &p.path).map(|line| p.at_line(Some(line))))
            .collect(),
    };
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| p.in_file(&file.display().to_string()).to_string())
            .collect();
        bail!("the layer is not valid:\n{}", lines.join("\n"));
    }
    let key = read_private_key(key_file)?;
    let envelope = match apply {
        None => sign(&key, target, version, &layer),
        Some(apply) => sign_v2(&key, target, version, apply, &layer),
    };
    serde_json::to_string(&envelope).context("cannot write the envelope as JSON")
}
