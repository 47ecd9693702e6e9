//! The repository's objects: what each one carries, and how it is encoded.
//!
//! Every payload is a serde struct encoded with postcard, padded and sealed in the envelope
//! under the [`Kind`] that [`Payload::KIND`] names. Decoding is strict: the bytes must be exactly
//! one value with nothing left over. A change to any of these structs is a format change: it
//! bumps [`FORMAT_VERSION`](crate::envelope::FORMAT_VERSION) and adds new test vectors.
//!
//! The repository header is the one public object: it is framed like the envelope (magic,
//! version, kind) but not encrypted, because a device must read its key id and passphrase
//! parameters before it has a key. Its sealed key-check binds those public fields to the key.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::envelope::{self, Kind, NONCE_LEN, Sealed};
use crate::error::Error;
use crate::identity::{self, Claimed, Identity};
use crate::keys::{DataKey, KeyId, Keys, fill_random};
use crate::names::{BlobId, DeviceId, ObjectName};
use crate::passphrase::KdfParams;

/// A payload type sealed under one [`Kind`].
pub trait Payload: Serialize + DeserializeOwned {
    /// The kind written in the envelope.
    const KIND: Kind;

    /// The postcard encoding.
    fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encodes every Ferry payload")
    }

    /// Decodes exactly one value from `bytes`.
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        decode_exact(Self::KIND, bytes)
    }
}

pub(crate) fn decode_exact<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> Result<T, Error> {
    let malformed = |detail: String| Error::Malformed {
        what: kind.name(),
        detail,
    };
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} unexpected trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

/// A payload sealed with the sync key alone: whoever holds the key may have written it. Blob
/// chunks are named by a keyed hash of their content, and the key check is part of the header.
pub trait Plain: Payload {}

/// A payload its writer signs with its identity (segments, heads and snapshots): it names its
/// device, and readers check the signature against that device's registered keys.
pub trait Signed: Payload {
    /// The device that claims to have written it.
    fn writer(&self) -> DeviceId;
}

impl DataKey {
    /// Seals a payload stored under `name`.
    pub fn seal_object<T: Plain>(&self, name: &ObjectName, value: &T) -> Result<Sealed, Error> {
        check_name(name, T::KIND)?;
        self.seal(T::KIND, &name.to_string(), &value.encode())
    }

    /// Opens and decodes the payload stored under `name`.
    pub fn open_object<T: Plain>(&self, name: &ObjectName, bytes: &[u8]) -> Result<T, Error> {
        check_name(name, T::KIND)?;
        let opened = self.open(T::KIND, &name.to_string(), bytes)?;
        T::decode(opened.as_bytes())
    }

    /// Signs a payload with `identity` and seals it with its signature, to be stored under
    /// `name`.
    pub fn seal_signed<T: Signed>(
        &self,
        name: &ObjectName,
        value: &T,
        identity: &Identity,
    ) -> Result<Sealed, Error> {
        self.seal_signed_with(name, value, identity, envelope::random_nonce()?)
    }

    /// Opens the payload stored under `name`. It is not yet trusted: check who wrote it with
    /// [`Claimed::verify`] against the keys of [`Signed::writer`].
    pub fn open_signed<T: Signed>(
        &self,
        name: &ObjectName,
        bytes: &[u8],
    ) -> Result<Claimed<T>, Error> {
        check_name(name, T::KIND)?;
        let name = name.to_string();
        let opened = self.open(T::KIND, &name, bytes)?;
        let plaintext = opened.as_bytes();
        if opened.version() == 1 {
            return Ok(Claimed::unsigned(T::decode(plaintext)?));
        }
        identity::claimed(T::KIND, self.0.id, &name, plaintext, T::decode)
    }

    fn seal_signed_with<T: Signed>(
        &self,
        name: &ObjectName,
        value: &T,
        identity: &Identity,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Sealed, Error> {
        check_name(name, T::KIND)?;
        let name = name.to_string();
        let plaintext = identity::sign_payload(identity, self.0.id, &name, value.encode());
        envelope::seal(&self.0, T::KIND, &name, &plaintext, nonce)
    }

    /// Seals a payload with a chosen nonce, for test vectors only.
    #[cfg(feature = "test-vectors")]
    pub fn seal_object_with_nonce<T: Plain>(
        &self,
        name: &ObjectName,
        value: &T,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Sealed, Error> {
        check_name(name, T::KIND)?;
        self.seal_with_nonce(T::KIND, &name.to_string(), &value.encode(), nonce)
    }

    /// Signs and seals a payload with a chosen nonce, for test vectors only.
    #[cfg(feature = "test-vectors")]
    pub fn seal_signed_with_nonce<T: Signed>(
        &self,
        name: &ObjectName,
        value: &T,
        identity: &Identity,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Sealed, Error> {
        self.seal_signed_with(name, value, identity, nonce)
    }
}

fn check_name(name: &ObjectName, kind: Kind) -> Result<(), Error> {
    if name.kind() == kind {
        Ok(())
    } else {
        Err(Error::WrongKind {
            expected: name.kind(),
            found: kind,
        })
    }
}

/// One operation of the replicated state, encoded by `ferry-core`. The protocol carries it
/// opaquely, so that an operation this build does not understand can be reported on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawOp(#[serde(with = "serde_bytes")] pub Vec<u8>);

/// `log/<device>/<seq>`: a batch of one device's operations, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The writer.
    pub device: DeviceId,
    /// This segment's number: 1 for a device's first, then one more each time.
    pub seq: u64,
    /// The writer's counter of the first operation here (1 for its very first operation);
    /// the others follow without gaps.
    pub first_op: u64,
    /// The operations.
    pub ops: Vec<RawOp>,
}

impl Payload for Segment {
    const KIND: Kind = Kind::Segment;
}

impl Signed for Segment {
    fn writer(&self) -> DeviceId {
        self.device
    }
}

/// `head/<device>/<seq>`: where a device's log stands. Readers take the highest per device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The writer.
    pub device: DeviceId,
    /// The writer's latest segment number (0 before its first segment).
    pub seq: u64,
    /// The writer's operation counter at the end of that segment.
    pub ops: u64,
    /// The oldest segment still stored: older ones are covered by the snapshot.
    pub first_seq: u64,
    /// The sequence number of the writer's newest snapshot, if any.
    pub snapshot: Option<u64>,
}

impl Payload for Head {
    const KIND: Kind = Kind::Head;
}

impl Signed for Head {
    fn writer(&self) -> DeviceId {
        self.device
    }
}

/// How far a snapshot has seen one device's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The device.
    pub device: DeviceId,
    /// Its last segment included.
    pub seq: u64,
    /// Its operation counter at the end of that segment.
    pub ops: u64,
}

/// `snap/<device>/<seq>`: the whole merged state, and which operations it includes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The writer.
    pub device: DeviceId,
    /// The writer's latest segment number included.
    pub seq: u64,
    /// For every device whose operations are included, how far.
    pub version_vector: Vec<Cursor>,
    /// The state, encoded by `ferry-core`.
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
}

impl Payload for Snapshot {
    const KIND: Kind = Kind::Snapshot;
}

impl Signed for Snapshot {
    fn writer(&self) -> DeviceId {
        self.device
    }
}

/// `blob/<blob>/<chunk>`: one piece of a large payload (an image, a small file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobChunk {
    /// The blob this chunk belongs to.
    pub blob: BlobId,
    /// This chunk's index, from 0.
    pub index: u32,
    /// How many chunks the blob has.
    pub count: u32,
    /// The blob's whole length in bytes.
    pub total_len: u64,
    /// This chunk's bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl BlobChunk {
    /// Largest chunk of data: 4 MiB.
    pub const MAX_DATA: usize = 4 * 1024 * 1024;
}

impl Payload for BlobChunk {
    const KIND: Kind = Kind::BlobChunk;
}

impl Plain for BlobChunk {}

/// The plaintext of the key check: proof, for a device that holds a key, that it is this
/// repository's key and that the public header fields are the ones written with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCheck {
    /// The repository's id, repeated from the public fields.
    pub repo_id: [u8; 16],
}

impl Payload for KeyCheck {
    const KIND: Kind = Kind::KeyCheck;
}

impl Plain for KeyCheck {}

/// `repo`: the public repository header, written once by `init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoHeader {
    /// Random id of this repository.
    pub repo_id: [u8; 16],
    /// The key id of the repository's sync key.
    pub key_id: KeyId,
    /// Passphrase parameters, when the key is derived from a passphrase.
    pub kdf: Option<KdfParams>,
    /// The sealed [`KeyCheck`].
    pub key_check: Sealed,
}

/// The fields of the header that are public and bound into the key check.
#[derive(Serialize, Deserialize)]
struct PublicFields {
    repo_id: [u8; 16],
    key_id: KeyId,
    kdf: Option<KdfParams>,
}

/// The wire form of the header body.
#[derive(Serialize, Deserialize)]
struct HeaderBody {
    public: PublicFields,
    #[serde(with = "serde_bytes")]
    key_check: Vec<u8>,
}

impl RepoHeader {
    /// The header of a new repository sealed with `keys`; `kdf` when the key came from a
    /// passphrase.
    pub fn create(keys: &Keys, kdf: Option<KdfParams>) -> Result<RepoHeader, Error> {
        let mut repo_id = [0u8; 16];
        fill_random(&mut repo_id)?;
        Self::create_with(keys, kdf, repo_id, envelope::random_nonce()?)
    }

    /// The header of a later generation of the repository `repo_id` (§11.1 of the
    /// specification): the same id, sealed with the new generation's keys.
    pub fn create_for(
        keys: &Keys,
        kdf: Option<KdfParams>,
        repo_id: [u8; 16],
    ) -> Result<RepoHeader, Error> {
        Self::create_with(keys, kdf, repo_id, envelope::random_nonce()?)
    }

    /// [`create`](Self::create) with a chosen id and nonce, for test vectors only.
    #[cfg(feature = "test-vectors")]
    pub fn create_with_nonce(
        keys: &Keys,
        kdf: Option<KdfParams>,
        repo_id: [u8; 16],
        nonce: [u8; NONCE_LEN],
    ) -> Result<RepoHeader, Error> {
        Self::create_with(keys, kdf, repo_id, nonce)
    }

    fn create_with(
        keys: &Keys,
        kdf: Option<KdfParams>,
        repo_id: [u8; 16],
        nonce: [u8; NONCE_LEN],
    ) -> Result<RepoHeader, Error> {
        if let Some(params) = &kdf {
            params.validate()?;
        }
        let public = PublicFields {
            repo_id,
            key_id: keys.id,
            kdf,
        };
        let key_check = envelope::seal(
            &keys.data.0,
            Kind::KeyCheck,
            &key_check_name(&public),
            &KeyCheck { repo_id }.encode(),
            nonce,
        )?;
        Ok(RepoHeader {
            repo_id,
            key_id: keys.id,
            kdf,
            key_check,
        })
    }

    /// The bytes stored as `repo`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = HeaderBody {
            public: self.public(),
            key_check: self.key_check.as_bytes().to_vec(),
        };
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&envelope::MAGIC);
        out.push(envelope::FORMAT_VERSION);
        out.push(Kind::RepoHeader as u8);
        out.extend_from_slice(&postcard::to_allocvec(&body).expect("postcard encodes the header"));
        out
    }

    /// Reads a stored header. This checks its form only; [`verify`](Self::verify) checks it
    /// against a key.
    pub fn from_bytes(bytes: &[u8]) -> Result<RepoHeader, Error> {
        envelope::check_prefix(bytes)?;
        if bytes.len() < 5 {
            return Err(Error::Truncated {
                needed: 5,
                got: bytes.len(),
            });
        }
        let kind = Kind::from_byte(bytes[4])?;
        if kind != Kind::RepoHeader {
            return Err(Error::WrongKind {
                expected: Kind::RepoHeader,
                found: kind,
            });
        }
        if bytes.len() > Kind::RepoHeader.max_sealed() {
            return Err(Error::Oversized {
                what: "repository header",
                len: bytes.len(),
                max: Kind::RepoHeader.max_sealed(),
            });
        }
        let body: HeaderBody = decode_exact(Kind::RepoHeader, &bytes[5..])?;
        if let Some(params) = &body.public.kdf {
            params.validate()?;
        }
        let check = envelope::Header::parse(&body.key_check)?;
        if check.kind != Kind::KeyCheck {
            return Err(Error::WrongKind {
                expected: Kind::KeyCheck,
                found: check.kind,
            });
        }
        Ok(RepoHeader {
            repo_id: body.public.repo_id,
            key_id: body.public.key_id,
            kdf: body.public.kdf,
            key_check: Sealed::from_parsed(body.key_check),
        })
    }

    /// Checks that `keys` is this repository's key, and that the public fields are the ones
    /// written with it. Call this before reading or writing anything else.
    pub fn verify(&self, keys: &Keys) -> Result<(), Error> {
        if self.key_id != keys.id {
            return Err(Error::WrongKey {
                object: self.key_id,
                device: keys.id,
            });
        }
        let opened = envelope::open(
            &keys.data.0,
            Kind::KeyCheck,
            &key_check_name(&self.public()),
            self.key_check.as_bytes(),
        )?;
        let check = KeyCheck::decode(opened.as_bytes())?;
        if check.repo_id != self.repo_id {
            return Err(Error::AuthenticationFailed);
        }
        Ok(())
    }

    fn public(&self) -> PublicFields {
        PublicFields {
            repo_id: self.repo_id,
            key_id: self.key_id,
            kdf: self.kdf,
        }
    }
}

/// The logical name of the key check: `repo#` and the hex of the encoded public fields.
fn key_check_name(public: &PublicFields) -> String {
    let encoded = postcard::to_allocvec(public).expect("postcard encodes the public fields");
    format!("repo#{}", hex::encode(encoded))
}
