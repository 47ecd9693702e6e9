//! Canonical encodings of the `crdts` types that keep hash maps or insertion-ordered vectors.
//!
//! `Orswot` keeps its members in a `HashMap` and `MVReg` its concurrent values in the order they
//! arrived, so their derived encodings differ between two replicas in the same state. These
//! wrappers encode the same fields sorted, so that equal states encode to equal bytes (snapshots
//! compare byte for byte, and tests can check convergence exactly). postcard writes a map exactly
//! as a sequence of pairs, so a sorted `Vec<(K, V)>` reads back as the map it came from.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crdts::{CmRDT, CvRDT, MVReg, Orswot, VClock, mvreg, orswot};
use ferry_protocol::DeviceId;

use crate::clip::ClipId;
use crate::op::Versioned;

/// Re-reads `value` as `Mirror` through its postcard encoding.
fn mirror<T: Serialize, Mirror: for<'de> Deserialize<'de>>(value: &T) -> Result<Mirror, String> {
    let bytes = postcard::to_allocvec(value).map_err(|e| e.to_string())?;
    postcard::from_bytes(&bytes).map_err(|e| e.to_string())
}

/// The members of a collection: an observed-remove set of clip ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Members(pub(crate) Orswot<ClipId, DeviceId>);

#[derive(Serialize, Deserialize)]
struct OrswotFields {
    clock: VClock<DeviceId>,
    entries: Vec<(ClipId, VClock<DeviceId>)>,
    deferred: Vec<(VClock<DeviceId>, Vec<ClipId>)>,
}

impl Members {
    pub(crate) fn apply(&mut self, op: orswot::Op<ClipId, DeviceId>) {
        self.0.apply(op);
    }

    pub(crate) fn merge(&mut self, other: Members) {
        self.0.merge(other.0);
    }
}

impl Serialize for Members {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields: OrswotFields = mirror(&self.0).map_err(S::Error::custom)?;
        fields.entries.sort_by_key(|(clip, _)| *clip);
        for (_, members) in &mut fields.deferred {
            members.sort();
        }
        fields.deferred.sort_by_cached_key(|(clock, _)| {
            clock.dots.iter().map(|(d, c)| (*d, *c)).collect::<Vec<_>>()
        });
        fields.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = OrswotFields::deserialize(deserializer)?;
        mirror(&fields).map(Members).map_err(D::Error::custom)
    }
}

/// A multi-value register of versioned strings (an alias or a setting).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Register(pub(crate) MVReg<Versioned, DeviceId>);

#[derive(Serialize, Deserialize)]
struct MvRegFields {
    vals: Vec<(VClock<DeviceId>, Versioned)>,
}

impl Register {
    pub(crate) fn apply(&mut self, op: mvreg::Op<Versioned, DeviceId>) {
        self.0.apply(op);
    }

    pub(crate) fn merge(&mut self, other: Register) {
        self.0.merge(other.0);
    }

    /// The concurrent values, oldest first.
    pub(crate) fn values(&self) -> Vec<Versioned> {
        let mut values = self.0.read().val;
        values.sort_by_key(|v| v.hlc);
        values
    }

    /// The newest of the concurrent values that `keep` accepts.
    pub(crate) fn latest_where(&self, keep: impl Fn(&Versioned) -> bool) -> Option<Versioned> {
        self.values().into_iter().rev().find(|v| keep(v))
    }

    /// Drops the values that `keep` refuses (with the clocks they were written under); all of
    /// them, should the register not read back.
    pub(crate) fn retain(&mut self, keep: impl Fn(&Versioned) -> bool) {
        let kept = mirror::<_, MvRegFields>(&self.0).and_then(|mut fields| {
            fields.vals.retain(|(_, value)| keep(value));
            mirror(&fields)
        });
        self.0 = kept.unwrap_or_default();
    }
}

impl Serialize for Register {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields: MvRegFields = mirror(&self.0).map_err(S::Error::custom)?;
        fields.vals.sort_by_key(|(_, v)| v.hlc);
        fields.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Register {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields = MvRegFields::deserialize(deserializer)?;
        mirror(&fields).map(Register).map_err(D::Error::custom)
    }
}
