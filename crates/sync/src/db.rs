//! The device's local database (SQLite, WAL, synchronous commits).
//!
//! What it holds, and why:
//!
//! | table | what |
//! | --- | --- |
//! | `meta` | this device's ids, the key id of its repository, and where its snapshots and compaction stand (see [`Meta`]) |
//! | `ops` | operations not yet folded into the checkpoint: this device's own (with the segment that carries them, once reserved) and other devices' |
//! | `checkpoint` | the encoded merged state as of some moment; state = checkpoint + `ops` |
//! | `segments` | this device's segments: sealed segment and head bytes kept from reservation until uploaded, so a retry after a crash writes the very same bytes |
//! | `cursors` | per other device: the last segment applied and its operation counter |
//! | `transfers` | the transfer log (see [`Transfer`]): every upload, download, quarantine, refused copy and failed pass |
//! | `quarantine` | objects that failed to open or decode, with the reason |
//! | `blobs` | large content (images, files) by blob id: this device's own, and others' once fetched |
//! | `blob_chunks` | chunks of a blob being downloaded, so an interrupted download resumes |
//! | `clip_text`, `clip_rows` | contentless FTS5 index over clip text, for history search, and its row → clip map |
//!
//! Every change is one transaction; `record` commits before it returns. A row that does not
//! decode is reported as [`SyncError::LocalState`], never skipped.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;

use ferry_core::{ClipId, Op, State};
use ferry_protocol::{BlobId, DeviceId, DeviceTag, KeyId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::SyncError;
use crate::transfer::Transfer;

/// The newest schema this build knows. Each step in [`MIGRATIONS`] moves one version up.
const SCHEMA_VERSION: i64 = 1;

const MIGRATIONS: &[&str] = &[
    // 0 → 1
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
     CREATE TABLE ops (
         device BLOB NOT NULL,
         counter INTEGER NOT NULL,
         op BLOB NOT NULL,
         seq INTEGER,
         PRIMARY KEY (device, counter)
     ) WITHOUT ROWID;
     CREATE TABLE checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB NOT NULL);
     CREATE TABLE segments (
         seq INTEGER PRIMARY KEY,
         first_op INTEGER NOT NULL,
         last_op INTEGER NOT NULL,
         sealed BLOB,
         head BLOB,
         uploaded_at INTEGER
     );
     CREATE TABLE cursors (
         tag BLOB PRIMARY KEY,
         device BLOB NOT NULL,
         seq INTEGER NOT NULL,
         ops INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE transfers (
         id INTEGER PRIMARY KEY,
         at INTEGER NOT NULL,
         direction TEXT NOT NULL,
         kind TEXT NOT NULL,
         device TEXT,
         name TEXT,
         ops INTEGER NOT NULL DEFAULT 0,
         bytes INTEGER NOT NULL DEFAULT 0,
         outcome TEXT NOT NULL,
         detail TEXT
     );
     CREATE INDEX transfers_at ON transfers (at);
     CREATE TABLE quarantine (
         name TEXT PRIMARY KEY,
         at INTEGER NOT NULL,
         reason TEXT NOT NULL
     );
     CREATE TABLE blobs (
         id BLOB PRIMARY KEY,
         data BLOB NOT NULL,
         uploaded INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE blob_chunks (
         id BLOB NOT NULL,
         idx INTEGER NOT NULL,
         count INTEGER NOT NULL,
         data BLOB NOT NULL,
         PRIMARY KEY (id, idx)
     );
     CREATE TABLE clip_rows (rowid INTEGER PRIMARY KEY, clip BLOB NOT NULL);
     CREATE VIRTUAL TABLE clip_text USING fts5(body, content = '', detail = none);",
];

/// The values kept in the `meta` table, each under its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meta {
    /// The key id of the repository this database belongs to.
    KeyId,
    /// This device's id, made on first use.
    DeviceId,
    /// This device's local-only actor (see [`Db::local_identity`]).
    LocalId,
    /// This device's newest snapshot.
    SnapshotSeq,
    /// This device's operation counter at that snapshot.
    SnapshotOps,
    /// This device's segments up to here are deleted (covered by its snapshot).
    CompactedTo,
}

impl Meta {
    fn key(self) -> &'static str {
        match self {
            Meta::KeyId => "key_id",
            Meta::DeviceId => "device_id",
            Meta::LocalId => "local_id",
            Meta::SnapshotSeq => "snapshot_seq",
            Meta::SnapshotOps => "snapshot_ops",
            Meta::CompactedTo => "compacted_to",
        }
    }
}

/// A segment of this device's, as reserved.
#[derive(Debug, Clone)]
pub(crate) struct SegmentRow {
    pub(crate) seq: u64,
    pub(crate) first_op: u64,
    pub(crate) last_op: u64,
    pub(crate) sealed: Vec<u8>,
    pub(crate) head: Vec<u8>,
}

impl SegmentRow {
    /// Operations it carries.
    pub(crate) fn ops(&self) -> u64 {
        self.last_op + 1 - self.first_op
    }

    /// Its sealed bytes, segment and head.
    pub(crate) fn size(&self) -> u64 {
        (self.sealed.len() + self.head.len()) as u64
    }
}

/// Where this device stands with another device's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CursorRow {
    pub(crate) seq: u64,
    pub(crate) ops: u64,
}

pub(crate) struct Db {
    conn: Connection,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A fixed-size id read from a row; any other length is damage, named by `what`.
fn fixed<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], SyncError> {
    let len = bytes.len();
    <[u8; N]>::try_from(bytes).map_err(|_| SyncError::LocalState {
        detail: format!("{what} is {len} bytes long, not {N}"),
    })
}

/// A word of the transfer log read from a row.
fn word<T: FromStr>(text: String) -> Result<T, SyncError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|error: T::Err| SyncError::LocalState {
        detail: format!("the transfer log: {error}"),
    })
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Db, SyncError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk when it returns, so `record` is durable.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut db = Db { conn };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&mut self) -> Result<(), SyncError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(SyncError::NewerDatabase {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(to_u64(version) as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", step as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn meta(&self, key: Meta) -> Result<Option<Vec<u8>>, SyncError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [key.key()],
                |row| row.get(0),
            )
            .optional()?)
    }

    fn set_meta(&self, key: Meta, value: &[u8]) -> Result<(), SyncError> {
        set_meta(&self.conn, key, value)
    }

    /// A number kept in `meta` (0 when never set).
    pub(crate) fn number(&self, key: Meta) -> Result<u64, SyncError> {
        match self.meta(key)? {
            Some(bytes) => Ok(u64::from_le_bytes(fixed(bytes, key.key())?)),
            None => Ok(0),
        }
    }

    /// Sets a number kept in `meta`.
    pub(crate) fn set_number(&self, key: Meta, value: u64) -> Result<(), SyncError> {
        self.set_meta(key, &value.to_le_bytes())
    }

    /// The key id of the repository this database belongs to, once it has opened one.
    pub(crate) fn key_id(&self) -> Result<Option<KeyId>, SyncError> {
        self.meta(Meta::KeyId)?
            .map(|bytes| fixed(bytes, Meta::KeyId.key()).map(KeyId))
            .transpose()
    }

    /// This device's id, made on first use; and binds the database to `key_id`.
    pub(crate) fn identity(&self, key_id: KeyId) -> Result<DeviceId, SyncError> {
        match self.key_id()? {
            Some(database) if database != key_id => {
                return Err(SyncError::OtherRepository {
                    database,
                    repository: key_id,
                });
            }
            Some(_) => {}
            None => self.set_meta(Meta::KeyId, &key_id.0)?,
        }
        self.actor(Meta::DeviceId)
    }

    /// This device's local-only actor: the id under which it records data outside its sync
    /// scope. Its operations are never uploaded.
    pub(crate) fn local_identity(&self) -> Result<DeviceId, SyncError> {
        self.actor(Meta::LocalId)
    }

    /// The device id kept under `key`, made on first use.
    fn actor(&self, key: Meta) -> Result<DeviceId, SyncError> {
        if let Some(bytes) = self.meta(key)? {
            return Ok(DeviceId(fixed(bytes, key.key())?));
        }
        let id = DeviceId::generate()?;
        self.set_meta(key, &id.0)?;
        Ok(id)
    }

    /// The merged state (the checkpoint, then every operation after it) and the local-only
    /// state (the operations of `local`).
    pub(crate) fn load_state(&self, local: DeviceId) -> Result<(State, State), SyncError> {
        // Decoded from SQLite's own copy of the value: a large checkpoint is not copied twice.
        let checkpoint = self
            .conn
            .query_row("SELECT state FROM checkpoint WHERE id = 1", [], |row| {
                Ok(State::decode(row.get_ref(0)?.as_blob()?))
            })
            .optional()?;
        let mut shared = match checkpoint {
            Some(decoded) => decoded.map_err(corrupt)?,
            None => State::new(),
        };
        let mut own = State::new();
        let mut statement = self
            .conn
            .prepare("SELECT op FROM ops ORDER BY device, counter")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(0)?;
            let op = Op::decode(&bytes).map_err(corrupt)?;
            let state = if op.device() == local {
                &mut own
            } else {
                &mut shared
            };
            state.apply(op).map_err(corrupt)?;
        }
        Ok((shared, own))
    }

    /// Stores one of this device's operations (durably, when this returns), with the large
    /// content it refers to.
    pub(crate) fn record(
        &mut self,
        op: &Op,
        text: Option<(ClipId, &str)>,
        blob: Option<(BlobId, &[u8])>,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        insert_op(&tx, op, None)?;
        if let Some((id, data)) = blob {
            tx.execute(
                "INSERT OR IGNORE INTO blobs (id, data, uploaded) VALUES (?1, ?2, 0)",
                params![id.0, data],
            )?;
        }
        if let Some((clip, text)) = text {
            index_text(&tx, clip, text)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// This device's operations not yet in a segment, oldest first.
    pub(crate) fn pending(
        &self,
        device: DeviceId,
        limit: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, SyncError> {
        let mut statement = self.conn.prepare(
            "SELECT counter, op FROM ops WHERE device = ?1 AND seq IS NULL
             ORDER BY counter LIMIT ?2",
        )?;
        let rows = statement.query_map(params![device.0, to_i64(limit)], |row| {
            Ok((to_u64(row.get(0)?), row.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// This device's newest segment number (0 before the first).
    pub(crate) fn last_seq(&self) -> Result<u64, SyncError> {
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT max(seq) FROM segments", [], |row| row.get(0))?;
        Ok(seq.map_or(0, to_u64))
    }

    /// Reserves a segment of `device`'s operations `first_op..=last_op`, with its sealed bytes.
    pub(crate) fn reserve(&mut self, device: DeviceId, row: &SegmentRow) -> Result<(), SyncError> {
        let (seq, first_op, last_op) = (to_i64(row.seq), to_i64(row.first_op), to_i64(row.last_op));
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO segments (seq, first_op, last_op, sealed, head) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![seq, first_op, last_op, row.sealed, row.head],
        )?;
        tx.execute(
            "UPDATE ops SET seq = ?1 WHERE device = ?2 AND counter BETWEEN ?3 AND ?4",
            params![seq, device.0, first_op, last_op],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Reserved segments not yet confirmed uploaded, oldest first.
    pub(crate) fn unuploaded(&self) -> Result<Vec<SegmentRow>, SyncError> {
        let mut statement = self.conn.prepare(
            "SELECT seq, first_op, last_op, sealed, head FROM segments
             WHERE uploaded_at IS NULL ORDER BY seq",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(SegmentRow {
                seq: to_u64(row.get(0)?),
                first_op: to_u64(row.get(1)?),
                last_op: to_u64(row.get(2)?),
                sealed: row.get(3)?,
                head: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Operations not yet in a segment: how many, and their encoded bytes.
    pub(crate) fn pending_size(&self, device: DeviceId) -> Result<(u64, u64), SyncError> {
        let (count, bytes): (i64, Option<i64>) = self.conn.query_row(
            "SELECT count(*), sum(length(op)) FROM ops WHERE device = ?1 AND seq IS NULL",
            [device.0],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok((to_u64(count), bytes.map_or(0, to_u64)))
    }

    /// Segments reserved but not uploaded, and operations not yet in a segment.
    pub(crate) fn pending_counts(&self, device: DeviceId) -> Result<(u64, u64), SyncError> {
        let segments: i64 = self.conn.query_row(
            "SELECT count(*) FROM segments WHERE uploaded_at IS NULL",
            [],
            |row| row.get(0),
        )?;
        let ops: i64 = self.conn.query_row(
            "SELECT count(*) FROM ops WHERE device = ?1 AND seq IS NULL",
            [device.0],
            |row| row.get(0),
        )?;
        Ok((to_u64(segments), to_u64(ops)))
    }

    /// Marks segment `seq` uploaded and drops its sealed bytes.
    pub(crate) fn uploaded(&mut self, seq: u64, transfer: &Transfer) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE segments SET uploaded_at = ?2, sealed = NULL, head = NULL WHERE seq = ?1",
            params![to_i64(seq), to_i64(transfer.at_ms)],
        )?;
        insert_transfer(&tx, transfer)?;
        tx.commit()?;
        Ok(())
    }

    /// Where this device stands with the device of `tag`.
    pub(crate) fn cursor(&self, tag: &DeviceTag) -> Result<CursorRow, SyncError> {
        let row = self
            .conn
            .query_row(
                "SELECT seq, ops FROM cursors WHERE tag = ?1",
                [tag.0],
                |row| {
                    Ok(CursorRow {
                        seq: to_u64(row.get(0)?),
                        ops: to_u64(row.get(1)?),
                    })
                },
            )
            .optional()?;
        Ok(row.unwrap_or(CursorRow { seq: 0, ops: 0 }))
    }

    /// Every other device this one has applied segments from.
    pub(crate) fn cursors(&self) -> Result<Vec<(DeviceTag, DeviceId, CursorRow)>, SyncError> {
        let mut statement = self
            .conn
            .prepare("SELECT tag, device, seq, ops FROM cursors ORDER BY tag")?;
        let rows = statement.query_map([], |row| {
            let tag: Vec<u8> = row.get(0)?;
            let device: Vec<u8> = row.get(1)?;
            Ok((tag, device, to_u64(row.get(2)?), to_u64(row.get(3)?)))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (tag, device, seq, ops) = row?;
            let tag = DeviceTag(fixed(tag, "a cursor's device tag")?);
            let device = DeviceId(fixed(device, "a cursor's device id")?);
            out.push((tag, device, CursorRow { seq, ops }));
        }
        Ok(out)
    }

    /// Stores another device's segment, applied: its operations, the new cursor, the text of
    /// new clips, and the transfer.
    pub(crate) fn apply_remote(
        &mut self,
        tag: &DeviceTag,
        device: DeviceId,
        cursor: CursorRow,
        ops: &[Op],
        texts: &[(ClipId, String)],
        transfer: &Transfer,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        for op in ops {
            insert_op(&tx, op, None)?;
        }
        for (clip, text) in texts {
            index_text(&tx, *clip, text)?;
        }
        tx.execute(
            "INSERT INTO cursors (tag, device, seq, ops) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tag) DO UPDATE SET seq = excluded.seq, ops = excluded.ops",
            params![tag.0, device.0, to_i64(cursor.seq), to_i64(cursor.ops)],
        )?;
        insert_transfer(&tx, transfer)?;
        tx.commit()?;
        Ok(())
    }

    /// Stores the state after merging other devices' snapshots: the new checkpoint, the
    /// cursors they move forward, the text of their clips, and the transfers.
    pub(crate) fn apply_snapshot(
        &mut self,
        state: &State,
        cursors: &[(DeviceTag, DeviceId, CursorRow)],
        texts: &[(ClipId, String)],
        transfers: &[Transfer],
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        write_checkpoint(&tx, state)?;
        // Other devices' operations are in the new checkpoint; this device's own stay until
        // uploaded (applying them again changes nothing).
        tx.execute(
            "DELETE FROM ops WHERE device NOT IN (SELECT value FROM meta WHERE key IN (?1, ?2))",
            [Meta::DeviceId.key(), Meta::LocalId.key()],
        )?;
        for (tag, device, cursor) in cursors {
            tx.execute(
                "INSERT INTO cursors (tag, device, seq, ops) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tag) DO UPDATE SET
                     seq = max(seq, excluded.seq), ops = max(ops, excluded.ops)",
                params![tag.0, device.0, to_i64(cursor.seq), to_i64(cursor.ops)],
            )?;
        }
        // In row order: appends to the index's b-trees instead of random inserts.
        let mut ordered: Vec<&(ClipId, String)> = texts.iter().collect();
        ordered.sort_unstable_by_key(|(clip, _)| text_rowid(*clip));
        ordered.dedup_by_key(|(clip, _)| *clip);
        for (clip, text) in ordered {
            index_text(&tx, *clip, text)?;
        }
        for transfer in transfers {
            insert_transfer(&tx, transfer)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds a line to the transfer log.
    pub(crate) fn log(&self, transfer: &Transfer) -> Result<(), SyncError> {
        insert_transfer(&self.conn, transfer)
    }

    /// Records this device's snapshot at `seq`, made at operation `ops`, as written.
    pub(crate) fn snapshot_written(
        &mut self,
        seq: u64,
        ops: u64,
        transfer: &Transfer,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        set_meta(&tx, Meta::SnapshotSeq, &seq.to_le_bytes())?;
        set_meta(&tx, Meta::SnapshotOps, &ops.to_le_bytes())?;
        insert_transfer(&tx, transfer)?;
        tx.commit()?;
        Ok(())
    }

    /// The newest `limit` lines of the transfer log, newest first.
    pub(crate) fn transfers(&self, limit: usize) -> Result<Vec<Transfer>, SyncError> {
        let mut statement = self.conn.prepare(
            "SELECT at, direction, kind, device, name, ops, bytes, outcome, detail
             FROM transfers ORDER BY id DESC LIMIT ?1",
        )?;
        let mut rows = statement.query([to_i64(limit as u64)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(Transfer {
                at_ms: to_u64(row.get(0)?),
                direction: word(row.get(1)?)?,
                kind: word(row.get(2)?)?,
                device: row.get(3)?,
                name: row.get(4)?,
                ops: to_u64(row.get(5)?),
                bytes: to_u64(row.get(6)?),
                outcome: word(row.get(7)?)?,
                detail: row.get(8)?,
            });
        }
        Ok(out)
    }

    /// Quarantines `name` with `reason`, logging it.
    pub(crate) fn quarantine(
        &mut self,
        name: &str,
        reason: &str,
        transfer: &Transfer,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO quarantine (name, at, reason) VALUES (?1, ?2, ?3)",
            params![name, to_i64(transfer.at_ms), reason],
        )?;
        insert_transfer(&tx, transfer)?;
        tx.commit()?;
        Ok(())
    }

    /// The names of every quarantined object.
    pub(crate) fn quarantined_names(&self) -> Result<BTreeSet<String>, SyncError> {
        let mut statement = self.conn.prepare("SELECT name FROM quarantine")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every quarantined object with its reason.
    pub(crate) fn quarantined(&self) -> Result<Vec<(String, String)>, SyncError> {
        let mut statement = self
            .conn
            .prepare("SELECT name, reason FROM quarantine ORDER BY at, name")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Operations stored after the checkpoint.
    pub(crate) fn ops_since_checkpoint(&self) -> Result<u64, SyncError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM ops", [], |row| row.get(0))?;
        Ok(to_u64(n))
    }

    /// Replaces the checkpoint with `state` and drops the operations it holds, except this
    /// device's operations that are not uploaded yet (and its local-only ones, which the
    /// checkpoint does not hold).
    pub(crate) fn checkpoint(&mut self, state: &State, device: DeviceId) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        write_checkpoint(&tx, state)?;
        // Local-only operations are not in the checkpoint: they stay.
        tx.execute(
            "DELETE FROM ops WHERE device != ?1 AND device NOT IN
                 (SELECT value FROM meta WHERE key = ?2)",
            params![device.0, Meta::LocalId.key()],
        )?;
        tx.execute(
            "DELETE FROM ops WHERE device = ?1 AND seq IN
                 (SELECT seq FROM segments WHERE uploaded_at IS NOT NULL)",
            [device.0],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Blobs of this device's not yet uploaded.
    pub(crate) fn blobs_to_upload(&self) -> Result<Vec<BlobId>, SyncError> {
        let mut statement = self
            .conn
            .prepare("SELECT id FROM blobs WHERE uploaded = 0 ORDER BY rowid")?;
        let rows = statement.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(BlobId(fixed(row?, "a blob id")?));
        }
        Ok(out)
    }

    /// A blob held here.
    pub(crate) fn blob(&self, id: &BlobId) -> Result<Option<Vec<u8>>, SyncError> {
        Ok(self
            .conn
            .query_row("SELECT data FROM blobs WHERE id = ?1", [id.0], |row| {
                row.get(0)
            })
            .optional()?)
    }

    /// Marks a blob uploaded.
    pub(crate) fn blob_uploaded(&self, id: &BlobId, transfer: &Transfer) -> Result<(), SyncError> {
        self.conn
            .execute("UPDATE blobs SET uploaded = 1 WHERE id = ?1", [id.0])?;
        self.log(transfer)
    }

    /// The chunks of a blob already downloaded: their indexes and the chunk count they gave.
    pub(crate) fn chunks_held(&self, id: &BlobId) -> Result<Vec<(u32, u32)>, SyncError> {
        let mut statement = self
            .conn
            .prepare("SELECT idx, count FROM blob_chunks WHERE id = ?1 ORDER BY idx")?;
        let rows = statement.query_map([id.0], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keeps one downloaded chunk.
    pub(crate) fn keep_chunk(
        &self,
        id: &BlobId,
        index: u32,
        count: u32,
        data: &[u8],
    ) -> Result<(), SyncError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO blob_chunks (id, idx, count, data) VALUES (?1, ?2, ?3, ?4)",
            params![id.0, index, count, data],
        )?;
        Ok(())
    }

    /// The downloaded chunks joined in order.
    pub(crate) fn joined_chunks(&self, id: &BlobId) -> Result<Vec<u8>, SyncError> {
        let mut statement = self
            .conn
            .prepare("SELECT data FROM blob_chunks WHERE id = ?1 ORDER BY idx")?;
        let mut rows = statement.query([id.0])?;
        let mut data = Vec::new();
        while let Some(row) = rows.next()? {
            data.extend_from_slice(&row.get::<_, Vec<u8>>(0)?);
        }
        Ok(data)
    }

    /// Stores a complete downloaded blob and drops its chunks; or, when it failed its check,
    /// only drops the chunks.
    pub(crate) fn finish_blob(
        &mut self,
        id: &BlobId,
        data: Option<&[u8]>,
        transfer: &Transfer,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        if let Some(data) = data {
            tx.execute(
                "INSERT OR IGNORE INTO blobs (id, data, uploaded) VALUES (?1, ?2, 1)",
                params![id.0, data],
            )?;
        }
        tx.execute("DELETE FROM blob_chunks WHERE id = ?1", [id.0])?;
        insert_transfer(&tx, transfer)?;
        tx.commit()?;
        Ok(())
    }

    /// Clips whose text matches the FTS5 query `query`, best first.
    pub(crate) fn search(&self, query: &str, limit: usize) -> Result<Vec<ClipId>, SyncError> {
        let mut statement = self.conn.prepare(
            "SELECT clip_rows.clip FROM clip_text JOIN clip_rows ON clip_rows.rowid = clip_text.rowid
             WHERE clip_text MATCH ?1 ORDER BY clip_text.rank LIMIT ?2",
        )?;
        let rows = statement.query_map(params![fts_query(query), to_i64(limit as u64)], |row| {
            row.get::<_, Vec<u8>>(0)
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(ClipId(fixed(row?, "a clip id in the search index")?));
        }
        Ok(out)
    }
}

/// Quotes every word, so that user input is matched as words, never parsed as FTS syntax.
fn fts_query(query: &str) -> String {
    query
        .split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn corrupt(error: ferry_core::CoreError) -> SyncError {
    SyncError::LocalState {
        detail: error.to_string(),
    }
}

fn insert_op(tx: &Transaction<'_>, op: &Op, seq: Option<u64>) -> Result<(), SyncError> {
    tx.execute(
        "INSERT OR IGNORE INTO ops (device, counter, op, seq) VALUES (?1, ?2, ?3, ?4)",
        params![
            op.device().0,
            to_i64(op.counter),
            op.encode(),
            seq.map(to_i64)
        ],
    )?;
    Ok(())
}

/// The search index's row id of a clip: its first 8 bytes (a keyed hash: collisions are
/// negligible).
fn text_rowid(clip: ClipId) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&clip.0[..8]);
    i64::from_be_bytes(first)
}

/// Indexes a clip's text. A clip's content never changes (its id is a hash of it), so a clip
/// indexed once stays indexed as it is. The index is contentless: the text itself lives in the
/// state; `clip_rows` maps row ids back to clip ids.
fn index_text(tx: &Transaction<'_>, clip: ClipId, text: &str) -> Result<(), SyncError> {
    let rowid = text_rowid(clip);
    let new = tx
        .prepare_cached("INSERT OR IGNORE INTO clip_rows (rowid, clip) VALUES (?1, ?2)")?
        .execute(params![rowid, clip.0])?;
    if new == 1 {
        tx.prepare_cached("INSERT INTO clip_text (rowid, body) VALUES (?1, ?2)")?
            .execute(params![rowid, text])?;
    }
    Ok(())
}

fn set_meta(conn: &Connection, key: Meta, value: &[u8]) -> Result<(), SyncError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key.key(), value],
    )?;
    Ok(())
}

/// Replaces the checkpoint with `state`.
fn write_checkpoint(tx: &Transaction<'_>, state: &State) -> Result<(), SyncError> {
    tx.execute(
        "INSERT INTO checkpoint (id, state) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state",
        [state.encode()],
    )?;
    Ok(())
}

fn insert_transfer(conn: &Connection, t: &Transfer) -> Result<(), SyncError> {
    conn.execute(
        "INSERT INTO transfers (at, direction, kind, device, name, ops, bytes, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            to_i64(t.at_ms),
            t.direction.as_str(),
            t.kind.as_str(),
            t.device,
            t.name,
            to_i64(t.ops),
            to_i64(t.bytes),
            t.outcome.as_str(),
            t.detail
        ],
    )?;
    Ok(())
}
