//! One segment of another device fetched: read (within its bounds), opened, checked against
//! what the device's stream holds (its order, its signature, its authors) and applied in one
//! transaction with the cursor that follows it; or quarantined when it does not open.

use ferry_core::{Action, Body, ClipId, Op};
use ferry_protocol::{DeviceId, DeviceTag, ObjectName, Segment};
use ferry_read::Refusal;
use ferry_store::StoreError;
use tracing::warn;

use super::fetch::{Fetched, Placed};
use super::{Engine, FetchReport, clip_text};
use crate::SyncError;
use crate::db::Position;
use crate::transfer::{Kind, Outcome, Route, Transfer};

impl Engine {
    /// Reads, opens, checks and applies the segment `seq` of the device of `tag`, whose newest
    /// head is `head`. A segment kept because it needed a newer Ferry is taken from here.
    pub(super) async fn fetch_segment(
        &mut self,
        tag: DeviceTag,
        seq: u64,
        head: u64,
        report: &mut FetchReport,
    ) -> Result<Fetched<Placed>, SyncError> {
        let name = ObjectName::Log { device: tag, seq };
        let store_path = self.remote.path(&name);
        let (bytes, kept) = match self.db.kept_bytes(&store_path)? {
            Some(bytes) => (bytes, true),
            None => match self.remote.get(&name).await {
                Ok(bytes) => (bytes, false),
                Err(StoreError::NotFound { .. }) => return Ok(Fetched::Missing),
                Err(error) if error.is_bad_object() => {
                    let refusal = Refusal::Damaged(error.to_string());
                    self.quarantine(&name, &refusal, &[], head)?;
                    report.quarantined += 1;
                    return Ok(Fetched::Quarantined);
                }
                Err(error) => return Err(error.into()),
            },
        };
        let cursor = self.db.cursor(&tag)?;
        let (segment, ops) = match self.checker().open_segment(&name, &tag, cursor, &bytes) {
            Ok(Some(opened)) => opened,
            Ok(None) => return Ok(Fetched::Read(Placed::Ahead)),
            Err(refusal) => {
                self.quarantine(&name, &refusal, &bytes, head)?;
                report.quarantined += 1;
                return Ok(Fetched::Quarantined);
            }
        };
        let mut received = Transfer::new(Route::Down, Kind::Segment, Outcome::Ok)
            .object(&name)
            .bytes(bytes.len() as u64);
        if kept {
            received = received.detail("kept until this build could read it");
        }
        let count = self.take_segment(tag, cursor, &segment, ops, received)?;
        self.db.release(&store_path)?;
        report.segments += 1;
        report.ops += count;
        report.bytes += bytes.len() as u64;
        Ok(Fetched::Read(Placed::Applied))
    }

    /// Applies the operations `ops` of `segment`, opened and checked, from the device of `tag`
    /// whose cursor was `cursor`, and logs `received`; asks for the blobs it names. Returns
    /// how many operations it applied.
    pub(super) fn take_segment(
        &mut self,
        tag: DeviceTag,
        cursor: Position,
        segment: &Segment,
        ops: Vec<Op>,
        received: Transfer,
    ) -> Result<u64, SyncError> {
        let eager = self.config.eager_blob_bytes;
        self.wanted_blobs
            .extend(ops.iter().filter_map(|op| match &op.action {
                Action::Copy { content, .. } => match content.body()? {
                    Body::Blob { id, len } if *len <= eager => Some(*id),
                    _ => None,
                },
                _ => None,
            }));
        let count = ops.len() as u64;
        let last_op = (segment.first_op + segment.ops.len() as u64).saturating_sub(1);
        let advanced = Position {
            seq: segment.seq,
            ops: cursor.ops.max(last_op),
        };
        let received = received.device(&tag).ops(count);
        self.apply_segment(&tag, segment.device, advanced, ops, &received)?;
        Ok(count)
    }

    /// Applies `ops`, which the caller checked follow on from `cursor`'s predecessor in order
    /// and without gaps, in one transaction with the new `cursor`.
    fn apply_segment(
        &mut self,
        tag: &DeviceTag,
        device: DeviceId,
        cursor: Position,
        ops: Vec<Op>,
        received: &Transfer,
    ) -> Result<(), SyncError> {
        let texts: Vec<(ClipId, String)> = ops
            .iter()
            .filter_map(clip_text)
            .map(|(clip, text)| (clip, text.to_owned()))
            .collect();
        self.db
            .apply_remote(tag, device, cursor, &ops, &texts, received)?;
        for op in ops {
            // Checked by the caller: in order and without gaps, so only duplicates can be refused.
            if let Err(error) = self.replica.apply(op) {
                warn!(%error, "an operation did not apply");
            }
        }
        Ok(())
    }
}
