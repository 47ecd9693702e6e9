//! A command's failure: the message a person reads, and the exit code.

use std::fmt;
use std::io;
use std::path::Path;

use ferry_secrets::SecretsError;
use ferry_store::StoreError;
use ferry_sync::SyncError;

/// Why a command failed. The message says what happened and what to do; it never holds a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) message: String,
    /// 1 for a failure, 2 for a usage error.
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<SyncError> for Failure {
    fn from(error: SyncError) -> Failure {
        Failure::new(error.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::new(error.to_string())
    }
}

impl From<SecretsError> for Failure {
    fn from(error: SecretsError) -> Failure {
        Failure::new(error.to_string())
    }
}

impl From<ferry_protocol::Error> for Failure {
    fn from(error: ferry_protocol::Error) -> Failure {
        Failure::new(error.to_string())
    }
}

/// The failure of a file operation, naming the file: `<path> could not be <done>: <error>`.
pub(crate) fn file_error(path: &Path, done: &'static str) -> impl FnOnce(io::Error) -> Failure {
    let path = path.display().to_string();
    move |error| Failure::new(format!("{path} could not be {done}: {error}"))
}
