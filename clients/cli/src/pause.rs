//! Whether sync is paused on this device (`ferry pause`): a small file in the home, read by the
//! agent and by every command, so it outlives an agent restart.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::home::Home;

/// Sync paused: until a time, or until resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pause {
    /// When it ends, in milliseconds since the Unix epoch; `None`: when resumed.
    pub(crate) until_ms: Option<u64>,
}

impl Pause {
    /// The pause in force now, if any. A pause whose time ran out is removed; a file that
    /// cannot be read counts as a pause until resumed, since whoever wrote it meant to pause.
    pub(crate) fn current(home: &Home) -> Option<Pause> {
        let path = home.pause_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                warn!(%error, file = %path.display(), "the pause file is unreadable: paused until `ferry resume`");
                return Some(Pause { until_ms: None });
            }
        };
        let pause = serde_json::from_str(&text).unwrap_or(Pause { until_ms: None });
        if pause.left().is_some_and(|left| left.is_zero()) {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(pause)
    }

    /// How long it still lasts; `None` when it lasts until resumed.
    pub(crate) fn left(&self) -> Option<Duration> {
        self.until_ms
            .map(|until| Duration::from_millis(until.saturating_sub(now_ms())))
    }
}

/// `paused until 14:30`, `paused until Mon 1 Dec 09:00`, or `paused until `ferry resume``.
impl fmt::Display for Pause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let until = self
            .until_ms
            .and_then(|ms| DateTime::from_timestamp_millis(i64::try_from(ms).ok()?))
            .map(|at| at.with_timezone(&Local));
        match until {
            Some(at) if at.date_naive() == Local::now().date_naive() => {
                write!(f, "paused until {}", at.format("%H:%M"))
            }
            Some(at) => write!(f, "paused until {}", at.format("%a %-d %b %H:%M")),
            None => f.write_str("paused until `ferry resume`"),
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
