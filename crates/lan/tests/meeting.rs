//! Pairing meetings on 127.0.0.1, found by mDNS on the loopback interface (on a port of each
//! test's own): two real pairing sessions confirm a code through one; another nameplate is
//! not found; junk, oversized and silent connections are closed before any session sees them.

use std::time::Duration;

use ferry_lan::{FIRST_FRAME, Meeting, MeetingConfig};
use ferry_protocol::pairing::{Message, Outcome, PairingCode, Role, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn config() -> MeetingConfig {
    let mdns_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    MeetingConfig {
        port: 0,
        mdns_port,
        loopback_only: true,
    }
}

fn code(nameplate: u16) -> PairingCode {
    PairingCode::from_parts(nameplate, [1247, 1936])
}

/// The next frame, within [`WAIT`].
async fn frame(frames: &mut mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
    tokio::time::timeout(WAIT, frames.recv())
        .await
        .expect("no frame came")
        .expect("the meeting stopped")
}

/// Sends the frames of `session` not sent yet.
fn send_new(meeting: &Meeting, session: &Session, sent: &mut usize) {
    for frame in &session.frames()[*sent..] {
        meeting.send(frame.clone());
    }
    *sent = session.frames().len();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_meet_by_nameplate_and_confirm_the_code() {
    let config = config();
    let (host, mut host_frames) = Meeting::host(417, &config).await.unwrap();
    let mut offer = Session::new(Role::Offer, &code(417)).unwrap();
    let mut offer_sent = 0;
    // Sent before anyone came: the seeker gets it when it connects.
    send_new(&host, &offer, &mut offer_sent);

    let (seeker, mut seeker_frames) = Meeting::seek(417, &config).unwrap();
    let mut join = Session::new(Role::Join, &code(417)).unwrap();
    let mut join_sent = 0;
    send_new(&seeker, &join, &mut join_sent);

    while !(offer.confirmed() && join.confirmed()) {
        tokio::select! {
            bytes = frame(&mut host_frames) => {
                offer.receive(&bytes).unwrap();
                send_new(&host, &offer, &mut offer_sent);
            }
            bytes = frame(&mut seeker_frames) => {
                join.receive(&bytes).unwrap();
                send_new(&seeker, &join, &mut join_sent);
            }
        }
    }
    // Sealed messages cross too, and a flush says when they are out.
    join.send(&Message::Outcome(Outcome {
        joined: true,
        detail: "over the LAN".into(),
    }))
    .unwrap();
    send_new(&seeker, &join, &mut join_sent);
    assert!(seeker.flush(WAIT).await);
    let outcome = loop {
        if let Some(message) = offer
            .receive(&frame(&mut host_frames).await)
            .unwrap()
            .message
        {
            break message;
        }
    };
    assert_eq!(
        outcome,
        Message::Outcome(Outcome {
            joined: true,
            detail: "over the LAN".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeker_of_another_nameplate_finds_nothing() {
    let config = config();
    let (host, _host_frames) = Meeting::host(417, &config).await.unwrap();
    host.send(Session::new(Role::Offer, &code(417)).unwrap().frames()[0].clone());
    let (_other, mut other_frames) = Meeting::seek(418, &config).unwrap();
    // Long enough for mDNS on loopback to answer many times over.
    let heard = tokio::time::timeout(Duration::from_secs(2), other_frames.recv()).await;
    assert!(heard.is_err(), "a seeker of 418 heard the place of 417");
}

/// Whether the host closed `stream` (rather than leaving it open) within `limit`. What it
/// wrote before (its own frame: public, as on a relay topic) may be lost to the reset that
/// closing with unread input sends.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut got = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut got))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_oversized_and_silent_connections_are_closed_before_the_session_sees_them() {
    let config = config();
    let (host, mut host_frames) = Meeting::host(417, &config).await.unwrap();
    let offer = Session::new(Role::Offer, &code(417)).unwrap();
    host.send(offer.frames()[0].clone());
    let addr = host.local_addr().unwrap();

    let well_formed = Session::new(Role::Join, &code(417)).unwrap().frames()[0].clone();
    let mut bad_role = well_formed.clone();
    bad_role[2] = 7;
    let mut bad_kind = well_formed.clone();
    bad_kind[1] = 0;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "a length above 512",
            [&[0x02, 0x01][..], &[0; 513]].concat(),
        ),
        ("an empty frame", vec![0, 0]),
        ("a frame of unknown kind", framed(&bad_kind)),
        ("a frame of an unknown role", framed(&bad_role)),
        (
            "a truncated frame then nothing",
            framed(&well_formed)[..10].to_vec(),
        ),
    ];
    // All at once, so that the ones that wait for the first frame's deadline wait together.
    let mut streams = Vec::new();
    for (what, bytes) in cases {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        streams.push((what, stream));
    }
    streams.push((
        "a silent connection",
        TcpStream::connect(addr).await.unwrap(),
    ));
    for (what, mut stream) in streams {
        assert!(
            closed_within(&mut stream, FIRST_FRAME + WAIT).await,
            "{what}: the connection stayed open"
        );
    }
    assert!(host_frames.try_recv().is_err(), "junk reached the session");

    // The place still works: a real frame arrives, and the host's frame comes back.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&framed(&well_formed)).await.unwrap();
    assert_eq!(frame(&mut host_frames).await, well_formed);
    let mut theirs = vec![0; framed(&offer.frames()[0]).len()];
    stream.read_exact(&mut theirs).await.unwrap();
    assert_eq!(theirs, framed(&offer.frames()[0]));
}

fn framed(frame: &[u8]) -> Vec<u8> {
    let mut bytes = (frame.len() as u16).to_be_bytes().to_vec();
    bytes.extend_from_slice(frame);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_sending_the_hosts_frames_back_holds_no_place() {
    let config = config();
    let (host, mut host_frames) = Meeting::host(417, &config).await.unwrap();
    let offer = Session::new(Role::Offer, &code(417)).unwrap();
    host.send(offer.frames()[0].clone());
    let addr = host.local_addr().unwrap();

    // A stranger connects as often as the place takes, and from one address: each connection
    // sends back the host's own frame (well formed, and ignored by a session) and then nothing.
    let mut strangers = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(&framed(&offer.frames()[0])).await;
        strangers.push(stream);
    }
    for stream in &mut strangers {
        assert!(
            closed_within(stream, WAIT).await,
            "a stranger's connection stayed open"
        );
    }
    assert!(
        host_frames.try_recv().is_err(),
        "an echo reached the session"
    );

    // The joining device still finds its place: its frame arrives.
    let well_formed = Session::new(Role::Join, &code(417)).unwrap().frames()[0].clone();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&framed(&well_formed)).await.unwrap();
    assert_eq!(frame(&mut host_frames).await, well_formed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_two_places() {
    let config = config();
    let (host, mut host_frames) = Meeting::host(417, &config).await.unwrap();
    let offer = Session::new(Role::Offer, &code(417)).unwrap();
    host.send(offer.frames()[0].clone());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], host.local_addr().unwrap().port()));
    // Silent connections from 127.0.0.1 (each would wait out its first frame's deadline):
    // past two, closed at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut closed_at_once = 0;
    for stream in &mut held {
        if closed_within(stream, Duration::from_millis(500)).await {
            closed_at_once += 1;
        }
    }
    assert_eq!(closed_at_once, 2);
    // From another address, a joining device's frame still arrives meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 2], 0).into()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let well_formed = Session::new(Role::Join, &code(417)).unwrap().frames()[0].clone();
    stream.write_all(&framed(&well_formed)).await.unwrap();
    assert_eq!(frame(&mut host_frames).await, well_formed);
}
