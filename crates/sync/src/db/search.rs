//! The history's search index: a contentless FTS5 table over clip text, its rows in the order
//! the clips were last copied, with prefix indexes for words as they are typed.

use ferry_core::{ClipId, State};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Db, fixed, to_i64};
use crate::SyncError;

impl Db {
    /// Clips whose text holds every word of `query` (the last one as a prefix with
    /// [`Words::LastUnfinished`]), the last copied first. The index keeps that order in its
    /// row ids, so the newest `limit` matches are read without looking at the rest.
    pub(crate) fn search(
        &self,
        query: &str,
        words: Words,
        limit: usize,
    ) -> Result<Vec<ClipId>, SyncError> {
        let fts = fts_query(query, words);
        if fts.is_empty() {
            // No words: nothing to match (and an empty FTS5 query is a syntax error).
            return Ok(Vec::new());
        }
        let mut statement = self.conn.prepare(
            "SELECT clip_rows.clip FROM clip_text JOIN clip_rows ON clip_rows.rowid = clip_text.rowid
             WHERE clip_text MATCH ?1 ORDER BY clip_text.rowid DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(params![fts, to_i64(limit as u64)], |row| {
            row.get::<_, Vec<u8>>(0)
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(ClipId(fixed(row?, "a clip id in the search index")?));
        }
        Ok(out)
    }
}

/// How the words of a search match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Words {
    /// Each as a whole word.
    Whole,
    /// The last as the start of a word, the others whole: a query as it is being typed.
    LastUnfinished,
}

/// Quotes every word, so that user input is matched as words, never parsed as FTS syntax.
fn fts_query(query: &str, words: Words) -> String {
    let mut fts = query
        .split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ");
    if words == Words::LastUnfinished && !fts.is_empty() {
        fts.push_str(" *");
    }
    fts
}

/// How a clip's text comes to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Copied now (here or on another device): it becomes the newest row.
    Now,
    /// Copied some time ago (a snapshot's history, oldest first): a clip indexed already keeps
    /// its place.
    Before,
}

/// Indexes a clip's text as the newest row, so that the index lists clips in the order they
/// were last copied: a clip copied again moves up. A clip's content never changes (its id is a
/// hash of it), so its text is the same each time. The index is contentless: the text itself
/// lives in the state; `clip_rows` maps row ids back to clip ids.
pub(super) fn index_text(
    tx: &Transaction<'_>,
    clip: ClipId,
    text: &str,
    seen: Seen,
) -> Result<(), SyncError> {
    let old: Option<i64> = tx
        .prepare_cached("SELECT rowid FROM clip_rows WHERE clip = ?1")?
        .query_row(params![clip.0], |row| row.get(0))
        .optional()?;
    if let Some(old) = old {
        if seen == Seen::Before {
            return Ok(());
        }
        let newest: i64 = tx
            .prepare_cached("SELECT max(rowid) FROM clip_rows")?
            .query_row([], |row| row.get(0))?;
        if old == newest {
            return Ok(());
        }
        // A contentless index forgets a row given the text it indexed.
        tx.prepare_cached(
            "INSERT INTO clip_text (clip_text, rowid, body) VALUES ('delete', ?1, ?2)",
        )?
        .execute(params![old, text])?;
        tx.prepare_cached("DELETE FROM clip_rows WHERE rowid = ?1")?
            .execute(params![old])?;
    }
    tx.prepare_cached("INSERT INTO clip_rows (clip) VALUES (?1)")?
        .execute(params![clip.0])?;
    tx.prepare_cached("INSERT INTO clip_text (rowid, body) VALUES (last_insert_rowid(), ?1)")?
        .execute(params![text])?;
    Ok(())
}

impl Db {
    /// Builds the index from the state when it is empty and the state is not: after the
    /// migration that rebuilt it, or if it was lost. Oldest first, so the rows keep the order
    /// in which the clips were last copied.
    pub(crate) fn index_history(&mut self, state: &State) -> Result<(), SyncError> {
        let indexed: bool =
            self.conn
                .query_row("SELECT EXISTS (SELECT 1 FROM clip_rows)", [], |row| {
                    row.get(0)
                })?;
        if indexed {
            return Ok(());
        }
        let mut texts: Vec<(ClipId, &str)> = state
            .history(None, usize::MAX)
            .into_iter()
            .filter_map(|clip| Some((clip.id, clip.content.text()?)))
            .collect();
        if texts.is_empty() {
            return Ok(());
        }
        texts.reverse();
        let tx = self.conn.transaction()?;
        for (clip, text) in texts {
            index_text(&tx, clip, text, Seen::Before)?;
        }
        tx.commit()?;
        Ok(())
    }
}
