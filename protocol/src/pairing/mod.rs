//! Pairing: a new device joins with a short one-time code read off another device's screen,
//! and receives the sync key, the storage settings and their credentials sealed, through a
//! relay that learns none of them.
//!
//! ```text
//! offer (set up)                     relay topic H(nameplate)                 join (new)
//! Pake(O)  ─────────────── every 2 s until answered ──────────────▶
//!          ◀────────────────────────────────────────────────────── Pake(J)
//! K = SPAKE2(code)                                                 K = SPAKE2(code)
//! Pake(O), Confirm(O) ─────────────────────────────────────────────▶ check Confirm(O)
//! check Confirm(J) ◀─────────────────────────────── Confirm(J), Sealed(Reply: id, name, keys)
//! registers J in the roster
//! Sealed(Bundle: key, storage, credentials, relay) ───────────────▶ installs, opens storage
//!          ◀──────────────────────────────────────────────────────── Sealed(Outcome)
//! ```
//!
//! The relay topic depends on the code's public nameplate alone; the words never leave the
//! device. SPAKE2 (symmetric, on the Ed25519 group) turns the whole code into a shared key `K`
//! that an eavesdropper cannot test guesses against, and an active attacker gets one guess per
//! attempt. Each side then proves it holds `K` with a MAC under its own confirmation key; only
//! then is anything sealed sent. A wrong confirmation ends the attempt on both sides, and the
//! code with it: a code is used once.
//!
//! ```text
//! confirm key(role) = HKDF-SHA256(K, info "ferry/v1/pair/confirm/" ‖ role)
//! seal key(role)    = HKDF-SHA256(K, info "ferry/v1/pair/seal/" ‖ role)
//! confirmation      = HMAC-SHA256(confirm key(sender), "ferry/v1/pair/confirm"
//!                       ‖ offer side ‖ join side ‖ offer pake ‖ join pake)
//! sealed chunk      = XChaCha20-Poly1305(seal key(sender), nonce = message ‖ index ‖ 0²²,
//!                       aad = the frame's first 14 bytes, chunk)
//! ```
//!
//! [`Session`] is the whole exchange without any I/O: frames in, frames and messages out. The
//! command line moves its frames through the relay, or over one TCP connection on the LAN
//! where the two devices meet by mDNS ([`LAN_SERVICE_TYPE`], [`lan_instance`]); the tests
//! move them through hostile ones.

mod code;
mod error;
mod frame;
mod messages;

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity as SpakeIdentity, Password, Spake2};
use zeroize::Zeroizing;

pub use code::{CodeError, PairingCode, URI_SCHEME, WORDS, complete, word};
pub use error::PairingError;
pub use frame::{
    AbortReason, Body, CHUNK, CONFIRM_LEN, Frame, HEADER_LEN, MAX_CHUNKS, PAKE_LEN, Role,
    SEALED_HEADER_LEN, TAG_LEN, VERSION,
};
pub use messages::{Bundle, Credentials, Message, Outcome, Reply};

use crate::keys::fill_random;
use crate::relay::TopicId;

/// The SPAKE2 identity both sides use.
pub const SPAKE_IDENTITY: &[u8] = b"ferry/v1/pair";

/// The label of a pairing topic's hash.
const TOPIC_LABEL: &[u8] = b"ferry/v1/pair-topic";

/// How many sealed frames a side holds back while the key is not yet confirmed.
const MAX_EARLY: usize = 2 * MAX_CHUNKS as usize;

/// The relay topic where the devices of nameplate `nameplate` meet:
/// `SHA-256("ferry/v1/pair-topic" ‖ 0x00 ‖ three ASCII digits)`.
pub fn topic(nameplate: u16) -> TopicId {
    let mut hash = Sha256::new();
    hash.update(TOPIC_LABEL);
    hash.update([0]);
    hash.update(format!("{:03}", nameplate % 1000).as_bytes());
    TopicId(hash.finalize().into())
}

/// The mDNS service type under which a device that shows a code waits on its network, for
/// pairing without a relay.
pub const LAN_SERVICE_TYPE: &str = "_ferry-pair._tcp.local.";

/// The mDNS instance name (and host name, before `.local.`) of the meeting place of
/// `nameplate` on a LAN: the first 8 bytes of its [`topic`] in lowercase hex. Like the topic,
/// it names the nameplate and nothing else.
pub fn lan_instance(nameplate: u16) -> String {
    hex::encode(&topic(nameplate).0[..8])
}

/// What one received frame changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Publish [`Session::frames`] now: the other device has just shown up, or there is
    /// something new to send.
    pub send_now: bool,
    /// The other device has just proven that it holds the same code.
    pub confirmed: bool,
    /// A whole message from the other device.
    pub message: Option<Message>,
}

/// The keys both sides derive from the SPAKE2 key.
struct SessionKeys {
    confirm_own: Zeroizing<[u8; 32]>,
    confirm_peer: Zeroizing<[u8; 32]>,
    seal_own: Zeroizing<[u8; 32]>,
    seal_peer: Zeroizing<[u8; 32]>,
}

/// A message being put together from its chunks.
struct Assembly {
    count: u8,
    chunks: Vec<Option<Vec<u8>>>,
}

/// One side of one pairing attempt.
pub struct Session {
    role: Role,
    side: [u8; 8],
    spake: Option<Spake2<Ed25519Group>>,
    own_pake: [u8; PAKE_LEN],
    peer_side: Option<[u8; 8]>,
    peer_pake: Option<[u8; PAKE_LEN]>,
    keys: Option<SessionKeys>,
    /// A confirmation that arrived before the key exchange message.
    early_confirm: Option<[u8; CONFIRM_LEN]>,
    confirmed: bool,
    /// Sealed frames that arrived before the confirmation.
    early: Vec<Frame>,
    /// The frames to publish, and to publish again until the other side answers.
    frames: Vec<Vec<u8>>,
    /// Messages from the other side, by number: being assembled, then delivered (`None`).
    incoming: Vec<Option<Assembly>>,
    /// The sealed frames received, to tell a duplicate from a contradiction.
    seen: Vec<(u8, u8, Vec<u8>)>,
    sent: Vec<u8>,
}

impl Session {
    /// Starts an attempt in `role` with `code`.
    pub fn new(role: Role, code: &PairingCode) -> Result<Session, PairingError> {
        let mut side = [0u8; 8];
        fill_random(&mut side)?;
        let (spake, message) =
            Spake2::<Ed25519Group>::start_symmetric(&password(code), &spake_identity());
        Session::started(role, side, spake, &message)
    }

    /// [`new`](Self::new) with a chosen side and random number generator, for test vectors.
    #[cfg(feature = "test-vectors")]
    pub fn with_rng(
        role: Role,
        code: &PairingCode,
        side: [u8; 8],
        rng: impl spake2::rand_core::CryptoRng,
    ) -> Result<Session, PairingError> {
        let (spake, message) = Spake2::<Ed25519Group>::start_symmetric_with_rng(
            &password(code),
            &spake_identity(),
            rng,
        );
        Session::started(role, side, spake, &message)
    }

    fn started(
        role: Role,
        side: [u8; 8],
        spake: Spake2<Ed25519Group>,
        message: &[u8],
    ) -> Result<Session, PairingError> {
        let own_pake: [u8; PAKE_LEN] = message
            .try_into()
            .map_err(|_| PairingError::Order("SPAKE2 made a message of an unexpected length"))?;
        let mut session = Session {
            role,
            side,
            spake: Some(spake),
            own_pake,
            peer_side: None,
            peer_pake: None,
            keys: None,
            early_confirm: None,
            confirmed: false,
            early: Vec::new(),
            frames: Vec::new(),
            incoming: Vec::new(),
            seen: Vec::new(),
            sent: Vec::new(),
        };
        let pake = session.frame(Body::Pake(own_pake));
        session.frames.push(pake);
        Ok(session)
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the other side has proven it holds the same code.
    pub fn confirmed(&self) -> bool {
        self.confirmed
    }

    /// Whether the other side has shown up.
    pub fn answered(&self) -> bool {
        self.peer_side.is_some()
    }

    /// The frames to publish now, and again every few seconds until the attempt ends (the relay
    /// keeps no history: a device that subscribes later hears only what is published after).
    pub fn frames(&self) -> &[Vec<u8>] {
        &self.frames
    }

    /// The frame that tells the other side this one gives up.
    pub fn abort(&self, reason: AbortReason) -> Vec<u8> {
        self.frame(Body::Abort(reason))
    }

    /// Takes in a frame published on the topic.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Progress, PairingError> {
        let frame = Frame::decode(bytes)?;
        if frame.side == self.side {
            // Our own frame, echoed back.
            return Ok(Progress::default());
        }
        if frame.role == self.role {
            return Err(PairingError::Crowded);
        }
        let mut progress = Progress::default();
        match self.peer_side {
            None => {
                self.peer_side = Some(frame.side);
                progress.send_now = true;
            }
            Some(side) if side != frame.side => return Err(PairingError::Crowded),
            Some(_) => {}
        }
        match frame.body {
            Body::Abort(reason) => return Err(PairingError::PeerAborted(reason)),
            Body::Pake(pake) => self.take_pake(pake, &mut progress)?,
            Body::Confirm(mac) => match self.keys {
                None => match self.early_confirm {
                    Some(held) if held != mac => {
                        return Err(PairingError::Tampered("two different confirmations"));
                    }
                    _ => self.early_confirm = Some(mac),
                },
                Some(_) => self.take_confirm(mac, &mut progress)?,
            },
            Body::Sealed { .. } if !self.confirmed => {
                if self.early.len() >= MAX_EARLY {
                    return Err(PairingError::Tampered(
                        "too many sealed frames before the key",
                    ));
                }
                self.early.push(frame);
            }
            Body::Sealed { .. } => self.take_sealed(frame, &mut progress)?,
        }
        Ok(progress)
    }

    /// Seals `message` for the other side and adds its chunks to [`frames`](Self::frames).
    /// Only after the other side confirmed the code.
    pub fn send(&mut self, message: &Message) -> Result<(), PairingError> {
        let keys = match (&self.keys, self.confirmed) {
            (Some(keys), true) => keys,
            _ => {
                return Err(PairingError::Order(
                    "a message before the code is confirmed",
                ));
            }
        };
        let allowed = matches!(
            (self.role, message),
            (Role::Offer, Message::Bundle(_))
                | (Role::Join, Message::Reply(_) | Message::Outcome(_))
        );
        let number = message.number();
        if !allowed || self.sent.contains(&number) {
            return Err(PairingError::Order("a message this side does not send"));
        }
        let plain = Zeroizing::new(message.encode());
        let chunks: Vec<&[u8]> = plain.chunks(CHUNK).collect();
        let count = u8::try_from(chunks.len())
            .ok()
            .filter(|count| (1..=MAX_CHUNKS).contains(count))
            .ok_or(PairingError::Order("a message too large to pair with"))?;
        let cipher = XChaCha20Poly1305::new((&*keys.seal_own).into());
        let mut frames = Vec::with_capacity(chunks.len());
        for (index, chunk) in (0..count).zip(chunks) {
            let header = frame::sealed_header(self.role, self.side, number, index, count);
            let ciphertext = cipher
                .encrypt(
                    &nonce(number, index),
                    AeadPayload {
                        msg: chunk,
                        aad: &header,
                    },
                )
                .map_err(|_| PairingError::Order("sealing failed"))?;
            let mut bytes = header;
            bytes.extend_from_slice(&ciphertext);
            frames.push(bytes);
        }
        self.sent.push(number);
        self.frames.extend(frames);
        Ok(())
    }

    fn frame(&self, body: Body) -> Vec<u8> {
        Frame {
            role: self.role,
            side: self.side,
            body,
        }
        .encode()
    }

    fn take_pake(
        &mut self,
        pake: [u8; PAKE_LEN],
        progress: &mut Progress,
    ) -> Result<(), PairingError> {
        if let Some(held) = self.peer_pake {
            return if held == pake {
                Ok(())
            } else {
                Err(PairingError::Tampered(
                    "two different key exchange messages",
                ))
            };
        }
        if pake == self.own_pake {
            return Err(PairingError::Tampered(
                "our own key exchange message sent back",
            ));
        }
        let spake = self
            .spake
            .take()
            .ok_or(PairingError::Order("the key exchange ran twice"))?;
        let key = Zeroizing::new(
            spake
                .finish(&pake)
                .map_err(|_| PairingError::Tampered("a key exchange message that is no point"))?,
        );
        self.peer_pake = Some(pake);
        let derive = |purpose: &str, role: Role| {
            let mut out = Zeroizing::new([0u8; 32]);
            let info = format!("ferry/v1/pair/{purpose}/{}", role.label());
            // 32 bytes is far below HKDF-SHA256's limit.
            let _ = Hkdf::<Sha256>::new(None, &key).expand(info.as_bytes(), out.as_mut_slice());
            out
        };
        let keys = SessionKeys {
            confirm_own: derive("confirm", self.role),
            confirm_peer: derive("confirm", self.role.peer()),
            seal_own: derive("seal", self.role),
            seal_peer: derive("seal", self.role.peer()),
        };
        let own_mac = self
            .transcript(&keys.confirm_own, pake)
            .finalize()
            .into_bytes()
            .into();
        self.keys = Some(keys);
        let confirm = self.frame(Body::Confirm(own_mac));
        self.frames.push(confirm);
        progress.send_now = true;
        if let Some(mac) = self.early_confirm.take() {
            self.take_confirm(mac, progress)?;
        }
        Ok(())
    }

    /// The MAC under `key` over this attempt's transcript, ready to finish or to check.
    fn transcript(&self, key: &[u8; 32], peer_pake: [u8; PAKE_LEN]) -> Hmac<Sha256> {
        let peer_side = self.peer_side.unwrap_or_default();
        let (offer, join) = match self.role {
            Role::Offer => ((self.side, self.own_pake), (peer_side, peer_pake)),
            Role::Join => ((peer_side, peer_pake), (self.side, self.own_pake)),
        };
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        mac.update(b"ferry/v1/pair/confirm");
        mac.update(&offer.0);
        mac.update(&join.0);
        mac.update(&offer.1);
        mac.update(&join.1);
        mac
    }

    fn take_confirm(
        &mut self,
        mac: [u8; CONFIRM_LEN],
        progress: &mut Progress,
    ) -> Result<(), PairingError> {
        let (Some(keys), Some(peer_pake)) = (&self.keys, self.peer_pake) else {
            return Err(PairingError::Order("a confirmation before the key"));
        };
        // Checked in constant time.
        self.transcript(&keys.confirm_peer, peer_pake)
            .verify_slice(&mac)
            .map_err(|_| PairingError::WrongCode)?;
        if self.confirmed {
            return Ok(());
        }
        self.confirmed = true;
        progress.confirmed = true;
        for frame in std::mem::take(&mut self.early) {
            self.take_sealed(frame, progress)?;
        }
        Ok(())
    }

    fn take_sealed(&mut self, frame: Frame, progress: &mut Progress) -> Result<(), PairingError> {
        let Body::Sealed {
            message,
            index,
            count,
            ciphertext,
        } = frame.body
        else {
            return Ok(());
        };
        if let Some((_, _, held)) = self
            .seen
            .iter()
            .find(|(m, i, _)| (*m, *i) == (message, index))
        {
            return if *held == ciphertext {
                Ok(())
            } else {
                Err(PairingError::Tampered("two different chunks in one place"))
            };
        }
        let Some(keys) = &self.keys else {
            return Err(PairingError::Order("a sealed frame before the key"));
        };
        let header = frame::sealed_header(frame.role, frame.side, message, index, count);
        let plain = XChaCha20Poly1305::new((&*keys.seal_peer).into())
            .decrypt(
                &nonce(message, index),
                AeadPayload {
                    msg: &ciphertext,
                    aad: &header,
                },
            )
            .map_err(|_| PairingError::Tampered("a sealed chunk does not open"))?;
        self.seen.push((message, index, ciphertext));
        let slot = usize::from(message);
        if slot >= 2 {
            return Err(PairingError::Tampered("a message number out of range"));
        }
        if self.incoming.len() <= slot {
            self.incoming.resize_with(slot + 1, || {
                Some(Assembly {
                    count: 0,
                    chunks: Vec::new(),
                })
            });
        }
        let Some(assembly) = &mut self.incoming[slot] else {
            // Delivered already; a chunk in a new place is a contradiction.
            return Err(PairingError::Tampered(
                "a chunk of a message already complete",
            ));
        };
        if assembly.chunks.is_empty() {
            assembly.count = count;
            assembly.chunks = vec![None; usize::from(count)];
        } else if assembly.count != count {
            return Err(PairingError::Tampered(
                "chunks that disagree on their count",
            ));
        }
        assembly.chunks[usize::from(index)] = Some(plain);
        if assembly.chunks.iter().any(Option::is_none) {
            return Ok(());
        }
        let whole = Zeroizing::new(
            assembly
                .chunks
                .iter()
                .flatten()
                .flatten()
                .copied()
                .collect::<Vec<u8>>(),
        );
        self.incoming[slot] = None;
        progress.message = Some(self.decode_message(message, &whole)?);
        Ok(())
    }

    fn decode_message(&self, number: u8, bytes: &[u8]) -> Result<Message, PairingError> {
        let bad = |_| PairingError::Tampered("a sealed message that does not decode");
        Ok(match (self.role.peer(), number) {
            (Role::Offer, 0) => Message::Bundle(postcard::from_bytes(bytes).map_err(bad)?),
            (Role::Join, 0) => Message::Reply(postcard::from_bytes(bytes).map_err(bad)?),
            (Role::Join, 1) => Message::Outcome(postcard::from_bytes(bytes).map_err(bad)?),
            _ => return Err(PairingError::Tampered("a message number out of range")),
        })
    }
}

fn password(code: &PairingCode) -> Password {
    Password::new(code.normalised().as_bytes())
}

fn spake_identity() -> SpakeIdentity {
    SpakeIdentity::new(SPAKE_IDENTITY)
}

fn nonce(message: u8, index: u8) -> XNonce {
    let mut nonce = [0u8; 24];
    nonce[0] = message;
    nonce[1] = index;
    nonce.into()
}

#[cfg(test)]
mod tests;
