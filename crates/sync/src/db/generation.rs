//! The move to a new generation of the repository (SPEC §11): in one transaction, the database
//! takes the new key id and generation, this device's stream starts again from a snapshot at
//! seq 1 (its operations so far are all in it), and what belonged to the old generation's
//! objects (cursors, announcements, quarantine, reserved segments) is dropped.

use std::collections::{BTreeMap, BTreeSet};

use ferry_core::State;
use ferry_protocol::{BlobId, DeviceId, KeyId};
use rusqlite::params;

use super::{Db, Meta, fixed, insert_transfer, set_meta, to_i64, write_checkpoint};
use crate::SyncError;
use crate::transfer::Transfer;

/// A device's first snapshot in a new generation and its head, sealed.
pub(crate) struct FirstSnapshot {
    pub(crate) snapshot: Vec<u8>,
    pub(crate) head: Vec<u8>,
}

/// What a device takes with it to a new generation.
pub(crate) struct Move<'a> {
    /// The new generation's number.
    pub(crate) generation: u32,
    /// Its key id.
    pub(crate) key_id: KeyId,
    /// Its folder below the store's prefix.
    pub(crate) root: String,
    /// This device.
    pub(crate) device: DeviceId,
    /// The device that made the new generation.
    pub(crate) creator: DeviceId,
    /// When, in Unix milliseconds by its clock (0: not known).
    pub(crate) made_at_ms: u64,
    /// The devices given its key (empty: not known).
    pub(crate) recipients: &'a [DeviceId],
    /// The merged state, which becomes the checkpoint.
    pub(crate) state: &'a State,
    /// This device's first snapshot and its head in the new generation, sealed (written with
    /// its first upload there).
    pub(crate) snapshot: FirstSnapshot,
    /// This device's operation counter, which the snapshot covers.
    pub(crate) ops: u64,
    /// Blobs held here to write again into the new generation.
    pub(crate) reseal: &'a [BlobId],
    /// The line for the transfer log.
    pub(crate) transfer: &'a Transfer,
}

impl Db {
    /// The generation of the repository the database is on.
    pub(crate) fn generation(&self) -> Result<u32, SyncError> {
        let stored = self.number(Meta::Generation)?.max(1);
        u32::try_from(stored).map_err(|_| SyncError::LocalState {
            detail: format!("the database is on generation {stored}, more than there can be"),
        })
    }

    /// Starts a new database on the generation `generation` of the repository `key_id`.
    pub(crate) fn start_at(&mut self, generation: u32, key_id: KeyId) -> Result<(), SyncError> {
        set_meta(
            &self.conn,
            Meta::Generation,
            &u64::from(generation).to_le_bytes(),
        )?;
        self.root = ferry_protocol::generation::root(generation, key_id);
        Ok(())
    }

    /// The folder of the generation the database is on.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// Moves the database to a new generation.
    pub(crate) fn move_to(&mut self, moving: &Move<'_>) -> Result<(), SyncError> {
        let mut creators = self.creators()?;
        creators.insert(moving.generation, moving.creator);
        let tx = self.conn.transaction()?;
        set_meta(&tx, Meta::KeyId, &moving.key_id.0)?;
        set_meta(
            &tx,
            Meta::Generation,
            &u64::from(moving.generation).to_le_bytes(),
        )?;
        write_checkpoint(&tx, moving.state)?;
        // Other devices' operations are in the checkpoint; this device's own are in the
        // snapshot it takes along (seq 1), and its local-only ones stay as they are.
        tx.execute(
            "DELETE FROM ops WHERE device NOT IN (SELECT value FROM meta WHERE key IN (?1, ?2))",
            [Meta::DeviceId.key(), Meta::LocalId.key()],
        )?;
        tx.execute(
            "UPDATE ops SET seq = 1 WHERE device = ?1",
            [moving.device.0],
        )?;
        tx.execute_batch(
            "DELETE FROM segments; DELETE FROM cursors; DELETE FROM announced;
             DELETE FROM quarantine;",
        )?;
        for (key, value) in [
            (Meta::SnapshotSeq, 1),
            (Meta::SnapshotOps, moving.ops),
            (Meta::CompactedTo, 1),
            (Meta::HeadsPrunedTo, 0),
            (Meta::SkippedSeq, 0),
            (Meta::CheckedOwnAt, 0),
            (Meta::MadeAt, moving.made_at_ms),
        ] {
            set_meta(&tx, key, &value.to_le_bytes())?;
        }
        let recipients: Vec<u8> = moving.recipients.iter().flat_map(|id| id.0).collect();
        set_meta(&tx, Meta::Recipients, &recipients)?;
        set_meta(&tx, Meta::MovedSnapshot, &moving.snapshot.snapshot)?;
        set_meta(&tx, Meta::MovedHead, &moving.snapshot.head)?;
        for id in moving.reseal {
            tx.execute("UPDATE blobs SET uploaded = 0 WHERE id = ?1", [id.0])?;
        }
        set_meta(&tx, Meta::Creators, &encode_creators(&creators))?;
        insert_transfer(&tx, &moving.root, moving.transfer)?;
        tx.commit()?;
        self.root.clone_from(&moving.root);
        Ok(())
    }

    /// The device that made each generation after the first, as far as known here.
    pub(crate) fn creators(&self) -> Result<BTreeMap<u32, DeviceId>, SyncError> {
        let Some(bytes) = self.meta(Meta::Creators)? else {
            return Ok(BTreeMap::new());
        };
        let mut creators = BTreeMap::new();
        for entry in bytes.chunks(20) {
            let (generation, device) = entry.split_at(4.min(entry.len()));
            let generation = fixed::<4>(generation.to_vec(), "a generation")?;
            let device = fixed::<16>(device.to_vec(), "a generation's creator")?;
            creators.insert(u32::from_le_bytes(generation), DeviceId(device));
        }
        Ok(creators)
    }

    /// The devices the person removed on this device.
    pub(crate) fn removed_here(&self) -> Result<BTreeSet<DeviceId>, SyncError> {
        let Some(bytes) = self.meta(Meta::RemovedHere)? else {
            return Ok(BTreeSet::new());
        };
        bytes
            .chunks(16)
            .map(|id| Ok(DeviceId(fixed::<16>(id.to_vec(), "a device removed here")?)))
            .collect()
    }

    /// The devices the generation the database is on was given to (empty: not known).
    pub(crate) fn recipients(&self) -> Result<Vec<DeviceId>, SyncError> {
        let Some(bytes) = self.meta(Meta::Recipients)? else {
            return Ok(Vec::new());
        };
        bytes
            .chunks(16)
            .map(|id| {
                Ok(DeviceId(fixed::<16>(
                    id.to_vec(),
                    "a recipient of the key",
                )?))
            })
            .collect()
    }

    /// Records that the person removed `device` on this device.
    pub(crate) fn remove_here(&self, device: DeviceId) -> Result<(), SyncError> {
        let mut removed = self.removed_here()?;
        removed.insert(device);
        let bytes: Vec<u8> = removed.iter().flat_map(|id| id.0).collect();
        set_meta(&self.conn, Meta::RemovedHere, &bytes)
    }

    /// Records who made the generation `generation`.
    pub(crate) fn set_creator(&self, generation: u32, creator: DeviceId) -> Result<(), SyncError> {
        let mut creators = self.creators()?;
        creators.insert(generation, creator);
        set_meta(&self.conn, Meta::Creators, &encode_creators(&creators))
    }

    /// This device's first snapshot in the generation it moved to and its head, sealed, while
    /// they are not in storage yet.
    pub(crate) fn moved_snapshot(&self) -> Result<Option<FirstSnapshot>, SyncError> {
        match (self.meta(Meta::MovedSnapshot)?, self.meta(Meta::MovedHead)?) {
            (Some(snapshot), Some(head)) => Ok(Some(FirstSnapshot { snapshot, head })),
            _ => Ok(None),
        }
    }

    /// Records that the first snapshot in the new generation is in storage, covering this
    /// device's operations up to `ops`: its seq 1 counts as uploaded.
    pub(crate) fn moved_snapshot_stored(
        &mut self,
        ops: u64,
        transfer: &Transfer,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO segments (seq, first_op, last_op, uploaded_at) VALUES (1, 1, ?1, ?2)
             ON CONFLICT (seq) DO NOTHING",
            params![to_i64(ops), to_i64(transfer.at_ms)],
        )?;
        tx.execute(
            "DELETE FROM meta WHERE key IN (?1, ?2)",
            [Meta::MovedSnapshot.key(), Meta::MovedHead.key()],
        )?;
        insert_transfer(&tx, &self.root, transfer)?;
        tx.commit()?;
        Ok(())
    }

    /// The root of the generation the database is on, from its key id and generation.
    pub(super) fn stored_root(&self) -> Result<String, SyncError> {
        let key_id = self
            .meta(Meta::KeyId)?
            .map(|bytes| fixed(bytes, Meta::KeyId.key()).map(KeyId))
            .transpose()?;
        Ok(match key_id {
            Some(key_id) => ferry_protocol::generation::root(self.generation()?, key_id),
            None => ferry_protocol::names::ROOT.to_owned(),
        })
    }
}

fn encode_creators(creators: &BTreeMap<u32, DeviceId>) -> Vec<u8> {
    creators
        .iter()
        .flat_map(|(generation, device)| {
            generation
                .to_le_bytes()
                .into_iter()
                .chain(device.0)
                .collect::<Vec<u8>>()
        })
        .collect()
}
