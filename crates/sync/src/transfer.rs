//! The transfer log: one line per object moved, refused or quarantined, and per failed pass.

use std::time::{SystemTime, UNIX_EPOCH};

use ferry_protocol::{DeviceTag, ObjectName};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Which way a transfer went: up to the storage, down from it, only here, or from a nearby
/// device. (Not the sync policy's [`Direction`](crate::Direction), which says what may go at all.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// From this device to the storage.
    Up,
    /// From the storage to this device.
    Down,
    /// On this device only (a copy the filters refused).
    Local,
    /// From a device on the same network, directly.
    Nearby,
}

ferry_core::spelled!(pub Route, "transfer direction", {
    Up = "up",
    Down = "down",
    Local = "local",
    Nearby = "nearby",
});

/// What a transfer moved, or which pass failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A segment of operations.
    Segment,
    /// A snapshot of the merged state.
    Snapshot,
    /// Large content, in chunks.
    Blob,
    /// A copy the filters kept from being recorded.
    Filter,
    /// An upload pass (logged when it fails).
    Upload,
    /// A fetch pass (logged when it fails).
    Fetch,
    /// A move to a new generation of the repository.
    Generation,
}

ferry_core::spelled!(pub Kind, "transfer kind", {
    Segment = "segment",
    Snapshot = "snapshot",
    Blob = "blob",
    Filter = "filter",
    Upload = "upload",
    Fetch = "fetch",
    Generation = "generation",
});

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Moved and applied.
    Ok,
    /// Did not complete; the next pass tries again.
    Failed,
    /// Read, but did not open or check: set aside, never applied.
    Quarantined,
    /// Refused on purpose (by a filter).
    Skipped,
}

ferry_core::spelled!(pub Outcome, "transfer outcome", {
    Ok = "ok",
    Failed = "failed",
    Quarantined = "quarantined",
    Skipped = "skipped",
});

/// One line of the transfer log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Which way it went.
    pub direction: Route,
    /// What moved.
    pub kind: Kind,
    /// The device whose object it was (hex tag), where there is one.
    pub device: Option<String>,
    /// The object's store path (as logged; a line being made holds the name below the
    /// generation's root, which the log puts before it).
    pub name: Option<String>,
    /// Operations carried.
    pub ops: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, when it did not go well.
    pub detail: Option<String>,
}

impl Transfer {
    /// A line stamped now, with no object, device or counts yet.
    pub(crate) fn new(direction: Route, kind: Kind, outcome: Outcome) -> Transfer {
        Transfer {
            at_ms: now_ms(),
            direction,
            kind,
            device: None,
            name: None,
            ops: 0,
            bytes: 0,
            outcome,
            detail: None,
        }
    }

    /// The device the object belongs to.
    pub(crate) fn device(mut self, tag: &DeviceTag) -> Transfer {
        self.device = Some(tag.to_string());
        self
    }

    /// The object moved, by its name below the generation's root (the log writes the root
    /// before it).
    pub(crate) fn object(mut self, name: &ObjectName) -> Transfer {
        self.name = Some(name.to_string());
        self
    }

    /// Operations carried.
    pub(crate) fn ops(mut self, ops: u64) -> Transfer {
        self.ops = ops;
        self
    }

    /// Bytes moved.
    pub(crate) fn bytes(mut self, bytes: u64) -> Transfer {
        self.bytes = bytes;
        self
    }

    /// Why it did not go well.
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Transfer {
        self.detail = Some(detail.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_back() {
        for kind in Kind::ALL {
            assert_eq!(kind.to_string().parse::<Kind>(), Ok(*kind));
        }
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(*outcome));
        }
        for direction in Route::ALL {
            assert_eq!(direction.as_str().parse::<Route>(), Ok(*direction));
        }
    }

    #[test]
    fn an_unknown_word_names_the_choices() {
        let error = "listing".parse::<Kind>().unwrap_err().to_string();
        assert!(
            error.contains("`listing` is not a transfer kind"),
            "{error}"
        );
        assert!(error.contains("segment, snapshot, blob, filter, upload, fetch"));
    }

    #[test]
    fn json_uses_the_log_spelling() {
        for kind in Kind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        let line = Transfer::new(Route::Down, Kind::Snapshot, Outcome::Quarantined);
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["direction"], "down");
        assert_eq!(json["kind"], "snapshot");
        assert_eq!(json["outcome"], "quarantined");
    }
}
