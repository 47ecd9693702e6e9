//! The frames two pairing devices publish on their relay topic, each at most the relay's
//! 512-byte payload limit.
//!
//! ```text
//! 0      version   1
//! 1      kind      1 pake | 2 confirm | 3 sealed | 4 abort
//! 2      role      0 offer (the device already set up) | 1 join (the new one)
//! 3..11  side      8 random bytes naming the sender's attempt
//! 11..   body      pake:    the 33-byte SPAKE2 message
//!                  confirm: the 32-byte key confirmation
//!                  sealed:  message ‖ index ‖ count ‖ XChaCha20-Poly1305 ciphertext of one chunk
//!                  abort:   the reason, one byte
//! ```
//!
//! Decoding never panics: any other shape is a [`PairingError::Malformed`].

use super::PairingError;
use crate::relay::wire::MAX_DATA;

/// The pairing protocol's version, the first byte of every frame.
pub const VERSION: u8 = 1;

/// The bytes before a frame's body.
pub const HEADER_LEN: usize = 11;

/// The bytes of a sealed frame before its ciphertext.
pub const SEALED_HEADER_LEN: usize = HEADER_LEN + 3;

/// Length of a SPAKE2 message: a side byte and a point.
pub const PAKE_LEN: usize = 33;

/// Length of a key confirmation.
pub const CONFIRM_LEN: usize = 32;

/// The AEAD tag after each chunk.
pub const TAG_LEN: usize = 16;

/// The most plaintext one sealed frame carries.
pub const CHUNK: usize = MAX_DATA - SEALED_HEADER_LEN - TAG_LEN;

/// The most chunks one message may have: a message is at most 8 × [`CHUNK`] bytes.
pub const MAX_CHUNKS: u8 = 8;

/// The first [`SEALED_HEADER_LEN`] bytes of a sealed frame: what its AEAD authenticates
/// besides the chunk.
pub(crate) fn sealed_header(
    role: Role,
    side: [u8; 8],
    message: u8,
    index: u8,
    count: u8,
) -> Vec<u8> {
    let mut header = Vec::with_capacity(MAX_DATA);
    header.extend_from_slice(&[VERSION, SEALED, role.byte()]);
    header.extend_from_slice(&side);
    header.extend_from_slice(&[message, index, count]);
    header
}

const PAKE: u8 = 1;
const CONFIRM: u8 = 2;
const SEALED: u8 = 3;
const ABORT: u8 = 4;

/// Which device a frame comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The device already set up, which shows the code and sends the settings.
    Offer,
    /// The new device, which types the code and receives them.
    Join,
}

impl Role {
    /// The other role.
    pub fn peer(self) -> Role {
        match self {
            Role::Offer => Role::Join,
            Role::Join => Role::Offer,
        }
    }

    pub(crate) fn byte(self) -> u8 {
        match self {
            Role::Offer => 0,
            Role::Join => 1,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Role::Offer => "offer",
            Role::Join => "join",
        }
    }
}

/// Why a device gave up, as it tells the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbortReason {
    /// The code did not match.
    WrongCode,
    /// The code's time ran out.
    Expired,
    /// The person stopped it.
    Cancelled,
    /// More than two devices used the code.
    Crowded,
    /// The pairing messages did not make sense.
    Failed,
    /// A reason from a newer version.
    Other(u8),
}

impl AbortReason {
    fn byte(self) -> u8 {
        match self {
            AbortReason::WrongCode => 1,
            AbortReason::Expired => 2,
            AbortReason::Cancelled => 3,
            AbortReason::Crowded => 4,
            AbortReason::Failed => 5,
            AbortReason::Other(byte) => byte,
        }
    }

    fn from_byte(byte: u8) -> AbortReason {
        match byte {
            1 => AbortReason::WrongCode,
            2 => AbortReason::Expired,
            3 => AbortReason::Cancelled,
            4 => AbortReason::Crowded,
            5 => AbortReason::Failed,
            other => AbortReason::Other(other),
        }
    }
}

/// What a frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The sender's SPAKE2 message.
    Pake([u8; PAKE_LEN]),
    /// The sender's key confirmation.
    Confirm([u8; CONFIRM_LEN]),
    /// One chunk of a sealed message.
    Sealed {
        /// Which of the sender's messages (0, 1, …).
        message: u8,
        /// The chunk's place in it.
        index: u8,
        /// How many chunks the message has.
        count: u8,
        /// The sealed chunk.
        ciphertext: Vec<u8>,
    },
    /// The sender gave up.
    Abort(AbortReason),
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The sender's role.
    pub role: Role,
    /// The sender's attempt.
    pub side: [u8; 8],
    /// What it carries.
    pub body: Body,
}

impl Frame {
    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_DATA);
        out.push(VERSION);
        out.push(match self.body {
            Body::Pake(_) => PAKE,
            Body::Confirm(_) => CONFIRM,
            Body::Sealed { .. } => SEALED,
            Body::Abort(_) => ABORT,
        });
        out.push(self.role.byte());
        out.extend_from_slice(&self.side);
        match &self.body {
            Body::Pake(message) => out.extend_from_slice(message),
            Body::Confirm(mac) => out.extend_from_slice(mac),
            Body::Sealed {
                message,
                index,
                count,
                ciphertext,
            } => {
                out.extend_from_slice(&[*message, *index, *count]);
                out.extend_from_slice(ciphertext);
            }
            Body::Abort(reason) => out.push(reason.byte()),
        }
        out
    }

    /// Reads a frame.
    pub fn decode(bytes: &[u8]) -> Result<Frame, PairingError> {
        let malformed = PairingError::Malformed;
        if bytes.len() > MAX_DATA {
            return Err(malformed("a frame is over the relay's size limit"));
        }
        let (&version, rest) = bytes.split_first().ok_or(malformed("an empty frame"))?;
        if version != VERSION {
            return Err(PairingError::Version { theirs: version });
        }
        if rest.len() < HEADER_LEN - 1 {
            return Err(malformed("a frame shorter than its header"));
        }
        let (kind, role, side, body) = (rest[0], rest[1], &rest[2..10], &rest[10..]);
        let role = match role {
            0 => Role::Offer,
            1 => Role::Join,
            _ => return Err(malformed("a frame of an unknown role")),
        };
        let side: [u8; 8] = side.try_into().map_err(|_| malformed("a short side"))?;
        let body = match kind {
            PAKE => Body::Pake(
                body.try_into()
                    .map_err(|_| malformed("a key exchange message of the wrong length"))?,
            ),
            CONFIRM => Body::Confirm(
                body.try_into()
                    .map_err(|_| malformed("a key confirmation of the wrong length"))?,
            ),
            SEALED => {
                let [message, index, count, ref ciphertext @ ..] = *body else {
                    return Err(malformed("a sealed frame shorter than its header"));
                };
                if count == 0 || count > MAX_CHUNKS || index >= count {
                    return Err(malformed("a sealed frame numbered out of range"));
                }
                if ciphertext.len() <= TAG_LEN {
                    return Err(malformed("a sealed frame with no content"));
                }
                Body::Sealed {
                    message,
                    index,
                    count,
                    ciphertext: ciphertext.to_vec(),
                }
            }
            ABORT => match *body {
                [reason] => Body::Abort(AbortReason::from_byte(reason)),
                _ => return Err(malformed("an abort of the wrong length")),
            },
            _ => return Err(malformed("a frame of an unknown kind")),
        };
        Ok(Frame { role, side, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back() {
        for body in [
            Body::Pake([7; PAKE_LEN]),
            Body::Confirm([9; CONFIRM_LEN]),
            Body::Sealed {
                message: 1,
                index: 2,
                count: 3,
                ciphertext: vec![5; CHUNK + TAG_LEN],
            },
            Body::Abort(AbortReason::Expired),
            Body::Abort(AbortReason::Other(77)),
        ] {
            let frame = Frame {
                role: Role::Join,
                side: [1, 2, 3, 4, 5, 6, 7, 8],
                body,
            };
            let bytes = frame.encode();
            assert!(bytes.len() <= MAX_DATA);
            assert_eq!(Frame::decode(&bytes), Ok(frame));
        }
    }

    #[test]
    fn other_versions_and_shapes_are_named() {
        let mut bytes = Frame {
            role: Role::Offer,
            side: [0; 8],
            body: Body::Abort(AbortReason::Cancelled),
        }
        .encode();
        bytes[0] = 2;
        assert_eq!(
            Frame::decode(&bytes),
            Err(PairingError::Version { theirs: 2 })
        );
        for bad in [
            &[][..],
            &[1][..],
            &[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1][..],
            &[1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[1, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1][..],
            &[1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 1][..],
            &[1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1][..],
        ] {
            assert!(
                matches!(Frame::decode(bad), Err(PairingError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
