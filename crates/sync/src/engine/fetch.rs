//! Fetch: LIST `head/` (the names carry tag and seq: nothing else is read for an idle poll),
//! plan the reads that bring every other device up to its head, and execute them: each segment
//! opened, checked and applied in one transaction. An object that does not open or decode is
//! quarantined; that device's stream waits, the others go on. A dry run renders the same plan.

use std::collections::BTreeSet;

use ferry_core::{Action, Body, ClipId, Op};
use ferry_protocol::{DeviceId, DeviceTag, ObjectName, RelayHint, Segment};
use ferry_store::StoreError;
use tracing::warn;

use super::plan::{self, Peer, Read, Stop};
use super::{DryRun, Engine, FetchReport, Pass, Planned, clip_text};
use crate::SyncError;
use crate::db::CursorRow;
use crate::remote::path;
use crate::transfer::{Direction, Kind, Outcome, Transfer};

/// What reading one segment came to.
enum Fetched {
    Applied,
    /// Not in storage.
    Missing,
    /// Read, and did not open or check.
    Quarantined,
}

impl Engine {
    /// Polls: one LIST of `head/`, then the segments of every device that moved.
    pub async fn fetch(&mut self) -> Result<FetchReport, SyncError> {
        self.fetch_pass(async |engine: &mut Engine, report: &mut FetchReport| {
            let mut peers = Vec::new();
            for (tag, head) in engine.remote.heads().await? {
                if tag != engine.tag {
                    peers.push(engine.peer(tag, head).await?);
                }
            }
            engine.catch_up(peers, report).await
        })
        .await
    }

    /// Fetches what a relay hint announces (and any segment of that device before it).
    pub async fn fetch_hint(&mut self, hint: RelayHint) -> Result<FetchReport, SyncError> {
        self.fetch_pass(async |engine: &mut Engine, report: &mut FetchReport| {
            if hint.device == engine.tag {
                return Ok(());
            }
            let peer = engine.peer(hint.device, hint.seq).await?;
            engine.catch_up(vec![peer], report).await
        })
        .await
    }

    /// Runs one fetch pass: `catch_up` the devices, fetch the blobs they brought, fold the
    /// operations into a checkpoint when due, and record the outcome.
    async fn fetch_pass(
        &mut self,
        catch_up: impl AsyncFnOnce(&mut Engine, &mut FetchReport) -> Result<(), SyncError>,
    ) -> Result<FetchReport, SyncError> {
        let mut report = FetchReport::default();
        if !self.config.direction.receives() {
            return Ok(report);
        }
        let result = async {
            catch_up(self, &mut report).await?;
            self.fetch_wanted_blobs().await;
            self.maybe_checkpoint()
        }
        .await;
        self.finish(&result, Pass::Fetch);
        result.map(|()| report)
    }

    /// What is known of the device of `tag` before reading anything of it: its head, how far
    /// it is applied, and (for a device never seen) its newest snapshot.
    async fn peer(&self, tag: DeviceTag, head: u64) -> Result<Peer, SyncError> {
        let mut peer = Peer::new(tag, head, self.db.cursor(&tag)?.seq);
        if peer.applied == 0 {
            peer.snapshot = self.remote.newest_snapshot(tag).await?;
        }
        Ok(peer)
    }

    /// Brings `peers` up to their heads: the snapshots their plans start with first, merged
    /// as one checkpoint (a cold start writes the merged state once, not per device), then
    /// each device's segments.
    async fn catch_up(
        &mut self,
        mut peers: Vec<Peer>,
        report: &mut FetchReport,
    ) -> Result<(), SyncError> {
        let quarantined = self.db.quarantined_names()?;
        let mut loaded = Vec::new();
        for peer in &mut peers {
            if let Some(seq) = plan::fetch(peer, &quarantined).leading_snapshot() {
                loaded.extend(self.read_snapshot(peer.tag, seq, report).await?);
                peer.snapshot = None;
            }
        }
        self.merge_snapshots(loaded)?;
        for peer in peers {
            self.catch_up_device(peer, report).await?;
        }
        Ok(())
    }

    /// Executes one device's plan, planning again when storage says something the plan did
    /// not know (a segment compacted away).
    async fn catch_up_device(
        &mut self,
        mut peer: Peer,
        report: &mut FetchReport,
    ) -> Result<(), SyncError> {
        let mut snapshots_listed = peer.applied == 0;
        'plan: loop {
            peer.applied = self.db.cursor(&peer.tag)?.seq;
            let plan = plan::fetch(&peer, &self.db.quarantined_names()?);
            for read in plan.reads {
                match read {
                    Read::Snapshot(seq) => {
                        // Used once: read or not, the next plan starts from the cursor.
                        peer.snapshot = None;
                        let loaded = self.read_snapshot(peer.tag, seq, report).await?;
                        self.merge_snapshots(loaded.into_iter().collect())?;
                        continue 'plan;
                    }
                    Read::Segment(seq) => match self.fetch_segment(peer.tag, seq, report).await? {
                        Fetched::Applied => {}
                        Fetched::Quarantined => continue 'plan,
                        Fetched::Missing => {
                            peer.missing.insert(seq);
                            continue 'plan;
                        }
                    },
                }
            }
            if plan.stop.is_some() && !snapshots_listed {
                // Stuck behind a missing or quarantined segment: a snapshot may cover it.
                peer.snapshot = self.remote.newest_snapshot(peer.tag).await?;
                snapshots_listed = true;
                continue 'plan;
            }
            if let Some(Stop::Missing(seq)) = plan.stop {
                // A head names a segment that is not there and no snapshot covers it: deleted
                // by hand, or a replayed head. The next poll looks again.
                let name = path(&ObjectName::Log {
                    device: peer.tag,
                    seq,
                });
                self.note(format!(
                    "{name} is missing although a head names it; waiting for it"
                ));
            }
            return Ok(());
        }
    }

    /// Reads, opens, checks and applies the segment `seq` of the device of `tag`.
    async fn fetch_segment(
        &mut self,
        tag: DeviceTag,
        seq: u64,
        report: &mut FetchReport,
    ) -> Result<Fetched, SyncError> {
        let name = ObjectName::Log { device: tag, seq };
        let bytes = match self.remote.get(&name).await {
            Ok(bytes) => bytes,
            Err(StoreError::NotFound { .. }) => return Ok(Fetched::Missing),
            Err(error) => return Err(error.into()),
        };
        let cursor = self.db.cursor(&tag)?;
        let (segment, ops) = match self.open_segment(&name, &tag, cursor, &bytes) {
            Ok(opened) => opened,
            Err(reason) => {
                self.quarantine(&name, &reason, bytes.len())?;
                report.quarantined += 1;
                return Ok(Fetched::Quarantined);
            }
        };
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
        let advanced = CursorRow {
            seq,
            ops: cursor.ops + count,
        };
        let received = Transfer::new(Direction::Down, Kind::Segment, Outcome::Ok)
            .device(&tag)
            .object(&name)
            .ops(count)
            .bytes(bytes.len() as u64);
        self.apply_segment(&tag, segment.device, advanced, ops, &received)?;
        report.segments += 1;
        report.ops += count;
        report.bytes += bytes.len() as u64;
        Ok(Fetched::Applied)
    }

    /// Sets an object that did not open aside, logging why.
    pub(super) fn quarantine(
        &mut self,
        name: &ObjectName,
        reason: &str,
        bytes: usize,
    ) -> Result<(), SyncError> {
        let store_path = path(name);
        warn!(name = %store_path, %reason, "quarantined");
        let kind = match name {
            ObjectName::Snap { .. } => Kind::Snapshot,
            ObjectName::Blob { .. } => Kind::Blob,
            _ => Kind::Segment,
        };
        let mut set_aside = Transfer::new(Direction::Down, kind, Outcome::Quarantined)
            .object(name)
            .bytes(bytes as u64)
            .detail(reason);
        if let ObjectName::Log { device, .. } | ObjectName::Snap { device, .. } = name {
            set_aside = set_aside.device(device);
        }
        self.db.quarantine(&store_path, reason, &set_aside)
    }

    /// Opens and checks a segment; the error is the quarantine reason.
    fn open_segment(
        &self,
        name: &ObjectName,
        tag: &DeviceTag,
        cursor: CursorRow,
        bytes: &[u8],
    ) -> Result<(Segment, Vec<Op>), String> {
        let segment: Segment = self
            .keys
            .data
            .open_object(name, bytes)
            .map_err(|e| e.to_string())?;
        if self.keys.names.device_tag(&segment.device) != *tag {
            return Err("the segment's device does not match its name".into());
        }
        let expected_seq = cursor.seq + 1;
        if segment.seq != expected_seq || segment.first_op != cursor.ops + 1 {
            return Err(format!(
                "the segment claims seq {} from operation {}, expected seq {expected_seq} from \
                 operation {}",
                segment.seq,
                segment.first_op,
                cursor.ops + 1
            ));
        }
        let mut ops = Vec::with_capacity(segment.ops.len());
        for (i, raw) in segment.ops.iter().enumerate() {
            let op = Op::decode(&raw.0).map_err(|e| format!("operation {i}: {e}"))?;
            let expected = segment.first_op + i as u64;
            if op.device() != segment.device || op.counter != expected {
                return Err(format!(
                    "operation {i} is not operation {expected} of the segment's device"
                ));
            }
            ops.push(op);
        }
        Ok((segment, ops))
    }

    fn apply_segment(
        &mut self,
        tag: &DeviceTag,
        device: DeviceId,
        cursor: CursorRow,
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
            // Checked above: in order and without gaps, so only duplicates can be refused.
            if let Err(error) = self.replica.apply(op) {
                warn!(%error, "an operation did not apply");
            }
        }
        Ok(())
    }

    fn maybe_checkpoint(&mut self) -> Result<(), SyncError> {
        if self.db.ops_since_checkpoint()? >= self.config.checkpoint_every {
            self.db.checkpoint(self.replica.state(), self.device)?;
        }
        Ok(())
    }

    /// What a sync would move now, without changing anything here or in storage: the plans
    /// an upload and a fetch would execute. It reads one LIST of `head/`, and for each device
    /// with something to fetch a LIST of its segments and one of its snapshots.
    pub async fn dry_run(&self) -> Result<DryRun, SyncError> {
        let mut dry_run = DryRun::default();
        if self.config.direction.sends() {
            for write in plan::upload(&self.outbox(&self.db.unuploaded()?)?) {
                dry_run.upload.push(Planned {
                    name: path(&self.log_name(write.seq)),
                    ops: write.ops,
                    bytes: write.bytes,
                });
            }
        }
        if !self.config.direction.receives() {
            return Ok(dry_run);
        }
        let quarantined = self.db.quarantined_names()?;
        for (tag, head) in self.remote.heads().await? {
            let applied = self.db.cursor(&tag)?.seq;
            if tag == self.tag || head <= applied {
                continue;
            }
            let mut peer = Peer::new(tag, head, applied);
            let segments = self.remote.segments(tag).await?;
            peer.missing = (applied + 1..=head)
                .filter(|seq| !segments.contains_key(seq))
                .collect::<BTreeSet<u64>>();
            let snapshots = self.remote.snapshots(tag).await?;
            peer.snapshot = snapshots.last_key_value().map(|(seq, _)| *seq);
            for read in plan::fetch(&peer, &quarantined).reads {
                let (name, size) = match read {
                    Read::Snapshot(seq) => {
                        (ObjectName::Snap { device: tag, seq }, snapshots.get(&seq))
                    }
                    Read::Segment(seq) => {
                        (ObjectName::Log { device: tag, seq }, segments.get(&seq))
                    }
                };
                dry_run.download.push(Planned {
                    name: path(&name),
                    ops: 0,
                    bytes: size.copied().unwrap_or(0),
                });
            }
        }
        Ok(dry_run)
    }
}
