//! Recovery codes: the sync key written for people.
//!
//! A recovery code is the 32-byte sync key in Crockford base32, 13 groups of five characters:
//!
//! ```text
//! 7XQ2M-0H4KD-...-R8V0C      group = 4 data characters + 1 check character
//! ```
//!
//! The 52 data characters carry 260 bits: the 256 key bits, most significant first, then a 4-bit
//! format number (0). The check character of group `g` (counted from 1) is
//!
//! ```text
//! c = g ⊕ 2·d₁ ⊕ 4·d₂ ⊕ 8·d₃ ⊕ 16·d₄     in GF(32) = GF(2)[x] / (x⁵ + x² + 1)
//! ```
//!
//! Because the weights (1 for the check character, 2, 4, 8, 16 for the data) are distinct and
//! non-zero, any single wrong character changes the sum, and so does any swap of two neighbouring
//! characters (the sum changes by (a ⊕ b)·(wᵢ ⊕ wᵢ₊₁) ≠ 0), including across a group boundary,
//! where the swap leaves the earlier group's data intact but replaces its check character. The
//! group number in the sum catches whole groups typed in the wrong order. The failing group is
//! named in the error.
//!
//! Input is read leniently: case does not matter, spaces, dashes and underscores are ignored, and
//! the letters Crockford maps to digits (`O` → 0, `I`/`L` → 1) are accepted.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::RecoveryCodeError;
use crate::keys::{KEY_LEN, SyncKey};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const DATA_PER_GROUP: usize = 4;
const GROUP_LEN: usize = DATA_PER_GROUP + 1;
const GROUPS: usize = 13;
/// Characters in a recovery code, not counting separators.
pub const CODE_LEN: usize = GROUPS * GROUP_LEN;
const FORMAT: u8 = 0;

/// A sync key written as a recovery code. It is the key itself: show it once, never log it.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// The code as it should be shown to the person, groups separated by dashes.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

impl SyncKey {
    /// This key as a recovery code.
    pub fn recovery_code(&self) -> RecoveryCode {
        let data = Zeroizing::new(to_symbols(self.expose_bytes()));
        let mut out = String::with_capacity(CODE_LEN + GROUPS - 1);
        for (g, group) in data.chunks(DATA_PER_GROUP).enumerate() {
            if g > 0 {
                out.push('-');
            }
            for &d in group {
                out.push(char::from(ALPHABET[usize::from(d)]));
            }
            out.push(char::from(ALPHABET[usize::from(check_symbol(g, group))]));
        }
        RecoveryCode(out)
    }

    /// Reads a recovery code typed by a person.
    pub fn from_recovery_code(code: &str) -> Result<SyncKey, RecoveryCodeError> {
        let mut symbols = Zeroizing::new(Vec::with_capacity(CODE_LEN));
        for character in code.chars() {
            if matches!(character, ' ' | '\t' | '\r' | '\n' | '-' | '_') {
                continue;
            }
            let group = symbols.len() / GROUP_LEN + 1;
            let value =
                symbol_value(character).ok_or(RecoveryCodeError::Character { group, character })?;
            symbols.push(value);
        }
        if symbols.len() != CODE_LEN {
            return Err(RecoveryCodeError::Length {
                expected: CODE_LEN,
                found: symbols.len(),
            });
        }
        let mut data = Zeroizing::new(Vec::with_capacity(GROUPS * DATA_PER_GROUP));
        for (g, group) in symbols.chunks(GROUP_LEN).enumerate() {
            let (group_data, check) = group.split_at(DATA_PER_GROUP);
            if check_symbol(g, group_data) != check[0] {
                return Err(RecoveryCodeError::Checksum { group: g + 1 });
            }
            data.extend_from_slice(group_data);
        }
        from_symbols(&data)
            .map(SyncKey::from_bytes)
            .ok_or(RecoveryCodeError::UnknownFormat)
    }
}

/// The 52 five-bit data symbols of a key: 256 key bits then the 4-bit format number.
fn to_symbols(key: &[u8; KEY_LEN]) -> Vec<u8> {
    let mut symbols = Vec::with_capacity(GROUPS * DATA_PER_GROUP);
    let mut acc: u16 = 0;
    let mut bits = 0;
    for &byte in key.iter().chain(std::iter::once(&(FORMAT << 4))) {
        acc = (acc << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 && symbols.len() < GROUPS * DATA_PER_GROUP {
            bits -= 5;
            symbols.push(((acc >> bits) & 0x1f) as u8);
        }
    }
    acc.zeroize();
    symbols
}

/// The key of 52 data symbols, or `None` when the format bits are not the known format.
fn from_symbols(symbols: &[u8]) -> Option<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut out = 0;
    for &symbol in symbols {
        acc = (acc << 5) | u32::from(symbol);
        bits += 5;
        if bits >= 8 && out < KEY_LEN {
            bits -= 8;
            key[out] = (acc >> bits) as u8;
            out += 1;
        }
    }
    let format = (acc & ((1 << bits) - 1)) as u8;
    acc.zeroize();
    if out == KEY_LEN && bits == 4 && format == FORMAT {
        Some(key)
    } else {
        key.zeroize();
        None
    }
}

fn symbol_value(c: char) -> Option<u8> {
    let c = match c.to_ascii_uppercase() {
        'O' => '0',
        'I' | 'L' => '1',
        c => c,
    };
    ALPHABET
        .iter()
        .position(|&a| char::from(a) == c)
        .map(|p| p as u8)
}

/// The check symbol of 0-based group `group` with these data symbols.
fn check_symbol(group: usize, data: &[u8]) -> u8 {
    let mut sum = (group as u8 + 1) & 0x1f;
    let mut weight = 2;
    for &d in data {
        sum ^= gf32_mul(weight, d);
        weight = gf32_mul(weight, 2);
    }
    sum
}

/// Multiplication in GF(32) modulo x⁵ + x² + 1.
fn gf32_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        b >>= 1;
        a <<= 1;
        if a & 0x20 != 0 {
            a ^= 0x25;
        }
    }
    product
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SyncKey {
        let mut bytes = [0u8; KEY_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        SyncKey::from_bytes(bytes)
    }

    fn compact(code: &RecoveryCode) -> Vec<char> {
        code.expose().chars().filter(|&c| c != '-').collect()
    }

    fn group_of(i: usize) -> usize {
        i / GROUP_LEN + 1
    }

    #[test]
    fn round_trips_and_reads_leniently() {
        let key = key();
        let code = key.recovery_code();
        assert_eq!(code.expose().len(), CODE_LEN + GROUPS - 1);
        let back = SyncKey::from_recovery_code(code.expose()).unwrap();
        assert_eq!(back.expose_bytes(), key.expose_bytes());

        let sloppy: String = code
            .expose()
            .to_lowercase()
            .replace('-', " ")
            .replace('0', "o")
            .replace('1', "l");
        let back = SyncKey::from_recovery_code(&sloppy).unwrap();
        assert_eq!(back.expose_bytes(), key.expose_bytes());
    }

    #[test]
    fn every_single_substitution_names_its_group() {
        let chars = compact(&key().recovery_code());
        for i in 0..chars.len() {
            for &replacement in ALPHABET {
                let replacement = char::from(replacement);
                if replacement == chars[i] {
                    continue;
                }
                let mut typo = chars.clone();
                typo[i] = replacement;
                let typo: String = typo.into_iter().collect();
                assert_eq!(
                    SyncKey::from_recovery_code(&typo).unwrap_err(),
                    RecoveryCodeError::Checksum { group: group_of(i) },
                    "substitution at {i}"
                );
            }
        }
    }

    #[test]
    fn every_adjacent_transposition_is_caught() {
        let chars = compact(&key().recovery_code());
        for i in 0..chars.len() - 1 {
            if chars[i] == chars[i + 1] {
                continue;
            }
            let mut swapped = chars.clone();
            swapped.swap(i, i + 1);
            let swapped: String = swapped.into_iter().collect();
            match SyncKey::from_recovery_code(&swapped).unwrap_err() {
                RecoveryCodeError::Checksum { group } => {
                    assert!(
                        group == group_of(i) || group == group_of(i + 1),
                        "swap at {i}"
                    )
                }
                other => panic!("swap at {i}: {other:?}"),
            }
        }
    }

    #[test]
    fn swapped_groups_are_caught() {
        let code = key().recovery_code();
        let mut groups: Vec<&str> = code.expose().split('-').collect();
        groups.swap(3, 4);
        assert_eq!(
            SyncKey::from_recovery_code(&groups.join("-")).unwrap_err(),
            RecoveryCodeError::Checksum { group: 4 }
        );
    }

    #[test]
    fn bad_characters_and_lengths() {
        let code = key().recovery_code();
        let mut bad: Vec<char> = code.expose().chars().collect();
        bad[13] = 'U'; // third group (index 13 counts two dashes)
        let bad: String = bad.into_iter().collect();
        assert_eq!(
            SyncKey::from_recovery_code(&bad).unwrap_err(),
            RecoveryCodeError::Character {
                group: 3,
                character: 'U'
            }
        );
        let short = &code.expose()[..code.expose().len() - 6];
        assert_eq!(
            SyncKey::from_recovery_code(short).unwrap_err(),
            RecoveryCodeError::Length {
                expected: CODE_LEN,
                found: CODE_LEN - 5
            }
        );
        assert!(matches!(
            SyncKey::from_recovery_code("").unwrap_err(),
            RecoveryCodeError::Length { found: 0, .. }
        ));
        assert!(matches!(
            SyncKey::from_recovery_code("ünïcödé-ß").unwrap_err(),
            RecoveryCodeError::Character { group: 1, .. }
        ));
    }

    #[test]
    fn unknown_format_bits_are_refused() {
        let mut data = to_symbols(key().expose_bytes());
        *data.last_mut().unwrap() |= 0x0f; // format bits live in the last symbol's low 4 bits
        let mut text = String::new();
        for (g, group) in data.chunks(DATA_PER_GROUP).enumerate() {
            for &d in group {
                text.push(char::from(ALPHABET[usize::from(d)]));
            }
            text.push(char::from(ALPHABET[usize::from(check_symbol(g, group))]));
        }
        assert_eq!(
            SyncKey::from_recovery_code(&text).unwrap_err(),
            RecoveryCodeError::UnknownFormat
        );
    }

    #[test]
    fn debug_is_redacted() {
        let code = key().recovery_code();
        assert_eq!(format!("{code:?}"), "RecoveryCode(<redacted>)");
    }
}
