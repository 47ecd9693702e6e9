//! What one relay instance tells the others through the broker: a publish, and where it came
//! from. `protocol/SPEC.md` §8.4 has the layout.
//!
//! ```text
//! version (1) ‖ origin instance (16) ‖ topic (32) ‖ data (0..=512)
//! ```

use ferry_protocol::TopicId;
use ferry_protocol::relay::wire::MAX_DATA;

/// The layout this relay writes and reads.
pub(crate) const VERSION: u8 = 1;

const HEAD: usize = 1 + 16 + 32;

/// The longest envelope: the head and the largest payload a client may publish.
pub(crate) const MAX_ENVELOPE: usize = HEAD + MAX_DATA;

/// One relay process, for the life of the process; chosen at random at start.
pub(crate) type InstanceId = [u8; 16];

/// A publish passed between instances.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) origin: InstanceId,
    pub(crate) topic: TopicId,
    pub(crate) data: &'a [u8],
}

/// Why a broker message was not an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// Shorter than a head, or of a version this relay does not know.
    Malformed,
    /// Longer than any publish could make it.
    Oversized,
}

impl Envelope<'_> {
    /// The envelope's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEAD + self.data.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.origin);
        bytes.extend_from_slice(&self.topic.0);
        bytes.extend_from_slice(self.data);
        bytes
    }

    /// Reads an envelope; any bytes give an answer, never a panic.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope<'_>, Unreadable> {
        if bytes.len() > MAX_ENVELOPE {
            return Err(Unreadable::Oversized);
        }
        let (head, data) = bytes
            .split_first_chunk::<HEAD>()
            .ok_or(Unreadable::Malformed)?;
        let (version, rest) = head.split_first().ok_or(Unreadable::Malformed)?;
        if *version != VERSION {
            return Err(Unreadable::Malformed);
        }
        let (origin, topic) = rest.split_at(16);
        Ok(Envelope {
            origin: origin.try_into().map_err(|_| Unreadable::Malformed)?,
            topic: TopicId(topic.try_into().map_err(|_| Unreadable::Malformed)?),
            data,
        })
    }
}

/// The broker channel (0..[`PARTITIONS`]) that carries `topic`'s publishes.
pub(crate) fn partition(topic: &TopicId) -> usize {
    usize::from(topic.0[0]) % PARTITIONS
}

/// How many channels the topic space is split into. Every instance listens on all of them from
/// its start, so devices coming and going never change what an instance subscribes to.
pub(crate) const PARTITIONS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let envelope = Envelope {
            origin: [7; 16],
            topic: TopicId([9; 32]),
            data: b"sealed hint",
        };
        let bytes = envelope.encode();
        assert_eq!(bytes.len(), HEAD + 11);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(Envelope::decode(&bytes), Ok(envelope));
        let empty = Envelope {
            data: b"",
            ..Envelope::decode(&bytes).unwrap()
        };
        assert_eq!(Envelope::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn any_bytes_decode_or_are_refused() {
        let full = Envelope {
            origin: [1; 16],
            topic: TopicId([2; 32]),
            data: &[3; MAX_DATA],
        }
        .encode();
        assert_eq!(full.len(), MAX_ENVELOPE);
        assert!(Envelope::decode(&full).is_ok());
        for length in 0..HEAD {
            assert_eq!(
                Envelope::decode(&full[..length]),
                Err(Unreadable::Malformed)
            );
        }
        let mut longer = full.clone();
        longer.push(0);
        assert_eq!(Envelope::decode(&longer), Err(Unreadable::Oversized));
        let mut future = full;
        future[0] = VERSION + 1;
        assert_eq!(Envelope::decode(&future), Err(Unreadable::Malformed));
        // Every short prefix of noise, every first byte.
        for first in 0..=u8::MAX {
            let noise: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(31) ^ first).collect();
            for length in 0..noise.len() {
                let _ = Envelope::decode(&noise[..length]);
            }
        }
    }

    #[test]
    fn partitions_cover_the_topic_space() {
        let mut seen = [false; PARTITIONS];
        for first in 0..=u8::MAX {
            let mut topic = [0; 32];
            topic[0] = first;
            seen[partition(&TopicId(topic))] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
