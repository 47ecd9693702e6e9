//! The device's local database (SQLite, WAL, synchronous commits).
//!
//! What it holds, and why:
//!
//! | table | what |
//! | --- | --- |
//! | `meta` | this device's ids, the key id and generation of its repository, and where its snapshots and compaction stand (see [`Meta`]) |
//! | `ops` | operations not yet folded into the checkpoint: this device's own (with the segment that carries them, once reserved) and other devices' |
//! | `checkpoint` | the encoded merged state as of some moment; state = checkpoint + `ops` |
//! | `segments` | this device's segments: sealed segment and head bytes kept from reservation until a snapshot in storage covers them, so a retry after a crash, or a repair after storage lost one, writes the very same bytes |
//! | `cursors` | per other device: the last segment applied and its operation counter |
//! | `announced` | per other device: the newest segment it announced over the relay, and when |
//! | `transfers` | the transfer log (see [`crate::Transfer`]): every upload, download, quarantine, refused copy and failed pass |
//! | `quarantine` | objects set aside: they did not open, or need a newer Ferry; with the reason, when to try again, and (for the latter) their bytes |
//! | `blobs` | large content (images, files) by blob id: this device's own, and others' once fetched |
//! | `blob_chunks` | chunks of a blob being downloaded, so an interrupted download resumes |
//! | `clip_text`, `clip_rows` | contentless FTS5 index over clip text, for history search, and its row → clip map |
//!
//! Every change is one transaction; `record` commits before it returns. A row that does not
//! decode is reported as [`SyncError::LocalState`], never skipped.
//!
//! Here: the schema, the `meta` values and the merged state's loading. This device's own work
//! is in `outbox`, other devices' in `merge`, the transfer log in `log`, the quarantine in
//! `quarantine`, large content in `blobs`, the history's index in `search`, and the move to a
//! new generation of the repository in `generation`.

use std::path::Path;

use ferry_core::{Op, State};
use ferry_protocol::{DeviceId, KeyId};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::SyncError;

mod blobs;
mod generation;
mod log;
mod merge;
mod outbox;
mod quarantine;
mod search;

pub(crate) use search::Words;

pub(crate) use generation::{FirstSnapshot, Move};
use log::insert_transfer;
pub(crate) use quarantine::{QuarantineRow, SetAside};
use search::{Seen, index_text};

/// The newest schema this build knows. Each step in [`MIGRATIONS`] moves one version up.
const SCHEMA_VERSION: i64 = 7;

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
    // 1 → 2: quarantined objects are tried again (rows from before are due at once).
    "ALTER TABLE quarantine ADD COLUMN device BLOB;
     ALTER TABLE quarantine ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
     ALTER TABLE quarantine ADD COLUMN retry_at INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE quarantine ADD COLUMN head INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE quarantine ADD COLUMN newer_ops INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE quarantine ADD COLUMN kinds INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE quarantine ADD COLUMN sealed BLOB;",
    // 2 → 3: the checkpoint says which format version encoded it (1 had no device roster).
    "ALTER TABLE checkpoint ADD COLUMN format INTEGER NOT NULL DEFAULT 1;",
    // 3 → 4: what other devices announced over the relay, to tell when the storage is behind.
    "CREATE TABLE announced (
         tag BLOB PRIMARY KEY,
         seq INTEGER NOT NULL,
         at INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 4 → 5: the search index in the order clips were last copied, with prefix indexes; it is
    // built again from the state when the engine opens (see `Db::index_history`).
    "DROP TABLE clip_text;
     DROP TABLE clip_rows;
     CREATE TABLE clip_rows (rowid INTEGER PRIMARY KEY, clip BLOB NOT NULL UNIQUE);
     CREATE VIRTUAL TABLE clip_text USING fts5(
         body, content = '', detail = none, prefix = '1 2 3'
     );",
    // 5 → 6: a database that holds data from before the repository's first device was pinned
    // (see `Engine::first_device`) may be that device's own.
    "INSERT INTO meta (key, value)
         SELECT 'roster_before_pinning', x'01'
         WHERE EXISTS (SELECT 1 FROM ops) OR EXISTS (SELECT 1 FROM checkpoint);",
    // 6 → 7: announcements heard before hints were signed may be anyone's; each device
    // announces again with its next upload or at a roll call.
    "DELETE FROM announced;",
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
    /// When this device last checked that storage still holds its own segments (ms).
    CheckedOwnAt,
    /// The newest segment name this device skipped because the storage held an object there
    /// that it did not write.
    SkippedSeq,
    /// This device's heads up to here are deleted (the ones above, up to its newest, wait to
    /// be deleted in one batch).
    HeadsPrunedTo,
    /// The repository's first device, as this device first saw it (see
    /// [`crate::Engine::first_device`]).
    FirstDevice,
    /// Set when the database held data before the first device was pinned: this device may
    /// be it.
    RosterBeforePinning,
    /// The generation of the repository this database is on (1 when never set; SPEC §11).
    Generation,
    /// This device's first snapshot in the generation it moved to, sealed, until it is in
    /// storage.
    MovedSnapshot,
    /// Its head, sealed.
    MovedHead,
    /// The device that made each generation after the first, as its `prev` (signed) says:
    /// (generation u32 LE, device id) after each other.
    Creators,
    /// The devices the person removed on this device (`ferry devices remove`): their
    /// candidates for a new generation are left out of this device's choice; device ids after
    /// each other.
    RemovedHere,
    /// When the generation the device is on was made, in Unix milliseconds by its creator's
    /// clock (0: not known, as when the device moved by `prev` alone).
    MadeAt,
    /// The devices the generation the device is on was given to: device ids after each other.
    Recipients,
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
            Meta::CheckedOwnAt => "checked_own_at",
            Meta::SkippedSeq => "skipped_seq",
            Meta::HeadsPrunedTo => "heads_pruned_to",
            Meta::FirstDevice => "first_device",
            Meta::RosterBeforePinning => "roster_before_pinning",
            Meta::Generation => "generation",
            Meta::MovedSnapshot => "moved_snapshot",
            Meta::MovedHead => "moved_head",
            Meta::Creators => "creators",
            Meta::RemovedHere => "removed_here",
            Meta::MadeAt => "made_at",
            Meta::Recipients => "recipients",
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
pub(crate) use ferry_read::Position;

pub(crate) struct Db {
    conn: Connection,
    /// The root of the generation the device is on: transfer lines name their objects below it.
    root: String,
}

pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A fixed-size id read from a row; any other length is damage, named by `what`.
pub(super) fn fixed<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], SyncError> {
    let len = bytes.len();
    <[u8; N]>::try_from(bytes).map_err(|_| SyncError::LocalState {
        detail: format!("{what} is {len} bytes long, not {N}"),
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
        let mut db = Db {
            conn,
            root: ferry_protocol::names::ROOT.to_owned(),
        };
        db.migrate()?;
        db.root = db.stored_root()?;
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

    /// A number kept in `meta`, or `None` when it was never set.
    pub(crate) fn optional_number(&self, key: Meta) -> Result<Option<u64>, SyncError> {
        self.meta(key)?
            .map(|bytes| fixed(bytes, key.key()).map(u64::from_le_bytes))
            .transpose()
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
    /// This device's id in the repository `key_id`: `paired_as` or a random one the first time.
    pub(crate) fn identity(
        &self,
        key_id: KeyId,
        paired_as: Option<DeviceId>,
    ) -> Result<DeviceId, SyncError> {
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
        if let Some(id) = paired_as
            && self.meta(Meta::DeviceId)?.is_none()
        {
            self.set_meta(Meta::DeviceId, &id.0)?;
        }
        self.actor(Meta::DeviceId)
    }

    /// This device's local-only actor: the id under which it records data outside its sync
    /// scope. Its operations are never uploaded.
    pub(crate) fn local_identity(&self) -> Result<DeviceId, SyncError> {
        self.actor(Meta::LocalId)
    }

    /// The repository's first device, once pinned.
    pub(crate) fn first_device(&self) -> Result<Option<DeviceId>, SyncError> {
        self.meta(Meta::FirstDevice)?
            .map(|bytes| Ok(DeviceId(fixed(bytes, Meta::FirstDevice.key())?)))
            .transpose()
    }

    /// Whether the database held data before the first device was pinned.
    pub(crate) fn roster_before_pinning(&self) -> Result<bool, SyncError> {
        Ok(self.meta(Meta::RosterBeforePinning)?.is_some())
    }

    /// Pins the repository's first device.
    pub(crate) fn pin_first_device(&self, device: DeviceId) -> Result<(), SyncError> {
        self.set_meta(Meta::FirstDevice, &device.0)
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
            .query_row(
                "SELECT state, format FROM checkpoint WHERE id = 1",
                [],
                |row| {
                    let format = u8::try_from(row.get::<_, i64>(1)?).unwrap_or(u8::MAX);
                    Ok(State::decode_format(row.get_ref(0)?.as_blob()?, format))
                },
            )
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
}

pub(super) fn corrupt(error: ferry_core::CoreError) -> SyncError {
    SyncError::LocalState {
        detail: error.to_string(),
    }
}

pub(super) fn insert_op(tx: &Transaction<'_>, op: &Op, seq: Option<u64>) -> Result<(), SyncError> {
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

pub(super) fn set_meta(conn: &Connection, key: Meta, value: &[u8]) -> Result<(), SyncError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key.key(), value],
    )?;
    Ok(())
}

/// Replaces the checkpoint with `state`.
pub(super) fn write_checkpoint(tx: &Transaction<'_>, state: &State) -> Result<(), SyncError> {
    tx.execute(
        "INSERT INTO checkpoint (id, state, format) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, format = excluded.format",
        params![state.encode(), ferry_protocol::FORMAT_VERSION],
    )?;
    Ok(())
}
