//! Envelope and key-derivation costs: seal and open at typical clip sizes, what signing adds to
//! a segment (sign and seal, open and verify) and to a relay hint, and Argon2id.
//!
//! `cargo bench -p ferry-protocol --bench envelope`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferry_protocol::{
    DeviceId, DeviceTag, Identity, KdfParams, Kind, ObjectName, RawOp, RelayHint, Segment, SyncKey,
};

fn seal_open(c: &mut Criterion) {
    let keys = SyncKey::from_bytes([7; 32]).keys();
    let name = "log/00112233445566778899aabbccddeeff/0000000000000001";
    let mut group = c.benchmark_group("envelope");
    for size in [64usize, 4 * 1024, 1024 * 1024] {
        let plaintext = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &plaintext, |b, p| {
            b.iter(|| keys.data.seal(Kind::Segment, name, black_box(p)).unwrap())
        });
        let sealed = keys.data.seal(Kind::Segment, name, &plaintext).unwrap();
        group.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, s| {
            b.iter(|| {
                keys.data
                    .open(Kind::Segment, name, black_box(s.as_bytes()))
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// A segment of one clip of `size` bytes, as a device writes it: sealed alone (as format 1
/// did) or signed and sealed; then opened alone, or opened and verified.
fn signed_segments(c: &mut Criterion) {
    let keys = SyncKey::from_bytes([7; 32]).keys();
    let identity = Identity::from_secret_bytes(&[9; Identity::SECRET_LEN]);
    let public = identity.public();
    let name = ObjectName::Log {
        device: DeviceTag([1; 16]),
        seq: 1,
    };
    let mut group = c.benchmark_group("segment");
    for size in [64usize, 4 * 1024, 1024 * 1024] {
        let segment = Segment {
            device: DeviceId([2; 16]),
            seq: 1,
            first_op: 1,
            ops: vec![RawOp(vec![0x5a; size])],
        };
        let encoded = ferry_protocol::Payload::encode(&segment);
        let logical = name.to_string();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal_unsigned", size), &encoded, |b, p| {
            b.iter(|| {
                keys.data
                    .seal(Kind::Segment, &logical, black_box(p))
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("sign_and_seal", size), &segment, |b, s| {
            b.iter(|| {
                keys.data
                    .seal_signed(&name, black_box(s), &identity)
                    .unwrap()
            })
        });
        let sealed = keys.data.seal_signed(&name, &segment, &identity).unwrap();
        group.bench_with_input(
            BenchmarkId::new("open_and_verify", size),
            &sealed,
            |b, s| {
                b.iter(|| {
                    let claimed = keys
                        .data
                        .open_signed::<Segment>(&name, black_box(s.as_bytes()))
                        .unwrap();
                    claimed.verify(&public).unwrap();
                    claimed
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("open_unverified", size),
            &sealed,
            |b, s| {
                b.iter(|| {
                    keys.data
                        .open_signed::<Segment>(&name, black_box(s.as_bytes()))
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

/// A relay hint as a device publishes it (signed and sealed) and as another takes it (opened
/// and verified against its writer's keys).
fn hints(c: &mut Criterion) {
    let keys = SyncKey::from_bytes([7; 32]).keys();
    let identity = Identity::from_secret_bytes(&[9; Identity::SECRET_LEN]);
    let public = identity.public();
    let topic = keys.relay.window_topic(20_000);
    let hint = RelayHint {
        device: DeviceTag([1; 16]),
        seq: 42,
    };
    let mut group = c.benchmark_group("hint");
    group.bench_function("sign_and_seal", |b| {
        b.iter(|| {
            keys.relay
                .seal_hint(&topic, black_box(&hint), &identity)
                .unwrap()
        })
    });
    let sealed = keys.relay.seal_hint(&topic, &hint, &identity).unwrap();
    group.bench_function("open_and_verify", |b| {
        b.iter(|| {
            let claimed = keys
                .relay
                .open_hint(&topic, black_box(sealed.as_bytes()))
                .unwrap();
            claimed.verify(&public).unwrap();
            claimed
        })
    });
    group.finish();
}

/// A new generation's candidate as its creator makes it (a wrap per remaining device, signed
/// and sealed), and as another device takes it: opened, its signature checked, its own wrap
/// opened.
fn generations(c: &mut Criterion) {
    use ferry_protocol::DeviceId;
    use ferry_protocol::generation::{Next, Plan, Successor};

    let old = SyncKey::from_bytes([7; 32]);
    let new = SyncKey::from_bytes([8; 32]);
    let keys = old.keys();
    let people: Vec<(DeviceId, Identity)> = (0..64u8)
        .map(|i| {
            let identity = Identity::from_secret_bytes(&[i; Identity::SECRET_LEN]);
            (DeviceId([i; 16]), identity)
        })
        .collect();
    let mut group = c.benchmark_group("generation");
    for devices in [3usize, 64] {
        let plan = Plan {
            successor: Successor {
                generation: 2,
                key_id: new.key_id(),
                moved: false,
            },
            key: &new,
            storage: None,
            creator: people[0].0,
            time_ms: 1_765_000_000_000,
            revoked: Vec::new(),
            recipients: people[..devices]
                .iter()
                .map(|(device, identity)| (*device, identity.public()))
                .collect(),
        };
        let creator = &people[0].1;
        group.bench_with_input(BenchmarkId::new("make", devices), &plan, |b, plan| {
            b.iter(|| Next::create(&keys, creator, black_box(plan)).unwrap())
        });
        let next = Next::create(&keys, creator, &plan).unwrap();
        let (reader, reader_identity) = &people[1];
        group.bench_with_input(BenchmarkId::new("take", devices), &next, |b, next| {
            b.iter(|| {
                let claimed = black_box(next).open(&keys).unwrap();
                claimed.verify(&creator.public()).unwrap();
                let wrap = claimed.value.wrap_for(reader).unwrap();
                wrap.open(reader_identity, keys.id, &next.successor, people[0].0)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn argon2id(c: &mut Criterion) {
    let params = KdfParams {
        memory_kib: KdfParams::DEFAULT_MEMORY_KIB,
        iterations: KdfParams::DEFAULT_ITERATIONS,
        parallelism: KdfParams::DEFAULT_PARALLELISM,
        salt: [1; 16],
    };
    let mut group = c.benchmark_group("kdf");
    group.sample_size(10);
    group.bench_function("argon2id_m64MiB_t3_p1", |b| {
        b.iter(|| SyncKey::from_passphrase(black_box("correct horse battery staple"), &params))
    });
    // The most work a repository header may ask of a joining device.
    let most = KdfParams {
        memory_kib: KdfParams::MAX_MEMORY_KIB,
        iterations: (KdfParams::MAX_WORK_KIB / u64::from(KdfParams::MAX_MEMORY_KIB)) as u32,
        ..params
    };
    group.bench_function("argon2id_most_accepted_m256MiB_t3_p1", |b| {
        b.iter(|| SyncKey::from_passphrase(black_box("correct horse battery staple"), &most))
    });
    group.finish();
}

criterion_group!(
    benches,
    seal_open,
    signed_segments,
    hints,
    generations,
    argon2id
);
criterion_main!(benches);
