//! What devices say through the relay: topic ids and sealed hints.
//!
//! A device group meets on one topic, a 32-byte id derived from the relay key: the relay sees
//! an unguessable value that links to nothing. After an upload a device publishes a hint on that
//! topic, sealed with the relay key under the logical name `relay/<topic hex>`:
//!
//! ```text
//! hint plaintext = postcard(RelayHint { device: DeviceTag, seq: u64 })
//! ```
//!
//! A receiver opens it and fetches `log/<device>/<seq>`. Hints are advisory: a replayed,
//! dropped or forged hint costs at most one needless fetch, and polling remains the fallback.
//!
//! The frames a client and a relay exchange are in [`wire`].

pub mod wire;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::envelope::{self, Kind, Sealed};
use crate::error::Error;
use crate::keys::RelayKey;
use crate::names::{DeviceTag, ObjectName};
use crate::objects::Payload;

/// A relay topic: 32 bytes, written as 64 lowercase hex digits on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub [u8; 32]);

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

impl FromStr for TopicId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let mut out = [0u8; 32];
        let lower = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if lower && hex::decode_to_slice(s, &mut out).is_ok() {
            Ok(TopicId(out))
        } else {
            Err(Error::BadName {
                name: s.chars().take(100).collect(),
                reason: "a topic is 64 lowercase hex digits",
            })
        }
    }
}

/// "Device `device` has written segment `seq`."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayHint {
    /// The writer's tag, as in its object names.
    pub device: DeviceTag,
    /// The segment it wrote.
    pub seq: u64,
}

impl RelayHint {
    /// The segment this hint points at.
    pub fn segment(&self) -> ObjectName {
        ObjectName::Log {
            device: self.device,
            seq: self.seq,
        }
    }
}

impl Payload for RelayHint {
    const KIND: Kind = Kind::RelayHint;
}

impl RelayKey {
    /// The topic on which all devices of this sync key meet.
    pub fn group_topic(&self) -> TopicId {
        TopicId(self.0.mac(b"relay-topic", &[b"group"]))
    }

    /// Seals a hint for publishing on `topic`.
    pub fn seal_hint(&self, topic: &TopicId, hint: &RelayHint) -> Result<Sealed, Error> {
        envelope::seal(
            &self.0,
            Kind::RelayHint,
            &hint_name(topic),
            &hint.encode(),
            envelope::random_nonce()?,
        )
    }

    /// Seals a hint with a chosen nonce, for test vectors only.
    #[cfg(feature = "test-vectors")]
    pub fn seal_hint_with_nonce(
        &self,
        topic: &TopicId,
        hint: &RelayHint,
        nonce: [u8; envelope::NONCE_LEN],
    ) -> Result<Sealed, Error> {
        envelope::seal(
            &self.0,
            Kind::RelayHint,
            &hint_name(topic),
            &hint.encode(),
            nonce,
        )
    }

    /// Opens a hint received on `topic`.
    pub fn open_hint(&self, topic: &TopicId, bytes: &[u8]) -> Result<RelayHint, Error> {
        let opened = envelope::open(&self.0, Kind::RelayHint, &hint_name(topic), bytes)?;
        RelayHint::decode(opened.as_bytes())
    }
}

fn hint_name(topic: &TopicId) -> String {
    format!("relay/{topic}")
}
