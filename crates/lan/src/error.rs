//! What can go wrong on the LAN path, each saying what happened and what to do.

use ferry_protocol::DeviceId;
use ferry_protocol::lan::FrameError;

/// A failure of the LAN path. None of them loses data: the bucket carries everything the
/// LAN does.
#[derive(Debug, thiserror::Error)]
pub enum LanError {
    /// The listening port could not be opened.
    #[error(
        "nearby devices cannot connect: port {port} could not be opened ({source}); another \
         program may use it: set `lan.port` to a free port, or `lan.enabled = false`"
    )]
    Listen {
        /// The port asked for.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// mDNS could not start.
    #[error(
        "nearby devices cannot be discovered ({0}); devices listed in `lan.peers` are still \
         reached"
    )]
    Discovery(String),
    /// The other side does not hold this sync key (or is not Ferry).
    #[error("the device at the other end does not hold this sync key: the LAN handshake failed")]
    Handshake,
    /// The device dialled hung up on this one's first handshake message without a word, as
    /// a Ferry device does when that message was not sealed with its key.
    #[error(
        "the device at the other end hung up at the LAN handshake: it holds another sync key \
         (someone else's Ferry), runs another version of Ferry, or has too many connections \
         opening (it dials back, or this device tries again)"
    )]
    Refused,
    /// The other device's hello is not signed by the key it names: it holds the sync key and
    /// pretends to be another device.
    #[error(
        "a device on the LAN said hello with a signature that does not hold: it holds the sync \
         key but is not the device it says; the connection was closed"
    )]
    Forged,
    /// The other device is not in this repository's roster with the key it proved.
    #[error(
        "device {} is not in this repository's roster with the key it proved: its LAN \
         connection waits until its registration arrives through the storage",
        device.short()
    )]
    NotMember {
        /// The device it said it is.
        device: DeviceId,
        /// Where it listens, to dial it once the roster names it.
        listening: u16,
        /// Whether it is a caller (a command, not dialled back).
        caller: bool,
    },
    /// A message did not decrypt after the handshake: altered in transit.
    #[error("a message on a LAN connection did not decrypt (altered in transit); it was closed")]
    Tampered,
    /// A frame the peer sent (or this device would send) is not acceptable.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The other side did not answer in time.
    #[error("{0} took too long")]
    TimedOut(&'static str),
    /// The other side closed the connection.
    #[error("the connection closed ({0})")]
    Closed(std::io::Error),
    /// A socket failed.
    #[error("a LAN connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The Noise library refused a step it should not (a bug, not bad input).
    #[error("the LAN channel could not be set up: {0}")]
    Noise(String),
}

impl LanError {
    pub(crate) fn noise(error: snow::Error) -> LanError {
        LanError::Noise(error.to_string())
    }

    pub(crate) fn closed(error: std::io::Error) -> LanError {
        LanError::Closed(error)
    }
}
