//! Devices moving to a new generation of the repository (SPEC §11): the one that removes a
//! device and the others follow with everything they hold, the removed one is shut out, and a
//! device that was away follows each generation in order.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use ferry_core::{Action, Body, ClipContent, DataKind};
use ferry_protocol::{BlobId, DeviceId, ObjectName, SyncKey};
use ferry_store::Store;
use ferry_sync::{Destination, Engine, EngineConfig, Succession, SyncError};

use common::{identity_for, per_backend, storage};

/// The test repository's first key.
fn first_key() -> SyncKey {
    SyncKey::from_bytes([0x5A; 32])
}

/// Devices that fetch no blob until asked, so that a blob's way through the generations
/// shows.
fn lazy() -> EngineConfig {
    EngineConfig {
        eager_blob_bytes: 0,
        ..common::config()
    }
}

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29) ^ seed)
        .collect()
}

/// Copies an image and returns the blob id its clip names.
fn copy_image(device: &mut common::Device, bytes: Vec<u8>) -> BlobId {
    let content = ClipContent::image("image/png", Body::Inline(bytes));
    let op = device.engine.copy(content).unwrap().unwrap();
    match op.action {
        Action::Copy { content, .. } => match content.body() {
            Some(Body::Blob { id, .. }) => *id,
            other => panic!("the image should travel as a blob: {other:?}"),
        },
        other => panic!("a copy was expected: {other:?}"),
    }
}

/// The device's engine opened again from its database, with `key`.
async fn reopen(device: common::Device, store: Arc<dyn Store>, key: &SyncKey) -> common::Device {
    let common::Device { engine, home } = device;
    drop(engine);
    let database = home.path().join("ferry.db");
    let engine = Engine::open(
        store,
        key.keys(),
        identity_for(&database),
        &database,
        lazy(),
    )
    .await
    .unwrap();
    common::Device { engine, home }
}

/// Fetches, and when the listing shows a new generation that this device follows, moves to
/// it and syncs there (what it has not sent goes along, not through the old generation).
async fn poll(device: &mut common::Device, store: &Arc<dyn Store>) -> Option<SyncKey> {
    device.engine.fetch().await.unwrap();
    if !device.engine.successor_listed() {
        return None;
    }
    let next = device
        .engine
        .next_generation(&BTreeSet::new())
        .await
        .unwrap()?;
    device.engine.follow(&next, store.clone()).await.unwrap();
    device.engine.sync().await.unwrap();
    Some(next.handover.key)
}

/// Removes `revoke` from `device` with a new key, and moves `device` to the new generation.
async fn remove(
    device: &mut common::Device,
    store: &Arc<dyn Store>,
    old: &SyncKey,
    revoke: &[DeviceId],
) -> SyncKey {
    let new = SyncKey::generate().unwrap();
    let plan = device.engine.rotation_plan(revoke, &[]).unwrap();
    device
        .engine
        .rotate(old, &new, None, &plan, Destination::Here)
        .await
        .unwrap();
    let key = poll(device, store)
        .await
        .expect("the maker follows its own generation");
    assert_eq!(key.expose_bytes(), new.expose_bytes());
    new
}

/// How many segments `device` has in the first generation.
async fn desks_segments(store: &dyn Store, device: &common::Device) -> usize {
    let tag = first_key().keys().names.device_tag(&device.engine.device());
    let listed = store
        .list(&format!("ferry/v1/log/{tag}/"), None, 1000)
        .await
        .unwrap();
    listed.objects.len()
}

/// The laptop (the first device), the desk and the phone (both vouched for by the laptop),
/// synced, none fetching blobs until asked.
async fn three(store: &Arc<dyn Store>) -> [common::Device; 3] {
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(common::Device::open_with(store.clone(), lazy()).await);
    }
    devices[0].engine.founded().unwrap();
    common::sync_all(&mut devices).await;
    for other in 1..3 {
        let (id, keys) = (
            devices[other].engine.device(),
            devices[other].identity().public(),
        );
        devices[0].engine.vouch(id, keys).unwrap();
    }
    common::sync_all(&mut devices).await;
    devices.try_into().unwrap_or_else(|_| unreachable!())
}

per_backend! {
    #[tokio::test]
    async fn the_others_move_with_everything_and_the_removed_device_is_shut_out(backend) {
        let storage = storage(backend).await;
        let store = storage.store.clone();
        common::init(&*store).await;
        let [mut laptop, mut desk, mut phone] = three(&store).await;

        // Clips, a pin, a collection, an alias and a setting; an image from the laptop and
        // one from the phone that nobody fetched.
        let pinned = laptop.copy("pinned on the laptop");
        laptop.engine.record(DataKind::Clips, |r, _, now| {
            r.set_pinned(match pinned.action { Action::Copy { clip, .. } => clip, _ => unreachable!() }, true, now)
        }).unwrap();
        laptop.engine.record(DataKind::Collections, |r, _, now| r.create_collection("work".into(), now).1).unwrap();
        desk.engine.record(DataKind::Aliases, |r, _, now| r.set_alias("sig".into(), Some("Regards".into()), now)).unwrap();
        desk.engine.record(DataKind::Settings, |r, _, now| r.set_setting("theme".into(), Some("dark".into()), now)).unwrap();
        let laptops_image = image(300_000, 1);
        let laptops_blob = copy_image(&mut laptop, laptops_image.clone());
        let phones_image = image(200_000, 2);
        let phones_blob = copy_image(&mut phone, phones_image.clone());
        phone.copy("from the phone, before");
        for _ in 0..2 {
            for device in [&mut laptop, &mut desk, &mut phone] {
                device.engine.sync().await.unwrap();
            }
        }
        // The desk copies something it has not sent when the laptop removes the phone.
        desk.copy("unsent on the desk");
        let before = laptop.texts();

        let sent_before = desks_segments(&*store, &desk).await;
        let phone_id = phone.engine.device();
        let new = remove(&mut laptop, &store, &first_key(), &[phone_id]).await;
        assert_eq!(laptop.engine.generation(), 2);
        let key = poll(&mut desk, &store).await.expect("the desk follows");
        assert_eq!(key.expose_bytes(), new.expose_bytes());
        assert_eq!(desk.engine.generation(), 2);
        laptop.engine.sync().await.unwrap();
        desk.engine.sync().await.unwrap();

        let mut expected = before.clone();
        expected.push("unsent on the desk".to_owned());
        expected.sort();
        assert_eq!(laptop.texts(), expected);
        assert_eq!(desk.texts(), expected);
        assert!(laptop.engine.state().encode() == desk.engine.state().encode(), "histories differ");
        // What the desk had not sent went along in its first snapshot there.
        assert_eq!(desks_segments(&*store, &desk).await, sent_before);
        // The laptop's image was written again under the new key; the phone's is read from
        // the generation before, through the key `prev` holds.
        let root = ferry_protocol::generation::root(2, new.key_id());
        let resealed = store.list(&format!("{root}blob/{laptops_blob}/"), None, 10).await.unwrap();
        assert_eq!(resealed.objects.len(), 1);
        let not_moved = store.list(&format!("{root}blob/{phones_blob}/"), None, 10).await.unwrap();
        assert!(not_moved.objects.is_empty());
        assert_eq!(desk.engine.blob(laptops_blob).await.unwrap(), laptops_image);
        assert_eq!(desk.engine.blob(phones_blob).await.unwrap(), phones_image);

        // The phone is told, and writes nothing into the new generation.
        phone.copy("from the phone, after");
        phone.engine.sync().await.unwrap();
        assert!(phone.engine.successor_listed());
        let laptop_id = laptop.engine.device();
        let told = phone.engine.next_generation(&BTreeSet::new()).await.unwrap_err();
        assert!(matches!(told, SyncError::Removed { by, .. } if by == laptop_id), "{told}");
        assert!(told.to_string().contains("was removed from the repository on 20"), "{told}");
        let refused = phone.engine.upload().await.unwrap_err();
        assert!(matches!(refused, SyncError::Removed { .. }), "it writes nothing: {refused}");
        // Holding the old key and the storage, it plants objects in the new generation.
        let desk_tag = new.keys().names.device_tag(&desk.engine.device());
        // Its own segment of the old generation, signed and sealed under the old key, replayed
        // at a name of the desk's in the new one.
        let phone_tag = first_key().keys().names.device_tag(&phone_id);
        let old_log = format!("ferry/v1/{}", ObjectName::Log { device: phone_tag, seq: 1 });
        let forged = store.get(&old_log, ferry_store::ANY_SIZE).await.unwrap();
        for (name, bytes) in [
            (format!("{root}log/{desk_tag}/2"), forged.clone()),
            (format!("{root}head/{desk_tag}/2"), forged.clone()),
            (format!("{root}head/0123456789abcdef0123456789abcdef/1"), vec![1; 40]),
        ] {
            store.put(&name, bytes).await.unwrap();
        }
        laptop.engine.sync().await.unwrap();
        assert_eq!(laptop.texts(), expected, "nothing the phone planted is applied");

        // The devices carry on under the new key, also after opening again.
        let mut desk = reopen(desk, store.clone(), &new).await;
        assert_eq!(desk.engine.generation(), 2);
        assert_eq!(desk.texts(), expected);
        desk.copy("after the move");
        desk.engine.sync().await.unwrap();
        laptop.engine.sync().await.unwrap();
        assert!(laptop.texts().contains(&"after the move".to_owned()));
        // The phone stays out of the next rotation too.
        let plan = laptop.engine.rotation_plan(&[], &[]).unwrap();
        assert!(!plan.recipients.iter().any(|(device, _)| *device == phone_id));
        assert!(!plan.left_out.contains(&phone_id));
    }
}

per_backend! {
    #[tokio::test]
    async fn a_device_away_across_two_rotations_follows_each_in_order(backend) {
        let storage = storage(backend).await;
        let store = storage.store.clone();
        common::init(&*store).await;
        let [mut laptop, mut desk, mut phone] = three(&store).await;
        desk.copy("written on the desk while away");
        laptop.copy("before the first rotation");
        laptop.engine.sync().await.unwrap();

        // The laptop removes the phone, then rotates again (a leaked recovery code): the desk
        // is away for both.
        let phone_id = phone.engine.device();
        let second = remove(&mut laptop, &store, &first_key(), &[phone_id]).await;
        laptop.copy("in generation 2");
        laptop.engine.sync().await.unwrap();
        let third = remove(&mut laptop, &store, &second, &[]).await;
        assert_eq!(laptop.engine.generation(), 3);
        laptop.copy("in generation 3");
        laptop.engine.sync().await.unwrap();

        let key = poll(&mut desk, &store).await.expect("the desk follows to generation 2");
        assert_eq!(key.expose_bytes(), second.expose_bytes());
        let key = poll(&mut desk, &store).await.expect("then to generation 3");
        assert_eq!(key.expose_bytes(), third.expose_bytes());
        assert_eq!(desk.engine.generation(), 3);
        laptop.engine.sync().await.unwrap();
        for text in ["written on the desk while away", "in generation 2", "in generation 3"] {
            assert!(laptop.texts().contains(&text.to_owned()), "{text}");
            assert!(desk.texts().contains(&text.to_owned()), "{text}");
        }
        assert!(laptop.engine.state().encode() == desk.engine.state().encode());

        // A new device given the newest key finds its generation by itself.
        let home = tempfile::tempdir().unwrap();
        let database = home.path().join("ferry.db");
        let mut tablet = common::Device {
            engine: Engine::open(store.clone(), third.keys(), identity_for(&database), &database, lazy())
                .await
                .unwrap(),
            home,
        };
        assert_eq!(tablet.engine.generation(), 3);
        tablet.engine.sync().await.unwrap();
        assert_eq!(tablet.texts(), laptop.texts());
        // The phone, removed in generation 2, hears nothing of generation 3.
        phone.engine.sync().await.unwrap();
        assert!(matches!(
            phone.engine.succession(&BTreeSet::new()).await.unwrap(),
            Succession::Removed { .. }
        ));
    }
}

per_backend! {
    #[tokio::test]
    async fn a_device_stopped_before_its_first_upload_there_sends_it_when_opened_again(backend) {
        let storage = storage(backend).await;
        let store = storage.store.clone();
        common::init(&*store).await;
        let [mut laptop, mut desk, phone] = three(&store).await;
        let new = remove(&mut laptop, &store, &first_key(), &[phone.engine.device()]).await;
        desk.copy("unsent on the desk");
        desk.engine.fetch().await.unwrap();
        let next = desk.engine.next_generation(&BTreeSet::new()).await.unwrap().unwrap();
        // The storage holds something else at the name of the desk's first snapshot there.
        let desk_tag = new.keys().names.device_tag(&desk.engine.device());
        let root = ferry_protocol::generation::root(2, new.key_id());
        store.put(&format!("{root}snap/{desk_tag}/1"), vec![9; 100]).await.unwrap();
        desk.engine.follow(&next, store.clone()).await.unwrap();
        // Stopped before the next upload: opened again with the key it keeps now.
        let mut desk = reopen(desk, store.clone(), &new).await;
        assert_eq!(desk.engine.generation(), 2);
        desk.engine.sync().await.unwrap();
        laptop.engine.sync().await.unwrap();
        assert!(laptop.texts().contains(&"unsent on the desk".to_owned()));
        desk.copy("and after");
        desk.engine.sync().await.unwrap();
        laptop.engine.sync().await.unwrap();
        assert!(laptop.texts().contains(&"and after".to_owned()));
        assert!(laptop.engine.state().encode() == desk.engine.state().encode());
    }

    #[tokio::test]
    async fn a_device_given_a_newer_key_than_its_database_moves_through_each_generation(backend) {
        let storage = storage(backend).await;
        let store = storage.store.clone();
        common::init(&*store).await;
        let [mut laptop, mut desk, phone] = three(&store).await;
        desk.copy("unsent on the desk");
        let second = remove(&mut laptop, &store, &first_key(), &[phone.engine.device()]).await;
        laptop.copy("in generation 2");
        laptop.engine.sync().await.unwrap();
        let third = remove(&mut laptop, &store, &second, &[]).await;
        // The desk kept the newest key (it stopped before moving, or the person gave it).
        let mut desk = reopen(desk, store.clone(), &third).await;
        assert_eq!(desk.engine.generation(), 3);
        desk.engine.sync().await.unwrap();
        laptop.engine.sync().await.unwrap();
        for text in ["unsent on the desk", "in generation 2"] {
            assert!(laptop.texts().contains(&text.to_owned()), "{text}");
            assert!(desk.texts().contains(&text.to_owned()), "{text}");
        }
        // A key of no generation of this repository is still refused as a wrong key.
        let home = desk.home;
        let database = home.path().join("ferry.db");
        drop(desk.engine);
        let stranger = SyncKey::generate().unwrap();
        let opened = Engine::open(store.clone(), stranger.keys(), identity_for(&database), &database, lazy()).await;
        assert!(matches!(opened, Err(ferry_sync::SyncError::Protocol(ferry_protocol::Error::WrongKey { .. }))), "{:?}", opened.err());
    }
}

per_backend! {
    #[tokio::test]
    async fn only_a_generations_maker_says_whom_it_removed(backend) {
        let storage = storage(backend).await;
        let store = storage.store.clone();
        common::init(&*store).await;
        let [mut laptop, mut desk, mut phone] = three(&store).await;
        let (desk_id, phone_id) = (desk.engine.device(), phone.engine.device());
        // The phone, in a thief's hands, marks the desk removed before the person removes it.
        phone
            .engine
            .record(DataKind::Settings, |r, _, now| r.mark_removed(desk_id, 2, now))
            .unwrap();
        phone.engine.sync().await.unwrap();
        laptop.engine.sync().await.unwrap();
        let new = remove(&mut laptop, &store, &first_key(), &[phone_id]).await;
        poll(&mut desk, &store).await.expect("the desk follows");
        assert_eq!(laptop.engine.removed(), BTreeSet::from([phone_id]));
        assert_eq!(desk.engine.removed(), BTreeSet::from([phone_id]));
        // A device that joins on the new generation learns who made it, from its `prev`.
        let home = tempfile::tempdir().unwrap();
        let database = home.path().join("ferry.db");
        let mut tablet = common::Device {
            engine: Engine::open(store.clone(), new.keys(), identity_for(&database), &database, lazy())
                .await
                .unwrap(),
            home,
        };
        tablet.engine.sync().await.unwrap();
        assert_eq!(tablet.engine.removed(), BTreeSet::from([phone_id]));
        let plan = laptop.engine.rotation_plan(&[], &[]).unwrap();
        assert!(plan.recipients.iter().any(|(device, _)| *device == desk_id));
    }

    #[tokio::test]
    async fn a_device_that_only_receives_moves_and_can_send_later(backend) {
        let storage = storage(backend).await;
        let store = storage.store.clone();
        common::init(&*store).await;
        let [mut laptop, desk, phone] = three(&store).await;
        let receiving = EngineConfig {
            direction: ferry_sync::Direction::ReceiveOnly,
            ..lazy()
        };
        let common::Device { engine, home } = desk;
        drop(engine);
        let database = home.path().join("ferry.db");
        let engine = Engine::open(store.clone(), first_key().keys(), identity_for(&database), &database, receiving)
            .await
            .unwrap();
        let mut desk = common::Device { engine, home };
        desk.copy("kept on the desk while it only receives");
        let new = remove(&mut laptop, &store, &first_key(), &[phone.engine.device()]).await;
        laptop.copy("from the laptop");
        laptop.engine.sync().await.unwrap();
        poll(&mut desk, &store).await.expect("the desk follows");
        assert!(desk.texts().contains(&"from the laptop".to_owned()));
        // It starts sending: its stream in the new generation starts with its snapshot.
        let mut desk = reopen(desk, store.clone(), &new).await;
        desk.copy("sent from the desk");
        desk.engine.sync().await.unwrap();
        laptop.engine.sync().await.unwrap();
        for text in ["kept on the desk while it only receives", "sent from the desk"] {
            assert!(laptop.texts().contains(&text.to_owned()), "{text}");
        }
    }

    #[tokio::test]
    async fn a_removed_device_given_the_new_key_by_hand_is_still_removed(backend) {
        let storage = storage(backend).await;
        let store = storage.store.clone();
        common::init(&*store).await;
        let [mut laptop, _desk, phone] = three(&store).await;
        let new = remove(&mut laptop, &store, &first_key(), &[phone.engine.device()]).await;
        let common::Device { engine, home } = phone;
        drop(engine);
        let database = home.path().join("ferry.db");
        let opened = Engine::open(store.clone(), new.keys(), identity_for(&database), &database, lazy()).await;
        assert!(matches!(opened, Err(SyncError::Removed { .. })), "{:?}", opened.err());
    }
}

per_backend! {
    #[tokio::test]
    async fn a_dispute_is_settled_by_removing_the_lost_device_here(backend) {
        let storage = storage(backend).await;
        let store = storage.store.clone();
        common::init(&*store).await;
        let [mut laptop, mut desk, mut phone] = three(&store).await;
        let (laptop_id, desk_id, phone_id) =
            (laptop.engine.device(), desk.engine.device(), phone.engine.device());
        // The phone, in a thief's hands, removes the others; the laptop removes the phone.
        let by_phone = phone.engine.rotation_plan(&[laptop_id, desk_id], &[]).unwrap();
        let thief = SyncKey::generate().unwrap();
        phone
            .engine
            .rotate(&first_key(), &thief, None, &by_phone, Destination::Here)
            .await
            .unwrap();
        laptop.engine.remove_here(phone_id).unwrap();
        let new = remove(&mut laptop, &store, &first_key(), &[phone_id]).await;
        // The desk sees each remove the other's maker, and writes nothing.
        desk.engine.fetch().await.unwrap();
        let disputed = desk.engine.next_generation(&BTreeSet::new()).await.unwrap_err();
        assert!(matches!(disputed, SyncError::Dispute { .. }), "{disputed}");
        assert!(desk.engine.upload().await.is_err());
        // The person removes the phone on the desk too: kept in its database, also once opened
        // again.
        desk.engine.remove_here(phone_id).unwrap();
        let desk = reopen(desk, store.clone(), &first_key()).await;
        let mut desk = desk;
        let key = poll(&mut desk, &store).await.expect("the desk follows the laptop");
        assert_eq!(key.expose_bytes(), new.expose_bytes());
        assert!(desk.engine.remove_here(desk_id).is_err(), "not itself");
    }
}

per_backend! {
    #[tokio::test]
    async fn a_repository_moved_to_other_storage_is_followed_with_every_image(backend) {
        // From a folder to the storage under test; the phone is away during the move.
        let folder = tempfile::tempdir().unwrap();
        let from: Arc<dyn Store> = Arc::new(ferry_store::FolderStore::create(folder.path()).unwrap());
        let storage = storage(backend).await;
        let to = storage.store.clone();
        common::init(&*from).await;
        let [mut laptop, mut desk, mut phone] = three(&from).await;
        // A lost device was removed before, in the old storage.
        let mut lost = common::Device::open_with(from.clone(), lazy()).await;
        lost.engine.sync().await.unwrap();
        laptop.engine.fetch().await.unwrap();
        let lost_id = lost.engine.device();
        laptop.engine.vouch(lost_id, lost.identity().public()).unwrap();
        laptop.engine.sync().await.unwrap();
        let before = remove(&mut laptop, &from, &first_key(), &[lost_id]).await;
        poll(&mut desk, &from).await.expect("the desk follows the removal");
        poll(&mut phone, &from).await.expect("the phone follows the removal");
        laptop.copy("on the laptop");
        let phones_image = image(200_000, 7);
        let phones_blob = copy_image(&mut phone, phones_image.clone());
        for _ in 0..2 {
            for device in [&mut laptop, &mut desk, &mut phone] {
                device.engine.sync().await.unwrap();
            }
        }
        desk.copy("unsent on the desk");
        phone.copy("unsent on the phone");

        let new = SyncKey::generate().unwrap();
        let plan = laptop.engine.rotation_plan(&[], &[]).unwrap();
        let storage_there = ferry_protocol::generation::Storage {
            url: "s3://bucket/prefix".into(),
            credentials: ferry_protocol::pairing::Credentials::None,
        };
        let destination = Destination::Moved { storage: storage_there.clone(), store: to.clone() };
        let successor = laptop.engine.rotate(&before, &new, None, &plan, destination).await.unwrap();
        assert_eq!(successor.generation, 3);
        assert!(successor.moved);
        // The new generation is there, its candidate here; nothing else was written there.
        let root = successor.root();
        let there = to.list("", None, 1000).await.unwrap().objects;
        assert!(!there.is_empty());
        assert!(there.iter().all(|object| object.name.starts_with(&root)), "{there:?}");

        poll(&mut laptop, &to).await.expect("the maker follows its own generation");
        desk.engine.fetch().await.unwrap();
        let next = desk.engine.next_generation(&BTreeSet::new()).await.unwrap().unwrap();
        assert_eq!(next.handover.storage.as_ref(), Some(&storage_there), "the desk is told where");
        // A store that does not hold the generation is refused before anything moves.
        let elsewhere = common::storage(backend).await;
        let refused = desk.engine.follow(&next, elsewhere.store.clone()).await.unwrap_err();
        assert!(matches!(refused, SyncError::GenerationRefused { .. }), "{refused}");
        assert_eq!(desk.engine.generation(), 2);
        desk.engine.follow(&next, to.clone()).await.unwrap();
        desk.engine.sync().await.unwrap();
        // Away during the move, the phone follows on its return.
        poll(&mut phone, &to).await.expect("the phone follows");
        laptop.engine.sync().await.unwrap();
        desk.engine.sync().await.unwrap();
        for device in [&laptop, &desk, &phone] {
            assert_eq!(device.engine.generation(), 3);
        }
        let texts = laptop.texts();
        for text in ["on the laptop", "unsent on the desk", "unsent on the phone"] {
            assert!(texts.contains(&text.to_owned()), "{text} missing: {texts:?}");
        }
        assert_eq!(desk.texts(), texts);
        assert_eq!(phone.texts(), texts);
        // The phone's image, which the laptop had not fetched, moved with the repository.
        let moved = to.list(&format!("{root}blob/{phones_blob}/"), None, 10).await.unwrap();
        assert_eq!(moved.objects.len(), 1);
        assert_eq!(desk.engine.blob(phones_blob).await.unwrap(), phones_image);

        // A new device given the new key finds the repository in its new storage, and the
        // storage is no place for a new repository.
        let config = EngineConfig { paired_as: None, ..lazy() };
        let home = tempfile::tempdir().unwrap();
        let database = home.path().join("ferry.db");
        let engine = Engine::open(to.clone(), new.keys(), identity_for(&database), &database, config).await.unwrap();
        let mut tablet = common::Device { engine, home };
        assert_eq!(tablet.engine.generation(), 3);
        tablet.engine.sync().await.unwrap();
        assert_eq!(tablet.texts(), texts);
        // It knows whom the earlier generations removed, though they stayed behind: the
        // lost device gets no later key.
        assert!(tablet.engine.removed().contains(&lost_id));
        tablet.engine.vouch(lost_id, lost.identity().public()).ok();
        let plan = tablet.engine.rotation_plan(&[], &[lost_id]).unwrap();
        assert!(!plan.recipients.iter().any(|(device, _)| *device == lost_id));
        let again = ferry_sync::repo::init(&*to, &SyncKey::generate().unwrap().keys(), None, &common::FAST_RETRY).await;
        assert!(matches!(again, Err(SyncError::RepositoryExists { .. })), "{again:?}");
        // The devices open again on the new storage.
        let desk = reopen(desk, to.clone(), &new).await;
        assert_eq!(desk.engine.generation(), 3);
        assert_eq!(desk.texts(), texts);
    }
}

per_backend! {
    #[tokio::test]
    async fn finishing_deletes_the_earlier_generation_once_its_images_are_written_again(backend) {
        let storage = storage(backend).await;
        let store = storage.store.clone();
        common::init(&*store).await;
        let [mut laptop, mut desk, mut phone] = three(&store).await;
        // An image the phone made and nobody fetched: after the phone is removed, only the
        // first generation holds it.
        let phones_image = image(150_000, 9);
        let phones_blob = copy_image(&mut phone, phones_image.clone());
        phone.engine.sync().await.unwrap();
        laptop.copy("on the laptop");
        laptop.engine.sync().await.unwrap();
        desk.engine.sync().await.unwrap();
        let refused = laptop.engine.finish_generations().await.unwrap_err();
        assert!(matches!(refused, SyncError::GenerationRefused { .. }), "{refused}");

        let new = remove(&mut laptop, &store, &first_key(), &[phone.engine.device()]).await;
        poll(&mut desk, &store).await.expect("the desk follows");
        let texts = laptop.texts();
        let finished = laptop.engine.finish_generations().await.unwrap();
        assert_eq!(finished.resealed, 1);
        assert_eq!(finished.unreadable, 0);
        assert_eq!(finished.emptied.len(), 1);
        assert_eq!(finished.emptied[0].0, "ferry/v1/");
        assert!(finished.emptied[0].1 > 0);
        assert!(store.list("ferry/v1/", None, 10).await.unwrap().objects.is_empty());
        // Nothing is lost: the image is read in the new generation, and a new device finds
        // the repository there.
        desk.engine.sync().await.unwrap();
        assert_eq!(desk.engine.blob(phones_blob).await.unwrap(), phones_image);
        let home = tempfile::tempdir().unwrap();
        let database = home.path().join("ferry.db");
        let engine = Engine::open(store.clone(), new.keys(), identity_for(&database), &database, lazy()).await.unwrap();
        let mut tablet = common::Device { engine, home };
        tablet.engine.sync().await.unwrap();
        assert_eq!(tablet.engine.generation(), 2);
        assert_eq!(tablet.texts(), texts);
        assert_eq!(tablet.engine.blob(phones_blob).await.unwrap(), phones_image);
        // Again: nothing more to do.
        let again = laptop.engine.finish_generations().await.unwrap();
        assert_eq!((again.resealed, again.emptied.len()), (0, 0));
    }
}
