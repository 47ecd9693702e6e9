//! Generations of a repository: a new sync key, and perhaps new storage, taking over from the
//! old one, so that a lost device is shut out and every remaining device follows by itself.
//!
//! A repository starts as generation 1 under `ferry/v1/`. Rotating the key (to remove a device,
//! or after a recovery code leaked) or moving the repository to other storage makes generation
//! `n + 1` under `ferry/g<n+1>-<key id>/` ([`root`]), with its own header; its creator then
//! writes its candidate into the old generation, once, under `head/next/<its device tag>`
//! (listed with the heads, so every device's next poll sees it). Which candidate devices
//! follow when there are several is SPEC §11.3's rule; this module fixes the bytes:
//!
//! ```text
//! head/next/<tag> = "FRY" ‖ 0x02 ‖ 0x09 ‖ postcard(NextBody)  public frame, as `repo` is
//! NextBody  = public: Successor ‖ record: bytes               a sealed Rotation (kind 10)
//! Successor = generation: u32 ‖ key_id: [8] ‖ moved: bool
//! Rotation  = creator: [16] ‖ time_ms: u64 ‖ revoked: seq of [16] ‖ wraps: seq of Wrap
//! Wrap      = device: [16] ‖ enc: [32] ‖ sealed: bytes        HPKE to the device's X25519 key
//! Handover  = key: [32] ‖ storage: Option<Storage>            what a wrap seals
//! ```
//!
//! The rotation record is sealed with the **old** data key under the logical name
//! `head/next/<tag>#<hex of postcard(Successor)>` (binding the name and the public part to it,
//! as the header's key check does) and signed by its creator like a segment. A device that was
//! removed still holds the old key, so it can read the record, but not open a wrap sealed to
//! another device. Each wrap is HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256 and ChaCha20-Poly1305, with
//!
//! ```text
//! info = "ferry/v2/wrap" ‖ 0x00 ‖ old key id [8] ‖ generation u32 BE ‖ new key id [8]
//!        ‖ device id [16] ‖ creator id [16]
//! aad  = (empty)
//! ```
//!
//! so a wrap cannot be moved to another device, generation, repository or creator. The new
//! generation holds `prev` ([`Previous`], kind 11): the old key sealed under the new one and
//! signed, so a device that only ever held the new key can still read what has not been moved.

use std::fmt;

use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::envelope::{self, Kind, NONCE_LEN, Sealed};
use crate::error::Error;
use crate::identity::{self, Claimed, DeviceKeys, Identity};
use crate::keys::{KEY_LEN, KeyId, Keys, SyncKey};
use crate::names::{DeviceId, DeviceTag, ObjectName, ROOT};
use crate::objects::{Payload, Signed, decode_exact};
use crate::pairing::Credentials;

/// The most devices one rotation hands the new key to, or removes.
pub const MAX_DEVICES: usize = 256;

/// Largest sealed wrap: a handover of a store URL and credentials within 1 KiB.
const MAX_WRAP: usize = 1024 + 16;

/// The most generations a repository goes through: a chain longer than this was planted.
pub const MAX_GENERATION: u32 = 4096;

const WRAP_LABEL: &[u8] = b"ferry/v2/wrap";

type WrapKem = hpke::kem::X25519HkdfSha256;
type WrapKdf = hpke::kdf::HkdfSha256;
type WrapAead = hpke::aead::ChaCha20Poly1305;

/// The folder, below the user's prefix, of generation `generation` whose key has `key_id`:
/// `ferry/v1/` for the first, `ferry/g<n>-<key id>/` after it.
pub fn root(generation: u32, key_id: KeyId) -> String {
    if generation <= 1 {
        ROOT.to_string()
    } else {
        format!("ferry/g{generation}-{key_id}/")
    }
}

/// Where the folders of generations after the first begin: `ferry/g`.
pub const LATER_PREFIX: &str = "ferry/g";

/// The generation whose folder an object name below the user's prefix is in, and that folder,
/// when it is a later generation's (`ferry/g<n>-<key id>/…`, as [`root`] makes it).
pub fn later_root(name: &str) -> Option<(u32, KeyId, &str)> {
    let rest = name.strip_prefix(LATER_PREFIX)?;
    let (folder, _) = rest.split_once('/')?;
    let (number, key_id) = folder.split_once('-')?;
    let generation: u32 = number.parse().ok()?;
    let key_id: KeyId = key_id.parse().ok()?;
    let root = &name[..LATER_PREFIX.len() + folder.len() + 1];
    (generation > 1 && number == generation.to_string() && root == self::root(generation, key_id))
        .then_some((generation, key_id, root))
}

/// The public part of `head/next`: which generation follows, under which key id, and whether
/// it is in other storage. Public so that a device joining with the new recovery code or
/// passphrase finds the new generation (the key id names its folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Successor {
    /// The new generation's number: the old one's plus one.
    pub generation: u32,
    /// The new generation's key id.
    pub key_id: KeyId,
    /// Whether the new generation is in other storage (only the wraps say where).
    pub moved: bool,
}

impl Successor {
    /// The new generation's folder in its storage.
    pub fn root(&self) -> String {
        root(self.generation, self.key_id)
    }
}

/// Where the new generation is, for a move to other storage or to new credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// The store URL (as `ferry config` takes it).
    pub url: String,
    /// The credentials it needs.
    pub credentials: Credentials,
}

impl fmt::Debug for Storage {
    /// The URL's scheme only: a user name, a bucket or a host says more than a log needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.url.split_once("://").map_or("?", |(scheme, _)| scheme);
        f.debug_struct("Storage")
            .field("url", &format_args!("{scheme}://…"))
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.url.zeroize();
        self.credentials.zeroize();
    }
}

/// The new key sealed to one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrap {
    /// The device it is sealed to.
    pub device: DeviceId,
    /// The HPKE encapsulated key.
    pub enc: [u8; 32],
    /// The HPKE ciphertext of the [`Handover`].
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// The signed content of a rotation: who made the new generation, when, whom it removes, and
/// the new key for everyone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The device that made it and signed it.
    pub creator: DeviceId,
    /// When, in Unix milliseconds by the creator's clock.
    pub time_ms: u64,
    /// The devices removed: they get no wrap, in increasing order.
    pub revoked: Vec<DeviceId>,
    /// One wrap per remaining device (the creator's included), in increasing device order.
    pub wraps: Vec<Wrap>,
}

impl Payload for Rotation {
    const KIND: Kind = Kind::Rotation;

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let rotation: Rotation = decode_exact(Kind::Rotation, bytes)?;
        rotation.check()?;
        Ok(rotation)
    }
}

impl Signed for Rotation {
    fn writer(&self) -> DeviceId {
        self.creator
    }
}

impl Rotation {
    /// The wrap sealed to `device`, if it is one of the remaining devices.
    pub fn wrap_for(&self, device: &DeviceId) -> Option<&Wrap> {
        self.wraps
            .binary_search_by(|wrap| wrap.device.cmp(device))
            .ok()
            .map(|at| &self.wraps[at])
    }

    /// Whether the rotation removes `device`.
    pub fn revokes(&self, device: &DeviceId) -> bool {
        self.revoked.binary_search(device).is_ok()
    }

    /// The form every writer keeps and every reader checks: sorted, unique, within bounds, the
    /// creator among the remaining devices, nobody both removed and remaining.
    fn check(&self) -> Result<(), Error> {
        let malformed = |detail: &str| {
            Err(Error::Malformed {
                what: Kind::Rotation.name(),
                detail: detail.into(),
            })
        };
        if self.wraps.len() > MAX_DEVICES || self.revoked.len() > MAX_DEVICES {
            return malformed("more devices than a repository holds");
        }
        if !self.revoked.windows(2).all(|pair| pair[0] < pair[1]) {
            return malformed("the removed devices are not in increasing order");
        }
        if !self
            .wraps
            .windows(2)
            .all(|pair| pair[0].device < pair[1].device)
        {
            return malformed("the wraps are not in increasing device order");
        }
        if self.wraps.iter().any(|wrap| self.revokes(&wrap.device)) {
            return malformed("a removed device is given the new key");
        }
        if self.wrap_for(&self.creator).is_none() {
            return malformed("its creator is not among the remaining devices");
        }
        if self.wraps.iter().any(|wrap| wrap.sealed.len() > MAX_WRAP) {
            return malformed("a wrap is larger than a handover can be");
        }
        Ok(())
    }
}

/// What a wrap seals: the new sync key, and the new storage when it changes. Both are wiped
/// when it is dropped.
pub struct Handover {
    /// The new generation's sync key.
    pub key: SyncKey,
    /// Where the new generation is, when it is not in this store or needs new credentials.
    pub storage: Option<Storage>,
}

impl fmt::Debug for Handover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handover")
            .field("key", &self.key)
            .field("storage", &self.storage)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct HandoverWire {
    key: [u8; KEY_LEN],
    storage: Option<Storage>,
}

impl Drop for HandoverWire {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Wrap {
    /// Opens the wrap with this device's identity: the handover of the generation `successor`
    /// announces, made by the generation whose key id is `old`. The handed key must be the
    /// announced one.
    pub fn open(
        &self,
        identity: &Identity,
        old: KeyId,
        successor: &Successor,
        creator: DeviceId,
    ) -> Result<Handover, Error> {
        let secret = identity.sealing_secret();
        let secret = <WrapKem as hpke::Kem>::PrivateKey::from_bytes(secret.as_slice())
            .map_err(|_| Error::WrapDoesNotOpen)?;
        let enc = <WrapKem as hpke::Kem>::EncappedKey::from_bytes(&self.enc)
            .map_err(|_| Error::WrapDoesNotOpen)?;
        let info = wrap_info(old, successor, &self.device, &creator);
        let plaintext = Zeroizing::new(
            hpke::single_shot_open::<WrapAead, WrapKdf, WrapKem>(
                &OpModeR::Base,
                &secret,
                &enc,
                &info,
                &self.sealed,
                &[],
            )
            .map_err(|_| Error::WrapDoesNotOpen)?,
        );
        let mut wire: HandoverWire = decode_exact(Kind::Rotation, &plaintext)?;
        let key = SyncKey::from_bytes(wire.key);
        if key.key_id() != successor.key_id {
            return Err(Error::HandedWrongKey {
                handed: key.key_id(),
                announced: successor.key_id,
            });
        }
        let storage = wire.storage.take();
        if successor.moved && storage.is_none() {
            return Err(Error::Malformed {
                what: Kind::Rotation.name(),
                detail: "it moves the repository without saying where to".into(),
            });
        }
        Ok(Handover { key, storage })
    }
}

/// The HPKE `info` of a wrap: it binds the wrap to one repository key, generation, device and
/// creator.
pub fn wrap_info(
    old: KeyId,
    successor: &Successor,
    device: &DeviceId,
    creator: &DeviceId,
) -> Vec<u8> {
    let mut info = Vec::with_capacity(WRAP_LABEL.len() + 1 + 8 + 4 + 8 + 16 + 16);
    info.extend_from_slice(WRAP_LABEL);
    info.push(0);
    info.extend_from_slice(&old.0);
    info.extend_from_slice(&successor.generation.to_be_bytes());
    info.extend_from_slice(&successor.key_id.0);
    info.extend_from_slice(&device.0);
    info.extend_from_slice(&creator.0);
    info
}

/// What a device that makes a new generation decides.
pub struct Plan<'a> {
    /// The new generation.
    pub successor: Successor,
    /// Its sync key (its key id is `successor.key_id`).
    pub key: &'a SyncKey,
    /// Where it is, when that changes (a move, or new credentials).
    pub storage: Option<Storage>,
    /// The device that makes it.
    pub creator: DeviceId,
    /// Now, in Unix milliseconds.
    pub time_ms: u64,
    /// The devices removed.
    pub revoked: Vec<DeviceId>,
    /// The devices that get the new key, with their registered keys (the creator included).
    pub recipients: Vec<(DeviceId, DeviceKeys)>,
}

/// A candidate as stored under `head/next/<creator>`: the public [`Successor`] and the
/// sealed, signed [`Rotation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// The tag of the device that made it: its name.
    pub creator: DeviceTag,
    /// The public part.
    pub successor: Successor,
    record: Sealed,
}

#[derive(Serialize, Deserialize)]
struct NextBody {
    public: Successor,
    #[serde(with = "serde_bytes")]
    record: Vec<u8>,
}

impl Next {
    /// Seals and signs the record of `plan`, made in the generation whose keys are `old`.
    pub fn create(old: &Keys, creator: &Identity, plan: &Plan<'_>) -> Result<Next, Error> {
        let mut rng = hpke::rand_core::UnwrapErr(getrandom::SysRng);
        Self::create_with(old, creator, plan, envelope::random_nonce()?, &mut rng)
    }

    /// [`create`](Self::create) with a chosen nonce and HPKE randomness, for test vectors only.
    #[cfg(feature = "test-vectors")]
    pub fn create_with_randomness(
        old: &Keys,
        creator: &Identity,
        plan: &Plan<'_>,
        nonce: [u8; NONCE_LEN],
        randomness: &mut impl hpke::rand_core::CryptoRng,
    ) -> Result<Next, Error> {
        Self::create_with(old, creator, plan, nonce, randomness)
    }

    fn create_with(
        old: &Keys,
        creator: &Identity,
        plan: &Plan<'_>,
        nonce: [u8; NONCE_LEN],
        randomness: &mut impl hpke::rand_core::CryptoRng,
    ) -> Result<Next, Error> {
        let successor = plan.successor;
        let refuse = |detail: String| Error::Malformed {
            what: Kind::Rotation.name(),
            detail,
        };
        if plan.key.key_id() != successor.key_id
            || successor.key_id == old.id
            || !(2..=MAX_GENERATION).contains(&successor.generation)
            || (successor.moved && plan.storage.is_none())
        {
            return Err(refuse(
                "the plan's key or generation does not fit its successor (a new generation \
                 needs a new key, and a move needs a place)"
                    .into(),
            ));
        }
        let wire = HandoverWire {
            key: *plan.key.expose_bytes(),
            storage: plan.storage.clone(),
        };
        let handover = Zeroizing::new(postcard::to_allocvec(&wire).expect("postcard encodes"));
        let mut recipients = plan.recipients.clone();
        recipients.sort_by_key(|(device, _)| *device);
        let mut wraps = Vec::with_capacity(recipients.len());
        for (device, keys) in &recipients {
            let public = <WrapKem as hpke::Kem>::PublicKey::from_bytes(&keys.seal)
                .map_err(|_| refuse(format!("device {device}'s sealing key is not usable")))?;
            let (enc, sealed) = hpke::single_shot_seal_with_rng::<WrapAead, WrapKdf, WrapKem>(
                &OpModeS::Base,
                &public,
                &wrap_info(old.id, &successor, device, &plan.creator),
                &handover,
                &[],
                randomness,
            )
            .map_err(|_| refuse(format!("device {device}'s sealing key is not usable")))?;
            wraps.push(Wrap {
                device: *device,
                enc: enc.to_bytes().into(),
                sealed,
            });
        }
        let mut revoked = plan.revoked.clone();
        revoked.sort();
        revoked.dedup();
        let rotation = Rotation {
            creator: plan.creator,
            time_ms: plan.time_ms,
            revoked,
            wraps,
        };
        rotation.check()?;
        let tag = old.names.device_tag(&plan.creator);
        let name = record_name(tag, &successor);
        let plaintext = identity::sign_payload(creator, old.id, &name, rotation.encode());
        if plaintext.len() > Kind::Rotation.max_plaintext() {
            return Err(refuse(format!(
                "it is {} bytes, more than a rotation record may be",
                plaintext.len()
            )));
        }
        let record = envelope::seal(&old.data.0, Kind::Rotation, &name, &plaintext, nonce)?;
        Ok(Next {
            creator: tag,
            successor,
            record,
        })
    }

    /// Its name below the generation's root.
    pub fn name(&self) -> ObjectName {
        ObjectName::Next {
            creator: self.creator,
        }
    }

    /// The bytes stored under [`name`](Self::name).
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = NextBody {
            public: self.successor,
            record: self.record.as_bytes().to_vec(),
        };
        let mut out = Vec::with_capacity(64 + self.record.as_bytes().len());
        out.extend_from_slice(&envelope::MAGIC);
        out.push(envelope::FORMAT_VERSION);
        out.push(Kind::Successor as u8);
        out.extend_from_slice(&postcard::to_allocvec(&body).expect("postcard encodes the record"));
        out
    }

    /// Reads the candidate stored under `head/next/<creator>`: its form only.
    /// [`open`](Self::open) checks it against the old key.
    pub fn from_bytes(creator: DeviceTag, bytes: &[u8]) -> Result<Next, Error> {
        envelope::check_prefix(bytes)?;
        if bytes.len() < 5 {
            return Err(Error::Truncated {
                needed: 5,
                got: bytes.len(),
            });
        }
        if bytes[3] != envelope::FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: bytes[3],
                supported: envelope::FORMAT_VERSION,
            });
        }
        let kind = Kind::from_byte(bytes[4])?;
        if kind != Kind::Successor {
            return Err(Error::WrongKind {
                expected: Kind::Successor,
                found: kind,
            });
        }
        if bytes.len() > Kind::Successor.max_sealed() {
            return Err(Error::Oversized {
                what: Kind::Successor.name(),
                len: bytes.len(),
                max: Kind::Successor.max_sealed(),
            });
        }
        let body: NextBody = decode_exact(Kind::Successor, &bytes[5..])?;
        if !(2..=MAX_GENERATION).contains(&body.public.generation) {
            return Err(Error::Malformed {
                what: Kind::Successor.name(),
                detail: format!("it announces generation {}", body.public.generation),
            });
        }
        let record = envelope::Header::parse(&body.record)?;
        if record.version != envelope::FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: record.version,
                supported: envelope::FORMAT_VERSION,
            });
        }
        if record.kind != Kind::Rotation {
            return Err(Error::WrongKind {
                expected: Kind::Rotation,
                found: record.kind,
            });
        }
        Ok(Next {
            creator,
            successor: body.public,
            record: Sealed::from_parsed(body.record),
        })
    }

    /// Opens the rotation record with the old generation's keys. It is not yet trusted: check
    /// its creator with [`Claimed::verify`] against the roster's keys for
    /// [`Rotation::creator`], and that the creator is a member the rotation does not remove.
    pub fn open(&self, old: &Keys) -> Result<Claimed<Rotation>, Error> {
        if self.successor.key_id == old.id {
            return Err(Error::Malformed {
                what: Kind::Successor.name(),
                detail: "it announces the key it is sealed with as the new one".into(),
            });
        }
        let name = record_name(self.creator, &self.successor);
        let opened = envelope::open(&old.data.0, Kind::Rotation, &name, self.record.as_bytes())?;
        let claimed = identity::claimed(
            Kind::Rotation,
            old.id,
            &name,
            opened.as_bytes(),
            Rotation::decode,
        )?;
        if old.names.device_tag(&claimed.value.creator) != self.creator {
            return Err(Error::Malformed {
                what: Kind::Rotation.name(),
                detail: "it is stored under another device's name than its creator's".into(),
            });
        }
        Ok(claimed)
    }
}

/// The logical name the rotation record is sealed and signed under: the candidate's name, `#`
/// and the hex of the encoded public part.
fn record_name(creator: DeviceTag, successor: &Successor) -> String {
    let public = postcard::to_allocvec(successor).expect("postcard encodes the successor");
    format!("{}#{}", ObjectName::Next { creator }, hex::encode(public))
}

/// `prev`: the previous generation's sync key, sealed under the new one and signed by the
/// device that made the new generation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    /// The device that made the generation.
    pub writer: DeviceId,
    /// The previous generation's number.
    pub generation: u32,
    /// The previous generation's sync key.
    pub key: [u8; KEY_LEN],
}

impl Previous {
    /// The previous generation's sync key.
    pub fn sync_key(&self) -> SyncKey {
        SyncKey::from_bytes(self.key)
    }
}

impl Drop for Previous {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for Previous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Previous")
            .field("writer", &self.writer)
            .field("generation", &self.generation)
            .field("key", &self.sync_key().key_id())
            .finish()
    }
}

impl Payload for Previous {
    const KIND: Kind = Kind::Previous;
}

impl Signed for Previous {
    fn writer(&self) -> DeviceId {
        self.writer
    }
}

#[cfg(test)]
mod tests;
