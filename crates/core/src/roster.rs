//! The device roster: which devices belong to the repository, the public keys each one signs
//! with, the name each gives itself, and who vouched for whom.
//!
//! A device registers itself with an operation in its own log ([`Action::RegisterDevice`]).
//! Readers look a writer's keys up here to check the signature of every segment, head and
//! snapshot it writes.
//!
//! **Names.** A device names itself: the synced setting `device/<its id>` ([`NAME_PREFIX`]),
//! written in its own log, signed like everything it writes. A write of that setting by any
//! other device is ignored where it is applied, on every replica alike ([`owner_of`]), so a
//! lost device cannot give itself another's name nor take one away; [`State::own_name`] is
//! the name a device gave itself. What other devices call it is their own, local business.
//!
//! **Attestations.** A device that pairs a new one attests the keys it received over the
//! pairing channel, as the synced setting `paired/<new device id>/<its own id>` = the keys in
//! hex ([`Replica::vouch`]); only the attesting device may write it. It never sets keys: those
//! come only from each device's own log, read in order, so what a reader accepts does not
//! depend on which device's log it reads first. An attestation counts only when its writer's
//! own membership does: [`State::memberships`] follows attestations from the repository's first
//! device (which nobody could add), so devices that joined with a stolen sync key and vouch for
//! each other stay unattested, and so does a device attested by one of them.
//!
//! [`Replica::vouch`]: crate::Replica::vouch
//! [`State::own_name`]: crate::State::own_name
//! [`State::memberships`]: crate::State::memberships
//!
//! One device id has one entry. Two registrations of the same id with different keys (one of
//! them by someone posing as that device) cannot both stand: the first, by hybrid logical
//! time, wins everywhere, whatever order they arrive in, and the sync engine refuses and
//! reports the other before it is ever applied.
//!
//! [`Action::RegisterDevice`]: crate::Action::RegisterDevice

use std::collections::BTreeMap;

use ferry_protocol::{DeviceId, DeviceKeys};
use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;

/// The synced setting under which a device attests the keys of another:
/// `paired/<device id>/<attesting device id>` (`paired/<device id>` alone before names and
/// attestations were each their writer's own).
pub const PAIRED_PREFIX: &str = "paired/";

/// The synced setting under which a device names itself: `device/<its id>`.
pub const NAME_PREFIX: &str = "device/";

/// The synced setting under which a device says it left the repository: `left/<its id>`.
pub const LEFT_PREFIX: &str = "left/";

/// The synced setting under which the device that made a new generation of the repository
/// records a device that generation removed: `removed/<device id>` = the generation's number
/// (SPEC §11). Only its creator's word counts (any device can write the setting, a lost one
/// too): the mark keeps the removed device out of every later rotation's recipients.
pub const REMOVED_PREFIX: &str = "removed/";

/// A removal as the roster records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// The device removed.
    pub device: DeviceId,
    /// The generation that removed it, by the writer's word.
    pub generation: u32,
    /// The device that wrote the mark.
    pub by: DeviceId,
}

/// The device whose word the setting `key` is, when only that device may write it: a device's
/// name and its leaving are its own, an attestation its attester's. Writes of it by any other device are
/// ignored.
pub fn owner_of(key: &str) -> Option<DeviceId> {
    if let Some(device) = key
        .strip_prefix(NAME_PREFIX)
        .or_else(|| key.strip_prefix(LEFT_PREFIX))
    {
        return device.parse().ok();
    }
    let (_, attester) = key.strip_prefix(PAIRED_PREFIX)?.split_once('/')?;
    attester.parse().ok()
}

/// The setting under which `by` attests `device`.
pub(crate) fn attestation_key(device: &DeviceId, by: &DeviceId) -> String {
    format!("{PAIRED_PREFIX}{device}/{by}")
}

/// A device's attestation of another's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// The device that attested it.
    pub by: DeviceId,
    /// When.
    pub at: Hlc,
}

/// Whether a device belongs, as the attestations a reader holds say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The repository's first device, which nobody could add.
    First,
    /// Attested by a device whose own membership holds: a chain back to the first device.
    Attested(Pairing),
    /// Attested only by devices whose own membership does not hold (the earliest of them).
    Unchained(Pairing),
    /// Attested by nobody: it joined with the sync key alone.
    Unattested,
}

impl Membership {
    /// Whether the chain of attestations back to the first device holds.
    pub fn holds(&self) -> bool {
        matches!(self, Membership::First | Membership::Attested(_))
    }
}

/// The setting value of an attestation: both public keys in hex, signing key first.
pub(crate) fn attestation(keys: &DeviceKeys) -> String {
    keys.to_hex()
}

/// One device in the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// The name the device gave itself when it registered.
    pub name: String,
    /// Its public keys.
    pub keys: DeviceKeys,
    /// When it was registered: `added.device` is the device that registered it (itself, or the
    /// device it was paired from).
    pub added: Hlc,
}

impl DeviceEntry {
    /// The device that registered it.
    pub fn added_by(&self) -> DeviceId {
        self.added.device
    }

    /// Whether `self` wins over `other` for the same device id: the earlier registration, and
    /// between equal times the smaller keys, so every replica keeps the same one.
    fn wins_over(&self, other: &DeviceEntry) -> bool {
        (self.added, self.keys) < (other.added, other.keys)
    }
}

/// Every registered device, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Roster(BTreeMap<DeviceId, DeviceEntry>);

impl Roster {
    /// Adds `entry` for `device`, unless an entry that wins over it is there.
    pub(crate) fn register(&mut self, device: DeviceId, entry: DeviceEntry) {
        match self.0.get(&device) {
            Some(held) if !entry.wins_over(held) => {}
            _ => {
                self.0.insert(device, entry);
            }
        }
    }

    pub(crate) fn merge(&mut self, other: Roster) {
        for (device, entry) in other.0 {
            self.register(device, entry);
        }
    }

    pub(crate) fn get(&self, device: &DeviceId) -> Option<&DeviceEntry> {
        self.0.get(device)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&DeviceId, &DeviceEntry)> {
        self.0.iter()
    }
}
