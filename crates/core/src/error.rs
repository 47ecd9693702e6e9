//! Errors of the replicated state.

use ferry_protocol::DeviceId;

/// Why an operation or a state could not be taken in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// An operation arrived before an earlier one of the same device.
    #[error(
        "operation {got} of device {device} arrived before operation {expected}: keep it and \
         apply it after the missing ones"
    )]
    Gap {
        /// The device.
        device: DeviceId,
        /// The counter that must come next.
        expected: u64,
        /// The counter that came.
        got: u64,
    },

    /// An operation of a kind this build does not know: written by a newer Ferry.
    #[error("operation kind {action} is newer than this Ferry: upgrade Ferry to read it")]
    NewerAction {
        /// The kind's index in the encoding.
        action: u32,
    },

    /// A state encoded in a format version this build does not know.
    #[error(
        "the state is in format version {format}, which this Ferry does not read: upgrade Ferry"
    )]
    UnknownFormat {
        /// The version.
        format: u8,
    },

    /// Bytes that do not decode as an operation or a state.
    #[error("{0} does not decode: it was written by a faulty or newer Ferry (upgrade this device)")]
    Malformed(String),
}

impl CoreError {
    /// Whether the same input can succeed later: a gap closes once the missing operations
    /// arrive; malformed bytes stay malformed.
    pub fn is_transient(&self) -> bool {
        matches!(self, CoreError::Gap { .. })
    }
}

/// Decodes exactly one postcard value from `bytes`; `what` names it in the error.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, CoreError> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes)
        .map_err(|e| CoreError::Malformed(format!("{what}: {e}")))?;
    if !rest.is_empty() {
        return Err(CoreError::Malformed(format!(
            "{what}: {} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}
