//! The replicated state, and how operations and other states merge into it.
//!
//! Every part is a CRDT, so applying the same operations in any cross-device order, any number of
//! times, or merging states that hold them, gives the same state, down to its encoding:
//!
//! - the version vector (`crdts::VClock`) counts each device's operations applied; it makes
//!   application idempotent (an operation at or below it is a duplicate) and refuses gaps;
//! - a clip's content is immutable; its first and last copy times are min and max registers; its
//!   pinned, favourite and trash flags are last-writer-wins registers (`crdts::LWWReg`) marked by
//!   the hybrid logical time, unique per operation; a purge is a max register that hides the clip
//!   until a later copy of the same content;
//! - collection members are an observed-remove set (`crdts::Orswot`): an add concurrent with a
//!   remove wins, and removes only remove what their writer had seen; names are LWW registers;
//! - aliases and settings are multi-value registers (`crdts::MVReg`) so concurrent writes are all
//!   kept, then shown by a [`Strategy`](crate::Strategy);
//! - the device roster keeps one entry per device id, the earliest registration (see
//!   [`roster`](crate::roster)).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};

use serde::{Deserialize, Serialize};

use crdts::{CmRDT, CvRDT, Dot, LWWReg, VClock, mvreg};
use ferry_protocol::{DeviceId, DeviceKeys, FORMAT_VERSION};
use hashbrown::HashTable;

use crate::canonical::{Members, Register};
use crate::clip::{ClipContent, ClipId, CollectionId};
use crate::error::{CoreError, decode_exact};
use crate::history::History;
use crate::hlc::Hlc;
use crate::op::{Action, Op, Versioned};
use crate::roster::{
    DeviceEntry, Membership, NAME_PREFIX, PAIRED_PREFIX, Pairing, Roster, attestation, owner_of,
};

/// What became of an applied operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It was new and is now part of the state.
    New,
    /// It was already part of the state; nothing changed.
    Duplicate,
}

/// One clip's replicated record. Times that have not happened are [`Hlc::ZERO`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClipEntry {
    /// The content, present while the clip is live (copied after its last purge).
    pub(crate) content: Option<ClipContent>,
    /// The earliest copy: its device is the clip's source.
    pub(crate) first: Hlc,
    /// The latest copy: the history is ordered by it.
    pub(crate) last_used: Hlc,
    /// Flags and purges, which most clips never get: boxed, so a plain clip pays 8 bytes.
    pub(crate) marks: Option<Box<Marks>>,
}

/// A clip's flags and purge time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Marks {
    pub(crate) pinned: LWWReg<bool, Hlc>,
    pub(crate) favourite: LWWReg<bool, Hlc>,
    /// Deletes (`true`) and restores (`false`). A copy later than the winner also takes the clip
    /// out of the trash; see [`ClipEntry::trashed_at`].
    pub(crate) trashed: LWWReg<bool, Hlc>,
    /// The latest purge.
    pub(crate) purged: Hlc,
}

impl Default for Marks {
    fn default() -> Self {
        let flag = LWWReg {
            val: false,
            marker: Hlc::ZERO,
        };
        Marks {
            pinned: flag.clone(),
            favourite: flag.clone(),
            trashed: flag,
            purged: Hlc::ZERO,
        }
    }
}

impl Marks {
    fn merge(&mut self, other: Marks) {
        self.pinned.merge(other.pinned);
        self.favourite.merge(other.favourite);
        self.trashed.merge(other.trashed);
        self.purged = self.purged.max(other.purged);
    }
}

impl Default for ClipEntry {
    fn default() -> Self {
        ClipEntry {
            content: None,
            first: Hlc::ZERO,
            last_used: Hlc::ZERO,
            marks: None,
        }
    }
}

impl ClipEntry {
    fn purged(&self) -> Hlc {
        self.marks.as_ref().map_or(Hlc::ZERO, |m| m.purged)
    }

    pub(crate) fn pinned(&self) -> bool {
        self.marks.as_ref().is_some_and(|m| m.pinned.val)
    }

    pub(crate) fn favourite(&self) -> bool {
        self.marks.as_ref().is_some_and(|m| m.favourite.val)
    }

    /// When it went to the trash, while it is there: the last delete or restore was a delete,
    /// and no copy came after it.
    pub(crate) fn trashed_at(&self) -> Option<Hlc> {
        let trashed = &self.marks.as_ref()?.trashed;
        (trashed.val && trashed.marker > self.last_used).then_some(trashed.marker)
    }

    /// Copied after its latest purge.
    pub(crate) fn is_live(&self) -> bool {
        self.last_used > self.purged()
    }

    fn marks_mut(&mut self) -> &mut Marks {
        self.marks.get_or_insert_with(Default::default)
    }

    /// Content is kept exactly while the clip is live.
    fn settle(&mut self) {
        if !self.is_live() {
            self.content = None;
        }
    }

    fn copy(&mut self, hlc: Hlc, content: ClipContent) {
        self.first = earliest(self.first, hlc);
        self.last_used = self.last_used.max(hlc);
        if self.content.is_none() {
            self.content = Some(content);
        }
        self.settle();
    }

    fn purge(&mut self, hlc: Hlc) {
        let marks = self.marks_mut();
        marks.purged = marks.purged.max(hlc);
        self.settle();
    }

    fn merge(&mut self, other: ClipEntry) {
        self.first = earliest(self.first, other.first);
        self.last_used = self.last_used.max(other.last_used);
        if let Some(marks) = other.marks {
            self.marks_mut().merge(*marks);
        }
        if self.content.is_none() {
            self.content = other.content;
        }
        self.settle();
    }
}

/// The earlier of two times, where [`Hlc::ZERO`] means "not yet".
fn earliest(a: Hlc, b: Hlc) -> Hlc {
    match (a == Hlc::ZERO, b == Hlc::ZERO) {
        (true, _) => b,
        (_, true) => a,
        _ => a.min(b),
    }
}

/// A register write as the operation carrying it made it: its value is stamped with the
/// operation's time and device, whatever the write itself claims, so that a value is always
/// its writer's (a segment's operations are checked to be its signer's).
fn written_at(op: mvreg::Op<Versioned, DeviceId>, hlc: Hlc) -> mvreg::Op<Versioned, DeviceId> {
    let mvreg::Op::Put { clock, val } = op;
    mvreg::Op::Put {
        clock,
        val: Versioned { hlc, ..val },
    }
}

fn min_opt(a: Option<Hlc>, b: Option<Hlc>) -> Option<Hlc> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Every clip record, kept in a vector in arrival order and found through a hash index; sorted
/// by id only to encode.
///
/// The index holds only slots (4 bytes a clip, not the 20 of an id-to-slot map): the ids live
/// once, in the vector, and the index compares through it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clips {
    index: HashTable<u32>,
    hasher: RandomState,
    entries: Vec<(ClipId, ClipEntry)>,
}

impl Clips {
    fn with_entries(entries: Vec<(ClipId, ClipEntry)>) -> Clips {
        let hasher = RandomState::new();
        let mut index = HashTable::with_capacity(entries.len());
        for (slot, (id, _)) in entries.iter().enumerate() {
            index.insert_unique(hasher.hash_one(id), slot as u32, |&slot| {
                hasher.hash_one(entries[slot as usize].0)
            });
        }
        Clips {
            index,
            hasher,
            entries,
        }
    }

    fn find(&self, id: &ClipId) -> Option<u32> {
        self.index
            .find(self.hasher.hash_one(id), |&slot| {
                self.entries[slot as usize].0 == *id
            })
            .copied()
    }

    pub(crate) fn get(&self, id: &ClipId) -> Option<&ClipEntry> {
        self.find(id).map(|slot| &self.entries[slot as usize].1)
    }

    pub(crate) fn at(&self, slot: u32) -> (ClipId, &ClipEntry) {
        let (id, entry) = &self.entries[slot as usize];
        (*id, entry)
    }

    /// The slot of `id`, with an empty record if it is new.
    fn slot(&mut self, id: ClipId) -> u32 {
        if let Some(slot) = self.find(&id) {
            return slot;
        }
        let Clips {
            index,
            hasher,
            entries,
        } = self;
        let slot = entries.len() as u32;
        entries.push((id, ClipEntry::default()));
        index.insert_unique(hasher.hash_one(id), slot, |&slot| {
            hasher.hash_one(entries[slot as usize].0)
        });
        slot
    }

    fn entry_mut(&mut self, slot: u32) -> &mut ClipEntry {
        &mut self.entries[slot as usize].1
    }

    /// Every record, by id.
    pub(crate) fn sorted(&self) -> Vec<(ClipId, &ClipEntry)> {
        let mut all: Vec<_> = self
            .entries
            .iter()
            .map(|(id, entry)| (*id, entry))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }
}

impl PartialEq for Clips {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len() && self.sorted() == other.sorted()
    }
}

impl Serialize for Clips {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.sorted())
    }
}

impl<'de> Deserialize<'de> for Clips {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClipsVisitor)
    }
}

/// The most clip records reserved ahead of decoding them.
const MAX_RESERVED_CLIPS: usize = 1 << 21;

/// Reads the map of clips straight into the slots, with no map in between: a state of 100k
/// clips decodes into what it keeps, not twice that with half left as heap fragments.
struct ClipsVisitor;

impl<'de> serde::de::Visitor<'de> for ClipsVisitor {
    type Value = Clips;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map of clips")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Clips, A::Error> {
        // Reserved at the declared length, so a large state does not leave the halves of a
        // growing vector behind; capped, so a hostile length only reserves address space that
        // is never touched.
        let declared = map.size_hint().unwrap_or(0).min(MAX_RESERVED_CLIPS);
        let mut entries: Vec<(ClipId, ClipEntry)> = Vec::with_capacity(declared);
        let mut sorted = true;
        while let Some((id, entry)) = map.next_entry::<ClipId, ClipEntry>()? {
            sorted &= entries.last().is_none_or(|(last, _)| *last < id);
            entries.push((id, entry));
        }
        if !sorted {
            // Not the canonical order: sort, and keep the last of repeated ids, as a map would.
            entries.sort_by_key(|(id, _)| *id);
            entries.reverse();
            entries.dedup_by_key(|(id, _)| *id);
            entries.reverse();
        }
        entries.shrink_to_fit();
        Ok(Clips::with_entries(entries))
    }
}

/// One collection's replicated record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CollectionEntry {
    pub(crate) created: Option<Hlc>,
    pub(crate) name: LWWReg<String, Hlc>,
    pub(crate) members: Members,
    pub(crate) deleted: Option<Hlc>,
}

impl Default for CollectionEntry {
    fn default() -> Self {
        CollectionEntry {
            created: None,
            name: LWWReg {
                val: String::new(),
                marker: Hlc::ZERO,
            },
            members: Members::default(),
            deleted: None,
        }
    }
}

impl CollectionEntry {
    pub(crate) fn is_visible(&self) -> bool {
        self.created.is_some() && self.deleted.is_none()
    }

    fn merge(&mut self, other: CollectionEntry) {
        self.created = min_opt(self.created, other.created);
        self.name.merge(other.name);
        self.members.merge(other.members);
        self.deleted = self.deleted.max(other.deleted);
    }
}

/// The replicated fields: exactly what the canonical encoding holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) seen: VClock<DeviceId>,
    pub(crate) latest: Hlc,
    pub(crate) clips: Clips,
    pub(crate) collections: BTreeMap<CollectionId, CollectionEntry>,
    pub(crate) aliases: BTreeMap<String, Register>,
    pub(crate) settings: BTreeMap<String, Register>,
    /// Added in format version 2.
    pub(crate) devices: Roster,
}

/// The replicated fields as format version 1 encoded them: before the roster.
#[derive(Deserialize)]
struct DataV1 {
    seen: VClock<DeviceId>,
    latest: Hlc,
    clips: Clips,
    collections: BTreeMap<CollectionId, CollectionEntry>,
    aliases: BTreeMap<String, Register>,
    settings: BTreeMap<String, Register>,
}

impl From<DataV1> for Data {
    fn from(old: DataV1) -> Data {
        Data {
            seen: old.seen,
            latest: old.latest,
            clips: old.clips,
            collections: old.collections,
            aliases: old.aliases,
            settings: old.settings,
            devices: Roster::default(),
        }
    }
}

/// The whole replicated state of one repository, as one device knows it.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub(crate) data: Data,
    /// Slots of the clips with content, by last use: derived, rebuilt on decode.
    pub(crate) history: History,
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
    }
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        State::default()
    }

    /// How many operations of `device` this state holds (its counter of the last one).
    pub fn seen(&self, device: &DeviceId) -> u64 {
        self.data.seen.get(device)
    }

    /// The version vector: for every device, the counter of its last operation held.
    pub fn version_vector(&self) -> impl Iterator<Item = (DeviceId, u64)> + '_ {
        self.data.seen.dots.iter().map(|(d, c)| (*d, *c))
    }

    /// The latest time stamp of any operation held.
    pub fn latest(&self) -> Hlc {
        self.data.latest
    }

    /// Applies one operation. Operations of one device must come in counter order: one that
    /// skips ahead is refused with [`CoreError::Gap`] and changes nothing; one already held is
    /// a [`Applied::Duplicate`] and changes nothing.
    pub fn apply(&mut self, op: Op) -> Result<Applied, CoreError> {
        let device = op.device();
        let Some(expected) = self.data.seen.get(&device).checked_add(1) else {
            return Ok(Applied::Duplicate);
        };
        if op.counter < expected {
            return Ok(Applied::Duplicate);
        }
        if op.counter > expected {
            return Err(CoreError::Gap {
                device,
                expected,
                got: op.counter,
            });
        }
        self.data.seen.apply(Dot::new(device, op.counter));
        self.data.latest = self.data.latest.max(op.hlc);
        let hlc = op.hlc;
        match op.action {
            Action::Copy { clip, content } => self.with_clip(clip, |c| c.copy(hlc, content)),
            Action::SetPinned { clip, pinned } => {
                self.with_clip(clip, |c| c.marks_mut().pinned.update(pinned, hlc))
            }
            Action::SetFavourite { clip, favourite } => {
                self.with_clip(clip, |c| c.marks_mut().favourite.update(favourite, hlc))
            }
            Action::Delete { clip } => {
                self.with_clip(clip, |c| c.marks_mut().trashed.update(true, hlc))
            }
            Action::Restore { clip } => {
                self.with_clip(clip, |c| c.marks_mut().trashed.update(false, hlc))
            }
            Action::Purge { clip } => self.with_clip(clip, |c| c.purge(hlc)),
            Action::CollectionCreate { collection, name } => {
                let entry = self.data.collections.entry(collection).or_default();
                entry.created = min_opt(entry.created, Some(hlc));
                entry.name.update(name, hlc);
            }
            Action::CollectionRename { collection, name } => {
                let entry = self.data.collections.entry(collection).or_default();
                entry.name.update(name, hlc);
            }
            Action::CollectionDelete { collection } => {
                let entry = self.data.collections.entry(collection).or_default();
                entry.deleted = entry.deleted.max(Some(hlc));
            }
            Action::CollectionMembers { collection, op } => {
                let entry = self.data.collections.entry(collection).or_default();
                entry.members.apply(op);
            }
            Action::Alias { name, op } => self
                .data
                .aliases
                .entry(name)
                .or_default()
                .apply(written_at(op, hlc)),
            // A device's name and its attestations are its own word: anyone else's is ignored.
            Action::Setting { key, .. } if owner_of(&key).is_some_and(|owner| owner != device) => {}
            Action::Setting { key, op } => self
                .data
                .settings
                .entry(key)
                .or_default()
                .apply(written_at(op, hlc)),
            Action::RegisterDevice { device, name, keys } => {
                self.data.devices.register(
                    device,
                    DeviceEntry {
                        name,
                        keys,
                        added: hlc,
                    },
                );
            }
        }
        Ok(Applied::New)
    }

    /// Merges another state into this one (the snapshot path): the result is the state holding
    /// the operations of both.
    pub fn merge(&mut self, other: State) {
        let data = other.data;
        self.data.seen.merge(data.seen);
        self.data.latest = self.data.latest.max(data.latest);
        for (id, entry) in data.clips.entries {
            self.with_clip(id, |c| c.merge(entry));
        }
        for (id, entry) in data.collections {
            self.data.collections.entry(id).or_default().merge(entry);
        }
        for (name, register) in data.aliases {
            self.data.aliases.entry(name).or_default().merge(register);
        }
        for (key, mut register) in data.settings {
            if let Some(owner) = owner_of(&key) {
                register.retain(|value| value.hlc.device == owner);
            }
            self.data.settings.entry(key).or_default().merge(register);
        }
        self.data.devices.merge(data.devices);
    }

    /// Keeps, of the names and attestations in this state (a snapshot `writer` signed), only
    /// `writer`'s own: a snapshot is its writer's word, and only for what is its to say.
    /// Everyone else's come from their own segments and snapshots.
    pub fn keep_writers_word(&mut self, writer: DeviceId) {
        self.data
            .settings
            .retain(|key, register| match owner_of(key) {
                Some(owner) if owner != writer => false,
                Some(owner) => {
                    register.retain(|value| value.hlc.device == owner);
                    true
                }
                // Attestations as they were first written, by anyone: the writer's only.
                None if key.starts_with(PAIRED_PREFIX) => {
                    register.retain(|value| value.hlc.device == writer);
                    true
                }
                None => true,
            });
    }

    /// The roster entry of `device`, if it is registered.
    pub fn device(&self, device: &DeviceId) -> Option<&DeviceEntry> {
        self.data.devices.get(device)
    }

    /// The name `device` gave itself: its newest own `device/<id>` setting, else the name it
    /// registered with (see [`crate::roster`]); `None` for an unregistered device that never
    /// named itself, or an empty name.
    pub fn own_name(&self, device: &DeviceId) -> Option<String> {
        let named = self
            .data
            .settings
            .get(&format!("{NAME_PREFIX}{device}"))
            .and_then(|register| register.latest_where(|v| v.hlc.device == *device))
            .and_then(|v| v.value);
        named
            .or_else(|| self.device(device).map(|entry| entry.name.clone()))
            .filter(|name| !name.is_empty())
    }

    /// The removals recorded in the roster (see [`REMOVED_PREFIX`]
    /// (crate::roster::REMOVED_PREFIX)), by registered devices: which device, which generation
    /// removed it by the writer's word, and the writer. Only the generation's own creator's
    /// word counts, which only the sync engine can tell (it knows who made each generation).
    pub fn removals(&self) -> Vec<crate::roster::Removal> {
        let prefix = crate::roster::REMOVED_PREFIX;
        let mut found = Vec::new();
        for (key, register) in self
            .data
            .settings
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            let Ok(device) = key[prefix.len()..].parse::<DeviceId>() else {
                continue;
            };
            for value in register.values() {
                let generation = value.value.as_deref().and_then(|v| v.parse::<u32>().ok());
                if let Some(generation) = generation
                    && self.device(&value.hlc.device).is_some()
                {
                    found.push(crate::roster::Removal {
                        device,
                        generation,
                        by: value.hlc.device,
                    });
                }
            }
        }
        found
    }

    /// The public keys of every registered device, and of each device a registered device
    /// attested that has not registered yet (it is joining): who may connect on the LAN. A
    /// joining device attested with different keys by different devices is left out until it
    /// registers.
    pub fn known_keys(&self) -> BTreeMap<DeviceId, DeviceKeys> {
        let mut known: BTreeMap<DeviceId, DeviceKeys> = self
            .devices()
            .map(|(device, entry)| (*device, entry.keys))
            .collect();
        let mut joining: BTreeMap<DeviceId, Option<DeviceKeys>> = BTreeMap::new();
        let attested = self
            .data
            .settings
            .range(PAIRED_PREFIX.to_owned()..)
            .take_while(|(key, _)| key.starts_with(PAIRED_PREFIX));
        for (key, register) in attested {
            let Some((subject, by)) = key[PAIRED_PREFIX.len()..].split_once('/') else {
                continue;
            };
            let (Ok(subject), Ok(by)) = (subject.parse::<DeviceId>(), by.parse::<DeviceId>())
            else {
                continue;
            };
            if known.contains_key(&subject) || self.device(&by).is_none() {
                continue;
            }
            let keys = register
                .latest_where(|v| v.hlc.device == by)
                .and_then(|v| v.value)
                .and_then(|value| DeviceKeys::from_hex(&value).ok());
            if let Some(keys) = keys {
                joining
                    .entry(subject)
                    .and_modify(|agreed| {
                        if *agreed != Some(keys) {
                            *agreed = None;
                        }
                    })
                    .or_insert(Some(keys));
            }
        }
        known.extend(
            joining
                .into_iter()
                .filter_map(|(device, keys)| Some((device, keys?))),
        );
        known
    }

    /// The attestations of `device`'s registered keys by other registered devices, earliest
    /// first.
    fn attestations(&self, device: &DeviceId) -> Vec<Pairing> {
        let Some(entry) = self.device(device) else {
            return Vec::new();
        };
        let expected = attestation(&entry.keys);
        let own = format!("{PAIRED_PREFIX}{device}");
        let mut found: Vec<Pairing> = self
            .data
            .settings
            .range(own.clone()..)
            .take_while(|(key, _)| key.starts_with(&own))
            // `paired/<id>` as it was first written (by anyone), or `paired/<id>/<by>`.
            .filter(|(key, _)| key.len() == own.len() || key[own.len()..].starts_with('/'))
            .flat_map(|(key, register)| {
                let owner = owner_of(key);
                register
                    .values()
                    .into_iter()
                    .filter(move |v| owner.is_none_or(|owner| owner == v.hlc.device))
            })
            .filter(|v| v.value.as_deref() == Some(expected.as_str()))
            .filter(|v| v.hlc.device != *device && self.device(&v.hlc.device).is_some())
            .map(|v| Pairing {
                by: v.hlc.device,
                at: v.hlc,
            })
            .collect();
        found.sort_by_key(|pairing| pairing.at);
        found.dedup_by_key(|pairing| pairing.by);
        found
    }

    /// Each registered device's membership, seen from `first`, the repository's first device:
    /// attestations count only along a chain from it (see [`crate::roster`]).
    pub fn memberships(&self, first: Option<DeviceId>) -> BTreeMap<DeviceId, Membership> {
        self.memberships_without(first, &BTreeSet::new())
    }

    /// Each registered device's membership as it stands once the devices `removed` are taken
    /// out: they are no longer members, and their attestations no longer count, so a device
    /// that held only through one of them no longer holds. The first device's are the
    /// exception: they are the root of every chain, and nothing tells the ones it made before
    /// it was lost from the ones it made after.
    pub fn memberships_without(
        &self,
        first: Option<DeviceId>,
        removed: &BTreeSet<DeviceId>,
    ) -> BTreeMap<DeviceId, Membership> {
        let mut holds = self.chain(first, removed);
        for device in removed {
            if let Some(membership) = holds.get_mut(device) {
                *membership = Membership::Unattested;
            }
        }
        holds
    }

    fn chain(
        &self,
        first: Option<DeviceId>,
        removed: &BTreeSet<DeviceId>,
    ) -> BTreeMap<DeviceId, Membership> {
        let attested: BTreeMap<DeviceId, Vec<Pairing>> = self
            .devices()
            .map(|(id, _)| {
                let mut pairings = self.attestations(id);
                pairings
                    .retain(|pairing| Some(pairing.by) == first || !removed.contains(&pairing.by));
                (*id, pairings)
            })
            .collect();
        let mut holds: BTreeMap<DeviceId, Membership> = BTreeMap::new();
        if let Some(first) = first.filter(|first| self.device(first).is_some()) {
            holds.insert(first, Membership::First);
        }
        // Each pass adds the devices attested by one that holds; a chain is at most as long
        // as the roster.
        loop {
            let mut added = false;
            for (device, pairings) in &attested {
                if holds.contains_key(device) {
                    continue;
                }
                if let Some(pairing) = pairings
                    .iter()
                    .find(|p| holds.get(&p.by).is_some_and(Membership::holds))
                {
                    holds.insert(*device, Membership::Attested(pairing.clone()));
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
        for (device, pairings) in attested {
            holds
                .entry(device)
                .or_insert_with(|| match pairings.first() {
                    Some(pairing) => Membership::Unchained(pairing.clone()),
                    None => Membership::Unattested,
                });
        }
        holds
    }

    /// Every registered device, by id.
    pub fn devices(&self) -> impl Iterator<Item = (&DeviceId, &DeviceEntry)> {
        self.data.devices.iter()
    }

    /// The canonical encoding: equal states give equal bytes. This is what a snapshot carries.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.data).expect("postcard encodes the state")
    }

    /// Reads a state written by [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<State, CoreError> {
        State::decode_format(bytes, FORMAT_VERSION)
    }

    /// Reads a state encoded in format version `format` (1 had no roster); a version this
    /// build does not know is refused.
    pub fn decode_format(bytes: &[u8], format: u8) -> Result<State, CoreError> {
        let data: Data = match format {
            1 => decode_exact::<DataV1>("state", bytes)?.into(),
            FORMAT_VERSION => decode_exact("state", bytes)?,
            _ => return Err(CoreError::UnknownFormat { format }),
        };
        let history = History::build(
            data.clips
                .entries
                .iter()
                .enumerate()
                .filter(|(_, (_, c))| c.content.is_some())
                .map(|(slot, (_, c))| (c.last_used, slot as u32)),
        );
        Ok(State { data, history })
    }

    /// Changes one clip, keeping the history index in step.
    fn with_clip(&mut self, id: ClipId, change: impl FnOnce(&mut ClipEntry)) {
        let slot = self.data.clips.slot(id);
        let entry = self.data.clips.entry_mut(slot);
        let key = |c: &ClipEntry| c.content.is_some().then_some((c.last_used, slot));
        let before = key(entry);
        change(entry);
        let after = key(entry);
        if before != after {
            if let Some((at, slot)) = before {
                self.history.remove(at, slot);
            }
            if let Some((at, slot)) = after {
                self.history.insert(at, slot);
            }
        }
    }
}
