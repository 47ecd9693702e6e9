//! What commands print. Each command's answer is one report value that derives `Serialize` and
//! implements `Display`: `--json` prints the first, plain output the second, so the two cannot
//! say different things. A command that changes something confirms it in one line on stdout
//! ([`Output::done`], which `--quiet` drops); notes for the person (warnings) go to stderr.

use std::fmt;
use std::io::Write as _;

use serde::Serialize;

use crate::error::Failure;

/// A command's answer, as JSON or as text.
pub(crate) trait Report: Serialize + fmt::Display {}

impl<T: Serialize + fmt::Display> Report for T {}

/// What a command printed, held until it is written here or sent back from the agent.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
    /// Print reports as JSON.
    pub(crate) json: bool,
    /// Leave out the confirmation lines of commands that change something.
    pub(crate) quiet: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Output {
        Output {
            json,
            ..Output::default()
        }
    }

    /// Prints a report: one JSON line, or its text as it is.
    pub(crate) fn report(&mut self, report: &impl Report) {
        if self.json {
            // Serialising plain data to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.stdout, report);
            self.stdout.push(b'\n');
        } else {
            let _ = write!(self.stdout, "{report}");
        }
    }

    /// Leaves out confirmation lines (`--quiet`), when `quiet`.
    pub(crate) fn quietly(mut self, quiet: bool) -> Output {
        self.quiet = quiet;
        self
    }

    /// Confirms a change: a report like any other, left out by `--quiet` unless it is asked
    /// for as JSON.
    pub(crate) fn done(&mut self, report: &impl Report) {
        if self.json || !self.quiet {
            self.report(report);
        }
    }

    /// Prints bytes as they are (a pasted clip).
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.stdout.extend_from_slice(bytes);
    }

    /// Adds a line for the person on stderr.
    pub(crate) fn note(&mut self, text: impl AsRef<str>) {
        self.stderr.push_str(text.as_ref());
        self.stderr.push('\n');
    }

    /// Writes it all out here.
    pub(crate) fn emit(self) -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&self.stdout)
            .and_then(|()| stdout.flush())
            .map_err(|e| Failure::new(format!("could not write the output: {e}")))?;
        eprint!("{}", self.stderr);
        Ok(())
    }
}

/// The confirmation of a change to the device's data: one line for the person, and for
/// scripts what was done to what (`{"done": "pinned", "what": "<clip id>"}`).
#[derive(Serialize)]
pub(crate) struct Done {
    done: &'static str,
    what: String,
    #[serde(skip)]
    line: String,
}

impl Done {
    pub(crate) fn new(
        done: &'static str,
        what: impl fmt::Display,
        line: impl Into<String>,
    ) -> Done {
        Done {
            done,
            what: what.to_string(),
            line: line.into(),
        }
    }
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.line)
    }
}

/// Writes each item of a list on its own line.
pub(crate) struct Lines<'a, T>(pub(crate) &'a [T]);

impl<T: fmt::Display> fmt::Display for Lines<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|item| writeln!(f, "{item}"))
    }
}

/// `word` as a POSIX shell reads it back: as it is when it is plain, else in single quotes.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `n` things, in words: `1 clip`, `2 clips`, `0 changes`.
pub(crate) fn counted(n: impl Into<u64>, noun: &str) -> String {
    match n.into() {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// A size for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// How long ago a time in milliseconds since the epoch was: `5s`, `3m`, `2h`, `4d`.
pub(crate) fn age(at_ms: u64) -> String {
    span(now_ms().saturating_sub(at_ms))
}

/// How long until a time in milliseconds since the epoch: `5s`, `3m`, … (`0s` once it passed).
pub(crate) fn until(at_ms: u64) -> String {
    span(at_ms.saturating_sub(now_ms()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A span of milliseconds in its largest whole unit: `5s`, `3m`, `2h`, `4d`.
fn span(ms: u64) -> String {
    match ms / 1000 {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Serde for values written in reports as their text form (`Display` and `FromStr`), as ids
/// are: `#[serde(with = "as_text")]`.
pub(crate) mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(crate) fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// Reports printed as they happen: the one exception to one report per command, for `ferry
/// pair`, whose code must show before the other device answers. Each is one JSON line with
/// `--json`, else its text, written out at once.
pub(crate) struct Events {
    json: bool,
}

impl Events {
    pub(crate) fn new(json: bool) -> Events {
        Events { json }
    }

    /// Whether they are printed as JSON.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints `event`, as JSON or as `text`.
    pub(crate) fn say(&self, event: &impl Serialize, text: impl fmt::Display) {
        let mut stdout = std::io::stdout().lock();
        let _ = if self.json {
            serde_json::to_writer(&mut stdout, event)
                .map_err(std::io::Error::other)
                .and_then(|()| writeln!(stdout))
        } else {
            write!(stdout, "{text}")
        };
        let _ = stdout.flush();
    }
}

/// Text another device or a server sent, as it may be shown: no control characters (a
/// terminal's escapes), at most `limit` characters.
pub(crate) fn sanitized(text: &str, limit: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{sanitized, size};

    #[test]
    fn text_from_elsewhere_is_shown_without_control_characters() {
        let shown = sanitized(&"disk \u{1b}[2Jfull\n".repeat(100), 300);
        assert!(!shown.chars().any(char::is_control));
        assert!(shown.starts_with("disk [2Jfull"));
        assert_eq!(shown.chars().count(), 300);
    }

    #[test]
    fn sizes_are_written_in_binary_units() {
        for (bytes, shown) in [
            (0, "0 B"),
            (512, "512 B"),
            (1536, "1.5 KiB"),
            (3 * 1024 * 1024 + 200 * 1024, "3.2 MiB"),
            (5 << 30, "5.0 GiB"),
        ] {
            assert_eq!(size(bytes), shown);
        }
    }
}
