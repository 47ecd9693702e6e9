//! Large content: this device's blobs, and others' as they download chunk by chunk.

use ferry_protocol::BlobId;
use rusqlite::{OptionalExtension, params};

use super::{Db, fixed, insert_transfer};
use crate::SyncError;
use crate::transfer::Transfer;

impl Db {
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

    /// Marks the blobs held here to be written again, under the key of the generation this
    /// device is on.
    pub(crate) fn reseal(&self, ids: &[BlobId]) -> Result<(), SyncError> {
        for id in ids {
            self.conn
                .execute("UPDATE blobs SET uploaded = 0 WHERE id = ?1", [id.0])?;
        }
        Ok(())
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

    /// Whether blob `id` is held whole.
    pub(crate) fn holds_blob(&self, id: &BlobId) -> Result<bool, SyncError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM blobs WHERE id = ?1)",
            [id.0],
            |row| row.get(0),
        )?)
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
        insert_transfer(&tx, &self.root, transfer)?;
        tx.commit()?;
        Ok(())
    }
}
