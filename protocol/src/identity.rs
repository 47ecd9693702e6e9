//! Device identities: each device's own key pairs, and the signatures that say which device
//! wrote an object.
//!
//! The sync key is shared by every device of a person, so a sealed object proves only that
//! *some* holder of the key wrote it. An identity says which one. Every device makes, once, an
//! Ed25519 pair to sign what it writes and an X25519 pair that others can seal to (a new sync
//! key reaches each device that way when the key is rotated). The private halves stay on the
//! device, in its secret store; the public halves, [`DeviceKeys`], are registered in the
//! replicated device roster (`ferry-core`), where every reader looks them up.
//!
//! ```text
//! digest    = BLAKE2b-256("ferry/v2/signed" ‖ 0x00 ‖ key id ‖ name ‖ 0x00 ‖ payload)
//! signature = Ed25519(signing key, digest)          64 bytes, after the payload, inside the seal
//! ```
//!
//! The signature is inside the ciphertext, so the storage cannot tell which key signed what.
//! The key id and the name in the digest tie a signature to one repository and one object name.
//! The digest is BLAKE2b rather than SHA-256: without SHA instructions in the processor it is
//! about four times faster, and a snapshot of 100k clips is megabytes.

use std::fmt;

use blake2::Blake2b256;
use blake2::digest::Digest;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::envelope::{FORMAT_VERSION, Kind};
use crate::error::Error;
use crate::keys::{KeyId, fill_random};

/// Length of a signature.
pub const SIGNATURE_LEN: usize = 64;

const SIGNED_LABEL: &[u8] = b"ferry/v2/signed";

/// This device's private keys: to sign what it writes, and to open what is sealed to it.
pub struct Identity {
    signing: SigningKey,
    sealing: StaticSecret,
}

impl Identity {
    /// Length of [`to_secret_bytes`](Self::to_secret_bytes): the signing seed, then the X25519
    /// secret.
    pub const SECRET_LEN: usize = 64;

    /// A new identity from the operating system's random number generator.
    pub fn generate() -> Result<Identity, Error> {
        let mut secret = Zeroizing::new([0u8; Self::SECRET_LEN]);
        fill_random(secret.as_mut_slice())?;
        Ok(Identity::from_secret_bytes(&secret))
    }

    /// The identity with these secret bytes (as read back from a secret store).
    pub fn from_secret_bytes(bytes: &[u8; Self::SECRET_LEN]) -> Identity {
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[..32]);
        let mut sealing = Zeroizing::new([0u8; 32]);
        sealing.copy_from_slice(&bytes[32..]);
        Identity {
            signing: SigningKey::from_bytes(&seed),
            sealing: StaticSecret::from(*sealing),
        }
    }

    /// The secret bytes, for the secret store. Handle with care.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; Self::SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; Self::SECRET_LEN]);
        out[..32].copy_from_slice(self.signing.as_bytes());
        out[32..].copy_from_slice(self.sealing.as_bytes());
        out
    }

    /// The secret as lowercase hex, the form the secret store keeps.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.to_secret_bytes().as_slice()))
    }

    /// Reads [`to_hex`](Self::to_hex)'s form. The error never quotes the input.
    pub fn from_hex(text: &str) -> Result<Identity, Error> {
        let mut bytes = Zeroizing::new([0u8; Self::SECRET_LEN]);
        hex::decode_to_slice(text.trim(), bytes.as_mut_slice()).map_err(|_| Error::BadName {
            name: "(device identity)".into(),
            reason: "a device identity is 128 lowercase hex digits",
        })?;
        Ok(Identity::from_secret_bytes(&bytes))
    }

    /// The public halves, as the roster holds them.
    pub fn public(&self) -> DeviceKeys {
        DeviceKeys {
            sign: self.signing.verifying_key().to_bytes(),
            seal: x25519_dalek::PublicKey::from(&self.sealing).to_bytes(),
        }
    }

    /// The X25519 secret, for opening what was sealed to this device.
    pub(crate) fn sealing_secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.sealing.to_bytes())
    }

    /// Signs the digest of an object.
    pub(crate) fn sign(&self, digest: &[u8; 32]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(digest).to_bytes()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.public().fingerprint())
    }
}

/// A device's public keys, as registered in the roster.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceKeys {
    /// Ed25519 public key: checks what the device signs.
    pub sign: [u8; 32],
    /// X25519 public key: seals to the device.
    pub seal: [u8; 32],
}

impl DeviceKeys {
    /// Both keys as 128 lowercase hex digits, the signing key first.
    pub fn to_hex(&self) -> String {
        format!("{}{}", hex::encode(self.sign), hex::encode(self.seal))
    }

    /// Reads [`to_hex`](Self::to_hex)'s form.
    pub fn from_hex(text: &str) -> Result<DeviceKeys, Error> {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| Error::BadName {
            name: "(device keys)".into(),
            reason: "a device's public keys are 128 lowercase hex digits",
        })?;
        let (sign, seal) = bytes.split_at(32);
        Ok(DeviceKeys {
            sign: sign.try_into().unwrap_or_default(),
            seal: seal.try_into().unwrap_or_default(),
        })
    }

    /// A short form for people to compare: the first 8 bytes of the BLAKE2b-256 of both keys,
    /// as four groups of four hex digits.
    pub fn fingerprint(&self) -> String {
        let digest = Blake2b256::new()
            .chain_update(self.sign)
            .chain_update(self.seal)
            .finalize();
        digest[..8]
            .chunks(2)
            .map(hex::encode)
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Whether `signature` is this device's signature of `digest`. Strict: a key or signature
    /// in a non-canonical form does not verify.
    pub(crate) fn verify(&self, digest: &[u8; 32], signature: &[u8; SIGNATURE_LEN]) -> bool {
        verify(&self.sign, digest, signature)
    }
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKeys({})", self.fingerprint())
    }
}

/// Whether `signature` is the signature of `digest` by the Ed25519 key `key`, strictly.
pub(crate) fn verify(key: &[u8; 32], digest: &[u8; 32], signature: &[u8; SIGNATURE_LEN]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    key.verify_strict(digest, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

/// What a writer signs for the object stored under `name` in the repository of `key_id`.
pub(crate) fn signed_digest(key_id: KeyId, name: &str, payload: &[u8]) -> [u8; 32] {
    Blake2b256::new()
        .chain_update(SIGNED_LABEL)
        .chain_update([0])
        .chain_update(key_id.0)
        .chain_update(name.as_bytes())
        .chain_update([0])
        .chain_update(payload)
        .finalize()
        .into()
}

/// `payload ‖ signature`: what a writer seals for `name`, signed with `identity`.
pub(crate) fn sign_payload(
    identity: &Identity,
    key_id: KeyId,
    name: &str,
    mut payload: Vec<u8>,
) -> Vec<u8> {
    let digest = signed_digest(key_id, name, &payload);
    payload.extend_from_slice(&identity.sign(&digest));
    payload
}

/// Splits an opened `payload ‖ signature` of `kind` and decodes the payload with `decode`: a
/// claim its reader still has to [`verify`](Claimed::verify).
pub(crate) fn claimed<T>(
    kind: Kind,
    key_id: KeyId,
    name: &str,
    plaintext: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, Error>,
) -> Result<Claimed<T>, Error> {
    let Some(split) = plaintext.len().checked_sub(SIGNATURE_LEN) else {
        return Err(Error::Malformed {
            what: kind.name(),
            detail: "it is too short to hold its signature".into(),
        });
    };
    let (payload, signature) = plaintext.split_at(split);
    let value = decode(payload)?;
    let digest = signed_digest(key_id, name, payload);
    let signature = signature
        .try_into()
        .expect("split at the signature's length");
    Ok(Claimed::signed(value, signature, digest))
}

/// An opened object that names its writer: readers check the signature against the writer's
/// registered keys with [`verify`](Self::verify) before they use it.
pub struct Claimed<T> {
    /// The payload.
    pub value: T,
    format: u8,
    signature: Option<[u8; SIGNATURE_LEN]>,
    digest: [u8; 32],
}

impl<T> Claimed<T> {
    /// A signed payload of the current format.
    pub(crate) fn signed(value: T, signature: [u8; SIGNATURE_LEN], digest: [u8; 32]) -> Self {
        Claimed {
            value,
            format: FORMAT_VERSION,
            signature: Some(signature),
            digest,
        }
    }

    /// A payload of format version 1, which carried no signature.
    pub(crate) fn unsigned(value: T) -> Self {
        Claimed {
            value,
            format: 1,
            signature: None,
            digest: [0; 32],
        }
    }

    /// The format version it was written in: what its payload's inner encodings follow.
    pub fn format(&self) -> u8 {
        self.format
    }

    /// Whether it carries a signature: objects of format version 1 do not.
    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// Checks that the device with `keys` signed it.
    pub fn verify(&self, keys: &DeviceKeys) -> Result<(), Error> {
        match &self.signature {
            None => Err(Error::NotSigned),
            Some(signature) if keys.verify(&self.digest, signature) => Ok(()),
            Some(_) => Err(Error::BadSignature),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Claimed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claimed")
            .field("value", &self.value)
            .field("signed", &self.is_signed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_signers_keys_and_digest() {
        let alice = Identity::generate().unwrap();
        let bob = Identity::generate().unwrap();
        let digest = signed_digest(KeyId([1; 8]), "log/x", b"payload");
        let signature = alice.sign(&digest);
        assert!(alice.public().verify(&digest, &signature));
        assert!(!bob.public().verify(&digest, &signature));
        let other = signed_digest(KeyId([1; 8]), "log/y", b"payload");
        assert!(!alice.public().verify(&other, &signature));
    }

    #[test]
    fn the_secret_round_trips_and_debug_shows_only_the_fingerprint() {
        let identity = Identity::generate().unwrap();
        let again = Identity::from_hex(&identity.to_hex()).unwrap();
        assert_eq!(again.public(), identity.public());
        let shown = format!("{identity:?}");
        assert!(shown.contains(&identity.public().fingerprint()));
        assert!(!shown.contains(&identity.to_hex()[..16]));
        assert!(Identity::from_hex("zz").is_err());
    }
}
