//! The client against a real relay on loopback: delivery, status, reconnection after the relay
//! restarts, publishes held while disconnected, refusals surfaced in the status.

use std::time::Duration;

use ferry_protocol::TopicId;
use ferry_relay::{Config, RunningRelay};
use ferry_relay_client::{ClientConfig, ClientError, Delivery, RelayClient, State};
use ferry_test_kit::eventually_async;
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn topic(n: u8) -> TopicId {
    TopicId([n; 32])
}

async fn relay_on(listen: &str, config: Config) -> RunningRelay {
    RunningRelay::start(Config {
        listen: listen.parse().unwrap(),
        ..config
    })
    .await
    .unwrap()
}

fn quick(url: &str) -> ClientConfig {
    let mut config = ClientConfig::new(url);
    config.min_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(200);
    config.connect_timeout = Duration::from_secs(2);
    config
}

async fn metric(relay: &RunningRelay, name: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(relay.local_addr())
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Waits until the relay's counter `name` is at least `value` (the relay counts a frame once
/// its task has read it, a moment after the client wrote it).
async fn metric_reaches(relay: &RunningRelay, name: &str, value: u64) {
    eventually_async(WAIT, &format!("{name} to reach {value}"), || async {
        (metric(relay, name).await >= value).then_some(())
    })
    .await;
}

async fn connected(client: &RelayClient) {
    let mut watch = client.watch();
    timeout(WAIT, watch.wait_for(|s| s.state == State::Connected))
        .await
        .unwrap_or_else(|_| panic!("never connected: {:?}", client.status()))
        .unwrap();
}

/// Publishes until the other side receives (subscriptions travel on another connection, so the
/// first publish may overtake them).
async fn publish_until_received(
    from: &RelayClient,
    to: &mut mpsc::Receiver<Delivery>,
    topic: TopicId,
    data: &[u8],
) {
    for _ in 0..100 {
        from.publish(topic, data.to_vec()).unwrap();
        // Earlier publishes may still arrive first; skip them.
        while let Ok(Some(delivery)) = timeout(Duration::from_millis(100), to.recv()).await {
            if delivery.data == data {
                assert_eq!(delivery.topic, topic);
                return;
            }
        }
    }
    panic!("never delivered");
}

#[tokio::test]
async fn clients_exchange_hints_without_echo() {
    let relay = relay_on("127.0.0.1:0", Config::default()).await;
    let (a, mut a_rx) = RelayClient::start(quick(&relay.url())).unwrap();
    let (b, mut b_rx) = RelayClient::start(quick(&relay.url())).unwrap();
    a.subscribe(topic(1)).unwrap();
    b.subscribe(topic(1)).unwrap();
    connected(&a).await;
    connected(&b).await;

    publish_until_received(&a, &mut b_rx, topic(1), b"from a").await;
    publish_until_received(&b, &mut a_rx, topic(1), b"from b").await;
    // a never hears its own publishes.
    while let Ok(Some(delivery)) = timeout(Duration::from_millis(200), a_rx.recv()).await {
        assert_eq!(delivery.data, b"from b");
    }

    let status = a.status();
    assert_eq!(status.state, State::Connected);
    assert_eq!(status.connections, 1);
    assert_eq!(status.last_error, None);
}

#[tokio::test]
async fn the_client_reconnects_and_resubscribes_after_a_relay_restart() {
    let relay = relay_on("127.0.0.1:0", Config::default()).await;
    let address = relay.local_addr().to_string();
    let (a, _a_rx) = RelayClient::start(quick(&relay.url())).unwrap();
    let (b, mut b_rx) = RelayClient::start(quick(&relay.url())).unwrap();
    b.subscribe(topic(7)).unwrap();
    connected(&a).await;
    connected(&b).await;
    publish_until_received(&a, &mut b_rx, topic(7), b"before").await;

    relay.stop().await.unwrap();
    let mut watch = b.watch();
    timeout(
        WAIT,
        watch.wait_for(|s| matches!(s.state, State::Waiting { .. })),
    )
    .await
    .expect("the client never noticed")
    .unwrap();
    assert!(b.status().last_error.unwrap().contains("relay"));

    // Published while the relay is down: held, and sent once connected again. (a holds no
    // subscription, so its only frame to the new relay is the held publish.)
    a.publish(topic(7), b"while down".to_vec()).unwrap();
    let relay = relay_on(&address, Config::default()).await;
    connected(&a).await;
    connected(&b).await;
    metric_reaches(&relay, "ferry_relay_messages_in_total", 1).await;
    // b subscribed again on its own.
    publish_until_received(&a, &mut b_rx, topic(7), b"after").await;
    assert!(b.status().connections >= 2);
    assert_eq!(b.status().state, State::Connected);
}

#[tokio::test]
async fn an_unreachable_relay_is_retried_with_the_reason_in_the_status() {
    // A port that was just free: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", free.local_addr().unwrap());
    drop(free);
    let (client, _rx) = RelayClient::start(quick(&url)).unwrap();
    let mut watch = client.watch();
    let status = timeout(WAIT, watch.wait_for(|s| s.last_error.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    let error = status.last_error.unwrap();
    assert!(error.contains("cannot reach the relay"), "{error}");
    assert!(matches!(
        status.state,
        State::Waiting { .. } | State::Connecting
    ));
}

#[tokio::test]
async fn refusals_from_the_relay_show_in_the_status() {
    let relay = relay_on(
        "127.0.0.1:0",
        Config {
            max_topics: 1,
            ..Config::default()
        },
    )
    .await;
    let (client, _rx) = RelayClient::start(quick(&relay.url())).unwrap();
    client.subscribe(topic(1)).unwrap();
    client.subscribe(topic(2)).unwrap();
    let mut watch = client.watch();
    let status = timeout(WAIT, watch.wait_for(|s| s.last_error.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert!(status.last_error.unwrap().contains("too_many_topics"));
}

#[tokio::test]
async fn requests_the_client_cannot_send_are_refused_up_front() {
    assert!(matches!(
        RelayClient::start(ClientConfig::new("https://relay.example")),
        Err(ClientError::BadUrl { .. })
    ));
    let mut config = ClientConfig::new("wss://relay.example");
    config.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(matches!(
        RelayClient::start(config),
        Err(ClientError::CaFile { .. })
    ));
    let relay = relay_on("127.0.0.1:0", Config::default()).await;
    let (client, _rx) = RelayClient::start(quick(&relay.url())).unwrap();
    assert!(matches!(
        client.publish(topic(1), vec![0; 513]),
        Err(ClientError::TooLarge(513))
    ));
}

#[tokio::test]
async fn dropping_the_client_closes_its_connection() {
    let relay = relay_on("127.0.0.1:0", Config::default()).await;
    let (client, _rx) = RelayClient::start(quick(&relay.url())).unwrap();
    connected(&client).await;
    drop(client);
    eventually_async(WAIT, "the relay to count the connection gone", || async {
        (metric(&relay, "ferry_relay_connections").await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn wss_works_with_the_relays_own_ca_and_fails_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let [ca, cert, key] = ferry_test_kit::tls::certificates(dir.path());
    let relay = relay_on(
        "127.0.0.1:0",
        Config {
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..Config::default()
        },
    )
    .await;
    assert!(relay.url().starts_with("wss://"));

    let mut trusting = quick(&relay.url());
    trusting.ca_file = Some(ca);
    let (a, _a_rx) = RelayClient::start(trusting.clone()).unwrap();
    let (b, mut b_rx) = RelayClient::start(trusting).unwrap();
    b.subscribe(topic(3)).unwrap();
    connected(&a).await;
    connected(&b).await;
    publish_until_received(&a, &mut b_rx, topic(3), b"over tls").await;

    // Without the CA the certificate is refused, and the status says so.
    let (stranger, _rx) = RelayClient::start(quick(&relay.url())).unwrap();
    let mut watch = stranger.watch();
    let status = timeout(WAIT, watch.wait_for(|s| s.last_error.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    let error = status.last_error.unwrap();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert_ne!(stranger.status().state, State::Connected);
}

#[tokio::test]
async fn a_burst_of_publishes_is_paced_under_the_relay_limit_and_the_newest_arrives() {
    let relay = relay_on("127.0.0.1:0", Config::default()).await;
    let (sender, _) = RelayClient::start(quick(&relay.url())).unwrap();
    let (receiver, mut deliveries) = RelayClient::start(quick(&relay.url())).unwrap();
    receiver.subscribe(topic(9)).unwrap();
    connected(&sender).await;
    connected(&receiver).await;
    publish_until_received(&sender, &mut deliveries, topic(9), b"ready").await;
    // Five times the relay's rate, for a second: the client paces and keeps the newest.
    for i in 0..50u32 {
        sender
            .publish(topic(9), format!("hint {i}").into_bytes())
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let newest = timeout(WAIT, async {
        loop {
            let delivery = deliveries.recv().await.unwrap();
            if delivery.data == b"hint 49" {
                return delivery;
            }
        }
    })
    .await
    .expect("the newest publish arrived");
    assert_eq!(newest.topic, topic(9));
    assert!(
        sender.status().last_error.is_none(),
        "{:?}",
        sender.status()
    );
    assert!(sender.flush(WAIT).await, "everything was written");
}

#[tokio::test]
async fn flush_waits_for_the_connection_and_gives_up_at_its_limit() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let (client, _) = RelayClient::start(quick(&format!("ws://{address}"))).unwrap();
    client.publish(topic(4), b"held".to_vec()).unwrap();
    assert!(!client.flush(Duration::from_millis(300)).await);
    // Once a relay answers there, the held publish goes out and the flush returns. (The client
    // may reconnect before or after a receiver subscribes, so the held publish is checked on
    // the relay's counters, not as a delivery.)
    let relay = relay_on(&address.to_string(), Config::default()).await;
    assert!(client.flush(WAIT).await);
    metric_reaches(&relay, "ferry_relay_messages_in_total", 1).await;
    // Later publishes reach a subscriber (which may first hear the held one).
    let (receiver, mut deliveries) = RelayClient::start(quick(&relay.url())).unwrap();
    receiver.subscribe(topic(4)).unwrap();
    connected(&receiver).await;
    publish_until_received(&client, &mut deliveries, topic(4), b"after").await;
}
