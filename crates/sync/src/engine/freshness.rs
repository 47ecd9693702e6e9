//! Freshness: storage can serve an old state (old heads, an old snapshot) to a device that has
//! not seen the newer one, and nothing in storage tells. Devices say how far they have written
//! in every relay hint (and answer a starting device's roll call with their newest), so this
//! device remembers the newest announcement of each, says so when a poll's listing of the
//! storage shows less, and shows in its status every device it has less of than announced.
//!
//! Only a device can speak for itself: a hint counts when it is signed by a device this one
//! knows ([`Engine::heard`]), and a claim far beyond what the storage lists ([`FAR_CLAIM`]) is
//! said once and not kept.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_protocol::{Claimed, DeviceId, DeviceTag, RelayHint};
use tracing::warn;

use super::Engine;
use crate::SyncError;
use crate::transfer::{Kind, Outcome, Route, Transfer, now_ms};

/// How many segments beyond the storage's listing a device's announcement may go and still be
/// storage lagging or holding back. A device writes one segment per upload and announces it
/// once the storage took it, so a claim further ahead is either a storage that lost most of
/// that device's log or a claim made with that device's key by someone else (a lost device):
/// said once, and not kept as a standing alarm.
pub const FAR_CLAIM: u64 = 1024;

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

/// A hint heard on the relay, as this device takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Signed by the device it speaks for, a device this one knows: believed.
    Member(RelayHint),
    /// In this device's own name (its own commands' hints come back): nothing to do.
    Own,
    /// In the name of no device known here: a device that joined a moment ago (this one
    /// learns of it from the storage), or someone holding the sync key. Not believed.
    Stranger(RelayHint),
    /// In the name of a known device, without its signature: someone holding the sync key
    /// sent it. Ignored.
    Forged(DeviceId),
}

impl Engine {
    /// Remembers how far the writer of `hint` says it has written.
    pub(super) fn remember_announced(&mut self, hint: &RelayHint) -> Result<(), SyncError> {
        if hint.device == self.tag || hint.is_roll_call() {
            return Ok(());
        }
        self.db.announce(&hint.device, hint.seq, now_ms())
    }

    /// What `claimed`, a hint heard on the relay, is worth: believed only when the device
    /// whose tag it carries, a device this one knows (registered, or attested while it
    /// joins), signed it.
    pub fn heard(&self, claimed: &Claimed<RelayHint>) -> Heard {
        let hint = claimed.value;
        if hint.device == self.tag {
            return Heard::Own;
        }
        let known = self.state().known_keys();
        let Some((device, keys)) = known
            .iter()
            .find(|(device, _)| self.tag_of(device) == hint.device)
        else {
            return Heard::Stranger(hint);
        };
        match claimed.verify(keys) {
            Ok(()) => Heard::Member(hint),
            Err(_) => Heard::Forged(*device),
        }
    }

    /// Takes `hint`, signed by its writer, when it claims more than [`FAR_CLAIM`] (as
    /// configured) segments beyond what this device applied of that writer; false for any
    /// other. Such a claim is neither fetched on its word nor kept: it waits, in memory, for
    /// the next poll's listing ([`check_announced`](Self::check_announced)), which tells a lag
    /// from a false claim. Once one was said false, that device's far claims are let go unread.
    pub(super) fn take_far(&mut self, hint: &RelayHint) -> Result<bool, SyncError> {
        let applied = self.db.cursor(&hint.device)?.seq;
        if hint.seq <= applied.saturating_add(self.config.far_claim) {
            return Ok(false);
        }
        if !self.far_said.contains_key(&hint.device) {
            let waiting = self.far_claims.entry(hint.device).or_default();
            *waiting = (*waiting).max(hint.seq);
        }
        Ok(true)
    }

    /// Whether a far claim waits for a poll's listing.
    pub(super) fn far_claim_waits(&self) -> bool {
        !self.far_claims.is_empty()
    }

    /// Compares a poll's listing of the newest `heads` with what devices announced, and says
    /// so, once per announcement, where the storage lists less. A far claim that waited for
    /// this listing is an announcement like any other when it is within [`FAR_CLAIM`] of what
    /// the storage shows (the listing, or what was applied before: storage cannot lower that by
    /// leaving a device out); beyond it, it is said once per device and not kept.
    pub(super) fn check_announced(
        &mut self,
        heads: &BTreeMap<DeviceTag, u64>,
    ) -> Result<(), SyncError> {
        for (tag, claimed) in std::mem::take(&mut self.far_claims) {
            let listed = heads.get(&tag).copied().unwrap_or(0);
            let shown = listed.max(self.db.cursor(&tag)?.seq);
            if claimed <= shown.saturating_add(self.config.far_claim) {
                self.db.announce(&tag, claimed, now_ms())?;
                continue;
            }
            let who = self.who_of(&tag)?;
            self.say(
                &tag,
                format!(
                    "{who} announced seq {claimed} over the relay, far beyond seq {shown} that \
                     the storage shows: no device gets that far ahead of its storage, so either \
                     the storage lost most of {who}'s log or someone holding {who}'s own key (a \
                     lost device's) made the claim; it is not kept (said once)"
                ),
            )?;
            let far = Behind {
                tag,
                device: self.db.device_of(&tag)?,
                announced: claimed,
                applied: shown,
                at: SystemTime::now(),
            };
            self.far_said.insert(tag, far);
        }
        for (tag, announced, _) in self.db.announced()? {
            let listed = heads.get(&tag).copied().unwrap_or(0);
            if listed >= announced || self.behind_said.get(&tag) == Some(&announced) {
                continue;
            }
            self.behind_said.insert(tag, announced);
            let who = self.who_of(&tag)?;
            self.say(
                &tag,
                format!(
                    "the storage lists {who} at seq {listed}, but {who} announced seq \
                     {announced} over the relay: the storage is serving an older state or lost \
                     data; this device takes the rest once the storage has it"
                ),
            )?;
        }
        Ok(())
    }

    /// The name of the device of `tag`, or its tag.
    fn who_of(&self, tag: &DeviceTag) -> Result<String, SyncError> {
        Ok(match self.db.device_of(tag)? {
            Some(device) => self.who(&device),
            None => format!("device {tag}"),
        })
    }

    /// Says `said` about the device of `tag`: in the log, the transfer log and the status.
    fn say(&mut self, tag: &DeviceTag, said: String) -> Result<(), SyncError> {
        warn!("{said}");
        let logged = Transfer::new(Route::Down, Kind::Fetch, Outcome::Skipped)
            .device(tag)
            .detail(&said);
        self.db.log(&logged)?;
        self.note(said);
        Ok(())
    }

    /// The claims far beyond the storage said (and not kept) since the engine opened.
    pub fn far_claims(&self) -> Vec<Behind> {
        self.far_said.values().cloned().collect()
    }

    /// Says, once per device, that the device of `tag` (when it is one this device knows)
    /// sends the unsigned hints of an older version of Ferry, which are ignored.
    pub fn older_version(&mut self, tag: &DeviceTag) {
        if !self.older_said.insert(*tag) {
            return;
        }
        let known = self.state().known_keys();
        let Some(device) = known.keys().find(|device| self.tag_of(device) == *tag) else {
            tracing::debug!(%tag, "an unsigned relay hint for a device not known here");
            return;
        };
        let who = self.who(device);
        let said = format!(
            "{who} runs an older version of Ferry: its relay hints are not signed, so this \
             device takes its changes at each poll rather than at once; upgrade Ferry on {who}"
        );
        warn!("{said}");
        self.note(said);
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
