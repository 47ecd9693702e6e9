//! The agent moving data: uploads (at once after a quiet spell, batched, backing off while
//! the storage fails), fetches, images and files a chunk at a time, whether the storage
//! answers, and the retention policy.

use std::time::Duration;

use ferry_core::DataKind;
use ferry_store::RetryPolicy;
use ferry_sync::{LargeStep, SyncError};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Agent, RETRY, RETRY_FIRST, UPLOAD_DEBOUNCE};

/// How often the retention policy (trash age, history length) is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

impl Agent {
    /// Sends what was recorded to nearby devices now, and schedules its upload: at once after
    /// a quiet spell, with the copies that follow within [`UPLOAD_DEBOUNCE`] of the last upload
    /// batched.
    pub(super) fn upload_soon(&mut self) {
        if self.paused.is_some() {
            // It goes out on resume.
            return;
        }
        self.share();
        if self.offline && self.upload_at.is_some() {
            return;
        }
        let now = Instant::now();
        let at = match self.uploaded_at {
            Some(last) if now < last + UPLOAD_DEBOUNCE => last + UPLOAD_DEBOUNCE,
            _ => now,
        };
        if self.upload_at.is_none_or(|due| due > at) {
            self.upload_at = Some(at);
        }
    }

    pub(super) async fn upload(&mut self) {
        self.upload_at = None;
        if self.holder_away() {
            // It goes out when the holder connects (see `nearby`).
            return;
        }
        self.uploaded_at = Some(Instant::now());
        let result = self.device.engine.upload().await;
        // An upload with nothing to send may not have asked the storage anything.
        if result.as_ref().is_ok_and(|report| report.segments > 0) || result.is_err() {
            self.storage_answered(result.as_ref().err());
        }
        match result {
            Ok(report) => {
                debug!(segments = report.segments, "uploaded");
                self.retry = RETRY_FIRST;
                self.publish(&report.hints);
                self.large_soon();
            }
            Err(error) => {
                warn!(%error, retry_in = ?self.retry, "upload failed");
                self.upload_at = Some(Instant::now() + self.retry);
                self.retry = (self.retry * 2)
                    .min(self.device.config.settings.poll_interval.max(RETRY_FIRST));
            }
        }
    }

    pub(super) async fn fetch(&mut self) {
        if self.holder_away() {
            return;
        }
        let result = self.device.engine.fetch().await;
        self.storage_answered(result.as_ref().err());
        match result {
            Ok(_) => {
                self.follow_generation().await;
                self.follow_synced_settings();
                self.apply_newest().await;
                self.large_soon();
            }
            Err(error) => warn!(%error, "fetch failed"),
        }
        if self
            .device
            .engine
            .status()
            .is_ok_and(|s| s.pending_ops > 0 || s.pending_segments > 0)
            && self.upload_at.is_none()
        {
            self.upload_soon();
        }
    }

    /// Follows a new key of the repository that the fetch found: the key is kept, the device
    /// moves to it (the loop then starts the agent again on it). A new key that removes this
    /// device or leaves it out is said once; it then writes nothing more.
    async fn follow_generation(&mut self) {
        if !self.device.engine.successor_listed() {
            return;
        }
        match crate::generation::follow(&mut self.device).await {
            Ok(Some(moved)) => info!(
                generation = moved.generation,
                by = %moved.by,
                "the repository has a new key: this device moved to it"
            ),
            Ok(None) => self.shut_out = None,
            Err(failure) => {
                if self.shut_out.as_deref() != Some(failure.message.as_str()) {
                    warn!("{}", failure.message);
                    self.shut_out = Some(failure.message);
                }
            }
        }
    }

    /// Moves large content a step now, unless a step is due sooner.
    pub(super) fn large_soon(&mut self) {
        let now = Instant::now();
        if self.large_at.is_none_or(|at| at > now) {
            self.large_at = Some(now);
        }
    }

    /// Moves one chunk of an image or file, when its turn has come, and says when the next
    /// goes. A blob of this device's whole in storage is announced again, so that devices
    /// that looked for it too early look again.
    pub(super) async fn large_step(&mut self) {
        self.large_at = None;
        if self.holder_away() {
            return;
        }
        match self.device.engine.large_step().await {
            Ok(LargeStep::Idle) => {}
            Ok(LargeStep::Wait(at)) => self.large_at = Some(at),
            Ok(LargeStep::Moved) => self.large_soon(),
            Ok(LargeStep::Uploaded(blob)) => {
                debug!(%blob, "a blob is whole in storage");
                if let Ok(Some(newest)) = self.device.engine.roll_call_answer() {
                    self.publish(&[newest]);
                }
                self.large_soon();
            }
            Ok(LargeStep::Arrived(blob)) => {
                debug!(%blob, "a blob arrived");
                self.apply_newest().await;
                self.large_soon();
            }
            Err(error) => {
                warn!(%error, retry_in = ?self.retry, "an image or file could not be moved");
                self.storage_answered(Some(&error));
                self.large_at = Some(Instant::now() + self.retry);
            }
        }
    }

    /// Follows whether the storage answers: while it does not, each request tries once (the
    /// passes themselves are retried, uploads with backoff, fetches at each poll or hint).
    pub(super) fn storage_answered(&mut self, error: Option<&SyncError>) {
        self.notifier.pass(error);
        if error.is_none() {
            self.notifier.news(&self.device);
        }
        let offline = error.is_some_and(SyncError::is_transient);
        if offline == self.offline {
            return;
        }
        self.offline = offline;
        if offline {
            warn!(
                "the storage is unreachable: clips are kept here and go to nearby devices; \
                 what is pending is uploaded once it answers"
            );
            self.device.engine.set_retry(RetryPolicy::NEVER);
        } else {
            info!("the storage answers again");
            self.device.engine.set_retry(RETRY);
        }
    }

    /// Purges what the retention policy says is due, as ordinary purge operations that every
    /// device agrees on.
    pub(super) fn retention(&mut self) {
        if self
            .retained_at
            .is_some_and(|at| at.elapsed() < RETENTION_EVERY)
        {
            return;
        }
        self.retained_at = Some(Instant::now());
        let policy = self.device.config.settings.retention;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let due = self
            .device
            .engine
            .state_for(DataKind::Clips)
            .due_for_purge(&policy, now);
        if due.is_empty() {
            return;
        }
        for clip in &due {
            if let Err(error) = self
                .device
                .engine
                .record(DataKind::Clips, |r, _, now| r.purge(*clip, now))
            {
                warn!(%error, "retention: a purge could not be recorded");
                return;
            }
        }
        info!(clips = due.len(), "retention: purged clips past the policy");
        self.upload_soon();
    }
}
