//! Hostile bytes: operations and states decoded from anything never panic, and what decodes can
//! be applied, merged, queried and encoded again without panicking.

use ferry_core::{ClipContent, DeviceId, Op, Replica, State, Strategy};
use ferry_protocol::SyncKey;
use proptest::prelude::*;

const T0: u64 = 1_800_000_000_000;

/// A state and an operation log with something of every kind in it.
fn sample() -> (State, Vec<Op>) {
    let names = SyncKey::from_bytes([3; 32]).keys().names;
    let mut a = Replica::new(DeviceId([1; 16]));
    let mut ops = vec![a.copy(&names, ClipContent::Text("x".into()), T0)];
    let clip = a.state().newest().unwrap().id;
    ops.push(a.set_pinned(clip, true, T0 + 1));
    ops.push(a.delete(clip, T0 + 2));
    let (c, op) = a.create_collection("c".into(), T0 + 3);
    ops.push(op);
    ops.push(a.add_to_collection(c, clip, T0 + 4));
    ops.push(a.remove_from_collection(c, clip, T0 + 5));
    ops.push(a.set_alias("n".into(), Some("v".into()), T0 + 6));
    ops.push(a.set_setting("k".into(), None, T0 + 7));
    (a.into_state(), ops)
}

/// Everything a device does with a state it has read.
fn exercise(mut state: State) {
    let other = state.clone();
    state.merge(other);
    let _ = state.history(None, 10);
    let _ = state.trash();
    let _ = state.collections();
    let _ = state.stats();
    let _ = state.aliases(Strategy::KeepBoth, DeviceId([1; 16]));
    let _ = state.settings(Strategy::RemoteWins, DeviceId([1; 16]));
    let _ = State::decode(&state.encode());
    let mut replica = Replica::with_state(DeviceId([9; 16]), state);
    replica.copy_as(
        ferry_core::ClipId([7; 16]),
        ClipContent::Text("y".into()),
        T0,
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        if let Ok(op) = Op::decode(&bytes) {
            let mut state = State::new();
            let _ = state.apply(op);
            exercise(state);
        }
        if let Ok(state) = State::decode(&bytes) {
            exercise(state);
        }
    }

    #[test]
    fn mutated_encodings_never_panic(
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        which in 0..9usize,
    ) {
        let (state, ops) = sample();
        let mut bytes = if which == 8 { state.encode() } else { ops[which.min(ops.len() - 1)].encode() };
        let i = position.index(bytes.len());
        bytes[i] = byte;
        if let Ok(op) = Op::decode(&bytes) {
            let mut fresh = State::new();
            for earlier in &ops {
                if earlier.counter < op.counter {
                    let _ = fresh.apply(earlier.clone());
                }
            }
            let _ = fresh.apply(op);
            exercise(fresh);
        }
        if let Ok(state) = State::decode(&bytes) {
            exercise(state);
        }
    }
}

#[test]
fn a_counter_at_the_very_top_is_refused_calmly() {
    let (_, ops) = sample();
    let mut op = ops[0].clone();
    op.counter = u64::MAX;
    let mut state = State::new();
    assert!(state.apply(op).is_err());
}
