//! The sync key and the key schedule.
//!
//! ```text
//! sync key (32 random bytes, or Argon2id(passphrase))
//!   └─ PRK = HKDF-Extract(salt = "ferry/v1/sync-key", IKM = sync key)
//!        ├─ HKDF-Expand(PRK, "ferry/v1/data",   32) -> DataKey   seals every repository object
//!        ├─ HKDF-Expand(PRK, "ferry/v1/names",  32) -> NamesKey  keyed names of devices and blobs
//!        ├─ HKDF-Expand(PRK, "ferry/v1/relay",  32) -> RelayKey  relay topics and sealed hints
//!        ├─ HKDF-Expand(PRK, "ferry/v1/lan",    32) -> LanKey    LAN discovery tags, transport PSK
//!        └─ HKDF-Expand(PRK, "ferry/v1/key-id",  8) -> KeyId     public identifier of the sync key
//! ```
//!
//! Each sub-key is its own type, so a key made for one purpose cannot be passed where another is
//! expected. No key type implements `Display`; `Debug` shows only the public key id. Secret bytes
//! are wiped from memory when a key is dropped.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::Error;

/// Length in bytes of the sync key and of every sub-key.
pub const KEY_LEN: usize = 32;

const HKDF_SALT: &[u8] = b"ferry/v1/sync-key";

/// The 32-byte secret shared by all of a person's devices. Everything else is derived from it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SyncKey([u8; KEY_LEN]);

impl SyncKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; KEY_LEN];
        fill_random(&mut bytes)?;
        Ok(SyncKey(bytes))
    }

    /// The key with these bytes (as read back from a keychain or a recovery code).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SyncKey(bytes)
    }

    /// The secret bytes, for storing in a keychain. Handle with care.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The public identifier of this key, written in every sealed object.
    pub fn key_id(&self) -> KeyId {
        let mut id = [0u8; 8];
        self.expand(b"key-id", &mut id);
        KeyId(id)
    }

    /// Derives every sub-key at once.
    pub fn keys(&self) -> Keys {
        let id = self.key_id();
        Keys {
            data: DataKey(SubKey::derive(self, b"data", id)),
            names: NamesKey(SubKey::derive(self, b"names", id)),
            relay: RelayKey(SubKey::derive(self, b"relay", id)),
            lan: LanKey(SubKey::derive(self, b"lan", id)),
            id,
        }
    }

    fn expand(&self, label: &[u8], out: &mut [u8]) {
        let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), &self.0);
        let mut info = Vec::with_capacity(9 + label.len());
        info.extend_from_slice(b"ferry/v1/");
        info.extend_from_slice(label);
        hkdf.expand(&info, out)
            .expect("sub-keys of 8 and 32 bytes are valid HKDF-SHA256 output lengths");
    }
}

impl fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncKey")
            .field("id", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// The public 8-byte identifier of a sync key: shown in "wrong key" errors, never secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 8]);

crate::hex_id!(KeyId, 8);

/// The secret part shared by all sub-key types.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SubKey {
    pub(crate) bytes: [u8; KEY_LEN],
    #[zeroize(skip)]
    pub(crate) id: KeyId,
}

impl SubKey {
    fn derive(key: &SyncKey, label: &[u8], id: KeyId) -> Self {
        let mut bytes = [0u8; KEY_LEN];
        key.expand(label, &mut bytes);
        SubKey { bytes, id }
    }

    /// HMAC-SHA256 of `parts` under this key. `domain` separates the uses of one key.
    pub(crate) fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.bytes)
            .expect("HMAC accepts keys of any length");
        mac.update(domain);
        mac.update(&[0]);
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

macro_rules! sub_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(pub(crate) SubKey);

        impl $name {
            /// The key id of the sync key this key was derived from.
            pub fn key_id(&self) -> KeyId {
                self.0.id
            }

            /// The secret bytes, for test vectors only.
            #[cfg(feature = "test-vectors")]
            pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0.bytes
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("id", &self.0.id)
                    .finish_non_exhaustive()
            }
        }
    };
}

sub_key!(
    /// Seals and opens every repository object (segments, heads, snapshots, blobs, key check).
    DataKey
);
sub_key!(
    /// Makes the keyed names under which objects are stored, so storage cannot link them to
    /// devices or content.
    NamesKey
);
sub_key!(
    /// Derives relay topics and seals the hints published on them.
    RelayKey
);
sub_key!(
    /// Derives LAN discovery tags and the pre-shared key of the direct transport.
    LanKey
);

impl LanKey {
    /// The 16-byte tag a device announces on the LAN during period `period` (for example the
    /// number of hours since the Unix epoch): devices with the same key compute the same tag,
    /// anyone else sees a value that changes every period and links to nothing.
    pub fn discovery_tag(&self, period: u64) -> [u8; 16] {
        let mac = self.0.mac(b"lan-discovery", &[&period.to_be_bytes()]);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&mac[..16]);
        tag
    }

    /// The pre-shared key for the authenticated LAN transport, wiped when dropped.
    pub fn transport_psk(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.0.mac(b"lan-transport-psk", &[]))
    }
}

/// Every sub-key of one sync key, derived once.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Seals repository objects.
    pub data: DataKey,
    /// Names objects.
    pub names: NamesKey,
    /// Relay topics and hints.
    pub relay: RelayKey,
    /// LAN discovery and transport.
    pub lan: LanKey,
    /// Public identifier of the sync key.
    pub id: KeyId,
}

/// Fills `out` from the operating system's random number generator.
pub(crate) fn fill_random(out: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(out).map_err(|e| Error::Random(e.to_string()))
}
