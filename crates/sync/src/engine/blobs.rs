//! Blobs: images and files above a threshold travel as sealed chunks under `blob/<id>/`,
//! uploaded before the segment that names them, and fetched with the segment (up to a size) or
//! on demand, resuming from the chunks already held.

use ferry_protocol::{BlobChunk, BlobId, ObjectName};

use super::{Engine, UploadReport};
use crate::SyncError;
use crate::remote::{IfPresent, path};
use crate::transfer::{Direction, Kind, Outcome, Transfer};

impl Engine {
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
        while count.is_none_or(|count| index < count) {
            if held.iter().any(|(i, _)| *i == index) {
                index += 1;
                continue;
            }
            let name = ObjectName::Blob {
                blob: id,
                chunk: index,
            };
            let bytes = self.remote.get(&name).await?;
            bytes_read += bytes.len() as u64;
            let chunk = self.take_chunk(&name, count, &bytes, Direction::Down)?;
            count = Some(chunk.count);
            index += 1;
        }
        self.join_blob(id, bytes_read, Direction::Down)
    }

    /// Opens the sealed chunk `bytes` read under `name` and keeps it, when it is the chunk that
    /// belongs there, of a blob of `count` chunks where that is known already; otherwise drops
    /// what is held of the blob and says why.
    pub(super) fn take_chunk(
        &mut self,
        name: &ObjectName,
        count: Option<u32>,
        bytes: &[u8],
        direction: Direction,
    ) -> Result<BlobChunk, SyncError> {
        let ObjectName::Blob {
            blob: id,
            chunk: index,
        } = *name
        else {
            return Err(SyncError::LocalState {
                detail: "a blob chunk was read under another kind of name".into(),
            });
        };
        let chunk: BlobChunk = match self.keys.data.open_object(name, bytes) {
            Ok(chunk) => chunk,
            Err(error) => return Err(self.broken_blob(&id, name, error.to_string(), direction)),
        };
        let expected = count.unwrap_or(chunk.count);
        if chunk.blob != id || chunk.index != index || chunk.count != expected || expected == 0 {
            let reason = "the chunk does not belong at this place of this blob".to_owned();
            return Err(self.broken_blob(&id, name, reason, direction));
        }
        self.db.keep_chunk(&id, index, expected, &chunk.data)?;
        Ok(chunk)
    }

    /// Joins a blob's chunks, all held, checks them against its id, and keeps the blob.
    pub(super) fn join_blob(
        &mut self,
        id: BlobId,
        bytes_read: u64,
        direction: Direction,
    ) -> Result<Vec<u8>, SyncError> {
        let data = self.db.joined_chunks(&id)?;
        let first = ObjectName::Blob { blob: id, chunk: 0 };
        if self.keys.names.blob_id(&data) != id {
            let reason = "the joined chunks do not hash to the blob's id".to_owned();
            return Err(self.broken_blob(&id, &first, reason, direction));
        }
        let received = Transfer::new(direction, Kind::Blob, Outcome::Ok)
            .object(&first)
            .bytes(bytes_read);
        self.db.finish_blob(&id, Some(&data), &received)?;
        Ok(data)
    }

    /// Drops a broken blob's chunks, logs why, and gives the error to return.
    fn broken_blob(
        &mut self,
        id: &BlobId,
        name: &ObjectName,
        reason: String,
        direction: Direction,
    ) -> SyncError {
        let failed = Transfer::new(direction, Kind::Blob, Outcome::Failed)
            .object(name)
            .detail(reason.clone());
        if let Err(error) = self.db.finish_blob(id, None, &failed) {
            return error;
        }
        let name = path(name);
        self.note(format!("{name}: {reason}"));
        SyncError::BrokenBlob { name, reason }
    }

    /// How many chunks a blob of `len` bytes is cut into, and how long each is (the last
    /// may be shorter).
    pub(super) fn chunking(&self, len: usize) -> (u32, usize) {
        let chunk_len = self.config.blob_chunk.clamp(1, BlobChunk::MAX_DATA);
        let count = len.div_ceil(chunk_len).max(1);
        (u32::try_from(count).unwrap_or(u32::MAX), chunk_len)
    }

    /// Chunk `index` of the blob `id` holding `data`, sealed under its name.
    pub(super) fn seal_chunk(
        &self,
        id: BlobId,
        data: &[u8],
        index: u32,
    ) -> Result<(ObjectName, Vec<u8>), SyncError> {
        let (count, chunk_len) = self.chunking(data.len());
        let start = (index as usize * chunk_len).min(data.len());
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
        Ok((name, sealed.into_bytes()))
    }

    /// Uploads this device's blobs not yet in storage, chunk by chunk (write-once: a chunk
    /// already there is the same content, whatever its bytes).
    pub(super) async fn upload_blobs(
        &mut self,
        report: &mut UploadReport,
    ) -> Result<(), SyncError> {
        for id in self.db.blobs_to_upload()? {
            let Some(data) = self.db.blob(&id)? else {
                continue;
            };
            let (count, _) = self.chunking(data.len());
            let mut bytes = 0u64;
            for index in 0..count {
                let (name, sealed) = self.seal_chunk(id, &data, index)?;
                bytes += sealed.len() as u64;
                self.remote
                    .put_once(&name, &sealed, IfPresent::Keep)
                    .await?;
            }
            let sent = Transfer::new(Direction::Up, Kind::Blob, Outcome::Ok)
                .device(&self.tag)
                .object(&ObjectName::Blob { blob: id, chunk: 0 })
                .bytes(bytes);
            self.db.blob_uploaded(&id, &sent)?;
            report.bytes += bytes;
        }
        Ok(())
    }

    /// Fetches the blobs of newly applied clips that are small enough to fetch eagerly. A blob
    /// that fails is noted in the status and fetched again when asked for.
    pub(super) async fn fetch_wanted_blobs(&mut self) {
        for id in std::mem::take(&mut self.wanted_blobs) {
            if let Err(error) = self.blob(id).await {
                self.note(format!("blob {id}: {error}"));
            }
        }
    }
}
