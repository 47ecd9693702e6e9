//! Generations of the repository in storage (SPEC §11): finding the generation a key opens,
//! writing the next one, and judging the candidates for it before a device follows one.
//!
//! ```text
//! make:    <new root>repo, <new root>prev ─▶ <old root>head/next/<own tag> (write-once)
//! follow:  LIST <old root>head/next/ ─▶ validate each (opens? signed by a member it does not
//!          remove, not removed here?) ─▶ choose (uncontested, smallest creator; or a dispute)
//!          ─▶ verdict (own wrap) ─▶ <new root>repo verified with the handed key
//! join:    ferry/v1/repo ─▶ not my key? ─▶ its candidates' public parts ─▶ their roots' repo …
//! ```
//!
//! The engine decides who receives the key (the roster, and whose membership holds); this
//! module only reads and writes the objects, and judges candidates against what the caller
//! says about their creators.

use std::collections::{BTreeSet, VecDeque};

use ferry_protocol::generation::{
    self, Handover, LATER_PREFIX, Next, Plan, Previous, Rotation, Successor, later_root,
};
use ferry_protocol::names::NEXT_PREFIX;
use ferry_protocol::{
    DeviceId, DeviceKeys, DeviceTag, Identity, KdfParams, KeyId, Keys, Kind, ObjectName,
    RepoHeader, Sealed, SyncKey,
};
use ferry_store::{MAX_PAGE, RetryPolicy, Store, StoreError};
use tracing::warn;

use crate::SyncError;

/// The most candidates a joining device reads from one generation (it has no roster to tell
/// the members' from planted ones).
pub const JOIN_CANDIDATES: usize = 16;

/// The most pages of candidate names listed in one generation.
const MAX_PAGES: usize = 16;

/// The most headers a search reads: more is a tree of candidates planted by the storage.
const MAX_HEADERS: usize = 64;

fn header_limit() -> u64 {
    Kind::RepoHeader.max_sealed() as u64
}

fn next_limit() -> u64 {
    Kind::Successor.max_sealed() as u64
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
    /// The candidates for its successor that open with its key: when there is one, the key
    /// that opened it has been replaced, or is being replaced.
    pub successors: Vec<Next>,
}

/// The candidates for the successor of the generation at `root` (SPEC §11.2) whose creator's
/// tag is `wanted` (a device reads only its members': names planted under other tags cost it
/// a listing, not a read), each as read: a candidate whose bytes are not one is there with
/// why. At most `most` are read; more wanted is refused (a device cannot tell which to read).
pub async fn candidates(
    store: &dyn Store,
    retry: &RetryPolicy,
    root: &str,
    wanted: impl Fn(&DeviceTag) -> bool,
    most: usize,
) -> Result<Vec<(DeviceTag, Result<Next, SyncError>)>, SyncError> {
    let prefix = format!("{root}{NEXT_PREFIX}");
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = retry
            .run(|| store.list(&prefix, after.as_deref(), ferry_store::MAX_PAGE))
            .await?;
        for object in page.objects {
            if let Some(ObjectName::Next { creator }) = object
                .name
                .strip_prefix(root)
                .and_then(|name| name.parse().ok())
                && wanted(&creator)
            {
                names.push((creator, object.name));
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if names.len() > most {
        return Err(SyncError::GenerationRefused {
            reason: format!(
                "{} candidates for a new key are stored in the names of this device's members, \
                 more than the {most} it reads",
                names.len()
            ),
        });
    }
    let mut found = Vec::new();
    for (creator, name) in names {
        let read = match retry.run(|| store.get(&name, next_limit())).await {
            Ok(bytes) => Next::from_bytes(creator, &bytes).map_err(SyncError::from),
            Err(StoreError::NotFound { .. }) => continue,
            Err(error) if error.is_bad_object() => Err(error.into()),
            Err(error) => return Err(error.into()),
        };
        found.push((creator, read));
    }
    Ok(found)
}

/// The first [`JOIN_CANDIDATES`] candidates listed, for a device without a roster.
async fn first_candidates(
    store: &dyn Store,
    retry: &RetryPolicy,
    root: &str,
) -> Result<Vec<(DeviceTag, Result<Next, SyncError>)>, SyncError> {
    let prefix = format!("{root}{NEXT_PREFIX}");
    let page = retry
        .run(|| store.list(&prefix, None, JOIN_CANDIDATES))
        .await?;
    let listed: BTreeSet<DeviceTag> = page
        .objects
        .iter()
        .filter_map(
            |object| match object.name.strip_prefix(root)?.parse().ok()? {
                ObjectName::Next { creator } => Some(creator),
                _ => None,
            },
        )
        .collect();
    candidates(
        store,
        retry,
        root,
        |tag| listed.contains(tag),
        JOIN_CANDIDATES,
    )
    .await
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
        Err(StoreError::NotFound { .. }) if generation == 1 => {
            Err(crate::repo::no_repository(store, retry).await)
        }
        Err(StoreError::NotFound { .. }) => Err(SyncError::GenerationRefused {
            reason: format!("the new generation's header ({name}) is missing from the storage"),
        }),
        Err(error) => Err(error.into()),
    }
}

/// Finds the generation that `key_for` opens, from the first along the candidates' public
/// parts (SPEC §11.5). `key_for` gives the key to try on a generation's header: the same key
/// each time for a recovery code, or the passphrase derived with that header's parameters.
pub async fn locate(
    store: &dyn Store,
    retry: &RetryPolicy,
    mut key_for: impl FnMut(&RepoHeader) -> Result<Keys, SyncError>,
) -> Result<(Located, Keys), SyncError> {
    let mut queue = VecDeque::from([(1, generation::root(1, KeyId([0; 8])))]);
    let mut read = 0;
    let mut wrong_key = None;
    let mut moved = None;
    while let Some((number, root)) = queue.pop_front() {
        read += 1;
        if read > MAX_HEADERS {
            break;
        }
        let header = match read_header(store, retry, number, &root).await {
            Ok(header) => header,
            // A repository moved to this storage starts at a later generation.
            Err(error) if number == 1 => {
                let later = later_roots(store, retry).await?;
                if later.is_empty() {
                    return Err(error);
                }
                queue.extend(later);
                continue;
            }
            Err(_) => continue,
        };
        let keys = key_for(&header)?;
        // A joining device has no roster yet: it reads the first candidates listed.
        let next = first_candidates(store, retry, &root).await?;
        let next = next.into_iter().filter_map(|(_, next)| next.ok());
        let next = next.filter(|next| next.successor.generation == number + 1);
        if header.key_id == keys.id {
            header.verify(&keys)?;
            let successors = next.filter(|next| next.open(&keys).is_ok()).collect();
            let located = Located {
                generation: number,
                root,
                header,
                successors,
            };
            return Ok((located, keys));
        }
        wrong_key.get_or_insert(ferry_protocol::Error::WrongKey {
            object: header.key_id,
            device: keys.id,
        });
        for next in next {
            let successor = next.successor;
            if successor.moved {
                moved.get_or_insert(successor.generation);
            } else {
                queue.push_back((successor.generation, successor.root()));
            }
        }
    }
    if let Some(generation) = moved {
        return Err(SyncError::RepositoryMoved { generation });
    }
    Err(wrong_key.map_or(SyncError::NoRepository, SyncError::from))
}

/// The folders of the later generations in this storage, lowest generation first, one
/// listing each (at most [`MAX_HEADERS`]): where a repository that moved here starts, as its
/// first generation is elsewhere (SPEC §11.6).
pub async fn later_roots(
    store: &dyn Store,
    retry: &RetryPolicy,
) -> Result<Vec<(u32, String)>, SyncError> {
    let mut roots: Vec<(u32, String)> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_HEADERS {
        let page = retry
            .run(|| store.list(LATER_PREFIX, after.as_deref(), 1))
            .await?;
        let Some(object) = page.objects.first() else {
            break;
        };
        after = Some(match later_root(&object.name) {
            // Past every name in that folder: its names never hold a character above `~`.
            Some((number, _, root)) if !roots.iter().any(|(_, r)| r == root) => {
                roots.push((number, root.to_owned()));
                format!("{root}~")
            }
            _ => object.name.clone(),
        });
    }
    roots.sort();
    Ok(roots)
}

/// Deletes every object under `root`, a generation's folder: its header first, so that from
/// then on it is no generation a device finds. The number of objects deleted.
pub async fn empty(store: &dyn Store, retry: &RetryPolicy, root: &str) -> Result<usize, SyncError> {
    let header = path_in(root, &ObjectName::Repo);
    retry.run(|| store.delete(&header)).await?;
    let mut deleted = 0;
    let mut last: Option<Vec<String>> = None;
    // A generation holds far fewer pages than this: more is a store that makes names up.
    for _ in 0..MAX_EMPTIED_PAGES {
        // Each page starts from the beginning again: what was listed is gone.
        let page = retry.run(|| store.list(root, None, MAX_PAGE)).await?;
        let names: Vec<String> = page.objects.into_iter().map(|object| object.name).collect();
        if names.is_empty() {
            return Ok(deleted);
        }
        if last.as_ref() == Some(&names) {
            return Err(SyncError::GenerationRefused {
                reason: format!("the storage keeps objects under {root} after deleting them"),
            });
        }
        retry.run(|| store.delete_many(&names)).await?;
        deleted += names.len();
        last = Some(names);
    }
    Err(SyncError::GenerationRefused {
        reason: format!("the storage lists ever more objects under {root} as they are deleted"),
    })
}

/// The most listing pages one generation's folder is emptied in.
const MAX_EMPTIED_PAGES: usize = 100_000;

/// A new generation, sealed and ready to write.
pub struct Prepared {
    /// Its candidate, for the old generation.
    pub next: Next,
    /// Its header.
    pub header: RepoHeader,
    /// `prev`: the old key sealed with the new one.
    pub previous: Sealed,
    /// The new generation's keys: what an earlier run with the same key wrote is recognised
    /// by them.
    keys: Keys,
}

impl Prepared {
    /// Seals the generation `plan` describes, made from the generation whose sync key is
    /// `old`: its candidate, its header (for the repository `repo_id`; `kdf` when the new key
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
            keys,
        })
    }
}

/// Writes a prepared generation: its header and `prev` in its root, then its candidate in the
/// old root (whose keys are `old`), write-once, under its creator's own name. Bytes there that
/// are not a candidate its creator (whose keys are `own`) signed are junk, or a forgery in its
/// name: they are deleted and the candidate written again; another candidate it did sign is
/// refused (a device makes one candidate per generation). Safe to run again after a crash at
/// any point with the same new key: a header, `prev` and candidate that an earlier run sealed
/// with it (other nonces, the same content) are taken as this run's. Which candidate the
/// devices follow is then
/// [`choose`]'s.
pub async fn commit(
    store: &dyn Store,
    retry: &RetryPolicy,
    old_root: &str,
    prepared: &Prepared,
    old: &Keys,
    own: &DeviceKeys,
) -> Result<(), SyncError> {
    commit_to(store, store, retry, old_root, prepared, old, own).await
}

/// [`commit`] of a generation in other storage (a move, or new credentials): its header and
/// `prev` in `to`, its candidate in the old generation in `from`.
pub async fn commit_to(
    from: &dyn Store,
    to: &dyn Store,
    retry: &RetryPolicy,
    old_root: &str,
    prepared: &Prepared,
    old: &Keys,
    own: &DeviceKeys,
) -> Result<(), SyncError> {
    let successor = prepared.next.successor;
    let new_root = successor.root();
    let keys = &prepared.keys;
    let repo_id = prepared.header.repo_id;
    let header = prepared.header.to_bytes();
    let earlier_header = |found: &[u8]| {
        RepoHeader::from_bytes(found)
            .is_ok_and(|header| header.repo_id == repo_id && header.verify(keys).is_ok())
    };
    let name = path_in(&new_root, &ObjectName::Repo);
    write_once(to, retry, &name, &header, earlier_header).await?;
    let previous = prepared.previous.as_bytes();
    let earlier_previous = |found: &[u8]| {
        keys.data
            .open_signed::<Previous>(&ObjectName::Prev, found)
            .is_ok_and(|claimed| {
                claimed.verify(own).is_ok()
                    && claimed.value.generation + 1 == successor.generation
                    && claimed.value.sync_key().key_id() == old.id
            })
    };
    let name = path_in(&new_root, &ObjectName::Prev);
    write_once(to, retry, &name, previous, earlier_previous).await?;
    let name = path_in(old_root, &prepared.next.name());
    let record = prepared.next.to_bytes();
    for _ in 0..2 {
        match retry.run(|| from.put_new(&name, record.clone())).await {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        // Storage that ignores write-once may have kept other bytes: what it serves is what
        // the others read.
        match retry.run(|| from.get(&name, next_limit())).await {
            Ok(found) if found == record => return Ok(()),
            Ok(found) => {
                let signed = Next::from_bytes(prepared.next.creator, &found)
                    .ok()
                    .filter(|next| next.open(old).is_ok_and(|c| c.verify(own).is_ok()));
                // An earlier run's, for this very key: this run's own.
                if signed
                    .as_ref()
                    .is_some_and(|next| next.successor == successor)
                {
                    return Ok(());
                }
                if signed.is_some() {
                    return Err(SyncError::CandidateMade);
                }
            }
            Err(error) if error.is_bad_object() => {}
            Err(error) => return Err(error.into()),
        }
        warn!(%name, "other bytes stood in this device's name for its candidate: replacing them");
        retry.run(|| from.delete(&name)).await?;
    }
    Err(SyncError::GenerationRefused {
        reason: format!("the storage keeps other bytes at {name} than this device's candidate"),
    })
}

/// Writes `bytes` at `name` once; finding the very same bytes there, or bytes an earlier run
/// wrote (`earlier`), is success (a run after a crash), other bytes are not.
async fn write_once(
    store: &dyn Store,
    retry: &RetryPolicy,
    name: &str,
    bytes: &[u8],
    earlier: impl Fn(&[u8]) -> bool,
) -> Result<(), SyncError> {
    match retry.run(|| store.put_new(name, bytes.to_vec())).await {
        Ok(()) => Ok(()),
        Err(StoreError::AlreadyExists { .. }) => {
            let found = retry.run(|| store.get(name, header_limit())).await?;
            if found == bytes || earlier(&found) {
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

/// What the roster says about a candidate's creator.
#[derive(Debug, Clone, Copy)]
pub struct Creator {
    /// Its registered keys.
    pub keys: DeviceKeys,
    /// Whether its membership holds (SPEC §4.7).
    pub holds: bool,
}

/// A candidate that passed SPEC §11.3's steps 1 to 3.
#[derive(Debug, Clone)]
pub struct Valid {
    /// The candidate.
    pub next: Next,
    /// Its rotation record, opened and its signature checked.
    pub rotation: Rotation,
    /// Its creator's registered keys, which signed it.
    pub creator_keys: DeviceKeys,
}

/// Checks a candidate found in generation `current` (SPEC §11.3, steps 1 to 3), with the
/// generation's `keys`; `creator` says what this device's roster holds for a device id, and
/// `removed_here` whether the person removed that device on this device.
pub fn validate(
    next: &Next,
    current: u32,
    keys: &Keys,
    creator: impl Fn(&DeviceId) -> Option<Creator>,
    removed_here: impl Fn(&DeviceId) -> bool,
) -> Result<Valid, SyncError> {
    let refused = |reason: String| SyncError::GenerationRefused { reason };
    let successor = next.successor;
    if successor.generation != current + 1 {
        return Err(refused(format!(
            "it announces generation {} while this device is on generation {current} (a \
             candidate replayed from another generation)",
            successor.generation
        )));
    }
    let claimed = next.open(keys)?;
    let by = claimed.value.creator;
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
    if claimed.value.revokes(&by) {
        return Err(refused(format!(
            "device {} removes itself in it",
            by.short()
        )));
    }
    if removed_here(&by) {
        return Err(refused(format!(
            "it was made by device {}, which was removed on this device",
            by.short()
        )));
    }
    Ok(Valid {
        next: next.clone(),
        rotation: claimed.value,
        creator_keys: signer.keys,
    })
}

/// Which of the valid candidates of one generation a device follows (SPEC §11.3).
#[derive(Debug)]
pub enum Choice<'a> {
    /// None: the generation has no successor yet.
    Stay,
    /// This one: of the candidates whose creator is still a member once every removal counts,
    /// the one with the smallest creator id.
    Follow(&'a Valid),
    /// No creator is still a member once every removal counts (two devices removed each
    /// other, or a device made by one removed the other): only the person can say which
    /// device is lost. These are the candidates.
    Dispute(Vec<&'a Valid>),
}

/// Chooses among the valid candidates of one generation. `members_without(removed)` gives
/// the devices whose membership holds once the devices `removed` are out (their attestations
/// no longer counting): a creator removed by any candidate, or holding only through such a
/// device (a device a lost one registered and vouched for), is not followed.
pub fn choose(
    valid: &[Valid],
    members_without: impl Fn(&BTreeSet<DeviceId>) -> BTreeSet<DeviceId>,
) -> Choice<'_> {
    if valid.is_empty() {
        return Choice::Stay;
    }
    let removed: BTreeSet<DeviceId> = valid
        .iter()
        .flat_map(|candidate| candidate.rotation.revoked.iter().copied())
        .collect();
    let members = members_without(&removed);
    match valid
        .iter()
        .filter(|candidate| members.contains(&candidate.rotation.creator))
        .min_by_key(|candidate| candidate.rotation.creator)
    {
        Some(chosen) => Choice::Follow(chosen),
        None => Choice::Dispute(valid.iter().collect()),
    }
}

/// What the chosen candidate means for this device.
#[derive(Debug)]
pub enum Verdict {
    /// Its wrap opened: the new key (and new storage, if any) to move to.
    Follow {
        /// The new generation.
        successor: Successor,
        /// What its wrap sealed.
        handover: Handover,
    },
    /// The candidate removes this device.
    Removed {
        /// Who removed it.
        by: DeviceId,
        /// When, in Unix milliseconds by that device's clock.
        at_ms: u64,
    },
    /// The candidate neither removes this device nor gives it the key (its membership did not
    /// hold, and it was not included).
    LeftOut {
        /// Who made the candidate.
        by: DeviceId,
        /// When, in Unix milliseconds.
        at_ms: u64,
    },
}

/// Opens this device's part of the chosen candidate (SPEC §11.3, step 4): the device `device`
/// with `identity`, on the generation whose key id is `old`. Step 5 (the new header) is
/// [`check_new_header`]'s.
pub fn verdict(
    chosen: &Valid,
    old: KeyId,
    identity: &Identity,
    device: DeviceId,
) -> Result<Verdict, SyncError> {
    let rotation = &chosen.rotation;
    let (by, at_ms) = (rotation.creator, rotation.time_ms);
    if rotation.revokes(&device) {
        return Ok(Verdict::Removed { by, at_ms });
    }
    let Some(wrap) = rotation.wrap_for(&device) else {
        return Ok(Verdict::LeftOut { by, at_ms });
    };
    let successor = chosen.next.successor;
    let handover = wrap.open(identity, old, &successor, by)?;
    Ok(Verdict::Follow {
        successor,
        handover,
    })
}

/// What the new generation must agree with: the repository, the key it follows and the
/// device that made it.
#[derive(Debug, Clone, Copy)]
pub struct Lineage {
    /// The repository's id.
    pub repo_id: [u8; 16],
    /// The key id of the generation it follows.
    pub old: KeyId,
    /// The keys of the device that made it.
    pub creator: DeviceKeys,
}

/// Reads the new generation's header and checks it with the handed key, and that it is a
/// generation of the repository `repo_id`; then its `prev`, which must be signed by its
/// creator and name the generation before it and that generation's key (SPEC §11.3 step 5).
pub async fn check_new_header(
    store: &dyn Store,
    retry: &RetryPolicy,
    successor: &Successor,
    keys: &Keys,
    lineage: Lineage,
) -> Result<RepoHeader, SyncError> {
    let repo_id = lineage.repo_id;
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
    let name = path_in(&successor.root(), &ObjectName::Prev);
    let limit = Kind::Previous.max_sealed() as u64;
    let refused = |why: String| SyncError::GenerationRefused {
        reason: format!("the new generation's record of the key before it ({name}) {why}"),
    };
    let bytes = match retry.run(|| store.get(&name, limit)).await {
        Ok(bytes) => bytes,
        Err(StoreError::NotFound { .. }) => return Err(refused("is missing".into())),
        Err(error) => return Err(error.into()),
    };
    let previous = keys
        .data
        .open_signed::<Previous>(&ObjectName::Prev, &bytes)
        .map_err(|error| refused(format!("does not open: {error}")))?;
    previous
        .verify(&lineage.creator)
        .map_err(|_| refused("is not signed by the device that made it".into()))?;
    if previous.value.generation + 1 != successor.generation
        || previous.value.sync_key().key_id() != lineage.old
    {
        return Err(refused(
            "names another generation than the one it follows (a generation copied from \
             elsewhere)"
                .into(),
        ));
    }
    Ok(header)
}
