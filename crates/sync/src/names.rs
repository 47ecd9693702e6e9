//! Where objects live in the store: every name below the repository root.

use ferry_protocol::ObjectName;
use ferry_protocol::names::{HEAD_PREFIX, ROOT};

/// The store path of an object.
pub(crate) fn path(name: &ObjectName) -> String {
    format!("{ROOT}{name}")
}

/// The store prefix a poll lists.
pub(crate) fn heads_prefix() -> String {
    format!("{ROOT}{HEAD_PREFIX}")
}

/// Parses a store path back into an object name; `None` for anything that is not one.
pub(crate) fn parse(path: &str) -> Option<ObjectName> {
    path.strip_prefix(ROOT)?.parse().ok()
}
