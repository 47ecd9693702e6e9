//! Property tests: every format round-trips, and no mutation of a sealed object opens.

use ferry_protocol::generation::{Next, Previous, Rotation};
use ferry_protocol::objects::{Payload, Plain, Signed};
use ferry_protocol::{
    BlobChunk, BlobId, Cursor, DeviceId, DeviceTag, Head, Header, Identity, Keys, Kind, ObjectName,
    RawOp, RelayHint, RepoHeader, Segment, Snapshot, SyncKey, TopicId,
};
use proptest::prelude::*;

fn keys() -> Keys {
    SyncKey::from_bytes([0x42; 32]).keys()
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    any::<[u8; 16]>().prop_map(DeviceId)
}

fn device_tag() -> impl Strategy<Value = DeviceTag> {
    any::<[u8; 16]>().prop_map(DeviceTag)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn object_name() -> impl Strategy<Value = ObjectName> {
    prop_oneof![
        Just(ObjectName::Repo),
        (device_tag(), any::<u64>()).prop_map(|(device, seq)| ObjectName::Log { device, seq }),
        (device_tag(), any::<u64>()).prop_map(|(device, seq)| ObjectName::Head { device, seq }),
        (device_tag(), any::<u64>()).prop_map(|(device, seq)| ObjectName::Snap { device, seq }),
        (any::<[u8; 32]>(), any::<u32>()).prop_map(|(b, chunk)| ObjectName::Blob {
            blob: BlobId(b),
            chunk
        }),
    ]
}

fn segment() -> impl Strategy<Value = Segment> {
    (
        device_id(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(bytes(64).prop_map(RawOp), 0..20),
    )
        .prop_map(|(device, seq, first_op, ops)| Segment {
            device,
            seq,
            first_op,
            ops,
        })
}

fn head() -> impl Strategy<Value = Head> {
    (
        device_id(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<Option<u64>>(),
    )
        .prop_map(|(device, seq, ops, first_seq, snapshot)| Head {
            device,
            seq,
            ops,
            first_seq,
            snapshot,
        })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        device_id(),
        any::<u64>(),
        prop::collection::vec(
            (device_id(), any::<u64>(), any::<u64>()).prop_map(|(device, seq, ops)| Cursor {
                device,
                seq,
                ops,
            }),
            0..6,
        ),
        bytes(2000),
    )
        .prop_map(|(device, seq, version_vector, state)| Snapshot {
            device,
            seq,
            version_vector,
            state,
        })
}

fn blob_chunk() -> impl Strategy<Value = BlobChunk> {
    (
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        bytes(3000),
    )
        .prop_map(|(b, index, count, total_len, data)| BlobChunk {
            blob: BlobId(b),
            index,
            count,
            total_len,
            data,
        })
}

fn round_trip<T: Plain + PartialEq + std::fmt::Debug>(name: ObjectName, value: T) {
    let keys = keys();
    let sealed = keys.data.seal_object(&name, &value).unwrap();
    assert_eq!(
        keys.data
            .open_object::<T>(&name, sealed.as_bytes())
            .unwrap(),
        value
    );
    assert_eq!(T::decode(&value.encode()).unwrap(), value);
}

fn identity() -> Identity {
    Identity::from_secret_bytes(&[3; Identity::SECRET_LEN])
}

fn signed_round_trip<T: Signed + PartialEq + std::fmt::Debug>(name: ObjectName, value: T) {
    let keys = keys();
    let identity = identity();
    let sealed = keys.data.seal_signed(&name, &value, &identity).unwrap();
    let opened = keys
        .data
        .open_signed::<T>(&name, sealed.as_bytes())
        .unwrap();
    opened.verify(&identity.public()).unwrap();
    assert_eq!(opened.value, value);
    assert_eq!(T::decode(&value.encode()).unwrap(), value);
}

/// Opening a mutated object must fail: it may never succeed with other plaintext.
fn assert_rejected(keys: &Keys, kind: Kind, name: &str, bytes: &[u8]) {
    let result = keys.data.open(kind, name, bytes);
    assert!(result.is_err(), "a mutated object opened: {result:?}");
}

proptest! {
    #[test]
    fn segments_round_trip(seg in segment(), tag in device_tag()) {
        signed_round_trip(ObjectName::Log { device: tag, seq: seg.seq }, seg);
    }

    #[test]
    fn heads_round_trip(h in head(), tag in device_tag()) {
        signed_round_trip(ObjectName::Head { device: tag, seq: h.seq }, h);
    }

    #[test]
    fn snapshots_round_trip(s in snapshot(), tag in device_tag()) {
        signed_round_trip(ObjectName::Snap { device: tag, seq: s.seq }, s);
    }

    #[test]
    fn blob_chunks_round_trip(c in blob_chunk()) {
        round_trip(ObjectName::Blob { blob: c.blob, chunk: c.index }, c);
    }

    #[test]
    fn hints_round_trip(tag in device_tag(), seq in any::<u64>(), topic in any::<[u8; 32]>()) {
        let keys = keys();
        let topic = TopicId(topic);
        let hint = RelayHint { device: tag, seq };
        let sealed = keys.relay.seal_hint(&topic, &hint, &identity()).unwrap();
        prop_assert!(sealed.as_bytes().len() <= 512);
        let opened = keys.relay.open_hint(&topic, sealed.as_bytes()).unwrap();
        prop_assert!(opened.verify(&identity().public()).is_ok());
        prop_assert_eq!(opened.value, hint);
    }

    #[test]
    fn repo_headers_round_trip(seed in any::<[u8; 32]>()) {
        let keys = SyncKey::from_bytes(seed).keys();
        let header = RepoHeader::create(&keys, None).unwrap();
        let read = RepoHeader::from_bytes(&header.to_bytes()).unwrap();
        read.verify(&keys).unwrap();
        prop_assert_eq!(read, header);
    }

    #[test]
    fn recovery_codes_round_trip(seed in any::<[u8; 32]>()) {
        let key = SyncKey::from_bytes(seed);
        let code = key.recovery_code();
        let back = SyncKey::from_recovery_code(code.expose()).unwrap();
        prop_assert_eq!(back.expose_bytes(), key.expose_bytes());
    }

    #[test]
    fn names_round_trip(name in object_name()) {
        prop_assert_eq!(name.to_string().parse::<ObjectName>().unwrap(), name);
    }

    #[test]
    fn envelopes_round_trip_with_padding(plaintext in bytes(70_000), name in "[a-z/0-9]{0,40}") {
        let keys = keys();
        let sealed = keys.data.seal(Kind::Segment, &name, &plaintext).unwrap();
        prop_assert!(sealed.as_bytes().len() >= plaintext.len() + 1 + 37 + 16);
        prop_assert_eq!((sealed.as_bytes().len() - 37 - 16) % 256, 0);
        let opened = keys.data.open(Kind::Segment, &name, sealed.as_bytes()).unwrap();
        prop_assert_eq!(opened.as_bytes(), &plaintext[..]);
    }

    #[test]
    fn bit_flips_never_open(plaintext in bytes(600), position in any::<prop::sample::Index>(), bit in 0u8..8) {
        let keys = keys();
        let mut sealed = keys.data.seal(Kind::Head, "head/x", &plaintext).unwrap().into_bytes();
        let i = position.index(sealed.len());
        sealed[i] ^= 1 << bit;
        assert_rejected(&keys, Kind::Head, "head/x", &sealed);
    }

    #[test]
    fn truncations_never_open(plaintext in bytes(600), cut in any::<prop::sample::Index>()) {
        let keys = keys();
        let sealed = keys.data.seal(Kind::Head, "head/x", &plaintext).unwrap().into_bytes();
        let len = cut.index(sealed.len());
        assert_rejected(&keys, Kind::Head, "head/x", &sealed[..len]);
    }

    #[test]
    fn extensions_never_open(plaintext in bytes(600), extra in prop::collection::vec(any::<u8>(), 1..600)) {
        let keys = keys();
        let mut sealed = keys.data.seal(Kind::Head, "head/x", &plaintext).unwrap().into_bytes();
        sealed.extend_from_slice(&extra);
        assert_rejected(&keys, Kind::Head, "head/x", &sealed);
    }

    #[test]
    fn swapped_names_never_open(plaintext in bytes(600), a in object_name(), b in object_name()) {
        prop_assume!(a != b);
        let keys = keys();
        let sealed = keys.data.seal(Kind::Segment, &a.to_string(), &plaintext).unwrap();
        assert_rejected(&keys, Kind::Segment, &b.to_string(), sealed.as_bytes());
    }

    #[test]
    fn decoders_never_panic(input in bytes(1200), text in ".{0,100}") {
        let keys = keys();
        let _ = Header::parse(&input);
        let _ = keys.data.open(Kind::Segment, "log/x", &input);
        let _ = Segment::decode(&input);
        let _ = Head::decode(&input);
        let _ = Snapshot::decode(&input);
        let _ = BlobChunk::decode(&input);
        let _ = RelayHint::decode(&input);
        let _ = RepoHeader::from_bytes(&input);
        let _ = Rotation::decode(&input);
        let _ = Previous::decode(&input);
        if let Ok(next) = Next::from_bytes(DeviceTag([1; 16]), &input) {
            let _ = next.open(&keys);
        }
        let _ = keys.relay.open_hint(&TopicId([0; 32]), &input);
        let _ = SyncKey::from_recovery_code(&text);
        let _ = text.parse::<ObjectName>();
        let _ = text.parse::<TopicId>();
    }

    #[test]
    fn headers_behind_the_magic_never_panic(rest in bytes(600)) {
        let keys = keys();
        let mut input = b"FRY\x01".to_vec();
        input.extend_from_slice(&rest);
        let _ = keys.data.open(Kind::Segment, "log/x", &input);
        let _ = RepoHeader::from_bytes(&input);
        let mut record = b"FRY\x02\x09".to_vec();
        record.extend_from_slice(&rest);
        if let Ok(next) = Next::from_bytes(DeviceTag([1; 16]), &record) {
            let _ = next.open(&keys);
        }
    }
}

proptest! {
    #[test]
    fn pairing_frames_decode_or_fail_without_panicking(data in bytes(600)) {
        use ferry_protocol::pairing::Frame;
        if let Ok(frame) = Frame::decode(&data) {
            prop_assert_eq!(Frame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn pairing_codes_parse_or_fail_without_panicking(text in ".{0,80}") {
        use ferry_protocol::pairing::PairingCode;
        if let Ok((code, _)) = PairingCode::parse(&text) {
            prop_assert_eq!(PairingCode::parse(&code.to_string()).unwrap().0, code);
        }
    }

    #[test]
    fn a_session_takes_any_frames_without_panicking(
        frames in proptest::collection::vec(bytes(520), 0..8),
        flips in proptest::collection::vec(any::<(usize, u8)>(), 0..4),
    ) {
        use ferry_protocol::pairing::{PairingCode, Role, Session};
        let code = PairingCode::from_parts(1, [2, 3]);
        let mut offer = Session::new(Role::Offer, &code).unwrap();
        let join = Session::new(Role::Join, &code).unwrap();
        // Real frames first, some with bits flipped, then the arbitrary ones.
        let mut inbox: Vec<Vec<u8>> = join.frames().to_vec();
        for (at, bit) in flips {
            if let Some(frame) = inbox.first_mut() {
                let at = at % frame.len();
                frame[at] ^= 1 << (bit % 8);
            }
        }
        inbox.extend(frames);
        for frame in inbox {
            if offer.receive(&frame).is_err() {
                break;
            }
        }
    }
}
