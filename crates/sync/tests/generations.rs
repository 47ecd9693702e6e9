//! Generations in storage (SPEC §11), on every backend: a new generation is written once and
//! found with its key, each remaining device opens its own wrap, two rotations at once end on
//! one candidate, a lost device's candidate is contested or makes a dispute the person
//! settles, and a hostile storage gets nothing installed.

mod common;

use ferry_protocol::generation::{Next, Plan, Previous, Successor, root};
use ferry_protocol::{DeviceId, Identity, KdfParams, Keys, ObjectName, RepoHeader, SyncKey};
use ferry_store::Store;
use ferry_sync::SyncError;
use ferry_sync::generation::{
    Choice, Creator, Lineage, Prepared, Valid, Verdict, candidates, check_new_header, choose,
    commit, locate, path_in, validate, verdict,
};
use ferry_sync::repo;

use common::{FAST_RETRY, per_backend, storage};

const OLD: [u8; 32] = [0x5A; 32];
const V1: &str = "ferry/v1/";

struct Person {
    device: DeviceId,
    identity: Identity,
}

fn person(seed: u8) -> Person {
    Person {
        device: DeviceId([seed; 16]),
        identity: Identity::from_secret_bytes(&[seed; Identity::SECRET_LEN]),
    }
}

/// Laptop and desk (the person's), and the phone (lost): all members of generation 1.
struct Household {
    laptop: Person,
    desk: Person,
    phone: Person,
}

impl Household {
    fn new() -> Household {
        Household {
            laptop: person(1),
            desk: person(2),
            phone: person(3),
        }
    }

    /// Who is still a member once `removed` (and the devices removed here) are out: the laptop
    /// is the first device and vouched for the other two, so removing any leaves the others.
    fn members<'a>(
        &'a self,
        here: &'a [DeviceId],
    ) -> impl Fn(&std::collections::BTreeSet<DeviceId>) -> std::collections::BTreeSet<DeviceId> + 'a
    {
        move |removed| {
            let out = |d: &DeviceId| removed.contains(d) || here.contains(d);
            [&self.laptop, &self.desk, &self.phone]
                .into_iter()
                .map(|p| p.device)
                .filter(|d| !out(d))
                .collect()
        }
    }

    /// What every device's roster says: all three are members.
    fn roster(&self) -> impl Fn(&DeviceId) -> Option<Creator> + '_ {
        move |device| {
            [&self.laptop, &self.desk, &self.phone]
                .into_iter()
                .find(|p| p.device == *device)
                .map(|p| Creator {
                    keys: p.identity.public(),
                    holds: true,
                })
        }
    }
}

fn old() -> SyncKey {
    SyncKey::from_bytes(OLD)
}

fn plan<'a>(key: &'a SyncKey, by: &Person, keep: &[&Person], remove: &[&Person]) -> Plan<'a> {
    Plan {
        successor: Successor {
            generation: 2,
            key_id: key.key_id(),
            moved: false,
        },
        key,
        storage: None,
        creator: by.device,
        time_ms: 1_765_000_000_000,
        revoked: remove.iter().map(|p| p.device).collect(),
        recipients: keep
            .iter()
            .map(|p| (p.device, p.identity.public()))
            .collect(),
    }
}

async fn started(store: &dyn Store) -> [u8; 16] {
    repo::init(store, &old().keys(), None, &FAST_RETRY)
        .await
        .unwrap()
        .repo_id
}

/// Writes the generation `by` makes (keeping `keep`, removing `remove`) with a fresh key.
async fn rotate(
    store: &dyn Store,
    repo_id: [u8; 16],
    by: &Person,
    keep: &[&Person],
    remove: &[&Person],
) -> (SyncKey, Prepared) {
    let key = SyncKey::generate().unwrap();
    let prepared = {
        let plan = plan(&key, by, keep, remove);
        Prepared::new(&old(), &by.identity, &plan, None, repo_id).unwrap()
    };
    commit(
        store,
        &FAST_RETRY,
        V1,
        &prepared,
        &old().keys(),
        &by.identity.public(),
    )
    .await
    .unwrap();
    (key, prepared)
}

/// The valid candidates of generation 1, as a device that removed `removed_here` sees them.
async fn valid(store: &dyn Store, h: &Household, removed_here: &[DeviceId]) -> Vec<Valid> {
    let keys = old().keys();
    let tags: Vec<_> = [&h.laptop, &h.desk, &h.phone]
        .iter()
        .map(|p| keys.names.device_tag(&p.device))
        .collect();
    candidates(store, &FAST_RETRY, V1, |tag| tags.contains(tag), 16)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, next)| {
            validate(&next.ok()?, 1, &keys, h.roster(), |d| {
                removed_here.contains(d)
            })
            .ok()
        })
        .collect()
}

fn recovery(key: &SyncKey) -> impl FnMut(&RepoHeader) -> Result<Keys, SyncError> {
    let keys = key.keys();
    move |_| Ok(keys.clone())
}

fn follows(choice: Choice<'_>) -> &Valid {
    match choice {
        Choice::Follow(chosen) => chosen,
        other => panic!("expected a candidate to follow, got {other:?}"),
    }
}

per_backend! {
    #[tokio::test]
    async fn a_new_generation_is_found_with_its_key_and_each_device_takes_its_own_wrap(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        let repo_id = started(store).await;
        let h = Household::new();
        let (new, prepared) = rotate(store, repo_id, &h.laptop, &[&h.laptop, &h.desk], &[&h.phone]).await;
        // Again, as after a crash: nothing changes; sealed again with the same key (other
        // nonces, as a run that stopped half-way and starts over makes them), it is the same
        // generation.
        let own = h.laptop.identity.public();
        commit(store, &FAST_RETRY, V1, &prepared, &old().keys(), &own).await.unwrap();
        let resealed = plan(&new, &h.laptop, &[&h.laptop, &h.desk], &[&h.phone]);
        let resealed = Prepared::new(&old(), &h.laptop.identity, &resealed, None, repo_id).unwrap();
        assert_ne!(resealed.header.to_bytes(), prepared.header.to_bytes());
        commit(store, &FAST_RETRY, V1, &resealed, &old().keys(), &own).await.unwrap();
        // Someone else's header at that root is not taken for this one.
        let stranger = SyncKey::generate().unwrap().keys();
        let squatted = ferry_protocol::RepoHeader::create_for(&stranger, None, repo_id).unwrap();
        let desks_key = SyncKey::generate().unwrap();
        let elsewhere = plan(&desks_key, &h.desk, &[&h.desk], &[]);
        let elsewhere = Prepared::new(&old(), &h.desk.identity, &elsewhere, None, repo_id).unwrap();
        let name = format!("{}repo", elsewhere.next.successor.root());
        store.put_new(&name, squatted.to_bytes()).await.unwrap();
        let refused = commit(store, &FAST_RETRY, V1, &elsewhere, &old().keys(), &h.desk.identity.public()).await;
        assert!(matches!(refused, Err(SyncError::GenerationRefused { .. })), "{refused:?}");
        store.delete(&name).await.unwrap();

        let (found, _) = locate(store, &FAST_RETRY, recovery(&new)).await.unwrap();
        assert_eq!(found.generation, 2);
        assert_eq!(found.root, prepared.next.successor.root());
        assert_eq!(found.header.repo_id, repo_id);
        assert!(found.successors.is_empty());
        let (found, _) = locate(store, &FAST_RETRY, recovery(&old())).await.unwrap();
        assert_eq!(found.generation, 1);
        assert_eq!(found.successors, std::slice::from_ref(&prepared.next));

        let valid = valid(store, &h, &[]).await;
        let chosen = follows(choose(&valid, h.members(&[])));
        let old_id = old().key_id();
        match verdict(chosen, old_id, &h.desk.identity, h.desk.device).unwrap() {
            Verdict::Follow { successor, handover } => {
                assert_eq!(handover.key.expose_bytes(), new.expose_bytes());
                let keys = handover.key.keys();
                let lineage = Lineage {
                    repo_id,
                    old: old_id,
                    creator: h.laptop.identity.public(),
                };
                let header = check_new_header(store, &FAST_RETRY, &successor, &keys, lineage)
                    .await
                    .unwrap();
                assert_eq!(header.repo_id, repo_id);
            }
            other => panic!("desk should follow: {other:?}"),
        }
        assert!(matches!(
            verdict(chosen, old_id, &h.phone.identity, h.phone.device).unwrap(),
            Verdict::Removed { by, at_ms: 1_765_000_000_000 } if by == h.laptop.device
        ));
        let stranger = person(9);
        assert!(matches!(
            verdict(chosen, old_id, &stranger.identity, stranger.device).unwrap(),
            Verdict::LeftOut { .. }
        ));
        // The new generation holds the old key, signed, for what is not moved yet.
        let prev = store
            .get(&path_in(&found_root(&prepared), &ObjectName::Prev), u64::MAX)
            .await
            .unwrap();
        let prev = new.keys().data.open_signed::<Previous>(&ObjectName::Prev, &prev).unwrap();
        prev.verify(&h.laptop.identity.public()).unwrap();
        assert_eq!(prev.value.sync_key().key_id(), old().key_id());
        assert_eq!(prev.value.generation, 1);
    }

    // Concurrent writes into new WebDAV collections: not under Wine (see scripts/test.sh).
    #[tokio::test]
    async fn two_rotations_at_once_end_on_one_candidate_on_every_backend(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        let repo_id = started(store).await;
        let h = Household::new();
        let (keep, remove) = ([&h.laptop, &h.desk], [&h.phone]);
        let ((_, by_laptop), (_, by_desk)) = tokio::join!(
            rotate(store, repo_id, &h.laptop, &keep, &remove),
            rotate(store, repo_id, &h.desk, &keep, &remove),
        );
        let valid = valid(store, &h, &[]).await;
        assert_eq!(valid.len(), 2);
        // Neither removes the other's creator: the smaller creator id, on every device.
        let chosen = follows(choose(&valid, h.members(&[])));
        assert_eq!(chosen.next, by_laptop.next);
        assert_ne!(chosen.next, by_desk.next);
    }

    #[tokio::test]
    async fn a_lost_devices_candidate_is_contested_or_makes_a_dispute_the_person_settles(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        let repo_id = started(store).await;
        let h = Household::new();
        let old_id = old().key_id();

        // The thief rotates first, keeping everyone (to hold the new key too): once the
        // person removes the phone, the thief's candidate is contested.
        let (_, by_phone) = rotate(store, repo_id, &h.phone, &[&h.phone, &h.laptop, &h.desk], &[]).await;
        assert_eq!(follows(choose(&valid(store, &h, &[]).await, h.members(&[]))).next, by_phone.next);
        let (_, by_laptop) = rotate(store, repo_id, &h.laptop, &[&h.laptop, &h.desk], &[&h.phone]).await;
        let valid_now = valid(store, &h, &[]).await;
        assert_eq!(follows(choose(&valid_now, h.members(&[]))).next, by_laptop.next);
        // A device makes one candidate per generation: the thief cannot swap its own.
        let again = SyncKey::generate().unwrap();
        let other = plan(&again, &h.phone, &[&h.phone], &[&h.laptop, &h.desk]);
        let other = Prepared::new(&old(), &h.phone.identity, &other, None, repo_id).unwrap();
        let swap = commit(store, &FAST_RETRY, V1, &other, &old().keys(), &h.phone.identity.public()).await;
        assert!(matches!(swap, Err(SyncError::CandidateMade)), "{swap:?}");

        // Elsewhere the thief removes everyone first, and the person then removes the phone.
        let storage = common::storage(backend).await;
        let store = &*storage.store;
        let repo_id = started(store).await;
        let (_, removes_all) = rotate(store, repo_id, &h.phone, &[&h.phone], &[&h.laptop, &h.desk]).await;
        let (_, by_laptop) = rotate(store, repo_id, &h.laptop, &[&h.laptop, &h.desk], &[&h.phone]).await;
        // Each removes the other's creator: the desk stops and asks.
        match choose(&valid(store, &h, &[]).await, h.members(&[])) {
            Choice::Dispute(both) => assert_eq!(both.len(), 2),
            other => panic!("expected a dispute: {other:?}"),
        }
        // The person removes the phone on the desk: the laptop's candidate is followed.
        let settled = valid(store, &h, &[h.phone.device]).await;
        let here = [h.phone.device];
        let chosen = follows(choose(&settled, h.members(&here)));
        assert_eq!(chosen.next, by_laptop.next);
        assert!(matches!(
            verdict(chosen, old_id, &h.desk.identity, h.desk.device).unwrap(),
            Verdict::Follow { .. }
        ));
        // Alone, the thief's candidate that removes everyone tells the others so (they stop
        // writing under the old key, and the person removes the phone there).
        let alone = [validate(&removes_all.next, 1, &old().keys(), h.roster(), |_| false).unwrap()];
        assert!(matches!(
            verdict(follows(choose(&alone, h.members(&[]))), old_id, &h.desk.identity, h.desk.device).unwrap(),
            Verdict::Removed { by, .. } if by == h.phone.device
        ));
    }

    #[tokio::test]
    async fn candidates_a_hostile_storage_or_a_lost_device_could_make_are_refused(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        let repo_id = started(store).await;
        let h = Household::new();
        let keys = old().keys();
        let refused = |result: Result<Valid, SyncError>| match result {
            Err(SyncError::GenerationRefused { reason }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let none_removed = |_: &DeviceId| false;

        let planted = SyncKey::generate().unwrap();
        let by_phone = plan(&planted, &h.phone, &[&h.phone, &h.desk], &[&h.laptop]);
        let record = Next::create(&keys, &h.phone.identity, &by_phone).unwrap();
        // A device the desk's roster does not hold.
        let without_phone = |device: &DeviceId| (*device != h.phone.device).then(|| h.roster()(device)).flatten();
        let reason = refused(validate(&record, 1, &keys, without_phone, none_removed));
        assert!(reason.contains("not in this device's roster"), "{reason}");
        // In the laptop's name, signed with the phone's key: forged.
        let as_laptop = plan(&planted, &h.laptop, &[&h.laptop, &h.desk], &[]);
        let forged = Next::create(&keys, &h.phone.identity, &as_laptop).unwrap();
        let reason = refused(validate(&forged, 1, &keys, h.roster(), none_removed));
        assert!(reason.contains("forged"), "{reason}");
        // By a device whose membership does not hold.
        let outsider = |device: &DeviceId| h.roster()(device).map(|c| Creator { holds: false, ..c });
        let reason = refused(validate(&record, 1, &keys, outsider, none_removed));
        assert!(reason.contains("never vouched"), "{reason}");
        // By a device the person removed here.
        let reason = refused(validate(&record, 1, &keys, h.roster(), |d| *d == h.phone.device));
        assert!(reason.contains("removed on this device"), "{reason}");

        // A genuine candidate replayed into a later generation.
        let new = SyncKey::generate().unwrap();
        let genuine = plan(&new, &h.laptop, &[&h.laptop, &h.desk], &[&h.phone]);
        let prepared = Prepared::new(&old(), &h.laptop.identity, &genuine, None, repo_id).unwrap();
        let reason = refused(validate(&prepared.next, 2, &keys, h.roster(), none_removed));
        assert!(reason.contains("replayed"), "{reason}");
        // A candidate of another repository's key.
        let other_key = SyncKey::from_bytes([7; 32]).keys();
        let foreign = Next::create(&other_key, &h.laptop.identity, &genuine).unwrap();
        assert!(matches!(
            validate(&foreign, 1, &keys, h.roster(), none_removed),
            Err(SyncError::Protocol(ferry_protocol::Error::WrongKey { .. }))
        ));

        // Names planted ahead of the honest candidates in the listing cost a device that
        // reads its roster's candidates nothing.
        // More than a page of them: the listing is followed to its end.
        for i in 0..1005u16 {
            let mut tag = [0; 16];
            tag[..2].copy_from_slice(&i.to_be_bytes());
            let planted = ObjectName::Next { creator: ferry_protocol::DeviceTag(tag) };
            store.put(&path_in(V1, &planted), b"junk".to_vec()).await.unwrap();
        }

        // Junk planted in the laptop's name first: its candidate replaces it.
        let name = path_in(V1, &prepared.next.name());
        store.put(&name, b"FRY junk".to_vec()).await.unwrap();
        let own = h.laptop.identity.public();
        commit(store, &FAST_RETRY, V1, &prepared, &keys, &own).await.unwrap();
        assert_eq!(store.get(&name, u64::MAX).await.unwrap(), prepared.next.to_bytes());

        // The storage flips a byte of the candidate: it does not open.
        let mut bytes = store.get(&name, u64::MAX).await.unwrap();
        let at = bytes.len() - 20;
        bytes[at] ^= 1;
        store.delete(&name).await.unwrap();
        store.put(&name, bytes).await.unwrap();
        let read = laptops_candidate(store, &h).await;
        let flipped = read.as_ref().unwrap();
        assert!(matches!(
            validate(flipped, 1, &keys, h.roster(), none_removed),
            Err(SyncError::Protocol(ferry_protocol::Error::AuthenticationFailed))
        ));
        // A `prev` signed by another device, or gone: the new generation is not followed.
        let lineage = Lineage {
            repo_id,
            old: old().key_id(),
            creator: h.laptop.identity.public(),
        };
        let successor = genuine.successor;
        check_new_header(store, &FAST_RETRY, &successor, &new.keys(), lineage).await.unwrap();
        let prev = path_in(&successor.root(), &ObjectName::Prev);
        let by_phone = Previous { writer: h.laptop.device, generation: 1, key: OLD };
        let by_phone = new.keys().data.seal_signed(&ObjectName::Prev, &by_phone, &h.phone.identity).unwrap();
        store.delete(&prev).await.unwrap();
        store.put(&prev, by_phone.into_bytes()).await.unwrap();
        let signed_elsewhere = check_new_header(store, &FAST_RETRY, &successor, &new.keys(), lineage).await;
        assert!(matches!(signed_elsewhere, Err(SyncError::GenerationRefused { ref reason }) if reason.contains("not signed")), "{signed_elsewhere:?}");
        store.delete(&prev).await.unwrap();
        let gone = check_new_header(store, &FAST_RETRY, &successor, &new.keys(), lineage).await;
        assert!(matches!(gone, Err(SyncError::GenerationRefused { ref reason }) if reason.contains("missing")), "{gone:?}");

        // The storage truncates the new generation's header: the move stops there.
        let header = path_in(&genuine.successor.root(), &ObjectName::Repo);
        let bytes = store.get(&header, u64::MAX).await.unwrap();
        store.delete(&header).await.unwrap();
        store.put(&header, bytes[..bytes.len() / 2].to_vec()).await.unwrap();
        let successor = genuine.successor;
        let lineage = Lineage {
            repo_id,
            old: old().key_id(),
            creator: h.laptop.identity.public(),
        };
        assert!(check_new_header(store, &FAST_RETRY, &successor, &new.keys(), lineage).await.is_err());
        store.delete(&header).await.unwrap();
        let missing = check_new_header(store, &FAST_RETRY, &successor, &new.keys(), lineage).await;
        assert!(matches!(missing, Err(SyncError::GenerationRefused { .. })), "{missing:?}");
    }

    #[tokio::test]
    async fn a_passphrase_generation_is_found_with_the_new_passphrase_and_not_the_old(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        let cheap = |salt: u8| KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
            salt: [salt; 16],
        };
        let first = SyncKey::from_passphrase("old horse battery", &cheap(1)).unwrap();
        let repo_id = repo::init(store, &first.keys(), Some(cheap(1)), &FAST_RETRY)
            .await
            .unwrap()
            .repo_id;
        let h = Household::new();
        let second = SyncKey::from_passphrase("new staple battery", &cheap(2)).unwrap();
        let plan = plan(&second, &h.laptop, &[&h.laptop, &h.desk], &[&h.phone]);
        let prepared =
            Prepared::new(&first, &h.laptop.identity, &plan, Some(cheap(2)), repo_id).unwrap();
        let own = h.laptop.identity.public();
        commit(store, &FAST_RETRY, &root(1, first.key_id()), &prepared, &first.keys(), &own)
            .await
            .unwrap();
        let passphrase = |text: &'static str| {
            move |header: &RepoHeader| {
                let params = header.kdf.expect("a passphrase repository");
                Ok(SyncKey::from_passphrase(text, &params)?.keys())
            }
        };
        let (found, keys) = locate(store, &FAST_RETRY, passphrase("new staple battery")).await.unwrap();
        assert_eq!((found.generation, keys.id), (2, second.key_id()));
        let (found, _) = locate(store, &FAST_RETRY, passphrase("old horse battery")).await.unwrap();
        assert_eq!(found.generation, 1);
        assert!(!found.successors.is_empty(), "the old passphrase opens only the replaced generation");
        assert!(matches!(
            locate(store, &FAST_RETRY, passphrase("never used")).await,
            Err(SyncError::Protocol(ferry_protocol::Error::WrongKey { .. }))
        ));
    }
}

/// The laptop's candidate, as the others read it among twenty planted names.
async fn laptops_candidate(store: &dyn Store, h: &Household) -> Result<Next, SyncError> {
    let tag = old().keys().names.device_tag(&h.laptop.device);
    let mut read = candidates(store, &FAST_RETRY, V1, |t| *t == tag, 16)
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    read.remove(0).1
}

fn found_root(prepared: &Prepared) -> String {
    prepared.next.successor.root()
}

/// Laptop (the first device), desk and phone (vouched for by the laptop), tablet (vouched for
/// by the phone alone) and a stray (joined with the key, vouched for by nobody), all synced.
async fn household(store: &std::sync::Arc<dyn Store>) -> Vec<common::Device> {
    let mut devices = Vec::new();
    for _ in 0..5 {
        devices.push(common::Device::open(store.clone()).await);
    }
    devices[0].engine.founded().unwrap();
    common::sync_all(&mut devices).await;
    let id = |d: &common::Device| (d.engine.device(), d.identity().public());
    let (desk, phone, tablet) = (id(&devices[1]), id(&devices[2]), id(&devices[3]));
    devices[0].engine.vouch(desk.0, desk.1).unwrap();
    devices[0].engine.vouch(phone.0, phone.1).unwrap();
    common::sync_all(&mut devices).await;
    devices[2].engine.vouch(tablet.0, tablet.1).unwrap();
    common::sync_all(&mut devices).await;
    devices
}

per_backend! {
    #[tokio::test]
    async fn removing_a_device_hands_the_key_to_the_members_and_tells_the_others(backend) {
        let storage = storage(backend).await;
        common::init(&*storage.store).await;
        let mut devices = household(&storage.store).await;
        let [laptop, desk, phone, tablet, stray] = &mut devices[..] else { unreachable!() };
        let id = |d: &common::Device| d.engine.device();

        let plan = laptop.engine.rotation_plan(&[id(phone)], &[]).unwrap();
        let mut given: Vec<_> = plan.recipients.iter().map(|(device, _)| *device).collect();
        given.sort();
        let mut expected = vec![id(laptop), id(desk)];
        expected.sort();
        assert_eq!(given, expected);
        let mut left_out = plan.left_out.clone();
        left_out.sort();
        let mut expected = vec![id(tablet), id(stray)];
        expected.sort();
        assert_eq!(left_out, expected, "the tablet held only through the phone");
        let with_tablet = laptop.engine.rotation_plan(&[id(phone)], &[id(tablet)]).unwrap();
        assert!(with_tablet.recipients.iter().any(|(device, _)| *device == id(tablet)));
        assert!(laptop.engine.rotation_plan(&[id(laptop)], &[]).is_err());

        let new = SyncKey::generate().unwrap();
        let successor = laptop
            .engine
            .rotate(&old(), &new, None, &plan, ferry_sync::Destination::Here)
            .await
            .unwrap();
        assert_eq!(successor.generation, 2);

        let none = std::collections::BTreeSet::new();
        for device in [&*laptop, &*desk] {
            match device.engine.succession(&none).await.unwrap() {
                ferry_sync::Succession::Follow(next) => {
                    assert_eq!(next.handover.key.expose_bytes(), new.expose_bytes());
                    assert_eq!(next.by, id(laptop));
                }
                other => panic!("a member should follow: {other:?}"),
            }
        }
        assert!(matches!(
            phone.engine.succession(&none).await.unwrap(),
            ferry_sync::Succession::Removed { by, .. } if by == id(laptop)
        ));
        for device in [&*tablet, &*stray] {
            assert!(matches!(
                device.engine.succession(&none).await.unwrap(),
                ferry_sync::Succession::LeftOut { .. }
            ));
        }
    }

    #[tokio::test]
    async fn two_devices_removing_each_other_wait_for_the_person(backend) {
        let storage = storage(backend).await;
        common::init(&*storage.store).await;
        let mut devices = household(&storage.store).await;
        let [laptop, desk, phone, ..] = &mut devices[..] else { unreachable!() };
        let id = |d: &common::Device| d.engine.device();
        let none = std::collections::BTreeSet::new();

        let by_phone = phone.engine.rotation_plan(&[id(laptop), id(desk)], &[]).unwrap();
        phone
            .engine
            .rotate(&old(), &SyncKey::generate().unwrap(), None, &by_phone, ferry_sync::Destination::Here)
            .await
            .unwrap();
        // Alone, the phone's removal stands: the others are told who removed them.
        assert!(matches!(
            desk.engine.succession(&none).await.unwrap(),
            ferry_sync::Succession::Removed { by, .. } if by == id(phone)
        ));
        let by_laptop = laptop.engine.rotation_plan(&[id(phone)], &[]).unwrap();
        let new = SyncKey::generate().unwrap();
        laptop
            .engine
            .rotate(&old(), &new, None, &by_laptop, ferry_sync::Destination::Here)
            .await
            .unwrap();
        match desk.engine.succession(&none).await.unwrap() {
            ferry_sync::Succession::Dispute { sides } => assert_eq!(sides.len(), 2),
            other => panic!("expected a dispute: {other:?}"),
        }
        // The person removes the phone on the desk (and the laptop removed it already).
        let phone_removed = std::collections::BTreeSet::from([id(phone)]);
        for device in [desk, laptop] {
            match device.engine.succession(&phone_removed).await.unwrap() {
                ferry_sync::Succession::Follow(next) => {
                    assert_eq!(next.handover.key.expose_bytes(), new.expose_bytes());
                }
                other => panic!("expected to follow the laptop: {other:?}"),
            }
        }
    }
}

per_backend! {
    #[tokio::test]
    async fn a_device_a_lost_one_vouched_for_cannot_take_the_new_key(backend) {
        let storage = storage(backend).await;
        common::init(&*storage.store).await;
        let mut devices = household(&storage.store).await;
        // The thief registers a device of its own, with the smallest id there is, and vouches
        // for it from the phone.
        let config = ferry_sync::EngineConfig {
            paired_as: Some(DeviceId([0; 16])),
            ..common::config()
        };
        devices.push(common::Device::open_with(storage.store.clone(), config).await);
        common::sync_all(&mut devices).await;
        let sybil = (devices[5].engine.device(), devices[5].identity().public());
        assert_eq!(sybil.0, DeviceId([0; 16]));
        devices[2].engine.vouch(sybil.0, sybil.1).unwrap();
        common::sync_all(&mut devices).await;
        let [laptop, desk, phone, _, _, sybil] = &mut devices[..] else { unreachable!() };
        let id = |d: &common::Device| d.engine.device();
        let none = std::collections::BTreeSet::new();

        // The sybil rotates, keeping the phone and everyone it can.
        let keep = sybil.engine.rotation_plan(&[], &[]).unwrap();
        sybil
            .engine
            .rotate(&old(), &SyncKey::generate().unwrap(), None, &keep, ferry_sync::Destination::Here)
            .await
            .unwrap();
        // The person removes the phone from the laptop: the sybil held only through the phone.
        let plan = laptop.engine.rotation_plan(&[id(phone)], &[]).unwrap();
        assert!(plan.left_out.contains(&id(sybil)));
        let new = SyncKey::generate().unwrap();
        laptop
            .engine
            .rotate(&old(), &new, None, &plan, ferry_sync::Destination::Here)
            .await
            .unwrap();
        match desk.engine.succession(&none).await.unwrap() {
            ferry_sync::Succession::Follow(next) => {
                assert_eq!(next.by, id(laptop));
                assert_eq!(next.handover.key.expose_bytes(), new.expose_bytes());
            }
            other => panic!("the desk should follow the laptop, not the sybil: {other:?}"),
        }
    }
}
