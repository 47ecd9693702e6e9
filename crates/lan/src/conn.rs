//! One connection to another device: the handshake, the hellos, then a reader that hands frames
//! to the application and a writer that sends what it is given (and a ping when idle).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferry_protocol::DeviceId;
use ferry_protocol::lan::{End, Frame, FrameError};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::calls::{Joined, Questions};
use crate::noise::{self, Received, Receiver, Sender, Side};
use crate::supervisor::{Internal, Shared};
use crate::{Event, LanError, Peer};

/// How long one write may take before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Parts of calls queued for one connection: a caller waits for room (1 MiB each).
const PARTS_QUEUE: usize = 4;

/// The most bytes of frames and questions waiting for the application; what arrives beyond
/// is dropped (storage, or the next heads, bring it). One larger question still goes through
/// when nothing else waits.
const MAX_QUEUED: usize = 32 * 1024 * 1024;

/// How long a caller whose key the roster does not know (a device joining with the recovery
/// code, registering through its calls) stays connected; it connects again if it needs to.
const UNKNOWN_CALLER_LIFETIME: Duration = Duration::from_secs(120);

/// The largest question such a caller may ask: its registration, not a whole repository.
const UNKNOWN_CALLER_QUESTION: usize = 4 * 1024 * 1024;

/// What a caller may send: calls, their answers, pings.
fn for_callers(frame: &Frame) -> bool {
    matches!(
        frame,
        Frame::Ask { .. } | Frame::Answer { .. } | Frame::Unanswered { .. } | Frame::Ping
    )
}

/// The first bytes of every caller's passing id.
const CALLER_PREFIX: [u8; 8] = [0xca; 8];

/// Sets up a connection on `stream` and, once both sides said hello, reports it to the
/// supervisor and serves it. `dialed` is the address dialled, for a connection this device
/// opened.
pub(crate) async fn serve(
    shared: Shared,
    id: u64,
    stream: TcpStream,
    addr: SocketAddr,
    dialed: Option<SocketAddr>,
) {
    let side = if dialed.is_some() {
        Side::Dialer
    } else {
        Side::Listener
    };
    let (frames_tx, frames_rx) = mpsc::channel(shared.config.queue);
    let (parts_tx, parts_rx) = mpsc::channel(PARTS_QUEUE);
    let (mut sender, mut receiver, hello) = match open(&shared, stream, side).await {
        Ok(opened) => opened,
        Err(error) => {
            match (&error, dialed) {
                (LanError::Handshake, None) => {
                    debug!(%addr, "a connection without this sync key was refused")
                }
                _ => debug!(%addr, %error, "a LAN connection could not be set up"),
            }
            let _ = shared.internal.send(Internal::Failed {
                id,
                addr,
                dialed,
                error,
            });
            return;
        }
    };
    // A caller is known by a passing id of this connection: answers to its calls find it,
    // and its device's own connection stays as it is.
    let device = match hello.caller {
        true => caller_id(id),
        false => hello.device,
    };
    let peer = Peer {
        device,
        addr,
        listening: SocketAddr::new(addr.ip(), hello.port),
        dialed: dialed.is_some(),
        since: SystemTime::now(),
    };
    let caller = match hello.caller {
        false => None,
        true => Some(Caller { known: hello.known }),
    };
    // Ready goes to the supervisor before any frame of this connection reaches the
    // application, so that what the application answers finds the connection registered;
    // nothing is read until it kept the connection.
    let (kept_tx, kept) = oneshot::channel();
    let (stop, stopped) = oneshot::channel();
    let ready = Internal::Ready {
        id,
        peer,
        key: hello.key,
        caller,
        frames: frames_tx,
        parts: parts_tx,
        dialed,
        kept: kept_tx,
        stop,
    };
    if shared.internal.send(ready).is_err() || kept.await != Ok(true) {
        return;
    }
    // Each end, once it kept the connection, says so with a ping: a connection counts only
    // when both did, so a device the other end refused is never told it is connected.
    if let Err(error) = welcome(&shared, &mut sender, &mut receiver).await {
        let why = error.to_string();
        let _ = shared.internal.send(Internal::Closed { id, device, why });
        return;
    }
    if shared
        .internal
        .send(Internal::Welcomed { id, device })
        .is_err()
    {
        return;
    }
    let mut halves = JoinSet::new();
    halves.spawn(read(shared.clone(), receiver, device, caller));
    halves.spawn(write(shared.clone(), sender, frames_rx, parts_rx));
    let lifetime = match caller {
        Some(Caller { known: false }) => UNKNOWN_CALLER_LIFETIME,
        _ => Duration::MAX,
    };
    // A half that fails ends the connection (dropping the other closes the socket). A writer
    // that ends because the connection was replaced has sent what was queued and closed its
    // side; the reader takes what the other device still sends until it closes too. A
    // connection the supervisor stops (its device left the roster, it fell behind) ends at
    // once.
    let why = tokio::select! {
        half = halves.join_next() => match half {
            Some(Ok(Ok(Half::Replaced))) => {
                let timeout = shared.config.handshake_timeout;
                let _ = tokio::time::timeout(timeout, halves.join_next()).await;
                "replaced by another connection".into()
            }
            Some(Ok(Err(error))) => error.to_string(),
            _ => "closed".into(),
        },
        Ok(why) = stopped => why,
        () = tokio::time::sleep(lifetime) => "an unknown caller's time is up".into(),
    };
    halves.abort_all();
    let _ = shared.internal.send(Internal::Closed { id, device, why });
}

/// Sends this end's ping, and waits for the other end's: its word that it kept the connection.
async fn welcome(
    shared: &Shared,
    sender: &mut Sender,
    receiver: &mut Receiver,
) -> Result<(), LanError> {
    sender.send(&Frame::Ping).await?;
    let first = tokio::time::timeout(shared.config.handshake_timeout, receiver.recv())
        .await
        .map_err(|_| LanError::TimedOut("the other device keeping the connection"))??;
    match first {
        Received::Frame(Frame::Ping) => Ok(()),
        _ => Err(LanError::Frame(FrameError::Malformed(
            "the frame after the hellos is not a ping",
        ))),
    }
}

/// The passing id of the caller on connection `id` (a device's own id never takes this form:
/// a hello naming one is refused).
fn caller_id(id: u64) -> DeviceId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&CALLER_PREFIX);
    bytes[8..].copy_from_slice(&id.to_be_bytes());
    DeviceId(bytes)
}

/// What a caller's connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    /// Whether the roster knows its key (else it is a device joining with the recovery code,
    /// let in by a device that holds a repository).
    pub(crate) known: bool,
}

/// Who the other device said it is, in a hello whose signature held.
struct Hello {
    device: DeviceId,
    port: u16,
    caller: bool,
    /// For a caller: whether the roster knows its key.
    known: bool,
    key: [u8; 32],
}

/// The Noise handshake, then each side's hello, signed over the handshake: the other
/// device's id, listening port and key, which must be a member's.
async fn open(
    shared: &Shared,
    stream: TcpStream,
    side: Side,
) -> Result<(Sender, Receiver, Hello), LanError> {
    let config = &shared.config;
    let (mut sender, mut receiver, handshake, earlier) = noise::handshake(
        stream,
        &shared.psk,
        shared.earlier_psk.as_deref(),
        side,
        config.handshake_timeout,
        Arc::clone(&shared.budget),
    )
    .await?;
    let (mine, theirs) = match side {
        Side::Dialer => (End::Dialer, End::Listener),
        Side::Listener => (End::Listener, End::Dialer),
    };
    let me = (config.device, shared.port, config.caller);
    sender
        .send(&Frame::hello(&config.identity, me, &handshake, mine))
        .await?;
    let received = tokio::time::timeout(config.handshake_timeout, receiver.recv())
        .await
        .map_err(|_| LanError::TimedOut("the hello"))??;
    let frame = match received {
        Received::Frame(frame) => frame,
        Received::Refused(error) => return Err(error.into()),
    };
    let Frame::Hello {
        device,
        port,
        mut caller,
        key,
        ..
    } = frame
    else {
        return Err(LanError::Frame(FrameError::Malformed(
            "the first frame is not a hello",
        )));
    };
    if !frame.hello_holds(&handshake, theirs) {
        return Err(LanError::Forged);
    }
    if device == config.device {
        return Err(LanError::Frame(FrameError::Malformed(
            "this device reached itself",
        )));
    }
    if !caller && device.0[..8] == CALLER_PREFIX {
        return Err(LanError::Frame(FrameError::Malformed(
            "a device id of the form callers are given",
        )));
    }
    // A device still on the generation before calls only, and only as a member.
    if earlier {
        let members = config.earlier.as_ref().map(|earlier| &earlier.members);
        let member = members.is_some_and(|members| match caller {
            true => members.allow_caller(&key),
            false => members.allow(&device, &key),
        });
        if !member {
            return Err(LanError::NotMember {
                device,
                listening: port,
                caller,
            });
        }
        caller = true;
    }
    // A device that holds a repository also lets in callers whose key the roster does not
    // know yet: a device joining with the recovery code registers through its calls (the
    // supervisor keeps few of them).
    let known = match caller {
        true => config.members.allow_caller(&key),
        false => config.members.allow(&device, &key),
    };
    let holder_lets_in = caller && config.max_question > 0 && !earlier;
    if !(known || holder_lets_in) {
        return Err(LanError::NotMember {
            device,
            listening: port,
            caller,
        });
    }
    // A caller sends calls, in parts of at most a megabyte: nothing larger is read from it.
    receiver.trust(match caller {
        true => ferry_protocol::lan::MAX_PART + 16,
        false => ferry_protocol::lan::MAX_FRAME,
    });
    Ok((
        sender,
        receiver,
        Hello {
            device,
            port,
            caller,
            known,
            key,
        },
    ))
}

/// How a half of a connection ended well.
enum Half {
    /// The other device closed the connection, or the application stopped listening.
    Ended,
    /// The supervisor dropped the queue: this connection gave way to another.
    Replaced,
}

/// Hands the frames that arrive to the application, until the connection fails or goes silent.
async fn read(
    shared: Shared,
    mut receiver: noise::Receiver,
    from: DeviceId,
    caller: Option<Caller>,
) -> Result<Half, LanError> {
    let mut questions = Questions::default();
    let max_question = match caller {
        Some(Caller { known: false }) => shared.config.max_question.min(UNKNOWN_CALLER_QUESTION),
        _ => shared.config.max_question,
    };
    loop {
        let received = tokio::time::timeout(shared.config.idle_timeout, receiver.recv())
            .await
            .map_err(|_| LanError::TimedOut("waiting for the other device"))??;
        match received {
            Received::Frame(frame) if caller.is_some() && !for_callers(&frame) => {
                debug!(
                    ?frame,
                    "LAN: a caller sent what only a device sends; ignored"
                );
            }
            Received::Frame(Frame::Ping) => {}
            Received::Frame(Frame::Hello { .. }) => {
                warn!(device = %from, "a second hello on a LAN connection was ignored");
            }
            Received::Frame(Frame::Answer { call, more, part }) => {
                shared.calls.answer_part(from, call, more, &part);
            }
            Received::Frame(Frame::Unanswered { call, why }) => {
                shared.calls.unanswered(from, call, why);
            }
            Received::Frame(Frame::Ask { call, more, part }) => {
                let event = match questions.part(call, more, part, max_question) {
                    Joined::Partial => continue,
                    Joined::Whole(question) => Event::Asked {
                        from,
                        call,
                        question,
                    },
                    Joined::Refused(why) => {
                        debug!(device = %from, call, ?why, "a LAN call was refused");
                        if let Some(link) = shared.calls.link(from) {
                            let _ = link.try_send(Frame::Unanswered { call, why });
                        }
                        continue;
                    }
                };
                match deliver(&shared, event) {
                    Delivery::Taken => {}
                    Delivery::Full => {
                        if let Some(link) = shared.calls.link(from) {
                            let why = ferry_protocol::lan::Unanswered::Busy;
                            let _ = link.try_send(Frame::Unanswered { call, why });
                        }
                    }
                    Delivery::Closed => return Ok(Half::Ended),
                }
            }
            Received::Frame(frame) => {
                // Never waiting on the application: the answers to its own calls come on this
                // connection, maybe while it waits for one. A frame it has no room for is
                // dropped; storage, or the next heads, bring what it carried.
                match deliver(&shared, Event::Received { from, frame }) {
                    Delivery::Taken => {}
                    Delivery::Full => {
                        debug!(device = %from, "LAN: the application is busy: a frame was dropped");
                    }
                    Delivery::Closed => return Ok(Half::Ended),
                }
            }
            Received::Refused(error) => {
                warn!(device = %from, %error, "a LAN frame was refused; the connection goes on");
            }
        }
    }
}

/// Hands `event` to the application unless its queue is full, by count or by the bytes of
/// the frames in it ([`MAX_QUEUED`]).
fn deliver(shared: &Shared, event: Event) -> Delivery {
    let bytes = event.bytes();
    let room = shared
        .queued
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
            (queued == 0 || queued + bytes <= MAX_QUEUED).then_some(queued + bytes)
        });
    if room.is_err() {
        return Delivery::Full;
    }
    match shared.events.try_send(event) {
        Ok(()) => Delivery::Taken,
        Err(refused) => {
            shared.queued.fetch_sub(bytes, Ordering::Relaxed);
            match refused {
                mpsc::error::TrySendError::Full(_) => Delivery::Full,
                mpsc::error::TrySendError::Closed(_) => Delivery::Closed,
            }
        }
    }
}

/// What became of an event handed to the application.
enum Delivery {
    Taken,
    /// Dropped: the application has no room for it now.
    Full,
    /// The application stopped listening.
    Closed,
}

/// Sends what the supervisor queues, then the parts of calls when nothing else waits, and a
/// ping after `ping_every` of silence. Ends when the supervisor drops the queue (the
/// connection was replaced or the LAN stopped).
async fn write(
    shared: Shared,
    mut sender: noise::Sender,
    mut frames: mpsc::Receiver<Frame>,
    mut parts: mpsc::Receiver<Frame>,
) -> Result<Half, LanError> {
    loop {
        let frame = tokio::select! {
            biased;
            frame = frames.recv() => match frame {
                Some(frame) => frame,
                None => {
                    sender.close().await;
                    return Ok(Half::Replaced);
                }
            },
            Some(part) = parts.recv() => part,
            () = tokio::time::sleep(shared.config.ping_every) => Frame::Ping,
        };
        let encoded = match frame.encode() {
            Ok(encoded) => encoded,
            Err(error) => {
                // Too large for the LAN: it travels through storage only.
                debug!(%error, ?frame, "a frame was not sent over the LAN");
                continue;
            }
        };
        tokio::time::timeout(WRITE_TIMEOUT, sender.send_encoded(&encoded))
            .await
            .map_err(|_| LanError::TimedOut("sending to the other device"))??;
    }
}
