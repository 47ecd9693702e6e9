//! This device's own work: operations recorded, segments reserved and uploaded, snapshots written.

use ferry_core::{ClipId, Op};
use ferry_protocol::{BlobId, DeviceId};
use rusqlite::{OptionalExtension, params};

use super::{
    Db, Meta, Seen, SegmentRow, index_text, insert_op, insert_transfer, set_meta, to_i64, to_u64,
};
use crate::SyncError;
use crate::transfer::Transfer;

impl Db {
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
            index_text(&tx, clip, text, Seen::Now)?;
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

    /// This device's newest segment number, reserved, uploaded or skipped (0 before the first).
    pub(crate) fn last_seq(&self) -> Result<u64, SyncError> {
        let seq: Option<i64> = self
            .conn
            .query_row("SELECT max(seq) FROM segments", [], |row| row.get(0))?;
        // A snapshot taken to a new generation and not yet in storage is seq 1.
        let moving = u64::from(self.moved_snapshot()?.is_some());
        Ok(seq
            .map_or(0, to_u64)
            .max(self.number(Meta::SkippedSeq)?)
            .max(moving))
    }

    /// Gives up the segment name `seq`, which the storage holds with an object this device did
    /// not write: the segments reserved from there on were never written (an upload goes in
    /// order), so their operations are pending again, to be sealed under the names after it.
    pub(crate) fn skip(
        &mut self,
        device: DeviceId,
        seq: u64,
        transfer: &Transfer,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE ops SET seq = NULL WHERE device = ?1 AND seq >= ?2
               AND seq IN (SELECT seq FROM segments WHERE uploaded_at IS NULL)",
            params![device.0, to_i64(seq)],
        )?;
        tx.execute(
            "DELETE FROM segments WHERE seq >= ?1 AND uploaded_at IS NULL",
            [to_i64(seq)],
        )?;
        set_meta(&tx, Meta::SkippedSeq, &seq.to_le_bytes())?;
        insert_transfer(&tx, &self.root, transfer)?;
        tx.commit()?;
        Ok(())
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
        let rows = statement.query_map([], segment_row)?;
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

    /// Marks segment `seq` uploaded. Its sealed bytes stay until a snapshot covers it, so that
    /// storage that loses it gets the very same bytes again.
    pub(crate) fn uploaded(&mut self, seq: u64, transfer: &Transfer) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE segments SET uploaded_at = ?2 WHERE seq = ?1",
            params![to_i64(seq), to_i64(transfer.at_ms)],
        )?;
        insert_transfer(&tx, &self.root, transfer)?;
        tx.commit()?;
        Ok(())
    }

    /// This device's newest uploaded segment (0 before the first).
    pub(crate) fn last_uploaded(&self) -> Result<u64, SyncError> {
        let seq: Option<i64> = self.conn.query_row(
            "SELECT max(seq) FROM segments WHERE uploaded_at IS NOT NULL",
            [],
            |row| row.get(0),
        )?;
        Ok(seq.map_or(0, to_u64))
    }

    /// The uploaded segment `seq`, if its sealed bytes are still kept.
    pub(crate) fn kept_segment(&self, seq: u64) -> Result<Option<SegmentRow>, SyncError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, first_op, last_op, sealed, head FROM segments
                 WHERE seq = ?1 AND uploaded_at IS NOT NULL
                   AND sealed IS NOT NULL AND head IS NOT NULL",
                [to_i64(seq)],
                segment_row,
            )
            .optional()?)
    }

    /// Up to `limit` of this device's segments after `seq` whose sealed bytes are kept
    /// (uploaded or not), oldest first.
    pub(crate) fn kept_segments_after(
        &self,
        seq: u64,
        limit: u64,
    ) -> Result<Vec<SegmentRow>, SyncError> {
        let mut statement = self.conn.prepare(
            "SELECT seq, first_op, last_op, sealed, head FROM segments
             WHERE seq > ?1 AND sealed IS NOT NULL AND head IS NOT NULL
             ORDER BY seq LIMIT ?2",
        )?;
        let rows = statement.query_map(params![to_i64(seq), to_i64(limit)], segment_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that a snapshot at `seq`, with this device's operation counter `ops`, is in
    /// storage: the segments it covers need no kept bytes any more.
    pub(crate) fn snapshot_written(
        &mut self,
        seq: u64,
        ops: u64,
        transfer: &Transfer,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        set_meta(&tx, Meta::SnapshotSeq, &seq.to_le_bytes())?;
        set_meta(&tx, Meta::SnapshotOps, &ops.to_le_bytes())?;
        tx.execute(
            "UPDATE segments SET sealed = NULL, head = NULL
             WHERE seq <= ?1 AND uploaded_at IS NOT NULL",
            [to_i64(seq)],
        )?;
        insert_transfer(&tx, &self.root, transfer)?;
        tx.commit()?;
        Ok(())
    }
}

/// A `segments` row selected as (seq, first_op, last_op, sealed, head).
fn segment_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRow> {
    Ok(SegmentRow {
        seq: to_u64(row.get(0)?),
        first_op: to_u64(row.get(1)?),
        last_op: to_u64(row.get(2)?),
        sealed: row.get(3)?,
        head: row.get(4)?,
    })
}
