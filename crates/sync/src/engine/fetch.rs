//! Fetch: LIST `head/` (the names carry tag and seq: nothing else is read for an idle poll),
//! plan the reads that bring every other device up to its head, and execute them: each segment
//! opened, checked and applied in one transaction. An object that does not open or decode is
//! quarantined and that device's stream waits for it (see `quarantine`); an object or listing
//! that cannot be read fails that device for this pass. Either way the other devices go on.
//! A dry run renders the same plan.

use std::collections::{BTreeMap, BTreeSet};

use ferry_protocol::{DeviceId, DeviceTag, Head, ObjectName, RelayHint};
use ferry_read::Refusal;
use tracing::warn;

use super::plan::{self, Peer, Read, Stop};
use super::{DeviceFailure, DryRun, Engine, FetchReport, Pass, Planned};
use crate::SyncError;
use crate::transfer::{Kind, Outcome, Route, Transfer};

/// The most devices never seen before that one fetch pass looks at; the others wait for the
/// next pass.
const MAX_UNKNOWN_DEVICES: usize = 64;

/// The most segments one pass reads past a missing or quarantined one of a device, looking for
/// the segment that follows on (a writer skips the names someone else took).
const MAX_STEPS_OVER: usize = 16;

/// The object a planned read reads.
fn object(read: Read, device: DeviceTag) -> ObjectName {
    match read {
        Read::Snapshot(seq) => ObjectName::Snap { device, seq },
        Read::Segment(seq) => ObjectName::Log { device, seq },
    }
}

/// Where a segment read and checked stands in its device's stream.
pub(super) enum Placed {
    /// It followed on from what was applied, and is applied now.
    Applied,
    /// Operations before it are not applied yet: an earlier segment is still needed.
    Ahead,
}

/// What reading one object came to.
pub(super) enum Fetched<T> {
    /// Read and checked.
    Read(T),
    /// Not in storage.
    Missing,
    /// Read, and set aside.
    Quarantined,
}

impl Engine {
    /// Polls: one LIST of `head/`, then the segments of every device that moved.
    pub async fn fetch(&mut self) -> Result<FetchReport, SyncError> {
        if !self.config.direction.receives() {
            // Nothing to take in; what storage lost of this device's is still put back.
            if self.own_check_due(self.config.check_own_every)? {
                let heads = self.remote.heads().await?;
                self.repair_own(&heads).await?;
            }
            return Ok(FetchReport::default());
        }
        let report = self
            .fetch_pass(async |engine: &mut Engine, report: &mut FetchReport| {
                let mut heads = engine.remote.heads().await?;
                if let Err(error) = engine.repair_own(&heads).await {
                    engine.note(format!(
                        "checking this device's own objects failed: {error}"
                    ));
                }
                heads.remove(&engine.tag);
                for (&tag, &head) in &heads {
                    engine.check_not_rolled_back(tag, head).await?;
                }
                engine.check_announced(&heads)?;
                engine.catch_up(&heads, report).await
            })
            .await?;
        // Who made the generations this device is on and came through, once the roster can
        // check their signatures (a device that joined on a later generation).
        if self.creators.len() + 1 < self.generation as usize
            && let Err(error) = self.learn_creators().await
        {
            self.note(format!(
                "who made the repository's earlier keys could not be read: {error}"
            ));
        }
        Ok(report)
    }

    /// Fetches what a relay hint announces (and any segment of that device before it), and
    /// remembers how far its writer says it has written. A roll call fetches nothing. The hint
    /// is one its writer signed ([`Engine::heard`]); one that claims far more than this device
    /// has of its writer is checked against the storage's listing instead: a poll, unless one
    /// such claim already waits for it (see [`Engine::take_far`]).
    pub async fn fetch_hint(&mut self, hint: RelayHint) -> Result<FetchReport, SyncError> {
        let news = !hint.is_roll_call() && hint.device != self.tag;
        if self.config.direction.receives() && news {
            let waited = self.far_claim_waits();
            if self.take_far(&hint)? {
                if waited || !self.far_claim_waits() {
                    return Ok(FetchReport::default());
                }
                return self.fetch().await;
            }
            self.remember_announced(&hint)?;
        }
        self.fetch_pass(async |engine: &mut Engine, report: &mut FetchReport| {
            if hint.device == engine.tag || hint.is_roll_call() {
                return Ok(());
            }
            let heads = BTreeMap::from([(hint.device, hint.seq)]);
            engine.catch_up(&heads, report).await
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
            self.release_passed()?;
            if !self.config.large_in_steps {
                self.fetch_wanted_blobs().await;
            }
            self.maybe_checkpoint()
        }
        .await;
        self.finish(&result, Pass::Fetch);
        if result.is_ok() {
            let failed: Vec<DeviceTag> = report.failed.iter().map(|f| f.tag).collect();
            self.health.devices_read(&failed);
            // The roster as it stands once every device was read: the first device is pinned
            // from it, before later registrations can claim an earlier time.
            if failed.is_empty()
                && let Err(error) = self.first_device()
            {
                tracing::warn!(%error, "the repository's first device could not be kept");
            }
        }
        result.map(|()| report)
    }

    /// What is known of the device of `tag` before reading anything of it: its head, how far
    /// it is applied, and (for a device never seen) its newest snapshot, unless its stream waits
    /// for a quarantined first segment (`held`): that was looked for when it was set aside.
    async fn peer(
        &self,
        tag: DeviceTag,
        head: u64,
        held: &BTreeSet<String>,
    ) -> Result<Peer, SyncError> {
        let mut peer = Peer::new(tag, head, self.db.cursor(&tag)?.seq);
        let first = self.remote.path(&ObjectName::Log {
            device: tag,
            seq: 1,
        });
        if peer.applied == 0 && !held.contains(&first) {
            peer.snapshots = self.remote.snapshot_seqs(tag).await?;
        }
        Ok(peer)
    }

    /// Brings every device of `heads` up to its head: the snapshots their plans start with
    /// first, merged as one checkpoint (a cold start writes the merged state once, not per
    /// device), then each device's segments. A device whose objects cannot be read is reported
    /// in `report.failed`, and the others go on.
    async fn catch_up(
        &mut self,
        heads: &BTreeMap<DeviceTag, u64>,
        report: &mut FetchReport,
    ) -> Result<(), SyncError> {
        let mut held = self.held(heads)?;
        let mut peers = Vec::new();
        let mut unknown = 0;
        for (&tag, &head) in heads {
            if held.contains(&self.remote.path(&ObjectName::Head {
                device: tag,
                seq: head,
            })) {
                // A head that named nothing readable: it waits its turn like any object.
                continue;
            }
            if self.db.cursor(&tag)?.seq == 0 {
                // Devices never seen cost a LIST and a GET each: a bounded number per pass, so
                // that names planted by the thousand cannot make one poll expensive.
                unknown += 1;
                if unknown > MAX_UNKNOWN_DEVICES {
                    continue;
                }
            }
            match self.peer(tag, head, &held).await {
                Ok(peer) => peers.push(peer),
                Err(error) => self.device_failed(tag, error, report)?,
            }
        }
        let mut loaded = Vec::new();
        let mut ready = Vec::new();
        for mut peer in peers {
            if let Some(seq) = plan::fetch(&peer, &held, self.remote.root()).leading_snapshot() {
                match self.read_snapshot(peer.tag, seq, peer.head, report).await {
                    Ok(Fetched::Read(snapshot)) => loaded.push(snapshot),
                    Ok(Fetched::Quarantined) => {
                        held.insert(self.remote.path(&ObjectName::Snap {
                            device: peer.tag,
                            seq,
                        }));
                    }
                    Ok(Fetched::Missing) => {}
                    Err(error) => {
                        self.device_failed(peer.tag, error, report)?;
                        continue;
                    }
                }
                peer.snapshots.remove(&seq);
            }
            ready.push(peer);
        }
        let (loaded, refused) = self.agree_on_roster(loaded, report)?;
        held.extend(refused.iter().map(|name| self.remote.path(name)));
        self.merge_snapshots(loaded)?;
        for peer in ready {
            let tag = peer.tag;
            if let Err(error) = self.catch_up_device(peer, &mut held, report).await {
                self.device_failed(tag, error, report)?;
            }
        }
        Ok(())
    }

    /// Says so, once per older head seen, when the storage lists an older head of the device of
    /// `tag` than the segment this device has applied. The head is opened first: one its
    /// device signed means the storage lost or rolled back data; anything else was planted.
    /// Either way the newer state is kept (nothing older is ever applied over it). Relay hints,
    /// which may be replayed, are not checked.
    async fn check_not_rolled_back(&mut self, tag: DeviceTag, head: u64) -> Result<(), SyncError> {
        let applied = self.db.cursor(&tag)?.seq;
        if head >= applied {
            self.ahead_of_storage.remove(&tag);
            return Ok(());
        }
        let late = self
            .ahead_of_storage
            .get(&tag)
            .is_some_and(|&from| head >= from);
        if late || self.rolled_back.get(&tag) == Some(&head) {
            return Ok(());
        }
        let name = ObjectName::Head {
            device: tag,
            seq: head,
        };
        let bytes = match self.remote.get(&name).await {
            Ok(bytes) => Ok(bytes),
            Err(error) if error.is_bad_object() => Err(error.to_string()),
            // Gone again, or not readable now: the next poll looks again.
            Err(_) => return Ok(()),
        };
        self.rolled_back.insert(tag, head);
        let said = match bytes.and_then(|bytes| self.open_head(&name, &bytes)) {
            Ok(writer) => format!(
                "the storage served an older state of {} (seq {head}, already had {applied}): \
                 it lost or rolled back data; the newer state is kept",
                self.who(&writer)
            ),
            Err(reason) => format!(
                "{} is not a head its device wrote ({reason}): planted, and ignored; the newer \
                 state (seq {applied}) is kept",
                self.remote.path(&name)
            ),
        };
        warn!("{said}");
        let logged = Transfer::new(Route::Down, Kind::Fetch, Outcome::Skipped)
            .device(&tag)
            .object(&name)
            .detail(&said);
        self.db.log(&logged)?;
        self.note(said);
        Ok(())
    }

    /// Opens and checks the head stored under `name`: the device that signed it, or why it is
    /// not a head of that name's device.
    fn open_head(&self, name: &ObjectName, bytes: &[u8]) -> Result<DeviceId, String> {
        let claimed = self
            .keys
            .data
            .open_signed::<Head>(name, bytes)
            .map_err(|error| error.to_string())?;
        let head = &claimed.value;
        let named = matches!(name, ObjectName::Head { device, seq }
            if *device == self.keys.names.device_tag(&head.device) && *seq == head.seq);
        if !named {
            return Err("its device or seq is not its name's".into());
        }
        self.checker()
            .check_author(&claimed, head.device, None)
            .map_err(|refusal| refusal.reason())?;
        Ok(head.device)
    }

    /// Reports that the device of `tag` could not be fetched in this pass, when `error` is about
    /// that device's objects; any other error ends the pass.
    fn device_failed(
        &mut self,
        tag: DeviceTag,
        error: SyncError,
        report: &mut FetchReport,
    ) -> Result<(), SyncError> {
        if !error.is_about_one_object() {
            return Err(error);
        }
        let error = error.to_string();
        warn!(device = %tag, %error, "fetching a device failed");
        let failed = Transfer::new(Route::Down, Kind::Fetch, Outcome::Failed)
            .device(&tag)
            .detail(&error);
        self.db.log(&failed)?;
        self.health.note(
            super::health::Cause::Device(tag),
            format!("fetching from device {tag} failed: {error}"),
        );
        report.failed.push(DeviceFailure {
            tag,
            device: self.db.device_of(&tag)?,
            error,
        });
        Ok(())
    }

    /// Executes one device's plan, planning again when storage says something the plan did
    /// not know (a segment compacted away, or one that does not open). `held` are the objects
    /// not to read in this pass.
    async fn catch_up_device(
        &mut self,
        mut peer: Peer,
        held: &mut BTreeSet<String>,
        report: &mut FetchReport,
    ) -> Result<(), SyncError> {
        // Looking for a snapshot that covers a gap is worth a LIST only when this pass found
        // the gap; a stream waiting since an earlier pass was looked at then.
        let mut snapshots_listed = peer.applied == 0;
        let mut stopped_here = false;
        let mut segments_listed = false;
        let mut steps_over = 0;
        'plan: loop {
            peer.applied = self.db.cursor(&peer.tag)?.seq;
            let plan = plan::fetch(&peer, held, self.remote.root());
            for read in plan.reads {
                let name = object(read, peer.tag);
                // Here only when the read did not move the stream on: quarantined or missing.
                let quarantined = match read {
                    Read::Snapshot(seq) => {
                        // Read once: whatever came of it, the next plan does not choose it.
                        peer.snapshots.remove(&seq);
                        match self.read_snapshot(peer.tag, seq, peer.head, report).await? {
                            Fetched::Read(loaded) => {
                                self.merge_snapshots(vec![loaded])?;
                                continue 'plan;
                            }
                            fetched => matches!(fetched, Fetched::Quarantined),
                        }
                    }
                    Read::Segment(seq) => {
                        if seq > peer.applied + 1 {
                            steps_over += 1;
                        }
                        let fetched = self.fetch_segment(peer.tag, seq, peer.head, report);
                        match fetched.await? {
                            Fetched::Read(Placed::Applied) => continue,
                            Fetched::Read(Placed::Ahead) => {
                                // The gap is real: the stream waits for what it lacks.
                                peer.stored = None;
                                stopped_here = true;
                                continue 'plan;
                            }
                            Fetched::Missing => {
                                peer.missing.insert(seq);
                                false
                            }
                            Fetched::Quarantined => true,
                        }
                    }
                };
                if quarantined {
                    held.insert(self.remote.path(&name));
                }
                if steps_over >= MAX_STEPS_OVER {
                    peer.stored = None;
                }
                stopped_here = true;
                continue 'plan;
            }
            if plan.stop.is_some() && stopped_here && !snapshots_listed {
                // Stuck behind a missing or quarantined segment: a snapshot may cover it.
                peer.snapshots = self.remote.snapshot_seqs(peer.tag).await?;
                snapshots_listed = true;
                continue 'plan;
            }
            if plan.stop.is_some() && stopped_here && !segments_listed {
                // Or its writer skipped that name (someone else took it) and a later segment
                // follows on.
                peer.stored = Some(self.remote.segments(peer.tag).await?.into_keys().collect());
                segments_listed = true;
                continue 'plan;
            }
            return self.stopped(&peer, plan.stop, report);
        }
    }

    /// Says what a device's stream stopped at, once nothing more can be read of it in this pass.
    fn stopped(
        &mut self,
        peer: &Peer,
        stop: Option<Stop>,
        report: &mut FetchReport,
    ) -> Result<(), SyncError> {
        match stop {
            Some(Stop::Missing(_)) if peer.applied == 0 => {
                // Nothing of this device is readable: its head is stray or planted. Set
                // aside, it costs nothing until it is due or the head moves on.
                let head = ObjectName::Head {
                    device: peer.tag,
                    seq: peer.head,
                };
                let reason = Refusal::Damaged(
                    "no segment or snapshot of this device is in storage: the head is stray \
                     or planted"
                        .into(),
                );
                self.quarantine(&head, &reason, &[], peer.head)?;
                report.quarantined += 1;
            }
            Some(Stop::Missing(seq)) => {
                // A head names a segment that is not there and no snapshot covers it:
                // deleted by hand, or lost. The next poll looks again.
                let name = self.remote.path(&ObjectName::Log {
                    device: peer.tag,
                    seq,
                });
                self.note(format!(
                    "{name} is missing although a head names it; waiting for it"
                ));
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn maybe_checkpoint(&mut self) -> Result<(), SyncError> {
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
                    name: self.remote.path(&self.log_name(write.seq)),
                    ops: write.ops,
                    bytes: write.bytes,
                });
            }
        }
        if !self.config.direction.receives() {
            return Ok(dry_run);
        }
        let mut heads = self.remote.heads().await?;
        heads.remove(&self.tag);
        let held = self.held(&heads)?;
        for (tag, head) in heads {
            let applied = self.db.cursor(&tag)?.seq;
            if head <= applied {
                continue;
            }
            let mut peer = Peer::new(tag, head, applied);
            let segments = self.remote.segments(tag).await?;
            peer.missing = (applied + 1..=head)
                .filter(|seq| !segments.contains_key(seq))
                .collect::<BTreeSet<u64>>();
            let snapshots = self.remote.snapshots(tag).await?;
            peer.snapshots = snapshots.keys().copied().collect();
            for read in plan::fetch(&peer, &held, self.remote.root()).reads {
                let (name, size) = match read {
                    Read::Snapshot(seq) => {
                        (ObjectName::Snap { device: tag, seq }, snapshots.get(&seq))
                    }
                    Read::Segment(seq) => {
                        (ObjectName::Log { device: tag, seq }, segments.get(&seq))
                    }
                };
                dry_run.download.push(Planned {
                    name: self.remote.path(&name),
                    ops: 0,
                    bytes: size.copied().unwrap_or(0),
                });
            }
        }
        Ok(dry_run)
    }
}
