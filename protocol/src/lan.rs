//! What two devices on one network say to each other: the mDNS instance names by which they
//! recognise each other, the Noise parameters of their channel, and the frames it carries.
//!
//! ```text
//! mDNS   _ferry._tcp.local.   instance = hex(nonce 8 ‖ HMAC(discovery tag, "lan-instance" ‖ 0 ‖ nonce)[..8])
//! TCP    Noise_NNpsk0_25519_ChaChaPoly_SHA256, PSK = LanKey::transport_psk, prologue "ferry/v1/lan"
//!        every Noise message: length (u16 BE) ‖ message
//!        the plaintexts, joined, are a stream of frames: length (u32 BE) ‖ frame
//! frame  0 kind  1 hello | 2 heads | 3 segment | 4 ping | 5 want | 6 chunk | 7 ask | 8 answer | 9 unanswered
//!        hello:    device id (16) ‖ listening port (u16 BE) ‖ caller (u8: 0 | 1) ‖ Ed25519 key (32) ‖ signature (64)
//!        heads:    count (u16 BE) ‖ count × (device tag 16 ‖ seq u64 BE)
//!        segment:  device tag (16) ‖ seq (u64 BE) ‖ the sealed segment, exactly as in storage
//!        ping:     (empty)
//!        want:     blob id (32)
//!        chunk:    blob id (32) ‖ chunk index (u32 BE) ‖ the sealed chunk, as in storage
//!        ask:      call (u32 BE) ‖ more (u8: 0 | 1) ‖ part of a question (at most MAX_PART)
//!        answer:   call (u32 BE) ‖ more (u8: 0 | 1) ‖ part of the answer (at most MAX_PART)
//!        unanswered: call (u32 BE) ‖ why (u8: 1 too large | 2 busy | 3 nothing to answer with)
//! ```
//!
//! Asks and answers carry the questions devices put to the one that holds a folder repository
//! ([`crate::held`]), split in parts so that a large object never holds up the other frames.
//!
//! A stranger on the network sees instance names that change every [`PERIOD_SECS`] and differ
//! between devices of one group, so it learns that some Ferry device is there and nothing
//! more. Decoding never panics: any other shape is a [`FrameError`].

use blake2::Blake2b256;
use blake2::digest::Digest;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::identity::{Identity, SIGNATURE_LEN};

use crate::keys::LanKey;
use crate::names::{BlobId, DeviceId, DeviceTag};

/// The mDNS service type devices announce and browse.
pub const SERVICE_TYPE: &str = "_ferry._tcp.local.";

/// The TCP port a device listens on unless configured otherwise (open it in a firewall to let
/// nearby devices connect).
pub const DEFAULT_PORT: u16 = 47_291;

/// How long one discovery tag lasts: a tag of period `p` is announced from `p × PERIOD_SECS`
/// seconds of Unix time on.
pub const PERIOD_SECS: u64 = 3600;

/// The Noise protocol of the channel: both sides prove the PSK in one round trip, and every
/// connection has its own ephemeral keys.
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";

/// Bound into the handshake: a device speaking another version of these frames fails it.
pub const PROLOGUE: &[u8] = b"ferry/v1/lan";

/// The largest Noise message (its length is a u16).
pub const MAX_NOISE_MESSAGE: usize = u16::MAX as usize;

/// The AEAD tag at the end of each Noise transport message.
pub const NOISE_TAG_LEN: usize = 16;

/// The most plaintext one Noise transport message carries.
pub const MAX_NOISE_PAYLOAD: usize = MAX_NOISE_MESSAGE - NOISE_TAG_LEN;

/// The largest frame: a segment bigger than this travels through storage only.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The most devices one heads frame lists.
pub const MAX_HEADS: usize = 1024;

/// The most bytes of a question or answer one ask or answer frame carries.
pub const MAX_PART: usize = 1024 * 1024;

/// The largest hello: nothing longer is read from a device that has not proved who it is.
pub const MAX_HELLO: usize = 1 + 16 + 2 + 1 + 32 + SIGNATURE_LEN;

/// What a hello's signature covers (see [`Frame::hello`]).
const HELLO_LABEL: &[u8] = b"ferry/v2/lan-hello";

/// Bytes in an instance name's nonce, and in its proof.
const NONCE_LEN: usize = 8;
const PROOF_LEN: usize = 8;

/// The discovery period of Unix time `unix_secs`.
pub fn period(unix_secs: u64) -> u64 {
    unix_secs / PERIOD_SECS
}

impl LanKey {
    /// The mDNS instance (and host) name a device announces in `period`: a fresh `nonce`
    /// followed by a proof that the announcer holds this key. Two devices of one group
    /// announce different names; only a device with the key can tell they belong together.
    pub fn instance_name(&self, period: u64, nonce: [u8; NONCE_LEN]) -> String {
        let mut name = [0u8; NONCE_LEN + PROOF_LEN];
        name[..NONCE_LEN].copy_from_slice(&nonce);
        name[NONCE_LEN..].copy_from_slice(&self.instance_proof(period, &nonce));
        hex::encode(name)
    }

    /// Whether `name` was announced by a device with this key during the period before
    /// `period`, that period itself or the one after (clocks differ).
    pub fn recognises(&self, name: &str, period: u64) -> bool {
        let Some(name) = name.get(..2 * (NONCE_LEN + PROOF_LEN)) else {
            return false;
        };
        let mut bytes = [0u8; NONCE_LEN + PROOF_LEN];
        if hex::decode_to_slice(name, &mut bytes).is_err() {
            return false;
        }
        let (nonce, proof) = bytes.split_at(NONCE_LEN);
        [period.saturating_sub(1), period, period.saturating_add(1)]
            .into_iter()
            .any(|p| self.instance_proof(p, nonce) == proof)
    }

    fn instance_proof(&self, period: u64, nonce: &[u8]) -> [u8; PROOF_LEN] {
        let tag = self.discovery_tag(period);
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&tag).expect("HMAC takes any key length");
        mac.update(b"lan-instance");
        mac.update(&[0]);
        mac.update(nonce);
        let full = mac.finalize().into_bytes();
        let mut proof = [0u8; PROOF_LEN];
        proof.copy_from_slice(&full[..PROOF_LEN]);
        proof
    }
}

/// One frame between two connected devices.
#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    /// The first frame each side sends: who it is, proved by its signature over this
    /// connection's handshake ([`Frame::hello`]).
    Hello {
        /// The sender's device id.
        device: DeviceId,
        /// The TCP port it listens on: with the address it connected from, where to reach it
        /// again.
        port: u16,
        /// Whether this connection only makes calls (a command of the device, while its agent
        /// keeps the device's own connection): it is neither sent segments nor listed.
        caller: bool,
        /// The Ed25519 key it signs with: the one the roster holds for it.
        key: [u8; 32],
        /// Its signature of [`hello_digest`] for this connection.
        signature: [u8; SIGNATURE_LEN],
    },
    /// How far the sender has each device's log: for its own, the newest segment it sealed;
    /// for the others, the newest it applied.
    Heads(Vec<(DeviceTag, u64)>),
    /// One sealed segment, with the name it has (or will have) in storage.
    Segment {
        /// The writer's tag.
        device: DeviceTag,
        /// Its seq.
        seq: u64,
        /// The sealed bytes, exactly as stored.
        sealed: Vec<u8>,
    },
    /// Keeps an idle connection known to be alive.
    Ping,
    /// Asks for every chunk of a blob that a segment from the other side named.
    Want {
        /// The blob.
        blob: BlobId,
    },
    /// One sealed chunk of a blob, with the name it has in storage.
    Chunk {
        /// The blob.
        blob: BlobId,
        /// The chunk's index.
        chunk: u32,
        /// The sealed bytes, as stored under that name.
        sealed: Vec<u8>,
    },
    /// Part of a question to the other device; the parts of one call, joined in order, are
    /// the question.
    Ask {
        /// The call, chosen by the asker: its answer carries the same number.
        call: u32,
        /// Whether more parts follow.
        more: bool,
        /// At most [`MAX_PART`] bytes.
        part: Vec<u8>,
    },
    /// Part of the answer to the call the other device made.
    Answer {
        /// The asker's call.
        call: u32,
        /// Whether more parts follow.
        more: bool,
        /// At most [`MAX_PART`] bytes.
        part: Vec<u8>,
    },
    /// The call will have no answer, and why.
    Unanswered {
        /// The asker's call.
        call: u32,
        /// Why not.
        why: Unanswered,
    },
}

/// Why a call goes unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The question, or the answer, is larger than the other side takes.
    TooLarge = 1,
    /// The other device is answering as many calls as it takes; ask again later.
    Busy = 2,
    /// The other device has nothing to answer such questions with (it holds no repository).
    NotHeld = 3,
}

impl Unanswered {
    fn from_byte(byte: u8) -> Result<Unanswered, FrameError> {
        Ok(match byte {
            1 => Unanswered::TooLarge,
            2 => Unanswered::Busy,
            3 => Unanswered::NotHeld,
            _ => return Err(FrameError::Malformed("unknown reason for no answer")),
        })
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Hello {
                device,
                port,
                caller,
                ..
            } => f
                .debug_struct("Hello")
                .field("device", device)
                .field("port", port)
                .field("caller", caller)
                .finish_non_exhaustive(),
            Frame::Heads(heads) => f.debug_tuple("Heads").field(&heads.len()).finish(),
            Frame::Segment {
                device,
                seq,
                sealed,
            } => f
                .debug_struct("Segment")
                .field("device", device)
                .field("seq", seq)
                .field("bytes", &sealed.len())
                .finish(),
            Frame::Ping => f.write_str("Ping"),
            Frame::Want { blob } => f.debug_struct("Want").field("blob", blob).finish(),
            Frame::Chunk {
                blob,
                chunk,
                sealed,
            } => f
                .debug_struct("Chunk")
                .field("blob", blob)
                .field("chunk", chunk)
                .field("bytes", &sealed.len())
                .finish(),
            Frame::Ask { call, more, part } => f
                .debug_struct("Ask")
                .field("call", call)
                .field("more", more)
                .field("bytes", &part.len())
                .finish(),
            Frame::Answer { call, more, part } => f
                .debug_struct("Answer")
                .field("call", call)
                .field("more", more)
                .field("bytes", &part.len())
                .finish(),
            Frame::Unanswered { call, why } => f
                .debug_struct("Unanswered")
                .field("call", call)
                .field("why", why)
                .finish(),
        }
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Empty, cut short, with bytes left over, or of an unknown kind.
    #[error("a LAN frame is malformed ({0})")]
    Malformed(&'static str),
    /// Larger than [`MAX_FRAME`], or listing more than [`MAX_HEADS`] devices.
    #[error("a LAN frame is too large ({0})")]
    TooLarge(&'static str),
}

const HELLO: u8 = 1;
const HEADS: u8 = 2;
const SEGMENT: u8 = 3;
const PING: u8 = 4;
const WANT: u8 = 5;
const CHUNK: u8 = 6;
const ASK: u8 = 7;
const ANSWER: u8 = 8;
const UNANSWERED: u8 = 9;

/// Which end of a connection a hello comes from: a hello is signed for one end, so that a
/// device's own hello sent back to it does not pass as the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The device that dialled.
    Dialer = 0,
    /// The device that accepted.
    Listener = 1,
}

/// `BLAKE2b-256("ferry/v2/lan-hello" ‖ 0x00 ‖ handshake hash ‖ end ‖ device id ‖ port ‖ caller ‖
/// key)`:
/// what a hello's signature covers. The Noise handshake hash is the same at both ends of one
/// connection and differs on every other, so a hello cannot be replayed on another connection.
pub fn hello_digest(
    handshake: &[u8],
    end: End,
    device: &DeviceId,
    port: u16,
    caller: bool,
    key: &[u8; 32],
) -> [u8; 32] {
    Blake2b256::new()
        .chain_update(HELLO_LABEL)
        .chain_update([0])
        .chain_update(handshake)
        .chain_update([end as u8])
        .chain_update(device.0)
        .chain_update(port.to_be_bytes())
        .chain_update([u8::from(caller)])
        .chain_update(key)
        .finalize()
        .into()
}

impl Frame {
    /// The hello `identity` (the device `device`, listening on `port`; a `caller` only makes
    /// calls) sends from `end` of the connection whose Noise handshake hash is `handshake`.
    pub fn hello(
        identity: &Identity,
        (device, port, caller): (DeviceId, u16, bool),
        handshake: &[u8],
        end: End,
    ) -> Frame {
        let key = identity.public().sign;
        let digest = hello_digest(handshake, end, &device, port, caller, &key);
        let signature = identity.sign(&digest);
        Frame::Hello {
            device,
            port,
            caller,
            key,
            signature,
        }
    }

    /// Whether this is a hello whose signature holds for `end` of the connection whose
    /// handshake hash is `handshake`. Who the key belongs to is the roster's to say.
    pub fn hello_holds(&self, handshake: &[u8], end: End) -> bool {
        let Frame::Hello {
            device,
            port,
            caller,
            key,
            signature,
        } = self
        else {
            return false;
        };
        let digest = hello_digest(handshake, end, device, *port, *caller, key);
        crate::identity::verify(key, &digest, signature)
    }

    /// The frame's bytes (without the length prefix of the stream).
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        match self {
            Frame::Hello {
                device,
                port,
                caller,
                key,
                signature,
            } => {
                out.push(HELLO);
                out.extend_from_slice(&device.0);
                out.extend_from_slice(&port.to_be_bytes());
                out.push(u8::from(*caller));
                out.extend_from_slice(key);
                out.extend_from_slice(signature);
            }
            Frame::Heads(heads) => {
                let count = u16::try_from(heads.len())
                    .ok()
                    .filter(|&n| usize::from(n) <= MAX_HEADS)
                    .ok_or(FrameError::TooLarge(
                        "more devices than a heads frame lists",
                    ))?;
                out.reserve(3 + heads.len() * 24);
                out.push(HEADS);
                out.extend_from_slice(&count.to_be_bytes());
                for (tag, seq) in heads {
                    out.extend_from_slice(&tag.0);
                    out.extend_from_slice(&seq.to_be_bytes());
                }
            }
            Frame::Segment {
                device,
                seq,
                sealed,
            } => {
                out.reserve(25 + sealed.len());
                out.push(SEGMENT);
                out.extend_from_slice(&device.0);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(sealed);
            }
            Frame::Ping => out.push(PING),
            Frame::Want { blob } => {
                out.push(WANT);
                out.extend_from_slice(&blob.0);
            }
            Frame::Chunk {
                blob,
                chunk,
                sealed,
            } => {
                out.reserve(37 + sealed.len());
                out.push(CHUNK);
                out.extend_from_slice(&blob.0);
                out.extend_from_slice(&chunk.to_be_bytes());
                out.extend_from_slice(sealed);
            }
            Frame::Ask { call, more, part } | Frame::Answer { call, more, part } => {
                if part.len() > MAX_PART {
                    return Err(FrameError::TooLarge("a part larger than a call's part"));
                }
                out.reserve(6 + part.len());
                out.push(if matches!(self, Frame::Ask { .. }) {
                    ASK
                } else {
                    ANSWER
                });
                out.extend_from_slice(&call.to_be_bytes());
                out.push(u8::from(*more));
                out.extend_from_slice(part);
            }
            Frame::Unanswered { call, why } => {
                out.push(UNANSWERED);
                out.extend_from_slice(&call.to_be_bytes());
                out.push(*why as u8);
            }
        }
        if out.len() > MAX_FRAME {
            return Err(FrameError::TooLarge(
                "an object larger than a frame carries",
            ));
        }
        Ok(out)
    }

    /// Reads one frame's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() > MAX_FRAME {
            return Err(FrameError::TooLarge("longer than a frame may be"));
        }
        let (&kind, mut body) = bytes.split_first().ok_or(FrameError::Malformed("empty"))?;
        let frame = match kind {
            HELLO if body.len() == 18 => {
                return Err(FrameError::Malformed(
                    "a hello without a signature, from an older version of Ferry",
                ));
            }
            HELLO => Frame::Hello {
                device: DeviceId(take(&mut body, "hello")?),
                port: u16::from_be_bytes(take(&mut body, "hello")?),
                caller: match take::<1>(&mut body, "hello")? {
                    [0] => false,
                    [1] => true,
                    _ => {
                        return Err(FrameError::Malformed(
                            "a hello is neither a caller's nor not",
                        ));
                    }
                },
                key: take(&mut body, "hello")?,
                signature: take(&mut body, "hello")?,
            },
            HEADS => {
                let count = usize::from(u16::from_be_bytes(take(&mut body, "heads count")?));
                if count > MAX_HEADS {
                    return Err(FrameError::TooLarge(
                        "more devices than a heads frame lists",
                    ));
                }
                let mut heads = Vec::with_capacity(count.min(body.len() / 24));
                for _ in 0..count {
                    let tag = DeviceTag(take(&mut body, "heads entry")?);
                    heads.push((tag, u64::from_be_bytes(take(&mut body, "heads entry")?)));
                }
                Frame::Heads(heads)
            }
            SEGMENT => {
                let device = DeviceTag(take(&mut body, "segment")?);
                let seq = u64::from_be_bytes(take(&mut body, "segment")?);
                let sealed = sealed_rest(&mut body, "a segment frame without its segment")?;
                Frame::Segment {
                    device,
                    seq,
                    sealed,
                }
            }
            PING => Frame::Ping,
            WANT => Frame::Want {
                blob: BlobId(take(&mut body, "want")?),
            },
            CHUNK => {
                let blob = BlobId(take(&mut body, "chunk")?);
                let chunk = u32::from_be_bytes(take(&mut body, "chunk")?);
                let sealed = sealed_rest(&mut body, "a chunk frame without its chunk")?;
                Frame::Chunk {
                    blob,
                    chunk,
                    sealed,
                }
            }
            ASK | ANSWER => {
                let call = u32::from_be_bytes(take(&mut body, "call")?);
                let more = match take::<1>(&mut body, "call")? {
                    [0] => false,
                    [1] => true,
                    _ => {
                        return Err(FrameError::Malformed(
                            "a call's part is neither last nor not",
                        ));
                    }
                };
                if body.len() > MAX_PART {
                    return Err(FrameError::TooLarge("a part larger than a call's part"));
                }
                let part = std::mem::take(&mut body).to_vec();
                match kind {
                    ASK => Frame::Ask { call, more, part },
                    _ => Frame::Answer { call, more, part },
                }
            }
            UNANSWERED => Frame::Unanswered {
                call: u32::from_be_bytes(take(&mut body, "unanswered")?),
                why: Unanswered::from_byte(take::<1>(&mut body, "unanswered")?[0])?,
            },
            _ => return Err(FrameError::Malformed("unknown kind")),
        };
        if !body.is_empty() {
            return Err(FrameError::Malformed("bytes after the frame"));
        }
        Ok(frame)
    }
}

/// Takes the rest of `body`: a sealed object, which is never empty (`missing` says so).
fn sealed_rest(body: &mut &[u8], missing: &'static str) -> Result<Vec<u8>, FrameError> {
    let sealed = std::mem::take(body);
    if sealed.is_empty() {
        return Err(FrameError::Malformed(missing));
    }
    Ok(sealed.to_vec())
}

/// Takes the next `N` bytes of `body`.
fn take<const N: usize>(body: &mut &[u8], what: &'static str) -> Result<[u8; N], FrameError> {
    let (head, rest) = body
        .split_first_chunk::<N>()
        .ok_or(FrameError::Malformed(what))?;
    *body = rest;
    Ok(*head)
}

#[cfg(test)]
mod tests;
