//! Segments that travel directly between devices on one network, next to storage.
//!
//! ```text
//! writer:   copy ─▶ seal_pending (reserved, exactly the bytes the upload writes)
//!                ─▶ to connected devices at once, and to storage with the next upload
//! on connect: heads() ─▶ the other device ─▶ segments_for(its heads) ─▶ what it lacks
//! reader:   receive(segment) ─▶ opened and checked as from storage ─▶ applied
//!           └▶ the blobs it names that are not here ─▶ asked of the sender
//! sender:   blob_chunks(blob) ─▶ each chunk sealed under its storage name
//! reader:   receive_chunk(chunk) ─▶ opened and checked as from storage ─▶ kept; the last
//!           one joins the blob, checked against its id
//! ```
//!
//! A device sends only the segments it wrote; the others' come from them or from storage.
//! Storage stays the durable copy: each device uploads its own segments as always, and a
//! segment applied from a nearby device is not applied again when storage serves it.

use ferry_protocol::{BlobId, DeviceTag, ObjectName};
use tracing::warn;

use super::Engine;
use crate::SyncError;
use crate::transfer::{Kind, Outcome, Route, Transfer};

/// The most segments sent to a device that lacks them; storage has the rest.
const MAX_SENT: u64 = 256;

/// One sealed segment between nearby devices: its writer's tag, its seq, and its bytes as
/// they are (or will be) in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearbySegment {
    /// The writer's tag.
    pub device: DeviceTag,
    /// The segment's seq.
    pub seq: u64,
    /// Its sealed bytes.
    pub sealed: Vec<u8>,
}

/// One sealed blob chunk between nearby devices: its blob, its index, and its bytes sealed
/// under its storage name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearbyChunk {
    /// The blob.
    pub blob: BlobId,
    /// The chunk's index.
    pub index: u32,
    /// Its sealed bytes.
    pub sealed: Vec<u8>,
}

/// What became of a segment a nearby device sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Opened, checked and applied: this many operations.
    Applied {
        /// Operations applied.
        ops: u64,
        /// Blobs they name, small enough to fetch at once, that this device does not hold:
        /// to ask of the sender.
        blobs: Vec<BlobId>,
    },
    /// Applied before (from storage or another connection): nothing to do.
    Already,
    /// Its writer's earlier segments are not applied yet: it waits for them.
    Ahead,
    /// This device does not take in others' data, or the segment is its own.
    Ignored,
    /// It did not open or check: why. Nothing was applied.
    Refused(String),
}

impl Engine {
    /// Seals this device's pending operations into segments now, without waiting for an
    /// upload: they are reserved, so the next upload writes these very bytes. Returns them
    /// to send to nearby devices.
    pub fn seal_pending(&mut self) -> Result<Vec<NearbySegment>, SyncError> {
        let mut sealed = Vec::new();
        if !self.config.direction.sends() {
            return Ok(sealed);
        }
        while let Some(row) = self.reserve_next()? {
            sealed.push(NearbySegment {
                device: self.tag,
                seq: row.seq,
                sealed: row.sealed,
            });
        }
        Ok(sealed)
    }

    /// How far this device has each device's log: its own newest segment and, for the
    /// others, the newest applied.
    pub fn heads(&self) -> Result<Vec<(DeviceTag, u64)>, SyncError> {
        let mut heads = vec![(self.tag, self.db.last_seq()?)];
        heads.extend(
            self.db
                .cursors()?
                .into_iter()
                .map(|(tag, _, cursor)| (tag, cursor.seq)),
        );
        Ok(heads)
    }

    /// This device's segments that a device with `heads` lacks, oldest first, as far as their
    /// sealed bytes are still kept here (a snapshot covers the older ones, in storage).
    pub fn segments_for(
        &self,
        heads: &[(DeviceTag, u64)],
    ) -> Result<Vec<NearbySegment>, SyncError> {
        let has = heads
            .iter()
            .find(|(tag, _)| *tag == self.tag)
            .map_or(0, |(_, seq)| *seq);
        Ok(self
            .db
            .kept_segments_after(has, MAX_SENT)?
            .into_iter()
            .map(|row| NearbySegment {
                device: self.tag,
                seq: row.seq,
                sealed: row.sealed,
            })
            .collect())
    }

    /// Opens, checks and applies a segment a nearby device sent, exactly as one read from
    /// storage: the key, its name, its writer's signature and its place in the writer's log.
    /// A segment that fails is refused and logged; it is not quarantined, because the storage
    /// may hold the good one under that name.
    pub fn receive(&mut self, segment: NearbySegment) -> Result<Received, SyncError> {
        if !self.config.direction.receives() || segment.device == self.tag {
            return Ok(Received::Ignored);
        }
        let tag = segment.device;
        let cursor = self.db.cursor(&tag)?;
        if segment.seq <= cursor.seq {
            return Ok(Received::Already);
        }
        let name = ObjectName::Log {
            device: tag,
            seq: segment.seq,
        };
        let bytes = segment.sealed.len() as u64;
        let (opened, ops) = match self
            .checker()
            .open_segment(&name, &tag, cursor, &segment.sealed)
        {
            Ok(Some(opened)) => opened,
            Ok(None) => return Ok(Received::Ahead),
            Err(refusal) => {
                let reason = refusal.reason();
                warn!(device = %tag, seq = segment.seq, %reason, "a nearby device's segment was refused");
                let refused = Transfer::new(Route::Nearby, Kind::Segment, Outcome::Failed)
                    .device(&tag)
                    .object(&name)
                    .bytes(bytes)
                    .detail(&reason);
                self.db.log(&refused)?;
                self.note(format!(
                    "a segment from a nearby device was refused: {reason}"
                ));
                return Ok(Received::Refused(reason));
            }
        };
        let received = Transfer::new(Route::Nearby, Kind::Segment, Outcome::Ok)
            .object(&name)
            .bytes(bytes);
        // Storage may not have it yet: until it does, its older head there is no rollback.
        self.ahead_of_storage.entry(tag).or_insert(cursor.seq);
        let ops = self.take_segment(tag, cursor, &opened, ops, received)?;
        self.maybe_checkpoint()?;
        // Asked of the sender; storage serves any the sender does not send when it is asked.
        let mut blobs = Vec::new();
        for id in std::mem::take(&mut self.wanted_blobs) {
            if self.db.blob(&id)?.is_none() && !blobs.contains(&id) {
                blobs.push(id);
            }
        }
        Ok(Received::Applied { ops, blobs })
    }

    /// Every chunk of a blob this device holds, sealed under its storage name, for a nearby
    /// device that asked; empty when the blob is not here (whole).
    pub fn blob_chunks(&self, id: BlobId) -> Result<Vec<NearbyChunk>, SyncError> {
        let Some(data) = self.db.blob(&id)? else {
            return Ok(Vec::new());
        };
        let (count, _) = self.chunking(data.len());
        (0..count)
            .map(|index| {
                let (_, sealed) = self.seal_chunk(id, &data, index)?;
                Ok(NearbyChunk {
                    blob: id,
                    index,
                    sealed,
                })
            })
            .collect()
    }

    /// Opens, checks and keeps a blob chunk a nearby device sent, exactly as one read from
    /// storage; the last one missing joins the blob, which must hash to its id. A chunk that
    /// fails drops what is held of that blob (storage serves it whole later).
    pub fn receive_chunk(&mut self, chunk: NearbyChunk) -> Result<ChunkReceived, SyncError> {
        let id = chunk.blob;
        if self.db.blob(&id)?.is_some() {
            return Ok(ChunkReceived::Already);
        }
        let held = self.db.chunks_held(&id)?;
        if held.iter().any(|(index, _)| *index == chunk.index) {
            return Ok(ChunkReceived::Already);
        }
        let name = ObjectName::Blob {
            blob: id,
            chunk: chunk.index,
        };
        let count = held.first().map(|(_, count)| *count);
        let taken = match self.take_chunk(&name, count, &chunk.sealed, Route::Nearby, None) {
            Ok(taken) => taken,
            Err(SyncError::BrokenBlob { reason, .. }) => {
                warn!(blob = %id, index = chunk.index, %reason, "a nearby device's blob chunk was refused");
                return Ok(ChunkReceived::Refused(reason));
            }
            Err(error) => return Err(error),
        };
        if held.len() as u64 + 1 < u64::from(taken.count) {
            return Ok(ChunkReceived::Kept);
        }
        match self.join_blob(id, taken.total_len, Route::Nearby) {
            Ok(_) => Ok(ChunkReceived::Complete),
            Err(SyncError::BrokenBlob { reason, .. }) => Ok(ChunkReceived::Refused(reason)),
            Err(error) => Err(error),
        }
    }
}

/// What became of a blob chunk a nearby device sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkReceived {
    /// Kept; more of its blob is to come.
    Kept,
    /// It was the last one missing: the blob is whole and kept.
    Complete,
    /// The blob, or this chunk of it, is here already.
    Already,
    /// It did not open or check, or the blob it completed did not match its id: why. What was
    /// held of that blob is dropped.
    Refused(String),
}
