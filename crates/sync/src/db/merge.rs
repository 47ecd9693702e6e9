//! Other devices' work: where each stream stands, and their segments and snapshots merged in.

use ferry_core::{ClipId, Op, State};
use ferry_protocol::{DeviceId, DeviceTag};
use rusqlite::{OptionalExtension, params};

use super::{
    Db, Meta, Position, Seen, fixed, index_text, insert_op, insert_transfer, to_i64, to_u64,
    write_checkpoint,
};
use crate::SyncError;
use crate::transfer::Transfer;

impl Db {
    /// Where this device stands with the device of `tag`.
    pub(crate) fn cursor(&self, tag: &DeviceTag) -> Result<Position, SyncError> {
        let row = self
            .conn
            .query_row(
                "SELECT seq, ops FROM cursors WHERE tag = ?1",
                [tag.0],
                |row| {
                    Ok(Position {
                        seq: to_u64(row.get(0)?),
                        ops: to_u64(row.get(1)?),
                    })
                },
            )
            .optional()?;
        Ok(row.unwrap_or(Position { seq: 0, ops: 0 }))
    }

    /// The id of the device of `tag`, once this device has applied anything of it.
    pub(crate) fn device_of(&self, tag: &DeviceTag) -> Result<Option<DeviceId>, SyncError> {
        let device: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT device FROM cursors WHERE tag = ?1",
                [tag.0],
                |row| row.get(0),
            )
            .optional()?;
        device
            .map(|id| fixed(id, "a cursor's device id").map(DeviceId))
            .transpose()
    }

    /// Records that the device of `tag` announced its segment `seq` at `at_ms`; an older
    /// announcement (a replay) changes nothing.
    pub(crate) fn announce(&self, tag: &DeviceTag, seq: u64, at_ms: u64) -> Result<(), SyncError> {
        self.conn.execute(
            "INSERT INTO announced (tag, seq, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (tag) DO UPDATE SET seq = excluded.seq, at = excluded.at
             WHERE excluded.seq > announced.seq",
            params![tag.0, to_i64(seq), to_i64(at_ms)],
        )?;
        Ok(())
    }

    /// Every device's newest announced segment, with when it was announced (ms).
    pub(crate) fn announced(&self) -> Result<Vec<(DeviceTag, u64, u64)>, SyncError> {
        let mut statement = self
            .conn
            .prepare("SELECT tag, seq, at FROM announced ORDER BY tag")?;
        let rows = statement.query_map([], |row| {
            let tag: Vec<u8> = row.get(0)?;
            Ok((tag, to_u64(row.get(1)?), to_u64(row.get(2)?)))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (tag, seq, at) = row?;
            out.push((
                DeviceTag(fixed(tag, "an announcement's device tag")?),
                seq,
                at,
            ));
        }
        Ok(out)
    }

    /// Every other device this one has applied segments from.
    pub(crate) fn cursors(&self) -> Result<Vec<(DeviceTag, DeviceId, Position)>, SyncError> {
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
            out.push((tag, device, Position { seq, ops }));
        }
        Ok(out)
    }

    /// Stores another device's segment, applied: its operations, the new cursor, the text of
    /// new clips, and the transfer.
    pub(crate) fn apply_remote(
        &mut self,
        tag: &DeviceTag,
        device: DeviceId,
        cursor: Position,
        ops: &[Op],
        texts: &[(ClipId, String)],
        transfer: &Transfer,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        for op in ops {
            insert_op(&tx, op, None)?;
        }
        for (clip, text) in texts {
            index_text(&tx, *clip, text, Seen::Now)?;
        }
        tx.execute(
            "INSERT INTO cursors (tag, device, seq, ops) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tag) DO UPDATE SET seq = excluded.seq, ops = excluded.ops",
            params![tag.0, device.0, to_i64(cursor.seq), to_i64(cursor.ops)],
        )?;
        insert_transfer(&tx, &self.root, transfer)?;
        tx.commit()?;
        Ok(())
    }

    /// Stores the state after merging other devices' snapshots: the new checkpoint, the
    /// cursors they move forward, the text of their clips, and the transfers.
    pub(crate) fn apply_snapshot(
        &mut self,
        state: &State,
        cursors: &[(DeviceTag, DeviceId, Position)],
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
        // Oldest first (the caller's order): the rows keep the order of last copy.
        for (clip, text) in texts {
            index_text(&tx, *clip, text, Seen::Before)?;
        }
        for transfer in transfers {
            insert_transfer(&tx, &self.root, transfer)?;
        }
        tx.commit()?;
        Ok(())
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
}
