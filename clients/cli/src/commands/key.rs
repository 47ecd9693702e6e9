//! `ferry key show|export`: the recovery code, which opens all of this repository's data.

use std::fmt;
use std::io::Write as _;

use serde::Serialize;

use crate::cli::KeyAction;
use crate::config::Config;
use crate::device;
use crate::error::{Failure, file_error};
use crate::home::Home;
use crate::output::{Done, Output};

/// The recovery code, for `key show --yes`.
#[derive(Serialize)]
struct RecoveryCode {
    recovery_code: String,
}

impl fmt::Display for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.recovery_code)
    }
}

/// `ferry key …`.
pub(crate) fn run(
    home: &Home,
    config: &Config,
    action: KeyAction,
    out: &mut Output,
) -> Result<(), Failure> {
    if config.settings.store.is_none() {
        return Err(Failure::new(
            "this device is not set up, so it has no key: `ferry init` makes a repository and \
             its key, `ferry join` joins one",
        ));
    }
    let secrets = device::secrets(home, config);
    let key = device::sync_key(&secrets)?;
    match action {
        KeyAction::Show { yes: false } => Err(Failure::usage(
            "the recovery code opens all your data: print it with `ferry key show --yes` when no \
             one can see your screen, or write it to a file with `ferry key export --output FILE`",
        )),
        KeyAction::Show { yes: true } => {
            out.report(&RecoveryCode {
                recovery_code: key.recovery_code().expose().to_owned(),
            });
            Ok(())
        }
        // A data command (it needs the engine): `main` runs it as one.
        KeyAction::Rotate(_) => Err(Failure::new(
            "`ferry key rotate` runs with the device's engine, not here",
        )),
        KeyAction::Export { output } => {
            let text = format!(
                "Ferry recovery code for the repository at {} (key {}):\n\n    {}\n",
                config.settings.store.as_deref().unwrap_or("?"),
                key.key_id(),
                key.recovery_code().expose()
            );
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            options
                .open(&output)
                .map_err(file_error(&output, "created"))?
                .write_all(text.as_bytes())
                .map_err(file_error(&output, "written"))?;
            let line = format!(
                "Wrote the recovery code to {} (mode 0600).",
                output.display()
            );
            out.done(&Done::new("exported", output.display(), line));
            Ok(())
        }
    }
}
