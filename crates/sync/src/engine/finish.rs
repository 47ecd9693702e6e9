//! Ending the generations before this one (SPEC §11.7): once every remaining device has moved,
//! the blobs that live clips name and only an earlier generation holds are written into this
//! one, then every earlier generation's objects in this store are deleted, its header first.
//!
//! ```text
//! live blobs with no chunk here ─▶ read through `prev` from an earlier generation ─▶ sealed
//!     again here by the next upload
//! folders in this store: ferry/v1/, ferry/g<n>-<k>/ of an earlier n, or of this n and
//!     another key (a candidate that lost) ─▶ `repo` deleted first (a joining device then
//!     finds this generation) ─▶ the rest
//! ```

use std::collections::BTreeSet;

use ferry_protocol::names::ROOT;
use ferry_protocol::{BlobId, ObjectName};
use ferry_store::{RetryPolicy, Store};

use super::Engine;
use crate::SyncError;
use crate::generation;

/// What finishing the earlier generations did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// Blobs sealed again in this generation, which only an earlier one held.
    pub resealed: usize,
    /// Blobs that live clips name and that no generation holds whole (left as they were).
    pub unreadable: usize,
    /// The folders emptied, each with the objects deleted there.
    pub emptied: Vec<(String, usize)>,
}

impl Engine {
    /// Writes into this generation the blobs that live clips name and only earlier ones hold,
    /// then deletes every earlier generation in this store (and the folders of candidates
    /// that lost a race for this one). Later generations are left alone. The caller checks
    /// first that the devices that matter have moved: one still on an earlier generation
    /// finds nothing there afterwards.
    pub async fn finish_generations(&mut self) -> Result<Finished, SyncError> {
        if self.generation <= 1 {
            return Err(SyncError::GenerationRefused {
                reason: "the repository is on its first key: there is no earlier generation to \
                         delete"
                    .into(),
            });
        }
        let mut finished = Finished::default();
        let here = self.blobs_here().await?;
        let live = self.live_blobs();
        let mut moved = Vec::new();
        for id in &live {
            if here.contains(id) {
                continue;
            }
            match self.blob(*id).await {
                Ok(_) => moved.push(*id),
                // Missing or broken everywhere: nothing more of it can be saved.
                Err(
                    error @ (SyncError::BrokenBlob { .. }
                    | SyncError::Store(ferry_store::StoreError::NotFound { .. })),
                ) => {
                    tracing::warn!(blob = %id, %error, "a blob no generation holds whole");
                    finished.unreadable += 1;
                }
                Err(error) => return Err(error),
            }
        }
        self.db.reseal(&moved)?;
        finished.resealed = moved.len();
        // Every live blob this device has to write is in this generation before anything
        // goes, written now whole (not a step at a time, as the agent does otherwise).
        let in_steps = std::mem::replace(&mut self.config.large_in_steps, false);
        let uploaded = self.upload().await;
        self.config.large_in_steps = in_steps;
        uploaded?;
        let remaining = self.db.blobs_to_upload()?;
        if live.iter().any(|id| remaining.contains(id)) {
            return Err(SyncError::GenerationRefused {
                reason: "not every image and file could be written under the new key yet: \
                         nothing was deleted; try again"
                    .into(),
            });
        }
        let (store, retry) = (self.remote.shared_store(), *self.remote.retry());
        for root in self.earlier_roots(&*store, &retry).await? {
            let deleted = generation::empty(&*store, &retry, &root).await?;
            if deleted > 0 {
                finished.emptied.push((root, deleted));
            }
        }
        // The keys of the generations before stay known (`prev`), their objects are gone.
        self.older.clear();
        Ok(finished)
    }

    /// The blobs that look whole in this generation: their chunks listed from the first
    /// without a gap, and the last one shorter than the others (or a single one no longer
    /// than a chunk of this device's). A blob still being written has only full chunks so
    /// far; one that merely looks unfinished is written again, which costs only time.
    async fn blobs_here(&self) -> Result<BTreeSet<BlobId>, SyncError> {
        let listed = self.remote.list(ferry_protocol::names::BLOB_PREFIX).await?;
        let mut chunks: std::collections::BTreeMap<BlobId, Vec<(u32, u64)>> = Default::default();
        for (name, size) in listed {
            if let ObjectName::Blob { blob, chunk } = name {
                chunks.entry(blob).or_default().push((chunk, size));
            }
        }
        let full = self.config.blob_chunk as u64;
        Ok(chunks
            .into_iter()
            .filter(|(_, listed)| {
                let contiguous = listed
                    .iter()
                    .enumerate()
                    .all(|(i, (c, _))| *c as usize == i);
                let (first, last) = (listed[0].1, listed[listed.len() - 1].1);
                contiguous
                    && match listed.len() {
                        1 => first <= full,
                        _ => last < first,
                    }
            })
            .map(|(blob, _)| blob)
            .collect())
    }

    /// The folders in this store of generations before this one, and of this one's
    /// candidates that lost.
    async fn earlier_roots(
        &self,
        store: &dyn Store,
        retry: &RetryPolicy,
    ) -> Result<Vec<String>, SyncError> {
        let mut roots = vec![(1, ROOT.to_owned())];
        roots.extend(generation::later_roots(store, retry).await?);
        Ok(roots
            .into_iter()
            .filter(|(number, root)| {
                *number < self.generation || (*number == self.generation && root != self.root())
            })
            .map(|(_, root)| root)
            .collect())
    }
}
