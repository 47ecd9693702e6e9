//! Retention: which clips are due to be purged, decided from the state alone.
//!
//! The decision is turned into ordinary purge operations (see
//! [`Replica::retention`](crate::Replica::retention)), so every device agrees on what was dropped
//! however many of them run the policy, and at whatever time.

use serde::{Deserialize, Serialize};

use crate::clip::ClipId;
use crate::state::State;

/// How long trashed clips are kept, and how long the history may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Trashed clips are purged this many milliseconds after they were deleted.
    pub trash_ms: Option<u64>,
    /// The history keeps at most this many clips; the oldest that are neither pinned nor
    /// favourites are purged first.
    pub max_history: Option<usize>,
}

impl Retention {
    /// Thirty days of trash, no limit on the history.
    pub const DEFAULT: Retention = Retention {
        trash_ms: Some(30 * 24 * 3_600_000),
        max_history: None,
    };
}

impl Default for Retention {
    fn default() -> Self {
        Retention::DEFAULT
    }
}

impl State {
    /// The clips the policy says to purge now.
    pub fn due_for_purge(&self, policy: &Retention, now_ms: u64) -> Vec<ClipId> {
        let mut due = Vec::new();
        if let Some(keep) = policy.trash_ms {
            due.extend(
                self.trash()
                    .iter()
                    .filter(|c| {
                        c.trashed_at
                            .is_some_and(|t| t.wall_ms().saturating_add(keep) <= now_ms)
                    })
                    .map(|c| c.id),
            );
        }
        if let Some(max) = policy.max_history {
            let history = self.history(None, usize::MAX);
            let excess = history.len().saturating_sub(max);
            due.extend(
                history
                    .iter()
                    .rev()
                    .filter(|c| !c.pinned && !c.favourite)
                    .take(excess)
                    .map(|c| c.id),
            );
        }
        due
    }
}
