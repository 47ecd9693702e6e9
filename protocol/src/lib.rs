//! `ferry-protocol` fixes every byte that leaves a Ferry device.
//!
//! It holds the keys and how they are derived ([`keys`], [`recovery`], [`passphrase`]), each
//! device's own signing keys ([`identity`]), the
//! envelope that seals every object and message ([`envelope`]), the objects of the repository
//! and their names ([`objects`], [`names`]), how a new key or new storage takes over from the
//! old ([`generation`]), the hints sent through the relay ([`relay`]), what
//! nearby devices say to each other directly ([`lan`]) and what they ask the device that holds
//! a folder repository ([`held`]), and the exchange that pairs a new
//! device with a one-time code ([`pairing`]).
//! `protocol/SPEC.md` describes the same formats byte by byte for other implementations, and
//! `protocol/tests/vectors/` pins them.
//!
//! Data flows through it like this on the writing device:
//!
//! ```text
//! SyncKey ──keys()──▶ Keys { data, names, relay, lan, id }
//! operations ─▶ Segment ─▶ DataKey::seal_signed(ObjectName::Log{..}, identity) ─▶ Sealed ─▶ storage
//! (device, seq) ─▶ RelayHint ─▶ RelayKey::seal_hint(topic, identity) ─▶ Sealed ─▶ relay
//! ```
//!
//! and back again on a reading device with `open_signed` (then `Claimed::verify` against the
//! writer's registered keys) / `open_hint`, which return a typed
//! [`Error`] for every way the bytes can be wrong and never panic.
//!
//! What it does not do: any I/O, any async, any clock reading. It knows nothing of what an
//! operation means (that is `ferry-core`) nor of where objects are stored (`ferry-store`).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod envelope;
pub mod error;
pub mod generation;
pub mod held;
pub mod hex_id;
pub mod identity;
pub mod keys;
pub mod lan;
pub mod names;
pub mod objects;
pub mod pairing;
pub mod passphrase;
pub mod recovery;
pub mod relay;

pub use envelope::{FORMAT_VERSION, Header, Kind, Opened, Sealed};
pub use error::{Error, RecoveryCodeError};
pub use identity::{Claimed, DeviceKeys, Identity};
pub use keys::{DataKey, KeyId, Keys, LanKey, NamesKey, RelayKey, SyncKey};
pub use names::{BlobId, DeviceId, DeviceTag, ObjectName};
pub use objects::{
    BlobChunk, Cursor, Head, KeyCheck, Payload, Plain, RawOp, RepoHeader, Segment, Signed, Snapshot,
};
pub use passphrase::KdfParams;
pub use recovery::RecoveryCode;
pub use relay::{RelayHint, TopicId};
