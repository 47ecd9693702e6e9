//! The encrypted channel over one TCP connection: a Noise NNpsk0 handshake keyed by the LAN
//! transport PSK, then frames cut into Noise messages.
//!
//! ```text
//! dialer    -> psk, e          (no payload: a replayed first message carries nothing)
//! listener  <- e, ee           (both sides now hold the PSK-bound, forward-secret keys)
//! each way  len u16 BE ‖ Noise message … whose plaintexts form  len u32 BE ‖ frame …
//! ```
//!
//! A peer without the PSK fails the listener's first read: the listener closes without a
//! word. A message that does not decrypt ends the connection (the stream cannot be trusted
//! after it); an authentic frame that does not decode is refused and the connection goes on.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_protocol::lan::{
    Frame, FrameError, MAX_FRAME, MAX_HELLO, MAX_NOISE_MESSAGE, MAX_NOISE_PAYLOAD, NOISE_PARAMS,
    PROLOGUE,
};
use snow::{Builder, StatelessTransportState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use crate::LanError;

mod primitives;
#[cfg(test)]
mod tests;

/// The sending half of a channel.
pub(crate) struct Sender {
    stream: OwnedWriteHalf,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
}

/// The receiving half of a channel.
pub(crate) struct Receiver {
    stream: OwnedReadHalf,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    /// Plaintext received and not yet taken as frames.
    pending: Vec<u8>,
    /// The longest frame taken now: a hello's length until the other device proved who it is.
    limit: usize,
    /// Bytes every connection's frames may hold while they arrive, shared.
    budget: Arc<Semaphore>,
    /// The share of `budget` the frame arriving now holds, and by when the rest of it must
    /// have come.
    held: Option<(OwnedSemaphorePermit, Instant)>,
}

/// How long a frame holding a share of the budget may take to arrive whole: a device that
/// announces a large frame and stalls does not hold the share for longer.
const FRAME_DEADLINE: Duration = Duration::from_secs(30);

/// Frames up to this long arrive without asking the shared budget: at most one Noise message
/// more than this is held per connection anyway.
const UNBUDGETED: usize = 64 * 1024;

/// Which side of the handshake this device takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// It dialled.
    Dialer,
    /// It accepted.
    Listener,
}

/// The handshake of the channel, before its side is chosen: Ferry's own primitives, the
/// prologue, and the PSK at position 0.
fn builder(psk: &[u8; 32]) -> Result<Builder<'_>, LanError> {
    let params = NOISE_PARAMS.parse().map_err(LanError::noise)?;
    Builder::with_resolver(params, Box::new(primitives::Primitives))
        .prologue(PROLOGUE)
        .and_then(|b| b.psk(0, psk))
        .map_err(LanError::noise)
}

/// Runs the handshake on `stream` within `timeout`; the channel's halves, its handshake hash
/// (the same at both ends, and different on every other connection), and whether the other
/// end proved `earlier` rather than `psk` (a listener takes either; a dialer proves `psk`).
/// The receiver takes frames of a hello's length only until [`Receiver::trust`], and larger
/// frames within `budget`.
pub(crate) async fn handshake(
    mut stream: TcpStream,
    psk: &Zeroizing<[u8; 32]>,
    earlier: Option<&Zeroizing<[u8; 32]>>,
    side: Side,
    timeout: Duration,
    budget: Arc<Semaphore>,
) -> Result<(Sender, Receiver, Vec<u8>, bool), LanError> {
    let _ = stream.set_nodelay(true);
    let mut state = match side {
        Side::Dialer => builder(psk)?.build_initiator(),
        Side::Listener => builder(psk)?.build_responder(),
    }
    .map_err(LanError::noise)?;
    let mut proved_earlier = false;
    let exchange = async {
        let mut message = vec![0u8; MAX_NOISE_MESSAGE];
        let mut payload = vec![0u8; MAX_NOISE_MESSAGE];
        match side {
            Side::Dialer => {
                let len = state
                    .write_message(&[], &mut message)
                    .map_err(LanError::noise)?;
                write_message(&mut stream, &message[..len]).await?;
                let reply = read_message(&mut stream)
                    .await
                    .map_err(|error| match error {
                        LanError::Closed(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                            ) =>
                        {
                            LanError::Refused
                        }
                        other => other,
                    })?;
                state
                    .read_message(&reply, &mut payload)
                    .map_err(|_| LanError::Handshake)?;
            }
            Side::Listener => {
                let first = read_message(&mut stream).await?;
                if state.read_message(&first, &mut payload).is_err() {
                    // Only the first message proves a PSK: the earlier one is tried on it.
                    let Some(earlier) = earlier else {
                        return Err(LanError::Handshake);
                    };
                    state = builder(earlier)?
                        .build_responder()
                        .map_err(LanError::noise)?;
                    state
                        .read_message(&first, &mut payload)
                        .map_err(|_| LanError::Handshake)?;
                    proved_earlier = true;
                }
                let len = state
                    .write_message(&[], &mut message)
                    .map_err(LanError::noise)?;
                write_message(&mut stream, &message[..len]).await?;
            }
        }
        Ok::<(), LanError>(())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| LanError::TimedOut("the handshake"))??;
    let hash = state.get_handshake_hash().to_vec();
    let transport = Arc::new(
        state
            .into_stateless_transport_mode()
            .map_err(LanError::noise)?,
    );
    let (read, write) = stream.into_split();
    Ok((
        Sender {
            stream: write,
            transport: transport.clone(),
            nonce: 0,
        },
        Receiver {
            stream: read,
            transport,
            nonce: 0,
            pending: Vec::new(),
            limit: MAX_HELLO,
            budget,
            held: None,
        },
        hash,
        proved_earlier,
    ))
}

impl Sender {
    /// Sends one frame, in as many Noise messages as it takes, with one write.
    pub(crate) async fn send(&mut self, frame: &Frame) -> Result<(), LanError> {
        self.send_encoded(&frame.encode()?).await
    }

    /// Closes this direction of the connection: the other side reads what was sent, then
    /// the end.
    pub(crate) async fn close(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Sends the bytes of one frame.
    pub(crate) async fn send_encoded(&mut self, body: &[u8]) -> Result<(), LanError> {
        let mut plain = Vec::with_capacity(4 + body.len());
        plain.extend_from_slice(&(body.len() as u32).to_be_bytes());
        plain.extend_from_slice(body);
        self.send_plain(&plain).await
    }

    /// Sends `plain` as the next bytes of the stream of frames.
    async fn send_plain(&mut self, plain: &[u8]) -> Result<(), LanError> {
        let mut wire = Vec::with_capacity(plain.len() + plain.len() / MAX_NOISE_PAYLOAD * 18 + 18);
        let mut message = vec![0u8; MAX_NOISE_MESSAGE];
        for chunk in plain.chunks(MAX_NOISE_PAYLOAD) {
            let len = self
                .transport
                .write_message(self.nonce, chunk, &mut message)
                .map_err(LanError::noise)?;
            self.nonce += 1;
            wire.extend_from_slice(&(len as u16).to_be_bytes());
            wire.extend_from_slice(&message[..len]);
        }
        self.stream.write_all(&wire).await?;
        Ok(())
    }
}

/// What one read from a channel came to.
#[derive(Debug)]
pub(crate) enum Received {
    /// A frame.
    Frame(Frame),
    /// An authentic frame that does not decode: refused, and the channel goes on.
    Refused(FrameError),
}

impl Receiver {
    /// Takes frames of up to `limit` bytes from now on: the other device proved who it is.
    pub(crate) fn trust(&mut self, limit: usize) {
        self.limit = limit.min(MAX_FRAME);
    }

    /// The next frame. An error means the channel is over. A frame longer than
    /// [`UNBUDGETED`] waits for its share of the budget before more of it is read.
    pub(crate) async fn recv(&mut self) -> Result<Received, LanError> {
        loop {
            if let Some(len) = self
                .pending
                .first_chunk::<4>()
                .map(|l| u32::from_be_bytes(*l))
            {
                let len = len as usize;
                if len > self.limit {
                    return Err(FrameError::TooLarge(if self.limit < MAX_FRAME {
                        "longer than a hello may be"
                    } else {
                        "longer than a frame may be"
                    })
                    .into());
                }
                if self.pending.len() >= 4 + len {
                    let rest = self.pending.split_off(4 + len);
                    let whole = std::mem::replace(&mut self.pending, rest);
                    self.held = None;
                    return Ok(match Frame::decode(&whole[4..]) {
                        Ok(frame) => Received::Frame(frame),
                        Err(error) => Received::Refused(error),
                    });
                }
                if len > UNBUDGETED && self.held.is_none() {
                    let share = u32::try_from(len).unwrap_or(u32::MAX);
                    let permit = Arc::clone(&self.budget)
                        .acquire_many_owned(share)
                        .await
                        .map_err(|_| LanError::TimedOut("waiting for room for a frame"))?;
                    self.held = Some((permit, Instant::now() + FRAME_DEADLINE));
                }
            }
            let message = match &self.held {
                Some((_, by)) => {
                    tokio::time::timeout_at((*by).into(), read_message(&mut self.stream))
                        .await
                        .map_err(|_| LanError::TimedOut("a large frame arriving"))??
                }
                None => read_message(&mut self.stream).await?,
            };
            let mut plain = vec![0u8; message.len()];
            let len = self
                .transport
                .read_message(self.nonce, &message, &mut plain)
                .map_err(|_| LanError::Tampered)?;
            self.nonce += 1;
            self.pending.extend_from_slice(&plain[..len]);
        }
    }
}

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> Result<(), LanError> {
    let mut wire = Vec::with_capacity(2 + message.len());
    wire.extend_from_slice(&(message.len() as u16).to_be_bytes());
    wire.extend_from_slice(message);
    stream.write_all(&wire).await?;
    Ok(())
}

async fn read_message<R: AsyncReadExt + Unpin>(stream: &mut R) -> Result<Vec<u8>, LanError> {
    let len = stream.read_u16().await.map_err(LanError::closed)?;
    let mut message = vec![0u8; usize::from(len)];
    stream
        .read_exact(&mut message)
        .await
        .map_err(LanError::closed)?;
    Ok(message)
}
