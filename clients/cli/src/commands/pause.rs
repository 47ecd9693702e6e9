//! `ferry pause [--for DURATION]` and `ferry resume`: sync stops on this device until it is
//! resumed or the time runs out.
//!
//! While paused, copies are not recorded, and nothing is uploaded, fetched or exchanged with
//! nearby devices (relay hints are ignored, polls skipped). Commands still read and change what
//! this device holds; what they record goes out on resume. The state is a small file in the
//! home, so it outlives an agent restart.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Failure, file_error};
use crate::home::{Home, write_whole};
use crate::output::Output;
use crate::pause::{Pause, now_ms};

/// What `ferry pause` and `ferry resume` answer.
#[derive(Debug, Serialize)]
struct State {
    paused: bool,
    /// When the pause ends (milliseconds since the Unix epoch), where it has an end.
    until_ms: Option<u64>,
    /// Whether sync was paused before this command.
    was_paused: bool,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.paused, self.was_paused) {
            (true, _) => writeln!(
                f,
                "Sync {} on this device: copies are not recorded, and nothing is uploaded or \
                 fetched. `ferry resume` resumes it now.",
                Pause {
                    until_ms: self.until_ms
                }
            ),
            (false, true) => writeln!(
                f,
                "Sync resumed: what is pending goes out now, and new clips are fetched."
            ),
            (false, false) => writeln!(f, "Sync was not paused."),
        }
    }
}

/// `ferry pause [--for DURATION]`.
pub(crate) fn pause(
    home: &Home,
    duration: Option<Duration>,
    out: &mut Output,
) -> Result<(), Failure> {
    if duration.is_some_and(|d| d.is_zero()) {
        return Err(Failure::usage(
            "a pause needs a length above zero, e.g. `ferry pause --for 1h` (or no --for: \
             until `ferry resume`)",
        ));
    }
    let was_paused = Pause::current(home).is_some();
    let pause = Pause {
        until_ms: duration.map(|d| now_ms().saturating_add(d.as_millis() as u64)),
    };
    write_whole(
        &home.pause_file(),
        &serde_json::to_vec(&pause).unwrap_or_default(),
    )?;
    out.done(&State {
        paused: true,
        until_ms: pause.until_ms,
        was_paused,
    });
    Ok(())
}

/// `ferry resume`.
pub(crate) fn resume(home: &Home, out: &mut Output) -> Result<(), Failure> {
    let was_paused = Pause::current(home).is_some();
    let path = home.pause_file();
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(file_error(&path, "removed")(error)),
    }
    out.done(&State {
        paused: false,
        until_ms: None,
        was_paused,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Local};

    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::locate(Some(dir.path()), None).unwrap();
        (dir, home)
    }

    #[test]
    fn a_pause_lasts_until_its_time_runs_out() {
        let (_dir, home) = home();
        assert_eq!(Pause::current(&home), None);
        pause(
            &home,
            Some(Duration::from_secs(3600)),
            &mut Output::new(true),
        )
        .unwrap();
        let left = Pause::current(&home).unwrap().left().unwrap();
        assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3600));
        // One that ended is gone, file and all.
        std::fs::write(home.pause_file(), r#"{"until_ms":1000}"#).unwrap();
        assert_eq!(Pause::current(&home), None);
        assert!(!home.pause_file().exists());
    }

    #[test]
    fn a_pause_without_an_end_lasts_until_resumed() {
        let (_dir, home) = home();
        pause(&home, None, &mut Output::new(false)).unwrap();
        let paused = Pause::current(&home).unwrap();
        assert_eq!(paused.left(), None);
        assert_eq!(paused.to_string(), "paused until `ferry resume`");
        let mut out = Output::new(true);
        resume(&home, &mut out).unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(answer["was_paused"], true);
        assert_eq!(Pause::current(&home), None);
    }

    #[test]
    fn a_damaged_pause_file_still_pauses() {
        let (_dir, home) = home();
        std::fs::write(home.pause_file(), b"\xff{not json").unwrap();
        assert_eq!(Pause::current(&home), Some(Pause { until_ms: None }));
    }

    #[test]
    fn a_pause_of_no_length_is_refused() {
        let (_dir, home) = home();
        let error = pause(&home, Some(Duration::ZERO), &mut Output::new(false)).unwrap_err();
        assert_eq!(error.code, 2);
        assert_eq!(Pause::current(&home), None);
    }

    #[test]
    fn the_end_is_shown_as_a_local_clock_time() {
        let soon = now_ms() + 60_000;
        let shown = Pause {
            until_ms: Some(soon),
        }
        .to_string();
        let local = DateTime::from_timestamp_millis(soon as i64)
            .unwrap()
            .with_timezone(&Local);
        assert!(
            shown.ends_with(&local.format("%H:%M").to_string()),
            "{shown}"
        );
    }
}
