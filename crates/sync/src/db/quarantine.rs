//! The quarantine: objects set aside because they did not open, or because they hold
//! operations this build cannot read. A damaged object is tried again after a delay that grows
//! with each failure; one that needs a newer Ferry keeps its bytes here and waits for a build
//! that knows more kinds of operation.

use ferry_protocol::DeviceTag;
use rusqlite::{OptionalExtension, params};

use super::{Db, fixed, insert_transfer, to_i64, to_u64};
use crate::SyncError;
use crate::transfer::Transfer;

/// `retry_at` of a row that no retry of this build can read: it waits for an upgrade.
const AFTER_UPGRADE: i64 = i64::MAX;

/// An object to set aside.
#[derive(Debug, Clone)]
pub(crate) struct SetAside<'a> {
    /// Its store path.
    pub(crate) name: &'a str,
    /// The device whose stream it belongs to.
    pub(crate) device: Option<DeviceTag>,
    /// Why.
    pub(crate) reason: &'a str,
    /// That device's newest head when it was set aside: a newer head makes it due at once.
    pub(crate) head: u64,
    /// For an object that needs a newer Ferry: the operations this build cannot read, the
    /// number of kinds of operation it knows, and the bytes, kept until a build can.
    pub(crate) newer: Option<(u64, u32, &'a [u8])>,
}

/// A quarantined object as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuarantineRow {
    pub(crate) name: String,
    pub(crate) device: Option<DeviceTag>,
    pub(crate) reason: String,
    /// When it was first set aside (ms since the epoch).
    pub(crate) since_ms: u64,
    pub(crate) attempts: u32,
    /// When to try it again (ms since the epoch); `None`: after an upgrade.
    pub(crate) retry_at_ms: Option<u64>,
    pub(crate) head: u64,
    /// Operations it holds that need a newer Ferry (0: it is damaged).
    pub(crate) newer_ops: u64,
}

impl Db {
    /// Sets `object` aside, or records one more failed try of it, and logs `transfer`. The next
    /// try is `delay_ms(attempts)` after `transfer.at_ms`, unless the object needs a newer Ferry.
    pub(crate) fn set_aside(
        &mut self,
        object: &SetAside<'_>,
        delay_ms: impl Fn(u32) -> u64,
        transfer: &Transfer,
    ) -> Result<(), SyncError> {
        let tx = self.conn.transaction()?;
        let attempts: u32 = tx
            .query_row(
                "SELECT attempts FROM quarantine WHERE name = ?1",
                [object.name],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let attempts = attempts.saturating_add(1);
        let (retry_at, newer_ops, kinds, sealed) = match object.newer {
            Some((ops, kinds, sealed)) => (AFTER_UPGRADE, ops, kinds, Some(sealed)),
            None => (
                to_i64(transfer.at_ms.saturating_add(delay_ms(attempts))),
                0,
                0,
                None,
            ),
        };
        tx.execute(
            "INSERT INTO quarantine
                 (name, device, at, reason, attempts, retry_at, head, newer_ops, kinds, sealed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (name) DO UPDATE SET
                 device = excluded.device, reason = excluded.reason,
                 attempts = excluded.attempts, retry_at = excluded.retry_at,
                 head = excluded.head, newer_ops = excluded.newer_ops,
                 kinds = excluded.kinds, sealed = excluded.sealed",
            params![
                object.name,
                object.device.map(|tag| tag.0),
                to_i64(transfer.at_ms),
                object.reason,
                attempts,
                retry_at,
                to_i64(object.head),
                to_i64(newer_ops),
                kinds,
                sealed
            ],
        )?;
        insert_transfer(&tx, &self.root, transfer)?;
        tx.commit()?;
        Ok(())
    }

    /// Every quarantined object, oldest first.
    pub(crate) fn quarantined(&self) -> Result<Vec<QuarantineRow>, SyncError> {
        let mut statement = self.conn.prepare(
            "SELECT name, device, reason, at, attempts, retry_at, head, newer_ops
             FROM quarantine ORDER BY at, name",
        )?;
        let mut rows = statement.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let device: Option<Vec<u8>> = row.get(1)?;
            let retry_at: i64 = row.get(5)?;
            out.push(QuarantineRow {
                name: row.get(0)?,
                device: device
                    .map(|tag| fixed(tag, "a quarantined object's device tag").map(DeviceTag))
                    .transpose()?,
                reason: row.get(2)?,
                since_ms: to_u64(row.get(3)?),
                attempts: row.get(4)?,
                retry_at_ms: (retry_at != AFTER_UPGRADE).then(|| to_u64(retry_at)),
                head: to_u64(row.get(6)?),
                newer_ops: to_u64(row.get(7)?),
            });
        }
        Ok(out)
    }

    /// The bytes kept of a quarantined object that needs a newer Ferry.
    pub(crate) fn kept_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, SyncError> {
        Ok(self
            .conn
            .query_row(
                "SELECT sealed FROM quarantine WHERE name = ?1 AND sealed IS NOT NULL",
                [name],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Takes `name` out of the quarantine: it opened, or is no longer needed.
    pub(crate) fn release(&self, name: &str) -> Result<(), SyncError> {
        self.conn
            .execute("DELETE FROM quarantine WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Makes every quarantined object due now, except those only a newer Ferry than one
    /// knowing `kinds` kinds of operation can read. Returns how many are due.
    pub(crate) fn retry_quarantined(&self, kinds: u32) -> Result<usize, SyncError> {
        Ok(self.conn.execute(
            "UPDATE quarantine SET retry_at = 0 WHERE newer_ops = 0 OR kinds < ?1",
            [kinds],
        )?)
    }

    /// Makes the objects that waited for a build knowing more than `kinds` kinds of operation
    /// due now: this build may read them.
    pub(crate) fn retry_after_upgrade(&self, kinds: u32) -> Result<(), SyncError> {
        self.conn.execute(
            "UPDATE quarantine SET retry_at = 0 WHERE newer_ops > 0 AND kinds < ?1",
            [kinds],
        )?;
        Ok(())
    }
}
