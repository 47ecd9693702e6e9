//! The relay over real sockets on loopback: fan-out, every error code, keepalive, shutdown, the
//! HTTP endpoints and the proxy settings. (The limits are in `limits.rs`.)

mod common;

use std::time::Duration;

use common::*;
use ferry_protocol::relay::wire::{ErrorCode, Event, Request};
use ferry_relay::{Config, RunningRelay};
use ferry_test_kit::eventually_async;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::client_async;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn publish_reaches_every_other_subscriber_but_not_the_publisher() {
    let relay = relay(Config::default()).await;
    let mut peers = Vec::new();
    for _ in 0..3 {
        let mut peer = Peer::connect(&relay).await;
        peer.subscribe(topic(1)).await;
        peers.push(peer);
    }
    let mut outsider = Peer::connect(&relay).await;
    outsider.subscribe(topic(2)).await;

    peers[0].publish(topic(1), b"sealed hint").await;
    for peer in &mut peers[1..] {
        assert_eq!(
            peer.event().await,
            Event::Message {
                topic: topic(1),
                data: b"sealed hint".to_vec()
            }
        );
    }
    peers[0].quiet().await;
    outsider.quiet().await;

    // A publish with a ref is acknowledged to the publisher only.
    peers[1]
        .send(Request::Publish {
            topic: topic(1),
            data: vec![9],
            reference: Some(77),
        })
        .await;
    assert_eq!(peers[1].event().await, Event::Ok { reference: 77 });
    assert!(matches!(peers[0].event().await, Event::Message { .. }));
    assert!(matches!(peers[2].event().await, Event::Message { .. }));
}

#[tokio::test]
async fn unsubscribed_connections_receive_nothing() {
    let relay = relay(Config::default()).await;
    let mut publisher = Peer::connect(&relay).await;
    let mut reader = Peer::connect(&relay).await;
    reader.subscribe(topic(1)).await;
    reader
        .send(Request::Unsubscribe {
            topic: topic(1),
            reference: Some(2),
        })
        .await;
    assert_eq!(reader.event().await, Event::Ok { reference: 2 });
    publisher.publish(topic(1), b"x").await;
    reader.quiet().await;

    // Subscribing again after a disconnect of another subscriber still works.
    reader.subscribe(topic(1)).await;
    publisher.publish(topic(1), b"y").await;
    assert!(matches!(reader.event().await, Event::Message { data, .. } if data == b"y"));
}

#[tokio::test]
async fn each_bad_request_gets_its_error_code_and_the_connection_stays() {
    let relay = relay(Config {
        max_topics: 2,
        ..Config::default()
    })
    .await;
    refuses_each_bad_request(&relay, 1).await;
}

#[tokio::test]
async fn an_oversize_frame_gets_too_large_then_a_close() {
    let relay = relay(Config {
        max_message_size: 2048,
        ..Config::default()
    })
    .await;
    let mut peer = Peer::connect(&relay).await;
    peer.send_text(&"x".repeat(3000)).await;
    assert_eq!(peer.error().await, (ErrorCode::TooLarge, None));
    assert_eq!(peer.closed().await, Some(CloseCode::Size));
}

#[tokio::test]
async fn shutdown_closes_connections_with_going_away() {
    let relay = relay(Config::default()).await;
    let mut peer = Peer::connect(&relay).await;
    peer.subscribe(topic(1)).await;
    let stopping = tokio::spawn(relay.stop());
    assert_eq!(peer.closed().await, Some(CloseCode::Away));
    timeout(WAIT, stopping).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn healthz_and_metrics_answer_over_http() {
    let relay = relay(Config::default()).await;
    assert_eq!(http_get(&relay, "/healthz").await, (200, "ok\n".to_owned()));

    let mut a = Peer::connect(&relay).await;
    let mut b = Peer::connect(&relay).await;
    a.subscribe(topic(1)).await;
    b.subscribe(topic(1)).await;
    b.subscribe(topic(2)).await;
    a.publish(topic(1), b"0123456789").await;
    b.event().await;

    let (status, metrics) = http_get(&relay, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&metrics, "ferry_relay_connections"), 2);
    assert_eq!(metric(&metrics, "ferry_relay_topics"), 2);
    assert_eq!(metric(&metrics, "ferry_relay_subscriptions"), 3);
    assert_eq!(metric(&metrics, "ferry_relay_messages_in_total"), 4);
    assert_eq!(metric(&metrics, "ferry_relay_messages_out_total"), 1);
    assert!(metric(&metrics, "ferry_relay_bytes_out_total") > 10);
    assert!(metrics.contains("# TYPE ferry_relay_connections gauge"));
    // Nothing in the metrics names a topic.
    assert!(!metrics.contains(&topic(1).to_string()));

    drop(b);
    let metrics = eventually_async(
        Duration::from_secs(5),
        "a closed connection's subscriptions to be removed",
        || async {
            let (_, metrics) = http_get(&relay, "/metrics").await;
            (metric(&metrics, "ferry_relay_subscriptions") == 1).then_some(metrics)
        },
    )
    .await;
    assert_eq!(metric(&metrics, "ferry_relay_topics"), 1);

    assert_eq!(http_get(&relay, "/other").await.0, 404);
    assert_eq!(http_get(&relay, "/v1/ws").await.0, 426);
}

#[tokio::test]
async fn behind_a_proxy_the_forwarded_address_is_the_one_counted() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let relay = relay(Config {
        behind_proxy: true,
        max_connections_per_ip: 1,
        ..Config::default()
    })
    .await;
    let via_proxy = |client: &'static str| {
        let mut request = relay.url().into_client_request().unwrap();
        let forwarded = format!("203.0.113.99, {client}");
        request
            .headers_mut()
            .insert("X-Forwarded-For", forwarded.parse().unwrap());
        request
    };
    // All connections come from the proxy's address (127.0.0.1); two clients behind it each get
    // their own slot, and a second connection of one client does not.
    let stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    let _one = client_async(via_proxy("198.51.100.1"), stream)
        .await
        .unwrap();
    let stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    let _two = client_async(via_proxy("198.51.100.2"), stream)
        .await
        .unwrap();
    let stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    let again = client_async(via_proxy("198.51.100.1"), stream).await;
    assert!(again.unwrap_err().to_string().contains("429"));
}

#[tokio::test]
async fn without_behind_proxy_forwarded_headers_are_ignored() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let relay = relay(Config {
        max_connections_per_ip: 1,
        ..Config::default()
    })
    .await;
    let mut request = relay.url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("X-Forwarded-For", "198.51.100.7".parse().unwrap());
    let stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    let _first = client_async(request.clone(), stream).await.unwrap();
    request
        .headers_mut()
        .insert("X-Forwarded-For", "198.51.100.8".parse().unwrap());
    let stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    let spoofed = client_async(request, stream).await;
    assert!(spoofed.unwrap_err().to_string().contains("429"));
}

#[tokio::test]
async fn a_relay_with_an_unusable_certificate_does_not_start() {
    let missing = std::path::PathBuf::from("/nonexistent/ferry-relay/cert.pem");
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert: Some(missing.clone()),
        tls_key: Some(missing),
        ..Config::default()
    };
    assert!(ferry_relay::check(&config).is_err());
    let error = RunningRelay::start(config)
        .await
        .err()
        .expect("started with a missing certificate");
    let message = error.to_string();
    assert!(
        message.contains("cert.pem") && message.contains("--tls-cert"),
        "{message}"
    );
}

#[test]
fn the_manual_page_comes_from_the_flags() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-relay"))
        .arg("--man-page")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let page = String::from_utf8(output.stdout).unwrap();
    assert!(page.contains(".TH ferry-relay 1"), "{page}");
    for flag in [
        "\\-\\-broker",
        "\\-\\-max\\-connections",
        "FERRY_RELAY_BROKER",
    ] {
        assert!(page.contains(flag), "{flag} missing from the page");
    }
}
