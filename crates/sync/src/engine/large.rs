//! Large content in steps: this device's blobs going out and others' blobs fetched eagerly,
//! one chunk a step, each when the traffic limit gives it its turn. An agent runs a step
//! between its other work, so a copy (a small segment) never waits behind an image.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_protocol::BlobId;
use ferry_store::StoreError;
use tokio::time::Instant;

use super::Engine;
use crate::SyncError;
use crate::transfer::Route;

/// What is on its way, between steps.
#[derive(Default)]
pub(super) struct InFlight {
    /// Per blob going out: the next chunk, and the bytes written so far.
    pub(super) sent: HashMap<BlobId, (u32, u64)>,
    /// Per blob coming in: the bytes read so far.
    pub(super) read: HashMap<BlobId, u64>,
    /// When the next chunk going out has its turn, once the limit gave it one.
    pub(super) turn: Option<Instant>,
    /// Who is told how far blobs are.
    pub(super) progress: Option<ProgressFn>,
}

impl InFlight {
    /// Tells the observer, if there is one, that `done` of `total` bytes of `blob` are there.
    pub(super) fn tell(&self, blob: BlobId, direction: Route, done: u64, total: u64) {
        if let Some(progress) = &self.progress {
            progress(&Progress {
                blob,
                direction,
                done: done.min(total),
                total,
            });
        }
    }
}

/// How far a blob going out or coming in is, in bytes of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Which blob.
    pub blob: BlobId,
    /// Up (to the storage) or down.
    pub direction: Route,
    /// Bytes there (a download that resumes starts past zero).
    pub done: u64,
    /// The blob's length.
    pub total: u64,
}

/// Told of every chunk of a blob that moves (see [`Engine::on_progress`]).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What one [`Engine::large_step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LargeStep {
    /// Nothing large is on its way.
    Idle,
    /// The next chunk's turn comes at this time (traffic control): step again then.
    Wait(Instant),
    /// A chunk moved: step again.
    Moved,
    /// This device's blob is whole in storage now: devices that found it missing may look
    /// again.
    Uploaded(BlobId),
    /// Another device's blob arrived whole.
    Arrived(BlobId),
}

impl Engine {
    /// Moves one chunk of large content, if its turn has come: this device's blobs first, then
    /// the blobs of others' clips to fetch eagerly (with [`crate::EngineConfig::large_in_steps`]
    /// their segments leave those here). A blob that storage does not hold yet is dropped from
    /// the eager ones: it is fetched when asked for.
    pub async fn large_step(&mut self) -> Result<LargeStep, SyncError> {
        if self.config.direction.sends()
            && let Some(id) = self.db.blobs_to_upload()?.first().copied()
        {
            return Ok(match self.send_next_chunk(id, false).await? {
                Some(sent) if sent.whole => LargeStep::Uploaded(id),
                Some(_) => LargeStep::Moved,
                None => self.large.turn.map_or(LargeStep::Idle, LargeStep::Wait),
            });
        }
        let Some(&id) = self.wanted_blobs.first() else {
            return Ok(LargeStep::Idle);
        };
        if self.db.holds_blob(&id)? {
            self.wanted_blobs.retain(|wanted| *wanted != id);
            return Ok(LargeStep::Moved);
        }
        if let Some(limit) = &self.config.download_limit {
            let free = limit.free_at();
            if free > Instant::now() {
                return Ok(LargeStep::Wait(free));
            }
        }
        match self.read_next_chunk(id).await {
            Ok(Some(_)) => {
                self.wanted_blobs.retain(|wanted| *wanted != id);
                Ok(LargeStep::Arrived(id))
            }
            Ok(None) => Ok(LargeStep::Moved),
            Err(SyncError::Store(StoreError::NotFound { .. })) => {
                self.wanted_blobs.retain(|wanted| *wanted != id);
                Ok(LargeStep::Moved)
            }
            Err(error) => {
                self.wanted_blobs.retain(|wanted| *wanted != id);
                self.note(format!("blob {id}: {error}"));
                Err(error)
            }
        }
    }

    /// Tells `progress` of every chunk of a blob that moves from now on (`None`: no one).
    pub fn on_progress(&mut self, progress: Option<ProgressFn>) {
        self.large.progress = progress;
    }

    /// Whether blobs of this device's are still to go out.
    pub fn blobs_pending(&self) -> Result<bool, SyncError> {
        Ok(!self.db.blobs_to_upload()?.is_empty())
    }

    /// Whether this device holds blob `id` whole.
    pub fn holds_blob(&self, id: BlobId) -> Result<bool, SyncError> {
        self.db.holds_blob(&id)
    }

    /// Asks for blob `id` in the next [`Engine::large_step`]s (an agent placing an image it
    /// does not hold yet).
    pub fn want_blob(&mut self, id: BlobId) {
        if !self.wanted_blobs.contains(&id) {
            self.wanted_blobs.push(id);
        }
    }
}
