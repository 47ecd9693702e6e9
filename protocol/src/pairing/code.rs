//! The one-time pairing code: `<nameplate>-<word>-<word>`, such as `417-orbit-velvet`.
//!
//! The nameplate (three digits) is public: it only picks the relay topic where the two devices
//! meet. The two words are the secret: 11 bits each, drawn from the BIP-39 English list of 2048
//! words, whose first four letters are unique, so four letters of each word are enough to type.
//! A guess is right with probability 1 in 2²² (4.2 million), and a wrong one ends the attempt.
//!
//! Reading is forgiving: any case, words separated by hyphens, spaces or underscores, and any
//! unique prefix of a word. A word that is not in the list is named in the error. The code may
//! also be given as the QR code's text, `ferry-pair:<code>?relay=<url>`.

use std::fmt;

use crate::error::Error;
use crate::keys::fill_random;

/// The BIP-39 English word list, one word a line (SHA-256
/// 2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda).
const ENGLISH: &str = include_str!("english.txt");

/// Words in the list: 2¹¹.
pub const WORDS: usize = 2048;

/// The scheme of the text a QR code holds: not `https`, so a scanner that opens links does
/// not send the code anywhere.
pub const URI_SCHEME: &str = "ferry-pair:";

/// The word with index `index` (below [`WORDS`]).
pub fn word(index: u16) -> &'static str {
    ENGLISH
        .lines()
        .nth(usize::from(index) % WORDS)
        .unwrap_or_default()
}

/// The one word that starts with `typed` (any case), for completing a word as it is typed;
/// `None` when no word or more than one does.
pub fn complete(typed: &str) -> Option<&'static str> {
    lookup(typed).ok().map(word)
}

/// A pairing code.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PairingCode {
    nameplate: u16,
    words: [u16; 2],
}

/// Why text is not a pairing code. The messages never quote the words that were right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Nothing was given.
    #[error(
        "no pairing code was given: type the code the other device shows (like 417-orbit-velvet)"
    )]
    Empty,
    /// The first part is not three digits.
    #[error(
        "a pairing code starts with the three digits the other device shows (like 417-orbit-velvet)"
    )]
    Nameplate,
    /// Not two words after the digits.
    #[error("a pairing code has two words after its three digits (like 417-orbit-velvet), not {0}")]
    WordCount(usize),
    /// A word that no word of the list starts with.
    #[error("\"{0}\" is not one of the pairing words: check the spelling against the other screen")]
    UnknownWord(String),
    /// A prefix that several words start with.
    #[error("\"{0}\" could be several words: type at least its first four letters")]
    Ambiguous(String),
}

impl PairingCode {
    /// A new code from the operating system's random number generator.
    pub fn generate() -> Result<PairingCode, Error> {
        let mut bytes = [0u8; 6];
        fill_random(&mut bytes)?;
        let draw = |pair: [u8; 2], modulus: u16| u16::from_be_bytes(pair) % modulus;
        // 65536 is a multiple of 2048: the words are uniform. The nameplate's slight bias
        // (65536 = 65 × 1000 + 536) is harmless: it is public.
        Ok(PairingCode {
            nameplate: draw([bytes[0], bytes[1]], 1000),
            words: [
                draw([bytes[2], bytes[3]], WORDS as u16),
                draw([bytes[4], bytes[5]], WORDS as u16),
            ],
        })
    }

    /// The code with these parts (the nameplate below 1000, the words below [`WORDS`]).
    pub fn from_parts(nameplate: u16, words: [u16; 2]) -> PairingCode {
        PairingCode {
            nameplate: nameplate % 1000,
            words: words.map(|w| w % WORDS as u16),
        }
    }

    /// The public part, which picks the meeting place: 0 to 999.
    pub fn nameplate(&self) -> u16 {
        self.nameplate
    }

    /// The words' indices in the list.
    pub fn words(&self) -> [u16; 2] {
        self.words
    }

    /// The code as the key exchange takes it: digits and whole words, lowercase, hyphenated.
    pub fn normalised(&self) -> String {
        self.to_string()
    }

    /// The code typed short: each word cut to its first four letters, which are unique.
    pub fn short(&self) -> String {
        let cut = |w: u16| word(w).chars().take(4).collect::<String>();
        format!(
            "{:03}-{}-{}",
            self.nameplate,
            cut(self.words[0]),
            cut(self.words[1])
        )
    }

    /// Reads a code as a person types it, or as the QR code's text (whose relay, if any, is
    /// returned too).
    pub fn parse(text: &str) -> Result<(PairingCode, Option<String>), CodeError> {
        let text = text.trim();
        let (code, relay) = match text.get(..URI_SCHEME.len()) {
            Some(scheme) if scheme.eq_ignore_ascii_case(URI_SCHEME) => {
                let rest = &text[URI_SCHEME.len()..];
                match rest.split_once('?') {
                    Some((code, query)) => (code, relay_of(query)),
                    None => (rest, None),
                }
            }
            _ => (text, None),
        };
        let mut parts = code
            .split(|c: char| c == '-' || c == '_' || c.is_whitespace())
            .filter(|part| !part.is_empty());
        let nameplate = parts.next().ok_or(CodeError::Empty)?;
        if nameplate.len() != 3 || !nameplate.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeError::Nameplate);
        }
        let nameplate: u16 = nameplate.parse().map_err(|_| CodeError::Nameplate)?;
        let words: Vec<&str> = parts.collect();
        let [first, second] = words[..] else {
            return Err(CodeError::WordCount(words.len()));
        };
        let code = PairingCode {
            nameplate,
            words: [lookup(first)?, lookup(second)?],
        };
        Ok((code, relay))
    }

    /// The text a QR code holds: `ferry-pair:<code>?relay=<url>`, or `ferry-pair:<code>` to
    /// pair on the LAN alone.
    pub fn uri(&self, relay: Option<&str>) -> String {
        match relay {
            Some(relay) => format!("{URI_SCHEME}{self}?relay={}", escape(relay)),
            None => format!("{URI_SCHEME}{self}"),
        }
    }
}

impl fmt::Display for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:03}-{}-{}",
            self.nameplate,
            word(self.words[0]),
            word(self.words[1])
        )
    }
}

impl fmt::Debug for PairingCode {
    /// Only the public nameplate: the words are the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingCode({:03}-…)", self.nameplate)
    }
}

/// The index of the one word that `typed` (any case) is a prefix of, or equal to.
fn lookup(typed: &str) -> Result<u16, CodeError> {
    let typed = typed.to_lowercase();
    let named = || typed.chars().take(16).collect::<String>();
    if !typed.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(CodeError::UnknownWord(named()));
    }
    let mut found = None;
    for (index, word) in ENGLISH.lines().enumerate() {
        if word == typed {
            return Ok(index as u16);
        }
        if word.starts_with(&typed) {
            if found.is_some() {
                return Err(CodeError::Ambiguous(named()));
            }
            found = Some(index as u16);
        }
    }
    found.ok_or_else(|| CodeError::UnknownWord(named()))
}

/// The `relay` parameter of a QR code's query, percent-decoded.
fn relay_of(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("relay="))
        .map(unescape)
        .filter(|relay| !relay.is_empty())
}

/// Percent-encodes what would end the query parameter.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' | '&' | '#' | ' ' | '+' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at..at + 2)
                .and_then(|pair| std::str::from_utf8(pair).ok())
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        };
        match (bytes[i], hex(i + 1)) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn the_word_list_is_bip39_english() {
        let digest = Sha256::digest(ENGLISH.as_bytes());
        assert_eq!(
            hex::encode(digest),
            "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"
        );
        assert_eq!(ENGLISH.lines().count(), WORDS);
        assert_eq!(complete("orbi"), Some("orbit"));
        assert_eq!(complete("VELV"), Some("velvet"));
        assert_eq!(complete("ab"), None, "more than one word");
        assert_eq!(complete("zzzz"), None);
        assert_eq!(complete(""), None);
        let mut prefixes: Vec<String> = ENGLISH
            .lines()
            .map(|w| w.chars().take(4).collect())
            .collect();
        prefixes.sort();
        prefixes.dedup();
        assert_eq!(prefixes.len(), WORDS, "four letters name one word");
    }

    #[test]
    fn codes_read_back_however_they_are_typed() {
        let code = PairingCode::from_parts(417, [1247, 1936]);
        assert_eq!(code.to_string(), "417-orbit-velvet");
        assert_eq!(code.short(), "417-orbi-velv");
        for typed in [
            "417-orbit-velvet",
            "417-orbi-velv",
            "  417 ORBIT velvet\n",
            "417_orb_velve",
            "417--orbit--velvet",
            "ferry-pair:417-orbit-velvet",
        ] {
            assert_eq!(PairingCode::parse(typed), Ok((code, None)), "{typed}");
        }
        let uri = code.uri(Some("ws://127.0.0.1:9/a b&c"));
        assert_eq!(
            PairingCode::parse(&uri),
            Ok((code, Some("ws://127.0.0.1:9/a b&c".to_owned())))
        );
        assert_eq!(code.uri(None), "ferry-pair:417-orbit-velvet");
        assert_eq!(PairingCode::parse(&code.uri(None)), Ok((code, None)));
    }

    #[test]
    fn bad_codes_say_what_is_wrong() {
        assert_eq!(PairingCode::parse("  "), Err(CodeError::Empty));
        assert_eq!(
            PairingCode::parse("41-orbit-velvet"),
            Err(CodeError::Nameplate)
        );
        assert_eq!(
            PairingCode::parse("abc-orbit-velvet"),
            Err(CodeError::Nameplate)
        );
        assert_eq!(
            PairingCode::parse("417-orbit"),
            Err(CodeError::WordCount(1))
        );
        assert_eq!(
            PairingCode::parse("417-orbit-velvet-x"),
            Err(CodeError::WordCount(3))
        );
        assert_eq!(
            PairingCode::parse("417-orbit-velvat"),
            Err(CodeError::UnknownWord("velvat".into()))
        );
        assert_eq!(
            PairingCode::parse("417-or-velvet"),
            Err(CodeError::Ambiguous("or".into()))
        );
        assert_eq!(
            PairingCode::parse("417-orbit-v3lvet"),
            Err(CodeError::UnknownWord("v3lvet".into()))
        );
    }

    #[test]
    fn debug_hides_the_words() {
        let code = PairingCode::from_parts(7, [1247, 1936]);
        assert_eq!(format!("{code:?}"), "PairingCode(007-…)");
    }

    #[test]
    fn generated_codes_read_back() {
        for _ in 0..100 {
            let code = PairingCode::generate().unwrap();
            assert_eq!(PairingCode::parse(&code.to_string()).unwrap().0, code);
            assert_eq!(PairingCode::parse(&code.short()).unwrap().0, code);
        }
    }
}
