//! Reading a secret a person types: the recovery code and passphrases.
//!
//! On a terminal the secret is asked for with echo off; otherwise it is the first line of
//! standard input (a script, a password manager's pipe). Neither way leaves it in the process's
//! arguments (readable by every local user in `/proc/PID/cmdline`) or in shell history.

use std::io::{BufRead, IsTerminal};

use zeroize::Zeroizing;

use crate::error::Failure;

/// The shortest passphrase a new repository accepts, however it is given.
pub(crate) const MIN_PASSPHRASE: usize = 8;

/// Whether a person can be asked: standard input is a terminal.
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Reads one secret: asked for with `prompt` on a terminal (nothing echoed), else the first
/// line of standard input. `what` names it in errors ("the recovery code").
pub(crate) fn secret(prompt: &str, what: &str) -> Result<Zeroizing<String>, Failure> {
    let line = if interactive() {
        Zeroizing::new(
            rpassword::prompt_password(prompt)
                .map_err(|e| Failure::new(format!("{what} could not be read: {e}")))?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::new(format!("{what} could not be read: {e}")))?;
        line
    };
    let trimmed = line.trim_end_matches(['\r', '\n']);
    if trimmed.trim().is_empty() {
        return Err(Failure::usage(format!(
            "no {} was given: type it at the prompt, or give it as the first line of standard \
             input",
            what.trim_start_matches("the ")
        )));
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// Reads one line that need not be hidden (a one-time pairing code): asked for with `prompt`
/// on a terminal, else the first line of standard input.
pub(crate) fn line(prompt: &str, what: &str) -> Result<Zeroizing<String>, Failure> {
    if interactive() {
        eprint!("{prompt}");
        let _ = std::io::Write::flush(&mut std::io::stderr());
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::new(format!("{what} could not be read: {e}")))?;
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Err(Failure::usage(format!(
            "no {} was given: type it at the prompt, or give it as the first line of standard \
             input",
            what.trim_start_matches("the ")
        )));
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// The passphrase of a new repository: `FERRY_PASSPHRASE`, else asked for twice on a terminal,
/// else the first line of standard input. Every way in must give at least
/// [`MIN_PASSPHRASE`] characters.
pub(crate) fn new_passphrase() -> Result<Zeroizing<String>, Failure> {
    let passphrase = match std::env::var("FERRY_PASSPHRASE") {
        Ok(passphrase) => Zeroizing::new(passphrase),
        Err(_) => {
            let first = secret("New passphrase: ", "the passphrase")?;
            if interactive() {
                check_length(&first)?;
                let again = secret("The same passphrase again: ", "the passphrase")?;
                if *again != *first {
                    return Err(Failure::usage(
                        "the two passphrases differ; nothing was created: run the command again",
                    ));
                }
            }
            first
        }
    };
    check_length(&passphrase)?;
    Ok(passphrase)
}

/// The passphrase of an existing repository: `FERRY_PASSPHRASE`, else asked for, else the first
/// line of standard input. Whatever opens the repository is right, so no length rule applies.
pub(crate) fn passphrase() -> Result<Zeroizing<String>, Failure> {
    match std::env::var("FERRY_PASSPHRASE") {
        Ok(passphrase) => Ok(Zeroizing::new(passphrase)),
        Err(_) => secret("Passphrase: ", "the passphrase"),
    }
}

fn check_length(passphrase: &str) -> Result<(), Failure> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(Failure::usage(format!(
            "the passphrase must have at least {MIN_PASSPHRASE} characters (a recovery code, the \
             default without --passphrase, is stronger than any passphrase)"
        )));
    }
    Ok(())
}
