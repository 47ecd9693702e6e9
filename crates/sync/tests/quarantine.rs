//! A fault is never forever: a quarantined object is tried again (after a delay, at once when
//! its device moves on, or when asked), an operation from a newer Ferry waits for an upgrade
//! and then applies, one device that cannot be read does not stop the others, and a segment the
//! storage lost is put back by its writer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Device, Instrumented, config, init, keys, per_backend, plant, raw, storage};
use ferry_core::Action;
use ferry_protocol::ObjectName;
use ferry_protocol::names::ROOT;
use ferry_sync::{EngineConfig, Retry};

/// Tries a quarantined object again on every fetch.
fn retry_at_once() -> EngineConfig {
    EngineConfig {
        quarantine_retry: Duration::ZERO,
        ..config()
    }
}

per_backend! {
    #[tokio::test]
    async fn a_flipped_bit_served_right_again_is_recovered_by_itself(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        writer.upload_clips(1..=3).await;
        let tag = keys().names.device_tag(&writer.engine.device());
        let second = ObjectName::Log { device: tag, seq: 2 };
        let original = raw(store, &second).await;
        let mut flipped = original.clone();
        flipped[60] ^= 0x10;
        plant(store, &second, flipped).await;

        let mut reader = Device::open_with(Arc::clone(&storage.store), retry_at_once()).await;
        assert_eq!(reader.engine.fetch().await.unwrap().quarantined, 1);
        assert_eq!(reader.texts(), ["clip 1"]);
        // Still broken: tried again, set aside again, with one more attempt counted.
        assert_eq!(reader.engine.fetch().await.unwrap().quarantined, 1);
        let status = reader.engine.status().unwrap();
        assert_eq!(status.quarantined.len(), 1);
        assert_eq!(status.quarantined[0].attempts, 2);

        plant(store, &second, original).await;
        let report = reader.engine.fetch().await.unwrap();
        assert_eq!((report.quarantined, report.segments), (0, 2));
        assert_eq!(reader.texts(), ["clip 1", "clip 2", "clip 3"]);
        assert!(reader.engine.status().unwrap().quarantined.is_empty());
    }
}

per_backend! {
    #[tokio::test]
    async fn a_quarantined_segment_waits_its_turn_unless_its_device_moves_on(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let counted = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        writer.copy("clip 1");
        writer.engine.upload().await.unwrap();
        let tag = keys().names.device_tag(&writer.engine.device());
        let first = ObjectName::Log { device: tag, seq: 1 };
        let original = raw(store, &first).await;
        plant(store, &first, original[..original.len() - 1].to_vec()).await;

        // The default: the first retry is a minute away.
        let mut reader = Device::open(counted.clone()).await;
        assert_eq!(reader.engine.fetch().await.unwrap().quarantined, 1);
        let status = reader.engine.status().unwrap();
        let Retry::At(next) = status.quarantined[0].retry else {
            panic!("a damaged object is retried at a time");
        };
        assert!(next > std::time::SystemTime::now() + Duration::from_secs(30));

        // Restored, but not due: an idle poll costs one LIST and reads nothing.
        plant(store, &first, original).await;
        counted.counts.take();
        reader.engine.fetch().await.unwrap();
        assert_eq!(counted.counts.take(), [0, 0, 1, 0]);
        assert!(reader.texts().is_empty());

        // The writer moves on (it may have stored the object again): tried at once.
        writer.copy("clip 2");
        writer.engine.upload().await.unwrap();
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["clip 1", "clip 2"]);
        assert!(reader.engine.status().unwrap().quarantined.is_empty());

        // And when asked, at once too.
        let third = ObjectName::Log { device: tag, seq: 3 };
        writer.copy("clip 3");
        writer.engine.upload().await.unwrap();
        let good = raw(store, &third).await;
        plant(store, &third, b"FRY".to_vec()).await;
        assert_eq!(reader.engine.fetch().await.unwrap().quarantined, 1);
        plant(store, &third, good).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts().len(), 2, "not due yet");
        assert_eq!(reader.engine.retry_quarantined().unwrap(), 1);
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["clip 1", "clip 2", "clip 3"]);
    }
}

per_backend! {
    #[tokio::test]
    async fn an_operation_from_a_newer_ferry_is_kept_and_applied_after_an_upgrade(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        // Registering in the roster is the newest kind of operation: a build from before it
        // cannot read a device's first segment, which carries its registration.
        let mut newer = Device::open(Arc::clone(&storage.store)).await;
        newer.copy("before");
        newer.engine.upload().await.unwrap();
        newer.copy("after");
        newer.engine.upload().await.unwrap();

        let older = EngineConfig {
            known_actions: Action::KINDS - 1,
            ..config()
        };
        let mut reader = Device::open_with(Arc::clone(&storage.store), older.clone()).await;
        let report = reader.engine.fetch().await.unwrap();
        assert_eq!(report.quarantined, 1);
        assert!(reader.texts().is_empty(), "the stream waits for its first segment");
        let status = reader.engine.status().unwrap();
        let kept = &status.quarantined[0];
        assert_eq!(kept.retry, Retry::AfterUpgrade { ops: 1 });
        assert!(kept.reason.contains("upgrade Ferry"), "{}", kept.reason);

        // The storage loses it; the reader kept it. The same build, opened again, still waits.
        let tag = keys().names.device_tag(&newer.engine.device());
        store
            .delete(&format!("{ROOT}{}", ObjectName::Log { device: tag, seq: 1 }))
            .await
            .unwrap();
        let mut reader = reader.reopen_with(Arc::clone(&storage.store), older).await;
        assert_eq!(reader.engine.fetch().await.unwrap().quarantined, 0);
        assert_eq!(reader.engine.retry_quarantined().unwrap(), 0);
        assert!(reader.texts().is_empty());

        // Upgraded: the kept segment applies, then the rest of the stream.
        let mut reader = reader.reopen(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["after", "before"]);
        let registered = reader.engine.state().device(&newer.engine.device());
        assert!(registered.is_some(), "the registration applied with the rest");
        assert!(reader.engine.status().unwrap().quarantined.is_empty());
    }
}

per_backend! {
    #[tokio::test]
    async fn a_device_that_cannot_be_read_does_not_stop_the_others(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let failing = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
        let mut writers = Vec::new();
        for n in 0..3 {
            let mut writer = Device::open(Arc::clone(&storage.store)).await;
            writer.copy(&format!("writer {n}"));
            writer.engine.upload().await.unwrap();
            writers.push(writer);
        }
        // Devices are fetched in tag order: fail the first one's segments, and the listing
        // of the second one's snapshots (read first for a device never seen).
        let mut tags: Vec<_> = writers
            .iter()
            .map(|w| keys().names.device_tag(&w.engine.device()))
            .collect();
        tags.sort();
        failing.deny(&format!("log/{}/", tags[0]));
        failing.deny(&format!("snap/{}/", tags[1]));

        let mut reader = Device::open(failing.clone()).await;
        let report = reader.engine.fetch().await.unwrap();
        let mut failed: Vec<_> = report.failed.iter().map(|f| f.tag).collect();
        failed.sort();
        assert_eq!(failed, [tags[0], tags[1]]);
        assert!(report.failed.iter().all(|f| f.error.contains("HTTP 500")), "{:?}", report.failed);
        assert_eq!(reader.texts().len(), 1, "the third device was fetched");
        let problems = reader.engine.status().unwrap().problems;
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.resolved.is_none()), "{problems:?}");

        failing.allow_all();
        let report = reader.engine.fetch().await.unwrap();
        assert!(report.failed.is_empty());
        // Each device read again: its problem is resolved, and kept with its time.
        let problems = reader.engine.status().unwrap().problems;
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.resolved.is_some()), "{problems:?}");
        assert_eq!(reader.texts(), ["writer 0", "writer 1", "writer 2"]);
    }
}

per_backend! {
    #[tokio::test]
    async fn a_segment_the_storage_lost_is_put_back_by_its_writer(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        writer.upload_clips(1..=3).await;
        let tag = keys().names.device_tag(&writer.engine.device());
        let log = |seq| ObjectName::Log { device: tag, seq };
        let head = ObjectName::Head { device: tag, seq: 3 };
        let second = raw(store, &log(2)).await;
        let (third, third_head) = (raw(store, &log(3)).await, raw(store, &head).await);

        // Segment 2 lost, the head still there: readers stall behind it.
        let delete = |name: ObjectName| async move {
            store.delete(&format!("{ROOT}{name}")).await.unwrap();
        };
        delete(log(2)).await;
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["clip 1"]);

        // The writer's periodic check (made due here) puts the very same bytes back.
        let due = EngineConfig {
            check_own_every: Duration::ZERO,
            ..config()
        };
        let mut writer = writer.reopen_with(Arc::clone(&storage.store), due).await;
        writer.engine.fetch().await.unwrap();
        assert_eq!(raw(store, &log(2)).await, second);
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["clip 1", "clip 2", "clip 3"]);

        // The newest segment and its head lost: seen in the very next poll's head listing,
        // whatever the period of the check.
        let mut writer = writer.reopen(Arc::clone(&storage.store)).await;
        delete(log(3)).await;
        delete(head).await;
        writer.engine.fetch().await.unwrap();
        assert_eq!(raw(store, &log(3)).await, third);
        assert_eq!(raw(store, &head).await, third_head);
        let put_back = writer
            .engine
            .transfers(10)
            .unwrap()
            .into_iter()
            .filter(|t| t.detail.as_deref().is_some_and(|d| d.contains("had lost it")))
            .count();
        assert_eq!(put_back, 3, "segment 2, then segment 3 and its head");
    }
}

per_backend! {
    #[tokio::test]
    async fn a_middle_segment_the_storage_lost_is_put_back_with_the_next_upload(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        writer.upload_clips(1..=3).await;
        let tag = keys().names.device_tag(&writer.engine.device());
        let second = ObjectName::Log { device: tag, seq: 2 };
        let bytes = raw(store, &second).await;
        store.delete(&format!("{ROOT}{second}")).await.unwrap();
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["clip 1"]);

        // The writer's next upload, a minute after its last check (made so here), puts segment
        // 2 back: the hourly check is not waited for.
        let minute_later = EngineConfig {
            check_own_on_upload_every: Duration::ZERO,
            ..config()
        };
        let mut writer = writer.reopen_with(Arc::clone(&storage.store), minute_later).await;
        writer.copy("clip 4");
        writer.engine.upload().await.unwrap();
        assert_eq!(raw(store, &second).await, bytes);
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["clip 1", "clip 2", "clip 3", "clip 4"]);
    }
}

per_backend! {
    #[tokio::test]
    async fn a_quarantined_segment_a_snapshot_covers_leaves_the_quarantine(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let compacting = EngineConfig {
            snapshot_every: 4,
            max_segment_ops: 1,
            ..config()
        };
        let mut writer = Device::open_with(Arc::clone(&storage.store), compacting).await;
        writer.upload_clips(1..=2).await;
        let tag = keys().names.device_tag(&writer.engine.device());
        let second = ObjectName::Log { device: tag, seq: 2 };
        let mut flipped = raw(store, &second).await;
        flipped[50] ^= 1;
        plant(store, &second, flipped).await;
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        assert_eq!(reader.engine.fetch().await.unwrap().quarantined, 1);

        // The writer goes on and compacts: its snapshot covers segment 2, which is deleted.
        for n in 3..=5 {
            writer.copy(&format!("clip {n}"));
            writer.engine.upload().await.unwrap();
        }
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts().len(), 5);
        assert!(reader.engine.status().unwrap().quarantined.is_empty());
    }
}

per_backend! {
    #[tokio::test]
    async fn a_device_that_only_sends_puts_back_what_storage_lost_too(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let sender = EngineConfig {
            direction: ferry_sync::Direction::SendOnly,
            check_own_every: Duration::ZERO,
            ..config()
        };
        let mut writer = Device::open_with(Arc::clone(&storage.store), sender).await;
        writer.upload_clips(1..=2).await;
        let tag = keys().names.device_tag(&writer.engine.device());
        let first = ObjectName::Log { device: tag, seq: 1 };
        let bytes = raw(store, &first).await;
        store.delete(&format!("{ROOT}{first}")).await.unwrap();
        writer.engine.fetch().await.unwrap();
        assert_eq!(raw(store, &first).await, bytes);
    }
}

/// A store whose every listing comes back empty, though it serves what it holds (as a WebDAV
/// server does when it spells the folder's path another way than the URL).
#[derive(Debug)]
struct HidingListings(Arc<dyn ferry_store::Store>);

#[async_trait::async_trait]
impl ferry_store::Store for HidingListings {
    async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), ferry_store::StoreError> {
        self.0.put_new(name, bytes).await
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), ferry_store::StoreError> {
        self.0.put(name, bytes).await
    }

    async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, ferry_store::StoreError> {
        self.0.get(name, limit).await
    }

    async fn list(
        &self,
        _prefix: &str,
        _start_after: Option<&str>,
        _limit: usize,
    ) -> Result<ferry_store::ListPage, ferry_store::StoreError> {
        Ok(ferry_store::ListPage {
            objects: Vec::new(),
            next: None,
        })
    }

    async fn delete(&self, name: &str) -> Result<(), ferry_store::StoreError> {
        self.0.delete(name).await
    }
}

per_backend! {
    #[tokio::test]
    async fn a_storage_whose_listings_hide_what_it_holds_is_an_error_not_a_reason_to_upload_again(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let hiding: Arc<dyn ferry_store::Store> = Arc::new(HidingListings(Arc::clone(&storage.store)));
        let mut writer = Device::open(Arc::clone(&hiding)).await;
        writer.upload_clips(1..=3).await;
        let error = writer.engine.fetch().await.map(|_| ()).err();
        let problems = writer.engine.status().unwrap().problems;
        let said = format!("{error:?} {problems:?}");
        assert!(said.contains("its listing shows none of this device's objects"), "{backend:?}: {said}");
        let put_back = writer
            .engine
            .transfers(50)
            .unwrap()
            .into_iter()
            .filter(|t| t.detail.as_deref().is_some_and(|d| d.contains("had lost it")))
            .count();
        assert_eq!(put_back, 0, "{backend:?}: nothing is uploaded again");
        // The probe says so too, before anything is written.
        let report = hiding.probe().await;
        let list = report.list.unwrap_err().to_string();
        assert!(list.contains("the listing does not show ferry/probe/"), "{list}");
    }
}
