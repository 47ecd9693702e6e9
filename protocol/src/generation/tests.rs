use super::*;
use crate::SyncKey;

fn identity(seed: u8) -> Identity {
    Identity::from_secret_bytes(&[seed; Identity::SECRET_LEN])
}

struct World {
    old: SyncKey,
    new: SyncKey,
    creator: Identity,
    other: Identity,
    a: DeviceId,
    b: DeviceId,
    removed: DeviceId,
}

fn world() -> World {
    World {
        old: SyncKey::from_bytes([1; 32]),
        new: SyncKey::from_bytes([2; 32]),
        creator: identity(0x10),
        other: identity(0x20),
        a: DeviceId([0xaa; 16]),
        b: DeviceId([0xbb; 16]),
        removed: DeviceId([0xcc; 16]),
    }
}

fn plan(w: &World, storage: Option<Storage>) -> Plan<'_> {
    Plan {
        successor: Successor {
            generation: 2,
            key_id: w.new.key_id(),
            moved: storage.is_some(),
        },
        key: &w.new,
        storage,
        creator: w.a,
        time_ms: 1_765_000_000_000,
        revoked: vec![w.removed],
        recipients: vec![(w.b, w.other.public()), (w.a, w.creator.public())],
    }
}

fn tag(w: &World) -> DeviceTag {
    w.old.keys().names.device_tag(&w.a)
}

fn record(w: &World) -> Next {
    Next::create(&w.old.keys(), &w.creator, &plan(w, None)).unwrap()
}

#[test]
fn roots_name_each_generation_by_number_and_key() {
    let id = KeyId([0x0f; 8]);
    assert_eq!(root(1, id), "ferry/v1/");
    assert_eq!(root(2, id), "ferry/g2-0f0f0f0f0f0f0f0f/");
    assert_eq!(root(17, id), "ferry/g17-0f0f0f0f0f0f0f0f/");
}

#[test]
fn each_remaining_device_opens_its_own_wrap_and_the_removed_one_has_none() {
    let w = world();
    let stored = Next::from_bytes(tag(&w), &record(&w).to_bytes()).unwrap();
    assert_eq!(stored.successor.generation, 2);
    assert_eq!(stored.successor.key_id, w.new.key_id());
    assert!(!stored.successor.moved);
    let claimed = stored.open(&w.old.keys()).unwrap();
    claimed.verify(&w.creator.public()).unwrap();
    assert_eq!(
        claimed.verify(&w.other.public()).unwrap_err(),
        Error::BadSignature
    );
    let rotation = &claimed.value;
    assert_eq!(rotation.creator, w.a);
    assert!(rotation.revokes(&w.removed));
    assert!(!rotation.revokes(&w.b));
    assert!(rotation.wrap_for(&w.removed).is_none());
    for (device, identity) in [(w.a, &w.creator), (w.b, &w.other)] {
        let handover = rotation
            .wrap_for(&device)
            .unwrap()
            .open(identity, w.old.key_id(), &stored.successor, w.a)
            .unwrap();
        assert_eq!(handover.key.expose_bytes(), w.new.expose_bytes());
        assert!(handover.storage.is_none());
    }
}

#[test]
fn a_wrap_opens_only_for_its_device_generation_and_repository() {
    let w = world();
    let stored = record(&w);
    let rotation = stored.open(&w.old.keys()).unwrap().value;
    let wrap = rotation.wrap_for(&w.b).unwrap();
    let old = w.old.key_id();
    // Another device's secret.
    assert_eq!(
        wrap.open(&w.creator, old, &stored.successor, w.a)
            .unwrap_err(),
        Error::WrapDoesNotOpen
    );
    // Moved to another device's place.
    let mut moved = wrap.clone();
    moved.device = w.a;
    assert_eq!(
        moved
            .open(&w.other, old, &stored.successor, w.a)
            .unwrap_err(),
        Error::WrapDoesNotOpen
    );
    // Another generation or repository.
    let mut later = stored.successor;
    later.generation = 3;
    assert_eq!(
        wrap.open(&w.other, old, &later, w.a).unwrap_err(),
        Error::WrapDoesNotOpen
    );
    assert_eq!(
        wrap.open(&w.other, KeyId([9; 8]), &stored.successor, w.a)
            .unwrap_err(),
        Error::WrapDoesNotOpen
    );
}

#[test]
fn storage_travels_sealed_and_is_never_shown() {
    let w = world();
    let storage = Storage {
        url: "s3://bucket/prefix?endpoint=http://127.0.0.1:9000".into(),
        credentials: Credentials::S3 {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "very-secret-key".into(),
        },
    };
    let stored = Next::create(&w.old.keys(), &w.creator, &plan(&w, Some(storage.clone()))).unwrap();
    assert!(stored.successor.moved);
    let bytes = stored.to_bytes();
    assert!(!bytes.windows(15).any(|part| part == b"very-secret-key"));
    let rotation = stored.open(&w.old.keys()).unwrap().value;
    let handover = rotation
        .wrap_for(&w.b)
        .unwrap()
        .open(&w.other, w.old.key_id(), &stored.successor, w.a)
        .unwrap();
    assert_eq!(handover.storage.as_ref(), Some(&storage));
    let shown = format!("{handover:?}");
    assert!(!shown.contains("very-secret-key"), "{shown}");
    assert!(
        !shown.contains(&hex::encode(w.new.expose_bytes())),
        "{shown}"
    );
}

#[test]
fn a_record_opens_only_with_the_old_key_and_its_own_public_part() {
    let w = world();
    let stored = record(&w);
    assert!(matches!(
        stored
            .open(&SyncKey::from_bytes([3; 32]).keys())
            .unwrap_err(),
        Error::WrongKey { .. }
    ));
    // Opened with the key it announces: it cannot be that key's successor.
    assert!(matches!(
        stored.open(&w.new.keys()).unwrap_err(),
        Error::Malformed { .. }
    ));
    // The public part swapped for another generation's: the record no longer opens.
    let mut bytes = stored.to_bytes();
    bytes[5] = 3;
    let swapped = Next::from_bytes(tag(&w), &bytes).unwrap();
    assert_eq!(
        swapped.open(&w.old.keys()).unwrap_err(),
        Error::AuthenticationFailed
    );
    bytes[5] = 1;
    assert!(matches!(
        Next::from_bytes(tag(&w), &bytes).unwrap_err(),
        Error::Malformed { .. }
    ));
}

#[test]
fn every_flipped_bit_and_every_cut_is_refused() {
    let w = world();
    let bytes = record(&w).to_bytes();
    let keys = w.old.keys();
    for at in (0..bytes.len()).step_by(7) {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        if let Ok(next) = Next::from_bytes(tag(&w), &flipped) {
            assert!(next.open(&keys).is_err(), "flip at {at} opened");
        }
    }
    for cut in (0..bytes.len()).step_by(13) {
        if let Ok(next) = Next::from_bytes(tag(&w), &bytes[..cut]) {
            assert!(next.open(&keys).is_err(), "cut at {cut} opened");
        }
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Next::from_bytes(tag(&w), &longer).is_err());
}

#[test]
fn a_wrap_handing_another_key_than_announced_is_refused() {
    let w = world();
    let successor = Successor {
        generation: 2,
        key_id: w.new.key_id(),
        moved: false,
    };
    let wire = HandoverWire {
        key: [7; 32],
        storage: None,
    };
    let public = <WrapKem as hpke::Kem>::PublicKey::from_bytes(&w.other.public().seal).unwrap();
    let (enc, sealed) = hpke::single_shot_seal::<WrapAead, WrapKdf, WrapKem>(
        &OpModeS::Base,
        &public,
        &wrap_info(w.old.key_id(), &successor, &w.b, &w.a),
        &postcard::to_allocvec(&wire).unwrap(),
        &[],
    )
    .unwrap();
    let wrap = Wrap {
        device: w.b,
        enc: enc.to_bytes().into(),
        sealed,
    };
    assert_eq!(
        wrap.open(&w.other, w.old.key_id(), &successor, w.a)
            .unwrap_err(),
        Error::HandedWrongKey {
            handed: SyncKey::from_bytes([7; 32]).key_id(),
            announced: w.new.key_id(),
        }
    );
}

#[test]
fn plans_that_break_the_rules_are_not_sealed() {
    let w = world();
    let keys = w.old.keys();
    let mut creator_removed = plan(&w, None);
    creator_removed.revoked.push(w.a);
    assert!(Next::create(&keys, &w.creator, &creator_removed).is_err());
    let mut removed_kept = plan(&w, None);
    removed_kept
        .recipients
        .push((w.removed, identity(0x30).public()));
    assert!(Next::create(&keys, &w.creator, &removed_kept).is_err());
    let mut creator_left_out = plan(&w, None);
    creator_left_out
        .recipients
        .retain(|(device, _)| *device != w.a);
    assert!(Next::create(&keys, &w.creator, &creator_left_out).is_err());
    let mut twice = plan(&w, None);
    twice.recipients.push((w.b, w.other.public()));
    assert!(Next::create(&keys, &w.creator, &twice).is_err());
    let mut wrong_key = plan(&w, None);
    wrong_key.successor.key_id = w.old.key_id();
    assert!(Next::create(&keys, &w.creator, &wrong_key).is_err());
    let mut first = plan(&w, None);
    first.successor.generation = 1;
    assert!(Next::create(&keys, &w.creator, &first).is_err());
}

#[test]
fn a_record_whose_lists_are_out_of_order_is_malformed() {
    let w = world();
    let mut rotation = record(&w).open(&w.old.keys()).unwrap().value;
    rotation.wraps.reverse();
    assert!(matches!(
        Rotation::decode(&rotation.encode()).unwrap_err(),
        Error::Malformed { .. }
    ));
}

#[test]
fn the_previous_key_is_sealed_under_the_new_one_and_signed() {
    let w = world();
    let previous = Previous {
        writer: w.a,
        generation: 1,
        key: *w.old.expose_bytes(),
    };
    let keys = w.new.keys();
    let sealed = keys
        .data
        .seal_signed(&ObjectName::Prev, &previous, &w.creator)
        .unwrap();
    let opened = keys
        .data
        .open_signed::<Previous>(&ObjectName::Prev, sealed.as_bytes())
        .unwrap();
    opened.verify(&w.creator.public()).unwrap();
    assert_eq!(opened.value.sync_key().key_id(), w.old.key_id());
    assert!(!format!("{:?}", opened.value).contains(&hex::encode(w.old.expose_bytes())));
    assert!(
        w.old
            .keys()
            .data
            .open_signed::<Previous>(&ObjectName::Prev, sealed.as_bytes())
            .is_err()
    );
}

#[test]
fn a_generation_needs_a_new_key_and_a_move_needs_a_place() {
    let w = world();
    let keys = w.old.keys();
    let mut same_key = plan(&w, None);
    same_key.key = &w.old;
    same_key.successor.key_id = w.old.key_id();
    assert!(Next::create(&keys, &w.creator, &same_key).is_err());
    let mut nowhere = plan(&w, None);
    nowhere.successor.moved = true;
    assert!(Next::create(&keys, &w.creator, &nowhere).is_err());
}

#[test]
fn storage_shows_its_scheme_only() {
    let storage = Storage {
        url: "webdav://alice@dav.example/ferry".into(),
        credentials: Credentials::WebDav {
            password: "hunter2".into(),
        },
    };
    let shown = format!("{storage:?}");
    assert!(
        !shown.contains("alice") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(shown.contains("webdav://"), "{shown}");
}

#[test]
fn a_candidate_opens_only_under_its_creators_name_and_a_wrap_only_from_its_creator() {
    let w = world();
    let stored = record(&w);
    assert_eq!(stored.name().to_string(), format!("head/next/{}", tag(&w)));
    let elsewhere =
        Next::from_bytes(w.old.keys().names.device_tag(&w.b), &stored.to_bytes()).unwrap();
    assert_eq!(
        elsewhere.open(&w.old.keys()).unwrap_err(),
        Error::AuthenticationFailed
    );
    let rotation = stored.open(&w.old.keys()).unwrap().value;
    let wrap = rotation.wrap_for(&w.b).unwrap();
    assert_eq!(
        wrap.open(&w.other, w.old.key_id(), &stored.successor, w.b)
            .unwrap_err(),
        Error::WrapDoesNotOpen
    );
}

#[test]
fn a_later_generations_folder_is_read_back_from_its_objects_names() {
    let key_id = SyncKey::from_bytes([2; 32]).key_id();
    let folder = root(12, key_id);
    let name = format!("{folder}seg/abc/1");
    assert_eq!(later_root(&name), Some((12, key_id, folder.as_str())));
    assert_eq!(later_root(&folder), Some((12, key_id, folder.as_str())));
    for junk in [
        "ferry/v1/repo".to_owned(),
        format!("ferry/g1-{key_id}/repo"),
        format!("ferry/g012-{key_id}/repo"),
        format!("ferry/g+12-{key_id}/repo"),
        format!("ferry/g12-{key_id}"),
        "ferry/g12-zz/repo".to_owned(),
        "ferry/g".to_owned(),
        "ferry/g99999999999-0000000000000000/repo".to_owned(),
    ] {
        assert_eq!(later_root(&junk), None, "{junk}");
    }
}
