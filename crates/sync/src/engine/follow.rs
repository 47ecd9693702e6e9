//! Moving to a new generation (SPEC §11.3, last step): the device takes everything it holds
//! along as its first snapshot there, and goes on under the new key.
//!
//! ```text
//! fetch the old generation (what the others wrote there comes along)
//! record the removals the generation made (they stay out of every later rotation)
//! seal snapshot 1 + head 1 under the new key ─▶ one transaction: key id, generation,
//!     checkpoint, own operations covered, cursors/quarantine/reserved segments dropped
//! next upload: PUT snap/<new tag>/1, head/<new tag>/1, then segments from seq 2
//! ```
//!
//! Blobs keep their ids (clips name them): the device that made the generation writes the
//! ones it holds and live clips name into the new generation; a blob not there yet is read
//! from the generation before, whose key `prev` holds.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use ferry_core::Body;
use ferry_protocol::generation::{Handover, Previous, Successor, root};
use ferry_protocol::{
    BlobId, Claimed, Cursor, DeviceId, Head, Identity, KeyId, Keys, ObjectName, RepoHeader,
    Snapshot,
};
use ferry_store::{Store, StoreError};
use tracing::warn;

use super::{Engine, EngineConfig, Succession, large};
use crate::db::{FirstSnapshot, Move};
use crate::remote::Remote;
use crate::transfer::{Kind, Outcome, Route, Transfer};
use crate::{SyncError, generation};

/// A generation this device may follow: its candidate was chosen and opened.
#[derive(Debug)]
pub struct NextGeneration {
    /// The new generation.
    pub successor: Successor,
    /// The new key, and storage if it changed.
    pub handover: Handover,
    /// The device that made it.
    pub by: DeviceId,
    /// When, in Unix milliseconds by that device's clock.
    pub at_ms: u64,
    /// The devices it removes.
    pub revoked: Vec<DeviceId>,
    /// The devices it gives the new key to.
    pub recipients: Vec<DeviceId>,
}

/// One generation on: where to, with which keys, made by whom and when, removing whom.
struct Step<'a> {
    successor: Successor,
    keys: Keys,
    by: DeviceId,
    /// When, in Unix milliseconds by its creator's clock (0: not known).
    at_ms: u64,
    revoked: &'a [DeviceId],
    /// The devices given its key (empty: not known).
    recipients: &'a [DeviceId],
}

/// A generation before the one this device is on, to read blobs not moved yet.
pub(super) struct Older {
    pub(super) remote: Remote,
    pub(super) keys: Keys,
}

/// Why this device writes nothing more under its key (SPEC §11.3).
#[derive(Debug, Clone)]
pub(super) enum Halt {
    Removed {
        by: DeviceId,
        at_ms: u64,
    },
    LeftOut {
        by: DeviceId,
        at_ms: u64,
    },
    Dispute {
        sides: Vec<(DeviceId, Vec<DeviceId>)>,
    },
}

impl Halt {
    pub(super) fn error(&self) -> SyncError {
        match self.clone() {
            Halt::Removed { by, at_ms } => SyncError::Removed { by, at_ms },
            Halt::LeftOut { by, at_ms } => SyncError::LeftOut { by, at_ms },
            Halt::Dispute { sides } => SyncError::Dispute { sides },
        }
    }
}

impl Engine {
    /// The folder, below the store's prefix, of the generation this device is on.
    pub fn root(&self) -> &str {
        self.remote.root()
    }

    /// The store of the generation this device is on.
    pub fn store(&self) -> Arc<dyn Store> {
        self.remote.shared_store()
    }

    /// Whether the last listing of the storage showed a candidate for the next generation:
    /// [`next_generation`](Engine::next_generation) then says what it means for this device.
    pub fn successor_listed(&self) -> bool {
        self.remote.next_listed()
    }

    /// The generation this device follows next, if there is one ([`succession`]
    /// (Engine::succession), the devices the person removed here in `removed_here`). When the
    /// candidates remove this device, leave it out or dispute each other, it writes nothing
    /// more (uploads fail with the same error) until a later look says otherwise, and the
    /// error is returned.
    pub async fn next_generation(
        &mut self,
        removed_here: &BTreeSet<DeviceId>,
    ) -> Result<Option<NextGeneration>, SyncError> {
        let halt = match self.succession(removed_here).await? {
            Succession::None => None,
            Succession::Follow(next) => {
                self.halted = None;
                return Ok(Some(next));
            }
            Succession::Removed { by, at_ms } => Some(Halt::Removed { by, at_ms }),
            Succession::LeftOut { by, at_ms } => Some(Halt::LeftOut { by, at_ms }),
            Succession::Dispute { sides } => Some(Halt::Dispute { sides }),
        };
        self.halted = halt;
        match &self.halted {
            Some(halt) => {
                let error = halt.error();
                self.note(error.to_string());
                Err(error)
            }
            None => Ok(None),
        }
    }

    /// Moves this device to `next` (chosen by [`succession`](Engine::succession)), in
    /// `store`: this store, or the storage the handover names. What the old generation holds
    /// of the other devices is fetched first; everything this device holds, its operations
    /// not yet sent among it, goes along as its first snapshot there, written by the next
    /// upload. The caller keeps the new key (in its secret store) before it calls this: once
    /// the database moved, only the new key opens it, and a device stopped after keeping the
    /// key and before moving moves when it opens again ([`Engine::open`]).
    pub async fn follow(
        &mut self,
        next: &NextGeneration,
        store: Arc<dyn Store>,
    ) -> Result<(), SyncError> {
        // A generation in other storage, or reached with other credentials, is checked there.
        if next.handover.storage.is_some() {
            let creator = self
                .replica
                .state()
                .device(&next.by)
                .map(|entry| entry.keys);
            let Some(creator) = creator else {
                return Err(SyncError::GenerationRefused {
                    reason: format!("its creator {} is not in the roster", next.by.short()),
                });
            };
            let lineage = self.lineage(creator).await?;
            let keys = next.handover.key.keys();
            let retry = self.remote.retry();
            generation::check_new_header(&*store, retry, &next.successor, &keys, lineage).await?;
        }
        let step = Step {
            successor: next.successor,
            keys: next.handover.key.keys(),
            by: next.by,
            at_ms: next.at_ms,
            revoked: &next.revoked,
            recipients: &next.recipients,
        };
        self.move_to(step, store).await
    }

    /// Moves this device one generation on (see [`follow`](Engine::follow)).
    async fn move_to(&mut self, step: Step<'_>, store: Arc<dyn Store>) -> Result<(), SyncError> {
        let Step {
            successor,
            keys,
            by,
            at_ms,
            revoked,
            recipients,
        } = step;
        if successor.generation != self.generation + 1 || successor.key_id == self.keys.id {
            return Err(SyncError::GenerationRefused {
                reason: format!(
                    "generation {} does not follow generation {}, which this device is on",
                    successor.generation, self.generation
                ),
            });
        }
        // What the others wrote in the old generation comes along; a device that could not be
        // read (and is not being removed) is tried again before anything moves.
        let report = self.fetch().await?;
        let unread: Vec<String> = report
            .failed
            .iter()
            .filter(|failed| failed.device.is_none_or(|d| !revoked.contains(&d)))
            .map(|failed| format!("{} ({})", failed.tag, failed.error))
            .collect();
        if !unread.is_empty() {
            return Err(SyncError::GenerationUnread {
                devices: unread.join(", "),
            });
        }
        // The creator records whom its generation removed: only its word counts. A generation
        // in other storage leaves the earlier ones (and their `prev`, which say who made them)
        // behind, so its creator marks again, as its own, everyone removed before.
        if by == self.device {
            let mut marked: BTreeSet<DeviceId> = revoked.iter().copied().collect();
            if successor.moved {
                marked.extend(self.removed());
            }
            for device in &marked {
                self.record_with(
                    None,
                    |replica, _, now| replica.mark_removed(*device, successor.generation, now),
                    None,
                )?;
            }
        }
        let tag = keys.names.device_tag(&self.device);
        let ops = self.replica.state().seen(&self.device);
        // Sealed whatever the direction: a device that starts sending later starts its stream
        // there with it (its operations until now are in it).
        let snapshot = self.first_snapshot(&keys, ops)?;
        let reseal = if by == self.device {
            self.live_blobs()
        } else {
            Vec::new()
        };
        let root = successor.root();
        let transfer = Transfer::new(Route::Local, Kind::Generation, Outcome::Ok)
            .device(&tag)
            .ops(ops)
            .detail(format!(
                "moved to generation {} of the repository, made by {}",
                successor.generation,
                self.who(&by)
            ));
        self.db.move_to(&Move {
            generation: successor.generation,
            key_id: successor.key_id,
            root: root.clone(),
            device: self.device,
            creator: by,
            made_at_ms: at_ms,
            recipients,
            state: self.replica.state(),
            snapshot,
            ops,
            reseal: &reseal,
            transfer: &transfer,
        })?;
        let remote = Remote::new(store, *self.remote.retry(), root);
        let old_remote = std::mem::replace(&mut self.remote, remote);
        let old_keys = std::mem::replace(&mut self.keys, keys);
        self.older.insert(
            0,
            Older {
                remote: old_remote,
                keys: old_keys,
            },
        );
        self.generation = successor.generation;
        self.tag = tag;
        self.creators.insert(successor.generation, by);
        self.forget_old_generation();
        Ok(())
    }

    /// The generation the database at `database` is on and its key id, read without the
    /// storage; `None` when there is no database.
    pub fn database_generation(database: &Path) -> Result<Option<(u32, Option<KeyId>)>, SyncError> {
        if !database.exists() {
            return Ok(None);
        }
        let db = crate::db::Db::open(database)?;
        Ok(Some((db.generation()?, db.key_id()?)))
    }

    /// The devices the generation this device is on was given to, when known here.
    pub fn recipients(&self) -> Result<Option<Vec<DeviceId>>, SyncError> {
        let recipients = self.db.recipients()?;
        Ok((!recipients.is_empty()).then_some(recipients))
    }

    /// When the generation this device is on was made, in Unix milliseconds by its creator's
    /// clock, when known here.
    pub fn made_at(&self) -> Result<Option<u64>, SyncError> {
        Ok(Some(self.db.number(crate::db::Meta::MadeAt)?).filter(|at| *at > 0))
    }

    /// The device that made the generation `generation`, when known here.
    pub fn creator(&self, generation: u32) -> Option<DeviceId> {
        self.creators.get(&generation).copied()
    }

    /// The devices that generations of the repository removed, by their creators' word.
    pub fn removed(&self) -> BTreeSet<DeviceId> {
        self.replica
            .state()
            .removals()
            .into_iter()
            .filter(|removal| self.creators.get(&removal.generation) == Some(&removal.by))
            .map(|removal| removal.device)
            .collect()
    }

    /// Learns who made each generation after the first that is not known here yet, from each
    /// one's `prev`, signed by its creator (a device that joined on a later generation, or
    /// whose database is from before this was kept). Once per generation.
    pub(super) async fn learn_creators(&mut self) -> Result<(), SyncError> {
        for generation in (2..=self.generation).rev() {
            if self.creators.contains_key(&generation) {
                continue;
            }
            let back = (self.generation - generation) as usize;
            while self.older.len() < back && self.load_older().await? {}
            let (remote, keys) = match back {
                0 => (&self.remote, &self.keys),
                _ => match self.older.get(back - 1) {
                    Some(older) => (&older.remote, &older.keys),
                    None => return Ok(()),
                },
            };
            let previous = read_previous(remote, keys).await?;
            let writer = previous.value.writer;
            let Some(entry) = self.replica.state().device(&writer) else {
                return Ok(());
            };
            if previous.verify(&entry.keys).is_err() {
                return Err(SyncError::GenerationRefused {
                    reason: format!(
                        "the record of the key before generation {generation} is not signed by \
                         the device it names"
                    ),
                });
            }
            self.db.set_creator(generation, writer)?;
            self.creators.insert(generation, writer);
        }
        Ok(())
    }

    /// Opens the database at `database`, which is on the generation `stopped_at` (its number
    /// and key id), with `keys` of a later one: the device kept the new key and stopped before
    /// it moved, or was away and is given the newest key by hand. The keys of the generations
    /// between come from each one's `prev`; the device opens on its own and moves through them
    /// in order, each as the candidates of the generation before choose it for this device
    /// (or, once they are gone, as its `prev` signed by a device of the roster says). `refused`
    /// is the error to give when `keys` open no later generation.
    pub(super) async fn open_behind(
        store: Arc<dyn Store>,
        keys: Keys,
        identity: Identity,
        database: &Path,
        config: EngineConfig,
        stopped_at: (u32, Option<KeyId>),
        refused: SyncError,
    ) -> Result<Engine, SyncError> {
        let key = |_: &RepoHeader| Ok(keys.clone());
        let located = match generation::locate(&*store, &config.retry, key).await {
            Ok((located, _)) => located,
            Err(error) if error.is_transient() => return Err(error),
            Err(_) => return Err(refused),
        };
        let (from, from_key) = stopped_at;
        if located.generation <= from {
            return Err(refused);
        }
        let mut chain = Vec::new();
        let (mut number, mut keys) = (located.generation, keys);
        while number > from {
            let remote = Remote::new(store.clone(), config.retry, root(number, keys.id));
            let previous = read_previous(&remote, &keys).await?;
            if previous.value.generation + 1 != number {
                return Err(SyncError::GenerationRefused {
                    reason: format!(
                        "the record of the key before generation {number} names another"
                    ),
                });
            }
            let older = previous.value.sync_key().keys();
            let successor = Successor {
                generation: number,
                key_id: keys.id,
                moved: false,
            };
            chain.push((successor, keys, previous));
            (number, keys) = (number - 1, older);
        }
        if Some(keys.id) != from_key {
            return Err(refused);
        }
        let mut engine = Box::pin(Engine::open(
            store.clone(),
            keys,
            identity,
            database,
            config,
        ))
        .await?;
        for (successor, keys, previous) in chain.into_iter().rev() {
            let by = previous.value.writer;
            let (revoked, at_ms, recipients) = match engine
                .next_generation(&BTreeSet::new())
                .await?
            {
                Some(next) if next.successor == successor && next.by == by => {
                    (next.revoked, next.at_ms, next.recipients)
                }
                Some(_) => {
                    return Err(SyncError::GenerationRefused {
                        reason: format!(
                            "this device was given the key of generation {}, but the candidates \
                             of the generation before choose another",
                            successor.generation
                        ),
                    });
                }
                None => {
                    let signed = engine
                        .replica
                        .state()
                        .device(&by)
                        .is_some_and(|entry| previous.verify(&entry.keys).is_ok());
                    if !signed {
                        return Err(SyncError::GenerationRefused {
                            reason: format!(
                                "the record of the key before generation {} is not signed by a \
                                 device of the repository",
                                successor.generation
                            ),
                        });
                    }
                    (Vec::new(), 0, Vec::new())
                }
            };
            let step = Step {
                successor,
                keys,
                by,
                at_ms,
                revoked: &revoked,
                recipients: &recipients,
            };
            // What another device wrote in the old generation cannot be read now, or the
            // storage does not answer: the device works on where it is (its next sync moves
            // it), rather than not at all.
            match engine.move_to(step, store.clone()).await {
                Ok(()) => {}
                Err(error @ SyncError::GenerationUnread { .. }) => {
                    warn!(%error, "this device stays on its generation for now");
                    engine.note(error.to_string());
                    break;
                }
                Err(error) if error.is_transient() => {
                    warn!(%error, "this device stays on its generation for now");
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(engine)
    }

    /// This device's first snapshot in the generation of `keys` (covering its operations up
    /// to `ops`) and its head, sealed.
    fn first_snapshot(&self, keys: &Keys, ops: u64) -> Result<FirstSnapshot, SyncError> {
        let tag = keys.names.device_tag(&self.device);
        let device = self.device;
        let snapshot = Snapshot {
            device,
            seq: 1,
            version_vector: vec![Cursor {
                device,
                seq: 1,
                ops,
            }],
            state: self.replica.state().encode(),
        };
        let name = ObjectName::Snap {
            device: tag,
            seq: 1,
        };
        let head = Head {
            device,
            seq: 1,
            ops,
            first_seq: 2,
            snapshot: Some(1),
        };
        let head_name = ObjectName::Head {
            device: tag,
            seq: 1,
        };
        Ok(FirstSnapshot {
            snapshot: keys
                .data
                .seal_signed(&name, &snapshot, &self.identity)?
                .into_bytes(),
            head: keys
                .data
                .seal_signed(&head_name, &head, &self.identity)?
                .into_bytes(),
        })
    }

    /// The blobs that clips in the history or the trash name.
    pub(super) fn live_blobs(&self) -> Vec<BlobId> {
        let state = self.replica.state();
        let clips = state
            .history(None, usize::MAX)
            .into_iter()
            .chain(state.trash());
        let ids: BTreeSet<BlobId> = clips
            .filter_map(|clip| match clip.content.body() {
                Some(Body::Blob { id, .. }) => Some(*id),
                _ => None,
            })
            .collect();
        ids.into_iter().collect()
    }

    /// Forgets what was known of the old generation's objects.
    fn forget_old_generation(&mut self) {
        self.rolled_back.clear();
        self.behind_said.clear();
        self.far_claims.clear();
        self.far_said.clear();
        self.older_said.clear();
        self.ahead_of_storage.clear();
        self.wanted_blobs.clear();
        self.large = large::InFlight::default();
    }

    /// Writes the first snapshot this device took to a new generation, when it is not in
    /// storage yet: before any segment, which follows on from it.
    pub(super) async fn push_moved_snapshot(&mut self) -> Result<Option<u64>, SyncError> {
        let Some(FirstSnapshot { snapshot, head }) = self.db.moved_snapshot()? else {
            return Ok(None);
        };
        let name = ObjectName::Snap {
            device: self.tag,
            seq: 1,
        };
        // The bytes were sealed once and kept: other bytes there are not this device's (its
        // tag is known to whoever lists the generation), and its own name is its own, unless
        // they are signed by this device's key (another installation with its identity).
        if let Some(found) = self.remote.put_or_read(&name, &snapshot).await? {
            let own = self.identity.public();
            let signed_here = self
                .keys
                .data
                .open_signed::<Snapshot>(&name, &found)
                .is_ok_and(|claimed| claimed.verify(&own).is_ok());
            if signed_here {
                return Err(SyncError::Divergent {
                    name: self.remote.path(&name),
                });
            }
            self.remote.overwrite(&name, &snapshot).await?;
        }
        let head_name = self.head_name(1);
        if self.remote.put_or_read(&head_name, &head).await?.is_some() {
            self.remote.overwrite(&head_name, &head).await?;
        }
        let ops = self.db.number(crate::db::Meta::SnapshotOps)?;
        let sent = Transfer::new(Route::Up, Kind::Snapshot, Outcome::Ok)
            .device(&self.tag)
            .object(&name)
            .ops(ops)
            .bytes(snapshot.len() as u64);
        self.db.moved_snapshot_stored(ops, &sent)?;
        Ok(Some(snapshot.len() as u64 + head.len() as u64))
    }

    /// The chunk `name` of a blob, from this generation or, when it is not there yet, from
    /// the ones before (each found through `prev`), sealed under the key of the generation
    /// it was read from: the bytes, and that key.
    pub(super) async fn blob_chunk(
        &mut self,
        name: &ObjectName,
    ) -> Result<(Vec<u8>, Option<usize>), SyncError> {
        let missing = match self.remote.get(name).await {
            Ok(bytes) => return Ok((bytes, None)),
            Err(missing @ StoreError::NotFound { .. }) => missing,
            Err(error) => return Err(error.into()),
        };
        let mut index = 0;
        loop {
            if index == self.older.len() && !self.load_older().await? {
                return Err(missing.into());
            }
            match self.older[index].remote.get(name).await {
                Ok(bytes) => return Ok((bytes, Some(index))),
                Err(StoreError::NotFound { .. }) => index += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The keys of the generation before this one (read from its `prev` once per run of the
    /// engine): a device that holds the repository still answers the devices that have not
    /// moved yet under them. `None` on the first generation, or when `prev` cannot be read.
    pub async fn earlier_keys(&mut self) -> Option<Keys> {
        if self.older.is_empty() {
            match self.load_older().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => {
                    warn!(%error, "the key of the generation before could not be read");
                    return None;
                }
            }
        }
        self.older.first().map(|older| older.keys.clone())
    }

    /// The names keys of the generations before this one that are known here, newest first.
    pub(super) fn older_names(&self) -> impl Iterator<Item = &ferry_protocol::NamesKey> {
        self.older.iter().map(|older| &older.keys.names)
    }

    /// The keys of the older generation at `index` among those known here.
    pub(super) fn older_keys(&self, index: usize) -> &Keys {
        &self.older[index].keys
    }

    /// Learns the keys of the generations before this one (a read of `prev` each, once per
    /// run of the engine) when the chunks held of blob `id` do not hash to it under the keys
    /// known here: it may have been made in one of them. A generation whose `prev` cannot be
    /// read ends the search (the blob is then refused as it would be anyway).
    pub(super) async fn learn_older_names(&mut self, id: BlobId) {
        let Ok(data) = self.db.joined_chunks(&id) else {
            return;
        };
        let hashes = |engine: &Engine| {
            engine.keys.names.blob_id(&data) == id
                || engine.older_names().any(|names| names.blob_id(&data) == id)
        };
        while !hashes(self) && self.older.len() + 1 < self.generation as usize {
            match self.load_older().await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    warn!(%error, "the key of an earlier generation could not be read");
                    return;
                }
            }
        }
    }

    /// Reads the key of the generation before the oldest one known here from that one's
    /// `prev`. `false` when there is none (the first generation) or it cannot be read.
    async fn load_older(&mut self) -> Result<bool, SyncError> {
        let (generation, remote, keys) = match self.older.last() {
            Some(older) => (
                self.generation - self.older.len() as u32,
                &older.remote,
                &older.keys,
            ),
            None => (self.generation, &self.remote, &self.keys),
        };
        if generation <= 1 {
            return Ok(false);
        }
        let previous = read_previous(remote, keys).await?.value;
        if previous.generation + 1 != generation {
            return Ok(false);
        }
        let old = previous.sync_key();
        let root = root(previous.generation, old.key_id());
        let older = Older {
            remote: Remote::new(remote.shared_store(), *remote.retry(), root),
            keys: old.keys(),
        };
        self.older.push(older);
        Ok(true)
    }
}

/// The record of the key before the generation `remote` speaks to, opened with that
/// generation's `keys` (only their holders can have sealed it).
async fn read_previous(remote: &Remote, keys: &Keys) -> Result<Claimed<Previous>, SyncError> {
    let refused = |why: String| SyncError::GenerationRefused {
        reason: format!(
            "the record of the key before this generation ({}) {why}",
            remote.path(&ObjectName::Prev)
        ),
    };
    let bytes = match remote.get(&ObjectName::Prev).await {
        Ok(bytes) => bytes,
        Err(StoreError::NotFound { .. }) => return Err(refused("is missing".into())),
        Err(error) => return Err(error.into()),
    };
    keys.data
        .open_signed::<Previous>(&ObjectName::Prev, &bytes)
        .map_err(|error| refused(format!("does not open: {error}")))
}
