//! The engine: record locally, upload own segments, fetch and apply others'.
//!
//! Upload of one segment, every step safe to repeat after a crash:
//!
//! ```text
//! reserve (one transaction): seq, the ops it carries, sealed segment + head bytes
//! PUT log/<tag>/<seq>   (write-once; "already there" → compare bytes)
//! PUT head/<tag>/<seq>  (write-once)
//! DELETE head/<tag>/<seq-1>
//! mark uploaded (+ transfer log) → hint (tag, seq) for the relay
//! ```
//!
//! Fetch: LIST `head/` (the names carry tag and seq: nothing else is read for an idle poll),
//! then for each other device whose head is past its cursor, GET the missing segments in order
//! and apply each in one transaction. An object that does not open or decode is quarantined;
//! that device's stream waits, the others go on.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_core::{Action, Body, ClipContent, ClipId, DataKind, Op, Replica, Scope, State};
use ferry_protocol::names::{ROOT, SNAP_PREFIX};
use ferry_protocol::{
    BlobChunk, BlobId, Cursor, DeviceId, DeviceTag, Head, Keys, NamesKey, ObjectName, RawOp,
    RelayHint, Segment, Snapshot,
};
use ferry_store::{RetryPolicy, Store, StoreError};
use tracing::{debug, warn};

use crate::db::{CursorRow, Db, Transfer};
use crate::names::{heads_prefix, parse, path};
use crate::policy::{Direction, Filters};
use crate::{SyncError, repo};

/// How the engine batches and keeps its database small.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Retries for storage requests.
    pub retry: RetryPolicy,
    /// Most operations in one segment.
    pub max_segment_ops: usize,
    /// Fold operations into the local checkpoint once this many are stored.
    pub checkpoint_every: u64,
    /// Write a snapshot (and delete the own segments it covers) after this many own operations.
    pub snapshot_every: u64,
    /// Which way data flows.
    pub direction: Direction,
    /// Which clips are recorded at all.
    pub filters: Filters,
    /// Which kinds of data sync. Changes to the others are kept on this device only, and
    /// other devices' changes to them do not show here (see [`Engine::state_for`]).
    pub scope: Scope,
    /// Images and files larger than this go to `blob/` as chunks, outside the segment.
    pub blob_threshold: u64,
    /// Bytes per blob chunk (at most 4 MiB).
    pub blob_chunk: usize,
    /// Others' blobs up to this size are fetched with their segment; larger ones when asked
    /// for ([`Engine::blob`]).
    pub eager_blob_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retry: RetryPolicy::DEFAULT,
            max_segment_ops: 1000,
            checkpoint_every: 20_000,
            snapshot_every: 5_000,
            direction: Direction::Both,
            filters: Filters::default(),
            scope: Scope::ALL,
            blob_threshold: 64 * 1024,
            blob_chunk: 1024 * 1024,
            eager_blob_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Segments written.
    pub segments: u64,
    /// Operations they carried.
    pub ops: u64,
    /// Bytes written (segments and heads).
    pub bytes: u64,
    /// A hint per segment, for the relay.
    pub hints: Vec<RelayHint>,
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Segments applied.
    pub segments: u64,
    /// Operations in them.
    pub ops: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Objects newly quarantined.
    pub quarantined: u64,
}

/// One object a sync would move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Its store path.
    pub name: String,
    /// Operations it carries (uploads; 0 where unknown before reading it).
    pub ops: u64,
    /// Its size in bytes (for new segments: the operations' size before sealing).
    pub bytes: u64,
}

/// What a sync would move, computed without moving anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DryRun {
    /// Segments to write.
    pub upload: Vec<Planned>,
    /// Segments and snapshots to read.
    pub download: Vec<Planned>,
}

/// Where this device stands with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The other device's id.
    pub device: DeviceId,
    /// Its tag in object names.
    pub tag: DeviceTag,
    /// Its last segment applied here.
    pub seq: u64,
    /// Its operation counter at that segment.
    pub ops: u64,
}

/// Everything `ferry status` shows about sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This device.
    pub device: DeviceId,
    /// Its tag in object names.
    pub tag: DeviceTag,
    /// Operations recorded and not yet in an uploaded segment.
    pub pending_ops: u64,
    /// Segments reserved and not yet uploaded.
    pub pending_segments: u64,
    /// This device's newest segment.
    pub last_seq: u64,
    /// The last upload that succeeded.
    pub last_upload: Option<SystemTime>,
    /// The last fetch that succeeded.
    pub last_fetch: Option<SystemTime>,
    /// Other devices and how far this one has applied them.
    pub peers: Vec<PeerStatus>,
    /// Quarantined objects with the reason.
    pub quarantined: Vec<(String, String)>,
    /// The most recent failures, newest last.
    pub recent_errors: Vec<String>,
}

const RECENT_ERRORS: usize = 10;

/// A snapshot read and checked, not yet merged.
struct LoadedSnapshot {
    state: State,
    cursors: Vec<(DeviceTag, DeviceId, CursorRow)>,
    advanced: CursorRow,
    transfer: Transfer,
}

/// Keys of the numbers kept in the database's `meta` table.
mod meta {
    /// This device's newest snapshot.
    pub(super) const SNAPSHOT_SEQ: &str = "snapshot_seq";
    /// This device's operation counter at that snapshot.
    pub(super) const SNAPSHOT_OPS: &str = "snapshot_ops";
    /// This device's segments up to here are deleted (covered by its snapshot).
    pub(super) const COMPACTED_TO: &str = "compacted_to";
}

/// One device's sync engine over one repository.
pub struct Engine {
    store: Arc<dyn Store>,
    keys: Keys,
    device: DeviceId,
    tag: DeviceTag,
    db: Db,
    /// The merged, synced state.
    replica: Replica,
    /// This device's local-only data: what it records outside its sync scope.
    local: Replica,
    config: EngineConfig,
    last_upload: Option<SystemTime>,
    last_fetch: Option<SystemTime>,
    recent_errors: VecDeque<String>,
    /// Blobs of clips applied in this fetch, to fetch at its end.
    wanted_blobs: Vec<BlobId>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn clip_text(op: &Op) -> Option<(ClipId, &str)> {
    match &op.action {
        Action::Copy { clip, content } => content.text().map(|text| (*clip, text)),
        _ => None,
    }
}

impl Engine {
    /// Opens the repository in `store` with `keys` (checking the key before anything else) and
    /// the local database at `database` (created on first use, with a new device id). When the
    /// storage cannot be reached, a database that opened this repository with these keys before
    /// opens anyway: recording works offline and syncing resumes when the storage answers.
    pub async fn open(
        store: Arc<dyn Store>,
        keys: Keys,
        database: &Path,
        config: EngineConfig,
    ) -> Result<Engine, SyncError> {
        let known = database.exists();
        let db;
        let key_id = match repo::open(&*store, &keys, &config.retry).await {
            Ok(header) => {
                db = Db::open(database)?;
                header.key_id
            }
            // Offline: a device that opened this repository with this key before starts anyway,
            // records locally, and syncs once the storage answers.
            Err(error) if error.is_transient() && known => {
                db = Db::open(database)?;
                if db.key_id()? != Some(keys.id) {
                    return Err(error);
                }
                warn!(%error, "the storage is unreachable: working offline until it answers");
                keys.id
            }
            Err(error) => return Err(error),
        };
        let device = db.identity(key_id)?;
        let local = db.local_identity()?;
        let (state, local_state) = db.load_state(local)?;
        Ok(Engine {
            tag: keys.names.device_tag(&device),
            replica: Replica::with_state(device, state),
            local: Replica::with_state(local, local_state),
            store,
            keys,
            device,
            db,
            config,
            last_upload: None,
            last_fetch: None,
            recent_errors: VecDeque::new(),
            wanted_blobs: Vec::new(),
        })
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The merged state.
    pub fn state(&self) -> &State {
        self.replica.state()
    }

    /// The state to show for `kind`: the merged state when `kind` syncs, otherwise this
    /// device's local-only state.
    pub fn state_for(&self, kind: DataKind) -> &State {
        if self.config.scope.includes_kind(kind) {
            self.replica.state()
        } else {
            self.local.state()
        }
    }

    /// Reloads both states from the database, after a write that failed.
    fn reload(&mut self) -> Result<(), SyncError> {
        let (state, local) = self.db.load_state(self.local.device())?;
        self.replica = Replica::with_state(self.device, state);
        self.local = Replica::with_state(self.local.device(), local);
        Ok(())
    }

    /// Makes an operation with `make` and stores it durably before returning it.
    /// `kind` is the kind of data the operation changes: outside the sync scope it is made by
    /// this device's local-only actor and never leaves the device.
    pub fn record(
        &mut self,
        kind: DataKind,
        make: impl FnOnce(&mut Replica, &NamesKey, u64) -> Op,
    ) -> Result<Op, SyncError> {
        self.record_with(kind, make, None)
    }

    fn record_with(
        &mut self,
        kind: DataKind,
        make: impl FnOnce(&mut Replica, &NamesKey, u64) -> Op,
        blob: Option<(BlobId, &[u8])>,
    ) -> Result<Op, SyncError> {
        let replica = if self.config.scope.includes_kind(kind) {
            &mut self.replica
        } else {
            &mut self.local
        };
        let op = make(replica, &self.keys.names, now_ms());
        if op.data_kind() != kind {
            warn!(?kind, made = ?op.data_kind(), "an operation was recorded under another kind");
        }
        if let Err(error) = self.db.record(&op, clip_text(&op), blob) {
            // The operation is not stored: forget it in memory too.
            self.reload()?;
            return Err(error);
        }
        Ok(op)
    }

    /// Records a copy of `content`, unless the filters refuse it: then nothing is recorded,
    /// the transfer log says why (without quoting the content), and `None` is returned.
    pub fn copy(&mut self, content: ClipContent) -> Result<Option<Op>, SyncError> {
        if let Some(reason) = self.config.filters.refuses(&content) {
            self.db.log(&Transfer {
                at_ms: now_ms(),
                direction: "local".into(),
                kind: "filter".into(),
                device: Some(self.tag.to_string()),
                name: None,
                ops: 0,
                bytes: content.size(),
                outcome: "skipped".into(),
                detail: Some(reason),
            })?;
            return Ok(None);
        }
        // Large images and files travel as blobs: the operation carries the blob's id.
        let mut content = content;
        let mut blob = None;
        if let Some(body) = content.body_mut()
            && let Body::Inline(bytes) = body
            && bytes.len() as u64 > self.config.blob_threshold
        {
            let data = std::mem::take(bytes);
            let id = self.keys.names.blob_id(&data);
            *body = Body::Blob {
                id,
                len: data.len() as u64,
            };
            blob = Some((id, data));
        }
        let blob_ref = blob.as_ref().map(|(id, data)| (*id, data.as_slice()));
        self.record_with(
            DataKind::Clips,
            |replica, names, now| replica.copy(names, content, now),
            blob_ref,
        )
        .map(Some)
    }

    /// The bytes of a blob: from the local database, or downloaded (resuming from the chunks
    /// already held) and kept.
    pub async fn blob(&mut self, id: BlobId) -> Result<Vec<u8>, SyncError> {
        if let Some(data) = self.db.blob(&id)? {
            return Ok(data);
        }
        let held = self.db.chunks_held(&id)?;
        let mut count = held.first().map(|(_, count)| *count);
        let mut index = 0u32;
        let mut bytes_read = 0u64;
        loop {
            if let Some(count) = count
                && index >= count
            {
                break;
            }
            if held.iter().any(|(i, _)| *i == index) {
                index += 1;
                continue;
            }
            let name = ObjectName::Blob {
                blob: id,
                chunk: index,
            };
            let store_path = path(&name);
            let store = &self.store;
            let bytes = self.config.retry.run(|| store.get(&store_path)).await?;
            bytes_read += bytes.len() as u64;
            let chunk: BlobChunk = match self.keys.data.open_object(&name, &bytes) {
                Ok(chunk) => chunk,
                Err(error) => return Err(self.broken_blob(&id, &store_path, error.to_string())),
            };
            let expected = count.unwrap_or(chunk.count);
            if chunk.blob != id || chunk.index != index || chunk.count != expected || expected == 0
            {
                let reason = "the chunk does not belong at this place of this blob".to_owned();
                return Err(self.broken_blob(&id, &store_path, reason));
            }
            count = Some(expected);
            self.db.keep_chunk(&id, index, expected, &chunk.data)?;
            index += 1;
        }
        let data = self.db.joined_chunks(&id)?;
        let name = path(&ObjectName::Blob { blob: id, chunk: 0 });
        if self.keys.names.blob_id(&data) != id {
            let reason = "the joined chunks do not hash to the blob's id".to_owned();
            return Err(self.broken_blob(&id, &name, reason));
        }
        let transfer = Transfer {
            at_ms: now_ms(),
            direction: "down".into(),
            kind: "blob".into(),
            device: None,
            name: Some(name),
            ops: 0,
            bytes: bytes_read,
            outcome: "ok".into(),
            detail: None,
        };
        self.db.finish_blob(&id, Some(&data), &transfer)?;
        Ok(data)
    }

    /// Drops a broken blob's chunks, logs why, and gives the error to return.
    fn broken_blob(&mut self, id: &BlobId, name: &str, reason: String) -> SyncError {
        let transfer = Transfer {
            at_ms: now_ms(),
            direction: "down".into(),
            kind: "blob".into(),
            device: None,
            name: Some(name.to_owned()),
            ops: 0,
            bytes: 0,
            outcome: "failed".into(),
            detail: Some(reason.clone()),
        };
        if let Err(error) = self.db.finish_blob(id, None, &transfer) {
            return error;
        }
        self.note(format!("{name}: {reason}"));
        SyncError::BrokenBlob {
            name: name.to_owned(),
            reason,
        }
    }

    /// Uploads this device's blobs not yet in storage, chunk by chunk (write-once: a chunk
    /// already there is the same content, whatever its bytes).
    async fn upload_blobs(&mut self, report: &mut UploadReport) -> Result<(), SyncError> {
        let chunk_len = self.config.blob_chunk.clamp(1, BlobChunk::MAX_DATA);
        for id in self.db.blobs_to_upload()? {
            let Some(data) = self.db.blob(&id)? else {
                continue;
            };
            let count = data.len().div_ceil(chunk_len).max(1);
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            let mut bytes = 0u64;
            for index in 0..count {
                let start = index as usize * chunk_len;
                let end = (start + chunk_len).min(data.len());
                let name = ObjectName::Blob {
                    blob: id,
                    chunk: index,
                };
                let chunk = BlobChunk {
                    blob: id,
                    index,
                    count,
                    total_len: data.len() as u64,
                    data: data[start..end].to_vec(),
                };
                let sealed = self.keys.data.seal_object(&name, &chunk)?;
                bytes += sealed.as_bytes().len() as u64;
                self.put_once(&path(&name), sealed.as_bytes(), false)
                    .await?;
            }
            self.db.blob_uploaded(
                &id,
                &Transfer {
                    at_ms: now_ms(),
                    direction: "up".into(),
                    kind: "blob".into(),
                    device: Some(self.tag.to_string()),
                    name: Some(path(&ObjectName::Blob { blob: id, chunk: 0 })),
                    ops: 0,
                    bytes,
                    outcome: "ok".into(),
                    detail: None,
                },
            )?;
            report.bytes += bytes;
        }
        Ok(())
    }

    /// Clips whose text holds every word of `query`, best match first.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<ClipId>, SyncError> {
        self.db.search(query, limit)
    }

    /// The newest `limit` lines of the transfer log.
    pub fn transfers(&self, limit: usize) -> Result<Vec<Transfer>, SyncError> {
        self.db.transfers(limit)
    }

    /// Uploads everything pending: first segments reserved earlier (after a crash or an
    /// outage), then new segments of the pending operations.
    pub async fn upload(&mut self) -> Result<UploadReport, SyncError> {
        let mut report = UploadReport::default();
        if !self.config.direction.sends() {
            return Ok(report);
        }
        let result = self.upload_all(&mut report).await;
        self.finish(&result, true);
        result.map(|()| report)
    }

    async fn upload_all(&mut self, report: &mut UploadReport) -> Result<(), SyncError> {
        // Blobs first: a segment never refers to a blob that is not in storage yet.
        self.upload_blobs(report).await?;
        loop {
            for segment in self.db.unuploaded()? {
                self.push(segment, report).await?;
            }
            if !self.reserve_next()? {
                return self.compact_if_due().await;
            }
        }
    }

    /// Writes a snapshot of the merged state once enough own operations have gone out since
    /// the last one, then deletes this device's segments and older snapshots it covers.
    async fn compact_if_due(&mut self) -> Result<(), SyncError> {
        let last_seq = self.db.last_seq()?;
        let (pending_segments, pending_ops) = self.db.pending_counts(self.device)?;
        let own_ops = self.replica.state().seen(&self.device);
        let due = self.db.number(meta::SNAPSHOT_OPS)? + self.config.snapshot_every;
        // Only when everything recorded is uploaded: the snapshot then holds exactly what its
        // version vector says.
        if last_seq == 0 || pending_segments + pending_ops > 0 || own_ops < due {
            return Ok(());
        }
        let mut version_vector = vec![Cursor {
            device: self.device,
            seq: last_seq,
            ops: own_ops,
        }];
        for (_, device, cursor) in self.db.cursors()? {
            version_vector.push(Cursor {
                device,
                seq: cursor.seq,
                ops: cursor.ops,
            });
        }
        let snapshot = Snapshot {
            device: self.device,
            seq: last_seq,
            version_vector,
            state: self.replica.state().encode(),
        };
        let name = ObjectName::Snap {
            device: self.tag,
            seq: last_seq,
        };
        let sealed = self.keys.data.seal_object(&name, &snapshot)?;
        let snap_path = path(&name);
        self.put_once(&snap_path, sealed.as_bytes(), false).await?;
        self.db.set_number(meta::SNAPSHOT_SEQ, last_seq)?;
        self.db.set_number(meta::SNAPSHOT_OPS, own_ops)?;
        self.db.log(&Transfer {
            at_ms: now_ms(),
            direction: "up".into(),
            kind: "snapshot".into(),
            device: Some(self.tag.to_string()),
            name: Some(snap_path),
            ops: own_ops,
            bytes: sealed.as_bytes().len() as u64,
            outcome: "ok".into(),
            detail: None,
        })?;

        // Compaction: only this device's own objects, never another's.
        let store = Arc::clone(&self.store);
        let retry = self.config.retry;
        for seq in self.db.number(meta::COMPACTED_TO)? + 1..=last_seq {
            let segment = path(&ObjectName::Log {
                device: self.tag,
                seq,
            });
            retry.run(|| store.delete(&segment)).await?;
        }
        self.db.set_number(meta::COMPACTED_TO, last_seq)?;
        for (old, _) in self.list_snapshots(self.tag).await? {
            if old < last_seq {
                let old = path(&ObjectName::Snap {
                    device: self.tag,
                    seq: old,
                });
                retry.run(|| store.delete(&old)).await?;
            }
        }
        Ok(())
    }

    /// The snapshots stored for the device of `tag`, oldest first, with their store paths.
    async fn list_snapshots(&self, tag: DeviceTag) -> Result<Vec<(u64, String)>, SyncError> {
        let prefix = format!("{ROOT}{SNAP_PREFIX}{tag}/");
        let mut found: Vec<(u64, String)> = self
            .list_objects(&prefix)
            .await?
            .into_iter()
            .filter_map(|(name, _)| match parse(&name) {
                Some(ObjectName::Snap { device, seq }) if device == tag => Some((seq, name)),
                _ => None,
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// Reserves the next segment from pending operations; false when nothing is pending.
    fn reserve_next(&mut self) -> Result<bool, SyncError> {
        let pending = self.db.pending(self.device, self.config.max_segment_ops)?;
        let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
            return Ok(false);
        };
        let (first_op, last_op) = (first.0, last.0);
        let seq = self.db.last_seq()? + 1;
        let segment = Segment {
            device: self.device,
            seq,
            first_op,
            ops: pending.into_iter().map(|(_, op)| RawOp(op)).collect(),
        };
        let log = ObjectName::Log {
            device: self.tag,
            seq,
        };
        let snapshot = self.db.number(meta::SNAPSHOT_SEQ)?;
        let head = Head {
            device: self.device,
            seq,
            ops: last_op,
            first_seq: self.db.number(meta::COMPACTED_TO)? + 1,
            snapshot: (snapshot > 0).then_some(snapshot),
        };
        let head_name = ObjectName::Head {
            device: self.tag,
            seq,
        };
        let sealed = self.keys.data.seal_object(&log, &segment)?;
        let sealed_head = self.keys.data.seal_object(&head_name, &head)?;
        self.db.reserve(
            self.device,
            seq,
            first_op,
            last_op,
            sealed.as_bytes(),
            sealed_head.as_bytes(),
        )?;
        Ok(true)
    }

    async fn push(
        &mut self,
        segment: crate::db::SegmentRow,
        report: &mut UploadReport,
    ) -> Result<(), SyncError> {
        let seq = segment.seq;
        let log = path(&ObjectName::Log {
            device: self.tag,
            seq,
        });
        self.put_once(&log, &segment.sealed, true).await?;
        let head = path(&ObjectName::Head {
            device: self.tag,
            seq,
        });
        self.put_once(&head, &segment.head, false).await?;
        if seq > 1 {
            let previous = path(&ObjectName::Head {
                device: self.tag,
                seq: seq - 1,
            });
            let store = &self.store;
            self.config.retry.run(|| store.delete(&previous)).await?;
        }
        let bytes = (segment.sealed.len() + segment.head.len()) as u64;
        let ops = segment.last_op + 1 - segment.first_op;
        let transfer = Transfer {
            at_ms: now_ms(),
            direction: "up".into(),
            kind: "segment".into(),
            device: Some(self.tag.to_string()),
            name: Some(log),
            ops,
            bytes,
            outcome: "ok".into(),
            detail: None,
        };
        self.db.uploaded(seq, transfer.at_ms, &transfer)?;
        report.segments += 1;
        report.ops += ops;
        report.bytes += bytes;
        report.hints.push(RelayHint {
            device: self.tag,
            seq,
        });
        Ok(())
    }

    /// Writes `bytes` at `name` once. If the name already holds bytes (a retry after a crash or
    /// a lost answer), a segment must hold the very same bytes; a head may differ (it was
    /// sealed again, with the same content).
    async fn put_once(&self, name: &str, bytes: &[u8], must_match: bool) -> Result<(), SyncError> {
        let store = &self.store;
        match self
            .config
            .retry
            .run(|| store.put_new(name, bytes.to_vec()))
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists { .. }) if !must_match => Ok(()),
            Err(StoreError::AlreadyExists { .. }) => {
                let stored = self.config.retry.run(|| store.get(name)).await?;
                if stored == bytes {
                    Ok(())
                } else {
                    Err(SyncError::Divergent {
                        name: name.to_owned(),
                    })
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Polls: one LIST of `head/`, then the segments of every device that moved.
    pub async fn fetch(&mut self) -> Result<FetchReport, SyncError> {
        let mut report = FetchReport::default();
        if !self.config.direction.receives() {
            return Ok(report);
        }
        let result = self.fetch_all(&mut report).await;
        self.finish(&result, false);
        result.map(|()| report)
    }

    async fn fetch_all(&mut self, report: &mut FetchReport) -> Result<(), SyncError> {
        let heads = self.list_heads().await?;
        // Devices never seen start from their snapshots: read them all, then merge and store
        // them as one checkpoint (a cold start writes the merged state once, not per device).
        let mut loaded = Vec::new();
        for &tag in heads.keys() {
            let cursor = self.db.cursor(&tag)?;
            if cursor.seq == 0
                && let Some(snapshot) = self.read_snapshot(tag, cursor, report).await?
            {
                loaded.push(snapshot);
            }
        }
        if !loaded.is_empty() {
            self.merge_snapshots(loaded)?;
        }
        for (tag, seq) in heads {
            self.fetch_device(tag, seq, false, report).await?;
        }
        self.fetch_wanted_blobs().await;
        self.maybe_checkpoint()
    }

    /// Fetches the blobs of newly applied clips that are small enough to fetch eagerly. A blob
    /// that fails is noted in the status and fetched again when asked for.
    async fn fetch_wanted_blobs(&mut self) {
        for id in std::mem::take(&mut self.wanted_blobs) {
            if let Err(error) = self.blob(id).await {
                self.note(format!("blob {id}: {error}"));
            }
        }
    }

    /// Fetches what a relay hint announces (and any segment of that device before it).
    pub async fn fetch_hint(&mut self, hint: RelayHint) -> Result<FetchReport, SyncError> {
        let mut report = FetchReport::default();
        if !self.config.direction.receives() {
            return Ok(report);
        }
        let result = async {
            if hint.device != self.tag {
                self.fetch_device(hint.device, hint.seq, true, &mut report)
                    .await?;
            }
            self.fetch_wanted_blobs().await;
            self.maybe_checkpoint()
        }
        .await;
        self.finish(&result, false);
        result.map(|()| report)
    }

    /// What a sync would move now, without changing anything here or in storage (it reads:
    /// one LIST of `head/`, and a LIST per device with something to fetch).
    pub async fn dry_run(&self) -> Result<DryRun, SyncError> {
        let mut plan = DryRun::default();
        if self.config.direction.sends() {
            let reserved = self.db.unuploaded()?;
            let mut next = self.db.last_seq()? + 1;
            for segment in &reserved {
                plan.upload.push(Planned {
                    name: path(&ObjectName::Log {
                        device: self.tag,
                        seq: segment.seq,
                    }),
                    ops: segment.last_op + 1 - segment.first_op,
                    bytes: (segment.sealed.len() + segment.head.len()) as u64,
                });
            }
            let (mut ops, bytes) = self.db.pending_size(self.device)?;
            let per_op = bytes.checked_div(ops).unwrap_or(0);
            let batch = self.config.max_segment_ops.max(1) as u64;
            while ops > 0 {
                let take = ops.min(batch);
                plan.upload.push(Planned {
                    name: path(&ObjectName::Log {
                        device: self.tag,
                        seq: next,
                    }),
                    ops: take,
                    bytes: take * per_op,
                });
                ops -= take;
                next += 1;
            }
        }
        if self.config.direction.receives() {
            for (tag, head) in self.list_heads().await? {
                let cursor = self.db.cursor(&tag)?;
                if head <= cursor.seq {
                    continue;
                }
                let stored = self.list_objects(&format!("{ROOT}log/{tag}/")).await?;
                for seq in cursor.seq + 1..=head {
                    let name = path(&ObjectName::Log { device: tag, seq });
                    match stored.iter().find(|(n, _)| *n == name) {
                        Some((_, size)) => plan.download.push(Planned {
                            name,
                            ops: 0,
                            bytes: *size,
                        }),
                        None => {
                            // Compacted: the device's newest snapshot stands in for it.
                            if let Some((_, snapshot)) = self.list_snapshots(tag).await?.pop() {
                                let size = self
                                    .list_objects(&snapshot)
                                    .await?
                                    .first()
                                    .map_or(0, |(_, s)| *s);
                                plan.download.push(Planned {
                                    name: snapshot,
                                    ops: 0,
                                    bytes: size,
                                });
                            }
                            break;
                        }
                    }
                }
            }
        }
        Ok(plan)
    }

    /// Every object under `prefix` with its size.
    async fn list_objects(&self, prefix: &str) -> Result<Vec<(String, u64)>, SyncError> {
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let store = &self.store;
            let page = self
                .config
                .retry
                .run(|| store.list(prefix, after.as_deref(), ferry_store::MAX_PAGE))
                .await?;
            found.extend(page.objects.into_iter().map(|o| (o.name, o.size)));
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// Uploads, then fetches.
    pub async fn sync(&mut self) -> Result<(UploadReport, FetchReport), SyncError> {
        let upload = self.upload().await?;
        let fetch = self.fetch().await?;
        Ok((upload, fetch))
    }

    /// The newest head seq of every other device, from the names alone.
    async fn list_heads(&self) -> Result<BTreeMap<DeviceTag, u64>, SyncError> {
        let mut heads = BTreeMap::new();
        for (name, _) in self.list_objects(&heads_prefix()).await? {
            match parse(&name) {
                Some(ObjectName::Head { device, seq }) if device != self.tag => {
                    let newest = heads.entry(device).or_insert(seq);
                    *newest = (*newest).max(seq);
                }
                Some(ObjectName::Head { .. }) => {}
                _ => debug!(%name, "ignoring a stray object under head/"),
            }
        }
        Ok(heads)
    }

    /// Applies the device's segments after its cursor up to `until`, in order; a device never
    /// seen starts from its snapshot when `snapshot_first`.
    async fn fetch_device(
        &mut self,
        tag: DeviceTag,
        until: u64,
        snapshot_first: bool,
        report: &mut FetchReport,
    ) -> Result<(), SyncError> {
        let mut cursor = self.db.cursor(&tag)?;
        if snapshot_first && cursor.seq == 0 && until > 0 {
            // A device never seen: start from its newest snapshot when it has one.
            if let Some(advanced) = self.load_snapshot(tag, cursor, report).await? {
                cursor = advanced;
            }
        }
        while cursor.seq < until {
            let seq = cursor.seq + 1;
            let name = ObjectName::Log { device: tag, seq };
            let store_path = path(&name);
            if self.db.is_quarantined(&store_path)? {
                return Ok(());
            }
            let store = &self.store;
            let bytes = match self.config.retry.run(|| store.get(&store_path)).await {
                Ok(bytes) => bytes,
                Err(StoreError::NotFound { .. }) => {
                    // Compacted away: the device's snapshot covers it.
                    if let Some(advanced) = self.load_snapshot(tag, cursor, report).await? {
                        cursor = advanced;
                        continue;
                    }
                    // A head names a segment that is not there and no snapshot covers it:
                    // deleted by hand, or a replayed head. The next poll looks again.
                    self.note(format!(
                        "{store_path} is missing although a head names it; waiting for it"
                    ));
                    return Ok(());
                }
                Err(error) => return Err(error.into()),
            };
            match self.open_segment(&name, &tag, cursor, &bytes) {
                Ok((segment, ops)) => {
                    let eager = self.config.eager_blob_bytes;
                    self.wanted_blobs
                        .extend(ops.iter().filter_map(|op| match &op.action {
                            Action::Copy { content, .. } => match content.body()? {
                                Body::Blob { id, len } if *len <= eager => Some(*id),
                                _ => None,
                            },
                            _ => None,
                        }));
                    let count = ops.len() as u64;
                    let new_cursor = CursorRow {
                        seq,
                        ops: cursor.ops + count,
                    };
                    self.apply_segment(&tag, segment.device, new_cursor, ops, &store_path, &bytes)?;
                    report.segments += 1;
                    report.ops += count;
                    report.bytes += bytes.len() as u64;
                    cursor = new_cursor;
                }
                Err(reason) => {
                    self.quarantine(&tag, &store_path, "segment", &reason, bytes.len())?;
                    report.quarantined += 1;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Loads the newest snapshot of the device of `tag` if it goes past `cursor`, merging it.
    /// Returns the device's new cursor, or `None` when no usable snapshot helps.
    async fn load_snapshot(
        &mut self,
        tag: DeviceTag,
        cursor: CursorRow,
        report: &mut FetchReport,
    ) -> Result<Option<CursorRow>, SyncError> {
        let Some(loaded) = self.read_snapshot(tag, cursor, report).await? else {
            return Ok(None);
        };
        let advanced = loaded.advanced;
        self.merge_snapshots(vec![loaded])?;
        Ok(Some(self.db.cursor(&tag)?.max_with(advanced)))
    }

    /// Reads, opens and checks the newest snapshot of the device of `tag` if it goes past
    /// `cursor`. A broken one is quarantined and gives `None`.
    async fn read_snapshot(
        &mut self,
        tag: DeviceTag,
        cursor: CursorRow,
        report: &mut FetchReport,
    ) -> Result<Option<LoadedSnapshot>, SyncError> {
        let Some((seq, store_path)) = self.list_snapshots(tag).await?.pop() else {
            return Ok(None);
        };
        if seq <= cursor.seq || self.db.is_quarantined(&store_path)? {
            return Ok(None);
        }
        let store = &self.store;
        let bytes = match self.config.retry.run(|| store.get(&store_path)).await {
            Ok(bytes) => bytes,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let name = ObjectName::Snap { device: tag, seq };
        let opened = self
            .keys
            .data
            .open_object::<Snapshot>(&name, &bytes)
            .map_err(|e| e.to_string())
            .and_then(|snapshot| {
                if self.keys.names.device_tag(&snapshot.device) != tag || snapshot.seq != seq {
                    return Err("the snapshot's device or seq does not match its name".into());
                }
                let state = State::decode(&snapshot.state).map_err(|e| e.to_string())?;
                Ok((snapshot, state))
            });
        let (snapshot, state) = match opened {
            Ok(opened) => opened,
            Err(reason) => {
                self.quarantine(&tag, &store_path, "snapshot", &reason, bytes.len())?;
                report.quarantined += 1;
                return Ok(None);
            }
        };
        let cursors: Vec<(DeviceTag, DeviceId, CursorRow)> = snapshot
            .version_vector
            .iter()
            .filter(|c| c.device != self.device)
            .map(|c| {
                let row = CursorRow {
                    seq: c.seq,
                    ops: c.ops,
                };
                (self.keys.names.device_tag(&c.device), c.device, row)
            })
            .collect();
        let Some(advanced) = cursors.iter().find(|(t, _, _)| *t == tag).map(|c| c.2) else {
            let reason = "the snapshot's version vector does not include its own device";
            self.quarantine(&tag, &store_path, "snapshot", reason, bytes.len())?;
            report.quarantined += 1;
            return Ok(None);
        };
        report.segments += 1;
        report.bytes += bytes.len() as u64;
        let transfer = Transfer {
            at_ms: now_ms(),
            direction: "down".into(),
            kind: "snapshot".into(),
            device: Some(tag.to_string()),
            name: Some(store_path),
            ops: advanced.ops,
            bytes: bytes.len() as u64,
            outcome: "ok".into(),
            detail: None,
        };
        Ok(Some(LoadedSnapshot {
            state,
            cursors,
            advanced,
            transfer,
        }))
    }

    /// Merges snapshots into the state and stores the result as one new checkpoint, with the
    /// cursors they move forward, in one transaction.
    fn merge_snapshots(&mut self, loaded: Vec<LoadedSnapshot>) -> Result<(), SyncError> {
        let mut cursors = Vec::new();
        let mut texts: Vec<(ClipId, String)> = Vec::new();
        let mut transfers = Vec::new();
        for snapshot in loaded {
            // Index the snapshot's clips (those already indexed are skipped).
            texts.extend(
                snapshot
                    .state
                    .history(None, usize::MAX)
                    .into_iter()
                    .filter_map(|clip| clip.content.text().map(|t| (clip.id, t.to_owned()))),
            );
            self.replica.merge(snapshot.state);
            cursors.extend(snapshot.cursors);
            transfers.push(snapshot.transfer);
        }
        let stored = self
            .db
            .apply_snapshot(self.replica.state(), &cursors, &texts, &transfers);
        if let Err(error) = stored {
            self.reload()?;
            return Err(error);
        }
        Ok(())
    }

    fn quarantine(
        &mut self,
        tag: &DeviceTag,
        store_path: &str,
        kind: &str,
        reason: &str,
        bytes: usize,
    ) -> Result<(), SyncError> {
        warn!(name = %store_path, %reason, "quarantined");
        let transfer = Transfer {
            at_ms: now_ms(),
            direction: "down".into(),
            kind: kind.into(),
            device: Some(tag.to_string()),
            name: Some(store_path.to_owned()),
            ops: 0,
            bytes: bytes as u64,
            outcome: "quarantined".into(),
            detail: Some(reason.to_owned()),
        };
        self.db.quarantine(store_path, reason, &transfer)
    }

    /// Opens and checks a segment; the error is the quarantine reason.
    fn open_segment(
        &self,
        name: &ObjectName,
        tag: &DeviceTag,
        cursor: CursorRow,
        bytes: &[u8],
    ) -> Result<(Segment, Vec<Op>), String> {
        let segment: Segment = self
            .keys
            .data
            .open_object(name, bytes)
            .map_err(|e| e.to_string())?;
        if self.keys.names.device_tag(&segment.device) != *tag {
            return Err("the segment's device does not match its name".into());
        }
        let expected_seq = cursor.seq + 1;
        if segment.seq != expected_seq || segment.first_op != cursor.ops + 1 {
            return Err(format!(
                "the segment claims seq {} from operation {}, expected seq {expected_seq} from \
                 operation {}",
                segment.seq,
                segment.first_op,
                cursor.ops + 1
            ));
        }
        let mut ops = Vec::with_capacity(segment.ops.len());
        for (i, raw) in segment.ops.iter().enumerate() {
            let op = Op::decode(&raw.0).map_err(|e| format!("operation {i}: {e}"))?;
            let expected = segment.first_op + i as u64;
            if op.device() != segment.device || op.counter != expected {
                return Err(format!(
                    "operation {i} is not operation {expected} of the segment's device"
                ));
            }
            ops.push(op);
        }
        Ok((segment, ops))
    }

    fn apply_segment(
        &mut self,
        tag: &DeviceTag,
        device: DeviceId,
        cursor: CursorRow,
        ops: Vec<Op>,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), SyncError> {
        let texts: Vec<(ClipId, String)> = ops
            .iter()
            .filter_map(clip_text)
            .map(|(clip, text)| (clip, text.to_owned()))
            .collect();
        let transfer = Transfer {
            at_ms: now_ms(),
            direction: "down".into(),
            kind: "segment".into(),
            device: Some(tag.to_string()),
            name: Some(name.to_owned()),
            ops: ops.len() as u64,
            bytes: bytes.len() as u64,
            outcome: "ok".into(),
            detail: None,
        };
        self.db
            .apply_remote(tag, device, cursor, &ops, &texts, &transfer)?;
        for op in ops {
            // Checked above: in order and without gaps, so only duplicates can be refused.
            if let Err(error) = self.replica.apply(op) {
                warn!(%error, "an operation did not apply");
            }
        }
        Ok(())
    }

    fn maybe_checkpoint(&mut self) -> Result<(), SyncError> {
        if self.db.ops_since_checkpoint()? >= self.config.checkpoint_every {
            self.db.checkpoint(self.replica.state(), self.device)?;
        }
        Ok(())
    }

    /// Records the outcome of an upload or fetch for the status.
    fn finish(&mut self, result: &Result<(), SyncError>, upload: bool) {
        match result {
            Ok(()) if upload => self.last_upload = Some(SystemTime::now()),
            Ok(()) => self.last_fetch = Some(SystemTime::now()),
            Err(error) => {
                let what = if upload { "upload" } else { "fetch" };
                let message = format!("{what} failed: {error}");
                let _ = self.db.log(&Transfer {
                    at_ms: now_ms(),
                    direction: if upload { "up" } else { "down" }.into(),
                    kind: what.into(),
                    device: None,
                    name: None,
                    ops: 0,
                    bytes: 0,
                    outcome: "failed".into(),
                    detail: Some(error.to_string()),
                });
                self.note(message);
            }
        }
    }

    fn note(&mut self, message: String) {
        if self.recent_errors.len() == RECENT_ERRORS {
            self.recent_errors.pop_front();
        }
        self.recent_errors.push_back(message);
    }

    /// Where sync stands.
    pub fn status(&self) -> Result<Status, SyncError> {
        let (pending_segments, pending_ops) = self.db.pending_counts(self.device)?;
        let peers = self
            .db
            .cursors()?
            .into_iter()
            .map(|(tag, device, cursor)| PeerStatus {
                device,
                tag,
                seq: cursor.seq,
                ops: cursor.ops,
            })
            .collect();
        Ok(Status {
            device: self.device,
            tag: self.tag,
            pending_ops,
            pending_segments,
            last_seq: self.db.last_seq()?,
            last_upload: self.last_upload,
            last_fetch: self.last_fetch,
            peers,
            quarantined: self.db.quarantined()?,
            recent_errors: self.recent_errors.iter().cloned().collect(),
        })
    }
}
