//! Nearby devices end to end, with real agents on Xvfb desktops. On 127.0.0.1: two agents
//! share an S3 repository but no relay and poll it once an hour, so what crosses in seconds
//! crossed over the LAN path (reached through `lan.peers`). In network namespaces on a LAN of
//! their own (root only; `scripts/test.sh` runs them in CI): agents find each other by mDNS
//! while the storage and relay are out of reach, a stranger's agent gets nothing, and where
//! the network passes no multicast `lan.peers` and remembered addresses connect them. mDNS
//! never runs on the machine's own network.

mod common;

use std::time::Duration;

use common::{
    Backend, Display, LogsOnFailure, eventually, free_port, have, netns, pair, start_agent,
    start_agent_in, stop_agent,
};

const TEXT: &str = "UTF8_STRING";
const WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_copy_crosses_to_a_nearby_desktop_over_the_lan_once() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let pair = pair(Backend::S3, false);
    let (a, b) = (&pair.a, &pair.b);
    let _logs = LogsOnFailure(vec![a, b]);
    let (desk_a, desk_b) = (Display::start(), Display::start());
    let port = free_port();
    let slow_poll = ("FERRY_SYNC_POLL_INTERVAL", "1h".to_owned());
    let agent_a = start_agent(
        a,
        Some(&desk_a),
        &[slow_poll.clone(), ("FERRY_LAN_PORT", port.to_string())],
    );
    let agent_b = start_agent(
        b,
        Some(&desk_b),
        &[slow_poll, ("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"))],
    );
    eventually(WAIT, "the agents connected over the LAN", || {
        let lan = b.json(&["status"])["lan"].clone();
        (lan["peers"] == serde_json::json!(["alpha"])).then_some(())
    });
    let status = a.run(&["status"]).ok().stdout;
    assert!(
        status.contains("lan       1 peer connected (beta)"),
        "{status}"
    );

    let _owner = desk_a.copy(TEXT, b"across the desk");
    eventually(WAIT, "the clip on B's desktop", || {
        (desk_b.paste(TEXT)? == b"across the desk").then_some(())
    });

    // The bucket is still the durable copy: once B polls it, the clip is there once.
    b.run(&["sync"]).ok();
    let texts: Vec<serde_json::Value> = b.json(&["history"]).as_array().unwrap().clone();
    let copies = texts
        .iter()
        .filter(|clip| clip["text"] == "across the desk")
        .count();
    assert_eq!(copies, 1, "{texts:?}");
    stop_agent(agent_b);
    stop_agent(agent_a);
}

/// Two devices connected to a third alone (as devices reaching a repository through the
/// device that holds it are): what one copies reaches the other through the third at once,
/// not at its next poll of the storage.
#[test]
fn a_segment_is_passed_on_to_the_devices_connected_to_the_one_that_got_it() {
    let pair = pair(Backend::S3, false);
    let (a, b) = (&pair.a, &pair.b);
    let c = common::Device::new();
    c.join_with_relay(&pair.storage, &pair.code, "gamma", None)
        .ok();
    let _logs = LogsOnFailure(vec![a, b, &c]);
    let port = free_port();
    let slow_poll = ("FERRY_SYNC_POLL_INTERVAL", "1h".to_owned());
    let through_a = ("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    let agent_a = start_agent(
        a,
        None,
        &[slow_poll.clone(), ("FERRY_LAN_PORT", port.to_string())],
    );
    let agent_b = start_agent(b, None, &[slow_poll.clone(), through_a.clone()]);
    let agent_c = start_agent(&c, None, &[slow_poll, through_a]);
    eventually(WAIT, "B and C connected to A alone", || {
        let peers = lan_peers(a);
        let both = peers.as_array()?.len() == 2;
        (both
            && lan_peers(b) == serde_json::json!(["alpha"])
            && lan_peers(&c) == serde_json::json!(["alpha"]))
        .then_some(())
    });
    b.run(&["copy", "from beta, through alpha"]).ok();
    eventually(WAIT, "B's copy on C", || {
        history(&c)
            .contains(&"from beta, through alpha".to_owned())
            .then_some(())
    });
    // An image (its segment names a blob) is passed on as well, so the text after it is not
    // stuck behind a gap at C.
    let image = common::noise_png(300, 200);
    let path = b.home().join("picture.png");
    std::fs::write(&path, &image).unwrap();
    b.run(&["copy", "--image", path.to_str().unwrap()]).ok();
    b.run(&["copy", "after the image"]).ok();
    eventually(WAIT, "B's image and the text after it on C", || {
        let clips = c.json(&["history"]);
        let kinds: Vec<&str> = clips
            .as_array()?
            .iter()
            .filter_map(|clip| clip["kind"].as_str())
            .collect();
        (kinds.first() == Some(&"text")
            && kinds.get(1) == Some(&"image")
            && history(&c).first()? == "after the image")
            .then_some(())
    });
    assert_eq!(lan_peers(&c), serde_json::json!(["alpha"]));
    stop_agent(agent_c);
    stop_agent(agent_b);
    stop_agent(agent_a);
}

/// The texts in `device`'s history, as many times as each is there.
fn history(device: &common::Device) -> Vec<String> {
    let clips = device.json(&["history"]);
    let texts = clips.as_array().unwrap().iter();
    texts
        .filter_map(|clip| clip["text"].as_str().map(str::to_owned))
        .collect()
}

/// The names of the devices `device`'s agent is connected to over the LAN.
fn lan_peers(device: &common::Device) -> serde_json::Value {
    device.json(&["status"])["lan"]["peers"].clone()
}

/// Agents in network namespaces of their own, on a LAN of their own, find each other by mDNS
/// and pass clips (texts, and an image as a blob) while the storage and the relay (on the
/// machine's 127.0.0.1) are out of their reach; a stranger's agent on the same LAN, with another key, gets nothing. Then the storage
/// comes back and both devices converge on it, each clip once.
#[test]
fn clips_cross_the_lan_with_storage_and_relay_down_then_converge_on_storage() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let Some(network) = netns::Network::create(3) else {
        return;
    };
    let (host_a, host_b, host_c) = (network.host(0), network.host(1), network.host(2));
    let pair = pair(Backend::S3, true);
    let (a, b) = (&pair.a, &pair.b);
    // Someone else's Ferry, on its own repository.
    let other = common::storage(Backend::S3);
    let c = common::Device::new();
    c.init(&other, "stranger");
    let _logs = LogsOnFailure(vec![a, b, &c]);
    let (desk_a, desk_b, desk_c) = (Display::start(), Display::start(), Display::start());
    // mDNS on the namespaces' LAN, at the default port; the storage is polled once an hour.
    let env = |peers: Option<std::net::Ipv4Addr>| {
        let mut env = vec![
            ("FERRY_LAN_DISCOVERY", "true".to_owned()),
            ("FERRY_LAN_PORT", "47291".to_owned()),
            ("FERRY_SYNC_POLL_INTERVAL", "1h".to_owned()),
        ];
        env.extend(peers.map(|ip| ("FERRY_LAN_PEERS", format!("{ip}:47291"))));
        env
    };
    let agent_a = start_agent_in(Some(host_a), a, Some(&desk_a), &env(None));
    let agent_b = start_agent_in(Some(host_b), b, Some(&desk_b), &env(None));
    // The stranger finds no name it recognises, so it is told A's address outright.
    let agent_c = start_agent_in(Some(host_c), &c, Some(&desk_c), &env(Some(host_a.addr())));
    eventually(WAIT, "A and B found each other", || {
        (lan_peers(a) == serde_json::json!(["beta"])
            && lan_peers(b) == serde_json::json!(["alpha"]))
        .then_some(())
    });

    let _owner_a = desk_a.copy(TEXT, b"from alpha, offline");
    eventually(WAIT, "A's clip on B's desktop", || {
        (desk_b.paste(TEXT)? == b"from alpha, offline").then_some(())
    });
    let _owner_b = desk_b.copy(TEXT, b"from beta, offline");
    eventually(WAIT, "B's clip on A's desktop", || {
        (desk_a.paste(TEXT)? == b"from beta, offline").then_some(())
    });
    // An image is a blob: B asks A for its chunks.
    let png = common::noise_png(300, 200);
    let _owner_a = desk_a.copy("image/png", &png);
    eventually(WAIT, "A's image on B's desktop", || {
        let pasted = desk_b.paste("image/png")?;
        let is_png = pasted.starts_with(b"\x89PNG");
        (is_png && common::pixels(&pasted) == common::pixels(&png)).then_some(())
    });
    let doctor = a.run(&["doctor"]).stdout;
    assert!(
        doctor.contains("ok    lan: 1 peer connected (beta), listening on 0.0.0.0:47291"),
        "{doctor}"
    );

    // The stranger tried A and was refused at the handshake; it holds nothing of theirs, and
    // they list only each other.
    eventually(WAIT, "the stranger refused by A", || {
        let log = common::agent_log(&c);
        log.contains("hung up at the LAN handshake").then_some(())
    });
    assert_eq!(lan_peers(&c), serde_json::json!([]));
    assert!(history(&c).is_empty(), "{:?}", history(&c));
    let pasted = desk_c.paste(TEXT).unwrap_or_default();
    assert!(!pasted.starts_with(b"from "), "{pasted:?}");
    assert_eq!(lan_peers(a), serde_json::json!(["beta"]));
    assert_eq!(lan_peers(b), serde_json::json!(["alpha"]));

    // Each kept its own clip for the storage.
    for device in [a, b] {
        assert!(device.json(&["status"])["pending_segments"].as_u64() >= Some(1));
    }
    let files = tempfile::tempdir().unwrap();
    let _back_a = host_a.forward(pair.storage.port(), files.path());
    let _back_b = host_b.forward(pair.storage.port(), files.path());
    for device in [a, b, a] {
        device.run(&["sync"]).ok();
    }
    for device in [a, b] {
        let mut texts = history(device);
        texts.sort();
        assert_eq!(texts, ["from alpha, offline", "from beta, offline"]);
        let status = device.json(&["status"]);
        assert_eq!(status["pending_segments"], 0, "{status}");
        assert_eq!(status["pending_ops"], 0, "{status}");
    }
    stop_agent(agent_c);
    stop_agent(agent_b);
    stop_agent(agent_a);
}

/// On a network that passes no multicast, discovery finds nothing and says so; a device told
/// the other's address in `lan.peers` (with discovery off) connects all the same, and after a
/// restart without it the two meet again at the addresses they remembered.
#[test]
fn where_multicast_is_blocked_lan_peers_connect_and_are_remembered() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let Some(network) = netns::Network::create(2) else {
        return;
    };
    network.block_multicast();
    let (host_a, host_b) = (network.host(0), network.host(1));
    let pair = pair(Backend::S3, false);
    let (a, b) = (&pair.a, &pair.b);
    let _logs = LogsOnFailure(vec![a, b]);
    let (desk_a, desk_b) = (Display::start(), Display::start());
    let port = ("FERRY_LAN_PORT", "47291".to_owned());
    let env_a = [("FERRY_LAN_DISCOVERY", "true".to_owned()), port.clone()];
    let agent_a = start_agent_in(Some(host_a), a, Some(&desk_a), &env_a);
    let status = a.run(&["status"]).ok().stdout;
    assert!(
        status.contains(
            "lan       no peers found (listening on 0.0.0.0:47291): multicast may be blocked on \
             this network; see lan.peers"
        ),
        "{status}"
    );

    let peers = ("FERRY_LAN_PEERS", format!("{}:47291", host_a.addr()));
    let agent_b = start_agent_in(Some(host_b), b, Some(&desk_b), &[port.clone(), peers]);
    eventually(WAIT, "B connected to A through lan.peers", || {
        (lan_peers(a) == serde_json::json!(["beta"])).then_some(())
    });
    let _owner = desk_a.copy(TEXT, b"through lan.peers");
    eventually(WAIT, "the clip on B's desktop", || {
        (desk_b.paste(TEXT)? == b"through lan.peers").then_some(())
    });

    // Restarted with neither discovery nor lan.peers, B dials where it reached A before.
    stop_agent(agent_b);
    let agent_b = start_agent_in(Some(host_b), b, Some(&desk_b), &[port]);
    eventually(WAIT, "B connected to A at the remembered address", || {
        (lan_peers(b) == serde_json::json!(["alpha"])).then_some(())
    });
    let _owner = desk_a.copy(TEXT, b"remembered");
    eventually(WAIT, "the next clip on B's desktop", || {
        (desk_b.paste(TEXT)? == b"remembered").then_some(())
    });
    stop_agent(agent_b);
    stop_agent(agent_a);
}

#[test]
fn a_stranger_holding_handshakes_keeps_no_device_apart() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let Some(network) = netns::Network::create(3) else {
        return;
    };
    let (host_a, host_b, stranger_host) = (network.host(0), network.host(1), network.host(2));
    let pair = pair(Backend::S3, false);
    let (a, b) = (&pair.a, &pair.b);
    let _logs = LogsOnFailure(vec![a, b]);
    let (desk_a, desk_b) = (Display::start(), Display::start());
    let port = ("FERRY_LAN_PORT", "47291".to_owned());
    let agent_a = start_agent_in(Some(host_a), a, Some(&desk_a), std::slice::from_ref(&port));
    let peers = ("FERRY_LAN_PEERS", format!("{}:47291", host_a.addr()));
    let env_b = [port.clone(), peers];
    let agent_b = start_agent_in(Some(host_b), b, Some(&desk_b), &env_b);
    eventually(WAIT, "B connected to A", || {
        (lan_peers(a) == serde_json::json!(["beta"])).then_some(())
    });

    // A stranger, without the key, holds forty connections to A in their handshake, and opens
    // another as soon as one is closed.
    let mut stranger = stranger_host.command(std::env::current_exe().unwrap());
    stranger
        .args(["--ignored", "--exact", "lan_stranger", "--nocapture"])
        .env("FERRY_TEST_STRANGER", format!("{}:47291", host_a.addr()))
        .env("FERRY_TEST_STRANGER_HOLD", "40")
        .env("FERRY_TEST_STRANGER_SECS", "60")
        .stdout(std::process::Stdio::null());
    let stranger = common::Running(common::spawn(&mut stranger));
    std::thread::sleep(Duration::from_secs(2));

    // B restarts meanwhile and connects again; what A copies reaches B's desktop over the LAN.
    stop_agent(agent_b);
    let agent_b = start_agent_in(Some(host_b), b, Some(&desk_b), &env_b);
    eventually(WAIT, "B connected to A again beside the stranger", || {
        (lan_peers(a) == serde_json::json!(["beta"])).then_some(())
    });
    let _owner = desk_a.copy(TEXT, b"past the stranger");
    eventually(WAIT, "the clip on B's desktop", || {
        (desk_b.paste(TEXT)? == b"past the stranger").then_some(())
    });
    drop(stranger);
    stop_agent(agent_b);
    stop_agent(agent_a);
    let log = std::fs::read_to_string(a.home().join("agent.log")).unwrap();
    assert!(
        log.contains("too many connections in their handshake; more were closed at once"),
        "the stranger was not turned away:\n{log}"
    );
}

/// A stranger on the LAN (run by [`a_stranger_holding_handshakes_keeps_no_device_apart`] in a
/// namespace of its own): holds `FERRY_TEST_STRANGER_HOLD` connections to
/// `FERRY_TEST_STRANGER` open without a word, opening a new one whenever one is closed, for
/// `FERRY_TEST_STRANGER_SECS` seconds.
#[test]
#[ignore = "run inside a network namespace by the test of a stranger on the LAN"]
fn lan_stranger() {
    use std::io::Read;
    let target: std::net::SocketAddr = std::env::var("FERRY_TEST_STRANGER")
        .expect("FERRY_TEST_STRANGER")
        .parse()
        .unwrap();
    let var = |name: &str| -> u64 { std::env::var(name).unwrap().parse().unwrap() };
    let (hold, secs) = (
        var("FERRY_TEST_STRANGER_HOLD"),
        var("FERRY_TEST_STRANGER_SECS"),
    );
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    let mut held: Vec<std::net::TcpStream> = Vec::new();
    let mut opened = 0u64;
    while std::time::Instant::now() < until {
        // Open while a read would wait; closed (or reset) otherwise.
        held.retain_mut(|stream| {
            let mut byte = [0u8; 1];
            matches!(stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
        while held.len() < hold as usize {
            match std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                Ok(stream) => {
                    stream.set_nonblocking(true).unwrap();
                    held.push(stream);
                    opened += 1;
                }
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("opened {opened} connections");
}
