//! Repair: storage that loses one of this device's segments stalls every reader until a
//! snapshot covers it, so the writer checks that its own objects are still there and puts the
//! very same bytes back (kept in the database until a snapshot in storage covers them).
//!
//! The check costs nothing on most polls: the poll's LIST of `head/` shows this device's own
//! head, and a head missing or behind sends the device to list its segments at once. Otherwise
//! it lists them once per `check_own_every`. A device that only sends, and so never polls,
//! lists the heads and its segments once per that period.

use std::collections::BTreeMap;

use ferry_protocol::DeviceTag;
use tracing::warn;

use super::Engine;
use crate::SyncError;
use crate::db::Meta;
use crate::remote::{IfPresent, path};
use crate::transfer::{Kind, Outcome, Route, Transfer, now_ms};

impl Engine {
    /// Checks this device's own objects against a poll's `heads` (its own among them), and
    /// puts back what storage lost.
    pub(super) async fn repair_own(
        &mut self,
        heads: &BTreeMap<DeviceTag, u64>,
    ) -> Result<(), SyncError> {
        let uploaded = self.db.last_uploaded()?;
        if uploaded == 0 || !self.config.direction.sends() {
            return Ok(());
        }
        let head_lost = heads.get(&self.tag).is_none_or(|&head| head < uploaded);
        if !head_lost && !self.own_check_due()? {
            return Ok(());
        }
        let stored = self.remote.segments(self.tag).await?;
        if stored.is_empty() && !heads.contains_key(&self.tag) {
            self.check_listing_shows(uploaded).await?;
        }
        let first = self.db.number(Meta::CompactedTo)? + 1;
        for seq in first..=uploaded {
            let last = seq == uploaded;
            if stored.contains_key(&seq) && !(last && head_lost) {
                continue;
            }
            let Some(kept) = self.db.kept_segment(seq)? else {
                // Uploaded before this build kept bytes: a snapshot will cover it.
                continue;
            };
            let name = self.log_name(seq);
            if !stored.contains_key(&seq) {
                self.remote
                    .put_once(&name, &kept.sealed, IfPresent::SameBytes)
                    .await?;
                self.repaired(&path(&name), kept.sealed.len())?;
            }
            if last && head_lost {
                let head_name = self.head_name(seq);
                self.remote
                    .put_once(&head_name, &kept.head, IfPresent::Keep)
                    .await?;
                self.repaired(&path(&head_name), kept.head.len())?;
            }
        }
        self.db.set_number(Meta::CheckedOwnAt, now_ms())
    }

    /// When the storage lists nothing at all of this device's, tells a storage that lost
    /// everything (each object is put back) from one whose listings miss what it stores:
    /// reading the newest segment settles it, and the latter is an error, not a reason to
    /// upload everything again.
    async fn check_listing_shows(&mut self, uploaded: u64) -> Result<(), SyncError> {
        let name = self.log_name(uploaded);
        match self.remote.get(&name).await {
            Ok(_) => Err(SyncError::ListingHides { name: path(&name) }),
            Err(ferry_store::StoreError::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether the periodic check of this device's own segments is due.
    pub(super) fn own_check_due(&self) -> Result<bool, SyncError> {
        let checked = self.db.number(Meta::CheckedOwnAt)?;
        let every = self.config.check_own_every.as_millis() as u64;
        Ok(now_ms() >= checked.saturating_add(every))
    }

    /// Logs that `name`, lost by the storage, was put back.
    fn repaired(&mut self, name: &str, bytes: usize) -> Result<(), SyncError> {
        warn!(%name, "the storage lost an object of this device's: put back");
        let put_back = Transfer::new(Route::Up, Kind::Segment, Outcome::Ok)
            .device(&self.tag)
            .bytes(bytes as u64)
            .detail(format!("{name}: the storage had lost it; put back"));
        self.db.log(&put_back)
    }
}
