//! Snapshots: writing this device's (and then deleting the segments it covers), and reading
//! other devices' to start from.

use std::collections::BTreeMap;

use ferry_core::{ClipId, State};
use ferry_protocol::{Cursor, DeviceId, DeviceKeys, DeviceTag, ObjectName, Snapshot};
use ferry_read::Refusal;
use ferry_store::StoreError;

use super::fetch::Fetched;
use super::{Engine, FetchReport};
use crate::SyncError;
use crate::db::{Meta, Position};
use crate::remote::IfPresent;
use crate::transfer::{Kind, Outcome, Route, Transfer};

/// A snapshot read and checked, not yet merged.
pub(super) struct LoadedSnapshot {
    state: State,
    tag: DeviceTag,
    device: DeviceId,
    /// Where its device's stream stands once it is merged.
    advanced: Position,
    /// Its device's newest head when it was read.
    head: u64,
    transfer: Transfer,
}

impl LoadedSnapshot {
    /// Its name.
    pub(super) fn name(&self) -> ObjectName {
        ObjectName::Snap {
            device: self.tag,
            seq: self.advanced.seq,
        }
    }
}

impl Engine {
    /// Writes a snapshot of the merged state once enough own operations have gone out since
    /// the last one, then deletes this device's segments and older snapshots it covers.
    pub(super) async fn compact_if_due(&mut self) -> Result<(), SyncError> {
        let last_seq = self.db.last_seq()?;
        let (pending_segments, pending_ops) = self.db.pending_counts(self.device)?;
        let own_ops = self.replica.state().seen(&self.device);
        let due = self.db.number(Meta::SnapshotOps)? + self.config.snapshot_every;
        // Only when everything recorded is uploaded: the snapshot then holds exactly what its
        // version vector says.
        if last_seq == 0 || pending_segments + pending_ops > 0 || own_ops < due {
            return Ok(());
        }
        let own = Cursor {
            device: self.device,
            seq: last_seq,
            ops: own_ops,
        };
        let others = self
            .db
            .cursors()?
            .into_iter()
            .map(|(_, device, cursor)| Cursor {
                device,
                seq: cursor.seq,
                ops: cursor.ops,
            });
        let snapshot = Snapshot {
            device: self.device,
            seq: last_seq,
            version_vector: std::iter::once(own).chain(others).collect(),
            state: self.replica.state().encode(),
        };
        let name = ObjectName::Snap {
            device: self.tag,
            seq: last_seq,
        };
        let sealed = self
            .keys
            .data
            .seal_signed(&name, &snapshot, &self.identity)?;
        if let Some(limit) = &self.config.upload_limit {
            tokio::time::sleep_until(limit.charge(sealed.as_bytes().len() as u64)).await;
        }
        self.remote
            .put_once(&name, sealed.as_bytes(), IfPresent::Keep)
            .await?;
        let sent = Transfer::new(Route::Up, Kind::Snapshot, Outcome::Ok)
            .device(&self.tag)
            .object(&name)
            .ops(own_ops)
            .bytes(sealed.as_bytes().len() as u64);
        self.db.snapshot_written(last_seq, own_ops, &sent)?;

        // Compaction: only this device's own objects, never another's.
        for seq in self.db.number(Meta::CompactedTo)? + 1..=last_seq {
            self.remote.delete(&self.log_name(seq)).await?;
        }
        self.db.set_number(Meta::CompactedTo, last_seq)?;
        self.prune_heads(last_seq, 1).await?;
        for &old in self.remote.snapshots(self.tag).await?.keys() {
            if old < last_seq {
                let device = self.tag;
                self.remote
                    .delete(&ObjectName::Snap { device, seq: old })
                    .await?;
            }
        }
        Ok(())
    }

    /// Reads, opens and checks the snapshot `seq` of the device of `tag`, whose newest head is
    /// `head`. A broken one is quarantined.
    pub(super) async fn read_snapshot(
        &mut self,
        tag: DeviceTag,
        seq: u64,
        head: u64,
        report: &mut FetchReport,
    ) -> Result<Fetched<LoadedSnapshot>, SyncError> {
        let name = ObjectName::Snap { device: tag, seq };
        if let Some(limit) = &self.config.download_limit {
            tokio::time::sleep_until(limit.free_at()).await;
        }
        let got = self.remote.get(&name).await;
        if let (Some(limit), Ok(bytes)) = (&self.config.download_limit, &got) {
            limit.charge(bytes.len() as u64);
        }
        let read = match got {
            Ok(bytes) => Ok(bytes),
            Err(StoreError::NotFound { .. }) => return Ok(Fetched::Missing),
            Err(error) if error.is_bad_object() => Err(error.to_string()),
            Err(error) => return Err(error.into()),
        };
        let (opened, bytes) = match read {
            Ok(bytes) => (self.checker().open_snapshot(&name, tag, seq, &bytes), bytes),
            Err(reason) => (Err(Refusal::Damaged(reason)), Vec::new()),
        };
        let (snapshot, state, advanced) = match opened {
            Ok(opened) => opened,
            Err(refusal) => {
                self.quarantine(&name, &refusal, &bytes, head)?;
                report.quarantined += 1;
                return Ok(Fetched::Quarantined);
            }
        };
        self.db.release(&self.remote.path(&name))?;
        report.segments += 1;
        report.bytes += bytes.len() as u64;
        let transfer = Transfer::new(Route::Down, Kind::Snapshot, Outcome::Ok)
            .device(&tag)
            .object(&name)
            .ops(advanced.ops)
            .bytes(bytes.len() as u64);
        Ok(Fetched::Read(LoadedSnapshot {
            state,
            tag,
            device: snapshot.device,
            advanced,
            head,
            transfer,
        }))
    }

    /// Of snapshots read together (a device starting from storage), sets aside those whose
    /// roster gives a device other keys than that device's own snapshot registers for itself:
    /// a device's own signed word about its keys outranks anyone else's. The others are
    /// returned to be merged.
    pub(super) fn agree_on_roster(
        &mut self,
        loaded: Vec<LoadedSnapshot>,
        report: &mut FetchReport,
    ) -> Result<(Vec<LoadedSnapshot>, Vec<ObjectName>), SyncError> {
        let writers: Vec<(DeviceId, &State)> =
            loaded.iter().map(|s| (s.device, &s.state)).collect();
        let mut contradicted: BTreeMap<usize, (DeviceId, DeviceKeys)> =
            ferry_read::check::contradicted(&writers)
                .into_iter()
                .map(|(i, device, keys)| (i, (device, keys)))
                .collect();
        let (mut agreed, mut refused) = (Vec::new(), Vec::new());
        for (i, snapshot) in loaded.into_iter().enumerate() {
            let Some((device, keys)) = contradicted.remove(&i) else {
                agreed.push(snapshot);
                continue;
            };
            let refusal = Refusal::Forged(format!(
                "it gives {} another key ({}) than that device's own snapshot registers",
                self.who(&device),
                keys.fingerprint()
            ));
            let name = snapshot.name();
            self.quarantine(&name, &refusal, &[], snapshot.head)?;
            report.quarantined += 1;
            refused.push(name);
        }
        Ok((agreed, refused))
    }

    /// Merges snapshots into the state and stores the result as one new checkpoint, with the
    /// cursors they move forward, in one transaction. Each snapshot moves only its own
    /// device's cursor: the plan that chose it then knows exactly where that stream goes on.
    pub(super) fn merge_snapshots(&mut self, loaded: Vec<LoadedSnapshot>) -> Result<(), SyncError> {
        if loaded.is_empty() {
            return Ok(());
        }
        let mut cursors = Vec::new();
        let mut texts: Vec<(ClipId, String)> = Vec::new();
        let mut transfers = Vec::new();
        for snapshot in loaded {
            // Index the snapshot's clips (those already indexed keep their place).
            texts.extend(
                snapshot
                    .state
                    .history(None, usize::MAX)
                    .into_iter()
                    .filter_map(|clip| clip.content.text().map(|t| (clip.id, t.to_owned()))),
            );
            let mut state = snapshot.state;
            state.keep_writers_word(snapshot.device);
            self.replica.merge(state);
            cursors.push((snapshot.tag, snapshot.device, snapshot.advanced));
            transfers.push(snapshot.transfer);
        }
        // Oldest first by the merged history, so the index's rows follow the order of last copy.
        let merged = self.replica.state();
        texts.sort_by_cached_key(|(clip, _)| merged.clip(clip).map(|view| view.last_used));
        texts.dedup_by_key(|(clip, _)| *clip);
        let stored = self
            .db
            .apply_snapshot(self.replica.state(), &cursors, &texts, &transfers);
        if let Err(error) = stored {
            self.reload()?;
            return Err(error);
        }
        Ok(())
    }
}
