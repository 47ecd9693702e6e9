//! What arrives on a repository's relay topic from others than its devices: junk, hints forged
//! in a device's name, hints of devices nobody knows, and a device's own claim far beyond its
//! storage. A real agent takes them from a real relay (two, sharing a Redis broker, where the
//! forger speaks to the other one); none raises a false alarm, each kind is said once, and
//! real hints keep working, a newcomer's too.

// The broker, `redis-server`, is a program of Unix systems.
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Backend, Device, agent_log, eventually, start_agent, stop_agent};
use ferry_protocol::{DeviceId, Identity, Keys, RelayHint, SyncKey, TopicId};
use ferry_relay::{Config, RunningRelay};
use ferry_relay_client::{ClientConfig, RelayClient};
use ferry_test_kit::brokers::{Broker, Kind};

const WAIT: Duration = Duration::from_secs(15);

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Limits that let one client publish as fast as it likes, as a flood through a broker would
/// arrive.
fn roomy() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        rate: 1e6,
        burst: 1e6,
        rate_per_ip: 1e6,
        burst_per_ip: 1e6,
        send_queue: 4096,
        ..Config::default()
    }
}

/// What the relay at `relay` answers on `/healthz`.
fn health(relay: &RunningRelay) -> String {
    let mut stream = std::net::TcpStream::connect(relay.local_addr()).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: relay\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The identity `device` signs with, from its secret store.
fn identity_of(device: &Device) -> Identity {
    let secrets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(device.home().join("secrets.json")).unwrap())
            .unwrap();
    Identity::from_hex(secrets["device-identity"].as_str().unwrap()).unwrap()
}

/// `device`'s id, as `ferry devices` shows it there.
fn id_of(device: &Device) -> DeviceId {
    let listed = device.json(&["devices"]);
    let own = (listed.as_array().unwrap().iter())
        .find(|member| member["this_device"] == true)
        .unwrap();
    own["device"].as_str().unwrap().parse().unwrap()
}

/// Publishes `messages` on `topic` through the relay at `url`, in order, and waits until the
/// relay has them.
fn publish(runtime: &tokio::runtime::Runtime, url: &str, topic: TopicId, messages: Vec<Vec<u8>>) {
    runtime.block_on(async {
        let (client, _deliveries) = RelayClient::start(ClientConfig::new(url)).unwrap();
        for (n, message) in messages.into_iter().enumerate() {
            while client.publish(topic, message.clone()).is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if n % 50 == 49 {
                assert!(client.flush(WAIT).await);
            }
        }
        assert!(client.flush(WAIT).await);
    });
}

/// `hint`, signed by `identity` and sealed with `keys` on `topic`.
fn sealed(keys: &Keys, topic: &TopicId, hint: RelayHint, identity: &Identity) -> Vec<u8> {
    keys.relay
        .seal_hint(topic, &hint, identity)
        .unwrap()
        .into_bytes()
}

#[test]
fn forged_hints_through_a_broker_raise_no_alarm_and_a_far_claim_is_said_once() {
    let storage = common::storage(Backend::S3);
    let broker = Broker::start(Kind::Redis);
    let on_broker = || Config {
        broker: Some(broker.url().parse().unwrap()),
        ..roomy()
    };
    let near = storage
        .runtime
        .block_on(RunningRelay::start(on_broker()))
        .unwrap();
    let far = storage
        .runtime
        .block_on(RunningRelay::start(on_broker()))
        .unwrap();
    eventually(WAIT, "both relays on the broker", || {
        (health(&near).ends_with("ok\n") && health(&far).ends_with("ok\n")).then_some(())
    });
    let (a, b) = (Device::new(), Device::new());
    let code = a.init_with_relay(&storage, "alpha", Some(&near.url()));
    b.join_with_relay(&storage, &code, "beta", Some(&near.url()))
        .ok();
    b.run(&["copy", "before the forgeries"]).ok();
    // A polls once an hour: what comes sooner came on a hint.
    a.run(&["config", "set", "sync.poll_interval", "1h"]).ok();
    let agent = start_agent(&a, None, &[]);
    eventually(WAIT, "A subscribed, with B's clip", || {
        (agent_log(&a).contains("relay: subscribed")
            && a.history_texts()
                .contains(&"before the forgeries".to_owned()))
        .then_some(())
    });

    // Someone holding the sync key, speaking to the other relay: junk, 100 hints claiming B's segment
    // 999999, signed with a key of its own; 300 hints of devices nobody knows; then, with B's
    // own key (B lost, say), one claim far beyond what the storage holds.
    let keys = SyncKey::from_recovery_code(&code).unwrap().keys();
    let topic = keys.relay.publish_topic(unix_now());
    let beta = keys.names.device_tag(&id_of(&b));
    let thief = Identity::generate().unwrap();
    // Junk first, which anyone can send: it must not hide what follows.
    let mut messages = vec![vec![0x5a; 309]];
    for seq in 999_900..1_000_000 {
        let forged = RelayHint { device: beta, seq };
        messages.push(sealed(&keys, &topic, forged, &thief));
    }
    for n in 0..300u32 {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        let nobody = RelayHint {
            device: keys.names.device_tag(&DeviceId(id)),
            seq: 5_000 + u64::from(n),
        };
        messages.push(sealed(&keys, &topic, nobody, &thief));
    }
    let claim = RelayHint {
        device: beta,
        seq: 7_000_000,
    };
    messages.push(sealed(&keys, &topic, claim, &identity_of(&b)));
    publish(&storage.runtime, &far.url(), topic, messages);
    // A takes hints in order: once it says the last, it has been through all the others.
    eventually(WAIT, "A on the far claim", || {
        agent_log(&a).contains("far beyond seq").then_some(())
    });

    // A real hint after them: B's next clip arrives at once.
    b.run(&["copy", "after the forgeries"]).ok();
    eventually(WAIT, "B's clip on A", || {
        (a.history_texts()
            .contains(&"after the forgeries".to_owned()))
        .then_some(())
    });
    // A device joined with the recovery code alone is in nobody's roster when its first hint
    // comes: A polls for it (within 5 s of the strangers' last poll) and knows it from then on.
    let c = Device::new();
    c.join_with_relay(&storage, &code, "gamma", Some(&near.url()))
        .ok();
    c.run(&["copy", "from a newcomer"]).ok();
    eventually(WAIT, "the newcomer's clip on A", || {
        (a.history_texts().contains(&"from a newcomer".to_owned())).then_some(())
    });

    let status = a.json(&["status"]);
    assert_eq!(status["behind"], serde_json::json!([]), "{status}");
    let problems = status["problems"].to_string();
    assert!(!problems.contains("999999"), "{problems}");
    assert!(!problems.contains("damaged"), "{problems}");
    assert_eq!(problems.matches("far beyond seq").count(), 1, "{problems}");
    assert!(problems.contains("beta's own key"), "{problems}");
    stop_agent(agent);
    let log = agent_log(&a);
    let forged = log
        .lines()
        .filter(|line| line.contains("did not sign"))
        .count();
    assert_eq!(forged, 1, "said once a minute: {log}");
    assert!(log.contains("not a Ferry object"), "{log}");
    assert!(!log.contains("announced seq 999"), "{log}");
    let transfers = a.run(&["log"]).ok().stdout;
    assert!(!transfers.contains("999999"), "{transfers}");
    assert!(!transfers.contains("quarantined"), "{transfers}");
}

#[test]
fn junk_on_the_relay_topic_is_logged_as_a_count_and_hints_still_work() {
    let storage = common::storage(Backend::S3);
    let relay = storage
        .runtime
        .block_on(RunningRelay::start(roomy()))
        .unwrap();
    let url = relay.url();
    let (a, b) = (Device::new(), Device::new());
    let code = a.init_with_relay(&storage, "alpha", Some(&url));
    b.join_with_relay(&storage, &code, "beta", Some(&url)).ok();
    let agent = start_agent(&a, None, &[]);
    eventually(WAIT, "A subscribed on the relay", || {
        agent_log(&a).contains("relay: subscribed").then_some(())
    });

    // 500 messages of a hint's size on the group's topic, that do not open with its key.
    let keys = SyncKey::from_recovery_code(&code).unwrap().keys();
    let topic = keys.relay.publish_topic(unix_now());
    let junk = (0..500u32).map(|n| {
        let mut junk = vec![0x5a; 309];
        junk[..4].copy_from_slice(&n.to_be_bytes());
        junk
    });
    publish(&storage.runtime, &url, topic, junk.collect());
    // A real hint after them: once A has the clip, it went through all the junk.
    b.run(&["copy", "after the junk"]).ok();
    eventually(WAIT, "the clip on A", || {
        (a.history_texts().contains(&"after the junk".to_owned())).then_some(())
    });
    stop_agent(agent);
    let log = agent_log(&a);
    let said = log
        .lines()
        .filter(|line| line.contains("ignored a relay message"))
        .count();
    assert_eq!(said, 1, "{log}");
    assert!(log.contains("not a Ferry object"), "{log}");
}
