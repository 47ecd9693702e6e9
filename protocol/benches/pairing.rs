//! What pairing costs in computation, both sides in one process with no relay: a whole
//! exchange (key exchange, confirmation both ways, the reply, a settings bundle and the
//! outcome), and one side's key exchange alone.
//!
//! `cargo bench -p ferry-protocol --bench pairing`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferry_protocol::pairing::{
    Bundle, Credentials, Message, Outcome, PairingCode, Reply, Role, Session,
};
use ferry_protocol::{DeviceId, Identity};

fn exchange(code: &PairingCode) {
    let mut offer = Session::new(Role::Offer, code).unwrap();
    let mut join = Session::new(Role::Join, code).unwrap();
    offer.receive(&join.frames()[0]).unwrap();
    join.receive(&offer.frames()[0]).unwrap();
    join.receive(&offer.frames()[1]).unwrap();
    join.send(&Message::Reply(Reply {
        device: DeviceId([2; 16]),
        name: "desktop".into(),
        keys: Identity::from_secret_bytes(&[3; 64]).public(),
    }))
    .unwrap();
    for frame in &join.frames()[1..] {
        offer.receive(frame).unwrap();
    }
    offer
        .send(&Message::Bundle(Bundle {
            sync_key: [7; 32],
            store: "s3://bucket/ferry?endpoint=https://s3.example.org&region=eu-west-1".into(),
            credentials: Credentials::S3 {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            },
            relay: Some("wss://relay.example.org".into()),
            device: DeviceId([1; 16]),
            name: "laptop".into(),
        }))
        .unwrap();
    for frame in &offer.frames()[2..] {
        join.receive(frame).unwrap();
    }
    join.send(&Message::Outcome(Outcome {
        joined: true,
        detail: String::new(),
    }))
    .unwrap();
    let last = join.frames().last().unwrap().clone();
    black_box(offer.receive(&last).unwrap());
}

fn pairing(c: &mut Criterion) {
    let code = PairingCode::from_parts(417, [1247, 1936]);
    let mut group = c.benchmark_group("pairing");
    group.bench_function("whole exchange, both sides", |b| b.iter(|| exchange(&code)));
    group.bench_function("one side's key exchange message", |b| {
        b.iter(|| Session::new(Role::Join, black_box(&code)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, pairing);
criterion_main!(benches);
