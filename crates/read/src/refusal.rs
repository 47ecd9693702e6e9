//! Why an object read from storage is not applied, in the words the quarantine shows.

use std::time::Duration;

/// How the reason of a forged object starts.
pub const FORGED: &str = "forged: ";

/// How far ahead of the reading device's clock an object may have been written.
pub const AHEAD_AT_MOST: Duration = Duration::from_secs(24 * 3600);

/// Why an object read from storage was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It did not open or check: the reason.
    Damaged(String),
    /// It opened, but its device did not write it: why.
    Forged(String),
    /// It opened, and holds operations of a kind added after this build.
    Newer {
        /// How many of its operations this build cannot read.
        ops: u64,
    },
    /// It opened, but was written at a time further ahead of the reading device's clock than
    /// [`AHEAD_AT_MOST`] (a clock is wrong, the writer's or the reader's): applied, it would
    /// win every "latest" choice until the others caught up. Tried again later.
    Ahead {
        /// By how much.
        ms: u64,
    },
}

impl Refusal {
    /// A refusal when hybrid logical time `latest`, the newest in an object, is further ahead
    /// of `now_ms` (the reading device's clock, ms since the Unix epoch) than
    /// [`AHEAD_AT_MOST`].
    pub fn if_too_far_ahead(latest: ferry_core::Hlc, now_ms: u64) -> Result<(), Refusal> {
        match latest.wall_ms().checked_sub(now_ms) {
            Some(ms) if ms > AHEAD_AT_MOST.as_millis() as u64 => Err(Refusal::Ahead { ms }),
            _ => Ok(()),
        }
    }

    /// Why, as the quarantine shows it (a forged object's reason starts with [`FORGED`]).
    pub fn reason(&self) -> String {
        match self {
            Refusal::Damaged(reason) => reason.clone(),
            Refusal::Forged(reason) => format!("{FORGED}{reason}"),
            Refusal::Newer { ops } => format!(
                "{ops} operations were written by a newer Ferry: upgrade Ferry on this device to \
                 read them (they are kept until then)"
            ),
            Refusal::Ahead { ms } => format!(
                "written at a time {:.1} days ahead of this device's clock: one of the two \
                 clocks is wrong (set both to the right time); it is read once it is less than \
                 a day ahead",
                *ms as f64 / 86_400_000.0
            ),
        }
    }
}
