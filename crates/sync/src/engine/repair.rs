//! Repair: storage that loses one of this device's segments stalls every reader until a
//! snapshot covers it, so the writer checks that its own objects are still there and puts the
//! very same bytes back (kept in the database until a snapshot in storage covers them).
//!
//! The check costs nothing on most polls: the poll's LIST of `head/` shows this device's own
//! head, and a head missing or behind sends the device to list its segments at once. Otherwise
//! it lists them once per `check_own_every`, and after an upload once per
//! `check_own_on_upload_every` (a minute): a segment lost in the middle of the log, which the
//! head does not show, is put back with the device's next upload. A device that only sends, and
//! so never polls, lists the heads and its segments once per `check_own_every`.

use std::collections::BTreeMap;

use ferry_protocol::DeviceTag;
use tracing::warn;

use super::Engine;
use crate::SyncError;
use crate::db::Meta;
use crate::remote::IfPresent;
use crate::transfer::{Kind, Outcome, Route, Transfer, now_ms};

impl Engine {
    /// Checks this device's own objects against a poll's `heads` (its own among them), and
    /// puts back what storage lost.
    pub(super) async fn repair_own(
        &mut self,
        heads: &BTreeMap<DeviceTag, u64>,
    ) -> Result<(), SyncError> {
        let every = self.config.check_own_every;
        self.repair_own_every(heads, every).await
    }

    /// After an upload: lists this device's segments when the last check is older than
    /// `check_own_on_upload_every`, and puts back what storage lost. A failure is noted, not
    /// the upload's.
    pub(super) async fn check_own_after_upload(&mut self) {
        let every = self.config.check_own_on_upload_every;
        let checked = async {
            let uploaded = self.db.last_uploaded()?;
            // The head was just written: only the segments are in question.
            let heads = BTreeMap::from([(self.tag, uploaded)]);
            self.repair_own_every(&heads, every).await
        };
        if let Err(error) = checked.await {
            self.note(format!(
                "checking this device's own objects failed: {error}"
            ));
        }
    }

    async fn repair_own_every(
        &mut self,
        heads: &BTreeMap<DeviceTag, u64>,
        every: std::time::Duration,
    ) -> Result<(), SyncError> {
        let uploaded = self.db.last_uploaded()?;
        if uploaded == 0 || !self.config.direction.sends() {
            return Ok(());
        }
        let head_lost = heads.get(&self.tag).is_none_or(|&head| head < uploaded);
        if !head_lost && !self.own_check_due(every)? {
            return Ok(());
        }
        let stored = self.remote.segments(self.tag).await?;
        let first = self.db.number(Meta::CompactedTo)? + 1;
        if stored.is_empty() && first <= uploaded {
            self.check_listing_shows(uploaded).await?;
        }
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
                self.repaired(&self.remote.path(&name), kept.sealed.len())?;
            }
            if last && head_lost {
                let head_name = self.head_name(seq);
                self.remote
                    .put_once(&head_name, &kept.head, IfPresent::Keep)
                    .await?;
                self.repaired(&self.remote.path(&head_name), kept.head.len())?;
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
            Ok(_) => Err(SyncError::ListingHides {
                name: self.remote.path(&name),
            }),
            Err(ferry_store::StoreError::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether the last check of this device's own segments is `every` old.
    pub(super) fn own_check_due(&self, every: std::time::Duration) -> Result<bool, SyncError> {
        let checked = self.db.number(Meta::CheckedOwnAt)?;
        Ok(now_ms() >= checked.saturating_add(every.as_millis() as u64))
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
