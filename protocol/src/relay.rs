//! What devices say through the relay: topic ids and sealed hints.
//!
//! A device group meets on a topic, a 32-byte id derived from the relay key: the relay sees an
//! unguessable value that links to nothing. The topic changes every [`TOPIC_WINDOW`] seconds of
//! Unix time, so that a relay operator cannot follow a person's addresses over months under one
//! identifier. A device publishes on the topic of the window its clock is in, and listens on that
//! one and, within [`TOPIC_MARGIN`] of a boundary, on the neighbouring window's too, so that
//! clocks that disagree by up to the margin still meet. The relay knows nothing of windows: to
//! it, devices just subscribe and unsubscribe.
//!
//! After an upload a device publishes a hint on its topic, signed with its identity (as its
//! segments are) and sealed with the relay key under the logical name `relay/<topic hex>`:
//!
//! ```text
//! hint plaintext = postcard(RelayHint { device: DeviceTag, seq: u64 }) ‖ signature [64]
//! ```
//!
//! A receiver opens it, checks the signature against the keys of the device whose tag it
//! carries (a device it does not know is not believed), and fetches `log/<device>/<seq>`.
//! Hints are advisory: a replayed, dropped or delayed hint costs at most one needless fetch,
//! and polling remains the fallback. A hint also tells the receiver how far its writer has
//! written, beyond what the storage says: a receiver whose storage lists less says so. Only
//! the device itself can say that, which is why hints are signed. A hint of seq 0 is a roll
//! call: a device that starts asks the others, and each answers with a hint of its newest
//! segment.
//!
//! Hints of kind 7 (before they were signed) are refused as an older version's
//! ([`Error::UnsignedHint`], with the tag it names).
//!
//! The frames a client and a relay exchange are in [`wire`].

pub mod wire;

use serde::{Deserialize, Serialize};

use crate::envelope::{self, Header, Kind, Sealed};
use crate::error::Error;
use crate::identity::{self, Claimed, Identity};
use crate::keys::RelayKey;
use crate::names::{DeviceTag, ObjectName};
use crate::objects::Payload;

/// A relay topic: 32 bytes, written as 64 lowercase hex digits on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub [u8; 32]);

crate::hex_id!(TopicId, 32);

/// "Device `device` has written segment `seq`."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayHint {
    /// The writer's tag, as in its object names.
    pub device: DeviceTag,
    /// The segment it wrote.
    pub seq: u64,
}

impl RelayHint {
    /// The roll call of `device`: "everyone, say how far you have written".
    pub fn roll_call(device: DeviceTag) -> RelayHint {
        RelayHint { device, seq: 0 }
    }

    /// Whether this is a roll call rather than news of a segment.
    pub fn is_roll_call(&self) -> bool {
        self.seq == 0
    }

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

/// Seconds of Unix time during which devices meet on one topic: a day.
pub const TOPIC_WINDOW: u64 = 86_400;

/// How near a window's boundary a device also listens on the neighbouring window's topic: an
/// hour, the clock difference between two devices that still meet at once.
pub const TOPIC_MARGIN: u64 = 3_600;

/// The Unix time after `now` (seconds) at which the topics to listen on change: a margin's edge
/// around a window's boundary (at the boundary itself the two topics stay).
pub fn next_topic_change(now: u64) -> u64 {
    let start = now - now % TOPIC_WINDOW;
    if now < start + TOPIC_MARGIN {
        start + TOPIC_MARGIN
    } else if now < start + TOPIC_WINDOW - TOPIC_MARGIN {
        start + TOPIC_WINDOW - TOPIC_MARGIN
    } else {
        start + TOPIC_WINDOW + TOPIC_MARGIN
    }
}

impl RelayKey {
    /// The topic of window `window` (Unix time divided by [`TOPIC_WINDOW`]).
    pub fn window_topic(&self, window: u64) -> TopicId {
        TopicId(self.0.mac(b"relay-topic", &[&window.to_be_bytes()]))
    }

    /// The topic to publish on at Unix time `now` (seconds).
    pub fn publish_topic(&self, now: u64) -> TopicId {
        self.window_topic(now / TOPIC_WINDOW)
    }

    /// The topics to listen on at Unix time `now`: the window's own, and within
    /// [`TOPIC_MARGIN`] of a boundary the neighbour's. One or two topics, in window order.
    pub fn listen_topics(&self, now: u64) -> Vec<TopicId> {
        let mut windows = vec![
            now.saturating_sub(TOPIC_MARGIN) / TOPIC_WINDOW,
            now / TOPIC_WINDOW,
            now.saturating_add(TOPIC_MARGIN) / TOPIC_WINDOW,
        ];
        windows.dedup();
        windows.into_iter().map(|w| self.window_topic(w)).collect()
    }

    /// Signs a hint with `identity` (the device it speaks for) and seals it for publishing on
    /// `topic`.
    pub fn seal_hint(
        &self,
        topic: &TopicId,
        hint: &RelayHint,
        identity: &Identity,
    ) -> Result<Sealed, Error> {
        self.seal_hint_with(topic, hint, identity, envelope::random_nonce()?)
    }

    /// Signs and seals a hint with a chosen nonce, for test vectors only.
    #[cfg(feature = "test-vectors")]
    pub fn seal_hint_with_nonce(
        &self,
        topic: &TopicId,
        hint: &RelayHint,
        identity: &Identity,
        nonce: [u8; envelope::NONCE_LEN],
    ) -> Result<Sealed, Error> {
        self.seal_hint_with(topic, hint, identity, nonce)
    }

    /// The plaintext of a sealed hint (payload and signature), for test vectors only.
    #[cfg(feature = "test-vectors")]
    pub fn open_hint_plaintext(&self, topic: &TopicId, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        let opened = envelope::open(&self.0, Kind::RelayHint, &hint_name(topic), bytes)?;
        Ok(opened.as_bytes().to_vec())
    }

    fn seal_hint_with(
        &self,
        topic: &TopicId,
        hint: &RelayHint,
        identity: &Identity,
        nonce: [u8; envelope::NONCE_LEN],
    ) -> Result<Sealed, Error> {
        let name = hint_name(topic);
        let plaintext = identity::sign_payload(identity, self.0.id, &name, hint.encode());
        envelope::seal(&self.0, Kind::RelayHint, &name, &plaintext, nonce)
    }

    /// Opens a hint received on `topic`. It is not yet believed: check it with
    /// [`Claimed::verify`] against the keys of the device its tag names. A hint sealed with
    /// this key but unsigned, as older versions sent them, is [`Error::UnsignedHint`].
    pub fn open_hint(&self, topic: &TopicId, bytes: &[u8]) -> Result<Claimed<RelayHint>, Error> {
        let name = hint_name(topic);
        if Header::parse(bytes).is_ok_and(|header| header.kind == Kind::UnsignedHint) {
            // Opened first, so that only what holds the key is said to be a device's.
            let opened = envelope::open(&self.0, Kind::UnsignedHint, &name, bytes)?;
            let hint = RelayHint::decode(opened.as_bytes())?;
            return Err(Error::UnsignedHint {
                device: hint.device,
            });
        }
        let opened = envelope::open(&self.0, Kind::RelayHint, &name, bytes)?;
        identity::claimed(
            Kind::RelayHint,
            self.0.id,
            &name,
            opened.as_bytes(),
            RelayHint::decode,
        )
    }
}

fn hint_name(topic: &TopicId) -> String {
    format!("relay/{topic}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SyncKey;
    use crate::names::DeviceTag;

    fn key() -> RelayKey {
        SyncKey::from_bytes([7; 32]).keys().relay
    }

    #[test]
    fn an_unsigned_hint_is_an_older_versions_and_a_short_one_is_malformed() {
        let relay = key();
        let topic = relay.window_topic(20_000);
        let hint = RelayHint {
            device: DeviceTag([3; 16]),
            seq: 4,
        };
        let name = hint_name(&topic);
        let nonce = [9; envelope::NONCE_LEN];
        let unsigned =
            envelope::seal(&relay.0, Kind::UnsignedHint, &name, &hint.encode(), nonce).unwrap();
        assert_eq!(
            relay.open_hint(&topic, unsigned.as_bytes()).unwrap_err(),
            Error::UnsignedHint {
                device: hint.device
            }
        );
        // Of another key, it is not said to be a device's.
        let other = SyncKey::from_bytes([8; 32]).keys().relay;
        assert!(matches!(
            other.open_hint(&topic, unsigned.as_bytes()),
            Err(Error::WrongKey { .. })
        ));
        // A signed kind whose plaintext cannot hold a signature.
        let short = envelope::seal(&relay.0, Kind::RelayHint, &name, &[1; 63], nonce).unwrap();
        assert!(matches!(
            relay.open_hint(&topic, short.as_bytes()),
            Err(Error::Malformed { .. })
        ));
        // A signature after a payload that does not decode.
        let junk = envelope::seal(&relay.0, Kind::RelayHint, &name, &[0xff; 90], nonce).unwrap();
        assert!(matches!(
            relay.open_hint(&topic, junk.as_bytes()),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn devices_whose_clocks_differ_by_the_margin_meet() {
        let relay = key();
        let day = 20_000 * TOPIC_WINDOW;
        for now in [
            day,
            day + 1,
            day + TOPIC_MARGIN - 1,
            day + TOPIC_MARGIN,
            day + TOPIC_WINDOW / 2,
            day + TOPIC_WINDOW - TOPIC_MARGIN,
            day + TOPIC_WINDOW - 1,
        ] {
            for skew in [0, 1, TOPIC_MARGIN / 2, TOPIC_MARGIN] {
                for sender in [now - skew, now + skew] {
                    let topic = relay.publish_topic(sender);
                    assert!(
                        relay.listen_topics(now).contains(&topic),
                        "sent at {sender}, listening at {now}"
                    );
                }
            }
        }
    }

    #[test]
    fn one_topic_away_from_boundaries_two_near_them() {
        let relay = key();
        let day = 20_000 * TOPIC_WINDOW;
        assert_eq!(relay.listen_topics(day + TOPIC_WINDOW / 2).len(), 1);
        assert_eq!(relay.listen_topics(day + 10).len(), 2);
        assert_eq!(relay.listen_topics(day + TOPIC_WINDOW - 10).len(), 2);
        assert_ne!(relay.publish_topic(day), relay.publish_topic(day - 1));
        assert_eq!(relay.publish_topic(day), relay.publish_topic(day + 1));
    }

    #[test]
    fn the_listened_topics_change_only_at_the_announced_times() {
        let relay = key();
        let mut now = 20_000 * TOPIC_WINDOW - 2 * TOPIC_MARGIN;
        let end = now + 3 * TOPIC_WINDOW;
        while now < end {
            let next = next_topic_change(now);
            assert!(next > now);
            assert_eq!(relay.listen_topics(now), relay.listen_topics(next - 1));
            assert_ne!(relay.listen_topics(now), relay.listen_topics(next), "{now}");
            now = next;
        }
    }
}
