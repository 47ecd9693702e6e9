//! Storage errors, classified by what the person or the sync engine can do about them.

use std::time::Duration;

/// Why a storage request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The credentials were refused.
    #[error("{backend} refused the credentials ({detail}): check {credentials}")]
    Unauthorized {
        /// Which storage.
        backend: &'static str,
        /// What the server said.
        detail: String,
        /// Which credentials were refused and where they came from, never the secret itself:
        /// "the access key …WXYZ and its secret (saved for this device)".
        credentials: String,
    },

    /// The credentials were accepted but lack a permission.
    #[error("{backend} denied access ({detail}): {hint}")]
    Forbidden {
        /// Which storage.
        backend: &'static str,
        /// What the server said.
        detail: String,
        /// What to check.
        hint: &'static str,
    },

    /// The object does not exist.
    #[error("no object named `{name}`")]
    NotFound {
        /// Its name.
        name: String,
    },

    /// A write-once object exists already.
    #[error("an object named `{name}` exists already and is never overwritten")]
    AlreadyExists {
        /// Its name.
        name: String,
    },

    /// The server asked us to slow down.
    #[error("{backend} is throttling requests: slowing down and retrying")]
    Throttled {
        /// Which storage.
        backend: &'static str,
        /// How long the server asked us to wait, if it said.
        retry_after: Option<Duration>,
    },

    /// The server could not be reached at all: nothing listens there, the name does not
    /// resolve, the network is down, or it did not answer in time. It may pass.
    #[error("{backend} at {endpoint} cannot be reached ({reason}): {fix}")]
    Unreachable {
        /// Which storage.
        backend: &'static str,
        /// Where it was looked for: scheme, host and port (never a login), or a folder.
        endpoint: String,
        /// What the operating system or the connection said.
        reason: String,
        /// What to do.
        fix: &'static str,
    },

    /// A failure that may pass: a timeout, a reset connection, a server error.
    #[error("{backend} did not answer properly ({detail}); retrying may help")]
    Transient {
        /// Which storage.
        backend: &'static str,
        /// What happened.
        detail: String,
    },

    /// The server failed on its side (HTTP 5xx). It may pass, so it is retried; when it does
    /// not, the server's own log says why.
    #[error(
        "{backend} failed to handle the request ({detail}); if this goes on, the server's error \
         log says why"
    )]
    ServerFailed {
        /// Which storage.
        backend: &'static str,
        /// What the server said.
        detail: String,
    },

    /// An object larger than the reader accepts for its name, refused before it was read.
    #[error(
        "`{name}` is {size} bytes, more than the {limit} an object there may have: it was not \
         read (it is damaged, or not Ferry's)"
    )]
    TooLarge {
        /// Its name.
        name: String,
        /// Its size, as far as it was seen.
        size: u64,
        /// The most the reader accepts.
        limit: u64,
    },

    /// Something other than a stored object sits at an object's name (in a folder: a FIFO, a
    /// folder, a link, a device), refused without reading it.
    #[error("`{name}` is {what}, not a stored object: it was not read; remove it")]
    NotAnObject {
        /// Its name.
        name: String,
        /// What it is: "a FIFO", "a folder"…
        what: &'static str,
    },

    /// The storage settings cannot work: a bad URL, a missing bucket or folder.
    #[error("the storage settings do not work: {0}")]
    Misconfigured(String),
}

impl StoreError {
    /// Whether the object asked for was refused for what it is (too large, not a stored
    /// object), not for how the storage answered: reading it again gives the same.
    pub fn is_bad_object(&self) -> bool {
        matches!(
            self,
            StoreError::TooLarge { .. } | StoreError::NotAnObject { .. }
        )
    }

    /// Whether trying again (after a pause) can succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Throttled { .. }
                | StoreError::Unreachable { .. }
                | StoreError::Transient { .. }
                | StoreError::ServerFailed { .. }
        )
    }
}

#[cfg(feature = "backends")]
/// What to do about a server that cannot be reached.
pub(crate) const CHECK_THE_SERVER: &str =
    "check that it runs and that this machine reaches it (address, port, network)";

#[cfg(feature = "backends")]
/// The innermost cause of an error: what the operating system or the connection said
/// (`Connection refused (os error 111)`), without the layers above it.
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(feature = "backends")]
/// An error and its sources, on one line.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's own failure is retried, but once the retries are spent its message points at
    /// the server, not at another try.
    #[test]
    fn a_server_failure_is_retried_and_named_as_the_servers() {
        let error = StoreError::ServerFailed {
            backend: "the WebDAV server",
            detail: "HTTP 500 Internal Server Error".into(),
        };
        assert!(error.is_transient());
        let message = error.to_string();
        assert!(!message.contains("retrying may help"), "{message}");
        assert!(message.contains("the server's error log"), "{message}");
    }
}
