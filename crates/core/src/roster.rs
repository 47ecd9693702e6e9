//! The device roster: which devices belong to the repository, and the public keys each one
//! signs with.
//!
//! A device registers itself with an operation in its own log ([`Action::RegisterDevice`]).
//! Readers look a writer's keys up here to check the signature of every segment, head and
//! snapshot it writes.
//!
//! A device that pairs a new one attests the keys it received over the pairing channel, as
//! the synced setting `paired/<new device id>` = the keys in hex ([`Replica::vouch`]). The
//! attestation is signed like everything its writer writes, so "paired by laptop" cannot be
//! forged without laptop's key. It never sets keys: those come only from each device's own
//! log, read in order, so what a reader accepts does not depend on which device's log it
//! reads first. [`State::paired_by`] shows an attestation only where its keys are the ones the
//! device registered.
//!
//! [`Replica::vouch`]: crate::Replica::vouch
//! [`State::paired_by`]: crate::State::paired_by
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

/// The synced setting under which a device attests the keys of a device it paired:
/// `paired/<device id>`.
pub const PAIRED_PREFIX: &str = "paired/";

/// A device's attestation that it paired another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// The device that paired it.
    pub by: DeviceId,
    /// When.
    pub at: Hlc,
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
