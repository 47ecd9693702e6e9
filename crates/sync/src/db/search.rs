//! The history's search index: a contentless FTS5 table over clip text.

use ferry_core::ClipId;
use rusqlite::{Transaction, params};

use super::{Db, fixed, to_i64};
use crate::SyncError;

impl Db {
    /// Clips whose text matches the FTS5 query `query`, best first.
    pub(crate) fn search(&self, query: &str, limit: usize) -> Result<Vec<ClipId>, SyncError> {
        let mut statement = self.conn.prepare(
            "SELECT clip_rows.clip FROM clip_text JOIN clip_rows ON clip_rows.rowid = clip_text.rowid
             WHERE clip_text MATCH ?1 ORDER BY clip_text.rank LIMIT ?2",
        )?;
        let rows = statement.query_map(params![fts_query(query), to_i64(limit as u64)], |row| {
            row.get::<_, Vec<u8>>(0)
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(ClipId(fixed(row?, "a clip id in the search index")?));
        }
        Ok(out)
    }
}

/// Quotes every word, so that user input is matched as words, never parsed as FTS syntax.
fn fts_query(query: &str) -> String {
    query
        .split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The search index's row id of a clip: its first 8 bytes (a keyed hash: collisions are
/// negligible).
pub(super) fn text_rowid(clip: ClipId) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&clip.0[..8]);
    i64::from_be_bytes(first)
}

/// Indexes a clip's text. A clip's content never changes (its id is a hash of it), so a clip
/// indexed once stays indexed as it is. The index is contentless: the text itself lives in the
/// state; `clip_rows` maps row ids back to clip ids.
pub(super) fn index_text(tx: &Transaction<'_>, clip: ClipId, text: &str) -> Result<(), SyncError> {
    let rowid = text_rowid(clip);
    let new = tx
        .prepare_cached("INSERT OR IGNORE INTO clip_rows (rowid, clip) VALUES (?1, ?2)")?
        .execute(params![rowid, clip.0])?;
    if new == 1 {
        tx.prepare_cached("INSERT INTO clip_text (rowid, body) VALUES (?1, ?2)")?
            .execute(params![rowid, text])?;
    }
    Ok(())
}
