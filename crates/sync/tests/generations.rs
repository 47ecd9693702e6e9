//! Generations in storage (SPEC §11), on every backend: a new generation is written once and
//! found with its key, each remaining device opens its own wrap, two devices rotating at once
//! make one generation, and a hostile storage or a removed device gets nothing installed.

mod common;

use ferry_protocol::generation::{Next, Plan, Previous, Successor, root};
use ferry_protocol::{DeviceId, Identity, KdfParams, Keys, ObjectName, SyncKey};
use ferry_store::Store;
use ferry_sync::SyncError;
use ferry_sync::generation::{
    Committed, Creator, Prepared, Verdict, check_new_header, commit, judge, locate, path_in,
    read_next,
};
use ferry_sync::repo;

use common::{FAST_RETRY, per_backend, storage};

const OLD: [u8; 32] = [0x5A; 32];

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

/// Laptop (who rotates), desk (who stays) and phone (who is removed), all members.
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

fn recovery(key: &SyncKey) -> impl FnMut(&ferry_protocol::RepoHeader) -> Result<Keys, SyncError> {
    let keys = key.keys();
    move |_| Ok(keys.clone())
}

per_backend! {
    #[tokio::test]
    async fn a_new_generation_is_found_with_its_key_and_each_device_takes_its_own_wrap(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        let repo_id = started(store).await;
        let h = Household::new();
        let new = SyncKey::generate().unwrap();
        let plan = plan(&new, &h.laptop, &[&h.laptop, &h.desk], &[&h.phone]);
        let prepared = Prepared::new(&old(), &h.laptop.identity, &plan, None, repo_id).unwrap();
        let v1 = root(1, old().key_id());
        assert!(matches!(commit(store, &FAST_RETRY, &v1, &prepared).await.unwrap(), Committed::Ours));
        // Again, as after a crash: nothing changes.
        assert!(matches!(commit(store, &FAST_RETRY, &v1, &prepared).await.unwrap(), Committed::Ours));

        let (found, _) = locate(store, &FAST_RETRY, recovery(&new)).await.unwrap();
        assert_eq!(found.generation, 2);
        assert_eq!(found.root, plan.successor.root());
        assert_eq!(found.header.repo_id, repo_id);
        assert!(found.next.is_none());
        let (found, _) = locate(store, &FAST_RETRY, recovery(&old())).await.unwrap();
        assert_eq!(found.generation, 1);
        let next = found.next.expect("the old generation names its successor");

        let keys = old().keys();
        match judge(&next, 1, &keys, &h.desk.identity, h.desk.device, h.roster()).unwrap() {
            Verdict::Follow { successor, handover } => {
                assert_eq!(handover.key.expose_bytes(), new.expose_bytes());
                let header =
                    check_new_header(store, &FAST_RETRY, &successor, &handover.key.keys(), repo_id)
                        .await
                        .unwrap();
                assert_eq!(header.repo_id, repo_id);
            }
            other => panic!("desk should follow: {other:?}"),
        }
        assert!(matches!(
            judge(&next, 1, &keys, &h.phone.identity, h.phone.device, h.roster()).unwrap(),
            Verdict::Removed { by, at_ms: 1_765_000_000_000 } if by == h.laptop.device
        ));
        let stranger = person(9);
        assert!(matches!(
            judge(&next, 1, &keys, &stranger.identity, stranger.device, h.roster()).unwrap(),
            Verdict::LeftOut { .. }
        ));
        // The new generation holds the old key, signed, for what is not moved yet.
        let prev = store
            .get(&path_in(&plan.successor.root(), &ObjectName::Prev), u64::MAX)
            .await
            .unwrap();
        let prev = new.keys().data.open_signed::<Previous>(&ObjectName::Prev, &prev).unwrap();
        prev.verify(&h.laptop.identity.public()).unwrap();
        assert_eq!(prev.value.sync_key().key_id(), old().key_id());
        assert_eq!(prev.value.generation, 1);
    }

    // Concurrent writes into new WebDAV collections: not under Wine (see scripts/test.sh).
    #[tokio::test]
    async fn two_devices_rotating_at_once_make_one_generation_on_every_backend(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        let repo_id = started(store).await;
        let h = Household::new();
        let (k_laptop, k_desk) = (SyncKey::generate().unwrap(), SyncKey::generate().unwrap());
        let by_laptop = plan(&k_laptop, &h.laptop, &[&h.laptop, &h.desk], &[&h.phone]);
        let by_desk = plan(&k_desk, &h.desk, &[&h.laptop, &h.desk], &[&h.phone]);
        let a = Prepared::new(&old(), &h.laptop.identity, &by_laptop, None, repo_id).unwrap();
        let b = Prepared::new(&old(), &h.desk.identity, &by_desk, None, repo_id).unwrap();
        let v1 = root(1, old().key_id());
        let (ra, rb) = tokio::join!(
            commit(store, &FAST_RETRY, &v1, &a),
            commit(store, &FAST_RETRY, &v1, &b)
        );
        let (winner, loser) = match (ra.unwrap(), rb.unwrap()) {
            (Committed::Ours, Committed::Theirs(next)) => (&a, next),
            (Committed::Theirs(next), Committed::Ours) => (&b, next),
            other => panic!("exactly one rotation must win: {other:?}"),
        };
        assert_eq!(loser.successor, winner.next.successor);
        let stored = read_next(store, &FAST_RETRY, &v1).await.unwrap().unwrap();
        assert_eq!(stored, winner.next);
    }

    #[tokio::test]
    async fn records_a_hostile_storage_or_a_removed_device_could_make_are_refused(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        let repo_id = started(store).await;
        let h = Household::new();
        let keys = old().keys();
        let v1 = root(1, old().key_id());
        let refused = |result: Result<Verdict, SyncError>| match result {
            Err(SyncError::GenerationRefused { reason }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };

        // The removed phone still holds the old key: a record it makes, however it names its
        // creator, is not signed by a member it does not remove.
        let planted = SyncKey::generate().unwrap();
        let by_phone = plan(&planted, &h.phone, &[&h.phone, &h.desk], &[&h.laptop]);
        let record = Next::create(&keys, &h.phone.identity, &by_phone).unwrap();
        let only_laptop_and_desk = |device: &DeviceId| {
            (*device != h.phone.device).then(|| Creator {
                keys: if *device == h.laptop.device {
                    h.laptop.identity.public()
                } else {
                    h.desk.identity.public()
                },
                holds: true,
            })
        };
        let reason = refused(judge(&record, 1, &keys, &h.desk.identity, h.desk.device, only_laptop_and_desk));
        assert!(reason.contains("not in this device's roster"), "{reason}");
        // In the laptop's name, signed with the phone's key: forged.
        let mut as_laptop = plan(&planted, &h.laptop, &[&h.laptop, &h.desk], &[]);
        as_laptop.creator = h.laptop.device;
        let forged = Next::create(&keys, &h.phone.identity, &as_laptop).unwrap();
        let reason = refused(judge(&forged, 1, &keys, &h.desk.identity, h.desk.device, h.roster()));
        assert!(reason.contains("forged"), "{reason}");
        // By a device whose membership does not hold.
        let outsider = |device: &DeviceId| {
            h.roster()(device).map(|creator| Creator { holds: false, ..creator })
        };
        let reason = refused(judge(&record, 1, &keys, &h.desk.identity, h.desk.device, outsider));
        assert!(reason.contains("never vouched"), "{reason}");

        // A genuine record replayed into a later generation.
        let new = SyncKey::generate().unwrap();
        let genuine = plan(&new, &h.laptop, &[&h.laptop, &h.desk], &[&h.phone]);
        let prepared = Prepared::new(&old(), &h.laptop.identity, &genuine, None, repo_id).unwrap();
        let reason = refused(judge(&prepared.next, 2, &keys, &h.desk.identity, h.desk.device, h.roster()));
        assert!(reason.contains("replayed"), "{reason}");
        // A record of another repository's key.
        let foreign = Next::create(&SyncKey::from_bytes([7; 32]).keys(), &h.laptop.identity, &genuine)
            .unwrap();
        assert!(matches!(
            judge(&foreign, 1, &keys, &h.desk.identity, h.desk.device, h.roster()),
            Err(SyncError::Protocol(ferry_protocol::Error::WrongKey { .. }))
        ));

        // The storage flips a byte of the record: it does not open.
        assert!(matches!(commit(store, &FAST_RETRY, &v1, &prepared).await.unwrap(), Committed::Ours));
        let name = path_in(&v1, &ObjectName::Next);
        let mut bytes = store.get(&name, u64::MAX).await.unwrap();
        let at = bytes.len() - 20;
        bytes[at] ^= 1;
        store.delete(&name).await.unwrap();
        store.put(&name, bytes).await.unwrap();
        let flipped = read_next(store, &FAST_RETRY, &v1).await.unwrap().unwrap();
        assert!(matches!(
            judge(&flipped, 1, &keys, &h.desk.identity, h.desk.device, h.roster()),
            Err(SyncError::Protocol(ferry_protocol::Error::AuthenticationFailed))
        ));
        // The storage truncates the new generation's header: the move stops there.
        let header = path_in(&genuine.successor.root(), &ObjectName::Repo);
        let bytes = store.get(&header, u64::MAX).await.unwrap();
        store.delete(&header).await.unwrap();
        store.put(&header, bytes[..bytes.len() / 2].to_vec()).await.unwrap();
        assert!(check_new_header(store, &FAST_RETRY, &genuine.successor, &new.keys(), repo_id).await.is_err());
        store.delete(&header).await.unwrap();
        let missing = check_new_header(store, &FAST_RETRY, &genuine.successor, &new.keys(), repo_id).await;
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
        let v1 = root(1, first.key_id());
        commit(store, &FAST_RETRY, &v1, &prepared).await.unwrap();
        let passphrase = |text: &'static str| {
            move |header: &ferry_protocol::RepoHeader| {
                let params = header.kdf.expect("a passphrase repository");
                Ok(SyncKey::from_passphrase(text, &params)?.keys())
            }
        };
        let (found, keys) = locate(store, &FAST_RETRY, passphrase("new staple battery")).await.unwrap();
        assert_eq!((found.generation, keys.id), (2, second.key_id()));
        let (found, _) = locate(store, &FAST_RETRY, passphrase("old horse battery")).await.unwrap();
        assert_eq!(found.generation, 1);
        assert!(found.next.is_some(), "the old passphrase opens only the replaced generation");
        assert!(matches!(
            locate(store, &FAST_RETRY, passphrase("never used")).await,
            Err(SyncError::Protocol(ferry_protocol::Error::WrongKey { .. }))
        ));
    }
}
