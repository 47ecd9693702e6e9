//! Snapshots and compaction: a device that writes enough compacts its own log, and devices that
//! were offline or are new start from the snapshots and the tail.

mod common;

use std::sync::Arc;

use common::{
    Device, Instrumented, assert_converged, config, init, keys, names_under, per_backend, storage,
    sync_all,
};
use ferry_store::Store;
use ferry_sync::transfer::{Kind, Route};

fn compacting() -> ferry_sync::EngineConfig {
    let mut config = config();
    config.snapshot_every = 10;
    config.max_segment_ops = 4;
    config
}

per_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_offline_device_catches_up_from_snapshots_after_others_compacted(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut a = Device::open_with(Arc::clone(&storage.store), compacting()).await;
        let mut b = Device::open_with(Arc::clone(&storage.store), compacting()).await;
        let mut offline = Device::open_with(Arc::clone(&storage.store), compacting()).await;
        a.copy("before the outage");
        a.engine.sync().await.unwrap();
        offline.engine.sync().await.unwrap();
        assert_eq!(offline.texts(), ["before the outage"]);

        for n in 0..25 {
            a.copy(&format!("a {n}"));
            b.copy(&format!("b {n}"));
            if n % 3 == 0 {
                a.engine.sync().await.unwrap();
                b.engine.sync().await.unwrap();
            }
        }
        a.engine.sync().await.unwrap();
        b.engine.sync().await.unwrap();

        // Compaction left each writer's newest snapshot and few segments.
        let a_tag = keys().names.device_tag(&a.engine.device());
        let snaps = names_under(store, &format!("snap/{a_tag}/")).await;
        assert_eq!(snaps.len(), 1, "{backend:?}: {snaps:?}");
        let a_logs = names_under(store, &format!("log/{a_tag}/")).await;
        let a_seq = a.engine.status().unwrap().last_seq;
        assert!(
            (a_logs.len() as u64) < a_seq,
            "{backend:?}: {} segments stored of {a_seq}",
            a_logs.len()
        );

        offline.engine.sync().await.unwrap();
        let mut devices = vec![a, b, offline];
        sync_all(&mut devices).await;
        assert_converged(&devices);
        assert_eq!(devices[2].texts().len(), 51, "{backend:?}");
        let transfers = devices[2].engine.transfers(1000).unwrap();
        assert!(
            transfers
                .iter()
                .any(|t| t.kind == Kind::Snapshot && t.direction == Route::Down),
            "{backend:?}: caught up without a snapshot?"
        );
        assert!(devices[2].engine.status().unwrap().quarantined.is_empty());
    }
}

per_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_device_starts_from_snapshots_and_the_tail_in_few_requests(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let mut writers = Vec::new();
        for _ in 0..3 {
            writers.push(Device::open_with(Arc::clone(&storage.store), compacting()).await);
        }
        for n in 0..40 {
            for (d, writer) in writers.iter_mut().enumerate() {
                writer.copy(&format!("{d}: {n}"));
            }
            if n % 7 == 0 {
                sync_all(&mut writers).await;
            }
        }
        sync_all(&mut writers).await;
        // A tail after the last snapshots.
        writers[0].copy("tail");
        writers[0].engine.upload().await.unwrap();

        let counted = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
        let store: Arc<dyn Store> = counted.clone();
        let mut fresh = Device::open(store).await;
        counted.counts.take();
        fresh.engine.fetch().await.unwrap();
        let [put, get, list, delete] = counted.counts.take();
        assert_eq!((put, delete), (0, 0));
        assert!(
            get + list <= 12,
            "{backend:?}: cold start took {get} GETs and {list} LISTs"
        );
        assert_eq!(fresh.texts().len(), 121, "{backend:?}");
        let transfers = fresh.engine.transfers(100).unwrap();
        assert!(
            transfers.iter().any(|t| t.kind == Kind::Snapshot),
            "{backend:?}"
        );
        // Its first upload registers it in the roster, and the others take that in.
        fresh.engine.upload().await.unwrap();
        writers.push(fresh);
        let last = writers.len() - 1;
        writers[0].engine.fetch().await.unwrap();
        writers[1].engine.fetch().await.unwrap();
        writers[2].engine.fetch().await.unwrap();
        assert!(writers[last].engine.state().encode() == writers[0].engine.state().encode());
    }
}
