//! Sync keys derived from a passphrase with Argon2id.
//!
//! The parameters and a 16-byte random salt are public and live in the repository header, so
//! that every device derives the same key from the same passphrase. The passphrase is normalised
//! to Unicode NFC first: the same words typed on systems that compose accents differently give
//! the same key.
//!
//! Parameters read from a header are untrusted (the storage could change them to make a device
//! spend gigabytes of memory), so they are bounded before any work is done.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::keys::{KEY_LEN, SyncKey, fill_random};

/// Argon2id cost parameters and salt, stored in the repository header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
    /// Random salt, unique per repository.
    pub salt: [u8; 16],
}

impl KdfParams {
    /// Default memory cost: 64 MiB.
    pub const DEFAULT_MEMORY_KIB: u32 = 64 * 1024;
    /// Default number of passes.
    pub const DEFAULT_ITERATIONS: u32 = 3;
    /// Default parallelism.
    pub const DEFAULT_PARALLELISM: u32 = 1;
    /// Largest memory cost accepted from a header: 256 MiB, four times the default.
    pub const MAX_MEMORY_KIB: u32 = 256 * 1024;
    /// Largest number of passes accepted from a header.
    pub const MAX_ITERATIONS: u32 = 8;
    /// Largest parallelism accepted from a header.
    pub const MAX_PARALLELISM: u32 = 4;
    /// Largest work (memory cost times passes, in KiB) accepted from a header: four times the
    /// default's, so a hostile header costs a joining device at most about a second.
    pub const MAX_WORK_KIB: u64 =
        4 * Self::DEFAULT_MEMORY_KIB as u64 * Self::DEFAULT_ITERATIONS as u64;

    /// Default costs with a fresh random salt, for a new repository.
    pub fn generate() -> Result<Self, Error> {
        let mut salt = [0u8; 16];
        fill_random(&mut salt)?;
        Ok(KdfParams {
            memory_kib: Self::DEFAULT_MEMORY_KIB,
            iterations: Self::DEFAULT_ITERATIONS,
            parallelism: Self::DEFAULT_PARALLELISM,
            salt,
        })
    }

    /// Checks that the costs are within the accepted bounds: what a real device chooses, with
    /// room to grow, and nothing that makes a joining device spend long or much memory.
    pub fn validate(&self) -> Result<(), Error> {
        if self.parallelism == 0 || self.parallelism > Self::MAX_PARALLELISM {
            return Err(Error::BadKdfParams("parallelism must be 1 to 4"));
        }
        if self.iterations == 0 || self.iterations > Self::MAX_ITERATIONS {
            return Err(Error::BadKdfParams("iterations must be 1 to 8"));
        }
        if self.memory_kib < 8 * self.parallelism || self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err(Error::BadKdfParams(
                "memory must be 8 KiB per lane to 256 MiB",
            ));
        }
        if u64::from(self.memory_kib) * u64::from(self.iterations) > Self::MAX_WORK_KIB {
            return Err(Error::BadKdfParams(
                "memory times iterations must be at most 768 MiB, four times the default",
            ));
        }
        Ok(())
    }
}

impl SyncKey {
    /// Derives the sync key from a passphrase with the repository's parameters.
    ///
    /// This takes about a quarter of a second with the default parameters; derive once and keep
    /// the key in the keychain.
    pub fn from_passphrase(passphrase: &str, params: &KdfParams) -> Result<SyncKey, Error> {
        params.validate()?;
        if passphrase.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        let normalised = Zeroizing::new(passphrase.nfc().collect::<String>());
        let argon_params = argon2::Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(KEY_LEN),
        )
        .map_err(|_| Error::BadKdfParams("rejected by Argon2"))?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon_params,
        );
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(normalised.as_bytes(), &params.salt, key.as_mut())
            .map_err(|_| Error::BadKdfParams("rejected by Argon2"))?;
        Ok(SyncKey::from_bytes(*key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap(salt: u8) -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            salt: [salt; 16],
        }
    }

    #[test]
    fn same_passphrase_same_key_other_salt_other_key() {
        let a = SyncKey::from_passphrase("correct horse", &cheap(1)).unwrap();
        let b = SyncKey::from_passphrase("correct horse", &cheap(1)).unwrap();
        let c = SyncKey::from_passphrase("correct horse", &cheap(2)).unwrap();
        assert_eq!(a.expose_bytes(), b.expose_bytes());
        assert_ne!(a.expose_bytes(), c.expose_bytes());
    }

    #[test]
    fn composed_and_decomposed_accents_agree() {
        let composed = SyncKey::from_passphrase("caf\u{e9}", &cheap(1)).unwrap();
        let decomposed = SyncKey::from_passphrase("cafe\u{301}", &cheap(1)).unwrap();
        assert_eq!(composed.expose_bytes(), decomposed.expose_bytes());
    }

    #[test]
    fn hostile_parameters_are_refused_before_any_work() {
        let mut p = cheap(1);
        p.memory_kib = u32::MAX;
        assert!(matches!(
            SyncKey::from_passphrase("x", &p),
            Err(Error::BadKdfParams(_))
        ));
        let mut p = cheap(1);
        p.iterations = 0;
        assert!(matches!(
            SyncKey::from_passphrase("x", &p),
            Err(Error::BadKdfParams(_))
        ));
        let mut p = cheap(1);
        p.parallelism = 1000;
        assert!(matches!(
            SyncKey::from_passphrase("x", &p),
            Err(Error::BadKdfParams(_))
        ));
        // Each bound alone is fine, together they are too much work.
        let mut p = cheap(1);
        p.memory_kib = KdfParams::MAX_MEMORY_KIB;
        p.iterations = KdfParams::MAX_ITERATIONS;
        assert_eq!(
            p.validate(),
            Err(Error::BadKdfParams(
                "memory times iterations must be at most 768 MiB, four times the default"
            ))
        );
        p.iterations = 3;
        p.validate().unwrap();
        assert_eq!(
            SyncKey::from_passphrase("", &cheap(1)).unwrap_err(),
            Error::EmptyPassphrase
        );
    }

    #[test]
    fn generated_params_use_the_defaults_and_a_fresh_salt() {
        let a = KdfParams::generate().unwrap();
        let b = KdfParams::generate().unwrap();
        assert_eq!(a.memory_kib, 64 * 1024);
        assert_eq!((a.iterations, a.parallelism), (3, 1));
        assert_ne!(a.salt, b.salt);
        a.validate().unwrap();
    }
}
