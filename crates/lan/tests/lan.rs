//! Whole LAN endpoints on 127.0.0.1: discovery by mDNS on the loopback interface (on a port of
//! each test's own, so tests do not meet each other or the machine's mDNS), connections,
//! frames, strangers, and names that turn.

use std::sync::Arc;
use std::time::Duration;

use ferry_lan::Frame;
use ferry_lan::{CallError, DiscoveryConfig, Event, Events, Lan, LanConfig, Peer, Unanswered};
use ferry_protocol::{DeviceId, DeviceTag, Identity, LanKey, SyncKey};
use ferry_test_kit::eventually_async;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

fn key(seed: u8) -> LanKey {
    SyncKey::from_bytes([seed; 32]).keys().lan
}

/// A UDP port no one uses now, for one test's mDNS.
fn mdns_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The identity of device `seed` (whose id is `[seed; 16]`).
fn identity(seed: u8) -> Arc<Identity> {
    Arc::new(Identity::from_secret_bytes(&[seed; Identity::SECRET_LEN]))
}

fn config(device: u8, mdns: Option<u16>) -> LanConfig {
    let mut config = LanConfig::new(DeviceId([device; 16]), identity(device));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.discovery = mdns.map(|mdns_port| DiscoveryConfig {
        mdns_port,
        loopback_only: true,
        ..DiscoveryConfig::default()
    });
    config
}

async fn start(config: LanConfig, key: &LanKey) -> (Lan, Events) {
    Lan::start(config, key).await.unwrap()
}

/// The next event, within [`WAIT`].
async fn event(events: &mut Events) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no LAN event came")
        .expect("the LAN stopped")
}

/// Waits for the segment frame `seq` among `events`.
async fn received(events: &mut Events, seq: u64) {
    let wanted = segment(seq);
    loop {
        if let Event::Received { frame, .. } = event(events).await
            && frame == wanted
        {
            return;
        }
    }
}

/// Waits until `lan` is connected to exactly `devices`.
async fn connected_to(lan: &mut Lan, devices: &[u8]) -> Vec<Peer> {
    let wanted: Vec<DeviceId> = devices.iter().map(|&d| DeviceId([d; 16])).collect();
    tokio::time::timeout(WAIT, async {
        let mut peers = lan.peers();
        loop {
            if peers.iter().map(|p| p.device).collect::<Vec<_>>() == wanted {
                return peers;
            }
            peers = lan.peers_changed().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not connected to {wanted:?}: {:?}", lan.peers()))
}

/// An mDNS browser on the test's own port, listening as the devices announce themselves.
fn watch_names(
    port: u16,
) -> (
    mdns_sd::ServiceDaemon,
    mdns_sd::Receiver<mdns_sd::ServiceEvent>,
) {
    let daemon = mdns_sd::ServiceDaemon::new_with_port(port).unwrap();
    daemon.disable_interface(mdns_sd::IfKind::All).unwrap();
    daemon
        .enable_interface(mdns_sd::IfKind::LoopbackV4)
        .unwrap();
    let browse = daemon.browse(ferry_protocol::lan::SERVICE_TYPE).unwrap();
    (daemon, browse)
}

/// Waits until `count` different names have been announced on the browser's port.
async fn names_announced(
    (_daemon, browse): &(
        mdns_sd::ServiceDaemon,
        mdns_sd::Receiver<mdns_sd::ServiceEvent>,
    ),
    count: usize,
) {
    let mut seen = std::collections::HashSet::new();
    tokio::time::timeout(WAIT, async {
        while seen.len() < count {
            if let Ok(mdns_sd::ServiceEvent::ServiceResolved(service)) = browse.recv_async().await {
                seen.insert(service.fullname.clone());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} names were announced: {seen:?}", seen.len()));
}

fn segment(seq: u64) -> Frame {
    Frame::Segment {
        device: DeviceTag([1; 16]),
        seq,
        sealed: vec![seq as u8; 100],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_of_one_group_find_each_other_and_pass_frames_in_order() {
    let mdns = Some(mdns_port());
    let (mut a, mut a_events) = start(config(1, mdns), &key(1)).await;
    let (mut b, mut b_events) = start(config(2, mdns), &key(1)).await;
    assert!(a.discovering() && b.discovering());
    let peer = &connected_to(&mut a, &[2]).await[0];
    assert_eq!(peer.listening, b.local_addr());
    connected_to(&mut b, &[1]).await;
    assert!(
        matches!(event(&mut a_events).await, Event::Connected(p) if p.device == DeviceId([2; 16]))
    );
    assert!(
        matches!(event(&mut b_events).await, Event::Connected(p) if p.device == DeviceId([1; 16]))
    );
    for seq in 1..=100 {
        a.send(None, segment(seq));
    }
    b.send(
        Some(DeviceId([1; 16])),
        Frame::Heads(vec![(DeviceTag([1; 16]), 7)]),
    );
    for seq in 1..=100 {
        match event(&mut b_events).await {
            Event::Received { from, frame } => {
                assert_eq!(from, DeviceId([1; 16]));
                assert_eq!(frame, segment(seq));
            }
            other => panic!("{other:?}"),
        }
    }
    match event(&mut a_events).await {
        Event::Received { frame, .. } => {
            assert_eq!(frame, Frame::Heads(vec![(DeviceTag([1; 16]), 7)]))
        }
        other => panic!("{other:?}"),
    }
    // One going away is reported to the other.
    drop(b);
    match event(&mut a_events).await {
        Event::Disconnected { device, .. } => assert_eq!(device, DeviceId([2; 16])),
        other => panic!("{other:?}"),
    }
    assert!(a.peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_with_another_key_neither_connects_nor_learns_anything() {
    let mdns = Some(mdns_port());
    let (mut a, mut a_events) = start(config(1, mdns), &key(1)).await;
    let (mut b, _b_events) = start(config(2, mdns), &key(1)).await;
    // The stranger browses the same network and also dials the group directly.
    let mut stranger_config = config(3, mdns);
    stranger_config.peers = vec![a.local_addr().to_string(), b.local_addr().to_string()];
    stranger_config.redial_every = Duration::from_millis(100);
    let (stranger, mut stranger_events) = start(stranger_config, &key(2)).await;
    connected_to(&mut a, &[2]).await;
    connected_to(&mut b, &[1]).await;
    assert!(matches!(event(&mut a_events).await, Event::Connected(_)));
    a.send(None, segment(1));
    // The stranger tried both, and both refused it: only then does its silence say anything.
    eventually_async(WAIT, "both devices to refuse the stranger", || async {
        (a.refused() > 0 && b.refused() > 0 && stranger.refused() > 0).then_some(())
    })
    .await;
    assert!(stranger.peers().is_empty());
    // It is told only that the devices it dialled refused it (once each), nothing of theirs.
    while let Ok(event) = stranger_events.try_recv() {
        assert!(
            matches!(event, Event::Refused { .. }),
            "the stranger received something: {event:?}"
        );
    }
    assert_eq!(a.peers().len(), 1);
    assert_eq!(b.peers().len(), 1);
    assert!(
        a_events.try_recv().is_err(),
        "the stranger's attempts reached the application"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_discovery_off_fixed_peers_still_connect() {
    let (mut a, _a_events) = start(config(1, None), &key(1)).await;
    assert!(!a.discovering());
    let mut b_config = config(2, None);
    b_config.peers = vec![format!("localhost:{}", a.local_addr().port())];
    let (mut b, _b_events) = start(b_config, &key(1)).await;
    connected_to(&mut a, &[2]).await;
    let peer = &connected_to(&mut b, &[1]).await[0];
    assert!(peer.dialed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_peer_that_starts_listening_late_is_reached_soon_not_at_the_next_redial() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut b_config = config(2, None);
    b_config.peers = vec![format!("127.0.0.1:{port}")];
    // Only the quick tries after a dial finds nothing listening can connect in this test.
    b_config.redial_every = Duration::from_secs(3600);
    let (mut b, _b_events) = start(b_config, &key(1)).await;
    // The first dial finds nothing (the peer's agent starting again), and so does the next.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut a_config = config(1, None);
    a_config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let (mut a, _a_events) = start(a_config, &key(1)).await;
    connected_to(&mut b, &[1]).await;
    connected_to(&mut a, &[2]).await;
}

/// Waits until `lan` has one peer, over a connection it `dialed` (or not).
async fn settled(lan: &mut Lan, dialed: bool) -> Peer {
    tokio::time::timeout(WAIT, async {
        let mut peers = lan.peers();
        loop {
            if let [peer] = peers.as_slice()
                && peer.dialed == dialed
            {
                return peer.clone();
            }
            peers = lan.peers_changed().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never settled: {:?}", lan.peers()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_dialling_each_other_keep_one_connection() {
    let (mut a, mut a_events) = start(config(1, None), &key(1)).await;
    let (mut b, mut b_events) = start(config(2, None), &key(1)).await;
    // Both dial, repeatedly, and both keep the connection the smaller id (1) dialled.
    for _ in 0..5 {
        a.dial(b.local_addr());
        b.dial(a.local_addr());
    }
    let kept = settled(&mut a, true).await;
    settled(&mut b, false).await;
    for _ in 0..5 {
        a.dial(b.local_addr());
        b.dial(a.local_addr());
    }
    // Each side handles its commands in order: a frame sent after the dials and received on
    // the other side means the dials were handled (and found the device connected).
    a.send(None, segment(7));
    b.send(None, segment(8));
    received(&mut b_events, 7).await;
    received(&mut a_events, 8).await;
    assert_eq!(a.peers(), vec![kept.clone()]);
    assert!(kept.dialed);
    assert_eq!(b.peers().len(), 1);
    assert!(!b.peers()[0].dialed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_turn_mid_session_and_newcomers_still_find_the_group() {
    let port = mdns_port();
    let turning = |device| {
        let mut config = config(device, Some(port));
        if let Some(discovery) = &mut config.discovery {
            discovery.period = Duration::from_secs(1);
        }
        config
    };
    let names = watch_names(port);
    let (mut a, _a_events) = start(turning(1), &key(1)).await;
    let (_b, _b_events) = start(turning(2), &key(1)).await;
    connected_to(&mut a, &[2]).await;
    // Two turns of the name: each device has announced three names.
    names_announced(&names, 6).await;
    let before = a.peers();
    let (mut c, _c_events) = start(turning(3), &key(1)).await;
    connected_to(&mut c, &[1, 2]).await;
    // The connection made before the newcomer came lives on.
    let after = connected_to(&mut a, &[2, 3]).await;
    assert_eq!(after[0], before[0]);
}

/// Two devices connected by a dial, without mDNS; `b` answers calls of up to `max_question`.
async fn two_connected(max_question: usize) -> ((Lan, Events), (Lan, Events)) {
    let (mut a, a_events) = start(config(1, None), &key(1)).await;
    let mut b_config = config(2, None);
    b_config.max_question = max_question;
    let (mut b, b_events) = start(b_config, &key(1)).await;
    a.dial(b.local_addr());
    connected_to(&mut a, &[2]).await;
    connected_to(&mut b, &[1]).await;
    ((a, a_events), (b, b_events))
}

/// The next question `events` brings, past connections and frames.
async fn asked(events: &mut Events) -> (DeviceId, u32, Vec<u8>) {
    loop {
        if let Event::Asked {
            from,
            call,
            question,
        } = event(events).await
        {
            return (from, call, question);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_carries_questions_and_answers_larger_than_a_frame_without_holding_up_frames() {
    let ((a, mut a_events), (b, mut b_events)) = two_connected(8 << 20).await;
    let question = ferry_test_kit::random::Rng::new(7).bytes(3 << 20);
    let answer = ferry_test_kit::random::Rng::new(8).bytes(20 << 20);
    let calls = a.calls();
    let asking = tokio::spawn({
        let question = question.clone();
        async move {
            calls
                .ask(DeviceId([2; 16]), &question, 21 << 20, WAIT)
                .await
        }
    });
    let (from, call, got) = asked(&mut b_events).await;
    assert_eq!((from, got == question), (DeviceId([1; 16]), true));
    let answering = tokio::spawn({
        let (calls, answer) = (b.calls(), answer.clone());
        async move { calls.answer(from, call, &answer, WAIT).await }
    });
    // A frame sent while the answer is on its way goes ahead of the answer's parts.
    b.send(Some(from), segment(1));
    received(&mut a_events, 1).await;
    assert!(
        !asking.is_finished(),
        "the segment came after the whole answer"
    );
    answering.await.unwrap().unwrap();
    assert_eq!(asking.await.unwrap().unwrap(), answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_cannot_be_answered_say_why() {
    let ((a, _a_events), (b, mut b_events)) = two_connected(1 << 20).await;
    let calls = a.calls();
    let b_id = DeviceId([2; 16]);
    // Not connected.
    assert_eq!(
        calls.ask(DeviceId([9; 16]), b"q", 100, WAIT).await,
        Err(CallError::NotConnected)
    );
    // A question larger than b takes: refused at once, and b hears nothing of it.
    let big = vec![0; (1 << 20) + 1];
    assert_eq!(
        calls.ask(b_id, &big, 100, WAIT).await,
        Err(CallError::Unanswered(Unanswered::TooLarge))
    );
    // A device that takes no questions.
    assert_eq!(
        b.calls().ask(DeviceId([1; 16]), b"q", 100, WAIT).await,
        Err(CallError::Unanswered(Unanswered::NotHeld))
    );
    // An answer larger than the asker takes.
    let asking = tokio::spawn({
        let calls = calls.clone();
        async move { calls.ask(b_id, b"small", 10, WAIT).await }
    });
    let (from, call, question) = asked(&mut b_events).await;
    assert_eq!(question, b"small");
    b.calls().answer(from, call, &[1; 11], WAIT).await.unwrap();
    assert_eq!(asking.await.unwrap(), Err(CallError::TooLarge(10)));
    // b refuses.
    let asking = tokio::spawn({
        let calls = calls.clone();
        async move { calls.ask(b_id, b"again", 10, WAIT).await }
    });
    let (from, call, _) = asked(&mut b_events).await;
    b.calls().refuse(from, call, Unanswered::Busy);
    assert_eq!(
        asking.await.unwrap(),
        Err(CallError::Unanswered(Unanswered::Busy))
    );
    // b never answers: the asker gives up at its timeout.
    let short = Duration::from_millis(300);
    assert_eq!(
        calls.ask(b_id, b"silence", 10, short).await,
        Err(CallError::TimedOut(short))
    );
    let _ = asked(&mut b_events).await;
    // b goes away mid-call.
    let asking = tokio::spawn({
        let calls = calls.clone();
        async move { calls.ask(b_id, b"last", 10, WAIT).await }
    });
    let _ = asked(&mut b_events).await;
    drop(b);
    assert_eq!(asking.await.unwrap(), Err(CallError::Disconnected));
}

/// The signing key of device `seed`.
fn signing_key(seed: u8) -> (DeviceId, [u8; 32]) {
    (DeviceId([seed; 16]), identity(seed).public().sign)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_rosters_devices_connect_each_proving_its_own_key() {
    let mut a_config = config(1, None);
    let members = a_config.members.clone();
    members.set([signing_key(1), signing_key(2)]);
    // Device 2's connection is held open: the first connection a device keeps.
    a_config.redial_every = Duration::from_millis(200);
    let (mut a, _a_events) = start(a_config, &key(1)).await;
    let port = a.local_addr().port();
    let dial_a = |device: u8, identity: Arc<Identity>| {
        let mut config = LanConfig::new(DeviceId([device; 16]), identity);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.discovery = None;
        config.peers = vec![format!("127.0.0.1:{port}")];
        // Past four handshakes at once from one address, more are closed unheard: dialling
        // again is how a device gets in then.
        config.redial_every = Duration::from_millis(300);
        config
    };
    let (mut b, _b_events) = start(dial_a(2, identity(2)), &key(1)).await;
    let real = connected_to(&mut a, &[2]).await;
    connected_to(&mut b, &[1]).await;

    // With the sync key but not in the roster: invented ids, and device 2's id with another key.
    let mut strangers = Vec::new();
    for seed in 10..20 {
        strangers.push(start(dial_a(seed, identity(seed)), &key(1)).await);
    }
    let (impostor, _impostor_events) = start(dial_a(2, identity(99)), &key(1)).await;
    for _ in 0..3 {
        impostor.dial(a.local_addr());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(impostor.peers().is_empty(), "{:?}", impostor.peers());
    for (stranger, _) in &strangers {
        assert!(stranger.peers().is_empty(), "{:?}", stranger.peers());
    }
    // Neither listed nor displacing the real device's connection.
    assert_eq!(a.peers(), real);

    // Once the roster names a newcomer, it connects: dialled again from where it said it
    // listens, or dialling again itself.
    members.set([signing_key(1), signing_key(2), signing_key(10)]);
    connected_to(&mut a, &[2, 10]).await;
    assert_eq!(a.peers()[0], real[0]);
    // And once the roster drops a device, its connection closes.
    members.set([signing_key(1), signing_key(10)]);
    connected_to(&mut a, &[10]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_let_in_beside_its_devices_connection_and_not_listed() {
    let ((a, _a_events), (mut b, _b_events)) = two_connected(1024).await;
    let before = a.peers();
    let mut caller_config = config(1, None);
    caller_config.caller = true;
    caller_config.listen = "127.0.0.1:0".parse().unwrap();
    let (caller, _caller_events) = start(caller_config, &key(1)).await;
    caller.dial(b.local_addr());
    let calls = caller.calls();
    assert!(calls.wait_for(DeviceId([2; 16]), WAIT).await);
    // Device 1's own connection stays; the caller is not among the peers.
    assert_eq!(a.peers(), before);
    assert_eq!(connected_to(&mut b, &[1]).await.len(), 1);
}

/// Connections from `ip` to `to`, opened and left silent in their handshake; the ones the
/// other side closed at once are dropped.
async fn hold_handshakes(
    ip: [u8; 4],
    to: std::net::SocketAddr,
    n: usize,
) -> (Vec<TcpStream>, usize) {
    let mut held = Vec::new();
    let mut closed = 0;
    for _ in 0..n {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((ip, 0).into()).unwrap();
        let mut stream = socket.connect(to).await.unwrap();
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await {
            Ok(Ok(0) | Err(_)) => closed += 1,
            _ => held.push(stream),
        }
    }
    (held, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_holding_handshakes_do_not_keep_the_groups_devices_apart() {
    let mut a_config = config(1, None);
    a_config.handshake_timeout = Duration::from_secs(30);
    let (mut a, _a_events) = start(a_config, &key(1)).await;
    let to_a = a.local_addr();
    let b_config = || {
        let mut config = config(2, None);
        config.peers = vec![format!("127.0.0.1:{}", to_a.port())];
        config
    };
    let (b, b_events) = start(b_config(), &key(1)).await;
    connected_to(&mut a, &[2]).await;

    // A stranger from twenty addresses holds four handshakes open from each: past the limit
    // per address, and past the strangers' slots, the rest are closed at once.
    let mut stranger = Vec::new();
    let mut closed = 0;
    for host in 2..22 {
        let (held, refused) = hold_handshakes([127, 0, 0, host], to_a, 5).await;
        stranger.extend(held);
        closed += refused;
    }
    assert!(stranger.len() <= 32, "{} handshakes held", stranger.len());
    assert!(closed >= 100 - 32, "{closed} closed at once");

    // The device restarts while the stranger holds on: it is let in, from an address that
    // completed a hello before.
    drop((b, b_events));
    let (_b, _b_events) = start(b_config(), &key(1)).await;
    tokio::time::timeout(WAIT, async {
        loop {
            let peers = a.peers_changed().await;
            if peers.iter().any(|p| p.device == DeviceId([2; 16])) && peers.len() == 1 {
                return;
            }
        }
    })
    .await
    .expect("the restarted device did not reconnect");
    // And this device's own dials do not wait behind the stranger: a newcomer it dials
    // connects although every slot for strangers is taken.
    let mut c_config = config(3, None);
    c_config.listen = "127.0.0.3:0".parse().unwrap();
    let (c, _c_events) = start(c_config, &key(1)).await;
    a.dial(c.local_addr());
    connected_to(&mut a, &[2, 3]).await;
    drop(stranger);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_lets_in_few_callers_it_does_not_know_and_takes_only_calls_from_them() {
    let mut a_config = config(1, None);
    a_config.max_question = 1024;
    a_config.members.set([signing_key(1), signing_key(2)]);
    let (a, mut a_events) = start(a_config, &key(1)).await;
    // Callers with keys the roster does not know (devices joining with the recovery code),
    // all from 127.0.0.1: two are let in, the third is closed at once.
    let mut callers = Vec::new();
    for seed in 20..23 {
        let mut caller = config(seed, None);
        caller.caller = true;
        let (lan, events) = start(caller, &key(1)).await;
        lan.dial(a.local_addr());
        let reached = lan
            .calls()
            .wait_for(DeviceId([1; 16]), Duration::from_secs(2))
            .await;
        callers.push((lan, events, reached));
    }
    // The third is never told it is connected: the holder did not keep it.
    let reached: Vec<bool> = callers.iter().map(|(_, _, reached)| *reached).collect();
    assert_eq!(reached, [true, true, false]);
    assert!(
        a.peers().is_empty(),
        "callers are not listed: {:?}",
        a.peers()
    );

    // What a caller sends beyond calls (a segment) never reaches the application; its calls
    // do, and are answered.
    let (caller, _, _) = &callers[0];
    caller.send(Some(DeviceId([1; 16])), segment(5));
    let calls = caller.calls();
    let asking =
        tokio::spawn(async move { calls.ask(DeviceId([1; 16]), b"question", 1024, WAIT).await });
    let (from, call, question) = loop {
        match event(&mut a_events).await {
            Event::Asked {
                from,
                call,
                question,
            } => break (from, call, question),
            Event::Received { frame, .. } => panic!("a caller's {frame:?} reached the application"),
            _ => {}
        }
    };
    assert_eq!(question, b"question");
    a.calls().answer(from, call, b"answer", WAIT).await.unwrap();
    assert_eq!(asking.await.unwrap().unwrap(), b"answer");
}
