//! What a device sends and takes: its sync direction and the filters clips must pass.

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
    /// Why `content` is filtered out, or `None` when it passes. The reason never quotes the
    /// content.
    pub fn refuses(&self, content: &ClipContent) -> Option<String> {
        if let Some(max) = self.max_item_bytes
            && content.size() > max
        {
            return Some(format!(
                "{} bytes, over the maximum item size of {max} bytes",
                content.size()
            ));
        }
        if let Some(kinds) = &self.kinds
            && !kinds.contains(&content.kind())
        {
            return Some(format!("{} clips are not synced", content.kind()));
        }
        if let Some(text) = content.text()
            && let Some(pattern) = self.exclude.iter().find(|p| p.is_match(text))
        {
            return Some(format!(
                "matches the exclusion pattern {}",
                pattern.as_str()
            ));
        }
        None
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
        assert_eq!(filters.refuses(&text("hello")), None);
        let secret = filters.refuses(&text("1234-5678")).unwrap();
        assert!(secret.contains("exclusion") && !secret.contains("1234-5678"));
        assert!(
            filters
                .refuses(&text("a long clip here"))
                .unwrap()
                .contains("maximum")
        );
        let html = ClipContent::rich_text("<b>x</b>", "x");
        assert!(filters.refuses(&html).unwrap().contains("rich_text clips"));
    }
}
