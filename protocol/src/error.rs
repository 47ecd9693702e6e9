//! The one error type of the protocol crate.
//!
//! Every way a byte string can fail to be a Ferry object has its own variant, and every message
//! says what happened and what to do about it. No variant ever carries key material or plaintext.

use crate::envelope::Kind;
use crate::keys::KeyId;
use crate::names::DeviceTag;

/// Why bytes could not be opened, decoded or parsed, or why a key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ends before the object does.
    #[error(
        "the object is truncated ({got} bytes, at least {needed} expected): it was cut short in \
         transfer or storage; fetch it again, and if it stays short it is lost and will be \
         quarantined"
    )]
    Truncated {
        /// Bytes required to go on.
        needed: usize,
        /// Bytes present.
        got: usize,
    },

    /// The object's length is not one that padding produces: bytes were cut off or added.
    #[error(
        "the object is {len} bytes, a length Ferry never writes: it was cut short or extended in \
         transfer or storage; fetch it again, and if it stays so it will be quarantined"
    )]
    BadLength {
        /// The length found.
        len: usize,
    },

    /// The input does not start with the Ferry magic bytes.
    #[error(
        "this is not a Ferry object (it does not start with \"FRY\"): something other than Ferry \
         wrote it; remove it from the repository folder"
    )]
    BadMagic,

    /// The object uses a format version this build cannot read.
    #[error(
        "this object uses format version {found}, this build of Ferry reads version {supported}: \
         {}",
        if *found > *supported { "upgrade Ferry on this device" } else { "it is corrupt" }
    )]
    UnsupportedVersion {
        /// Version found in the object.
        found: u8,
        /// The newest version this build reads.
        supported: u8,
    },

    /// The kind byte names no kind this build knows.
    #[error(
        "unknown object kind {0}: it was written by a newer Ferry (upgrade this device) or is corrupt"
    )]
    UnknownKind(u8),

    /// The object is of another kind than the caller expected.
    #[error("expected a {expected} but found a {found}: the object is stored under the wrong name")]
    WrongKind {
        /// What the caller asked for.
        expected: Kind,
        /// What the header says.
        found: Kind,
    },

    /// The object was sealed under another sync key.
    #[error(
        "this repository was written with key {object}, this device has key {device}: join it \
         with its recovery code or passphrase (`ferry join`), or point this device at its own \
         repository"
    )]
    WrongKey {
        /// Key id written in the object.
        object: KeyId,
        /// Key id of this device's sync key.
        device: KeyId,
    },

    /// The authentication tag does not match: the bytes or their name were changed.
    #[error(
        "the object failed authentication: it was tampered with, corrupted, or moved from another \
         name; it is not used"
    )]
    AuthenticationFailed,

    /// The input is larger than any valid object of its kind.
    #[error("the {what} is {len} bytes, more than the {max} allowed; it is not read")]
    Oversized {
        /// What was too large.
        what: &'static str,
        /// Its size in bytes.
        len: usize,
        /// The largest size allowed.
        max: usize,
    },

    /// An object of a kind its writer signs carries no signature (format version 1).
    #[error(
        "the object is not signed: it was written by a Ferry older than format version 2, or by \
         someone who holds the sync key and poses as its device; it is not used"
    )]
    NotSigned,

    /// The signature does not match the keys the object's device registered.
    #[error(
        "the object's signature does not match its device's registered key: someone who holds \
         the sync key wrote it in that device's name (forged); it is not used"
    )]
    BadSignature,

    /// A relay hint sealed with the key but not signed, as Ferry sent hints before they were.
    #[error(
        "an unsigned relay hint: a device runs an older version of Ferry (upgrade it; until \
         then its changes arrive at each poll), or someone holding the sync key sent it; it is \
         ignored"
    )]
    UnsignedHint {
        /// The device tag it names (its word only).
        device: DeviceTag,
    },

    /// Authenticated bytes that do not decode as the expected payload.
    #[error("the {what} is malformed ({detail}): it was written by a faulty or newer Ferry")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// What the decoder reported.
        detail: String,
    },

    /// An object name that is not one of the names Ferry writes.
    #[error("`{name}` is not a Ferry object name: {reason}")]
    BadName {
        /// The offending name (names are public: they hold no secret).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The new key sealed to this device in a generation record does not open with its keys.
    #[error(
        "the new sync key sealed for this device in the generation record does not open with \
         this device's keys: the record was altered, or sealed to keys this device does not \
         have; no key was installed"
    )]
    WrapDoesNotOpen,

    /// The key a generation record hands over is not the key it announces.
    #[error(
        "the generation record hands over key {handed} but announces key {announced}: it was \
         forged; no key was installed"
    )]
    HandedWrongKey {
        /// Key id of the key found in the wrap.
        handed: KeyId,
        /// Key id the record's public part announces.
        announced: KeyId,
    },

    /// A recovery code that cannot be read.
    #[error(transparent)]
    BadRecoveryCode(#[from] RecoveryCodeError),

    /// Passphrase derivation parameters outside the accepted range.
    #[error(
        "the repository's passphrase settings are out of range ({0}): the repository header is \
         corrupt or was written by a newer Ferry"
    )]
    BadKdfParams(&'static str),

    /// The passphrase is not acceptable.
    #[error("the passphrase is empty: choose a passphrase, or use a generated key")]
    EmptyPassphrase,

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed ({0}); nothing was written")]
    Random(String),
}

impl Error {
    /// Whether trying the same thing again can succeed.
    ///
    /// Protocol errors are properties of the bytes, so none is transient except a failure of the
    /// system random number generator.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Random(_))
    }
}

/// Why a recovery code could not be read. Groups are counted from 1, as a person reads them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryCodeError {
    /// Too few or too many characters.
    #[error(
        "the recovery code has {found} characters, a recovery code has {expected} (not counting \
         spaces and dashes): check for a missing or extra group"
    )]
    Length {
        /// Characters expected.
        expected: usize,
        /// Characters found.
        found: usize,
    },

    /// A character outside the recovery code alphabet.
    #[error(
        "group {group} of the recovery code has `{character}`, which never appears in a recovery \
         code (the letters I, L, O and U are not used): check that group"
    )]
    Character {
        /// 1-based group number.
        group: usize,
        /// The character.
        character: char,
    },

    /// A group whose check character does not match.
    #[error(
        "group {group} of the recovery code has a typo (its check character does not match): \
         compare that group with the saved code"
    )]
    Checksum {
        /// 1-based group number.
        group: usize,
    },

    /// Every group checks out but the code is not of a format this build reads.
    #[error(
        "this recovery code is of a format this build of Ferry does not read: upgrade Ferry, or \
         check that it is a Ferry recovery code"
    )]
    UnknownFormat,
}
