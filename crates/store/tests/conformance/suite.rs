//! The cases, each a function over `&dyn Store`.

use std::sync::Arc;

use ferry_protocol::{BlobId, DeviceId, ObjectName, SyncKey};
use ferry_store::{ANY_SIZE, MAX_PAGE, Store, StoreError};

/// Whether the server honours `If-None-Match: *` on a PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOnce {
    /// An existing object is refused ([`StoreError::AlreadyExists`]).
    Enforced,
    /// The server ignores the condition (nginx): the trait allows it ("where the storage can
    /// tell"), and Ferry never writes one name from two devices.
    Ignored,
}

/// Runs every case against `store`, which must start empty.
pub(crate) async fn run_all(store: &(dyn Store + 'static)) {
    run_all_with(store, WriteOnce::Enforced).await;
}

/// [`run_all`], for a server that may not enforce write-once puts.
pub(crate) async fn run_all_with(store: &(dyn Store + 'static), write_once: WriteOnce) {
    put_get_overwrite_delete(store).await;
    deleting_many_at_once(store).await;
    if write_once == WriteOnce::Enforced {
        write_once_objects_are_never_replaced(store).await;
    }
    missing_objects(store).await;
    reads_are_bounded(store).await;
    every_name_form_round_trips(store).await;
    empty_and_large_objects(store).await;
    listing_with_prefix_and_start_after(store).await;
    listing_pages_through_many_objects(store).await;
    probe_finds_every_permission(store, write_once).await;
}

/// Runs the case that needs to share the store between tasks.
pub(crate) async fn run_concurrent(store: Arc<dyn Store>) {
    concurrent_puts(store).await;
}

async fn put_get_overwrite_delete(store: &dyn Store) {
    let name = "ferry/v1/case1/object";
    store.put(name, b"first".to_vec()).await.unwrap();
    assert_eq!(store.get(name, ANY_SIZE).await.unwrap(), b"first");
    store.put(name, b"second, longer".to_vec()).await.unwrap();
    assert_eq!(store.get(name, ANY_SIZE).await.unwrap(), b"second, longer");
    store.put(name, b"3".to_vec()).await.unwrap();
    assert_eq!(
        store.get(name, ANY_SIZE).await.unwrap(),
        b"3",
        "a shorter overwrite leaves no tail"
    );
    store.delete(name).await.unwrap();
    assert!(matches!(
        store.get(name, ANY_SIZE).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn deleting_many_at_once(store: &dyn Store) {
    let names: Vec<String> = (0..5).map(|n| format!("ferry/v1/batch/{n}")).collect();
    for name in &names {
        store.put(name, name.as_bytes().to_vec()).await.unwrap();
    }
    // Three of them, and one that never existed.
    let doomed = vec![
        names[0].clone(),
        names[2].clone(),
        names[4].clone(),
        "ferry/v1/batch/never".to_owned(),
    ];
    store.delete_many(&doomed).await.unwrap();
    let left: Vec<String> = store
        .list("ferry/v1/batch/", None, MAX_PAGE)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|object| object.name)
        .collect();
    assert_eq!(left, [names[1].clone(), names[3].clone()]);
    store.delete_many(&[]).await.unwrap();
    store.delete_many(&left).await.unwrap();
    let page = store.list("ferry/v1/batch/", None, MAX_PAGE).await.unwrap();
    assert!(page.objects.is_empty(), "{:?}", page.objects);
}

async fn write_once_objects_are_never_replaced(store: &dyn Store) {
    let name = "ferry/v1/case2/once";
    store.put_new(name, b"original".to_vec()).await.unwrap();
    let err = store.put_new(name, b"intruder".to_vec()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(store.get(name, ANY_SIZE).await.unwrap(), b"original");
    store.delete(name).await.unwrap();
}

async fn missing_objects(store: &dyn Store) {
    let err = store
        .get("ferry/v1/case3/none", ANY_SIZE)
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::NotFound { name } if name == "ferry/v1/case3/none"));
    assert!(!err.is_transient());
    store.delete("ferry/v1/case3/none").await.unwrap();
    let page = store.list("ferry/v1/case3/", None, 10).await.unwrap();
    assert!(page.objects.is_empty() && page.next.is_none());
}

async fn every_name_form_round_trips(store: &dyn Store) {
    let keys = SyncKey::from_bytes([9; 32]).keys();
    let device = keys.names.device_tag(&DeviceId([0xfe; 16]));
    let names: Vec<String> = [
        ObjectName::Repo,
        ObjectName::Log { device, seq: 0 },
        ObjectName::Log {
            device,
            seq: u64::MAX,
        },
        ObjectName::Head {
            device,
            seq: 0xabcdef,
        },
        ObjectName::Snap { device, seq: 1 },
        ObjectName::Blob {
            blob: BlobId([0x5a; 32]),
            chunk: u32::MAX,
        },
    ]
    .iter()
    .map(|n| format!("{}{n}", ferry_protocol::names::ROOT))
    .collect();
    for (i, name) in names.iter().enumerate() {
        store.put_new(name, vec![i as u8; i + 1]).await.unwrap();
    }
    let page = store.list("ferry/v1/", None, MAX_PAGE).await.unwrap();
    let mut listed: Vec<_> = page.objects.iter().map(|o| o.name.clone()).collect();
    listed.retain(|n| names.contains(n));
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            store.get(name, ANY_SIZE).await.unwrap(),
            vec![i as u8; i + 1],
            "{name}"
        );
        let meta = page.objects.iter().find(|o| &o.name == name).unwrap();
        assert_eq!(meta.size, i as u64 + 1);
        store.delete(name).await.unwrap();
    }
}

/// A read refuses an object larger than its limit, without returning any of it.
async fn reads_are_bounded(store: &dyn Store) {
    let name = "ferry/v1/case-bounded/object";
    store.put_new(name, vec![7; 1000]).await.unwrap();
    assert_eq!(store.get(name, 1000).await.unwrap(), vec![7; 1000]);
    let refused = store.get(name, 999).await.unwrap_err();
    assert_eq!(
        refused,
        StoreError::TooLarge {
            name: name.into(),
            size: 1000,
            limit: 999
        }
    );
    assert!(refused.is_bad_object() && !refused.is_transient());
    store.delete(name).await.unwrap();
}

async fn empty_and_large_objects(store: &dyn Store) {
    store
        .put_new("ferry/v1/case5/empty", Vec::new())
        .await
        .unwrap();
    assert_eq!(
        store.get("ferry/v1/case5/empty", ANY_SIZE).await.unwrap(),
        b""
    );
    let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    store
        .put_new("ferry/v1/case5/big", big.clone())
        .await
        .unwrap();
    assert!(store.get("ferry/v1/case5/big", ANY_SIZE).await.unwrap() == big);
    let page = store.list("ferry/v1/case5/", None, 10).await.unwrap();
    let sizes: Vec<_> = page
        .objects
        .iter()
        .map(|o| (o.name.as_str(), o.size))
        .collect();
    assert_eq!(
        sizes,
        [
            ("ferry/v1/case5/big", 16 * 1024 * 1024),
            ("ferry/v1/case5/empty", 0)
        ]
    );
    store.delete("ferry/v1/case5/big").await.unwrap();
    store.delete("ferry/v1/case5/empty").await.unwrap();
}

async fn listing_with_prefix_and_start_after(store: &dyn Store) {
    for name in ["a/1", "a/2", "a/3", "ab/1", "b/1"] {
        store
            .put_new(&format!("ferry/v1/case7/{name}"), b"x".to_vec())
            .await
            .unwrap();
    }
    let names = |page: ferry_store::ListPage| -> Vec<String> {
        page.objects.into_iter().map(|o| o.name).collect()
    };
    let all = names(store.list("ferry/v1/case7/", None, 100).await.unwrap());
    assert_eq!(
        all,
        ["a/1", "a/2", "a/3", "ab/1", "b/1"].map(|n| format!("ferry/v1/case7/{n}"))
    );
    let a = names(store.list("ferry/v1/case7/a/", None, 100).await.unwrap());
    assert_eq!(
        a,
        ["a/1", "a/2", "a/3"].map(|n| format!("ferry/v1/case7/{n}"))
    );
    let partial = names(store.list("ferry/v1/case7/a", None, 100).await.unwrap());
    assert_eq!(partial.len(), 4, "a prefix need not end at a folder");
    let after = names(
        store
            .list("ferry/v1/case7/", Some("ferry/v1/case7/a/2"), 100)
            .await
            .unwrap(),
    );
    assert_eq!(
        after,
        ["a/3", "ab/1", "b/1"].map(|n| format!("ferry/v1/case7/{n}"))
    );
    for name in all {
        store.delete(&name).await.unwrap();
    }
}

async fn listing_pages_through_many_objects(store: &dyn Store) {
    let count = 1500;
    for i in 0..count {
        store
            .put_new(&format!("ferry/v1/case8/{i:05}"), vec![1])
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list("ferry/v1/case8/", after.as_deref(), MAX_PAGE)
            .await
            .unwrap();
        pages += 1;
        assert!(page.objects.len() <= MAX_PAGE);
        seen.extend(page.objects.into_iter().map(|o| o.name));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(pages >= 2, "1500 objects take more than one page");
    let expected: Vec<_> = (0..count)
        .map(|i| format!("ferry/v1/case8/{i:05}"))
        .collect();
    assert_eq!(seen, expected);
    // A small page size is honoured too.
    let page = store.list("ferry/v1/case8/", None, 7).await.unwrap();
    assert_eq!(page.objects.len(), 7);
    assert_eq!(page.next.as_deref(), Some("ferry/v1/case8/00006"));
    for name in expected {
        store.delete(&name).await.unwrap();
    }
}

/// The probe finds every permission, and whether the server refuses a write-once put over an
/// existing object (what `ferry doctor` warns about when it does not).
async fn probe_finds_every_permission(store: &dyn Store, write_once: WriteOnce) {
    let report = store.probe().await;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(
        report.write_once,
        Some(write_once == WriteOnce::Enforced),
        "{report:?}"
    );
    let leftovers = store.list("ferry/probe/", None, 10).await.unwrap();
    assert!(
        leftovers.objects.is_empty(),
        "the probe cleans up after itself"
    );
}

async fn concurrent_puts(store: Arc<dyn Store>) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let store = store.clone();
        tasks.spawn(async move {
            let name = format!("ferry/v1/case9/{i:03}");
            store
                .put_new(&name, i.to_be_bytes().repeat(1000))
                .await
                .unwrap();
            name
        });
    }
    let mut names = Vec::new();
    while let Some(name) = tasks.join_next().await {
        names.push(name.unwrap());
    }
    let page = store.list("ferry/v1/case9/", None, 100).await.unwrap();
    assert_eq!(page.objects.len(), 64);
    for (i, meta) in page.objects.iter().enumerate() {
        assert_eq!(meta.size, 4000);
        let bytes = store.get(&meta.name, ANY_SIZE).await.unwrap();
        assert_eq!(bytes, (i as u32).to_be_bytes().repeat(1000));
    }
    for name in names {
        store.delete(&name).await.unwrap();
    }
}
