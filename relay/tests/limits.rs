//! The relay's limits over real sockets on loopback: rates, per-address and total connection
//! caps, handshakes that never finish, pings, and slow consumers.
//!
//! Clients that must count as different addresses connect from different loopback addresses
//! (127.0.0.2, 127.0.0.3, ...), which Linux routes to `lo` like 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use ferry_protocol::relay::wire::{ErrorCode, Event, MAX_DATA, Request};
use ferry_relay::{Config, SlowConsumer};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::client_async;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn a_flooding_connection_is_rate_limited_and_others_are_unaffected() {
    let relay = relay(Config {
        rate: 1.0,
        burst: 5.0,
        ..Config::default()
    })
    .await;
    let mut flooder = Peer::connect_from(loopback(2), &relay).await;
    let mut good = Peer::connect_from(loopback(3), &relay).await;
    let mut reader = Peer::connect_from(loopback(4), &relay).await;
    reader.subscribe(topic(1)).await;

    for _ in 0..50 {
        flooder.publish(topic(1), b"flood").await;
    }
    // A refused request that carries a ref is always answered.
    flooder
        .send(Request::Publish {
            topic: topic(1),
            data: vec![],
            reference: Some(11),
        })
        .await;
    // The burst goes through; the rest is refused with one error for the run of refusals (no
    // error storm), plus one for the request with a ref.
    assert_eq!(flooder.error().await, (ErrorCode::RateLimited, None));
    // (Should a token refill mid-flood on a slow machine, one more run of refusals starts and
    // gets its own error; the ref'd one still comes.)
    loop {
        match flooder.error().await {
            (ErrorCode::RateLimited, Some(11)) => break,
            (ErrorCode::RateLimited, None) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    flooder.quiet().await;

    let mut delivered = 0;
    while let Ok(Some(Ok(Message::Text(_)))) = timeout(QUIET, reader.ws.next()).await {
        delivered += 1;
    }
    // The burst, and at most one token refilled while the flood was read.
    assert!((5..=6).contains(&delivered), "{delivered} forwarded");

    // Another connection, from another address, publishes as usual.
    good.publish(topic(1), b"fine").await;
    assert!(matches!(reader.event().await, Event::Message { data, .. } if data == b"fine"));

    let (_, metrics) = http_get(&relay, "/metrics").await;
    assert!(
        metric(
            &metrics,
            "ferry_relay_rate_limited_total{budget=\"connection\"}"
        ) >= 44
    );
}

#[tokio::test]
async fn connections_of_one_address_share_its_budget() {
    let relay = relay(Config {
        rate: 100.0,
        burst: 100.0,
        rate_per_ip: 1.0,
        burst_per_ip: 4.0,
        ..Config::default()
    })
    .await;
    let mut a = Peer::connect_from(loopback(5), &relay).await;
    let mut b = Peer::connect_from(loopback(5), &relay).await;
    for n in 0..4 {
        a.send(Request::Publish {
            topic: topic(1),
            data: vec![],
            reference: Some(n),
        })
        .await;
        assert_eq!(a.event().await, Event::Ok { reference: n });
    }
    b.send(Request::Publish {
        topic: topic(1),
        data: vec![],
        reference: Some(1),
    })
    .await;
    assert_eq!(b.error().await, (ErrorCode::RateLimited, Some(1)));
    let (_, metrics) = http_get(&relay, "/metrics").await;
    assert_eq!(
        metric(&metrics, "ferry_relay_rate_limited_total{budget=\"ip\"}"),
        1
    );
}

#[tokio::test]
async fn connections_per_address_and_in_total_are_capped() {
    let relay = relay(Config {
        max_connections_per_ip: 2,
        max_connections: 4,
        ..Config::default()
    })
    .await;
    let _a = Peer::connect_from(loopback(6), &relay).await;
    let _b = Peer::connect_from(loopback(6), &relay).await;
    let third = client_async(relay.url(), tcp_from(loopback(6), &relay).await).await;
    let error = third.unwrap_err().to_string();
    assert!(error.contains("429"), "{error}");
    // Another address still gets in.
    let _c = Peer::connect_from(loopback(7), &relay).await;
    let _d = Peer::connect_from(loopback(8), &relay).await;
    // The relay is full now: a fifth connection is told so.
    let mut stream = tcp_from(loopback(9), &relay).await;
    let mut answer = String::new();
    timeout(WAIT, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}

/// Regression: the per-address cap applied only after the handshake, so idle sockets from one
/// address filled the relay and a real client from another address got 503.
#[tokio::test]
async fn idle_sockets_from_one_address_leave_room_for_other_addresses() {
    let relay = relay(Config {
        max_connections: 20,
        max_connections_per_ip: 4,
        ..Config::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tcp_from(loopback(20), &relay).await);
    }
    // Past its cap, the address is told so at once.
    let mut answer = String::new();
    timeout(WAIT, idle[19].read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    // Another address connects and works.
    let mut other = Peer::connect_from(loopback(21), &relay).await;
    other.subscribe(topic(1)).await;
    let (_, metrics) = http_get(&relay, "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "ferry_relay_rejections_total{reason=\"ip_connection_limit\"}"
        ),
        16
    );
}

/// The last tenth of the slots is kept for addresses that hold no connection yet.
#[tokio::test]
async fn the_last_slots_are_kept_for_new_addresses() {
    let relay = relay(Config {
        max_connections: 10,
        max_connections_per_ip: 10,
        ..Config::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..9 {
        held.push(Peer::connect_from(loopback(22), &relay).await);
    }
    // The tenth slot is not for the address that holds nine.
    let refused = client_async(relay.url(), tcp_from(loopback(22), &relay).await).await;
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("503"), "{error}");
    let _newcomer = Peer::connect_from(loopback(23), &relay).await;
}

/// Regression: pings went around the rate limits (20,000 pings got 20,000 pongs).
#[tokio::test]
async fn pings_count_against_the_rate_limits() {
    let relay = relay(Config {
        rate: 10.0,
        burst: 20.0,
        ..Config::default()
    })
    .await;
    let mut flooder = Peer::connect_from(loopback(24), &relay).await;
    let mut sent = 0;
    for _ in 0..2_000 {
        if flooder
            .ws
            .feed(Message::Ping(Default::default()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let _ = flooder.ws.flush().await;
    let mut pongs = 0;
    let code = loop {
        match timeout(WAIT, flooder.ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Pong(_))) => pongs += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(sent > 100, "{sent} pings sent");
    // The burst, and what the rate refilled while they were read.
    assert!(pongs <= 25, "{pongs} pongs for {sent} pings");
    // The close frame, unless the unread pings made the close a reset.
    assert!(matches!(code, Some(CloseCode::Policy) | None), "{code:?}");
    let (_, metrics) = http_get(&relay, "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "ferry_relay_closed_total{reason=\"control_flood\"}"
        ),
        1
    );
    // Another client is unaffected.
    let mut other = Peer::connect_from(loopback(25), &relay).await;
    other.subscribe(topic(2)).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_dropped() {
    let relay = relay(Config {
        handshake_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut silent = TcpStream::connect(relay.local_addr()).await.unwrap();
    let mut slow = TcpStream::connect(relay.local_addr()).await.unwrap();
    slow.write_all(b"GET /v1/ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    for stream in [&mut silent, &mut slow] {
        let mut buffer = [0u8; 64];
        let read = timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("not dropped");
        assert_eq!(read.unwrap_or(0), 0, "the relay closes without answering");
    }
    let (_, metrics) = http_get(&relay, "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "ferry_relay_rejections_total{reason=\"handshake_timeout\"}"
        ),
        2
    );
}

#[tokio::test]
async fn pings_keep_a_reading_client_alive_and_silent_ones_are_closed() {
    let relay = relay(Config {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..Config::default()
    })
    .await;
    let mut alive = Peer::connect(&relay).await;
    alive.subscribe(topic(1)).await;
    // A client that completes the handshake and then never reads (so never answers a ping).
    let mut mute = TcpStream::connect(relay.local_addr()).await.unwrap();
    let upgrade = "GET /v1/ws HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    mute.write_all(upgrade.as_bytes()).await.unwrap();

    // The live client sees pings and answers them (tungstenite answers while reading).
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(1200);
    while let Ok(frame) = tokio::time::timeout_at(until, alive.ws.next()).await {
        match frame.unwrap().unwrap() {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 3, "{pings} pings");
    let mut publisher = Peer::connect(&relay).await;
    publisher.publish(topic(1), b"still here").await;
    assert!(matches!(alive.event().await, Event::Message { .. }));

    // The mute client's buffered bytes: the 101 answer, pings, then a close frame with 1001.
    let mut bytes = Vec::new();
    timeout(WAIT, mute.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    let close = [0x88, 0x06, 0x03, 0xE9, b'i', b'd', b'l', b'e'];
    assert!(
        bytes.ends_with(&close),
        "{:?}",
        &bytes[bytes.len().saturating_sub(16)..]
    );
    let (_, metrics) = http_get(&relay, "/metrics").await;
    assert!(metric(&metrics, "ferry_relay_closed_total{reason=\"idle\"}") >= 1);
}

#[tokio::test]
async fn slow_consumers_lose_old_messages_or_their_connection() {
    for policy in [SlowConsumer::DropOldest, SlowConsumer::Disconnect] {
        let relay = relay(Config {
            rate: 1e9,
            burst: 1e9,
            rate_per_ip: 1e9,
            burst_per_ip: 1e9,
            send_queue: 4,
            slow_consumer: policy,
            write_timeout: Duration::from_secs(30),
            ..Config::default()
        })
        .await;
        // A subscriber that stops reading: its socket buffers fill, then its queue.
        let mut stalled = Peer::connect_from(loopback(10), &relay).await;
        stalled.subscribe(topic(1)).await;
        let mut publisher = Peer::connect_from(loopback(11), &relay).await;
        let payload = vec![0xAB; MAX_DATA];
        let mut dropped = 0;
        for round in 0..200 {
            for _ in 0..100 {
                publisher.publish(topic(1), &payload).await;
            }
            let (_, metrics) = http_get(&relay, "/metrics").await;
            dropped = metric(&metrics, "ferry_relay_dropped_total");
            let closed = metric(
                &metrics,
                "ferry_relay_closed_total{reason=\"slow_consumer\"}",
            );
            if dropped > 0 && (policy == SlowConsumer::DropOldest || closed == 1) {
                break;
            }
            assert!(round < 199, "{policy:?}: the queue never overflowed");
        }
        assert!(dropped > 0);
        if policy == SlowConsumer::Disconnect {
            assert_eq!(stalled.closed().await, Some(CloseCode::Policy));
        }
    }
}

/// Subscribes `peer` to `topic`, answering with the relay's refusal if there is one.
async fn try_subscribe(peer: &mut Peer, topic: ferry_protocol::TopicId) -> Result<(), ErrorCode> {
    peer.send(Request::Subscribe {
        topic,
        reference: Some(9),
    })
    .await;
    match peer.event().await {
        Event::Ok { reference: 9 } => Ok(()),
        Event::Error {
            code,
            reference: Some(9),
            ..
        } => Err(code),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_pairing_codes_topic_takes_two_devices_and_an_address_few_codes() {
    let relay = relay(Config::default()).await;
    let code = ferry_protocol::pairing::topic(417);
    // The two devices pairing, from two addresses; a third is told the place is crowded.
    let mut offer = Peer::connect_from(loopback(2), &relay).await;
    let mut join = Peer::connect_from(loopback(3), &relay).await;
    let mut third = Peer::connect_from(loopback(4), &relay).await;
    assert_eq!(try_subscribe(&mut offer, code).await, Ok(()));
    assert_eq!(try_subscribe(&mut join, code).await, Ok(()));
    assert_eq!(
        try_subscribe(&mut third, code).await,
        Err(ErrorCode::Crowded)
    );
    // The two still meet.
    offer.publish(code, b"frame").await;
    assert_eq!(
        join.event().await,
        Event::Message {
            topic: code,
            data: b"frame".to_vec()
        }
    );
    // Once one leaves, there is room again.
    drop(offer);
    let mut later = Peer::connect_from(loopback(5), &relay).await;
    let mut tries = 0;
    while try_subscribe(&mut later, code).await.is_err() {
        tries += 1;
        assert!(tries < 50, "the place stayed full");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // One address covers four codes at most, whatever its connections; other topics are
    // not counted.
    let mut squatter = Peer::connect_from(loopback(6), &relay).await;
    let mut second = Peer::connect_from(loopback(6), &relay).await;
    for nameplate in 0..3 {
        let topic = ferry_protocol::pairing::topic(nameplate);
        assert_eq!(try_subscribe(&mut squatter, topic).await, Ok(()));
    }
    assert_eq!(
        try_subscribe(&mut second, ferry_protocol::pairing::topic(3)).await,
        Ok(())
    );
    assert_eq!(
        try_subscribe(&mut second, ferry_protocol::pairing::topic(4)).await,
        Err(ErrorCode::TooManyPairings)
    );
    assert_eq!(try_subscribe(&mut second, topic(1)).await, Ok(()));
    // A connection that closes gives its codes back.
    drop(squatter);
    let mut tries = 0;
    while try_subscribe(&mut second, ferry_protocol::pairing::topic(4))
        .await
        .is_err()
    {
        tries += 1;
        assert!(tries < 50, "the address's codes were not given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, text) = http_get(&relay, "/metrics").await;
    assert_eq!(
        metric(&text, "ferry_relay_rejections_total{reason=\"crowded\"}"),
        1
    );
}
