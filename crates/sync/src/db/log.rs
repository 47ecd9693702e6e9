//! The transfer log.

use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, params};

use ferry_protocol::DeviceTag;

use super::{Db, to_i64, to_u64};
use crate::SyncError;
use crate::transfer::{Kind, Outcome, Route, Transfer};

impl Db {
    /// Adds a line to the transfer log.
    pub(crate) fn log(&self, transfer: &Transfer) -> Result<(), SyncError> {
        insert_transfer(&self.conn, &self.root, transfer)
    }

    /// When the device of `tag` was last heard from: the newest segment or snapshot of it
    /// received here, as the transfer log has it.
    pub(crate) fn last_received(&self, tag: &DeviceTag) -> Result<Option<u64>, SyncError> {
        let at: Option<i64> = self.conn.query_row(
            "SELECT MAX(at) FROM transfers
             WHERE device = ?1 AND direction = ?2 AND outcome = ?3 AND kind IN (?4, ?5)",
            params![
                tag.to_string(),
                Route::Down.as_str(),
                Outcome::Ok.as_str(),
                Kind::Segment.as_str(),
                Kind::Snapshot.as_str()
            ],
            |row| row.get(0),
        )?;
        Ok(at.map(to_u64))
    }

    /// When this device last sent something to the storage, as the transfer log has it.
    pub(crate) fn last_sent(&self) -> Result<Option<u64>, SyncError> {
        let at: Option<i64> = self
            .conn
            .query_row(
                "SELECT at FROM transfers WHERE direction = ?1 AND outcome = ?2
                 ORDER BY id DESC LIMIT 1",
                params![Route::Up.as_str(), Outcome::Ok.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(at.map(to_u64))
    }

    /// The newest `limit` lines of the transfer log, newest first.
    pub(crate) fn transfers(&self, limit: usize) -> Result<Vec<Transfer>, SyncError> {
        let mut statement = self.conn.prepare(
            "SELECT at, direction, kind, device, name, ops, bytes, outcome, detail
             FROM transfers ORDER BY id DESC LIMIT ?1",
        )?;
        let mut rows = statement.query([to_i64(limit as u64)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(Transfer {
                at_ms: to_u64(row.get(0)?),
                direction: word(row.get(1)?)?,
                kind: word(row.get(2)?)?,
                device: row.get(3)?,
                name: row.get(4)?,
                ops: to_u64(row.get(5)?),
                bytes: to_u64(row.get(6)?),
                outcome: word(row.get(7)?)?,
                detail: row.get(8)?,
            });
        }
        Ok(out)
    }
}

/// A word of the transfer log read from a row.
pub(super) fn word<T: FromStr>(text: String) -> Result<T, SyncError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|error: T::Err| SyncError::LocalState {
        detail: format!("the transfer log: {error}"),
    })
}

/// Logs `t`, its object named by its store path below `root`.
pub(super) fn insert_transfer(
    conn: &Connection,
    root: &str,
    t: &Transfer,
) -> Result<(), SyncError> {
    let name = t.name.as_ref().map(|name| format!("{root}{name}"));
    conn.execute(
        "INSERT INTO transfers (at, direction, kind, device, name, ops, bytes, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            to_i64(t.at_ms),
            t.direction.as_str(),
            t.kind.as_str(),
            t.device,
            name,
            to_i64(t.ops),
            to_i64(t.bytes),
            t.outcome.as_str(),
            t.detail
        ],
    )?;
    Ok(())
}
