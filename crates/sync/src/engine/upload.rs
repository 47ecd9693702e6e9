//! Upload: this device's pending operations go out as sealed segments, each step safe to repeat
//! after a crash.
//!
//! ```text
//! reserve (one transaction): seq, the ops it carries, sealed segment + head bytes
//! PUT log/<tag>/<seq>   (write-once; "already there" → compare bytes)
//! PUT head/<tag>/<seq>  (write-once)
//! mark uploaded (+ transfer log) → hint (tag, seq) for the relay
//! then the blobs those segments name, chunk by chunk (or in steps: see `large`)
//! every STALE_HEADS segments: DELETE the heads below the newest, in one batch
//! ```
//!
//! Two requests per segment: readers take the highest head of each device, so the older ones
//! only cost a poll's listing a name each until the batch deletes them.
//!
//! Anyone who can write to the storage can take a name first. A name that holds an object this
//! device did not sign is skipped: its operations are sealed again under the next name, and
//! readers, who follow a device by its operation counter, step over the taken one. Only an
//! object that this device's own key signed with other bytes stops the upload: another
//! installation is using this device's identity.

use ferry_protocol::{Head, ObjectName, RawOp, RelayHint, Segment};
use tracing::warn;

use super::plan::{self, Outbox, Source};
use super::{Engine, Pass, UploadReport};
use crate::SyncError;
use crate::db::{Meta, SegmentRow};
use crate::remote::IfPresent;
use crate::transfer::{Kind, Outcome, Route, Transfer};

/// The most taken names one upload steps over; the rest of its work waits for the next.
const MAX_SKIPS: usize = 32;

/// How many heads below its newest a device leaves in storage before it deletes them, in one
/// request where the storage deletes in batches.
pub(super) const STALE_HEADS: u64 = 16;

/// What pushing one segment came to.
enum Pushed {
    /// It is in storage, with its head.
    Stored,
    /// Its name holds an object this device did not write: it goes out under the next name.
    Skipped,
}

impl Engine {
    /// Uploads everything pending: first segments reserved earlier (after a crash or an
    /// outage), then new segments of the pending operations.
    pub async fn upload(&mut self) -> Result<UploadReport, SyncError> {
        let mut report = UploadReport::default();
        if !self.config.direction.sends() {
            return Ok(report);
        }
        let result = self.upload_all(&mut report).await;
        self.finish(&result, Pass::Upload);
        result.map(|()| report)
    }

    /// What is waiting to go out, with the segments already `reserved` (read once: their
    /// sealed bytes are what an upload writes).
    pub(super) fn outbox(&self, reserved: &[SegmentRow]) -> Result<Outbox, SyncError> {
        let (pending_ops, pending_bytes) = self.db.pending_size(self.device)?;
        Ok(Outbox {
            reserved: reserved
                .iter()
                .map(|row| (row.seq, row.ops(), row.size()))
                .collect(),
            pending_ops,
            pending_bytes,
            last_seq: self.db.last_seq()?,
            batch: self.batch(),
        })
    }

    /// Most operations in one segment.
    fn batch(&self) -> u64 {
        self.config.max_segment_ops.max(1) as u64
    }

    async fn upload_all(&mut self, report: &mut UploadReport) -> Result<(), SyncError> {
        if let Some(halt) = &self.halted {
            return Err(halt.error());
        }
        // The snapshot this device took to a new generation goes first: segments follow on.
        if let Some(bytes) = self.push_moved_snapshot().await? {
            report.bytes += bytes;
            report.hints.push(RelayHint {
                device: self.tag,
                seq: 1,
            });
        }
        let mut skips = 0;
        'plan: loop {
            let reserved = self.db.unuploaded()?;
            let outbox = self.outbox(&reserved)?;
            let mut reserved = reserved.into_iter();
            for write in plan::upload(&outbox) {
                let segment = match write.source {
                    Source::Reserved => reserved.next(),
                    Source::Pending => self.reserve_next()?,
                };
                let Some(segment) = segment.filter(|segment| segment.seq == write.seq) else {
                    return Err(SyncError::LocalState {
                        detail: format!("segment {} is not where the outbox put it", write.seq),
                    });
                };
                match self.push(segment, report).await? {
                    Pushed::Stored => {}
                    Pushed::Skipped if skips + 1 < MAX_SKIPS => {
                        skips += 1;
                        continue 'plan;
                    }
                    Pushed::Skipped => {
                        self.note(format!(
                            "the storage held {MAX_SKIPS} of this device's next segment names \
                             with objects it did not write; the rest goes out on the next sync"
                        ));
                        return Ok(());
                    }
                }
            }
            break;
        }
        if report.segments > 0 {
            self.check_own_after_upload().await;
        }
        // Segments first, so a copy is never held behind a large upload; the blobs they name
        // follow (readers that find a chunk missing look again later), here or in steps.
        if !self.config.large_in_steps {
            self.upload_blobs(report).await?;
        }
        self.compact_if_due().await
    }

    /// Reserves the next segment from pending operations; `None` when nothing is pending.
    pub(super) fn reserve_next(&mut self) -> Result<Option<SegmentRow>, SyncError> {
        let pending = self.db.pending(self.device, self.batch())?;
        let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
            return Ok(None);
        };
        let (first_op, last_op) = (first.0, last.0);
        let seq = self.db.last_seq()? + 1;
        let segment = Segment {
            device: self.device,
            seq,
            first_op,
            ops: pending.into_iter().map(|(_, op)| RawOp(op)).collect(),
        };
        let snapshot = self.db.number(Meta::SnapshotSeq)?;
        let head = Head {
            device: self.device,
            seq,
            ops: last_op,
            first_seq: self.db.number(Meta::CompactedTo)? + 1,
            snapshot: (snapshot > 0).then_some(snapshot),
        };
        let row = SegmentRow {
            seq,
            first_op,
            last_op,
            sealed: self
                .keys
                .data
                .seal_signed(&self.log_name(seq), &segment, &self.identity)?
                .into_bytes(),
            head: self
                .keys
                .data
                .seal_signed(&self.head_name(seq), &head, &self.identity)?
                .into_bytes(),
        };
        self.db.reserve(self.device, &row)?;
        Ok(Some(row))
    }

    pub(super) fn log_name(&self, seq: u64) -> ObjectName {
        ObjectName::Log {
            device: self.tag,
            seq,
        }
    }

    pub(super) fn head_name(&self, seq: u64) -> ObjectName {
        ObjectName::Head {
            device: self.tag,
            seq,
        }
    }

    async fn push(
        &mut self,
        segment: SegmentRow,
        report: &mut UploadReport,
    ) -> Result<Pushed, SyncError> {
        let seq = segment.seq;
        let log = self.log_name(seq);
        if let Some(found) = self.remote.put_or_read(&log, &segment.sealed).await? {
            self.skip_taken(seq, &found)?;
            return Ok(Pushed::Skipped);
        }
        if self.db.optional_number(Meta::HeadsPrunedTo)?.is_none() {
            // A device from before heads were deleted in batches left only its newest.
            let previous = self.db.last_uploaded()?;
            self.db
                .set_number(Meta::HeadsPrunedTo, previous.saturating_sub(1))?;
        }
        self.remote
            .put_once(&self.head_name(seq), &segment.head, IfPresent::Keep)
            .await?;
        let (ops, bytes) = (segment.ops(), segment.size());
        let sent = Transfer::new(Route::Up, Kind::Segment, Outcome::Ok)
            .device(&self.tag)
            .object(&log)
            .ops(ops)
            .bytes(bytes);
        self.db.uploaded(seq, &sent)?;
        report.segments += 1;
        report.ops += ops;
        report.bytes += bytes;
        report.hints.push(RelayHint {
            device: self.tag,
            seq,
        });
        if let Err(error) = self.prune_heads(seq, STALE_HEADS).await {
            warn!(%error, "this device's older heads could not be deleted");
            self.note(format!(
                "this device's older heads could not be deleted ({error}); tried again later"
            ));
        }
        Ok(Pushed::Stored)
    }

    /// Deletes this device's heads below `newest`, in one batch, once at least `at_least` of
    /// them wait.
    pub(super) async fn prune_heads(
        &mut self,
        newest: u64,
        at_least: u64,
    ) -> Result<(), SyncError> {
        let pruned = self.db.number(Meta::HeadsPrunedTo)?;
        let waiting = newest.saturating_sub(pruned + 1);
        if waiting == 0 || waiting < at_least {
            return Ok(());
        }
        let stale: Vec<ObjectName> = (pruned + 1..newest)
            .map(|seq| self.head_name(seq))
            .collect();
        self.remote.delete_many(&stale).await?;
        self.db.set_number(Meta::HeadsPrunedTo, newest - 1)
    }

    /// Gives up the segment name `seq`, which holds `found` rather than what this device
    /// sealed for it, unless this device's own key signed what is there: then another
    /// installation uses this device's identity, and nothing more is written.
    fn skip_taken(&mut self, seq: u64, found: &[u8]) -> Result<(), SyncError> {
        let log = &self.log_name(seq);
        let name = self.remote.path(log);
        let own = self.identity.public();
        let signed_here = self
            .keys
            .data
            .open_signed::<Segment>(log, found)
            .is_ok_and(|claimed| {
                claimed.value.device == self.device && claimed.verify(&own).is_ok()
            });
        if signed_here {
            return Err(SyncError::Divergent { name });
        }
        let said = format!(
            "{name} holds an object this device did not write (planted by someone with write \
             access to the storage): skipped, its operations go out under the next name"
        );
        warn!("{said}");
        let skipped = Transfer::new(Route::Up, Kind::Segment, Outcome::Skipped)
            .device(&self.tag)
            .object(log)
            .bytes(found.len() as u64)
            .detail(&said);
        self.db.skip(self.device, seq, &skipped)?;
        self.note(said);
        Ok(())
    }
}
