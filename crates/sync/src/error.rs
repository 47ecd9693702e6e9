//! What can go wrong while syncing, with what to do about it.

use std::fmt;

use ferry_protocol::{DeviceId, KeyId};
use ferry_store::StoreError;

/// Why a sync step failed. Objects that fail to open are not errors: they are quarantined and
/// reported in the status (see [`crate::Status`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The storage location holds no Ferry repository.
    #[error(
        "there is no Ferry repository at this storage location; create one with `ferry init` \
         or check the store URL and prefix"
    )]
    NoRepository,
    /// `init` found a repository already there.
    #[error(
        "a Ferry repository already exists at this storage location (key {key_id}); add this \
         device to it with `ferry join` instead of creating a new one"
    )]
    RepositoryExists {
        /// The existing repository's key id.
        key_id: String,
    },
    /// A generation record or a new generation was refused (SPEC §11.4): nothing was installed,
    /// and the device goes on with the generation it has.
    #[error(
        "a new key for the repository was refused: {reason}; nothing was installed and this \
         device goes on with the key it has (if the other devices moved on, pair this device \
         again from one of them)"
    )]
    GenerationRefused {
        /// Why.
        reason: String,
    },
    /// This device already made another candidate for the generation after this one (a device
    /// makes one per generation): the devices follow the one chosen, and a further removal is
    /// made from there.
    #[error(
        "this device already made another new key for this generation of the repository (one \
         per device): it follows the one chosen, and removes what is left from there"
    )]
    CandidateMade,
    /// The move to a new generation waits: what some devices wrote in the old one could not
    /// be read, and it would be left behind.
    #[error(
        "this device did not move to the repository's new key yet: what {devices} wrote under \
         the old one could not be read, and would be left behind; it tries again at the next \
         sync"
    )]
    GenerationUnread {
        /// The devices (tags) not read, each with why.
        devices: String,
    },
    /// The repository moved to other storage, which only its wraps name.
    #[error(
        "the repository moved to other storage (generation {generation}) and only the devices \
         it was handed to know where: pair this device from one of them (`ferry pair` there, \
         `ferry join` here)"
    )]
    RepositoryMoved {
        /// The generation in the other storage.
        generation: u32,
    },
    /// The new generation removes this device: it writes nothing more (SPEC §11.3).
    #[error(
        "this device was removed from the repository on {} by device {}: it writes nothing \
         more; to use it again, pair it from another device (`ferry pair` there, `ferry join` \
         here)",
        Day(*at_ms),
        by.short()
    )]
    Removed {
        /// The device that removed it.
        by: DeviceId,
        /// When, in Unix milliseconds by that device's clock.
        at_ms: u64,
    },
    /// The new generation leaves this device out without removing it: its membership did not
    /// hold and the device that made it did not include it.
    #[error(
        "the repository moved to a new key on {} (made by device {}), which was not given to \
         this device: nobody known vouched for it; pair it again from another device, or, if \
         device {} is the one that is lost, remove it here with `ferry devices remove`",
        Day(*at_ms),
        by.short(),
        by.short()
    )]
    LeftOut {
        /// The device that made the generation.
        by: DeviceId,
        /// When, in Unix milliseconds.
        at_ms: u64,
    },
    /// Two devices removed each other: this device writes nothing under its key until the
    /// person removes one of them here.
    #[error(
        "devices removed each other ({}): one of them is lost, and only you know which; remove \
         it here with `ferry devices remove DEVICE`, and this device follows the other",
        sides.iter().map(|(by, removed)| format!(
            "{} removed {}",
            by.short(),
            removed.iter().map(DeviceId::short).collect::<Vec<_>>().join(", ")
        )).collect::<Vec<_>>().join("; ")
    )]
    Dispute {
        /// Each candidate's creator and the devices it removes.
        sides: Vec<(DeviceId, Vec<DeviceId>)>,
    },
    /// The repository or an object could not be read with this device's keys, or was written
    /// by a newer Ferry: the protocol error says which, and what to do.
    #[error(transparent)]
    Protocol(#[from] ferry_protocol::Error),
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The local database failed.
    #[error(
        "the local database failed: {0}; check the disk (space, permissions) under the Ferry home"
    )]
    Database(#[from] rusqlite::Error),
    /// The local database holds state this build cannot read.
    #[error(
        "the local database holds state this Ferry cannot read ({detail}); move the Ferry home \
         aside and join the repository again (nothing in the storage is lost)"
    )]
    LocalState {
        /// What failed to decode.
        detail: String,
    },
    /// The local database was written by a newer Ferry.
    #[error(
        "the local database has schema version {found}, newer than this Ferry knows ({known}); \
         upgrade Ferry on this device"
    )]
    NewerDatabase {
        /// The database's version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// The local database belongs to another repository than the one opened.
    #[error(
        "the local database belongs to the repository with key {database}, but the storage holds \
         key {repository}; use another Ferry home (--home) for this repository"
    )]
    OtherRepository {
        /// The database's key id.
        database: KeyId,
        /// The storage's key id.
        repository: KeyId,
    },
    /// A blob's chunks do not open or do not fit together.
    #[error(
        "the large content stored at {name} is damaged ({reason}); the device that copied it can \
         copy it again"
    )]
    BrokenBlob {
        /// The chunk's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// This device is registered in the roster with other keys than the identity it was given.
    #[error(
        "this device is registered with the identity key {registered}, but its secret store \
         holds {found}: the identity it signs with was lost or replaced, so other devices would \
         take what it writes for forgeries; join the repository again with `ferry join` (it \
         becomes a new device) or restore the original identity"
    )]
    IdentityChanged {
        /// Fingerprint of the registered keys.
        registered: String,
        /// Fingerprint of the keys given.
        found: String,
    },
    /// A device being paired is registered already, with other keys.
    #[error(
        "device {device} is registered already, with the identity key {registered}: a device \
         id is never reused; pair the new device again (it makes a new id)"
    )]
    DeviceTaken {
        /// The device's short id.
        device: String,
        /// Fingerprint of the registered keys.
        registered: String,
    },
    /// A segment this device wrote earlier is in storage with other bytes than it recorded.
    #[error(
        "the storage holds {name} with other bytes than this device wrote; another installation \
         may be using this device's identity (restore it with `ferry join` to get a new one)"
    )]
    Divergent {
        /// The object's name.
        name: String,
    },
    /// The storage serves an object of this device's that its listing does not show: every
    /// listing misses what is stored, so nothing is put back.
    #[error(
        "the storage serves {name} but its listing shows none of this device's objects: the \
         devices cannot see each other's data, and nothing was uploaded again; check the \
         storage URL's folder (for WebDAV, how the server spells its path) with `ferry doctor`"
    )]
    ListingHides {
        /// The object's name.
        name: String,
    },
}

impl SyncError {
    /// Whether the failure concerns the one object or listing asked for, so that others may
    /// still be read: anything but refused credentials, unusable settings and local failures.
    pub fn is_about_one_object(&self) -> bool {
        match self {
            SyncError::Store(error) => !matches!(
                error,
                StoreError::Unauthorized { .. }
                    | StoreError::Misconfigured(_)
                    | StoreError::Unreachable { .. }
            ),
            SyncError::Protocol(_) | SyncError::BrokenBlob { .. } => true,
            _ => false,
        }
    }

    /// Whether retrying later can help (the storage was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Store(error) => error.is_transient(),
            _ => false,
        }
    }
}

/// A day of the calendar (UTC), from Unix milliseconds: `2026-12-06`.
struct Day(u64);

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar).
        let days = (self.0 / 86_400_000) as i64 + 719_468;
        let era = days.div_euclid(146_097);
        let of_era = days.rem_euclid(146_097);
        let year_of_era = (of_era - of_era / 1_460 + of_era / 36_524 - of_era / 146_096) / 365;
        let of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * of_year + 2) / 153;
        let day = of_year - (153 * month_index + 2) / 5 + 1;
        let month = if month_index < 10 {
            month_index + 3
        } else {
            month_index - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::Day;

    #[test]
    fn days_are_calendar_dates() {
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!(Day(951_782_400_000).to_string(), "2000-02-29");
        assert_eq!(Day(1_796_515_200_000).to_string(), "2026-12-06");
        assert_eq!(Day(1_796_601_599_999).to_string(), "2026-12-06");
    }
}
