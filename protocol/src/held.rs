//! A repository held by a device: what the other devices of the repository ask the device whose
//! folder holds it, over their LAN connection, and what it answers.
//!
//! The holder is storage to the others, with storage's operations and nothing more: write an
//! object once, read one, list a prefix a page at a time, delete. Its objects are the same
//! sealed, signed bytes a bucket would hold, checked by the asker exactly as a bucket's. Each
//! question and answer is the postcard encoding of [`Question`] and [`Reply`], carried in the
//! parts of ask and answer frames ([`crate::lan::Frame::Ask`]). Decoding never panics: other
//! bytes are a [`HeldError`].

use serde::{Deserialize, Serialize};

/// The most names one listing answers.
pub const MAX_LISTED: u32 = 1000;

/// The largest question a holder takes: a snapshot, the largest object, and its name.
pub fn max_question() -> usize {
    crate::Kind::Snapshot.max_sealed() + 64 * 1024
}

/// The largest answer an asker takes for a read of at most `limit` bytes (or for any other
/// question: a listing of [`MAX_LISTED`] names).
pub fn max_reply(limit: u64) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    limit.min(max_question()).max(1024 * 1024) + 64 * 1024
}

/// What a device asks the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Question {
    /// Write an object that must not exist yet.
    PutNew {
        /// Its name below the repository's root (`ferry/v1/…`).
        name: String,
        /// Its bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Read a whole object of at most `limit` bytes.
    Get {
        /// Its name.
        name: String,
        /// The most bytes the asker takes.
        limit: u64,
    },
    /// List the objects whose names start with `prefix`, in name order, after `start_after`.
    List {
        /// The prefix.
        prefix: String,
        /// Where the page starts.
        start_after: Option<String>,
        /// At most this many (and at most [`MAX_LISTED`]).
        limit: u32,
    },
    /// Delete objects (deleting one that is not there is not an error).
    Delete {
        /// Their names.
        names: Vec<String>,
    },
}

/// What the holder answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Written, or deleted.
    Done,
    /// The object read.
    Object(#[serde(with = "serde_bytes")] Vec<u8>),
    /// One page of a listing.
    Page {
        /// Each object's name and size, in name order.
        objects: Vec<(String, u64)>,
        /// Where the next page starts, or `None` on the last page.
        next: Option<String>,
    },
    /// The holder could not do it.
    Refused(Refusal),
}

/// Why the holder did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// No object has that name.
    NotFound,
    /// An object with that name exists already (a write-once write).
    AlreadyExists,
    /// The object is larger than the asker takes.
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// Something other than a stored object sits at that name (in the holder's folder: a FIFO,
    /// a folder, a link).
    NotAnObject,
    /// Not something a holder does (a name outside the repository, or an operation it does
    /// not offer).
    Denied(String),
    /// Its folder failed (a full disk, a permission): worth trying again later.
    Failed(String),
}

/// Bytes that are not a question or a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a held-repository message is malformed ({0})")]
pub struct HeldError(String);

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encodes every held-repository message")
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, HeldError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok(_) => Err(HeldError("bytes after the message".into())),
        Err(error) => Err(HeldError(error.to_string())),
    }
}

impl Question {
    /// The question's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads a question.
    pub fn decode(bytes: &[u8]) -> Result<Question, HeldError> {
        decode(bytes)
    }
}

impl Reply {
    /// The reply's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads a reply.
    pub fn decode(bytes: &[u8]) -> Result<Reply, HeldError> {
        decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_replies_round_trip_and_nothing_else_decodes() {
        let questions = [
            Question::PutNew {
                name: "ferry/v1/log/ab/0001".into(),
                bytes: vec![7; 300],
            },
            Question::Get {
                name: "ferry/v1/repo".into(),
                limit: 4096,
            },
            Question::List {
                prefix: "ferry/v1/head/".into(),
                start_after: Some("ferry/v1/head/a".into()),
                limit: MAX_LISTED,
            },
            Question::Delete {
                names: vec!["a".into(), "b".into()],
            },
        ];
        for question in questions {
            let bytes = question.encode();
            assert_eq!(Question::decode(&bytes).unwrap(), question);
            for cut in 0..bytes.len() {
                assert!(
                    Question::decode(&bytes[..cut]).is_err(),
                    "{question:?} at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Question::decode(&longer).is_err());
        }
        let replies = [
            Reply::Done,
            Reply::Object(vec![1, 2, 3]),
            Reply::Page {
                objects: vec![("ferry/v1/head/x/1".into(), 300)],
                next: None,
            },
            Reply::Refused(Refusal::TooLarge { size: 1 << 40 }),
            Reply::Refused(Refusal::Failed("disk full".into())),
        ];
        for reply in replies {
            assert_eq!(Reply::decode(&reply.encode()).unwrap(), reply);
        }
        assert!(Reply::decode(&[]).is_err());
        assert!(Reply::decode(&[200, 1, 2]).is_err());
    }

    #[test]
    fn a_claimed_length_beyond_the_bytes_is_refused_without_allocating_it() {
        // An object claiming 2^62 bytes in a five-byte message.
        let bytes = [1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
        assert!(Reply::decode(&bytes).is_err());
    }

    #[test]
    fn an_asker_takes_at_least_a_listing_and_at_most_a_snapshot() {
        assert!(max_reply(0) >= 1024 * 1024);
        assert!(max_reply(u64::MAX) <= max_question() + 64 * 1024);
        assert!(max_reply(4096) < 2 * 1024 * 1024);
    }
}
