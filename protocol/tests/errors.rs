//! Every way bytes can be wrong gets its own error, with a message that names cause and fix.

use ferry_protocol::envelope::{HEADER_LEN, TAG_LEN};
use ferry_protocol::{
    DeviceId, Error, Head, Identity, KdfParams, Keys, Kind, ObjectName, RawOp, RelayHint,
    RepoHeader, Segment, SyncKey, TopicId,
};

fn identity() -> Identity {
    Identity::from_secret_bytes(&[7; Identity::SECRET_LEN])
}

fn keys(seed: u8) -> Keys {
    SyncKey::from_bytes([seed; 32]).keys()
}

fn segment() -> Segment {
    Segment {
        device: DeviceId([1; 16]),
        seq: 3,
        first_op: 10,
        ops: vec![RawOp(b"clip".to_vec())],
    }
}

fn log_name(keys: &Keys, seq: u64) -> ObjectName {
    ObjectName::Log {
        device: keys.names.device_tag(&DeviceId([1; 16])),
        seq,
    }
}

fn sealed_segment(keys: &Keys) -> (ObjectName, Vec<u8>) {
    let name = log_name(keys, 3);
    let sealed = keys
        .data
        .seal_signed(&name, &segment(), &identity())
        .unwrap();
    (name, sealed.into_bytes())
}

#[test]
fn truncated_objects() {
    let k = keys(1);
    let (name, bytes) = sealed_segment(&k);
    for len in [
        3,
        4,
        5,
        20,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + TAG_LEN + 10,
    ] {
        let err = k
            .data
            .open_signed::<Segment>(&name, &bytes[..len])
            .unwrap_err();
        assert!(
            matches!(err, Error::Truncated { got, .. } if got == len),
            "{len}: {err:?}"
        );
        assert!(err.to_string().contains("truncated"));
    }
    // Cut inside a longer padded body: the length is not one that padding produces.
    let long = Segment {
        ops: vec![RawOp(vec![7; 700])],
        ..segment()
    };
    let bytes = k
        .data
        .seal_signed(&name, &long, &identity())
        .unwrap()
        .into_bytes();
    let err = k
        .data
        .open_signed::<Segment>(&name, &bytes[..bytes.len() - 1])
        .unwrap_err();
    assert_eq!(
        err,
        Error::BadLength {
            len: bytes.len() - 1
        }
    );
    assert!(err.to_string().contains("cut short or extended"));
}

#[test]
fn extended_objects() {
    let k = keys(1);
    let (name, mut bytes) = sealed_segment(&k);
    bytes.push(0);
    assert!(matches!(
        k.data.open_signed::<Segment>(&name, &bytes),
        Err(Error::BadLength { .. })
    ));
    // Extended by a whole padding step: the length is plausible, the tag is not.
    bytes.extend_from_slice(&[0; 255]);
    assert_eq!(
        k.data.open_signed::<Segment>(&name, &bytes).unwrap_err(),
        Error::AuthenticationFailed
    );
}

#[test]
fn foreign_bytes_are_not_ferry_objects() {
    let k = keys(1);
    let name = log_name(&k, 1);
    for junk in [
        &b""[..],
        b"F",
        b"FR",
        b"hello world",
        b"{\"json\": true}",
        &[0u8; 400],
    ] {
        let err = k.data.open_signed::<Segment>(&name, junk).unwrap_err();
        if junk.is_empty() || junk.starts_with(b"F") {
            assert!(matches!(err, Error::Truncated { .. }), "{junk:?}: {err:?}");
        } else {
            assert_eq!(err, Error::BadMagic, "{junk:?}");
            assert!(err.to_string().contains("not a Ferry object"));
        }
    }
}

#[test]
fn future_and_unknown_versions() {
    let k = keys(1);
    let (name, mut bytes) = sealed_segment(&k);
    bytes[3] = 3;
    let err = k.data.open_signed::<Segment>(&name, &bytes).unwrap_err();
    assert_eq!(
        err,
        Error::UnsupportedVersion {
            found: 3,
            supported: 2
        }
    );
    assert!(err.to_string().contains("upgrade Ferry"), "{err}");
    // Storage cannot pass a signed object off as an unsigned one of version 1: the version
    // byte is authenticated.
    bytes[3] = 1;
    let err = k.data.open_signed::<Segment>(&name, &bytes).unwrap_err();
    assert_eq!(err, Error::AuthenticationFailed);
    bytes[3] = 0;
    let err = k.data.open_signed::<Segment>(&name, &bytes).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn unknown_and_wrong_kinds() {
    let k = keys(1);
    let (name, mut bytes) = sealed_segment(&k);
    bytes[4] = 99;
    let err = k.data.open_signed::<Segment>(&name, &bytes).unwrap_err();
    assert_eq!(err, Error::UnknownKind(99));
    assert!(err.to_string().contains("newer Ferry"));

    let head_name = ObjectName::Head {
        device: k.names.device_tag(&DeviceId([1; 16])),
        seq: 3,
    };
    let head = Head {
        device: DeviceId([1; 16]),
        seq: 3,
        ops: 10,
        first_seq: 1,
        snapshot: None,
    };
    let sealed = k.data.seal_signed(&head_name, &head, &identity()).unwrap();
    let err = k
        .data
        .open_signed::<Segment>(&name, sealed.as_bytes())
        .unwrap_err();
    assert_eq!(
        err,
        Error::WrongKind {
            expected: Kind::Segment,
            found: Kind::Head
        }
    );
    assert!(
        err.to_string()
            .contains("expected a segment but found a head")
    );
    // A payload type that does not belong under the name is refused before sealing.
    assert!(matches!(
        k.data.seal_signed(&name, &head, &identity()),
        Err(Error::WrongKind { .. })
    ));
}

#[test]
fn wrong_key_names_both_keys_and_the_fix() {
    let writer = keys(1);
    let reader = keys(2);
    let (name, bytes) = sealed_segment(&writer);
    let err = reader
        .data
        .open_signed::<Segment>(&name, &bytes)
        .unwrap_err();
    assert_eq!(
        err,
        Error::WrongKey {
            object: writer.id,
            device: reader.id
        }
    );
    let message = err.to_string();
    assert!(message.contains(&writer.id.to_string()), "{message}");
    assert!(message.contains(&reader.id.to_string()), "{message}");
    assert!(message.contains("recovery code"), "{message}");
}

#[test]
fn a_foreign_key_behind_a_forged_key_id_fails_authentication() {
    let writer = keys(1);
    let reader = keys(2);
    let (name, mut bytes) = sealed_segment(&writer);
    bytes[5..13].copy_from_slice(&reader.id.0);
    assert_eq!(
        reader
            .data
            .open_signed::<Segment>(&name, &bytes)
            .unwrap_err(),
        Error::AuthenticationFailed
    );
}

#[test]
fn tampered_and_moved_objects_fail_authentication() {
    let k = keys(1);
    let (name, bytes) = sealed_segment(&k);
    for position in [13, 30, HEADER_LEN, HEADER_LEN + 100, bytes.len() - 1] {
        let mut tampered = bytes.clone();
        tampered[position] ^= 0x01;
        let err = k.data.open_signed::<Segment>(&name, &tampered).unwrap_err();
        assert_eq!(err, Error::AuthenticationFailed, "byte {position}");
        assert!(err.to_string().contains("tampered"));
    }
    // The same bytes under another name (a replayed or swapped object) do not open.
    let other = log_name(&k, 4);
    assert_eq!(
        k.data.open_signed::<Segment>(&other, &bytes).unwrap_err(),
        Error::AuthenticationFailed
    );
}

#[test]
fn oversized_input_is_refused_unread() {
    let k = keys(1);
    let name = log_name(&k, 1);
    let mut huge = k
        .data
        .seal_signed(&name, &segment(), &identity())
        .unwrap()
        .into_bytes();
    huge.resize(Kind::Segment.max_sealed() + 1, 0);
    let err = k.data.open_signed::<Segment>(&name, &huge).unwrap_err();
    assert!(matches!(
        err,
        Error::Oversized {
            what: "segment",
            ..
        }
    ));

    let too_many_ops = Segment {
        ops: vec![RawOp(vec![0; 1 << 20]); 17],
        ..segment()
    };
    assert!(matches!(
        k.data.seal_signed(&name, &too_many_ops, &identity()),
        Err(Error::Oversized { .. })
    ));
}

#[test]
fn authenticated_garbage_is_malformed() {
    let k = keys(1);
    let name = log_name(&k, 1);
    let sealed = k
        .data
        .seal(Kind::Segment, &name.to_string(), &[0xff; 40])
        .unwrap();
    let err = k
        .data
        .open_signed::<Segment>(&name, sealed.as_bytes())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Malformed {
                what: "segment",
                ..
            }
        ),
        "{err:?}"
    );

    let mut encoded = ferry_protocol::Payload::encode(&segment());
    encoded.push(0);
    encoded.extend_from_slice(&[0; 64]);
    let sealed = k
        .data
        .seal(Kind::Segment, &name.to_string(), &encoded)
        .unwrap();
    let err = k
        .data
        .open_signed::<Segment>(&name, sealed.as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("trailing"), "{err}");
}

#[test]
fn repository_header_checks() {
    let k = keys(1);
    let header = RepoHeader::create(&k, None).unwrap();
    let bytes = header.to_bytes();
    let read = RepoHeader::from_bytes(&bytes).unwrap();
    assert_eq!(read, header);
    read.verify(&k).unwrap();

    // Another key: the clear wrong-key error.
    let other = keys(2);
    assert!(matches!(read.verify(&other), Err(Error::WrongKey { .. })));

    // Truncated, future version, foreign kind, garbage body.
    assert!(matches!(
        RepoHeader::from_bytes(&bytes[..4]),
        Err(Error::Truncated { .. })
    ));
    let mut future = bytes.clone();
    future[3] = 9;
    assert!(matches!(
        RepoHeader::from_bytes(&future),
        Err(Error::UnsupportedVersion { found: 9, .. })
    ));
    let mut wrong_kind = bytes.clone();
    wrong_kind[4] = Kind::Segment as u8;
    assert!(matches!(
        RepoHeader::from_bytes(&wrong_kind),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        RepoHeader::from_bytes(&bytes[..bytes.len() - 3]),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn a_tampered_public_header_is_detected() {
    let k = keys(1);
    let params = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
        salt: [5; 16],
    };
    let header = RepoHeader::create(&k, Some(params)).unwrap();
    let mut tampered = header.clone();
    tampered.kdf = Some(KdfParams {
        salt: [6; 16],
        ..params
    });
    let reread = RepoHeader::from_bytes(&tampered.to_bytes()).unwrap();
    assert_eq!(reread.verify(&k).unwrap_err(), Error::AuthenticationFailed);

    let mut hostile = header;
    hostile.kdf = Some(KdfParams {
        memory_kib: u32::MAX,
        ..params
    });
    assert!(matches!(
        RepoHeader::from_bytes(&hostile.to_bytes()),
        Err(Error::BadKdfParams(_))
    ));
}

#[test]
fn hints_are_bound_to_their_topic_and_size() {
    let k = keys(1);
    let writer = Identity::generate().unwrap();
    let topic = k.relay.window_topic(20_000);
    let hint = RelayHint {
        device: k.names.device_tag(&DeviceId([1; 16])),
        seq: 9,
    };
    let sealed = k.relay.seal_hint(&topic, &hint, &writer).unwrap();
    assert_eq!(sealed.as_bytes().len(), 309);
    let opened = k.relay.open_hint(&topic, sealed.as_bytes()).unwrap();
    assert_eq!(opened.value, hint);
    opened.verify(&writer.public()).unwrap();

    // Replayed under another window's topic, it does not open.
    let tomorrow = k.relay.window_topic(20_001);
    assert_eq!(
        k.relay.open_hint(&tomorrow, sealed.as_bytes()).unwrap_err(),
        Error::AuthenticationFailed
    );
    let elsewhere = TopicId([0; 32]);
    assert_eq!(
        k.relay
            .open_hint(&elsewhere, sealed.as_bytes())
            .unwrap_err(),
        Error::AuthenticationFailed
    );
    let mut big = sealed.into_bytes();
    big.resize(600, 0);
    assert!(matches!(
        k.relay.open_hint(&topic, &big),
        Err(Error::Oversized { .. })
    ));
    // A hint sealed with another group's relay key.
    let other = keys(2);
    let foreign = other.relay.seal_hint(&topic, &hint, &writer).unwrap();
    assert!(matches!(
        k.relay.open_hint(&topic, foreign.as_bytes()),
        Err(Error::WrongKey { .. })
    ));
    // A data object presented as a hint.
    let (_, segment_bytes) = sealed_segment(&k);
    assert!(matches!(
        k.relay.open_hint(&topic, &segment_bytes),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        "xyz".parse::<TopicId>(),
        Err(Error::BadName { .. })
    ));
    assert_eq!(topic.to_string().parse::<TopicId>().unwrap(), topic);
}

#[test]
fn a_hint_speaks_only_for_the_device_that_signed_it() {
    let k = keys(1);
    let (laptop, holder) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let topic = k.relay.window_topic(20_000);
    let hint = RelayHint {
        device: k.names.device_tag(&DeviceId([1; 16])),
        seq: 999_999,
    };
    // Someone holding the key claims the laptop's segment 999999: it opens, but the
    // laptop's keys do not verify it.
    let forged = k.relay.seal_hint(&topic, &hint, &holder).unwrap();
    let opened = k.relay.open_hint(&topic, forged.as_bytes()).unwrap();
    assert_eq!(opened.verify(&laptop.public()), Err(Error::BadSignature));

    // Signed by the laptop, it holds for the laptop and for nobody else.
    let real = k.relay.seal_hint(&topic, &hint, &laptop).unwrap();
    let opened = k.relay.open_hint(&topic, real.as_bytes()).unwrap();
    opened.verify(&laptop.public()).unwrap();
    assert_eq!(opened.verify(&holder.public()), Err(Error::BadSignature));
}

#[test]
fn secrets_stay_out_of_debug_output_and_errors() {
    let key = SyncKey::from_bytes([0xab; 32]);
    let all = key.keys();
    let secret_hex = hex::encode([0xab; 32]);
    let shown = format!("{key:?} {all:?} {:?}", key.recovery_code());
    assert!(!shown.contains(&secret_hex), "{shown}");
    assert!(!shown.contains(key.recovery_code().expose()), "{shown}");
    assert!(!shown.contains("abababab"), "{shown}");
    assert!(shown.contains(&all.id.to_string()));

    let (name, bytes) = sealed_segment(&all);
    let err = keys(2)
        .data
        .open_signed::<Segment>(&name, &bytes)
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(&secret_hex));
}

#[test]
fn no_protocol_error_is_transient_but_the_rng() {
    assert!(!Error::AuthenticationFailed.is_transient());
    assert!(!Error::BadMagic.is_transient());
    assert!(Error::Random("x".into()).is_transient());
}

#[test]
fn a_signature_by_another_key_is_forged_and_a_missing_one_is_unsigned() {
    let k = keys(1);
    let (name, bytes) = sealed_segment(&k);
    let opened = k.data.open_signed::<Segment>(&name, &bytes).unwrap();
    opened.verify(&identity().public()).unwrap();
    let thief = Identity::from_secret_bytes(&[8; Identity::SECRET_LEN]);
    let err = opened.verify(&thief.public()).unwrap_err();
    assert_eq!(err, Error::BadSignature);
    assert!(err.to_string().contains("forged"), "{err}");

    // A key holder re-sealing the same payload with a made-up signature.
    let mut plaintext = ferry_protocol::Payload::encode(&segment());
    plaintext.extend_from_slice(&[0x5a; 64]);
    let resealed = k
        .data
        .seal(Kind::Segment, &name.to_string(), &plaintext)
        .unwrap();
    let opened = k
        .data
        .open_signed::<Segment>(&name, resealed.as_bytes())
        .unwrap();
    assert_eq!(
        opened.verify(&identity().public()),
        Err(Error::BadSignature)
    );

    // The signature covers the name: the writer's own signature under another seq fails.
    let other = log_name(&k, 9);
    let mut moved = ferry_protocol::Payload::encode(&segment());
    let signed = k
        .data
        .open(Kind::Segment, &name.to_string(), &bytes)
        .unwrap();
    moved.extend_from_slice(&signed.as_bytes()[moved.len()..]);
    let resealed = k
        .data
        .seal(Kind::Segment, &other.to_string(), &moved)
        .unwrap();
    let opened = k
        .data
        .open_signed::<Segment>(&other, resealed.as_bytes())
        .unwrap();
    assert_eq!(
        opened.verify(&identity().public()),
        Err(Error::BadSignature)
    );
    assert!(Error::NotSigned.to_string().contains("not signed"));
}
