//! Why a pairing attempt ends, and what the other side is told of it.

use super::{AbortReason, VERSION};
use crate::error::Error;

/// Why a pairing attempt ended. Every variant ends it: a code is used once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PairingError {
    /// The other device's key confirmation does not match: the codes differ.
    #[error(
        "wrong code: the two devices do not have the same code (mistyped, or the messages were \
         altered on the way); this attempt is over, run `ferry pair` again for a new code"
    )]
    WrongCode,
    /// A third device used the code's nameplate.
    #[error(
        "someone else is using this code (crowded): a third device spoke on its nameplate; this \
         attempt is over, run `ferry pair` again"
    )]
    Crowded,
    /// The other device speaks another version of pairing.
    #[error(
        "the other device speaks pairing version {theirs}, this one version {VERSION}: {}",
        if *theirs > VERSION { "upgrade Ferry on this device" } else { "upgrade Ferry on the other device" }
    )]
    Version {
        /// Its version.
        theirs: u8,
    },
    /// A frame that is not a pairing frame.
    #[error(
        "a pairing message arrived damaged ({0}): the relay or the network altered it; this \
         attempt is over, run `ferry pair` again"
    )]
    Malformed(&'static str),
    /// A frame that contradicts an earlier one or does not open.
    #[error(
        "a pairing message was altered or replayed ({0}); this attempt is over, run `ferry pair` \
         again"
    )]
    Tampered(&'static str),
    /// The other device gave up.
    #[error("{}", aborted(*.0))]
    PeerAborted(AbortReason),
    /// Something asked of the session that its state does not allow (a bug in the caller).
    #[error("pairing: {0}")]
    Order(&'static str),
    /// The random number generator failed.
    #[error(transparent)]
    Random(#[from] Error),
}

fn aborted(reason: AbortReason) -> &'static str {
    match reason {
        AbortReason::WrongCode => {
            "wrong code: the other device found that the codes differ; this attempt is over, run \
             `ferry pair` again for a new code"
        }
        AbortReason::Expired => "the code expired: run `ferry pair` again for a new one",
        AbortReason::Cancelled => "the other device cancelled the pairing",
        AbortReason::Crowded => "someone else is using this code (crowded): run `ferry pair` again",
        AbortReason::Failed | AbortReason::Other(_) => {
            "the other device gave up on the pairing; run `ferry pair` again"
        }
    }
}

impl PairingError {
    /// The reason to tell the other device when this error ends the attempt here.
    pub fn abort_reason(&self) -> Option<AbortReason> {
        match self {
            PairingError::WrongCode => Some(AbortReason::WrongCode),
            PairingError::Crowded => Some(AbortReason::Crowded),
            PairingError::PeerAborted(_) => None,
            _ => Some(AbortReason::Failed),
        }
    }
}
