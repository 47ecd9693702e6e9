//! The engine: record locally, upload own segments, fetch and apply others'.
//!
//! Upload of one segment, every step safe to repeat after a crash:
//!
//! ```text
//! reserve (one transaction): seq, the ops it carries, sealed segment + head bytes
//! PUT log/<tag>/<seq>   (write-once; "already there" → compare bytes)
//! PUT head/<tag>/<seq>  (write-once)
//! mark uploaded (+ transfer log) → hint (tag, seq) for the relay
//! ```
//!
//! A name someone else took is skipped, and the heads below the newest are deleted in batches
//! (see `upload`).
//!
//! Fetch: LIST `head/` (the names carry tag and seq: nothing else is read for an idle poll),
//! then for each other device whose head is past its cursor, GET the missing segments in order
//! and apply each in one transaction (`fetch` plans and follows each device, `segment` takes
//! one segment in). An object that does not open or decode, or that its device
//! did not sign (checked against the device roster: `authors`), is quarantined; that device's
//! stream waits, the others go on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_core::{
    Action, Body, ClipContent, ClipId, DataKind, Membership, Op, Replica, Scope, State,
};
use ferry_protocol::{
    BlobId, DeviceId, DeviceKeys, DeviceTag, Identity, Keys, NamesKey, RelayHint,
};
use ferry_store::{RetryPolicy, Store};
use tracing::warn;

use crate::db::{Db, Words};
use crate::policy::{Direction, Filters, Refusal};
use crate::remote::Remote;
use crate::throttle::Throttle;
use crate::transfer::{self, Kind, Outcome, Transfer, now_ms};
use crate::{SyncError, generation, repo};
use health::{Cause, Health};
pub use health::{Problem, StorageHealth};

pub use finish::Finished;
pub use follow::NextGeneration;
pub use freshness::{Behind, FAR_CLAIM, Heard};
pub use large::{LargeStep, Progress, ProgressFn};
pub use nearby::{ChunkReceived, NearbyChunk, NearbySegment, Received};
pub use quarantine::{Quarantined, Retry};
pub use succession::{Destination, RotationPlan, Succession};

mod authors;
mod blobs;
mod fetch;
mod finish;
mod follow;
mod freshness;
mod health;
mod large;
mod nearby;
pub(crate) mod plan;
mod quarantine;
mod repair;
mod segment;
mod snapshot;
mod succession;
mod upload;

/// How the engine batches and keeps its database small.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Retries for storage requests.
    pub retry: RetryPolicy,
    /// Most operations in one segment.
    pub max_segment_ops: usize,
    /// Fold operations into the local checkpoint once this many are stored.
    pub checkpoint_every: u64,
    /// Write a snapshot (and delete the own segments it covers) after this many own operations.
    pub snapshot_every: u64,
    /// Which way data flows.
    pub direction: Direction,
    /// Which clips are recorded at all.
    pub filters: Filters,
    /// Which kinds of data sync. Changes to the others are kept on this device only, and
    /// other devices' changes to them do not show here (see [`Engine::state_for`]).
    pub scope: Scope,
    /// Images and files larger than this go to `blob/` as chunks, outside the segment.
    pub blob_threshold: u64,
    /// Bytes per blob chunk (at most 4 MiB).
    pub blob_chunk: usize,
    /// Others' blobs up to this size are fetched with their segment; larger ones when asked
    /// for ([`Engine::blob`]).
    pub eager_blob_bytes: u64,
    /// How long after a damaged object is quarantined it is first tried again; each failure
    /// doubles the wait, up to an hour.
    pub quarantine_retry: Duration,
    /// How often a device checks (with one LIST) that storage still holds its own uploaded
    /// segments; it checks at once when its own head is missing from a poll's listing.
    pub check_own_every: Duration,
    /// After an upload, this device also checks its own segments when it last did this long
    /// ago: a segment the storage lost in the middle of its log (which readers stall behind)
    /// is put back with the device's next upload, not at the hourly check.
    pub check_own_on_upload_every: Duration,
    /// How many segments beyond what the storage shows of a device its announcement over the
    /// relay may go and still be the storage lagging or holding back; past it, the claim is
    /// said once and not kept ([`FAR_CLAIM`]).
    pub far_claim: u64,
    /// The name this device registers in the roster with, the first time it sends.
    pub device_name: String,
    /// The id a new database takes instead of a random one: the id this device gave the
    /// device that paired it, which attested it under that id.
    pub paired_as: Option<DeviceId>,
    /// How many kinds of operation this build reads: all it knows ([`Action::KINDS`]). Only a
    /// test sets fewer, to play an older build meeting a newer one's operations.
    #[doc(hidden)]
    pub known_actions: u32,
    /// Traffic control for large content going out (blob chunks, snapshots); `None`: none.
    /// Segments and heads are never held by it.
    pub upload_limit: Option<Arc<Throttle>>,
    /// Traffic control for large content coming in.
    pub download_limit: Option<Arc<Throttle>>,
    /// Large content moves in [`Engine::large_step`]s that the caller runs between its other
    /// work, instead of inside uploads and fetches (this device's blobs going out, others'
    /// blobs fetched with their segments): an agent then never holds a copy behind an image.
    pub large_in_steps: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retry: RetryPolicy::DEFAULT,
            max_segment_ops: 1000,
            checkpoint_every: 20_000,
            snapshot_every: 5_000,
            direction: Direction::Both,
            filters: Filters::default(),
            scope: Scope::ALL,
            blob_threshold: 64 * 1024,
            blob_chunk: 1024 * 1024,
            eager_blob_bytes: 8 * 1024 * 1024,
            quarantine_retry: Duration::from_secs(60),
            check_own_every: Duration::from_secs(3600),
            check_own_on_upload_every: Duration::from_secs(60),
            far_claim: FAR_CLAIM,
            device_name: String::new(),
            paired_as: None,
            known_actions: Action::KINDS,
            upload_limit: None,
            download_limit: None,
            large_in_steps: false,
        }
    }
}

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Segments written.
    pub segments: u64,
    /// Operations they carried.
    pub ops: u64,
    /// Bytes written (segments and heads).
    pub bytes: u64,
    /// A hint per segment, for the relay.
    pub hints: Vec<RelayHint>,
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Segments applied.
    pub segments: u64,
    /// Operations in them.
    pub ops: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Objects newly quarantined.
    pub quarantined: u64,
    /// Devices whose objects or listings could not be read in this pass (the others were
    /// fetched): each with why.
    pub failed: Vec<DeviceFailure>,
}

/// A device whose data could not be fetched in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFailure {
    /// Its tag.
    pub tag: DeviceTag,
    /// Its id, once this device has applied anything of it.
    pub device: Option<DeviceId>,
    /// What failed.
    pub error: String,
}

/// One object a sync would move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Its store path.
    pub name: String,
    /// Operations it carries (uploads; 0 where unknown before reading it).
    pub ops: u64,
    /// Its size in bytes (for new segments: the operations' size before sealing).
    pub bytes: u64,
}

/// What a sync would move, computed without moving anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DryRun {
    /// Segments to write.
    pub upload: Vec<Planned>,
    /// Segments and snapshots to read.
    pub download: Vec<Planned>,
}

/// Where this device stands with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The other device's id.
    pub device: DeviceId,
    /// Its tag in object names.
    pub tag: DeviceTag,
    /// Its last segment applied here.
    pub seq: u64,
    /// Its operation counter at that segment.
    pub ops: u64,
}

/// Everything `ferry status` shows about sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This device.
    pub device: DeviceId,
    /// Its tag in object names.
    pub tag: DeviceTag,
    /// Operations recorded and not yet in an uploaded segment.
    pub pending_ops: u64,
    /// Segments reserved and not yet uploaded.
    pub pending_segments: u64,
    /// This device's newest segment.
    pub last_seq: u64,
    /// The last upload that sent something (by this run of the engine or an earlier one).
    pub last_upload: Option<SystemTime>,
    /// The last fetch that succeeded, since the engine opened.
    pub last_fetch: Option<SystemTime>,
    /// Other devices and how far this one has applied them.
    pub peers: Vec<PeerStatus>,
    /// Quarantined objects, oldest first.
    pub quarantined: Vec<Quarantined>,
    /// The recent problems, oldest first, each resolved once its cause is gone.
    pub problems: Vec<Problem>,
    /// Whether the storage answered its last request, and since when (`None` before the
    /// first).
    pub storage: Option<StorageHealth>,
}

/// One device's sync engine over one repository.
pub struct Engine {
    remote: Remote,
    /// The generation of the repository this device is on (SPEC §11).
    generation: u32,
    keys: Keys,
    /// This device's signing keys: every segment, head and snapshot it writes is signed.
    identity: Identity,
    device: DeviceId,
    tag: DeviceTag,
    db: Db,
    /// The merged, synced state.
    replica: Replica,
    /// This device's local-only data: what it records outside its sync scope.
    local: Replica,
    config: EngineConfig,
    last_upload: Option<SystemTime>,
    last_fetch: Option<SystemTime>,
    /// Recent problems and the storage's health.
    health: Health,
    /// Blobs of clips applied in this fetch, to fetch at its end.
    wanted_blobs: Vec<BlobId>,
    /// Per device, the older head the storage served last (said once, not on every poll).
    rolled_back: HashMap<DeviceTag, u64>,
    /// Per device, the announcement the storage was last found behind (said once).
    behind_said: HashMap<DeviceTag, u64>,
    /// Per device, the claim far beyond what this device had that waits for a poll's listing.
    far_claims: HashMap<DeviceTag, u64>,
    /// Per device, the claim far beyond the storage that was said (once each).
    far_said: HashMap<DeviceTag, Behind>,
    /// Devices said to send the unsigned hints of an older version (once each).
    older_said: HashSet<DeviceTag>,
    /// Per device with segments applied from a nearby device that storage may not hold yet:
    /// its cursor before them. A head in storage from there on is late, not rolled back.
    ahead_of_storage: HashMap<DeviceTag, u64>,
    /// Whether the storage did not answer when the engine opened.
    opened_offline: bool,
    /// Large content on its way, a step at a time (see [`EngineConfig::large_in_steps`]).
    large: large::InFlight,
    /// The generations before this one known here, newest first: blobs not moved yet are
    /// read from them.
    older: Vec<follow::Older>,
    /// Why this device writes nothing more, once the next generation said so.
    halted: Option<follow::Halt>,
    /// The device that made each generation after the first, as far as known here.
    creators: BTreeMap<u32, DeviceId>,
}

/// Which pass of a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Upload,
    Fetch,
}

fn clip_text(op: &Op) -> Option<(ClipId, &str)> {
    match &op.action {
        Action::Copy { clip, content } => content.text().map(|text| (*clip, text)),
        _ => None,
    }
}

impl Engine {
    /// Opens the repository in `store` with `keys` (checking the key before anything else) and
    /// the local database at `database` (created on first use, with a new device id). When the
    /// storage cannot be reached (at the first try), a database that opened this repository
    /// with these keys before opens anyway: recording works offline and syncing resumes when
    /// the storage answers.
    ///
    /// `identity` is this device's own key pair. A device that sends registers its public keys
    /// in the roster the first time (its next segment carries the registration); one that is
    /// registered with other keys is refused with [`SyncError::IdentityChanged`].
    pub async fn open(
        store: Arc<dyn Store>,
        keys: Keys,
        identity: Identity,
        database: &Path,
        config: EngineConfig,
    ) -> Result<Engine, SyncError> {
        let known = database.exists();
        // A device that opened the repository before asks once: unreachable storage means
        // working offline at once, and the passes that follow retry by the policy.
        let retry = if known {
            RetryPolicy::NEVER
        } else {
            config.retry
        };
        let mut opened_offline = false;
        let mut db;
        let key_id = if known {
            // The database says which generation this device is on.
            db = Db::open(database)?;
            match repo::open_in(&*store, &keys, &retry, db.root()).await {
                Ok(header) => header.key_id,
                // Offline: a device that opened this repository with this key before starts
                // anyway, records locally, and syncs once the storage answers.
                Err(error) if error.is_transient() => {
                    if db.key_id()? != Some(keys.id) {
                        return Err(error);
                    }
                    warn!(%error, "the storage is unreachable: working offline until it answers");
                    opened_offline = true;
                    keys.id
                }
                // The generation this device is on was deleted (SPEC §11.7) after the others
                // moved on without it.
                Err(SyncError::NoRepository)
                    if !generation::later_roots(&*store, &retry).await?.is_empty() =>
                {
                    return Err(SyncError::GenerationRefused {
                        reason: "the key this device holds opens nothing any more: the other \
                                 devices moved to a newer one, and its generation was deleted; \
                                 pair this device again from one of them (`ferry pair` there; \
                                 here `ferry leave --drop-history`, then `ferry join`)"
                            .into(),
                    });
                }
                // Gone from this storage: moved away and emptied, or deleted.
                Err(SyncError::NoRepository) if db.generation()? > 1 || db.key_id()?.is_some() => {
                    return Err(SyncError::GenerationRefused {
                        reason: "the repository this device was on is not in its storage any \
                                 more (it moved to other storage and this one was emptied, or it \
                                 was deleted): pair this device again from another one (`ferry \
                                 pair` there; here `ferry leave --drop-history`, then `ferry \
                                 join`)"
                            .into(),
                    });
                }
                // Perhaps the key of a later generation than the database is on.
                Err(error @ SyncError::Protocol(ferry_protocol::Error::WrongKey { .. })) => {
                    let stopped_at = (db.generation()?, db.key_id()?);
                    drop(db);
                    return Engine::open_behind(
                        store, keys, identity, database, config, stopped_at, error,
                    )
                    .await;
                }
                Err(error) => return Err(error),
            }
        } else {
            match repo::open(&*store, &keys, &retry).await {
                Ok(header) => {
                    db = Db::open(database)?;
                    header.key_id
                }
                // A key of a later generation: found along the candidates' public parts, or
                // in the storage a repository moved to.
                Err(
                    SyncError::Protocol(ferry_protocol::Error::WrongKey { .. })
                    | SyncError::NoRepository,
                ) => {
                    let key = |_: &ferry_protocol::RepoHeader| Ok(keys.clone());
                    let (located, _) = generation::locate(&*store, &retry, key).await?;
                    db = Db::open(database)?;
                    db.start_at(located.generation, located.header.key_id)?;
                    located.header.key_id
                }
                Err(error) => return Err(error),
            }
        };
        let device = db.identity(key_id, config.paired_as)?;
        db.retry_after_upgrade(config.known_actions)?;
        let local = db.local_identity()?;
        let (state, local_state) = db.load_state(local)?;
        db.index_history(&state)?;
        // Uploads of earlier runs count: the status says when this device last sent anything.
        let creators = db.creators()?;
        let last_upload = db
            .last_sent()?
            .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        let mut engine = Engine {
            tag: keys.names.device_tag(&device),
            replica: Replica::with_state(device, state),
            local: Replica::with_state(local, local_state),
            remote: Remote::new(store, config.retry, db.root().to_owned()),
            generation: db.generation()?,
            keys,
            identity,
            device,
            db,
            config,
            last_upload,
            last_fetch: None,
            health: Health::default(),
            wanted_blobs: Vec::new(),
            rolled_back: HashMap::new(),
            behind_said: HashMap::new(),
            far_claims: HashMap::new(),
            far_said: HashMap::new(),
            older_said: HashSet::new(),
            ahead_of_storage: HashMap::new(),
            large: large::InFlight::default(),
            older: Vec::new(),
            halted: None,
            creators,
            opened_offline,
        };
        engine.register()?;
        Ok(engine)
    }

    /// Attests that `device` has the public `keys`: this device paired it and received them
    /// over the pairing channel, or its user compared their fingerprint (see
    /// [`ferry_core::roster`]). It counts for the other devices only while this device's own
    /// membership holds; a device registered with other keys is refused.
    pub fn vouch(&mut self, device: DeviceId, keys: DeviceKeys) -> Result<(), SyncError> {
        if let Some(entry) = self.replica.state().device(&device)
            && entry.keys != keys
        {
            return Err(SyncError::DeviceTaken {
                device: device.short(),
                registered: entry.keys.fingerprint(),
            });
        }
        self.record(DataKind::Settings, |replica, _, now| {
            replica.vouch(device, &keys, now)
        })?;
        Ok(())
    }

    /// The repository's first device, which nobody could add and from which attestations
    /// count. The device that made the repository pins itself ([`Engine::founded`]); any other
    /// pins the earliest registration of another device it sees, the first time it sees one,
    /// so that a registration made later with a time set in the past (by a client that lies
    /// about its clock) does not displace it. A device never takes itself for the first one
    /// unless it made the repository, whatever its clock said when it registered (a joining
    /// device registers before it has read anything), or its database is from before the
    /// first device was pinned (then it may have made it).
    pub fn first_device(&self) -> Result<Option<DeviceId>, SyncError> {
        if let Some(first) = self.db.first_device()? {
            return Ok(Some(first));
        }
        let may_be_first = self.db.roster_before_pinning()?;
        let state = self.replica.state();
        let earliest = state
            .devices()
            .filter(|(id, _)| may_be_first || **id != self.device)
            .min_by_key(|(_, entry)| (entry.added, entry.keys))
            .map(|(id, _)| *id);
        let others = state.devices().any(|(id, _)| *id != self.device);
        if let Some(first) = earliest
            && others
        {
            self.db.pin_first_device(first)?;
        }
        Ok(earliest)
    }

    /// Records that this device made the repository: it is the first device.
    pub fn founded(&self) -> Result<(), SyncError> {
        self.db.pin_first_device(self.device)
    }

    /// Each registered device's membership: whether a chain of attestations leads to it from
    /// the repository's first device.
    pub fn memberships(&self) -> Result<BTreeMap<DeviceId, Membership>, SyncError> {
        Ok(self.replica.state().memberships(self.first_device()?))
    }

    /// Registers this device's public keys in the roster if it sends and is not registered
    /// yet; refuses an identity other than the registered one.
    fn register(&mut self) -> Result<(), SyncError> {
        let public = self.identity.public();
        match self.replica.state().device(&self.device) {
            Some(entry) if entry.keys == public => Ok(()),
            Some(entry) => Err(SyncError::IdentityChanged {
                registered: entry.keys.fingerprint(),
                found: public.fingerprint(),
            }),
            None if !self.config.direction.sends() => Ok(()),
            None => {
                let name = self.config.device_name.clone();
                let register =
                    |replica: &mut Replica, _: &NamesKey, now| replica.register(name, public, now);
                self.record_with(None, register, None)?;
                Ok(())
            }
        }
    }

    /// How storage requests are retried from now on: a caller that retries whole passes itself
    /// (an agent while the storage is unreachable) makes each request try once.
    pub fn set_retry(&mut self, retry: RetryPolicy) {
        self.remote.set_retry(retry);
    }

    /// Whether large content moves in [`Engine::large_step`]s from now on (see
    /// [`EngineConfig::large_in_steps`]).
    pub fn set_large_in_steps(&mut self, in_steps: bool) {
        self.config.large_in_steps = in_steps;
    }

    /// Whether the storage did not answer when the engine opened (it opened offline).
    pub fn opened_offline(&self) -> bool {
        self.opened_offline
    }

    /// The tag that names `device`'s objects in the storage.
    pub fn tag_of(&self, device: &DeviceId) -> DeviceTag {
        self.keys.names.device_tag(device)
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The merged state.
    pub fn state(&self) -> &State {
        self.replica.state()
    }

    /// The state to show for `kind`: the merged state when `kind` syncs, otherwise this
    /// device's local-only state.
    pub fn state_for(&self, kind: DataKind) -> &State {
        if self.config.scope.includes_kind(kind) {
            self.replica.state()
        } else {
            self.local.state()
        }
    }

    /// Replaces the filters clips must pass to be recorded (synced settings may change them
    /// once the engine is open).
    pub fn set_filters(&mut self, filters: Filters) {
        self.config.filters = filters;
    }

    /// Reloads both states from the database, after a write that failed.
    fn reload(&mut self) -> Result<(), SyncError> {
        let (state, local) = self.db.load_state(self.local.device())?;
        self.replica = Replica::with_state(self.device, state);
        self.local = Replica::with_state(self.local.device(), local);
        Ok(())
    }

    /// Makes an operation with `make` and stores it durably before returning it.
    /// `kind` is the kind of data the operation changes: outside the sync scope it is made by
    /// this device's local-only actor and never leaves the device.
    pub fn record(
        &mut self,
        kind: DataKind,
        make: impl FnOnce(&mut Replica, &NamesKey, u64) -> Op,
    ) -> Result<Op, SyncError> {
        self.record_with(Some(kind), make, None)
    }

    /// Notes in the transfer log that a copy was not recorded, and why (`ferry log --kind
    /// filter`): for the filters here, and for what the clipboard itself refused.
    pub fn skipped(&mut self, refusal: &Refusal) -> Result<(), SyncError> {
        let line = Transfer::new(transfer::Route::Local, Kind::Filter, Outcome::Skipped)
            .device(&self.tag)
            .bytes(refusal.bytes())
            .detail(refusal.to_string());
        self.db.log(&line)
    }

    /// Records an operation of `kind` (`None`: the roster, registrations and removals, which
    /// always syncs).
    fn record_with(
        &mut self,
        kind: Option<DataKind>,
        make: impl FnOnce(&mut Replica, &NamesKey, u64) -> Op,
        blob: Option<(BlobId, &[u8])>,
    ) -> Result<Op, SyncError> {
        let replica = if kind.is_none_or(|kind| self.config.scope.includes_kind(kind)) {
            &mut self.replica
        } else {
            &mut self.local
        };
        let op = make(replica, &self.keys.names, now_ms());
        if kind.is_some() && op.data_kind() != kind {
            warn!(?kind, made = ?op.data_kind(), "an operation was recorded under another kind");
        }
        if let Err(error) = self.db.record(&op, clip_text(&op), blob) {
            // The operation is not stored: forget it in memory too.
            self.reload()?;
            return Err(error);
        }
        Ok(op)
    }

    /// Records a copy of `content`, unless the filters refuse it: then nothing is recorded,
    /// the transfer log says why (without quoting the content), and `None` is returned.
    pub fn copy(&mut self, content: ClipContent) -> Result<Option<Op>, SyncError> {
        if let Some(refusal) = self.config.filters.refuses(&content) {
            self.skipped(&refusal)?;
            return Ok(None);
        }
        // Large images and files travel as blobs: the operation carries the blob's id.
        let mut content = content;
        let mut blob = None;
        if let Some(body) = content.body_mut()
            && let Body::Inline(bytes) = body
            && bytes.len() as u64 > self.config.blob_threshold
        {
            let data = std::mem::take(bytes);
            let id = self.keys.names.blob_id(&data);
            *body = Body::Blob {
                id,
                len: data.len() as u64,
            };
            blob = Some((id, data));
        }
        let blob_ref = blob.as_ref().map(|(id, data)| (*id, data.as_slice()));
        self.record_with(
            Some(DataKind::Clips),
            |replica, names, now| replica.copy(names, content, now),
            blob_ref,
        )
        .map(Some)
    }

    /// Clips whose text holds every word of `query`, best match first.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<ClipId>, SyncError> {
        self.db.search(query, Words::Whole, limit)
    }

    /// [`Engine::search`] for a query still being typed: its last word matches the start of a
    /// word (`hel` finds `hello`).
    pub fn search_as_typed(&self, query: &str, limit: usize) -> Result<Vec<ClipId>, SyncError> {
        self.db.search(query, Words::LastUnfinished, limit)
    }

    /// The newest `limit` lines of the transfer log.
    pub fn transfers(&self, limit: usize) -> Result<Vec<Transfer>, SyncError> {
        self.db.transfers(limit)
    }

    /// Uploads, then fetches.
    pub async fn sync(&mut self) -> Result<(UploadReport, FetchReport), SyncError> {
        let upload = self.upload().await?;
        let fetch = self.fetch().await?;
        Ok((upload, fetch))
    }

    /// Records the outcome of an upload or fetch for the status.
    fn finish(&mut self, result: &Result<(), SyncError>, pass: Pass) {
        if result.is_ok() {
            self.health.passed(pass);
        }
        let error = match (result, pass) {
            (Ok(()), Pass::Upload) => return self.last_upload = Some(SystemTime::now()),
            (Ok(()), Pass::Fetch) => return self.last_fetch = Some(SystemTime::now()),
            (Err(error), _) => error,
        };
        let (direction, kind, what, cause) = match pass {
            Pass::Upload => (transfer::Route::Up, Kind::Upload, "upload", Cause::Upload),
            Pass::Fetch => (transfer::Route::Down, Kind::Fetch, "fetch", Cause::Fetch),
        };
        let failed = Transfer::new(direction, kind, Outcome::Failed).detail(error.to_string());
        if let Err(log_error) = self.db.log(&failed) {
            warn!(error = %log_error, "the transfer log could not be written");
        }
        self.health.note(cause, format!("{what} failed: {error}"));
    }

    /// Notes a problem that stands until newer ones push it out.
    fn note(&mut self, message: String) {
        self.health.note(Cause::Standing, message);
    }

    /// When the device of `tag` was last heard from: the newest of its segments or snapshots
    /// received here.
    pub fn last_received(&self, tag: &DeviceTag) -> Result<Option<SystemTime>, SyncError> {
        Ok(self
            .db
            .last_received(tag)?
            .map(|ms| std::time::UNIX_EPOCH + Duration::from_millis(ms)))
    }

    /// Where sync stands.
    pub fn status(&self) -> Result<Status, SyncError> {
        let (pending_segments, pending_ops) = self.db.pending_counts(self.device)?;
        let peers = self
            .db
            .cursors()?
            .into_iter()
            .map(|(tag, device, cursor)| PeerStatus {
                device,
                tag,
                seq: cursor.seq,
                ops: cursor.ops,
            })
            .collect();
        Ok(Status {
            device: self.device,
            tag: self.tag,
            pending_ops,
            pending_segments,
            last_seq: self.db.last_seq()?,
            last_upload: self.last_upload,
            last_fetch: self.last_fetch,
            peers,
            quarantined: self.quarantine_status()?,
            problems: self.health.problems(),
            storage: self.remote.health(),
        })
    }
}
