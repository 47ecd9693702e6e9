//! Reading what a person types: the recovery code and passphrases, and the pairing code.
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

/// Reads a pairing code: on a terminal, a line whose words complete with Tab once their first
/// letters name one word of the list (`orb` Tab gives `orbit-`); else [`line`].
pub(crate) fn code(prompt: &str) -> Result<Zeroizing<String>, Failure> {
    if !interactive() || !std::io::stderr().is_terminal() {
        return line(prompt, "the pairing code");
    }
    let typed =
        edit_code(prompt).map_err(|e| Failure::new(format!("the code could not be read: {e}")))?;
    eprint!("\r\n");
    match typed {
        Some(text) if !text.trim().is_empty() => Ok(Zeroizing::new(text.trim().to_owned())),
        Some(_) => Err(Failure::usage("no pairing code was given")),
        None => Err(Failure::new("cancelled; the code was not used")),
    }
}

/// The line typed at a terminal in raw mode after `prompt`, with Tab completing words; `None`
/// on Ctrl-C, Ctrl-D or Esc. Raw mode comes first: keys typed as soon as the prompt shows are
/// not left to the terminal's own line editing.
fn edit_code(prompt: &str) -> std::io::Result<Option<String>> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use ratatui::crossterm::terminal;

    /// Leaves raw mode however the reading ends.
    struct Raw;
    impl Drop for Raw {
        fn drop(&mut self) {
            let _ = terminal::disable_raw_mode();
        }
    }
    let flush = || std::io::Write::flush(&mut std::io::stderr());
    terminal::enable_raw_mode()?;
    let _raw = Raw;
    eprint!("{prompt}");
    flush()?;
    let mut text = String::new();
    loop {
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let control = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => return Ok(Some(text)),
            KeyCode::Esc => return Ok(None),
            KeyCode::Char('c' | 'd') if control => return Ok(None),
            KeyCode::Char(c) if !control => {
                text.push(c);
                eprint!("{c}");
            }
            KeyCode::Backspace if text.pop().is_some() => eprint!("\x08 \x08"),
            KeyCode::Tab => {
                let added = completion(&text);
                eprint!("{added}");
                text.push_str(&added);
            }
            _ => {}
        }
        flush()?;
    }
}

/// What Tab adds to a code typed so far: the rest of its last word when one word of the list
/// starts so, and a hyphen after a first word.
fn completion(text: &str) -> String {
    let start = text
        .char_indices()
        .rev()
        .find(|(_, c)| *c == '-' || *c == '_' || c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let last = &text[start..];
    let Some(word) = ferry_protocol::pairing::complete(last) else {
        return String::new();
    };
    if last.bytes().any(|b| b.is_ascii_digit()) {
        return String::new();
    }
    let words_before = text[..start]
        .split(|c: char| c == '-' || c == '_' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .count();
    let rest = word.get(last.len()..).unwrap_or_default();
    match words_before {
        1 => format!("{rest}-"),
        _ => rest.to_owned(),
    }
}

/// The passphrase of a new repository: `FERRY_PASSPHRASE`, else asked for twice on a terminal,
/// else the first line of standard input. Every way in must give at least
/// [`MIN_PASSPHRASE`] characters.
pub(crate) fn new_passphrase() -> Result<Zeroizing<String>, Failure> {
    new_passphrase_in("FERRY_PASSPHRASE")
}

/// [`new_passphrase`], from the variable `var` when it is set.
pub(crate) fn new_passphrase_in(var: &str) -> Result<Zeroizing<String>, Failure> {
    let passphrase = match std::env::var(var) {
        Ok(passphrase) => Zeroizing::new(passphrase),
        Err(_) => {
            let first = secret("New passphrase: ", "the passphrase")?;
            if interactive() {
                check_length(&first)?;
                let again = secret("The same passphrase again: ", "the passphrase")?;
                if *again != *first {
                    return Err(Failure::usage(
                        "the two passphrases differ; nothing was changed: run the command again",
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

#[cfg(test)]
mod tests {
    use super::completion;

    #[test]
    fn tab_completes_the_word_being_typed() {
        assert_eq!(completion("417-orb"), "it-");
        assert_eq!(completion("417 ORBI"), "t-");
        assert_eq!(completion("417-orbit-velv"), "et");
        assert_eq!(
            completion("417-orbit-ab"),
            "",
            "more than one word starts so"
        );
        assert_eq!(completion("41"), "");
        assert_eq!(completion(""), "");
        assert_eq!(completion("417-orbit-velvet"), "");
        assert_eq!(
            completion("417\u{a0}orb"),
            "it-",
            "a no-break space pasted in"
        );
    }
}
