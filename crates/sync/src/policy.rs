//! What a device sends and takes: its sync direction and the filters clips must pass.

use std::fmt;

use bytesize::ByteSize;
use ferry_core::{ClipContent, ContentKind};
use regex::Regex;

/// Which way data flows for this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Send own changes and take others'.
    #[default]
    Both,
    /// Send own changes, take nothing.
    SendOnly,
    /// Take others' changes; own changes stay on this device.
    ReceiveOnly,
}

ferry_core::spelled!(pub Direction, "sync direction", {
    Both = "both",
    SendOnly = "send_only",
    ReceiveOnly = "receive_only",
});

impl Direction {
    /// Whether this device uploads.
    pub fn sends(self) -> bool {
        self != Direction::ReceiveOnly
    }

    /// Whether this device fetches.
    pub fn receives(self) -> bool {
        self != Direction::SendOnly
    }
}

/// Which clips are recorded and synced at all.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Clips larger than this many bytes are not recorded.
    pub max_item_bytes: Option<u64>,
    /// Clips whose text matches any of these are not recorded.
    pub exclude: Vec<Regex>,
    /// When set, only clips of these kinds are recorded.
    pub kinds: Option<Vec<ContentKind>>,
}

impl Filters {
    /// Why `content` is filtered out, or `None` when it passes.
    pub fn refuses(&self, content: &ClipContent) -> Option<Refusal> {
        let bytes = content.size();
        if let Some(max) = self.max_item_bytes
            && bytes > max
        {
            return Some(Refusal::TooLarge {
                bytes: Some(bytes),
                max,
            });
        }
        if let Some(kinds) = &self.kinds
            && !kinds.contains(&content.kind())
        {
            return Some(Refusal::Kind(content.kind()));
        }
        if let Some(text) = content.text()
            && let Some(pattern) = self.exclude.iter().find(|p| p.is_match(text))
        {
            return Some(Refusal::Excluded(pattern.as_str().to_owned()));
        }
        None
    }
}

/// Why a copy was not recorded. Said in the words of the setting that decided, and never
/// quoting the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than `clipboard.max_bytes`.
    TooLarge {
        /// The copy's size, when known (a clipboard stops reading at the limit).
        bytes: Option<u64>,
        /// The limit.
        max: u64,
    },
    /// Of a kind `clipboard.kinds` leaves out.
    Kind(ContentKind),
    /// Text matching this pattern of `clipboard.exclude`.
    Excluded(String),
    /// A password manager marked it as secret.
    Secret,
    /// Sync is paused on this device.
    Paused,
}

impl Refusal {
    /// The size of the copy refused, where known (else 0).
    pub fn bytes(&self) -> u64 {
        match self {
            Refusal::TooLarge {
                bytes: Some(bytes), ..
            } => *bytes,
            _ => 0,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |bytes: u64| ByteSize::b(bytes).display().iec().to_string();
        match self {
            Refusal::TooLarge { bytes, max } => {
                if let Some(bytes) = bytes {
                    write!(f, "{} is ", size(*bytes))?;
                }
                write!(
                    f,
                    "over clipboard.max_bytes ({}): raise it to sync copies this large",
                    size(*max)
                )
            }
            Refusal::Kind(kind) => write!(
                f,
                "{kind} copies are left out by clipboard.kinds: add {kind} there to sync them"
            ),
            Refusal::Excluded(pattern) => {
                write!(f, "matches the clipboard.exclude pattern {pattern}")
            }
            Refusal::Secret => f.write_str("a password manager marked it as secret"),
            Refusal::Paused => f.write_str("sync is paused on this device (`ferry resume`)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_refuses_with_a_reason_that_does_not_quote_the_clip() {
        let filters = Filters {
            max_item_bytes: Some(10),
            exclude: vec![Regex::new(r"^\d{4}-\d{4}$").unwrap()],
            kinds: Some(vec![ContentKind::Text]),
        };
        let text = |t: &str| ClipContent::Text(t.to_owned());
        let refused = |content: &ClipContent| filters.refuses(content).map(|r| r.to_string());
        assert_eq!(refused(&text("hello")), None);
        let secret = refused(&text("1234-5678")).unwrap();
        assert!(secret.contains("clipboard.exclude") && !secret.contains("1234-5678"));
        assert_eq!(
            refused(&text("a long clip here")).unwrap(),
            "16 B is over clipboard.max_bytes (10 B): raise it to sync copies this large"
        );
        let html = ClipContent::rich_text("<b>x</b>", "x");
        assert!(
            refused(&html)
                .unwrap()
                .starts_with("rich_text copies are left out by clipboard.kinds")
        );
    }
}
