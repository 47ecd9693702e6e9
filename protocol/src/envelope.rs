//! The envelope: how every piece of user data is sealed before it leaves a device.
//!
//! ```text
//! offset  len  field
//! 0       3    magic "FRY"
//! 3       1    format version (2; version 1 is still read)
//! 4       1    kind (see `Kind`)
//! 5       8    key id of the sync key
//! 13      24   nonce (random)
//! 37      n    XChaCha20-Poly1305 ciphertext of the padded plaintext
//! 37+n    16   Poly1305 tag
//! ```
//!
//! The associated data is the 37 header bytes followed by the object's logical name (for
//! example `log/<device>/<seq>`), so the storage can neither alter the header nor move an object
//! to another name without the tag failing.
//!
//! Padding hides lengths. The plaintext is followed by one `0x80` byte and then zeros up to the
//! padded length: a multiple of 256 bytes while the result is at most 64 KiB, and above that the
//! Padmé length (the length rounded so that only the top `⌊log₂ E⌋ + 1` bits of its exponent
//! `E = ⌊log₂ L⌋` remain free), which costs at most 3.2 % and leaks O(log log L) bits.
//!
//! Opening checks, in order: magic, length of the header, version, kind, size bound of the kind,
//! key id, length (it must be a padded length), tag, padding. Each failure is its own [`Error`] variant; no input panics.

use std::fmt;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};

use crate::error::Error;
use crate::keys::{DataKey, KeyId, SubKey, fill_random};

/// The first three bytes of every Ferry object.
pub const MAGIC: [u8; 3] = *b"FRY";
/// The format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u8 = 2;
/// The oldest format version this build reads: version 1 differs only in that segments, heads
/// and snapshots carry no signature.
pub const OLDEST_VERSION: u8 = 1;
/// Length of the nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the envelope header.
pub const HEADER_LEN: usize = 3 + 1 + 1 + 8 + NONCE_LEN;
/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;

const SMALL_LIMIT: usize = 64 * 1024;
const SMALL_STEP: usize = 256;

/// What an object is. The byte values are part of the format and never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// The public repository header (framed like the envelope, but not encrypted).
    RepoHeader = 1,
    /// The sealed key-check value inside the repository header.
    KeyCheck = 2,
    /// A batch of operations from one device.
    Segment = 3,
    /// A device's latest sequence number and snapshot.
    Head = 4,
    /// The whole merged state with its version vector.
    Snapshot = 5,
    /// One chunk of a large payload.
    BlobChunk = 6,
    /// A relay hint as Ferry sent it before hints were signed: refused, said to come from an
    /// older version.
    UnsignedHint = 7,
    /// A "new data is ready" hint published on the relay, signed by the device it speaks for.
    RelayHint = 8,
    /// `head/next`: the public record that a repository's generation has a successor (framed
    /// like the envelope, but not encrypted, as the repository header is).
    Successor = 9,
    /// The sealed, signed part of `head/next`: who made the new generation, whom it removes,
    /// and the new key sealed to each remaining device.
    Rotation = 10,
    /// `prev`: the previous generation's sync key, sealed in the new one.
    Previous = 11,
}

impl Kind {
    /// The kind with this wire byte.
    pub fn from_byte(byte: u8) -> Result<Kind, Error> {
        Ok(match byte {
            1 => Kind::RepoHeader,
            2 => Kind::KeyCheck,
            3 => Kind::Segment,
            4 => Kind::Head,
            5 => Kind::Snapshot,
            6 => Kind::BlobChunk,
            7 => Kind::UnsignedHint,
            8 => Kind::RelayHint,
            9 => Kind::Successor,
            10 => Kind::Rotation,
            11 => Kind::Previous,
            other => return Err(Error::UnknownKind(other)),
        })
    }

    /// Largest plaintext a sealed object of this kind may carry.
    pub fn max_plaintext(self) -> usize {
        match self {
            Kind::RepoHeader | Kind::KeyCheck | Kind::Head | Kind::Previous => 4 * 1024,
            Kind::Segment => 16 * 1024 * 1024,
            Kind::Snapshot => 256 * 1024 * 1024,
            Kind::BlobChunk => 4 * 1024 * 1024 + 1024,
            Kind::UnsignedHint | Kind::RelayHint => 128,
            Kind::Rotation => 512 * 1024,
            Kind::Successor => Kind::Rotation.max_sealed() + 64,
        }
    }

    /// Largest sealed object of this kind: anything longer is refused unread.
    pub fn max_sealed(self) -> usize {
        HEADER_LEN + padded_len(self.max_plaintext() + 1) + TAG_LEN
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::RepoHeader => "repository header",
            Kind::KeyCheck => "key check",
            Kind::Segment => "segment",
            Kind::Head => "head",
            Kind::Snapshot => "snapshot",
            Kind::BlobChunk => "blob chunk",
            Kind::UnsignedHint => "unsigned relay hint",
            Kind::RelayHint => "relay hint",
            Kind::Successor => "generation record",
            Kind::Rotation => "rotation record",
            Kind::Previous => "previous key",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The public header of a sealed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u8,
    /// What the object is.
    pub kind: Kind,
    /// The key id of the sync key that sealed it.
    pub key_id: KeyId,
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// Reads the header at the start of `bytes`, checking magic, length, version and kind.
    pub fn parse(bytes: &[u8]) -> Result<Header, Error> {
        check_prefix(bytes)?;
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated {
                needed: HEADER_LEN,
                got: bytes.len(),
            });
        }
        let kind = Kind::from_byte(bytes[4])?;
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[5..13]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[13..HEADER_LEN]);
        Ok(Header {
            version: bytes[3],
            kind,
            key_id: KeyId(key_id),
            nonce,
        })
    }

    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..3].copy_from_slice(&MAGIC);
        out[3] = self.version;
        out[4] = self.kind as u8;
        out[5..13].copy_from_slice(&self.key_id.0);
        out[13..].copy_from_slice(&self.nonce);
        out
    }
}

/// Checks magic and version, the part shared by sealed objects and the public repository header.
pub(crate) fn check_prefix(bytes: &[u8]) -> Result<(), Error> {
    let shown = bytes.len().min(MAGIC.len());
    if bytes[..shown] != MAGIC[..shown] {
        return Err(Error::BadMagic);
    }
    if bytes.len() < MAGIC.len() + 1 {
        return Err(Error::Truncated {
            needed: MAGIC.len() + 2,
            got: bytes.len(),
        });
    }
    let version = bytes[3];
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// A sealed object: ciphertext as it is stored and sent. Opening it needs the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// The bytes to store or send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes to store or send, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Wraps bytes whose header was already parsed successfully.
    pub(crate) fn from_parsed(bytes: Vec<u8>) -> Self {
        Sealed(bytes)
    }

    /// The public header.
    pub fn header(&self) -> Header {
        Header::parse(&self.0).expect("a Sealed value always starts with a valid header")
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// An opened object: the plaintext, wiped from memory when dropped.
pub struct Opened {
    kind: Kind,
    version: u8,
    plaintext: Plaintext,
}

/// Plaintext bytes that are overwritten with zeros when dropped.
///
/// `zeroize` writes byte by byte through volatile stores, which costs a third of the time of
/// opening a 1 MiB object. Keys keep that guarantee; bulk plaintext is wiped with one `memset`
/// kept alive by `black_box`, which the optimiser treats as a use of the zeroed buffer.
struct Plaintext(Vec<u8>);

impl Drop for Plaintext {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

impl Opened {
    /// The kind of object it was.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The format version it was written in.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The plaintext.
    pub fn as_bytes(&self) -> &[u8] {
        &self.plaintext.0
    }
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opened({}, {} bytes)", self.kind, self.plaintext.0.len())
    }
}

impl DataKey {
    /// Seals `plaintext` as an object of `kind` stored under `name`.
    pub fn seal(&self, kind: Kind, name: &str, plaintext: &[u8]) -> Result<Sealed, Error> {
        seal(&self.0, kind, name, plaintext, random_nonce()?)
    }

    /// Opens `bytes`, which must be an object of `kind` stored under `name`.
    pub fn open(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<Opened, Error> {
        open(&self.0, kind, name, bytes)
    }

    /// Seals with a chosen nonce, for test vectors only: reusing a nonce destroys secrecy.
    #[cfg(feature = "test-vectors")]
    pub fn seal_with_nonce(
        &self,
        kind: Kind,
        name: &str,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Sealed, Error> {
        seal(&self.0, kind, name, plaintext, nonce)
    }

    /// Seals as format version 1 did (the same envelope, another version byte), for tests of
    /// how objects written before version 2 are read. Never for real objects.
    #[cfg(feature = "test-vectors")]
    pub fn seal_as_version_1(
        &self,
        kind: Kind,
        name: &str,
        plaintext: &[u8],
    ) -> Result<Sealed, Error> {
        seal_version(&self.0, kind, name, plaintext, random_nonce()?, 1)
    }
}

pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN], Error> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    Ok(nonce)
}

pub(crate) fn seal(
    key: &SubKey,
    kind: Kind,
    name: &str,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Sealed, Error> {
    seal_version(key, kind, name, plaintext, nonce, FORMAT_VERSION)
}

fn seal_version(
    key: &SubKey,
    kind: Kind,
    name: &str,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
    version: u8,
) -> Result<Sealed, Error> {
    if plaintext.len() > kind.max_plaintext() {
        return Err(Error::Oversized {
            what: kind.name(),
            len: plaintext.len(),
            max: kind.max_plaintext(),
        });
    }
    let header = Header {
        version,
        kind,
        key_id: key.id,
        nonce,
    }
    .to_bytes();
    let padded = padded_len(plaintext.len() + 1);
    let mut out = Vec::with_capacity(HEADER_LEN + padded + TAG_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(plaintext);
    out.push(0x80);
    out.resize(HEADER_LEN + padded, 0);
    let tag = cipher(key)
        .encrypt_inout_detached(
            &XNonce::from(nonce),
            &associated_data(&header, name),
            (&mut out[HEADER_LEN..]).into(),
        )
        .expect("XChaCha20-Poly1305 accepts messages up to 256 GiB");
    out.extend_from_slice(&tag);
    Ok(Sealed(out))
}

pub(crate) fn open(key: &SubKey, kind: Kind, name: &str, bytes: &[u8]) -> Result<Opened, Error> {
    let header = Header::parse(bytes)?;
    if header.kind != kind {
        return Err(Error::WrongKind {
            expected: kind,
            found: header.kind,
        });
    }
    if bytes.len() > kind.max_sealed() {
        return Err(Error::Oversized {
            what: kind.name(),
            len: bytes.len(),
            max: kind.max_sealed(),
        });
    }
    if header.key_id != key.id {
        return Err(Error::WrongKey {
            object: header.key_id,
            device: key.id,
        });
    }
    let smallest = HEADER_LEN + padded_len(1) + TAG_LEN;
    if bytes.len() < smallest {
        return Err(Error::Truncated {
            needed: smallest,
            got: bytes.len(),
        });
    }
    let body_len = bytes.len() - HEADER_LEN - TAG_LEN;
    if padded_len(body_len) != body_len {
        return Err(Error::BadLength { len: bytes.len() });
    }
    let (body, tag) = bytes[HEADER_LEN..].split_at(bytes.len() - HEADER_LEN - TAG_LEN);
    let mut plaintext = Plaintext(body.to_vec());
    cipher(key)
        .decrypt_inout_detached(
            &XNonce::from(header.nonce),
            &associated_data(&bytes[..HEADER_LEN], name),
            plaintext.0.as_mut_slice().into(),
            &Tag::try_from(tag).map_err(|_| Error::AuthenticationFailed)?,
        )
        .map_err(|_| Error::AuthenticationFailed)?;
    let end = plaintext
        .0
        .iter()
        .rposition(|&b| b != 0)
        .filter(|&i| plaintext.0[i] == 0x80)
        .ok_or_else(|| Error::Malformed {
            what: kind.name(),
            detail: "padding has no end marker".into(),
        })?;
    plaintext.0.truncate(end);
    Ok(Opened {
        kind,
        version: header.version,
        plaintext,
    })
}

fn cipher(key: &SubKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&key.bytes.into())
}

fn associated_data(header: &[u8], name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + name.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// The padded length of a plaintext of `len` bytes including its end marker.
pub fn padded_len(len: usize) -> usize {
    if len <= SMALL_LIMIT {
        return len.max(1).div_ceil(SMALL_STEP) * SMALL_STEP;
    }
    let exponent = usize::BITS - 1 - len.leading_zeros();
    let exponent_bits = u32::BITS - exponent.leading_zeros();
    let mask = (1usize << (exponent - exponent_bits)) - 1;
    (len + mask) & !mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_buckets() {
        assert_eq!(padded_len(1), 256);
        assert_eq!(padded_len(256), 256);
        assert_eq!(padded_len(257), 512);
        assert_eq!(padded_len(64 * 1024), 64 * 1024);
        assert_eq!(padded_len(64 * 1024 + 1), 67_584);
        assert_eq!(padded_len(1 << 20), 1 << 20);
        assert_eq!(padded_len((1 << 20) + 1), (1 << 20) + (1 << 15));
        for len in [65_537usize, 100_000, 1 << 22, 12_345_678, 256 << 20] {
            let padded = padded_len(len);
            assert!(padded >= len);
            assert!(
                (padded - len) as f64 <= len as f64 * 0.032,
                "{len} -> {padded}"
            );
        }
    }

    #[test]
    fn a_body_without_end_marker_is_malformed() {
        let key = crate::SyncKey::from_bytes([9; 32]).keys().data;
        let sealed = key.seal(Kind::Head, "n", b"x").unwrap();
        let header = Header::parse(sealed.as_bytes()).unwrap();
        let mut forged = sealed.as_bytes()[..HEADER_LEN].to_vec();
        let mut body = vec![0u8; 256];
        let tag = cipher(&key.0)
            .encrypt_inout_detached(
                &XNonce::from(header.nonce),
                &associated_data(&forged, "n"),
                body.as_mut_slice().into(),
            )
            .unwrap();
        forged.extend_from_slice(&body);
        forged.extend_from_slice(&tag);
        assert!(matches!(
            key.open(Kind::Head, "n", &forged),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn kinds_round_trip_through_their_bytes() {
        for byte in 0..=255u8 {
            match Kind::from_byte(byte) {
                Ok(kind) => assert_eq!(kind as u8, byte),
                Err(e) => assert_eq!(e, Error::UnknownKind(byte)),
            }
        }
    }
}
