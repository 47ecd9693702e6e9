//! Relay hints as a device takes them: believed only when the device they speak for signed
//! them, and a claim far beyond what the storage lists said once, never kept as an alarm.

mod common;

use std::sync::Arc;

use common::{Backend, Counts, Device, Instrumented, Storage, config, init, keys, storage};
use ferry_protocol::names::ROOT;
use ferry_protocol::{DeviceId, Identity, ObjectName, RelayHint, TopicId};
use ferry_sync::{EngineConfig, Heard};

/// `hint` signed by `identity` and sealed as the relay carries it, then opened again.
fn heard(reader: &Device, hint: RelayHint, identity: &Identity) -> Heard {
    let keys = keys();
    let topic = TopicId([4; 32]);
    let sealed = keys.relay.seal_hint(&topic, &hint, identity).unwrap();
    let claimed = keys.relay.open_hint(&topic, sealed.as_bytes()).unwrap();
    reader.engine.heard(&claimed)
}

/// How many transfer log lines of `device` have a detail that `what` picks.
fn logged(device: &Device, what: &dyn Fn(&str) -> bool) -> usize {
    (device.engine.transfers(50).unwrap().iter())
        .filter(|t| t.detail.as_deref().is_some_and(what))
        .count()
}

#[tokio::test]
async fn a_hint_counts_only_when_the_device_it_names_signed_it() {
    let storage = storage(Backend::Folder).await;
    init(&*storage.store).await;
    let mut laptop = Device::open(Arc::clone(&storage.store)).await;
    laptop.upload_clips(1..=2).await;
    let mut desk = Device::open(Arc::clone(&storage.store)).await;
    desk.engine.fetch().await.unwrap();
    let tag = keys().names.device_tag(&laptop.engine.device());

    // The laptop's own word is believed.
    let real = RelayHint {
        device: tag,
        seq: 3,
    };
    assert_eq!(heard(&desk, real, &laptop.identity()), Heard::Member(real));
    // Someone holding the sync key claims the laptop's segment 999999: not the laptop's key.
    let thief = Identity::generate().unwrap();
    let forged = RelayHint {
        device: tag,
        seq: 999_999,
    };
    assert_eq!(
        heard(&desk, forged, &thief),
        Heard::Forged(laptop.engine.device())
    );
    // A hint in the desk's own name is nothing to the desk, whoever signed it; one in the
    // name of a device nobody knows is not believed.
    let desk_tag = keys().names.device_tag(&desk.engine.device());
    let as_desk = RelayHint {
        device: desk_tag,
        seq: 50,
    };
    assert_eq!(heard(&desk, as_desk, &laptop.identity()), Heard::Own);
    let nobody = RelayHint {
        device: keys().names.device_tag(&DeviceId([9; 16])),
        seq: 7,
    };
    assert_eq!(heard(&desk, nobody, &thief), Heard::Stranger(nobody));
    // A roll call is a hint too: in a known device's name, only with its signature.
    let roll_call = RelayHint::roll_call(tag);
    assert!(matches!(heard(&desk, roll_call, &thief), Heard::Forged(_)));

    // What was refused left nothing behind: no device is reported behind.
    desk.engine.fetch().await.unwrap();
    assert!(desk.engine.behind().unwrap().is_empty());
}

/// Two devices on `storage`: the laptop with `segments` uploaded, and the desk (its requests
/// counted) that has them all, taking claims past `far_claim` segments as false.
async fn laptop_and_desk(
    storage: &Storage,
    segments: u32,
    far_claim: u64,
) -> (Device, Device, Arc<Counts>) {
    init(&*storage.store).await;
    let mut laptop = Device::open(Arc::clone(&storage.store)).await;
    laptop.upload_clips(1..=segments).await;
    let counted = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
    let counts = Arc::clone(&counted.counts);
    let desk_config = EngineConfig {
        far_claim,
        ..config()
    };
    let mut desk = Device::open_with(counted, desk_config).await;
    desk.engine.fetch().await.unwrap();
    (laptop, desk, counts)
}

#[tokio::test]
async fn a_claim_far_beyond_the_storage_is_said_once_and_not_kept() {
    let storage = storage(Backend::Folder).await;
    let (mut laptop, mut desk, counts) = laptop_and_desk(&storage, 2, 4).await;
    let tag = keys().names.device_tag(&laptop.engine.device());
    let far = |desk: &Device| {
        logged(desk, &|d: &str| {
            d.contains("far beyond seq 2") && d.contains("it is not kept")
        })
    };

    // Signed with the laptop's own key (a lost laptop, say): believed as its word, checked
    // against the storage's listing rather than fetched, said once, and not kept; once said,
    // the laptop's far claims cost no more polls.
    for seq in [7, 999_999, 1_000_000] {
        let claim = RelayHint { device: tag, seq };
        assert_eq!(
            heard(&desk, claim, &laptop.identity()),
            Heard::Member(claim)
        );
        counts.take();
        let report = desk.engine.fetch_hint(claim).await.unwrap();
        assert_eq!(report.segments, 0);
        let requests: u64 = counts.take().iter().sum();
        match seq {
            7 => assert!(requests > 0, "the first is checked with a poll"),
            _ => assert_eq!(requests, 0, "no poll for a device said false"),
        }
        assert!(desk.engine.behind().unwrap().is_empty());
    }
    assert_eq!(far(&desk), 1);
    let said = desk.engine.far_claims();
    assert_eq!((said.len(), said[0].announced, said[0].applied), (1, 7, 2));
    desk.engine.fetch().await.unwrap();
    assert_eq!(far(&desk), 1);
    assert!(desk.engine.behind().unwrap().is_empty());

    // A claim within reach of the listing stands until the storage serves it, as before.
    let near = RelayHint {
        device: tag,
        seq: 6,
    };
    desk.engine.fetch_hint(near).await.unwrap();
    desk.engine.fetch().await.unwrap();
    let behind = desk.engine.behind().unwrap();
    assert_eq!(behind.len(), 1, "{behind:?}");
    assert_eq!((behind[0].announced, behind[0].applied), (6, 2));

    // The laptop's real next segment still arrives on its hint.
    laptop.upload_clips(3..=3).await;
    let next = RelayHint {
        device: tag,
        seq: 3,
    };
    let report = desk.engine.fetch_hint(next).await.unwrap();
    assert_eq!(report.segments, 1);
    assert_eq!(desk.texts().len(), 3);
}

#[tokio::test]
async fn a_device_the_storage_leaves_out_of_its_listing_stays_behind() {
    let storage = storage(Backend::Folder).await;
    // More segments than a far claim: measured from the listing alone (which says 0), the
    // laptop's next one would look far, and the alarm would be let go.
    let (mut laptop, mut desk, _) = laptop_and_desk(&storage, 6, 4).await;
    let tag = keys().names.device_tag(&laptop.engine.device());
    laptop.upload_clips(7..=7).await;
    // The storage withholds the new segment and leaves the laptop out of `head/`.
    let store = &*storage.store;
    let log_7 = ObjectName::Log {
        device: tag,
        seq: 7,
    };
    store.delete(&format!("{ROOT}{log_7}")).await.unwrap();
    for name in common::names_under(store, &format!("head/{tag}/")).await {
        store.delete(&name).await.unwrap();
    }

    let claim = RelayHint {
        device: tag,
        seq: 7,
    };
    assert_eq!(
        heard(&desk, claim, &laptop.identity()),
        Heard::Member(claim)
    );
    desk.engine.fetch_hint(claim).await.unwrap();
    desk.engine.fetch().await.unwrap();
    let behind = desk.engine.behind().unwrap();
    assert_eq!(behind.len(), 1, "{behind:?}");
    assert_eq!((behind[0].announced, behind[0].applied), (7, 6));
    assert_eq!(
        logged(&desk, &|d: &str| d.contains("lists")
            && d.contains("announced seq 7")),
        1
    );
    assert!(desk.engine.far_claims().is_empty());
}
