//! Freshness: storage can serve an old state (old heads, an old snapshot) to a device that has
//! not seen the newer one, and nothing in storage tells. Devices say how far they have written
//! in every relay hint (and answer a starting device's roll call with their newest), so this
//! device remembers the newest announcement of each, says so when a poll's listing of the
//! storage shows less, and shows in its status every device it has less of than announced.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_protocol::{DeviceId, DeviceTag, RelayHint};
use tracing::warn;

use super::Engine;
use crate::SyncError;
use crate::transfer::{Kind, Outcome, Route, Transfer, now_ms};

/// A device that announced more than this device has of it from the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    /// Its tag in object names.
    pub tag: DeviceTag,
    /// Its id, once anything of it was applied here.
    pub device: Option<DeviceId>,
    /// The newest segment it announced.
    pub announced: u64,
    /// Its newest segment applied here from the storage.
    pub applied: u64,
    /// When it announced it.
    pub at: SystemTime,
}

impl Engine {
    /// Remembers how far the writer of `hint` says it has written.
    pub(super) fn remember_announced(&mut self, hint: &RelayHint) -> Result<(), SyncError> {
        if hint.device == self.tag || hint.is_roll_call() {
            return Ok(());
        }
        self.db.announce(&hint.device, hint.seq, now_ms())
    }

    /// Compares a poll's listing of the newest `heads` with what devices announced, and says
    /// so, once per announcement, where the storage lists less.
    pub(super) fn check_announced(
        &mut self,
        heads: &BTreeMap<DeviceTag, u64>,
    ) -> Result<(), SyncError> {
        for (tag, announced, _) in self.db.announced()? {
            let listed = heads.get(&tag).copied().unwrap_or(0);
            if listed >= announced || self.behind_said.get(&tag) == Some(&announced) {
                continue;
            }
            self.behind_said.insert(tag, announced);
            let who = match self.db.device_of(&tag)? {
                Some(device) => self.who(&device),
                None => format!("device {tag}"),
            };
            let said = format!(
                "the storage lists {who} at seq {listed}, but {who} announced seq {announced} \
                 over the relay: the storage is serving an older state or lost data; this \
                 device takes the rest once the storage has it"
            );
            warn!("{said}");
            let logged = Transfer::new(Route::Down, Kind::Fetch, Outcome::Skipped)
                .device(&tag)
                .detail(&said);
            self.db.log(&logged)?;
            self.note(said);
        }
        Ok(())
    }

    /// The devices that announced more than this device has of them.
    pub fn behind(&self) -> Result<Vec<Behind>, SyncError> {
        let mut behind = Vec::new();
        for (tag, announced, at) in self.db.announced()? {
            let applied = self.db.cursor(&tag)?.seq;
            if applied < announced {
                behind.push(Behind {
                    tag,
                    device: self.db.device_of(&tag)?,
                    announced,
                    applied,
                    at: UNIX_EPOCH + Duration::from_millis(at),
                });
            }
        }
        Ok(behind)
    }

    /// The hint that asks the other devices how far they have written.
    pub fn roll_call(&self) -> RelayHint {
        RelayHint::roll_call(self.tag)
    }

    /// The hint that answers another device's roll call: this device's newest segment in
    /// storage, if it has written any.
    pub fn roll_call_answer(&self) -> Result<Option<RelayHint>, SyncError> {
        let seq = self.db.last_uploaded()?;
        Ok((seq > 0).then_some(RelayHint {
            device: self.tag,
            seq,
        }))
    }
}
