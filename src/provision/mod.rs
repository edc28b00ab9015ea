//! First-boot provisioning: a `farmcast.toml` (and optional `keys/*`) that the
//! person flashing the SD card copied onto the FAT boot partition becomes the
//! box's configuration.
//!
//! Contract of [`provision`] (run as root by `farmcast-provision.service`,
//! before `farmcast.service`):
//! - no `farmcast.toml` on the boot partition: nothing happens;
//! - the bundle is read and validated exactly as `farmcast check-config`
//!   would, with stream key files that point into `/etc/farmcast/keys/` taken
//!   from the bundle's `keys/` folder;
//! - valid: key files, then `farmcast.toml`, are written into the config
//!   folder atomically (temp file, fsync, rename), mode 0640 (keys folder
//!   0750), group `farmcast` when running as root; the previous config is kept
//!   as `farmcast.toml.previous`;
//! - invalid or unreadable: nothing in the config folder changes (the box
//!   starts on its current config, or stays in the daemon's failed state when
//!   it has none), and `farmcast-provision-error.txt` on the boot partition
//!   says what is wrong, so the person sees it when the card is back in a PC;
//! - either way the bundle is overwritten with zeros and removed from the boot
//!   partition, because a FAT partition has no permissions and anyone on the
//!   box could read the stream keys there. FAT and flash remapping give no
//!   guarantee that the old blocks are gone; the overwrite only makes casual
//!   recovery harder.
//!
//! Never logged or written to the error file: key file contents, inline keys.

mod bundle;
mod install;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Problem;

pub use install::Ownership;

/// Name of the config file on the boot partition and in the config folder.
pub const CONFIG_NAME: &str = "farmcast.toml";
/// Folder of key files on the boot partition and in the config folder.
pub const KEYS_DIR: &str = "keys";
/// Written on the boot partition when provisioning failed.
pub const ERROR_FILE: &str = "farmcast-provision-error.txt";
/// Written on the boot partition when provisioning succeeded.
pub const DONE_FILE: &str = "farmcast-provision-done.txt";
/// Where the packaged daemon reads its config; absolute key paths under it
/// are mapped onto the `etc` argument, so a test never touches the real one.
pub const INSTALLED_ETC: &str = "/etc/farmcast";

/// What a provisioning run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No `farmcast.toml` on the boot partition.
    NothingToDo,
    Installed(Installed),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub device_id: String,
    /// The config file written.
    pub config: PathBuf,
    /// Names of the key files written into `keys/`.
    pub keys: Vec<String>,
    /// Files of the bundle that could not be removed from the boot partition
    /// (the config is installed; the secrets may still be readable there).
    pub leftovers: Vec<String>,
}

/// Why provisioning did not install anything. The config folder is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The file was read but is not a valid configuration.
    #[error("{file} on the boot partition is not a valid configuration ({} problem(s))", problems.len())]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
    /// The bundle could not be read or breaks a rule (size, names, layout).
    #[error("the provisioning files on the boot partition cannot be used: {0}")]
    Bundle(String),
    /// Writing into the config folder failed.
    #[error("cannot install the configuration into {}: {source}", dir.display())]
    Install {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ProvisionError {
    /// The text for the error file and the console: what is wrong and what to do.
    pub fn explain(&self) -> String {
        let mut s = format!("farmcast: provisioning failed.\n\n{self}\n");
        if let ProvisionError::Invalid { file, problems } = self {
            s.push('\n');
            for p in problems {
                s.push_str(&format!("  {}\n", p.in_file(file)));
            }
        }
        s.push_str(
            "\nThe box kept its previous configuration. The files you copied were \
             removed from the card because they may hold stream keys. Fix the \
             file on your computer, check it with `farmcast check-config farmcast.toml`, \
             copy it (and keys/) onto the boot partition again and restart the box.\n",
        );
        s
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::NothingToDo => {
                write!(f, "no {CONFIG_NAME} on the boot partition; nothing to do")
            }
            Outcome::Installed(i) => {
                write!(
                    f,
                    "installed {} for device {} with {} key file(s)",
                    i.config.display(),
                    i.device_id,
                    i.keys.len()
                )?;
                if !i.leftovers.is_empty() {
                    write!(
                        f,
                        "; could NOT remove from the boot partition: {} (delete them by hand)",
                        i.leftovers.join(", ")
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// `farmcast provision --boot BOOT --etc ETC`: [`provision_with`] with the
/// ownership this process can set (root:farmcast when root).
pub fn provision(boot: &Path, etc: &Path) -> Result<Outcome, ProvisionError> {
    provision_with(boot, etc, &Ownership::detect())
}

/// The whole run; see the module doc. On failure the error file is written
/// and the bundle removed before the error is returned.
pub fn provision_with(
    boot: &Path,
    etc: &Path,
    owner: &Ownership,
) -> Result<Outcome, ProvisionError> {
    let config_on_boot = boot.join(CONFIG_NAME);
    if std::fs::symlink_metadata(&config_on_boot).is_err() {
        return Ok(Outcome::NothingToDo);
    }
    let result = bundle::read(boot)
        .and_then(|b| bundle::validate(&b, boot, etc).map(|device_id| (b, device_id)))
        .and_then(|(b, device_id)| install::install(&b, etc, owner).map(|keys| (device_id, keys)));
    let leftovers = install::remove_bundle(boot);
    match result {
        Ok((device_id, keys)) => {
            let _ = std::fs::remove_file(boot.join(ERROR_FILE));
            // Best effort: only a note for the person who flashed the card.
            let _ = std::fs::write(
                boot.join(DONE_FILE),
                format!(
                    "farmcast: configuration for device {device_id} installed with {} key file(s); \
                     the copies on this card were removed.\n",
                    keys.len()
                ),
            );
            Ok(Outcome::Installed(Installed {
                device_id,
                config: etc.join(CONFIG_NAME),
                keys,
                leftovers,
            }))
        }
        Err(e) => {
            let mut text = e.explain();
            if !leftovers.is_empty() {
                text.push_str(&format!(
                    "\nCould NOT remove: {}; delete them by hand.\n",
                    leftovers.join(", ")
                ));
            }
            let _ = std::fs::remove_file(boot.join(DONE_FILE));
            if let Err(werr) = std::fs::write(boot.join(ERROR_FILE), &text) {
                eprintln!("farmcast provision: cannot write {ERROR_FILE}: {werr}");
            }
            Err(e)
        }
    }
}

/// The subcommand's body: runs [`provision`], prints the outcome or the
/// explanation on stderr (the unit sends it to the console and the journal),
/// and maps it to an exit status: 0 done or nothing to do, 1 rejected (old
/// config kept), 2 could not install.
pub fn run_cli(boot: &Path, etc: &Path) -> ExitCode {
    match provision(boot, etc) {
        Ok(outcome) => {
            eprintln!("farmcast provision: {outcome}");
            match outcome {
                Outcome::Installed(i) if !i.leftovers.is_empty() => ExitCode::from(2),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            for line in e.explain().lines() {
                eprintln!("farmcast provision: {line}");
            }
            match e {
                ProvisionError::Install { .. } => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}
