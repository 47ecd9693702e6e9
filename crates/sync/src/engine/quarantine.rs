//! The quarantine as the fetch uses it: an object that does not open is set aside and its
//! device's stream waits, but never for good. A damaged object is tried again after a delay that
//! doubles with each failure (up to an hour), and at once when its device's head moves on (the
//! writer may have uploaded it again) or when the person asks; one that holds operations this
//! build cannot read keeps its bytes locally and is applied by the first build that can.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_protocol::{DeviceId, DeviceTag, ObjectName};
use ferry_read::Refusal;
use ferry_read::refusal::FORGED;
use tracing::warn;

use super::Engine;
use crate::SyncError;
use crate::db::{QuarantineRow, SetAside};
use crate::transfer::{Kind, Outcome, Route, Transfer, now_ms};

/// The longest wait between two tries of a damaged object.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// An object set aside, as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Its store path.
    pub name: String,
    /// The device whose stream waits for it, where known.
    pub tag: Option<DeviceTag>,
    /// That device's id, once this device has applied anything of it.
    pub device: Option<DeviceId>,
    /// Why it was set aside.
    pub reason: String,
    /// When it was first set aside.
    pub since: SystemTime,
    /// How many times it failed.
    pub attempts: u32,
    /// When it is tried again.
    pub retry: Retry,
}

impl Quarantined {
    /// Whether it opened but was not written by the device it names.
    pub fn is_forged(&self) -> bool {
        self.reason.starts_with(FORGED)
    }
}

/// When a quarantined object is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// On the first fetch after this moment (or sooner, when its device's head moves on).
    At(SystemTime),
    /// Once Ferry is upgraded: it holds this many operations of a kind this build cannot read.
    AfterUpgrade {
        /// How many.
        ops: u64,
    },
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl Engine {
    /// Sets `name` aside for `refusal`, logging it; `head` is its device's newest head now.
    pub(super) fn quarantine(
        &mut self,
        name: &ObjectName,
        refusal: &Refusal,
        bytes: &[u8],
        head: u64,
    ) -> Result<(), SyncError> {
        let store_path = self.remote.path(name);
        let reason = refusal.reason();
        warn!(name = %store_path, %reason, "quarantined");
        // Only a device's stream is quarantined: its segments, snapshots and heads.
        let (kind, device) = match name {
            ObjectName::Snap { device, .. } => (Kind::Snapshot, Some(*device)),
            ObjectName::Log { device, .. } | ObjectName::Head { device, .. } => {
                (Kind::Segment, Some(*device))
            }
            ObjectName::Blob { .. } => (Kind::Blob, None),
            ObjectName::Repo | ObjectName::Next { .. } | ObjectName::Prev => (Kind::Fetch, None),
        };
        let mut set_aside = Transfer::new(Route::Down, kind, Outcome::Quarantined)
            .object(name)
            .bytes(bytes.len() as u64)
            .detail(&reason);
        if let Some(device) = &device {
            set_aside = set_aside.device(device);
        }
        let newer = match refusal {
            Refusal::Newer { ops } => Some((*ops, self.config.known_actions, bytes)),
            Refusal::Damaged(_) | Refusal::Forged(_) | Refusal::Ahead { .. } => None,
        };
        let object = SetAside {
            name: &store_path,
            device,
            reason: &reason,
            head,
            newer,
        };
        let first = self.config.quarantine_retry;
        let delay_ms = |attempts: u32| {
            let doubled = first.saturating_mul(1 << attempts.saturating_sub(1).min(20));
            doubled.min(MAX_RETRY_DELAY.max(first)).as_millis() as u64
        };
        self.db.set_aside(&object, delay_ms, &set_aside)
    }

    /// The quarantined objects not to read in this fetch, given the devices' newest `heads`:
    /// those not yet due, unless their device's head moved on since they were set aside.
    pub(super) fn held(
        &self,
        heads: &BTreeMap<DeviceTag, u64>,
    ) -> Result<BTreeSet<String>, SyncError> {
        let now = now_ms();
        let head_moved = |row: &QuarantineRow| {
            row.newer_ops == 0
                && row
                    .device
                    .and_then(|tag| heads.get(&tag))
                    .is_some_and(|&head| head > row.head)
        };
        Ok(self
            .db
            .quarantined()?
            .into_iter()
            .filter(|row| row.retry_at_ms.is_none_or(|at| at > now) && !head_moved(row))
            .map(|row| row.name)
            .collect())
    }

    /// Takes out of the quarantine what no stream waits for any more: objects at or below where
    /// their device now stands (a snapshot covered them), and stray heads of a device since
    /// read.
    pub(super) fn release_passed(&mut self) -> Result<(), SyncError> {
        for row in self.db.quarantined()? {
            let (Some(tag), Some(name)) = (row.device, self.remote.parse(&row.name)) else {
                continue;
            };
            let applied = self.db.cursor(&tag)?.seq;
            let passed = match name {
                ObjectName::Log { seq, .. } | ObjectName::Snap { seq, .. } => seq <= applied,
                ObjectName::Head { .. } => applied > 0,
                ObjectName::Blob { .. }
                | ObjectName::Repo
                | ObjectName::Next { .. }
                | ObjectName::Prev => false,
            };
            if passed {
                self.db.release(&row.name)?;
            }
        }
        Ok(())
    }

    /// Makes every quarantined object due, so the next fetch tries them all again (those that
    /// need a newer Ferry only once it is upgraded). Returns how many are due.
    pub fn retry_quarantined(&mut self) -> Result<usize, SyncError> {
        self.db.retry_quarantined(self.config.known_actions)
    }

    /// The quarantined objects, oldest first.
    pub(super) fn quarantine_status(&self) -> Result<Vec<Quarantined>, SyncError> {
        let devices: BTreeMap<DeviceTag, DeviceId> = self
            .db
            .cursors()?
            .into_iter()
            .map(|(tag, device, _)| (tag, device))
            .collect();
        Ok(self
            .db
            .quarantined()?
            .into_iter()
            .map(|row| Quarantined {
                device: row.device.and_then(|tag| devices.get(&tag).copied()),
                tag: row.device,
                retry: match row.retry_at_ms {
                    Some(at) => Retry::At(time(at)),
                    None => Retry::AfterUpgrade { ops: row.newer_ops },
                },
                since: time(row.since_ms),
                attempts: row.attempts,
                reason: row.reason,
                name: row.name,
            })
            .collect())
    }
}
