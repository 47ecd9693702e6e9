//! Golden test vectors: the formats, frozen.
//!
//! Each file under `tests/vectors/` is rebuilt here from fixed inputs and compared byte for byte
//! with the committed copy; then every sealed value in the file is opened again. These vectors
//! change only with a deliberate format version bump (a new `FORMAT_VERSION`, with a migration);
//! a failure here means the wire format changed by accident.
//!
//! To write the files after such a deliberate change: `FERRY_WRITE_VECTORS=1 cargo test -p
//! ferry-protocol --test vectors`.

use std::path::PathBuf;

use ferry_protocol::held;
use ferry_protocol::lan::Frame;
use ferry_protocol::objects::{Payload, Plain, Signed};
use ferry_protocol::{
    BlobChunk, BlobId, Cursor, DeviceId, Error, Head, Identity, KdfParams, Kind, ObjectName, RawOp,
    RelayHint, RepoHeader, Segment, Snapshot, SyncKey,
};
use serde_json::{Value, json};

fn sync_key(seed: u8) -> SyncKey {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
    SyncKey::from_bytes(bytes)
}

fn nonce(seed: u8) -> [u8; 24] {
    [seed; 24]
}

fn check(file: &str, built: Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(file);
    let text = serde_json::to_string_pretty(&built).unwrap() + "\n";
    if std::env::var_os("FERRY_WRITE_VECTORS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (write it with FERRY_WRITE_VECTORS=1)",
            path.display()
        )
    });
    assert!(
        committed == text,
        "{file} differs from what this build produces: the wire format changed"
    );
}

fn committed(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn key_schedule() {
    let cases: Vec<Value> = [0u8, 0x5a, 0xf0]
        .into_iter()
        .map(|seed| {
            let key = sync_key(seed);
            let keys = key.keys();
            json!({
                "sync_key": hex::encode(key.expose_bytes()),
                "key_id": keys.id.to_string(),
                "data": hex::encode(keys.data.expose_bytes()),
                "names": hex::encode(keys.names.expose_bytes()),
                "relay": hex::encode(keys.relay.expose_bytes()),
                "lan": hex::encode(keys.lan.expose_bytes()),
                "window_topic_0": keys.relay.window_topic(0).to_string(),
                "window_topic_20000": keys.relay.window_topic(20_000).to_string(),
                "lan_discovery_tag_period_0": hex::encode(keys.lan.discovery_tag(0)),
                "lan_discovery_tag_period_493000": hex::encode(keys.lan.discovery_tag(493_000)),
                "lan_transport_psk": hex::encode(*keys.lan.transport_psk()),
            })
        })
        .collect();
    check("keys.json", json!({ "cases": cases }));
}

#[test]
fn recovery_codes() {
    let cases: Vec<Value> = [0u8, 0x5a, 0xf0]
        .into_iter()
        .map(|seed| {
            let key = sync_key(seed);
            json!({
                "sync_key": hex::encode(key.expose_bytes()),
                "recovery_code": key.recovery_code().expose(),
            })
        })
        .chain([
            json!({ "sync_key": hex::encode([0u8; 32]), "recovery_code": SyncKey::from_bytes([0; 32]).recovery_code().expose() }),
            json!({ "sync_key": hex::encode([0xffu8; 32]), "recovery_code": SyncKey::from_bytes([0xff; 32]).recovery_code().expose() }),
        ])
        .collect();
    check("recovery.json", json!({ "cases": cases }));

    for case in committed("recovery.json")["cases"].as_array().unwrap() {
        let key = SyncKey::from_recovery_code(case["recovery_code"].as_str().unwrap()).unwrap();
        assert_eq!(key.expose_bytes().as_slice(), unhex(&case["sync_key"]));
    }
}

#[test]
fn passphrases() {
    let cheap = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
        salt: *b"ferry-salt-00001",
    };
    let default = KdfParams {
        memory_kib: KdfParams::DEFAULT_MEMORY_KIB,
        iterations: KdfParams::DEFAULT_ITERATIONS,
        parallelism: KdfParams::DEFAULT_PARALLELISM,
        salt: *b"ferry-salt-00002",
    };
    let cases: Vec<Value> = [
        ("correct horse battery staple", cheap),
        ("caf\u{e9} cr\u{e8}me", cheap),
        ("correct horse battery staple", default),
    ]
    .into_iter()
    .map(|(passphrase, params)| {
        let key = SyncKey::from_passphrase(passphrase, &params).unwrap();
        json!({
            "passphrase": passphrase,
            "passphrase_nfc_utf8": hex::encode(passphrase.as_bytes()),
            "memory_kib": params.memory_kib,
            "iterations": params.iterations,
            "parallelism": params.parallelism,
            "salt": hex::encode(params.salt),
            "sync_key": hex::encode(key.expose_bytes()),
            "key_id": key.key_id().to_string(),
        })
    })
    .collect();
    check("passphrase.json", json!({ "cases": cases }));
}

#[test]
fn names() {
    let keys = sync_key(0x5a).keys();
    let device = DeviceId([0x11; 16]);
    let tag = keys.names.device_tag(&device);
    let blob = keys.names.blob_id(b"a picture of a ferry");
    let names: Vec<String> = [
        ObjectName::Repo,
        ObjectName::Log {
            device: tag,
            seq: 1,
        },
        ObjectName::Head {
            device: tag,
            seq: 0x2a,
        },
        ObjectName::Snap {
            device: tag,
            seq: 0x100,
        },
        ObjectName::Blob { blob, chunk: 3 },
    ]
    .iter()
    .map(|n| n.to_string())
    .collect();
    check(
        "names.json",
        json!({
            "sync_key": hex::encode(sync_key(0x5a).expose_bytes()),
            "device_id": device.to_string(),
            "device_tag": tag.to_string(),
            "blob_content_utf8": "a picture of a ferry",
            "blob_id": blob.to_string(),
            "clip_content_utf8": "hello from Ferry",
            "clip_id": hex::encode(keys.names.clip_id(b"hello from Ferry")),
            "names": names,
        }),
    );
    for name in committed("names.json")["names"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        assert_eq!(name.parse::<ObjectName>().unwrap().to_string(), name);
    }
}

/// The writer's identity in the vectors.
fn identity() -> Identity {
    let mut secret = [0u8; Identity::SECRET_LEN];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = 0x77u8.wrapping_add(i as u8);
    }
    Identity::from_secret_bytes(&secret)
}

/// A sealed payload: its inputs, its plaintext encoding and its sealed bytes.
fn sealed_case<T: Plain>(name: &ObjectName, value: &T, fields: Value, nonce_seed: u8) -> Value {
    let keys = sync_key(0x5a).keys();
    let sealed = keys
        .data
        .seal_object_with_nonce(name, value, nonce(nonce_seed))
        .unwrap();
    json!({
        "kind": T::KIND as u8,
        "name": name.to_string(),
        "fields": fields,
        "plaintext": hex::encode(value.encode()),
        "nonce": hex::encode(nonce(nonce_seed)),
        "sealed": hex::encode(sealed.as_bytes()),
    })
}

/// A signed and sealed payload: as [`sealed_case`], with the payload's encoding and its
/// signature (the plaintext is the two together).
fn signed_case<T: Signed>(name: &ObjectName, value: &T, fields: Value, nonce_seed: u8) -> Value {
    let keys = sync_key(0x5a).keys();
    let sealed = keys
        .data
        .seal_signed_with_nonce(name, value, &identity(), nonce(nonce_seed))
        .unwrap();
    let opened = keys
        .data
        .open(T::KIND, &name.to_string(), sealed.as_bytes())
        .unwrap();
    let plaintext = opened.as_bytes();
    let payload = value.encode();
    json!({
        "kind": T::KIND as u8,
        "name": name.to_string(),
        "fields": fields,
        "payload": hex::encode(&payload),
        "signature": hex::encode(&plaintext[payload.len()..]),
        "plaintext": hex::encode(plaintext),
        "nonce": hex::encode(nonce(nonce_seed)),
        "sealed": hex::encode(sealed.as_bytes()),
    })
}

fn objects() -> (Segment, Head, Snapshot, BlobChunk) {
    let keys = sync_key(0x5a).keys();
    let device = DeviceId([0x11; 16]);
    let other = DeviceId([0x22; 16]);
    let segment = Segment {
        device,
        seq: 7,
        first_op: 40,
        ops: vec![
            RawOp(b"op-one".to_vec()),
            RawOp(vec![]),
            RawOp(vec![0xff; 3]),
        ],
    };
    let head = Head {
        device,
        seq: 7,
        ops: 42,
        first_seq: 5,
        snapshot: Some(4),
    };
    let snapshot = Snapshot {
        device,
        seq: 4,
        version_vector: vec![
            Cursor {
                device,
                seq: 4,
                ops: 30,
            },
            Cursor {
                device: other,
                seq: 9,
                ops: 100,
            },
        ],
        state: b"merged state".to_vec(),
    };
    let blob = keys.names.blob_id(b"a picture of a ferry");
    let chunk = BlobChunk {
        blob,
        index: 0,
        count: 1,
        total_len: 20,
        data: b"a picture of a ferry".to_vec(),
    };
    (segment, head, snapshot, chunk)
}

#[test]
fn sealed_objects() {
    let keys = sync_key(0x5a).keys();
    let (segment, head, snapshot, chunk) = objects();
    let tag = keys.names.device_tag(&segment.device);
    let log_name = ObjectName::Log {
        device: tag,
        seq: 7,
    };
    let head_name = ObjectName::Head {
        device: tag,
        seq: 7,
    };
    let snap_name = ObjectName::Snap {
        device: tag,
        seq: 4,
    };
    let blob_name = ObjectName::Blob {
        blob: chunk.blob,
        chunk: 0,
    };
    let writer = identity();
    let cases = json!({
        "sync_key": hex::encode(sync_key(0x5a).expose_bytes()),
        "identity": {
            "secret": hex::encode(writer.to_secret_bytes().as_slice()),
            "sign_public": hex::encode(writer.public().sign),
            "seal_public": hex::encode(writer.public().seal),
            "fingerprint": writer.public().fingerprint(),
        },
        "segment": signed_case(&log_name, &segment, json!({
            "device": segment.device.to_string(), "seq": 7, "first_op": 40,
            "ops": segment.ops.iter().map(|o| hex::encode(&o.0)).collect::<Vec<_>>(),
        }), 1),
        "head": signed_case(&head_name, &head, json!({
            "device": head.device.to_string(), "seq": 7, "ops": 42, "first_seq": 5, "snapshot": 4,
        }), 2),
        "snapshot": signed_case(&snap_name, &snapshot, json!({
            "device": snapshot.device.to_string(), "seq": 4,
            "version_vector": snapshot.version_vector.iter()
                .map(|c| json!({"device": c.device.to_string(), "seq": c.seq, "ops": c.ops}))
                .collect::<Vec<_>>(),
            "state": hex::encode(&snapshot.state),
        }), 3),
        "blob_chunk": sealed_case(&blob_name, &chunk, json!({
            "blob": chunk.blob.to_string(), "index": 0, "count": 1, "total_len": 20,
            "data": hex::encode(&chunk.data),
        }), 4),
    });
    check("objects.json", cases);

    let writer = writer.public();
    let stranger = Identity::from_secret_bytes(&[1; Identity::SECRET_LEN]).public();
    let file = committed("objects.json");
    let (n, b) = named(&file["segment"]);
    let opened = keys.data.open_signed::<Segment>(&n, &b).unwrap();
    opened.verify(&writer).unwrap();
    assert!(opened.verify(&stranger).is_err());
    assert_eq!(opened.value, segment);
    let (n, b) = named(&file["head"]);
    let opened = keys.data.open_signed::<Head>(&n, &b).unwrap();
    opened.verify(&writer).unwrap();
    assert_eq!(opened.value, head);
    let (n, b) = named(&file["snapshot"]);
    let opened = keys.data.open_signed::<Snapshot>(&n, &b).unwrap();
    opened.verify(&writer).unwrap();
    assert_eq!(opened.value, snapshot);
    let (n, b) = named(&file["blob_chunk"]);
    assert_eq!(keys.data.open_object::<BlobChunk>(&n, &b).unwrap(), chunk);
}

fn named(case: &Value) -> (ObjectName, Vec<u8>) {
    let name = case["name"].as_str().unwrap().parse().unwrap();
    (name, unhex(&case["sealed"]))
}

/// Objects, headers and hints of format version 1 (written before objects were signed) still
/// open; their segments, heads and snapshots carry no signature.
#[test]
fn version_1_still_reads() {
    let keys = sync_key(0x5a).keys();
    let (segment, head, snapshot, chunk) = objects();
    let file = committed("objects-v1.json");
    let (n, b) = named(&file["segment"]);
    assert_eq!(b[3], 1);
    let opened = keys.data.open_signed::<Segment>(&n, &b).unwrap();
    assert!(!opened.is_signed());
    assert!(opened.verify(&identity().public()).is_err());
    assert_eq!(opened.value, segment);
    let (n, b) = named(&file["head"]);
    assert_eq!(keys.data.open_signed::<Head>(&n, &b).unwrap().value, head);
    let (n, b) = named(&file["snapshot"]);
    assert_eq!(
        keys.data.open_signed::<Snapshot>(&n, &b).unwrap().value,
        snapshot
    );
    let (n, b) = named(&file["blob_chunk"]);
    assert_eq!(keys.data.open_object::<BlobChunk>(&n, &b).unwrap(), chunk);

    let file = committed("repo-v1.json");
    for which in ["generated_key", "passphrase_key"] {
        let header = RepoHeader::from_bytes(&unhex(&file[which]["bytes"])).unwrap();
        header.verify(&keys).unwrap();
    }

    // Hints were not signed then: refused, as an older version's.
    let file = committed("relay-v1.json");
    let topic = keys.relay.window_topic(20_000);
    assert!(matches!(
        keys.relay
            .open_hint(&topic, &unhex(&file["hint"]["sealed"])),
        Err(Error::UnsignedHint { .. })
    ));
}

#[test]
fn repository_headers() {
    let key = sync_key(0x5a);
    let keys = key.keys();
    let plain = RepoHeader::create_with_nonce(&keys, None, [0x33; 16], nonce(5)).unwrap();
    let kdf = KdfParams {
        memory_kib: 65536,
        iterations: 3,
        parallelism: 1,
        salt: *b"ferry-salt-00003",
    };
    let with_kdf = RepoHeader::create_with_nonce(&keys, Some(kdf), [0x44; 16], nonce(6)).unwrap();
    check(
        "repo.json",
        json!({
            "sync_key": hex::encode(key.expose_bytes()),
            "generated_key": {
                "repo_id": hex::encode([0x33; 16]),
                "key_check_nonce": hex::encode(nonce(5)),
                "bytes": hex::encode(plain.to_bytes()),
            },
            "passphrase_key": {
                "repo_id": hex::encode([0x44; 16]),
                "memory_kib": 65536, "iterations": 3, "parallelism": 1,
                "salt": hex::encode(kdf.salt),
                "key_check_nonce": hex::encode(nonce(6)),
                "bytes": hex::encode(with_kdf.to_bytes()),
            },
        }),
    );
    let file = committed("repo.json");
    for which in ["generated_key", "passphrase_key"] {
        let header = RepoHeader::from_bytes(&unhex(&file[which]["bytes"])).unwrap();
        header.verify(&keys).unwrap();
    }
}

#[test]
fn relay_hints() {
    let keys = sync_key(0x5a).keys();
    let topic = keys.relay.window_topic(20_000);
    let device = keys.names.device_tag(&DeviceId([0x11; 16]));
    let hint = RelayHint { device, seq: 7 };
    let sealed = keys
        .relay
        .seal_hint_with_nonce(&topic, &hint, &identity(), nonce(7))
        .unwrap();
    let opened = keys.relay.open_hint(&topic, sealed.as_bytes()).unwrap();
    let plaintext = keys
        .relay
        .open_hint_plaintext(&topic, sealed.as_bytes())
        .unwrap();
    check(
        "relay.json",
        json!({
            "sync_key": hex::encode(sync_key(0x5a).expose_bytes()),
            "window": 20_000,
            "topic": topic.to_string(),
            "signer_keys": identity().public().to_hex(),
            "hint": {
                "kind": Kind::RelayHint as u8,
                "name": format!("relay/{topic}"),
                "fields": { "device": device.to_string(), "seq": 7 },
                "payload": hex::encode(hint.encode()),
                "signature": hex::encode(&plaintext[plaintext.len() - 64..]),
                "plaintext": hex::encode(&plaintext),
                "nonce": hex::encode(nonce(7)),
                "sealed": hex::encode(sealed.as_bytes()),
            },
        }),
    );
    let file = committed("relay.json");
    let opened_committed = keys
        .relay
        .open_hint(&topic, &unhex(&file["hint"]["sealed"]))
        .unwrap();
    opened_committed.verify(&identity().public()).unwrap();
    assert_eq!(opened_committed.value, hint);
    assert_eq!(opened.value.segment(), ObjectName::Log { device, seq: 7 });

    // What format 2 sent before hints were signed (kind 7): refused, as an older version's.
    let file = committed("relay-unsigned.json");
    assert_eq!(file["hint"]["kind"], 7);
    assert_eq!(
        keys.relay
            .open_hint(&topic, &unhex(&file["hint"]["sealed"]))
            .unwrap_err(),
        Error::UnsignedHint { device }
    );
}

#[test]
fn blob_ids_are_keyed_and_deterministic() {
    let a = sync_key(1).keys().names;
    let b = sync_key(2).keys().names;
    assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
    assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
    assert_ne!(a.blob_id(b"x"), BlobId([0; 32]));
}

/// A reproducible random stream for the pairing vectors: SHA-256(seed ‖ counter as 8 bytes
/// big-endian), block after block. SPAKE2 takes its scalar from the first 64 bytes
/// (little-endian, reduced modulo the group order ℓ).
struct Stream {
    seed: &'static [u8],
    counter: u64,
    buffer: Vec<u8>,
}

impl Stream {
    fn new(seed: &'static [u8]) -> Stream {
        Stream {
            seed,
            counter: 0,
            buffer: Vec::new(),
        }
    }
}

impl spake2::rand_core::TryRng for Stream {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, out: &mut [u8]) -> Result<(), Self::Error> {
        use sha2::Digest;
        for byte in out {
            if self.buffer.is_empty() {
                let mut hash = sha2::Sha256::new();
                hash.update(self.seed);
                hash.update(self.counter.to_be_bytes());
                self.counter += 1;
                self.buffer = hash.finalize().to_vec();
                self.buffer.reverse();
            }
            *byte = self.buffer.pop().unwrap_or_default();
        }
        Ok(())
    }
}

impl spake2::rand_core::TryCryptoRng for Stream {}

/// The pairing exchange, frame by frame, for a fixed code, sides and random streams.
#[test]
fn pairing() {
    use ferry_protocol::pairing::{
        self, Bundle, Credentials, Message, Outcome, PairingCode, Reply, Role, Session,
    };

    let code = PairingCode::from_parts(417, [1247, 1936]);
    let mut offer =
        Session::with_rng(Role::Offer, &code, [0x0f; 8], Stream::new(b"offer")).unwrap();
    let mut join = Session::with_rng(Role::Join, &code, [0x01; 8], Stream::new(b"join")).unwrap();
    let bundle = Bundle {
        sync_key: *sync_key(0x5a).expose_bytes(),
        store: "s3://bucket/ferry?endpoint=http://127.0.0.1:9000&region=us-east-1".into(),
        credentials: Credentials::S3 {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        },
        relay: Some("wss://relay.example.org".into()),
        device: DeviceId([0x11; 16]),
        name: "laptop".into(),
    };
    let reply = Reply {
        device: DeviceId([0x22; 16]),
        name: "desktop".into(),
        keys: identity().public(),
    };
    let outcome = Outcome {
        joined: true,
        detail: String::new(),
    };

    let offer_pake = offer.frames()[0].clone();
    let join_pake = join.frames()[0].clone();
    offer.receive(&join_pake).unwrap();
    let offer_confirm = offer.frames()[1].clone();
    join.receive(&offer_pake).unwrap();
    assert!(join.receive(&offer_confirm).unwrap().confirmed);
    let join_confirm = join.frames()[1].clone();
    join.send(&Message::Reply(reply.clone())).unwrap();
    let reply_frames = join.frames()[2..].to_vec();
    assert!(offer.receive(&join_confirm).unwrap().confirmed);
    for frame in &reply_frames {
        offer.receive(frame).unwrap();
    }
    offer.send(&Message::Bundle(bundle.clone())).unwrap();
    let bundle_frames = offer.frames()[2..].to_vec();
    let mut got = None;
    for frame in &bundle_frames {
        got = join.receive(frame).unwrap().message.or(got);
    }
    assert_eq!(got, Some(Message::Bundle(bundle.clone())));
    join.send(&Message::Outcome(outcome.clone())).unwrap();
    let outcome_frames = join.frames()[2 + reply_frames.len()..].to_vec();
    assert_eq!(
        offer.receive(&outcome_frames[0]).unwrap().message,
        Some(Message::Outcome(outcome))
    );
    let frames = |list: &[Vec<u8>]| list.iter().map(hex::encode).collect::<Vec<_>>();
    check(
        "pairing.json",
        json!({
            "code": code.to_string(),
            "spake2_identity": String::from_utf8_lossy(pairing::SPAKE_IDENTITY),
            "topic": pairing::topic(code.nameplate()).to_string(),
            "lan_instance": pairing::lan_instance(code.nameplate()),
            "offer": { "side": "0f0f0f0f0f0f0f0f", "random_seed": "offer" },
            "join": { "side": "0101010101010101", "random_seed": "join" },
            "frames": {
                "offer_pake": hex::encode(&offer_pake),
                "join_pake": hex::encode(&join_pake),
                "offer_confirm": hex::encode(&offer_confirm),
                "join_confirm": hex::encode(&join_confirm),
                "reply": frames(&reply_frames),
                "bundle": frames(&bundle_frames),
                "outcome": frames(&outcome_frames),
            },
        }),
    );
}

/// SPAKE2 against an independent implementation: `tests/vectors/pairing_python.py` (the PyPI
/// `spake2` package, pure Python) answered the join side's message of `pairing.json` and wrote
/// its own message and the key it derived; the Rust side must derive the same key.
#[test]
fn spake2_agrees_with_the_python_implementation() {
    use ferry_protocol::pairing::{PairingCode, SPAKE_IDENTITY};
    use spake2::{Ed25519Group, Identity as SpakeIdentity, Password, Spake2};

    let file = committed("pairing-python.json");
    let code = PairingCode::from_parts(417, [1247, 1936]).to_string();
    assert_eq!(file["password"], code.as_str());
    assert_eq!(
        file["identity"],
        String::from_utf8_lossy(SPAKE_IDENTITY).as_ref()
    );
    let (rust, message) = Spake2::<Ed25519Group>::start_symmetric_with_rng(
        &Password::new(code.as_bytes()),
        &SpakeIdentity::new(SPAKE_IDENTITY),
        Stream::new(b"join"),
    );
    assert_eq!(
        hex::encode(&message),
        file["rust_message"].as_str().unwrap()
    );
    let key = rust.finish(&unhex(&file["python_message"])).unwrap();
    assert_eq!(hex::encode(key), file["python_key"].as_str().unwrap());
}

/// One generation record of the vectors: the rotation's fields, the sealed record and every
/// wrap with the inputs an independent HPKE implementation needs to make the same bytes.
fn generation_case(
    old: &SyncKey,
    plan: &ferry_protocol::generation::Plan<'_>,
    recipients: &[(DeviceId, &Identity)],
    seed: &'static [u8],
    nonce_seed: u8,
) -> Value {
    use ferry_protocol::generation::{Next, wrap_info};
    use spake2::rand_core::TryRng;

    let keys = old.keys();
    let next = Next::create_with_randomness(
        &keys,
        &identity(),
        plan,
        nonce(nonce_seed),
        &mut Stream::new(seed),
    )
    .unwrap();
    let bytes = next.to_bytes();
    let claimed = Next::from_bytes(next.creator, &bytes)
        .unwrap()
        .open(&keys)
        .unwrap();
    claimed.verify(&identity().public()).unwrap();
    let rotation = claimed.value;
    let payload = rotation.encode();
    let successor = next.successor;
    let record_name = format!(
        "{}#{}",
        next.name(),
        hex::encode(postcard::to_allocvec(&successor).unwrap())
    );
    let record = {
        let (_, body) = bytes.split_at(5);
        let (_, rest) = postcard::take_from_bytes::<(u32, [u8; 8], bool)>(body).unwrap();
        let (record, _) = postcard::take_from_bytes::<serde_bytes::ByteBuf>(rest).unwrap();
        record.into_vec()
    };
    let opened = keys
        .data
        .open(Kind::Rotation, &record_name, &record)
        .unwrap();
    let mut ikm = Stream::new(seed);
    let mut sorted = recipients.to_vec();
    sorted.sort_by_key(|(device, _)| *device);
    let wraps: Vec<Value> = sorted
        .iter()
        .map(|(device, identity)| {
            let mut ephemeral = [0u8; 32];
            ikm.try_fill_bytes(&mut ephemeral).unwrap();
            let wrap = rotation.wrap_for(device).unwrap();
            let handover = wrap
                .open(identity, keys.id, &successor, plan.creator)
                .unwrap();
            assert_eq!(handover.key.expose_bytes(), plan.key.expose_bytes());
            json!({
                "device": device.to_string(),
                "recipient_secret": hex::encode(&identity.to_secret_bytes()[32..]),
                "recipient_public": hex::encode(identity.public().seal),
                "info": hex::encode(wrap_info(keys.id, &successor, device, &plan.creator)),
                "ephemeral_ikm": hex::encode(ephemeral),
                "handover": hex::encode(postcard::to_allocvec(&(
                    plan.key.expose_bytes(),
                    &plan.storage,
                )).unwrap()),
                "enc": hex::encode(wrap.enc),
                "sealed": hex::encode(&wrap.sealed),
            })
        })
        .collect();
    let storage = plan.storage.as_ref().map(|storage| {
        use ferry_protocol::pairing::Credentials;
        let credentials = match &storage.credentials {
            Credentials::None => json!("none"),
            Credentials::S3 {
                access_key_id,
                secret_access_key,
            } => json!({ "s3": { "access_key_id": access_key_id, "secret_access_key": secret_access_key } }),
            Credentials::WebDav { password } => json!({ "webdav": { "password": password } }),
        };
        json!({ "url": storage.url, "credentials": credentials })
    });
    json!({
        "old_key_id": keys.id.to_string(),
        "new_key": hex::encode(plan.key.expose_bytes()),
        "storage": storage,
        "name": next.name().to_string(),
        "successor": {
            "generation": successor.generation,
            "key_id": successor.key_id.to_string(),
            "moved": successor.moved,
            "root": successor.root(),
        },
        "record_name": record_name,
        "fields": {
            "creator": rotation.creator.to_string(),
            "time_ms": rotation.time_ms,
            "revoked": rotation.revoked.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "payload": hex::encode(&payload),
        "signature": hex::encode(&opened.as_bytes()[payload.len()..]),
        "nonce": hex::encode(nonce(nonce_seed)),
        "record": hex::encode(&record),
        "bytes": hex::encode(&bytes),
        "wraps": wraps,
    })
}

/// Generations: a rotation that removes a device, a move to other storage, and the previous key
/// sealed in the new generation.
#[test]
fn generations() {
    use ferry_protocol::generation::{Next, Plan, Previous, Storage, Successor};
    use ferry_protocol::pairing::Credentials;

    let creator = DeviceId([0x11; 16]);
    let other = DeviceId([0x22; 16]);
    let removed = DeviceId([0x33; 16]);
    let other_identity = {
        let mut secret = [0u8; Identity::SECRET_LEN];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = 0x99u8.wrapping_add(i as u8);
        }
        Identity::from_secret_bytes(&secret)
    };
    let (g1, g2, g3) = (sync_key(0x5a), sync_key(0xa5), sync_key(0xc3));
    let recipients = vec![
        (other, other_identity.public()),
        (creator, identity().public()),
    ];
    let rotation = Plan {
        successor: Successor {
            generation: 2,
            key_id: g2.key_id(),
            moved: false,
        },
        key: &g2,
        storage: None,
        creator,
        time_ms: 1_765_000_000_000,
        revoked: vec![removed],
        recipients: recipients.clone(),
    };
    let moving = Plan {
        successor: Successor {
            generation: 3,
            key_id: g3.key_id(),
            moved: true,
        },
        key: &g3,
        storage: Some(Storage {
            url: "s3://ferry-bucket/home?endpoint=http://127.0.0.1:9000&region=us-east-1".into(),
            credentials: Credentials::S3 {
                access_key_id: "AKIAFERRYEXAMPLE".into(),
                secret_access_key: "ferry/example/secret".into(),
            },
        }),
        creator,
        time_ms: 1_765_000_100_000,
        revoked: Vec::new(),
        recipients,
    };
    let people = [(creator, &identity()), (other, &other_identity)];
    let previous = Previous {
        writer: creator,
        generation: 1,
        key: *g1.expose_bytes(),
    };
    let sealed_previous = g2
        .keys()
        .data
        .seal_signed_with_nonce(&ObjectName::Prev, &previous, &identity(), nonce(12))
        .unwrap();
    check(
        "generation.json",
        json!({
            "generation_1_key": hex::encode(g1.expose_bytes()),
            "generation_2_key": hex::encode(g2.expose_bytes()),
            "generation_3_key": hex::encode(g3.expose_bytes()),
            "creator_keys": identity().public().to_hex(),
            "other_keys": other_identity.public().to_hex(),
            "rotation": generation_case(&g1, &rotation, &people, b"rotate", 10),
            "move": generation_case(&g2, &moving, &people, b"move", 11),
            "previous": {
                "name": ObjectName::Prev.to_string(),
                "payload": hex::encode(previous.encode()),
                "nonce": hex::encode(nonce(12)),
                "sealed": hex::encode(sealed_previous.as_bytes()),
            },
        }),
    );
    let file = committed("generation.json");
    let next = Next::from_bytes(
        g1.keys().names.device_tag(&creator),
        &unhex(&file["rotation"]["bytes"]),
    )
    .unwrap();
    let claimed = next.open(&g1.keys()).unwrap();
    claimed.verify(&identity().public()).unwrap();
    assert!(claimed.value.revokes(&removed));
    let opened = g2
        .keys()
        .data
        .open_signed::<Previous>(&ObjectName::Prev, &unhex(&file["previous"]["sealed"]))
        .unwrap();
    opened.verify(&identity().public()).unwrap();
    assert_eq!(opened.value.sync_key().key_id(), g1.key_id());
}

/// HPKE against an independent implementation: `tests/vectors/generation_python.py` (PyPI
/// `pyhpke`, on `cryptography`) sealed every wrap of `generation.json` again from the same
/// ephemeral input and opened the committed ones; its bytes must be ours.
#[test]
fn wraps_agree_with_the_python_implementation() {
    let ours = committed("generation.json");
    let theirs = committed("generation-python.json");
    let mut count = 0;
    for case in ["rotation", "move"] {
        let wraps = ours[case]["wraps"].as_array().unwrap();
        let python = theirs[case].as_array().unwrap();
        assert_eq!(wraps.len(), python.len());
        for (wrap, python) in wraps.iter().zip(python) {
            assert_eq!(python["device"], wrap["device"]);
            assert_eq!(python["enc"], wrap["enc"], "{case}: encapsulated key");
            assert_eq!(python["sealed"], wrap["sealed"], "{case}: ciphertext");
            assert_eq!(python["opened"], wrap["handover"], "{case}: opened");
            count += 1;
        }
    }
    assert_eq!(count, 4);
}

#[test]
fn lan() {
    let keys = sync_key(1).keys();
    let period = ferry_protocol::lan::period(1_795_850_000);
    let names: Vec<Value> = [[0u8; 8], [0xA7; 8]]
        .into_iter()
        .map(|nonce| {
            json!({
                "period": period,
                "nonce": hex::encode(nonce),
                "discovery_tag": hex::encode(keys.lan.discovery_tag(period)),
                "instance_name": keys.lan.instance_name(period, nonce),
            })
        })
        .collect();
    let tag = keys.names.device_tag(&DeviceId([0x11; 16]));
    let frames: Vec<Value> = [
        Frame::hello(
            &Identity::from_secret_bytes(&[0x44; Identity::SECRET_LEN]),
            (
                DeviceId([0x11; 16]),
                ferry_protocol::lan::DEFAULT_PORT,
                false,
            ),
            &[0x55; 32],
            ferry_protocol::lan::End::Dialer,
        ),
        Frame::Heads(vec![(tag, 7), (ferry_protocol::DeviceTag([0x22; 16]), 1)]),
        Frame::Segment {
            device: tag,
            seq: 7,
            sealed: b"sealed segment bytes".to_vec(),
        },
        Frame::Ping,
        Frame::Want {
            blob: ferry_protocol::BlobId([0x33; 32]),
        },
        Frame::Chunk {
            blob: ferry_protocol::BlobId([0x33; 32]),
            chunk: 2,
            sealed: b"sealed chunk bytes".to_vec(),
        },
        Frame::Ask {
            call: 5,
            more: false,
            part: held::Question::Get {
                name: "ferry/v1/repo".into(),
                limit: 4096,
            }
            .encode(),
        },
        Frame::Answer {
            call: 5,
            more: false,
            part: held::Reply::Object(b"sealed header".to_vec()).encode(),
        },
        Frame::Ask {
            call: 6,
            more: false,
            part: held::Question::List {
                prefix: "ferry/v1/head/".into(),
                start_after: None,
                limit: held::MAX_LISTED,
            }
            .encode(),
        },
        Frame::Answer {
            call: 6,
            more: false,
            part: held::Reply::Page {
                objects: vec![("ferry/v1/head/aa/7".into(), 300)],
                next: None,
            }
            .encode(),
        },
        Frame::Unanswered {
            call: 7,
            why: ferry_protocol::lan::Unanswered::Busy,
        },
    ]
    .iter()
    .map(|frame| {
        let bytes = frame.encode().unwrap();
        assert_eq!(&Frame::decode(&bytes).unwrap(), frame);
        json!({ "frame": format!("{frame:?}"), "bytes": hex::encode(bytes) })
    })
    .collect();
    for case in &names {
        let name = case["instance_name"].as_str().unwrap();
        assert!(keys.lan.recognises(name, period));
        assert!(!sync_key(2).keys().lan.recognises(name, period));
    }
    check(
        "lan.json",
        json!({
            "sync_key": hex::encode(sync_key(1).expose_bytes()),
            "transport_psk": hex::encode(*keys.lan.transport_psk()),
            "noise": ferry_protocol::lan::NOISE_PARAMS,
            "prologue": String::from_utf8_lossy(ferry_protocol::lan::PROLOGUE),
            "instance_names": names,
            "hello": {
                "identity_secret": hex::encode(*Identity::from_secret_bytes(&[0x44; Identity::SECRET_LEN]).to_secret_bytes()),
                "handshake_hash": hex::encode([0x55; 32]),
                "end": "dialer (0)",
                "digest": hex::encode(ferry_protocol::lan::hello_digest(
                    &[0x55; 32],
                    ferry_protocol::lan::End::Dialer,
                    &DeviceId([0x11; 16]),
                    ferry_protocol::lan::DEFAULT_PORT,
                    false,
                    &Identity::from_secret_bytes(&[0x44; Identity::SECRET_LEN]).public().sign,
                )),
            },
            "frames": frames,
        }),
    );
}
