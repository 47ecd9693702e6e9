//! The transfer log: one line per object moved, refused or quarantined, and per failed pass.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_protocol::{DeviceTag, ObjectName};
use serde::{Deserialize, Serialize};

use crate::remote::path;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Spells each variant of a unit enum once: `Display`, `FromStr`, serde and the list of all.
macro_rules! spelled {
    ($(#[$doc:meta])* $name:ident ($what:literal) { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in the order written.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// How the value is spelled in the log, on the command line and in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| UnknownValue {
                        what: $what,
                        found: text.to_owned(),
                        expected: $name::ALL.iter().map(|v| v.as_str()).collect(),
                    })
            }
        }
    };
}

spelled! {
    /// Which way a transfer went.
    Direction ("direction") {
        /// From this device to the storage.
        Up = "up",
        /// From the storage to this device.
        Down = "down",
        /// On this device only (a copy the filters refused).
        Local = "local",
    }
}

spelled! {
    /// What a transfer moved, or which pass failed.
    Kind ("kind") {
        /// A segment of operations.
        Segment = "segment",
        /// A snapshot of the merged state.
        Snapshot = "snapshot",
        /// Large content, in chunks.
        Blob = "blob",
        /// A copy the filters kept from being recorded.
        Filter = "filter",
        /// An upload pass (logged when it fails).
        Upload = "upload",
        /// A fetch pass (logged when it fails).
        Fetch = "fetch",
    }
}

spelled! {
    /// How a transfer ended.
    Outcome ("outcome") {
        /// Moved and applied.
        Ok = "ok",
        /// Did not complete; the next pass tries again.
        Failed = "failed",
        /// Read, but did not open or check: set aside, never applied.
        Quarantined = "quarantined",
        /// Refused on purpose (by a filter).
        Skipped = "skipped",
    }
}

/// A word that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a transfer {what}; expected one of: {}", expected.join(", "))]
pub struct UnknownValue {
    what: &'static str,
    found: String,
    expected: Vec<&'static str>,
}

/// One line of the transfer log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Which way it went.
    pub direction: Direction,
    /// What moved.
    pub kind: Kind,
    /// The device whose object it was (hex tag), where there is one.
    pub device: Option<String>,
    /// The object's store path.
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
    pub(crate) fn new(direction: Direction, kind: Kind, outcome: Outcome) -> Transfer {
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

    /// The object moved.
    pub(crate) fn object(mut self, name: &ObjectName) -> Transfer {
        self.name = Some(path(name));
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
        for direction in Direction::ALL {
            assert_eq!(direction.as_str().parse::<Direction>(), Ok(*direction));
        }
    }

    #[test]
    fn an_unknown_word_names_the_choices() {
        let error = "listing".parse::<Kind>().unwrap_err().to_string();
        assert!(
            error.contains("\"listing\" is not a transfer kind"),
            "{error}"
        );
        assert!(error.contains("segment, snapshot, blob, filter, upload, fetch"));
    }

    #[test]
    fn json_uses_the_log_spelling() {
        let line = Transfer::new(Direction::Down, Kind::Snapshot, Outcome::Quarantined);
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["direction"], "down");
        assert_eq!(json["kind"], "snapshot");
        assert_eq!(json["outcome"], "quarantined");
    }
}
