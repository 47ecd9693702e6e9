//! One pass of reading: what the other devices wrote since the last, read from the bucket as
//! every device reads it (`ferry_read` plans the reads and checks each object against the
//! roster), applied to what the page knows.
//!
//! ```text
//! GET repo (until it opens with the key) ─▶ LIST head/ ─▶ per device behind its head:
//!   [never seen] LIST snap/<tag>/ ─▶ leading snapshots, checked together ─▶ merged
//!   plan::fetch ─▶ GET log/<tag>/<seq> ─▶ Checker::open_segment ─▶ applied, or set aside
//!   [stuck on a missing or set-aside segment] LIST log/<tag>/ and snap/<tag>/ ─▶ plan again
//! ```
//!
//! An object that does not open or check is set aside with its reason and its device's stream
//! waits for it; a head of which nothing can be read is set aside too (a stray or planted
//! name), until that device's head moves. A device whose objects cannot be read this pass (the
//! storage refused or failed them) is named in the report; the other devices go on.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use ferry_core::{Action, Replica};
use ferry_protocol::names::{HEAD_PREFIX, ROOT, SNAP_PREFIX};
use ferry_protocol::{DeviceTag, Keys, ObjectName, RepoHeader};
use ferry_read::plan::{self, Peer, Read};
use ferry_read::{Checker, Position, Refusal};

use crate::storage::{Storage, StorageError};

/// The most plans made for one device in one pass (each read that finds something missing or
/// set aside plans again).
const MAX_PLANS: usize = 16;

/// The most devices never seen before that one pass reads; the others wait for the next (a
/// storage that plants heads cannot make a pass endless).
const MAX_UNKNOWN_DEVICES: usize = 64;

/// The largest snapshot a page reads: a phone's browser holds it, opened and decoded, several
/// times over.
const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024;

/// An object set aside, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetAside {
    /// Its device's newest head when it was set aside: it is tried again once the head moves.
    pub(crate) head: u64,
    pub(crate) reason: String,
}

/// What the page knows of the repository.
pub(crate) struct Known {
    pub(crate) replica: Replica,
    /// Where this device stands with each other device's log.
    pub(crate) cursors: BTreeMap<DeviceTag, Position>,
    /// Objects set aside, by store path.
    pub(crate) held: BTreeMap<String, SetAside>,
    /// The newest segment each device announced on the relay (a replayed announcement does not
    /// call for another pass).
    pub(crate) announced: BTreeMap<DeviceTag, u64>,
    /// Whether the repository's header was read and opens with the key.
    pub(crate) checked: bool,
    /// This device's operations not yet in a stored segment, in order.
    pub(crate) pending: Vec<ferry_core::Op>,
    /// This device's last segment written (or whose name it gave up).
    pub(crate) last_seq: u64,
    /// This device's heads below this seq are deleted.
    pub(crate) heads_pruned_to: u64,
    /// Whether what this device wrote before is all applied here, as its head in storage says
    /// (read in this page's life): only then may it make operations, whose counters follow on.
    pub(crate) own_current: bool,
}

/// What one pass read.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) snapshots: u64,
    pub(crate) segments: u64,
    pub(crate) ops: u64,
    pub(crate) set_aside: u64,
    /// What could not be read this pass, and why (one line each).
    pub(crate) problems: Vec<String>,
}

/// How reading one object ended.
enum Fetched<T> {
    /// Read, opened and taken in.
    Read(T),
    /// Not in storage.
    Missing,
    /// Read, and set aside.
    SetAside,
}

/// Where a segment read stands in its device's stream.
enum Placed {
    Applied,
    /// Operations before it are not here yet.
    Ahead,
}

/// One pass, holding what it needs across its requests (never a borrow of what the page knows:
/// the page may ask for the history meanwhile).
pub(crate) struct Pass {
    pub(crate) storage: Rc<Storage>,
    pub(crate) keys: Rc<Keys>,
    pub(crate) tag: DeviceTag,
    pub(crate) known: Rc<RefCell<Known>>,
}

/// An object's store path.
fn path(name: &ObjectName) -> String {
    format!("{ROOT}{name}")
}

/// The device an object of a device's stream belongs to.
fn stream_of(name: &ObjectName) -> Option<DeviceTag> {
    match name {
        ObjectName::Log { device, .. }
        | ObjectName::Snap { device, .. }
        | ObjectName::Head { device, .. } => Some(*device),
        ObjectName::Blob { .. } | ObjectName::Repo | ObjectName::Next { .. } | ObjectName::Prev => {
            None
        }
    }
}

/// The reason a page shows for a refusal: an operation of a newer kind shows once the relay
/// serves a newer page, not by upgrading the device the page runs on.
fn reason(refusal: &Refusal) -> String {
    match refusal {
        Refusal::Newer { ops } => format!(
            "{ops} operations were written by a newer Ferry than this page: they show once the \
             relay serves the newer page"
        ),
        other => other.reason(),
    }
}

/// The milliseconds since the epoch of the page's clock.
pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

impl Pass {
    pub(crate) async fn run(&self) -> Result<Report, String> {
        let mut report = Report::default();
        if !self.known.borrow().checked {
            self.check_key().await?;
        }
        let heads = self.heads().await.map_err(|e| e.to_string())?;
        self.release_moved(&heads);
        let held = self.held();
        let mut peers = Vec::new();
        let mut unknown = 0;
        // This device's own log is read like the others' when what the page kept is behind it
        // (the browser's storage was cleared): its counters then follow on.
        for (&tag, &head) in &heads {
            let applied = self.cursor(tag).seq;
            let planted = held.contains(&path(&ObjectName::Head {
                device: tag,
                seq: head,
            }));
            if head <= applied || planted {
                continue;
            }
            let mut peer = Peer::new(tag, head, applied);
            if applied == 0 {
                unknown += 1;
                if unknown > MAX_UNKNOWN_DEVICES {
                    continue;
                }
                match self.listed_seqs(tag, true).await {
                    Ok(seqs) => peer.snapshots = seqs,
                    Err(error) => {
                        report.problems.push(self.failed(tag, &error));
                        continue;
                    }
                }
            }
            peers.push(peer);
        }
        if let Err(error) = self.start_from_snapshots(&peers, &mut report).await {
            report.problems.push(error.to_string());
        }
        for mut peer in peers {
            peer.applied = self.cursor(peer.tag).seq;
            if let Err(error) = self.catch_up(peer.clone(), &mut report).await {
                report.problems.push(self.failed(peer.tag, &error));
            }
        }
        let mut known = self.known.borrow_mut();
        if report.set_aside > 0 {
            // What did not open may be sealed with a newer key: the header says so next pass.
            known.checked = false;
        }
        // Its own segments read back (signed, so not a name anyone could plant) say where this
        // device writes next; a head of its own that nothing backs is set aside, not followed.
        let own = heads.get(&self.tag).copied().unwrap_or(0);
        let applied = known.cursors.get(&self.tag).map_or(0, |at| at.seq);
        known.last_seq = known.last_seq.max(applied);
        let planted = known.held.contains_key(&path(&ObjectName::Head {
            device: self.tag,
            seq: own,
        }));
        known.own_current = applied >= own || planted;
        Ok(report)
    }

    /// A device whose objects could not be read, as the report says it.
    fn failed(&self, tag: DeviceTag, error: &StorageError) -> String {
        let known = self.known.borrow();
        let state = known.replica.state();
        let who = state
            .devices()
            .find(|(device, _)| self.keys.names.device_tag(device) == tag)
            .map_or_else(
                || "a device".to_owned(),
                |(device, _)| ferry_read::check::who(state, device),
            );
        format!("what {who} wrote could not be read this time: {error}")
    }

    /// Reads the repository's header, and checks that the key opens it.
    async fn check_key(&self) -> Result<(), String> {
        let limit = ObjectName::Repo.kind().max_sealed() as u64;
        let bytes = match self.storage.get(&path(&ObjectName::Repo), limit).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound) => {
                return Err(
                    "the bucket holds no repository where this browser was paired to \
                            find it: it may have moved (`ferry store move`); choose \"Forget \
                            this browser\" and pair it again"
                        .into(),
                );
            }
            Err(error) => return Err(error.to_string()),
        };
        let header = RepoHeader::from_bytes(&bytes).map_err(|e| {
            format!("the repository's header cannot be read ({e}): the bucket may be damaged")
        })?;
        header.verify(&self.keys).map_err(|_| {
            "the repository has a new key since this browser was paired (a device was removed, \
             or the key rotated): choose \"Forget this browser\" and pair it again from a \
             device that has the new key"
                .to_owned()
        })?;
        self.known.borrow_mut().checked = true;
        Ok(())
    }

    /// Takes out of the set-aside objects those whose device's head moved on since (the
    /// writer may have written them again).
    fn release_moved(&self, heads: &BTreeMap<DeviceTag, u64>) {
        self.known.borrow_mut().held.retain(|name, held| {
            let device = name
                .strip_prefix(ROOT)
                .and_then(|name| name.parse::<ObjectName>().ok())
                .and_then(|name| stream_of(&name));
            device.is_none_or(|tag| heads.get(&tag).is_none_or(|&head| head <= held.head))
        });
    }

    fn cursor(&self, tag: DeviceTag) -> Position {
        self.known
            .borrow()
            .cursors
            .get(&tag)
            .copied()
            .unwrap_or_default()
    }

    /// The store paths of the objects set aside.
    fn held(&self) -> BTreeSet<String> {
        self.known.borrow().held.keys().cloned().collect()
    }

    fn hold(&self, name: &ObjectName, head: u64, reason: String, report: &mut Report) {
        report.set_aside += 1;
        self.known
            .borrow_mut()
            .held
            .insert(path(name), SetAside { head, reason });
    }

    fn checker<'a>(&'a self, known: &'a Known) -> Checker<'a> {
        Checker {
            keys: &self.keys,
            state: known.replica.state(),
            known_actions: Action::KINDS,
            now_ms: now_ms(),
        }
    }

    /// The newest head of every device, from the names alone.
    async fn heads(&self) -> Result<BTreeMap<DeviceTag, u64>, StorageError> {
        let mut heads = BTreeMap::new();
        for listed in self.storage.list(&format!("{ROOT}{HEAD_PREFIX}")).await? {
            let name = listed.path.strip_prefix(ROOT).and_then(|n| n.parse().ok());
            if let Some(ObjectName::Head { device, seq }) = name {
                let newest = heads.entry(device).or_insert(seq);
                *newest = (*newest).max(seq);
            }
        }
        Ok(heads)
    }

    /// The seqs of the snapshots (`snapshots`) or segments stored for the device of `tag`.
    async fn listed_seqs(
        &self,
        tag: DeviceTag,
        snapshots: bool,
    ) -> Result<BTreeSet<u64>, StorageError> {
        let prefix = match snapshots {
            true => format!("{ROOT}{SNAP_PREFIX}{tag}/"),
            false => format!("{ROOT}{}", ObjectName::log_prefix(&tag)),
        };
        Ok(self
            .storage
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(
                |listed| match listed.path.strip_prefix(ROOT)?.parse().ok()? {
                    ObjectName::Snap { device, seq } if snapshots && device == tag => Some(seq),
                    ObjectName::Log { device, seq } if !snapshots && device == tag => Some(seq),
                    _ => None,
                },
            )
            .collect())
    }

    /// The bytes of `name`, no more than an object of its kind may have (a snapshot no more
    /// than a page reads); one that is larger is set aside.
    async fn read(
        &self,
        name: &ObjectName,
        head: u64,
        report: &mut Report,
    ) -> Result<Fetched<Vec<u8>>, StorageError> {
        let mut limit = name.kind().max_sealed() as u64;
        if matches!(name, ObjectName::Snap { .. }) {
            limit = limit.min(MAX_SNAPSHOT_BYTES);
        }
        match self.storage.get(&path(name), limit).await {
            Ok(bytes) => Ok(Fetched::Read(bytes)),
            Err(StorageError::NotFound) => Ok(Fetched::Missing),
            Err(StorageError::TooLarge { limit }) => {
                let refusal = Refusal::Damaged(format!(
                    "larger than this page reads of an object of its kind ({limit} bytes)"
                ));
                self.hold(name, head, reason(&refusal), report);
                Ok(Fetched::SetAside)
            }
            Err(error) => Err(error),
        }
    }

    /// Reads the snapshot each never-seen device's plan starts with, checks them together, and
    /// merges those that agree on the roster.
    async fn start_from_snapshots(
        &self,
        peers: &[Peer],
        report: &mut Report,
    ) -> Result<(), StorageError> {
        let held = self.held();
        let mut loaded = Vec::new();
        for peer in peers {
            let Some(seq) = plan::fetch(peer, &held, ROOT).leading_snapshot() else {
                continue;
            };
            let name = ObjectName::Snap {
                device: peer.tag,
                seq,
            };
            let Fetched::Read(bytes) = self.read(&name, peer.head, report).await? else {
                // Compacted away since it was listed, or too large: the segments are read.
                continue;
            };
            let opened = {
                let known = self.known.borrow();
                self.checker(&known)
                    .open_snapshot(&name, peer.tag, seq, &bytes)
            };
            match opened {
                Ok((snapshot, state, advanced)) => {
                    loaded.push((peer.tag, peer.head, snapshot.device, state, advanced));
                }
                Err(refusal) => self.hold(&name, peer.head, reason(&refusal), report),
            }
        }
        let writers: Vec<_> = loaded
            .iter()
            .map(|(_, _, device, state, _)| (*device, state))
            .collect();
        let contradicted: BTreeMap<usize, _> = ferry_read::check::contradicted(&writers)
            .into_iter()
            .map(|(i, device, keys)| (i, (device, keys.fingerprint())))
            .collect();
        for (i, (tag, head, device, mut state, advanced)) in loaded.into_iter().enumerate() {
            let name = ObjectName::Snap {
                device: tag,
                seq: advanced.seq,
            };
            if let Some((other, fingerprint)) = contradicted.get(&i) {
                let who = ferry_read::check::who(self.known.borrow().replica.state(), other);
                let refusal = Refusal::Forged(format!(
                    "it gives {who} another key ({fingerprint}) than that device's own snapshot \
                     registers"
                ));
                self.hold(&name, head, reason(&refusal), report);
                continue;
            }
            state.keep_writers_word(device);
            let mut known = self.known.borrow_mut();
            known.replica.merge(state);
            known.cursors.insert(tag, advanced);
            report.snapshots += 1;
        }
        Ok(())
    }

    /// Brings the device of `peer` up to its head, as far as what is stored allows.
    async fn catch_up(&self, mut peer: Peer, report: &mut Report) -> Result<(), StorageError> {
        let tag = peer.tag;
        // Snapshots were listed for a device never seen; for another, once it is stuck.
        let mut snapshots_listed = peer.applied == 0;
        'plans: for _ in 0..MAX_PLANS {
            let planned = plan::fetch(&peer, &self.held(), ROOT);
            for read in planned.reads {
                let stuck = match read {
                    Read::Snapshot(seq) => match self.read_snapshot(&peer, seq, report).await? {
                        Fetched::Read(advanced) => {
                            peer.applied = advanced;
                            false
                        }
                        Fetched::Missing => {
                            peer.snapshots.remove(&seq);
                            true
                        }
                        Fetched::SetAside => true,
                    },
                    Read::Segment(seq) => match self.read_segment(&peer, seq, report).await? {
                        Fetched::Read(Placed::Applied) => {
                            peer.applied = seq;
                            false
                        }
                        // Operations before it are not here yet: the next pass looks again.
                        Fetched::Read(Placed::Ahead) => break 'plans,
                        Fetched::Missing => {
                            peer.missing.insert(seq);
                            true
                        }
                        Fetched::SetAside => true,
                    },
                };
                if stuck {
                    if peer.stored.is_none() {
                        peer.stored = Some(self.listed_seqs(tag, false).await?);
                    }
                    if !snapshots_listed {
                        peer.snapshots = self.listed_seqs(tag, true).await?;
                        snapshots_listed = true;
                    }
                    continue 'plans;
                }
            }
            // Read to the head, or stopped short (`planned.stop`): the next pass goes on.
            break;
        }
        if self.cursor(tag).seq == 0 {
            // Nothing of this device could be read: its head is set aside until it moves.
            let head = ObjectName::Head {
                device: tag,
                seq: peer.head,
            };
            let said = "nothing of its device could be read (a stray or planted name, or a \
                        device whose first objects are gone); looked at again when its head moves";
            self.hold(&head, peer.head, said.to_owned(), report);
        }
        Ok(())
    }

    /// Reads, opens and merges the snapshot `seq` of `peer`'s device (one found past a gap in
    /// its segments): where its stream then stands.
    async fn read_snapshot(
        &self,
        peer: &Peer,
        seq: u64,
        report: &mut Report,
    ) -> Result<Fetched<u64>, StorageError> {
        let name = ObjectName::Snap {
            device: peer.tag,
            seq,
        };
        let bytes = match self.read(&name, peer.head, report).await? {
            Fetched::Read(bytes) => bytes,
            Fetched::Missing => return Ok(Fetched::Missing),
            Fetched::SetAside => return Ok(Fetched::SetAside),
        };
        let opened = {
            let known = self.known.borrow();
            self.checker(&known)
                .open_snapshot(&name, peer.tag, seq, &bytes)
        };
        match opened {
            Ok((snapshot, mut state, advanced)) => {
                state.keep_writers_word(snapshot.device);
                let mut known = self.known.borrow_mut();
                known.replica.merge(state);
                let cursor = known.cursors.entry(peer.tag).or_default();
                if advanced.seq > cursor.seq {
                    *cursor = advanced;
                }
                report.snapshots += 1;
                Ok(Fetched::Read(cursor.seq))
            }
            Err(refusal) => {
                self.hold(&name, peer.head, reason(&refusal), report);
                Ok(Fetched::SetAside)
            }
        }
    }

    /// Reads, opens, checks and applies the segment `seq` of `peer`'s device.
    async fn read_segment(
        &self,
        peer: &Peer,
        seq: u64,
        report: &mut Report,
    ) -> Result<Fetched<Placed>, StorageError> {
        let tag = peer.tag;
        let name = ObjectName::Log { device: tag, seq };
        let bytes = match self.read(&name, peer.head, report).await? {
            Fetched::Read(bytes) => bytes,
            Fetched::Missing => return Ok(Fetched::Missing),
            Fetched::SetAside => return Ok(Fetched::SetAside),
        };
        let cursor = self.cursor(tag);
        let opened = {
            let known = self.known.borrow();
            self.checker(&known)
                .open_segment(&name, &tag, cursor, &bytes)
        };
        let (segment, ops) = match opened {
            Ok(Some(opened)) => opened,
            Ok(None) => return Ok(Fetched::Read(Placed::Ahead)),
            Err(refusal) => {
                self.hold(&name, peer.head, reason(&refusal), report);
                return Ok(Fetched::SetAside);
            }
        };
        let last_op = (segment.first_op + segment.ops.len() as u64).saturating_sub(1);
        let mut known = self.known.borrow_mut();
        report.ops += ops.len() as u64;
        for op in ops {
            // In order and without gaps (checked): only a duplicate is refused.
            let _ = known.replica.apply(op);
        }
        known.cursors.insert(
            tag,
            Position {
                seq,
                ops: cursor.ops.max(last_op),
            },
        );
        report.segments += 1;
        Ok(Fetched::Read(Placed::Applied))
    }
}
