//! Blobs: images and files above a threshold travel as sealed chunks under `blob/<id>/`,
//! uploaded after the segment that names them, and fetched with the segment (up to a size) or
//! on demand, resuming from the chunks already held; each chunk keeps to the traffic limit.

use ferry_protocol::{BlobChunk, BlobId, ObjectName};
use ferry_store::StoreError;

use super::{Engine, UploadReport};
use crate::SyncError;
use crate::remote::IfPresent;
use crate::transfer::{Kind, Outcome, Route, Transfer};

impl Engine {
    /// The bytes of a blob: from the local database, or downloaded (resuming from the chunks
    /// already held, at the download limit where one is set) and kept.
    pub async fn blob(&mut self, id: BlobId) -> Result<Vec<u8>, SyncError> {
        if let Some(data) = self.db.blob(&id)? {
            return Ok(data);
        }
        loop {
            let whole = self.read_next_chunk(id).await?;
            // Each chunk has its time at the limit before the next goes (or the blob is done).
            if let Some(limit) = &self.config.download_limit {
                tokio::time::sleep_until(limit.free_at()).await;
            }
            if let Some(data) = whole {
                return Ok(data);
            }
        }
    }

    /// Downloads the first chunk of blob `id` this device lacks and keeps it (counted against
    /// the download limit); when that makes the blob whole, joins it and returns its bytes.
    pub(super) async fn read_next_chunk(
        &mut self,
        id: BlobId,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        let held = self.db.chunks_held(&id)?;
        let count = held.first().map(|(_, count)| *count);
        let index = (0..)
            .find(|i| !held.iter().any(|(held, _)| held == i))
            .unwrap_or(0);
        if count.is_none_or(|count| index < count) {
            let name = ObjectName::Blob {
                blob: id,
                chunk: index,
            };
            let (bytes, from) = self.blob_chunk(&name).await?;
            if let Some(limit) = &self.config.download_limit {
                limit.charge(bytes.len() as u64);
            }
            let chunk = self.take_chunk(&name, count, &bytes, Route::Down, from)?;
            // Chunks are cut alike, so the ones held tell how far the blob is (a download that
            // resumes starts where it stopped).
            let chunk_len = chunk.total_len.div_ceil(u64::from(chunk.count));
            *self.large.read.entry(id).or_default() += bytes.len() as u64;
            let done = (held.len() as u64 + 1) * chunk_len;
            self.large.tell(id, Route::Down, done, chunk.total_len);
            if index + 1 < chunk.count {
                return Ok(None);
            }
        }
        // A blob made before the generation this device is on keeps the id it was made with.
        self.learn_older_names(id).await;
        let read = self.large.read.remove(&id).unwrap_or_default();
        self.join_blob(id, read, Route::Down).map(Some)
    }

    /// Opens the sealed chunk `bytes` read under `name` and keeps it, when it is the chunk that
    /// belongs there, of a blob of `count` chunks where that is known already; otherwise drops
    /// what is held of the blob and says why. `from` is the older generation it was read from
    /// (its index among those known here), `None` for this one.
    pub(super) fn take_chunk(
        &mut self,
        name: &ObjectName,
        count: Option<u32>,
        bytes: &[u8],
        direction: Route,
        from: Option<usize>,
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
        let keys = from.map_or(&self.keys, |index| self.older_keys(index));
        let chunk: BlobChunk = match keys.data.open_object(name, bytes) {
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
        direction: Route,
    ) -> Result<Vec<u8>, SyncError> {
        let data = self.db.joined_chunks(&id)?;
        let first = ObjectName::Blob { blob: id, chunk: 0 };
        let made_here = self.keys.names.blob_id(&data) == id;
        if !made_here && !self.older_names().any(|names| names.blob_id(&data) == id) {
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
        direction: Route,
    ) -> SyncError {
        let failed = Transfer::new(direction, Kind::Blob, Outcome::Failed)
            .object(name)
            .detail(reason.clone());
        if let Err(error) = self.db.finish_blob(id, None, &failed) {
            return error;
        }
        let name = self.remote.path(name);
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

    /// Uploads this device's blobs not yet in storage, chunk by chunk, each when the upload
    /// limit gives it its turn.
    pub(super) async fn upload_blobs(
        &mut self,
        report: &mut UploadReport,
    ) -> Result<(), SyncError> {
        for id in self.db.blobs_to_upload()? {
            while let Some(sent) = self.send_next_chunk(id, true).await? {
                report.bytes += sent.bytes;
                if sent.whole {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Writes the next chunk of this device's blob `id` (write-once: a chunk already there is
    /// the same content, whatever its bytes); the last marks the blob uploaded. Under an upload
    /// limit it waits for the chunk's turn when `wait`, else answers `None` until it comes
    /// (the turn is kept: the next call goes when it is due).
    pub(super) async fn send_next_chunk(
        &mut self,
        id: BlobId,
        wait: bool,
    ) -> Result<Option<Sent>, SyncError> {
        let Some(data) = self.db.blob(&id)? else {
            return Ok(None);
        };
        let (count, _) = self.chunking(data.len());
        let index = self.large.sent.get(&id).map_or(0, |(next, _)| *next);
        let (name, sealed) = self.seal_chunk(id, &data, index)?;
        if let Some(limit) = &self.config.upload_limit {
            let turn = *self
                .large
                .turn
                .get_or_insert_with(|| limit.charge(sealed.len() as u64));
            if wait {
                tokio::time::sleep_until(turn).await;
            } else if turn > tokio::time::Instant::now() {
                return Ok(None);
            }
            self.large.turn = None;
        }
        self.remote
            .put_once(&name, &sealed, IfPresent::Keep)
            .await?;
        let bytes = sealed.len() as u64;
        let total = self.large.sent.get(&id).map_or(0, |(_, total)| *total) + bytes;
        let (_, chunk_len) = self.chunking(data.len());
        let done = (u64::from(index) + 1) * chunk_len as u64;
        self.large.tell(id, Route::Up, done, data.len() as u64);
        if index + 1 < count {
            self.large.sent.insert(id, (index + 1, total));
            return Ok(Some(Sent {
                bytes,
                whole: false,
            }));
        }
        self.large.sent.remove(&id);
        let sent = Transfer::new(Route::Up, Kind::Blob, Outcome::Ok)
            .device(&self.tag)
            .object(&ObjectName::Blob { blob: id, chunk: 0 })
            .bytes(total);
        self.db.blob_uploaded(&id, &sent)?;
        Ok(Some(Sent { bytes, whole: true }))
    }

    /// Fetches the blobs of newly applied clips that are small enough to fetch eagerly. A blob
    /// not in storage yet (its writer sends segments before blobs) is fetched when asked for;
    /// one that fails otherwise is noted in the status, and fetched again when asked for.
    pub(super) async fn fetch_wanted_blobs(&mut self) {
        for id in std::mem::take(&mut self.wanted_blobs) {
            match self.blob(id).await {
                Ok(_) => {}
                Err(SyncError::Store(StoreError::NotFound { .. })) => {}
                Err(error) => self.note(format!("blob {id}: {error}")),
            }
        }
    }
}

/// One chunk written.
pub(super) struct Sent {
    pub(super) bytes: u64,
    /// It was the blob's last.
    pub(super) whole: bool,
}
