//! Relay instances sharing publishes through a real broker: `redis-server` and `nats-server`,
//! each started by its test on a free loopback port and stopped when the test ends.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use ferry_protocol::TopicId;
use ferry_protocol::relay::wire::Event;
use ferry_relay::{BrokerUrl, Config, RunningRelay, Secret};
use ferry_test_kit::brokers::{Broker as Server, Kind};
use ferry_test_kit::eventually_async;
use nkeys::KeyPair;
use serde_json::json;

/// How long an instance gets to see its broker come or go.
const PATIENCE: Duration = Duration::from_secs(20);

/// Publishes raw bytes on the broker channel of `partition`, as a stranger with access to
/// the broker could.
async fn inject(server: &Server, partition: usize, bytes: &[u8]) {
    let port = server.port();
    match server.kind() {
        Kind::Redis => {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            redis::cmd("PUBLISH")
                .arg(format!("ferry-relay:v1:{partition:02}"))
                .arg(bytes)
                .query_async::<u64>(&mut connection)
                .await
                .unwrap();
        }
        Kind::Nats => {
            let client = async_nats::connect(format!("127.0.0.1:{port}"))
                .await
                .unwrap();
            let subject = format!("ferry-relay.v1.{partition:02}");
            client
                .publish(subject, bytes.to_vec().into())
                .await
                .unwrap();
            client.flush().await.unwrap();
        }
    }
}

fn url(server: &Server) -> BrokerUrl {
    server.url().parse().unwrap()
}

/// Limits wide enough for a test to publish in bursts.
fn roomy() -> Config {
    Config {
        rate: 1e6,
        burst: 1e6,
        rate_per_ip: 1e6,
        burst_per_ip: 1e6,
        send_queue: 4096,
        ..Config::default()
    }
}

/// A relay instance on `server`, once it is connected to it.
async fn instance(server: &Server, config: Config) -> RunningRelay {
    let relay = relay(Config {
        broker: Some(url(server)),
        broker_password: server.password().map(|p| Secret(p.into())),
        broker_ca: server.ca().map(Into::into),
        ..config
    })
    .await;
    settles(&relay, "ferry_relay_broker_connected", 1).await;
    relay
}

/// Two instances on one broker: a publisher and a subscriber (`near`) on the first, a
/// subscriber (`far`) on the second, both subscribed to `topic`.
struct Cluster {
    one: RunningRelay,
    two: RunningRelay,
    publisher: Peer,
    near: Peer,
    far: Peer,
}

async fn cluster(server: &Server, config: Config, topic: TopicId) -> Cluster {
    let one = instance(server, config.clone()).await;
    let two = instance(server, config).await;
    let publisher = Peer::connect(&one).await;
    let mut near = Peer::connect(&one).await;
    let mut far = Peer::connect(&two).await;
    near.subscribe(topic).await;
    far.subscribe(topic).await;
    Cluster {
        one,
        two,
        publisher,
        near,
        far,
    }
}

/// Waits until the metric `name` reads `value`.
async fn settles(relay: &RunningRelay, name: &str, value: u64) {
    eventually_async(PATIENCE, &format!("{name} to read {value}"), || async {
        let (_, text) = http_get(relay, "/metrics").await;
        (metric(&text, name) == value).then_some(())
    })
    .await;
}

async fn reads(relay: &RunningRelay, name: &str) -> u64 {
    let (_, text) = http_get(relay, "/metrics").await;
    metric(&text, name)
}

fn message(topic: TopicId, data: &[u8]) -> Event {
    Event::Message {
        topic,
        data: data.to_vec(),
    }
}

async fn each_subscriber_on_each_instance_gets_a_publish_once(kind: Kind) {
    let server = Server::start(kind);
    let one = instance(&server, roomy()).await;
    let two = instance(&server, roomy()).await;
    let mut publisher = Peer::connect(&one).await;
    let mut near = Peer::connect(&one).await;
    let mut far = Peer::connect(&two).await;
    let mut elsewhere = Peer::connect(&two).await;
    for peer in [&mut publisher, &mut near, &mut far] {
        peer.subscribe(topic(1)).await;
    }
    elsewhere.subscribe(topic(2)).await;

    publisher.publish(topic(1), b"hint").await;
    assert_eq!(near.event().await, message(topic(1), b"hint"));
    assert_eq!(far.event().await, message(topic(1), b"hint"));
    far.publish(topic(1), b"back").await;
    assert_eq!(publisher.event().await, message(topic(1), b"back"));
    assert_eq!(near.event().await, message(topic(1), b"back"));
    for peer in [&mut publisher, &mut near, &mut far, &mut elsewhere] {
        peer.quiet().await;
    }

    for relay in [&one, &two] {
        assert_eq!(reads(relay, "ferry_relay_broker_published_total").await, 1);
        assert_eq!(reads(relay, "ferry_relay_broker_received_total").await, 1);
    }
    let (status, health) = http_get(&two, "/healthz").await;
    assert_eq!((status, health.as_str()), (200, "ok\n"));
}

async fn a_thousand_publishes_arrive_complete_and_in_order(kind: Kind) {
    let server = Server::start(kind);
    let one = instance(&server, roomy()).await;
    let two = instance(&server, roomy()).await;
    let topics: Vec<TopicId> = (1..=10).map(topic).collect();
    let mut publisher = Peer::connect(&one).await;
    let mut readers = [Peer::connect(&one).await, Peer::connect(&two).await];
    for reader in &mut readers {
        for topic in &topics {
            reader.subscribe(*topic).await;
        }
    }

    let sent: Vec<Event> = (0..1000u32)
        .map(|n| message(topics[n as usize % 10], &n.to_be_bytes()))
        .collect();
    for event in &sent {
        let Event::Message { topic, data } = event else {
            unreachable!()
        };
        publisher.publish(*topic, data).await;
    }
    for reader in &mut readers {
        for (n, expected) in sent.iter().enumerate() {
            assert_eq!(&reader.event().await, expected, "message {n}");
        }
        reader.quiet().await;
    }
    assert_eq!(reads(&two, "ferry_relay_broker_received_total").await, 1000);
}

async fn without_its_broker_an_instance_serves_its_own_devices(kind: Kind) {
    let mut server = Server::start(kind);
    let Cluster {
        one,
        two,
        mut publisher,
        mut near,
        mut far,
    } = cluster(&server, roomy(), topic(1)).await;

    server.kill();
    settles(&one, "ferry_relay_broker_connected", 0).await;
    settles(&two, "ferry_relay_broker_connected", 0).await;
    let (status, health) = http_get(&one, "/healthz").await;
    assert_eq!(
        (status, health.as_str()),
        (200, "degraded: broker unreachable\n")
    );
    publisher.publish(topic(1), b"local").await;
    assert_eq!(near.event().await, message(topic(1), b"local"));
    far.quiet().await;
    let unreachable = "ferry_relay_broker_dropped_total{reason=\"unreachable\"}";
    settles(&one, unreachable, 1).await;

    server.restart();
    settles(&one, "ferry_relay_broker_connected", 1).await;
    settles(&two, "ferry_relay_broker_connected", 1).await;
    assert_eq!(reads(&one, "ferry_relay_broker_connects_total").await, 2);
    publisher.publish(topic(1), b"again").await;
    assert_eq!(near.event().await, message(topic(1), b"again"));
    assert_eq!(far.event().await, message(topic(1), b"again"));
    let (_, health) = http_get(&one, "/healthz").await;
    assert_eq!(health, "ok\n");
}

async fn a_broker_that_hangs_is_dropped_and_taken_back(kind: Kind) {
    let server = Server::start(kind);
    let quick = Config {
        broker_timeout: Duration::from_millis(300),
        ..roomy()
    };
    let Cluster {
        one,
        two,
        mut publisher,
        mut near,
        mut far,
    } = cluster(&server, quick, topic(1)).await;

    server.pause();
    settles(&one, "ferry_relay_broker_connected", 0).await;
    settles(&two, "ferry_relay_broker_connected", 0).await;
    publisher.publish(topic(1), b"while it hangs").await;
    assert_eq!(near.event().await, message(topic(1), b"while it hangs"));
    far.quiet().await;
    let (_, health) = http_get(&two, "/healthz").await;
    assert_eq!(health, "degraded: broker unreachable\n");

    server.resume();
    settles(&one, "ferry_relay_broker_connected", 1).await;
    settles(&two, "ferry_relay_broker_connected", 1).await;
    publisher.publish(topic(1), b"back").await;
    assert_eq!(far.event().await, message(topic(1), b"back"));
}

async fn garbage_on_a_broker_channel_is_counted_and_dropped(kind: Kind) {
    let server = Server::start(kind);
    let Cluster {
        one,
        two,
        mut publisher,
        mut near,
        mut far,
    } = cluster(&server, roomy(), topic(1)).await;

    let stranger = [0xab; 16];
    let envelope =
        |version: u8, data: &[u8]| [&[version][..], &stranger, &topic(1).0, data].concat();
    inject(&server, 0, b"garbage").await;
    inject(&server, 1, &envelope(2, b"from the future")).await;
    inject(&server, 1, &envelope(1, &[7; 2000])).await;
    for relay in [&one, &two] {
        settles(
            relay,
            "ferry_relay_broker_dropped_total{reason=\"malformed\"}",
            2,
        )
        .await;
        settles(
            relay,
            "ferry_relay_broker_dropped_total{reason=\"oversized\"}",
            1,
        )
        .await;
    }
    near.quiet().await;
    far.quiet().await;

    // A well-formed envelope is delivered whoever sent it: topics, not the broker, keep devices
    // apart, and what a device receives is only a hint to go and look.
    inject(&server, 1, &envelope(1, b"hint")).await;
    assert_eq!(near.event().await, message(topic(1), b"hint"));
    assert_eq!(far.event().await, message(topic(1), b"hint"));
    publisher.publish(topic(1), b"still works").await;
    assert_eq!(far.event().await, message(topic(1), b"still works"));
}

async fn every_instance_keeps_the_relay_contract(kind: Kind) {
    let server = Server::start(kind);
    let config = || Config {
        max_topics: 2,
        ..Config::default()
    };
    let one = instance(&server, config()).await;
    let two = instance(&server, config()).await;
    // Each on topics of its own: a publish from the first run may still be on its way to the
    // second instance when the second run starts.
    refuses_each_bad_request(&one, 1).await;
    refuses_each_bad_request(&two, 11).await;
}

/// Runs `ferry-relay` on `server` with `password` in its environment; returns what it logged
/// up to and including the first line about the broker being unreachable.
fn refused_by(server: &Server, password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry-relay"))
        .args(["--listen", "127.0.0.1:0", "--broker", &server.url()])
        .env("FERRY_RELAY_BROKER_PASSWORD", password)
        .env("FERRY_RELAY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, logged) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut log = String::new();
    loop {
        let line = logged
            .recv_timeout(PATIENCE)
            .expect("no word about the broker");
        log.push_str(&line);
        log.push('\n');
        if line.contains("broker unreachable") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    log
}

async fn wrong_credentials_say_what_to_set_and_never_echo_the_password(kind: Kind) {
    let server = Server::start_with(kind, Some("the-right-one"), false);
    let log = refused_by(&server, "not-the-right-one");
    assert!(log.contains("FERRY_RELAY_BROKER_PASSWORD"), "{log}");
    assert!(!log.contains("not-the-right-one"), "{log}");
    let log = refused_by(&server, "");
    assert!(log.contains("FERRY_RELAY_BROKER_PASSWORD"), "{log}");

    // In-process, the same refusal shows on /metrics and /healthz, and local delivery goes on.
    let refused = relay(Config {
        broker: Some(url(&server)),
        broker_password: Some(Secret("not-the-right-one".into())),
        ..roomy()
    })
    .await;
    settles(&refused, "ferry_relay_broker_connect_failures_total", 2).await;
    assert_eq!(reads(&refused, "ferry_relay_broker_connected").await, 0);
    let (_, health) = http_get(&refused, "/healthz").await;
    assert_eq!(health, "degraded: broker unreachable\n");

    let Cluster {
        // Held: dropping a relay stops it.
        one: _one,
        two: _two,
        mut publisher,
        mut far,
        ..
    } = cluster(&server, roomy(), topic(3)).await;
    publisher.publish(topic(3), b"authorised").await;
    assert_eq!(far.event().await, message(topic(3), b"authorised"));
}

async fn over_tls_the_broker_is_trusted_through_its_ca(kind: Kind) {
    let server = Server::start_with(kind, None, true);
    let Cluster {
        // Held: dropping a relay stops it.
        one: _one,
        two: _two,
        mut publisher,
        mut far,
        ..
    } = cluster(&server, roomy(), topic(4)).await;
    publisher.publish(topic(4), b"sealed twice").await;
    assert_eq!(far.event().await, message(topic(4), b"sealed twice"));

    // Without the CA the certificate is not trusted, and the log says what to give.
    let log = refused_by(&server, "");
    assert!(log.contains("--broker-ca"), "{log}");
}

macro_rules! for_each_broker {
    ($($scenario:ident),* $(,)?) => {
        mod redis_broker {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Kind::Redis).await;
            })*
        }
        mod nats_broker {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Kind::Nats).await;
            })*
        }
    };
}

for_each_broker!(
    each_subscriber_on_each_instance_gets_a_publish_once,
    a_thousand_publishes_arrive_complete_and_in_order,
    without_its_broker_an_instance_serves_its_own_devices,
    a_broker_that_hangs_is_dropped_and_taken_back,
    garbage_on_a_broker_channel_is_counted_and_dropped,
    a_flood_for_one_topic_through_the_broker_is_metered_like_one_address,
    every_instance_keeps_the_relay_contract,
    wrong_credentials_say_what_to_set_and_never_echo_the_password,
    over_tls_the_broker_is_trusted_through_its_ca,
);

#[test]
fn a_password_in_the_broker_url_is_refused_before_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry-relay"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--broker", "redis://relay:hunter2@127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FERRY_RELAY_BROKER_PASSWORD"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// A JWT as NATS issues them: `claims` about `subject`, signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, kind: &str, mut nats: serde_json::Value) -> String {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    nats["type"] = kind.into();
    nats["version"] = 2.into();
    let claims = serde_json::json!({
        "jti": format!("ferry-test-{subject}"),
        "iat": 1_700_000_000,
        "iss": issuer.public_key(),
        "name": kind,
        "sub": subject,
        "nats": nats,
    });
    let header = encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let signed = format!("{header}.{}", encode(claims.to_string().as_bytes()));
    let signature = encode(&issuer.sign(signed.as_bytes()).unwrap());
    format!("{signed}.{signature}")
}

/// A `.creds` file for `user`, whose JWT `account` signed.
fn credentials(account: &KeyPair, user: &KeyPair) -> String {
    let unlimited =
        serde_json::json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1});
    let jwt = jwt(account, &user.public_key(), "user", unlimited);
    let seed = user.seed().unwrap();
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[tokio::test]
async fn a_nats_credentials_file_signs_each_instance_in() {
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let operator_jwt = jwt(&operator, &operator.public_key(), "operator", json!({}));
    let limits = json!({"limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1,
        "exports": -1, "wildcards": true, "conn": -1, "leaf": -1}});
    let account_jwt = jwt(&operator, &account.public_key(), "account", limits);
    let server = Server::nats_with_config(&format!(
        "operator: \"{operator_jwt}\"\nresolver: MEMORY\n\
         resolver_preload: {{ {}: \"{account_jwt}\" }}\n",
        account.public_key()
    ));
    let dir = tempfile::tempdir().unwrap();
    let signed = dir.path().join("relay.creds");
    std::fs::write(&signed, credentials(&account, &KeyPair::new_user())).unwrap();
    let stranger = dir.path().join("stranger.creds");
    std::fs::write(
        &stranger,
        credentials(&KeyPair::new_account(), &KeyPair::new_user()),
    )
    .unwrap();

    let with = |creds: &PathBuf| Config {
        broker_credentials: Some(creds.clone()),
        ..roomy()
    };
    let Cluster {
        // Held: dropping a relay stops it.
        one: _one,
        two: _two,
        mut publisher,
        mut far,
        ..
    } = cluster(&server, with(&signed), topic(5)).await;
    publisher.publish(topic(5), b"signed in").await;
    assert_eq!(far.event().await, message(topic(5), b"signed in"));

    // Without credentials, or as a user of an account the operator never signed, a relay is
    // refused and stays out.
    for credentials in [None, Some(stranger)] {
        let refused = relay(Config {
            broker: Some(url(&server)),
            broker_credentials: credentials,
            ..roomy()
        })
        .await;
        settles(&refused, "ferry_relay_broker_connect_failures_total", 2).await;
        assert_eq!(reads(&refused, "ferry_relay_broker_connected").await, 0);
    }
}

#[tokio::test]
async fn unreadable_broker_files_stop_the_relay_before_it_starts() {
    let missing = PathBuf::from("/nonexistent/ferry-relay/broker.pem");
    for (broker, ca, credentials, flag) in [
        ("rediss://127.0.0.1:1", Some(&missing), None, "--broker-ca"),
        ("tls://127.0.0.1:1", Some(&missing), None, "--broker-ca"),
        (
            "nats://127.0.0.1:1",
            None,
            Some(&missing),
            "--broker-credentials",
        ),
    ] {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            broker: Some(broker.parse().unwrap()),
            broker_ca: ca.cloned(),
            broker_credentials: credentials.cloned(),
            ..Config::default()
        };
        let refused = RunningRelay::start(config).await;
        let message = refused.err().expect("started without its file").to_string();
        assert!(
            message.contains(flag) && message.contains("broker.pem"),
            "{message}"
        );
    }
}

async fn a_flood_for_one_topic_through_the_broker_is_metered_like_one_address(kind: Kind) {
    let server = Server::start(kind);
    let config = Config {
        rate_per_ip: 10.0,
        burst_per_ip: 20.0,
        ..roomy()
    };
    let one = instance(&server, config.clone()).await;
    let mut far = Peer::connect(&one).await;
    let mut other = Peer::connect(&one).await;
    far.subscribe(topic(1)).await;
    other.subscribe(topic(2)).await;

    // Someone on the broker sends 2,000 envelopes for one topic as fast as it can.
    let stranger = [0xab; 16];
    let envelope = |topic: TopicId, data: &[u8]| [&[1u8][..], &stranger, &topic.0, data].concat();
    let started = std::time::Instant::now();
    for n in 0..2000u32 {
        inject(&server, 1, &envelope(topic(1), &n.to_be_bytes())).await;
    }
    settles(&one, "ferry_relay_broker_received_total", 2000).await;
    let elapsed = started.elapsed().as_secs_f64();
    let dropped = reads(&one, "ferry_relay_broker_dropped_total{reason=\"rate\"}").await;
    let delivered = 2000 - dropped;
    let most = 20.0 + 10.0 * (elapsed + 1.0);
    assert!(
        (delivered as f64) <= most && delivered >= 20,
        "{delivered} delivered in {elapsed:.1} s"
    );
    for _ in 0..delivered {
        assert!(matches!(far.event().await, Event::Message { .. }));
    }
    far.quiet().await;
    // Another topic's budget is its own.
    inject(&server, 1, &envelope(topic(2), b"hint")).await;
    assert_eq!(other.event().await, message(topic(2), b"hint"));
}
