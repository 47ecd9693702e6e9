//! Object names in the repository, and the identifiers they are made of.
//!
//! Everything lives under `<user prefix>/ferry/v1/`. Below that root:
//!
//! ```text
//! repo                        public repository header, written once
//! log/<device>/<seq>          segment: a sealed batch of one device's operations
//! head/<device>/<seq>         sealed head: the device's latest segment and snapshot
//! snap/<device>/<seq>         sealed snapshot of the merged state
//! blob/<blob>/<chunk>         sealed chunk of a large payload
//! head/next/<device>          a device's candidate for the generation after this one
//! prev                        the previous generation's key, sealed (from generation 2 on)
//! ```
//!
//! Generation 1 is `ferry/v1/`; a later generation `n` with key id `k` lives beside it under
//! `ferry/g<n>-<k hex>/` with the same layout ([`crate::generation::root`]).
//!
//! `<device>` is a [`DeviceTag`]: 32 lowercase hex digits of HMAC-SHA256(names key,
//! "device" ‖ 0x00 ‖ device id), truncated to 16 bytes, so the storage cannot link names to
//! devices. `<seq>` is 16 lowercase hex digits, so names sort in sequence order. `<blob>` is a
//! [`BlobId`]: 64 hex digits of HMAC-SHA256(names key, "blob" ‖ 0x00 ‖ content). `<chunk>` is 8 hex
//! digits. (Clip ids, HMAC(names key, "clip" ‖ 0x00 ‖ encoded content) truncated to 16 bytes, are
//! made with the same key but never appear in names.) The name below the root (for example `log/…/…`) is the logical name bound into the
//! envelope's associated data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::envelope::Kind;
use crate::error::Error;
use crate::hex_id::parse_hex;
use crate::keys::{NamesKey, fill_random};

/// The folder, below the user's prefix, that holds a version 1 repository.
pub const ROOT: &str = "ferry/v1/";
/// Prefix of the segment names, below [`ROOT`].
pub const LOG_PREFIX: &str = "log/";
/// Prefix of the head names, below [`ROOT`]: a poll lists this.
pub const HEAD_PREFIX: &str = "head/";
/// Prefix of the snapshot names, below [`ROOT`].
pub const SNAP_PREFIX: &str = "snap/";
/// Prefix of the blob names, below [`ROOT`].
pub const BLOB_PREFIX: &str = "blob/";
/// Prefix of the candidates for a generation's successor, below its root (among the heads).
pub const NEXT_PREFIX: &str = "head/next/";

/// A device's identity: 16 random bytes, never reused, secret from the storage.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId(pub [u8; 16]);

impl DeviceId {
    /// A new random device id.
    pub fn generate() -> Result<Self, Error> {
        let mut id = [0u8; 16];
        fill_random(&mut id)?;
        Ok(DeviceId(id))
    }
}

/// The keyed, public form of a device id that appears in object names.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceTag(pub [u8; 16]);

/// The keyed hash of a blob's content that names it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlobId(pub [u8; 32]);

crate::hex_id!(DeviceId, 16);
crate::hex_id!(DeviceTag, 16);
crate::hex_id!(BlobId, 32);

impl NamesKey {
    /// The tag under which `device` writes its objects.
    pub fn device_tag(&self, device: &DeviceId) -> DeviceTag {
        let mac = self.0.mac(b"device", &[&device.0]);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&mac[..16]);
        DeviceTag(tag)
    }

    /// The id of a blob with this content: equal content, equal id, on every device.
    pub fn blob_id(&self, content: &[u8]) -> BlobId {
        BlobId(self.0.mac(b"blob", &[content]))
    }

    /// The 16-byte id of a clip whose content encodes to `content`: the same content copied on
    /// any device gets the same id, so history holds it once. Opaque to the storage: clip ids
    /// travel only inside sealed objects.
    pub fn clip_id(&self, content: &[u8]) -> [u8; 16] {
        let mac = self.0.mac(b"clip", &[content]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&mac[..16]);
        id
    }
}

/// The name of an object below [`ROOT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectName {
    /// `repo`
    Repo,
    /// `log/<device>/<seq>`
    Log {
        /// Writer.
        device: DeviceTag,
        /// Segment number, from 1.
        seq: u64,
    },
    /// `head/<device>/<seq>`
    Head {
        /// Writer.
        device: DeviceTag,
        /// The latest segment number it describes.
        seq: u64,
    },
    /// `snap/<device>/<seq>`
    Snap {
        /// Writer.
        device: DeviceTag,
        /// The writer's latest segment number it includes.
        seq: u64,
    },
    /// `blob/<blob>/<chunk>`
    Blob {
        /// The blob.
        blob: BlobId,
        /// Chunk index, from 0.
        chunk: u32,
    },
    /// `head/next/<device>`: a device's candidate for this generation's successor, written
    /// once (listed with the heads, so a poll sees it).
    Next {
        /// The device that made it.
        creator: DeviceTag,
    },
    /// `prev`: the previous generation's key, in a generation after the first.
    Prev,
}

impl ObjectName {
    /// The kind of object stored under this name.
    pub fn kind(&self) -> Kind {
        match self {
            ObjectName::Repo => Kind::RepoHeader,
            ObjectName::Log { .. } => Kind::Segment,
            ObjectName::Head { .. } => Kind::Head,
            ObjectName::Snap { .. } => Kind::Snapshot,
            ObjectName::Blob { .. } => Kind::BlobChunk,
            ObjectName::Next { .. } => Kind::Successor,
            ObjectName::Prev => Kind::Previous,
        }
    }

    /// The prefix that lists all segments of one device.
    pub fn log_prefix(device: &DeviceTag) -> String {
        format!("{LOG_PREFIX}{device}/")
    }

    /// The prefix that lists all chunks of one blob.
    pub fn blob_prefix(blob: &BlobId) -> String {
        format!("{BLOB_PREFIX}{blob}/")
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectName::Repo => f.write_str("repo"),
            ObjectName::Log { device, seq } => write!(f, "{LOG_PREFIX}{device}/{seq:016x}"),
            ObjectName::Head { device, seq } => write!(f, "{HEAD_PREFIX}{device}/{seq:016x}"),
            ObjectName::Snap { device, seq } => write!(f, "{SNAP_PREFIX}{device}/{seq:016x}"),
            ObjectName::Blob { blob, chunk } => write!(f, "{BLOB_PREFIX}{blob}/{chunk:08x}"),
            ObjectName::Next { creator } => write!(f, "{NEXT_PREFIX}{creator}"),
            ObjectName::Prev => f.write_str("prev"),
        }
    }
}

impl FromStr for ObjectName {
    type Err = Error;

    /// Parses a name below [`ROOT`], exactly as [`Display`](fmt::Display) writes it.
    fn from_str(name: &str) -> Result<Self, Error> {
        let bad = |reason| Error::BadName {
            name: name.chars().take(200).collect(),
            reason,
        };
        match name {
            "repo" => return Ok(ObjectName::Repo),
            "prev" => return Ok(ObjectName::Prev),
            _ => {}
        }
        let mut parts = name.split('/');
        let (Some(folder), Some(first), Some(second), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(
                "expected `repo`, `prev` or three parts separated by `/`",
            ));
        };
        let seq = || {
            parse_hex::<8>(second)
                .map(u64::from_be_bytes)
                .ok_or_else(|| bad("the sequence number is not 16 lowercase hex digits"))
        };
        let device = || {
            parse_hex::<16>(first)
                .map(DeviceTag)
                .ok_or_else(|| bad("the device tag is not 32 lowercase hex digits"))
        };
        if folder == "head" && first == "next" {
            return parse_hex::<16>(second)
                .map(|tag| ObjectName::Next {
                    creator: DeviceTag(tag),
                })
                .ok_or_else(|| bad("the device tag is not 32 lowercase hex digits"));
        }
        match folder {
            "log" => Ok(ObjectName::Log {
                device: device()?,
                seq: seq()?,
            }),
            "head" => Ok(ObjectName::Head {
                device: device()?,
                seq: seq()?,
            }),
            "snap" => Ok(ObjectName::Snap {
                device: device()?,
                seq: seq()?,
            }),
            "blob" => Ok(ObjectName::Blob {
                blob: parse_hex::<32>(first)
                    .map(BlobId)
                    .ok_or_else(|| bad("the blob id is not 64 lowercase hex digits"))?,
                chunk: parse_hex::<4>(second)
                    .map(u32::from_be_bytes)
                    .ok_or_else(|| bad("the chunk number is not 8 lowercase hex digits"))?,
            }),
            _ => Err(bad("unknown folder (expected log, head, snap or blob)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_sequence() {
        let device = DeviceTag([0xab; 16]);
        let a = ObjectName::Log { device, seq: 9 }.to_string();
        let b = ObjectName::Log { device, seq: 10 }.to_string();
        assert_eq!(a, "log/abababababababababababababababab/0000000000000009");
        assert!(a < b);
        for name in [
            ObjectName::Repo,
            ObjectName::Log {
                device,
                seq: u64::MAX,
            },
            ObjectName::Head { device, seq: 0 },
            ObjectName::Next { creator: device },
            ObjectName::Prev,
            ObjectName::Snap { device, seq: 77 },
            ObjectName::Blob {
                blob: BlobId([7; 32]),
                chunk: u32::MAX,
            },
        ] {
            assert_eq!(name.to_string().parse::<ObjectName>().unwrap(), name);
        }
    }

    #[test]
    fn foreign_names_are_refused() {
        for bad in [
            "",
            "repo/",
            "log",
            "log/abababababababababababababababab",
            "log/ABABABABABABABABABABABABABABABAB/0000000000000009",
            "log/abababababababababababababababab/000000000000000g",
            "log/abababababababababababababababab/9",
            "log/abababababababababababababababab/0000000000000009/x",
            "tmp/abababababababababababababababab/0000000000000009",
            "blob/ab/00000000",
            "log/abababababababababababababababab/+000000000000009",
            "log/ééééééééééééééééé/0000000000000009",
        ] {
            assert!(
                matches!(bad.parse::<ObjectName>(), Err(Error::BadName { .. })),
                "{bad}"
            );
        }
    }
}
