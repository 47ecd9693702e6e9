//! Generations of the repository in storage (SPEC §11): finding the generation a key opens,
//! writing the next one, and judging a `head/next` record before a device follows it.
//!
//! ```text
//! make:    <new root>repo (write-once) ─▶ <new root>prev ─▶ <old root>head/next (write-once: the commit)
//! follow:  <old root>head/next ─▶ judge (opens? signer a member not removed? own wrap?) ─▶
//!          <new root>repo verified with the handed key
//! join:    ferry/v1/repo ─▶ not my key? ─▶ its head/next's public part ─▶ the next root's repo …
//! ```
//!
//! The engine decides who receives the key (the roster, and whose membership holds); this
//! module only reads and writes the objects, and judges a record against what the caller
//! says about its creator.

use ferry_protocol::generation::{self, Handover, Next, Plan, Previous, Successor};
use ferry_protocol::{
    DeviceId, DeviceKeys, Identity, KdfParams, KeyId, Keys, ObjectName, RepoHeader, Sealed, SyncKey,
};
use ferry_store::{RetryPolicy, Store, StoreError};

use crate::SyncError;

fn header_limit() -> u64 {
    ObjectName::Repo.kind().max_sealed() as u64
}

fn next_limit() -> u64 {
    ObjectName::Next.kind().max_sealed() as u64
}

/// The store path of `name` in the generation whose root is `root`.
pub fn path_in(root: &str, name: &ObjectName) -> String {
    format!("{root}{name}")
}

/// A generation of the repository, as found in storage.
#[derive(Debug, Clone)]
pub struct Located {
    /// Its number, from 1.
    pub generation: u32,
    /// Its folder below the store's prefix.
    pub root: String,
    /// Its header, verified with the key that opened it.
    pub header: RepoHeader,
    /// Its successor's record, when it has one: the key that opened it has been replaced.
    pub next: Option<Next>,
}

/// Reads `head/next` of the generation at `root`: `None` when it has no successor yet.
pub async fn read_next(
    store: &dyn Store,
    retry: &RetryPolicy,
    root: &str,
) -> Result<Option<Next>, SyncError> {
    let name = path_in(root, &ObjectName::Next);
    match retry.run(|| store.get(&name, next_limit())).await {
        Ok(bytes) => Ok(Some(Next::from_bytes(&bytes)?)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

async fn read_header(
    store: &dyn Store,
    retry: &RetryPolicy,
    generation: u32,
    root: &str,
) -> Result<RepoHeader, SyncError> {
    let name = path_in(root, &ObjectName::Repo);
    match retry.run(|| store.get(&name, header_limit())).await {
        Ok(bytes) => Ok(RepoHeader::from_bytes(&bytes)?),
        Err(StoreError::NotFound { .. }) if generation == 1 => Err(SyncError::NoRepository),
        Err(StoreError::NotFound { .. }) => Err(SyncError::GenerationRefused {
            reason: format!("the new generation's header ({name}) is missing from the storage"),
        }),
        Err(error) => Err(error.into()),
    }
}

/// Finds the generation that `key_for` opens, from the first along the public records
/// (SPEC §11.5). `key_for` gives the key to try on a generation's header: the same key each
/// time for a recovery code, or the passphrase derived with that header's parameters.
pub async fn locate(
    store: &dyn Store,
    retry: &RetryPolicy,
    mut key_for: impl FnMut(&RepoHeader) -> Result<Keys, SyncError>,
) -> Result<(Located, Keys), SyncError> {
    let mut generation = 1;
    let mut root = generation::root(1, KeyId([0; 8]));
    loop {
        let header = read_header(store, retry, generation, &root).await?;
        let keys = key_for(&header)?;
        let next = read_next(store, retry, &root).await?;
        if header.key_id == keys.id {
            header.verify(&keys)?;
            let located = Located {
                generation,
                root,
                header,
                next,
            };
            return Ok((located, keys));
        }
        let Some(next) = next else {
            // The newest generation, and not this key's: the wrong key, named as usual.
            return Err(ferry_protocol::Error::WrongKey {
                object: header.key_id,
                device: keys.id,
            }
            .into());
        };
        let successor = next.successor;
        if successor.generation != generation + 1 {
            return Err(SyncError::GenerationRefused {
                reason: format!(
                    "generation {generation}'s record announces generation {}, not the next one",
                    successor.generation
                ),
            });
        }
        if successor.moved {
            return Err(SyncError::RepositoryMoved {
                generation: successor.generation,
            });
        }
        generation = successor.generation;
        root = successor.root();
    }
}

/// A new generation, sealed and ready to write.
pub struct Prepared {
    /// Its record, for the old generation.
    pub next: Next,
    /// Its header.
    pub header: RepoHeader,
    /// `prev`: the old key sealed with the new one.
    pub previous: Sealed,
}

impl Prepared {
    /// Seals the generation `plan` describes, made from the generation whose sync key is
    /// `old`: its record, its header (for the repository `repo_id`; `kdf` when the new key
    /// comes from a passphrase) and `prev`.
    pub fn new(
        old: &SyncKey,
        identity: &Identity,
        plan: &Plan<'_>,
        kdf: Option<KdfParams>,
        repo_id: [u8; 16],
    ) -> Result<Prepared, SyncError> {
        let next = Next::create(&old.keys(), identity, plan)?;
        let keys = plan.key.keys();
        let header = RepoHeader::create_for(&keys, kdf, repo_id)?;
        let previous = Previous {
            writer: plan.creator,
            generation: plan.successor.generation - 1,
            key: *old.expose_bytes(),
        };
        let previous = keys
            .data
            .seal_signed(&ObjectName::Prev, &previous, identity)?;
        Ok(Prepared {
            next,
            header,
            previous,
        })
    }
}

/// How writing a new generation ended.
#[derive(Debug)]
pub enum Committed {
    /// Ours is the repository's next generation.
    Ours,
    /// Another device's record was there first: follow it (and rotate again from there when
    /// it did not remove every device ours did).
    Theirs(Next),
}

/// Writes a prepared generation (header and `prev` in its root, then `head/next` in the old
/// root, write-once, as the commit). Safe to run again after a crash at any point with the
/// same prepared objects.
pub async fn commit(
    store: &dyn Store,
    retry: &RetryPolicy,
    old_root: &str,
    prepared: &Prepared,
) -> Result<Committed, SyncError> {
    let new_root = prepared.next.successor.root();
    let header = prepared.header.to_bytes();
    write_once(
        store,
        retry,
        &path_in(&new_root, &ObjectName::Repo),
        &header,
    )
    .await?;
    let previous = prepared.previous.as_bytes();
    write_once(
        store,
        retry,
        &path_in(&new_root, &ObjectName::Prev),
        previous,
    )
    .await?;
    let name = path_in(old_root, &ObjectName::Next);
    let record = prepared.next.to_bytes();
    let ours = |found: &[u8]| {
        if found == record.as_slice() {
            Ok(Committed::Ours)
        } else {
            Ok(Committed::Theirs(Next::from_bytes(found)?))
        }
    };
    match retry.run(|| store.put_new(&name, record.clone())).await {
        Ok(()) => {
            // Storage that ignores write-once may have let another record replace ours, or
            // ours replace another: what it serves now is the record.
            let found = retry.run(|| store.get(&name, next_limit())).await?;
            ours(&found)
        }
        Err(StoreError::AlreadyExists { .. }) => {
            let found = retry.run(|| store.get(&name, next_limit())).await?;
            ours(&found)
        }
        Err(error) => Err(error.into()),
    }
}

/// Writes `bytes` at `name` once; finding the very same bytes there is success (a run after a
/// crash), other bytes are not.
async fn write_once(
    store: &dyn Store,
    retry: &RetryPolicy,
    name: &str,
    bytes: &[u8],
) -> Result<(), SyncError> {
    match retry.run(|| store.put_new(name, bytes.to_vec())).await {
        Ok(()) => Ok(()),
        Err(StoreError::AlreadyExists { .. }) => {
            let found = retry.run(|| store.get(name, header_limit())).await?;
            if found == bytes {
                Ok(())
            } else {
                Err(SyncError::GenerationRefused {
                    reason: format!(
                        "the storage already holds other bytes at {name}, where the new \
                         generation goes"
                    ),
                })
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// What the roster says about a record's creator.
#[derive(Debug, Clone, Copy)]
pub struct Creator {
    /// Its registered keys.
    pub keys: DeviceKeys,
    /// Whether its membership holds (SPEC §4.7).
    pub holds: bool,
}

/// What a device makes of a record it accepted.
#[derive(Debug)]
pub enum Verdict {
    /// Its wrap opened: the new key (and new storage, if any) to move to.
    Follow {
        /// The new generation.
        successor: Successor,
        /// What its wrap sealed.
        handover: Handover,
    },
    /// The record removes this device.
    Removed {
        /// Who removed it.
        by: DeviceId,
        /// When, in Unix milliseconds by that device's clock.
        at_ms: u64,
    },
    /// The record neither removes this device nor gives it the key (its membership did not
    /// hold, and it was not included).
    LeftOut {
        /// Who made the record.
        by: DeviceId,
        /// When, in Unix milliseconds.
        at_ms: u64,
    },
}

/// Judges the record `next` found in generation `current` (SPEC §11.4, steps 1 to 4), as the
/// device `device` with `identity`, holding the generation's `keys`; `creator` says what this
/// device's roster holds for a device id. Step 5 (the new header) is
/// [`check_new_header`]'s.
pub fn judge(
    next: &Next,
    current: u32,
    keys: &Keys,
    identity: &Identity,
    device: DeviceId,
    creator: impl Fn(&DeviceId) -> Option<Creator>,
) -> Result<Verdict, SyncError> {
    let refused = |reason: String| SyncError::GenerationRefused { reason };
    let successor = next.successor;
    if successor.generation != current + 1 {
        return Err(refused(format!(
            "the record announces generation {} while this device is on generation {current} \
             (a record replayed from another generation)",
            successor.generation
        )));
    }
    let claimed = next.open(keys)?;
    let rotation = &claimed.value;
    let by = rotation.creator;
    let Some(signer) = creator(&by) else {
        return Err(refused(format!(
            "it was made by device {}, which is not in this device's roster",
            by.short()
        )));
    };
    claimed.verify(&signer.keys).map_err(|_| {
        refused(format!(
            "it is not signed by device {}, whose name it carries (forged)",
            by.short()
        ))
    })?;
    if !signer.holds {
        return Err(refused(format!(
            "it was made by device {}, which joined with the sync key alone and was never \
             vouched for",
            by.short()
        )));
    }
    if rotation.revokes(&by) {
        return Err(refused(format!(
            "device {} removes itself in it",
            by.short()
        )));
    }
    if rotation.revokes(&device) {
        return Ok(Verdict::Removed {
            by,
            at_ms: rotation.time_ms,
        });
    }
    let Some(wrap) = rotation.wrap_for(&device) else {
        return Ok(Verdict::LeftOut {
            by,
            at_ms: rotation.time_ms,
        });
    };
    let handover = wrap.open(identity, keys.id, &successor)?;
    Ok(Verdict::Follow {
        successor,
        handover,
    })
}

/// Reads the new generation's header and checks it with the handed key, and that it is a
/// generation of the repository `repo_id` (SPEC §11.4 step 5).
pub async fn check_new_header(
    store: &dyn Store,
    retry: &RetryPolicy,
    successor: &Successor,
    keys: &Keys,
    repo_id: [u8; 16],
) -> Result<RepoHeader, SyncError> {
    let header = read_header(store, retry, successor.generation, &successor.root()).await?;
    header
        .verify(keys)
        .map_err(|error| SyncError::GenerationRefused {
            reason: format!(
                "the new generation's header does not check with the handed key: {error}"
            ),
        })?;
    if header.repo_id != repo_id {
        return Err(SyncError::GenerationRefused {
            reason: "the new generation's header is another repository's".into(),
        });
    }
    Ok(header)
}
