//! The channel against a hostile network: a proxy between the two ends reads each Noise
//! message (their lengths are in the clear) and alters, replays, drops or cuts them.

use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::lan::{Frame, FrameError, MAX_FRAME};
use ferry_protocol::{DeviceTag, SyncKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::{Received, Receiver, Sender, Side, builder, handshake};
use crate::LanError;

const TIMEOUT: Duration = Duration::from_secs(5);

fn psk(seed: u8) -> Zeroizing<[u8; 32]> {
    SyncKey::from_bytes([seed; 32]).keys().lan.transport_psk()
}

/// What the proxy does with the dialer's `n`th message (0 is the handshake's first).
type Tamper = Arc<dyn Fn(usize, Vec<u8>) -> Vec<Vec<u8>> + Send + Sync>;

/// Forwards messages from `from` to `to`, passing each through `tamper`.
async fn forward<R, W>(mut from: R, mut to: W, tamper: Tamper)
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    for n in 0.. {
        let Ok(len) = from.read_u16().await else {
            return;
        };
        let mut message = vec![0u8; usize::from(len)];
        if from.read_exact(&mut message).await.is_err() {
            return;
        }
        let mut whole = len.to_be_bytes().to_vec();
        whole.extend_from_slice(&message);
        for out in tamper(n, whole) {
            if out.is_empty() {
                // Cut: the connection ends here.
                return;
            }
            if to.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

type Ends = Result<(Sender, Receiver), LanError>;

/// The handshake on `stream`, with a receiver that trusts the other end (as after its hello)
/// and a budget of its own.
async fn trusted(stream: TcpStream, psk: &Zeroizing<[u8; 32]>, side: Side) -> Ends {
    let budget = Arc::new(Semaphore::new(2 * MAX_FRAME));
    let (sender, mut receiver, _, _) = handshake(stream, psk, None, side, TIMEOUT, budget).await?;
    receiver.trust(MAX_FRAME);
    Ok((sender, receiver))
}

/// A dialer and a listener with the PSKs of `dialer` and `listener`, joined through a proxy
/// that tampers with what the dialer sends. Returns both ends' handshakes.
async fn pair(dialer: u8, listener: u8, tamper: Tamper) -> (Ends, Ends) {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (server_addr, proxy_addr) = (server.local_addr().unwrap(), proxy.local_addr().unwrap());
    tokio::spawn(async move {
        let (inbound, _) = proxy.accept().await.unwrap();
        let outbound = TcpStream::connect(server_addr).await.unwrap();
        let (in_read, mut in_write) = inbound.into_split();
        let (mut out_read, out_write) = outbound.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
        });
        forward(in_read, out_write, tamper).await;
    });
    let (listener_psk, dialer_psk) = (psk(listener), psk(dialer));
    let listening = tokio::spawn(async move {
        let (stream, _) = server.accept().await.unwrap();
        trusted(stream, &listener_psk, Side::Listener).await
    });
    let stream = TcpStream::connect(proxy_addr).await.unwrap();
    let dialed = trusted(stream, &dialer_psk, Side::Dialer).await;
    (dialed, listening.await.unwrap())
}

fn untouched() -> Tamper {
    Arc::new(|_, message| vec![message])
}

fn segment(len: usize) -> Frame {
    Frame::Segment {
        device: DeviceTag([4; 16]),
        seq: 9,
        sealed: (0..len).map(|i| i as u8).collect(),
    }
}

async fn next(receiver: &mut Receiver) -> Result<Received, LanError> {
    tokio::time::timeout(TIMEOUT, receiver.recv())
        .await
        .unwrap()
}

#[tokio::test]
async fn frames_of_every_size_cross_in_order_both_ways() {
    let (dialed, listening) = pair(1, 1, untouched()).await;
    let ((mut dialer, mut from_listener), (mut listener, mut from_dialer)) =
        (dialed.unwrap(), listening.unwrap());
    // One frame spans many Noise messages; small ones share one.
    let frames = [segment(1), segment(200_000), Frame::Ping, segment(65_515)];
    for frame in &frames {
        dialer.send(frame).await.unwrap();
        listener.send(frame).await.unwrap();
    }
    for frame in &frames {
        for receiver in [&mut from_dialer, &mut from_listener] {
            match next(receiver).await.unwrap() {
                Received::Frame(got) => assert_eq!(&got, frame),
                other => panic!("{other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_stranger_fails_at_the_first_message_and_hears_nothing() {
    let (dialed, listening) = pair(2, 1, untouched()).await;
    let (listening, dialed) = (listening.err(), dialed.err());
    assert!(
        matches!(listening, Some(LanError::Handshake)),
        "{listening:?}"
    );
    // The listener closed without a word: the stranger's first read found the end of the
    // stream, not one byte, and it can only say that it was hung up on.
    assert!(matches!(&dialed, Some(LanError::Refused)), "{dialed:?}");
}

#[tokio::test]
async fn an_altered_message_closes_the_channel() {
    let flip: Tamper = Arc::new(|n, mut message| {
        if n == 2 {
            let last = message.len() - 1;
            message[last] ^= 1;
        }
        vec![message]
    });
    let (dialed, listening) = pair(1, 1, flip).await;
    let ((mut dialer, _), (_, mut from_dialer)) = (dialed.unwrap(), listening.unwrap());
    dialer.send(&Frame::Ping).await.unwrap();
    dialer.send(&Frame::Ping).await.unwrap();
    assert!(matches!(
        next(&mut from_dialer).await,
        Ok(Received::Frame(Frame::Ping))
    ));
    assert!(matches!(
        next(&mut from_dialer).await,
        Err(LanError::Tampered)
    ));
}

#[tokio::test]
async fn a_replayed_message_is_refused() {
    let replay: Tamper = Arc::new(|n, message| {
        if n == 1 {
            vec![message.clone(), message]
        } else {
            vec![message]
        }
    });
    let (dialed, listening) = pair(1, 1, replay).await;
    let ((mut dialer, _), (_, mut from_dialer)) = (dialed.unwrap(), listening.unwrap());
    dialer.send(&segment(10)).await.unwrap();
    assert!(matches!(
        next(&mut from_dialer).await,
        Ok(Received::Frame(_))
    ));
    assert!(matches!(
        next(&mut from_dialer).await,
        Err(LanError::Tampered)
    ));
}

#[tokio::test]
async fn a_message_cut_short_ends_the_channel_cleanly() {
    let cut: Tamper = Arc::new(|n, message| {
        if n == 1 {
            vec![message[..message.len() / 2].to_vec(), Vec::new()]
        } else {
            vec![message]
        }
    });
    let (dialed, listening) = pair(1, 1, cut).await;
    let ((mut dialer, _), (_, mut from_dialer)) = (dialed.unwrap(), listening.unwrap());
    dialer.send(&segment(1000)).await.unwrap();
    assert!(matches!(
        next(&mut from_dialer).await,
        Err(LanError::Closed(_))
    ));
}

#[tokio::test]
async fn a_frame_that_does_not_decode_is_refused_and_the_channel_goes_on() {
    let (dialed, listening) = pair(1, 1, untouched()).await;
    let ((mut dialer, _), (_, mut from_dialer)) = (dialed.unwrap(), listening.unwrap());
    dialer.send_encoded(&[200, 9, 9]).await.unwrap();
    dialer.send_encoded(&[]).await.unwrap();
    dialer.send(&Frame::Ping).await.unwrap();
    assert!(matches!(
        next(&mut from_dialer).await,
        Ok(Received::Refused(FrameError::Malformed("unknown kind")))
    ));
    assert!(matches!(
        next(&mut from_dialer).await,
        Ok(Received::Refused(FrameError::Malformed("empty")))
    ));
    assert!(matches!(
        next(&mut from_dialer).await,
        Ok(Received::Frame(Frame::Ping))
    ));
}

#[tokio::test]
async fn a_frame_announced_larger_than_allowed_ends_the_channel_before_it_is_read() {
    let (dialed, listening) = pair(1, 1, untouched()).await;
    let ((mut dialer, _), (_, mut from_dialer)) = (dialed.unwrap(), listening.unwrap());
    let claimed = (MAX_FRAME as u32 + 1).to_be_bytes();
    dialer.send_plain(&claimed).await.unwrap();
    assert!(matches!(
        next(&mut from_dialer).await,
        Err(LanError::Frame(FrameError::TooLarge(_)))
    ));
    // And a frame too large to send is refused before anything is written.
    let huge = segment(MAX_FRAME);
    assert!(matches!(
        dialer.send(&huge).await,
        Err(LanError::Frame(FrameError::TooLarge(_)))
    ));
}

/// Two raw ends of one handshake, sharing `budget`, neither trusted yet; the handshake hash of
/// each.
async fn untrusted(
    budget: &Arc<Semaphore>,
) -> ((Sender, Receiver, Vec<u8>), (Sender, Receiver, Vec<u8>)) {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let listener_budget = Arc::clone(budget);
    let listening = tokio::spawn(async move {
        let (stream, _) = server.accept().await.unwrap();
        let (sender, receiver, hash, _) = handshake(
            stream,
            &psk(1),
            None,
            Side::Listener,
            TIMEOUT,
            listener_budget,
        )
        .await
        .unwrap();
        (sender, receiver, hash)
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, receiver, hash, _) = handshake(
        stream,
        &psk(1),
        None,
        Side::Dialer,
        TIMEOUT,
        Arc::clone(budget),
    )
    .await
    .unwrap();
    ((sender, receiver, hash), listening.await.unwrap())
}

#[tokio::test]
async fn both_ends_share_one_handshake_hash_and_no_other_connection_does() {
    let budget = Arc::new(Semaphore::new(MAX_FRAME));
    let ((_, _, dialer), (_, _, listener)) = untrusted(&budget).await;
    let ((_, _, other), _) = untrusted(&budget).await;
    assert_eq!(dialer, listener);
    assert_eq!(dialer.len(), 32);
    assert_ne!(dialer, other);
}

#[tokio::test]
async fn before_its_hello_is_trusted_a_device_cannot_send_more_than_a_hello() {
    let budget = Arc::new(Semaphore::new(MAX_FRAME));
    let ((mut dialer, _, _), (_, mut from_dialer, _)) = untrusted(&budget).await;
    // Announcing a frame of a megabyte ends the channel before any of it is held.
    dialer
        .send_plain(&(1u32 << 20).to_be_bytes())
        .await
        .unwrap();
    assert!(matches!(
        next(&mut from_dialer).await,
        Err(LanError::Frame(FrameError::TooLarge(
            "longer than a hello may be"
        )))
    ));
}

#[tokio::test]
async fn large_frames_wait_for_room_in_the_budget_every_connection_shares() {
    let len = 3 * super::UNBUDGETED;
    // Room for one such frame at a time.
    let budget = Arc::new(Semaphore::new(len + 4));
    let ((mut first, _, _), (_, mut from_first, _)) = untrusted(&budget).await;
    let ((mut second, _, _), (_, mut from_second, _)) = untrusted(&budget).await;
    from_first.trust(MAX_FRAME);
    from_second.trust(MAX_FRAME);
    let frame = segment(len - 25).encode().unwrap();
    assert_eq!(frame.len(), len);
    // The first device sends half its frame and stops: its receiver holds the room.
    let mut plain = (frame.len() as u32).to_be_bytes().to_vec();
    plain.extend_from_slice(&frame);
    first.send_plain(&plain[..plain.len() / 2]).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(300), from_first.recv()).await;
    assert!(waiting.is_err(), "half a frame is not a frame");
    assert_eq!(budget.available_permits(), 4);
    // The second one's whole frame is sent, and waits for room.
    second.send_encoded(&frame).await.unwrap();
    let mut second_frame = tokio::spawn(async move { from_second.recv().await });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut second_frame).await;
    assert!(early.is_err(), "a frame was read beyond the budget");
    // Once the first frame is whole, its room passes to the second.
    first.send_plain(&plain[plain.len() / 2..]).await.unwrap();
    assert!(matches!(
        next(&mut from_first).await,
        Ok(Received::Frame(Frame::Segment { .. }))
    ));
    let second_frame = tokio::time::timeout(TIMEOUT, second_frame)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        second_frame,
        Ok(Received::Frame(Frame::Segment { .. }))
    ));
    assert_eq!(budget.available_permits(), len + 4);
}

/// The handshake and the first transport message each way, byte for byte as an independent
/// Noise implementation made them (`protocol/tests/vectors/lan_noise_python.py`, with the
/// PyPI `noiseprotocol` package) from the PSK and prologue of `lan.json`, with the same fixed
/// ephemeral keys.
#[test]
fn the_handshake_matches_an_independent_implementation() {
    let vectors =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../protocol/tests/vectors");
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(vectors.join(name)).unwrap()).unwrap()
    };
    let (lan, python) = (read("lan.json"), read("lan-noise-python.json"));
    let bytes = |value: &serde_json::Value| hex::decode(value.as_str().unwrap()).unwrap();
    let psk: [u8; 32] = bytes(&lan["transport_psk"]).try_into().unwrap();
    assert_eq!(lan["noise"], ferry_protocol::lan::NOISE_PARAMS);
    let (initiator_key, responder_key) = (
        bytes(&python["initiator_ephemeral"]),
        bytes(&python["responder_ephemeral"]),
    );
    let mut initiator = builder(&psk)
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&initiator_key)
        .build_initiator()
        .unwrap();
    let mut responder = builder(&psk)
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&responder_key)
        .build_responder()
        .unwrap();
    let (mut message, mut payload) = ([0u8; 256], [0u8; 256]);
    let len = initiator.write_message(&[], &mut message).unwrap();
    assert_eq!(message[..len], bytes(&python["message_1"]));
    assert_eq!(
        responder
            .read_message(&message[..len], &mut payload)
            .unwrap(),
        0
    );
    let len = responder.write_message(&[], &mut message).unwrap();
    assert_eq!(message[..len], bytes(&python["message_2"]));
    assert_eq!(
        initiator
            .read_message(&message[..len], &mut payload)
            .unwrap(),
        0
    );

    // The first plaintext of the stream: a ping frame behind its length.
    let plain = bytes(&python["transport_plaintext"]);
    let ping = Frame::Ping.encode().unwrap();
    assert_eq!(
        plain,
        [&(ping.len() as u32).to_be_bytes()[..], &ping].concat()
    );
    let initiator = initiator.into_stateless_transport_mode().unwrap();
    let responder = responder.into_stateless_transport_mode().unwrap();
    for (from, to, expected) in [
        (&initiator, &responder, "initiator_transport_0"),
        (&responder, &initiator, "responder_transport_0"),
    ] {
        let len = from.write_message(0, &plain, &mut message).unwrap();
        assert_eq!(message[..len], bytes(&python[expected]), "{expected}");
        let read = to.read_message(0, &message[..len], &mut payload).unwrap();
        assert_eq!(payload[..read], plain);
    }
}

#[tokio::test]
async fn a_listener_given_the_earlier_psk_takes_it_too_and_says_so() {
    for (dialer, proved) in [(1u8, Some(false)), (2, Some(true)), (3, None)] {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let listening = tokio::spawn(async move {
            let (stream, _) = server.accept().await.unwrap();
            let budget = Arc::new(Semaphore::new(MAX_FRAME));
            let (current, earlier) = (psk(1), psk(2));
            handshake(
                stream,
                &current,
                Some(&earlier),
                Side::Listener,
                TIMEOUT,
                budget,
            )
            .await
            .map(|(_, _, _, earlier)| earlier)
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let budget = Arc::new(Semaphore::new(MAX_FRAME));
        let dialed = handshake(stream, &psk(dialer), None, Side::Dialer, TIMEOUT, budget).await;
        let listened = listening.await.unwrap();
        assert_eq!(
            listened.as_ref().ok().copied(),
            proved,
            "dialer {dialer}: {listened:?}"
        );
        assert_eq!(dialed.is_ok(), proved.is_some(), "dialer {dialer}");
    }
}
