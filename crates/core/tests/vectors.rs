//! Golden encodings of operations and of a state: they travel inside segments and snapshots, so
//! they are part of the wire format. They change only with a deliberate format version bump; to
//! rewrite them after one: `FERRY_WRITE_VECTORS=1 cargo test -p ferry-core --test vectors`.

use std::path::PathBuf;

use ferry_core::{Body, ClipContent, DeviceId, Op, Replica, State};
use ferry_protocol::{BlobId, Identity, SyncKey};
use serde_json::{Value, json};

const T0: u64 = 1_800_000_000_000;

/// One replica making one of every kind of operation, deterministically.
fn every_kind_of_operation() -> (Vec<Op>, State) {
    let names = SyncKey::from_bytes([3; 32]).keys().names;
    let mut a = Replica::new(DeviceId([0xa1; 16]));
    let mut ops = Vec::new();
    ops.push(a.copy(&names, ClipContent::Text("hello".into()), T0));
    let clip = a.state().newest().unwrap().id;
    ops.push(a.copy(&names, ClipContent::rich_text("<b>hi</b>", "hi"), T0 + 1));
    ops.push(a.copy(
        &names,
        ClipContent::image(
            "image/png",
            Body::Blob {
                id: BlobId([0xbb; 32]),
                len: 123_456,
            },
        ),
        T0 + 2,
    ));
    ops.push(a.copy(
        &names,
        ClipContent::file(
            "notes.txt",
            "text/plain",
            Body::Inline(b"file body".to_vec()),
        ),
        T0 + 3,
    ));
    ops.push(a.set_pinned(clip, true, T0 + 4));
    ops.push(a.set_favourite(clip, true, T0 + 5));
    ops.push(a.delete(clip, T0 + 6));
    ops.push(a.restore(clip, T0 + 7));
    let (collection, create) = a.create_collection("work".into(), T0 + 8);
    ops.push(create);
    ops.push(a.rename_collection(collection, "job".into(), T0 + 9));
    ops.push(a.add_to_collection(collection, clip, T0 + 10));
    ops.push(a.remove_from_collection(collection, clip, T0 + 11));
    ops.push(a.delete_collection(collection, T0 + 12));
    ops.push(a.set_alias("sig".into(), Some("Regards".into()), T0 + 13));
    ops.push(a.set_alias("sig".into(), None, T0 + 14));
    ops.push(a.set_setting("poll_interval".into(), Some("60".into()), T0 + 15));
    ops.push(a.purge(clip, T0 + 16));
    let identity = Identity::from_secret_bytes(&[0x77; Identity::SECRET_LEN]);
    ops.push(a.register("laptop".into(), identity.public(), T0 + 17));
    (ops, a.into_state())
}

#[test]
fn operations_and_state_encode_as_committed() {
    let (ops, state) = every_kind_of_operation();
    let built = json!({
        "operations": ops.iter().map(|op| json!({
            "action": format!("{:?}", op.action).split([' ', '{', '(']).next().unwrap(),
            "encoded": hex::encode(op.encode()),
        })).collect::<Vec<Value>>(),
        "state": hex::encode(state.encode()),
    });
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/ops.json");
    let text = serde_json::to_string_pretty(&built).unwrap() + "\n";
    if std::env::var_os("FERRY_WRITE_VECTORS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == text,
        "ops.json differs: the operation or state encoding changed"
    );

    // And the committed bytes decode to the same values.
    let file: Value = serde_json::from_str(&committed).unwrap();
    for (op, case) in ops.iter().zip(file["operations"].as_array().unwrap()) {
        let bytes = hex::decode(case["encoded"].as_str().unwrap()).unwrap();
        assert_eq!(&Op::decode(&bytes).unwrap(), op);
    }
    let bytes = hex::decode(file["state"].as_str().unwrap()).unwrap();
    assert_eq!(State::decode(&bytes).unwrap(), state);
}

/// Operations and a state of format version 1 (before the roster) still decode.
#[test]
fn version_1_operations_and_state_still_decode() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/ops-v1.json");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut replayed = State::new();
    for case in file["operations"].as_array().unwrap() {
        let bytes = hex::decode(case["encoded"].as_str().unwrap()).unwrap();
        replayed.apply(Op::decode(&bytes).unwrap()).unwrap();
    }
    let bytes = hex::decode(file["state"].as_str().unwrap()).unwrap();
    let state = State::decode_format(&bytes, 1).unwrap();
    assert_eq!(state, replayed);
    assert_eq!(state.devices().count(), 0);
    assert!(State::decode(&bytes).is_err());
    assert!(State::decode_format(&bytes, 9).is_err());
}
