//! A replica: one device's state, and the operations it makes.
//!
//! Every change a person makes goes through a method here that stamps a new operation with the
//! device's next counter and a fresh hybrid logical time, applies it to the local state at once,
//! and returns it for the sync engine to record and upload. Operations from elsewhere come in
//! through [`Replica::apply`] and snapshots through [`Replica::merge`]; both move the clock so that
//! later local operations sort after everything seen.

use std::collections::BTreeMap;

use crdts::{MVReg, Orswot, mvreg};
use ferry_protocol::{DeviceId, DeviceKeys, NamesKey};

use crate::canonical::Register;
use crate::clip::{ClipContent, ClipId, CollectionId};
use crate::error::CoreError;
use crate::hlc::{Hlc, HlcClock};
use crate::op::{Action, Op, Versioned};
use crate::retention::Retention;
use crate::state::{Applied, State};

/// One device's view of the replicated state.
#[derive(Debug, Clone)]
pub struct Replica {
    clock: HlcClock,
    state: State,
}

impl Replica {
    /// A new device with an empty state.
    pub fn new(device: DeviceId) -> Self {
        Replica::with_state(device, State::new())
    }

    /// A device resuming with a state it kept (or loaded from a snapshot).
    pub fn with_state(device: DeviceId, state: State) -> Self {
        let mut clock = HlcClock::new(device);
        clock.observe(state.latest());
        Replica { clock, state }
    }

    /// This device.
    pub fn device(&self) -> DeviceId {
        self.clock.device()
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Gives the state up.
    pub fn into_state(self) -> State {
        self.state
    }

    /// Applies an operation from another device (or one of this device's own, replayed).
    pub fn apply(&mut self, op: Op) -> Result<Applied, CoreError> {
        let stamp = op.hlc;
        let applied = self.state.apply(op)?;
        self.clock.observe(stamp);
        Ok(applied)
    }

    /// Merges a state from elsewhere (a snapshot).
    pub fn merge(&mut self, other: State) {
        self.clock.observe(other.latest());
        self.state.merge(other);
    }

    fn make(&mut self, now_ms: u64, action: impl FnOnce(&State, Hlc) -> Action) -> Op {
        let hlc = self.clock.tick(now_ms);
        let op = Op {
            counter: self.state.seen(&self.device()).saturating_add(1),
            hlc,
            action: action(&self.state, hlc),
        };
        let applied = self.state.apply(op.clone());
        debug_assert_eq!(applied, Ok(Applied::New));
        op
    }

    /// Records a copy of `content`: a new clip, or the same content again moved to the top.
    pub fn copy(&mut self, names: &NamesKey, content: ClipContent, now_ms: u64) -> Op {
        let clip = ClipId::for_content(names, &content);
        self.copy_as(clip, content, now_ms)
    }

    /// [`copy`](Self::copy) with an id computed elsewhere.
    pub fn copy_as(&mut self, clip: ClipId, content: ClipContent, now_ms: u64) -> Op {
        self.make(now_ms, |_, _| Action::Copy { clip, content })
    }

    /// Registers this device in the roster with its public keys and name.
    pub fn register(&mut self, name: String, keys: DeviceKeys, now_ms: u64) -> Op {
        let device = self.device();
        self.make(now_ms, |_, _| Action::RegisterDevice { device, name, keys })
    }

    /// Attests that `device` has the public `keys` (this device paired it and received them,
    /// or its user compared their fingerprint); see [`crate::roster`].
    pub fn vouch(&mut self, device: DeviceId, keys: &DeviceKeys, now_ms: u64) -> Op {
        let key = crate::roster::attestation_key(&device, &self.device());
        self.set_setting(key, Some(crate::roster::attestation(keys)), now_ms)
    }

    /// Records that the repository's generation `generation` removed `device` (see
    /// [`crate::roster::REMOVED_PREFIX`]).
    pub fn mark_removed(&mut self, device: DeviceId, generation: u32, now_ms: u64) -> Op {
        let key = format!("{}{device}", crate::roster::REMOVED_PREFIX);
        self.set_setting(key, Some(generation.to_string()), now_ms)
    }

    /// Pins or unpins a clip.
    pub fn set_pinned(&mut self, clip: ClipId, pinned: bool, now_ms: u64) -> Op {
        self.make(now_ms, |_, _| Action::SetPinned { clip, pinned })
    }

    /// Marks or unmarks a favourite.
    pub fn set_favourite(&mut self, clip: ClipId, favourite: bool, now_ms: u64) -> Op {
        self.make(now_ms, |_, _| Action::SetFavourite { clip, favourite })
    }

    /// Moves a clip to the trash.
    pub fn delete(&mut self, clip: ClipId, now_ms: u64) -> Op {
        self.make(now_ms, |_, _| Action::Delete { clip })
    }

    /// Takes a clip out of the trash.
    pub fn restore(&mut self, clip: ClipId, now_ms: u64) -> Op {
        self.make(now_ms, |_, _| Action::Restore { clip })
    }

    /// Purges a clip's content.
    pub fn purge(&mut self, clip: ClipId, now_ms: u64) -> Op {
        self.make(now_ms, |_, _| Action::Purge { clip })
    }

    /// Creates a collection; its id is made from this device and the operation's counter, so
    /// it is unique without a random number generator.
    pub fn create_collection(&mut self, name: String, now_ms: u64) -> (CollectionId, Op) {
        let counter = self.state.seen(&self.device()).saturating_add(1);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.device().0[..8]);
        id[8..].copy_from_slice(&counter.to_be_bytes());
        let collection = CollectionId(id);
        let op = self.make(now_ms, |_, _| Action::CollectionCreate { collection, name });
        (collection, op)
    }

    /// Renames a collection.
    pub fn rename_collection(&mut self, collection: CollectionId, name: String, now_ms: u64) -> Op {
        self.make(now_ms, |_, _| Action::CollectionRename { collection, name })
    }

    /// Deletes a collection (its clips stay in the history).
    pub fn delete_collection(&mut self, collection: CollectionId, now_ms: u64) -> Op {
        self.make(now_ms, |_, _| Action::CollectionDelete { collection })
    }

    /// Adds a clip to a collection.
    pub fn add_to_collection(&mut self, collection: CollectionId, clip: ClipId, now_ms: u64) -> Op {
        let device = self.device();
        self.make(now_ms, |state, _| {
            let op = state.with_members(&collection, |members| {
                members.add(clip, members.read_ctx().derive_add_ctx(device))
            });
            Action::CollectionMembers { collection, op }
        })
    }

    /// Removes a clip from a collection (what this device has seen of it).
    pub fn remove_from_collection(
        &mut self,
        collection: CollectionId,
        clip: ClipId,
        now_ms: u64,
    ) -> Op {
        self.make(now_ms, |state, _| {
            let op = state.with_members(&collection, |members| {
                members.rm(clip, members.contains(&clip).derive_rm_ctx())
            });
            Action::CollectionMembers { collection, op }
        })
    }

    /// Sets (`Some`) or deletes (`None`) an alias.
    pub fn set_alias(&mut self, name: String, value: Option<String>, now_ms: u64) -> Op {
        self.write_register(
            name,
            value,
            now_ms,
            |s| &s.data.aliases,
            |name, op| Action::Alias { name, op },
        )
    }

    /// Sets (`Some`) or deletes (`None`) a synced setting.
    pub fn set_setting(&mut self, key: String, value: Option<String>, now_ms: u64) -> Op {
        self.write_register(
            key,
            value,
            now_ms,
            |s| &s.data.settings,
            |key, op| Action::Setting { key, op },
        )
    }

    /// Writes `value` to the register under `key` in the map `registers` picks from the state,
    /// as the operation `action` makes.
    fn write_register(
        &mut self,
        key: String,
        value: Option<String>,
        now_ms: u64,
        registers: fn(&State) -> &BTreeMap<String, Register>,
        action: fn(String, mvreg::Op<Versioned, DeviceId>) -> Action,
    ) -> Op {
        let device = self.device();
        self.make(now_ms, |state, hlc| {
            let empty = MVReg::new();
            let register = registers(state).get(&key).map_or(&empty, |r| &r.0);
            let ctx = register.read_ctx().derive_add_ctx(device);
            let op = register.write(Versioned { value, hlc }, ctx);
            action(key, op)
        })
    }

    /// Purges what the retention policy says is due, as operations.
    pub fn retention(&mut self, policy: &Retention, now_ms: u64) -> Vec<Op> {
        let due = self.state.due_for_purge(policy, now_ms);
        due.into_iter()
            .map(|clip| self.purge(clip, now_ms))
            .collect()
    }
}

impl State {
    /// Calls `f` with a collection's member set (an empty one if the collection is unknown).
    fn with_members<R>(
        &self,
        collection: &CollectionId,
        f: impl FnOnce(&Orswot<ClipId, DeviceId>) -> R,
    ) -> R {
        match self.data.collections.get(collection) {
            Some(entry) => f(&entry.members.0),
            None => f(&Orswot::new()),
        }
    }
}
