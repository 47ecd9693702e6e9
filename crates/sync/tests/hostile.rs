//! Storage that fails or lies: requests failing at random, objects flipped, truncated, swapped,
//! sealed with another key or replayed. Each is quarantined with its reason, or retried, and
//! nothing already applied is lost.

mod common;

use std::sync::Arc;

use common::{
    Backend, Device, Instrumented, assert_converged, config, engine_at, init, keys, other_keys,
    per_backend, plant, raw, storage,
};
use ferry_protocol::names::ROOT;
use ferry_protocol::{DeviceId, ObjectName, RawOp, Segment};
use ferry_store::Store;
use ferry_sync::SyncError;
use ferry_sync::transfer::Outcome;

per_backend! {
    #[tokio::test]
    async fn storage_failing_30_percent_of_requests_still_converges(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        // One in three requests fails, before or after reaching the server.
        let flaky: Arc<dyn Store> = Arc::new(Instrumented::new(Arc::clone(&storage.store), 3));
        let mut devices = Vec::new();
        for _ in 0..3 {
            devices.push(Device::open(Arc::clone(&storage.store)).await);
        }
        for device in &mut devices {
            let Device { engine, home } =
                std::mem::replace(device, Device::open(Arc::clone(&storage.store)).await);
            drop(engine);
            let engine = engine_at(Arc::clone(&flaky), &home.path().join("ferry.db"), config())
.await
            .unwrap();
            *device = Device { engine, home };
        }
        let mut failures = 0;
        for round in 0..30 {
            for (d, device) in devices.iter_mut().enumerate() {
                device.copy(&format!("round {round} device {d}"));
                if device.engine.sync().await.is_err() {
                    failures += 1;
                }
            }
        }
        // Keep syncing until every device has everything: failures only delay.
        let mut rounds = 0;
        loop {
            for device in devices.iter_mut() {
                let _ = device.engine.sync().await;
            }
            rounds += 1;
            let done = devices
                .iter()
                .all(|d| d.engine.status().unwrap().pending_ops == 0 && d.texts().len() == 90);
            if done {
                break;
            }
            assert!(rounds < 100, "{backend:?}: no convergence");
        }
        assert_converged(&devices);
        assert!(failures > 0, "the wrapper failed nothing");
        for device in &devices {
            assert!(device.engine.status().unwrap().quarantined.is_empty());
        }
    }
}

/// How many of the device's recent transfer log lines say `what`.
fn logged(device: &Device, what: &dyn Fn(&str) -> bool) -> usize {
    device
        .engine
        .transfers(20)
        .unwrap()
        .iter()
        .filter(|t| t.detail.as_deref().is_some_and(what))
        .count()
}

/// `segment` sealed under `name` with `keys` and signed by some device, as a writer with those
/// keys would store it.
fn sealed(keys: &ferry_protocol::Keys, name: &ObjectName, segment: Segment) -> Vec<u8> {
    let identity = ferry_protocol::Identity::generate().unwrap();
    keys.data
        .seal_signed(name, &segment, &identity)
        .unwrap()
        .into_bytes()
}

per_backend! {
    #[tokio::test]
    async fn hostile_objects_are_quarantined_and_other_devices_still_apply(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut victim = Device::open(Arc::clone(&storage.store)).await;
        let mut honest = Device::open(Arc::clone(&storage.store)).await;
        for n in 1..=6 {
            victim.copy(&format!("victim {n}"));
            victim.engine.upload().await.unwrap();
        }
        honest.copy("honest data");
        honest.engine.upload().await.unwrap();
        let tag = keys().names.device_tag(&victim.engine.device());
        let log = |seq| ObjectName::Log { device: tag, seq };

        // Segment 2: one bit flipped. (3..6 are then stuck behind it; tested separately below.)
        let mut flipped = raw(store, &log(2)).await;
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        plant(store, &log(2), flipped).await;
        // Garbage under head/ and log/ is ignored.
        store
            .put(&format!("{ROOT}head/not-a-device/xyz"), b"junk".to_vec())
            .await
            .unwrap();
        store
            .put(&format!("{ROOT}log/garbage"), b"junk".to_vec())
            .await
            .unwrap();

        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        let report = reader.engine.fetch().await.unwrap();
        assert_eq!(report.quarantined, 1);
        assert_eq!(reader.texts(), ["honest data", "victim 1"]);
        let status = reader.engine.status().unwrap();
        assert_eq!(status.quarantined.len(), 1);
        let quarantined = &status.quarantined[0];
        let (name, reason) = (&quarantined.name, &quarantined.reason);
        assert!(name.ends_with(&format!("{tag}/0000000000000002")), "{name}");
        assert!(
            reason.contains("authentic") || reason.contains("tamper"),
            "{reason}"
        );
        assert_eq!(quarantined.tag, Some(tag));
        assert_eq!(quarantined.device, Some(victim.engine.device()));
        let logged = reader.engine.transfers(20).unwrap();
        assert!(logged.iter().any(|t| t.outcome == Outcome::Quarantined));
        // A quarantined object is not fetched again on every poll, only when due.
        let again = reader.engine.fetch().await.unwrap();
        assert_eq!(again.quarantined, 0);
    }
}

per_backend! {
    #[tokio::test]
    async fn each_kind_of_broken_segment_gets_its_reason(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        writer.upload_clips(1..=3).await;
        let device = writer.engine.device();
        let tag = keys().names.device_tag(&device);
        let log = |seq| ObjectName::Log { device: tag, seq };
        let original = raw(store, &log(1)).await;
        let second = raw(store, &log(2)).await;

        let foreign = sealed(&other_keys(), &log(1), Segment {
                    device,
                    seq: 1,
                    first_op: 1,
                    ops: vec![RawOp(vec![1, 2, 3])],
                });
        let wrong_ops = sealed(&keys(), &log(1), Segment {
                    device,
                    seq: 1,
                    first_op: 1,
                    ops: vec![RawOp(vec![0xFF; 5])],
                });
        let stranger = sealed(&keys(), &log(1), Segment {
                    device: DeviceId([7; 16]),
                    seq: 1,
                    first_op: 1,
                    ops: vec![],
                });
        let misnumbered = sealed(&keys(), &log(1), Segment {
                    device,
                    seq: 5,
                    first_op: 1,
                    ops: vec![],
                });
        let from_zero = sealed(&keys(), &log(1), Segment {
                    device,
                    seq: 1,
                    first_op: 0,
                    ops: vec![],
                });
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("truncated", original[..original.len() / 2].to_vec(), "is truncated"),
            ("another seq than its name's", misnumbered, "claims seq 5, which is not its name's"),
            ("counting from 0", from_zero, "a device counts from 1"),
            ("empty", Vec::new(), "truncated (0 bytes"),
            ("swapped with segment 2", second.clone(), "moved from another name"),
            ("sealed by another key", foreign, "written with key"),
            ("undecodable operation", wrong_ops, "operation 0: operation:"),
            (
                "another device's segment under this name",
                stranger,
                "the segment's device does not match its name",
            ),
        ];
        for (what, bytes, needle) in cases {
            plant(store, &log(1), bytes).await;
            let mut reader = Device::open(Arc::clone(&storage.store)).await;
            let report = reader.engine.fetch().await.unwrap();
            assert_eq!(report.quarantined, 1, "{what}");
            assert!(reader.texts().is_empty(), "{what}: nothing applied");
            let reason = &reader.engine.status().unwrap().quarantined[0].reason;
            assert!(reason.contains(needle), "{what}: {reason}");
        }
        // Restored, the segment applies and the stream continues.
        plant(store, &log(1), original).await;
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["clip 1", "clip 2", "clip 3"]);
    }
}

per_backend! {
    #[tokio::test]
    async fn an_old_head_replayed_after_a_newer_one_changes_nothing(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        writer.copy("one");
        writer.engine.upload().await.unwrap();
        let tag = keys().names.device_tag(&writer.engine.device());
        let head_1 = raw(
            store,
            &ObjectName::Head {
                device: tag,
                seq: 1,
            },
        )
        .await;
        writer.copy("two");
        writer.engine.upload().await.unwrap();
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        reader.engine.fetch().await.unwrap();
        // The storage now serves the old head beside (or instead of) the new one.
        plant(
            store,
            &ObjectName::Head {
                device: tag,
                seq: 1,
            },
            head_1,
        )
        .await;
        store
            .delete(&format!(
                "{ROOT}{}",
                ObjectName::Head {
                    device: tag,
                    seq: 2
                }
            ))
            .await
            .unwrap();
        let report = reader.engine.fetch().await.unwrap();
        assert_eq!(report.segments, 0);
        assert_eq!(reader.texts(), ["one", "two"]);
        let status = reader.engine.status().unwrap();
        assert_eq!(status.peers[0].seq, 2);
        // The head was opened: its device signed it. Said once, in the status and the transfer
        // log; not again on the next poll.
        let said = |text: &str| {
            text.starts_with("the storage served an older state of ")
                && text.contains("(seq 1, already had 2)")
        };
        assert!(status.problems.iter().any(|p| said(&p.message)), "{:?}", status.problems);
        assert_eq!(logged(&reader, &said), 1);
        reader.engine.fetch().await.unwrap();
        assert_eq!(logged(&reader, &said), 1);

        // A lower head that its device did not write is planted, not a rollback.
        let head = |seq| ObjectName::Head { device: tag, seq };
        store.delete(&format!("{ROOT}{}", head(1))).await.unwrap();
        plant(store, &head(0), b"FRY junk".to_vec()).await;
        reader.engine.fetch().await.unwrap();
        let planted = |text: &str| text.contains("is not a head its device wrote");
        assert_eq!(logged(&reader, &planted), 1);
        assert_eq!(logged(&reader, &said), 1);
        assert_eq!(reader.texts(), ["one", "two"]);
    }
}

per_backend! {
    #[tokio::test]
    async fn a_device_whose_next_names_are_taken_keeps_uploading_and_readers_get_everything(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        let device = writer.engine.device();
        let tag = keys().names.device_tag(&device);
        let log = |seq| ObjectName::Log { device: tag, seq };
        // Junk at its first name; at its third, a segment in its name that another holder of
        // the key signed.
        plant(store, &log(1), b"not ours".to_vec()).await;
        let forged = Segment { device, seq: 3, first_op: 1, ops: vec![] };
        plant(store, &log(3), sealed(&keys(), &log(3), forged)).await;
        writer.copy("one");
        writer.engine.sync().await.unwrap();
        writer.copy("two");
        writer.engine.sync().await.unwrap();
        let status = writer.engine.status().unwrap();
        assert_eq!(status.pending_ops + status.pending_segments, 0, "everything went out");
        assert_eq!(raw(store, &log(1)).await, b"not ours", "nothing of theirs overwritten");
        let skipped: Vec<_> = writer
            .engine
            .transfers(20)
            .unwrap()
            .into_iter()
            .filter(|t| t.outcome == Outcome::Skipped)
            .filter_map(|t| t.name)
            .collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].ends_with(&format!("{tag}/0000000000000003")), "{skipped:?}");

        let (_, fetched) = reader.engine.sync().await.unwrap();
        assert_eq!(reader.texts(), ["one", "two"]);
        assert_eq!(fetched.quarantined, 2, "the junk and the forgery, each read once");
        let status = reader.engine.status().unwrap();
        assert!(status.quarantined.is_empty(), "passed: {:?}", status.quarantined);
        assert_eq!(status.peers[0].seq, 4);
        // And the stream goes on from there.
        writer.copy("three");
        writer.engine.sync().await.unwrap();
        reader.engine.sync().await.unwrap();
        assert_eq!(reader.texts(), ["one", "three", "two"]);
    }
}

per_backend! {
    #[tokio::test]
    async fn a_next_name_holding_this_devices_own_signature_stops_the_upload(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        let device = writer.engine.device();
        let name = ObjectName::Log {
            device: keys().names.device_tag(&device),
            seq: 1,
        };
        // Another installation with this device's identity wrote its first segment.
        let theirs = Segment { device, seq: 1, first_op: 1, ops: vec![] };
        let bytes = keys()
            .data
            .seal_signed(&name, &theirs, &writer.identity())
            .unwrap()
            .into_bytes();
        plant(store, &name, bytes.clone()).await;
        writer.copy("mine");
        let error = writer.engine.upload().await.unwrap_err();
        assert!(matches!(error, SyncError::Divergent { .. }), "{error}");
        assert!(error.to_string().contains("another installation"), "{error}");
        assert_eq!(raw(store, &name).await, bytes);
        let status = writer.engine.status().unwrap();
        assert_eq!(status.pending_segments, 1, "kept, not lost");
        assert!(status.problems[0].message.contains("upload failed"));
        assert_eq!(status.problems[0].resolved, None);
    }
}

per_backend! {
    #[tokio::test]
    async fn a_huge_object_or_a_fifo_is_refused_without_reading_or_hanging(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let mut writers = Vec::new();
        for n in 0..3 {
            let mut writer = Device::open(Arc::clone(&storage.store)).await;
            writer.copy(&format!("writer {n}"));
            writer.engine.upload().await.unwrap();
            writers.push(writer);
        }
        let file = |w: &Device| {
            let tag = keys().names.device_tag(&w.engine.device());
            storage
                .served
                .files()
                .join(format!("{ROOT}{}", ObjectName::Log { device: tag, seq: 1 }))
        };
        // Behind the protocol's back: a 2 GiB (sparse) file and a FIFO at segment names.
        let huge = std::fs::File::create(file(&writers[0])).unwrap();
        huge.set_len(2 << 30).unwrap();
        drop(huge);
        std::fs::remove_file(file(&writers[1])).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(file(&writers[1]))
            .status()
            .unwrap();
        assert!(made.success());

        // Short timeouts: a server stuck on the FIFO fails the request instead of hanging.
        let access = ferry_store::Access {
            timeouts: ferry_store::s3::Timeouts {
                connect: std::time::Duration::from_secs(2),
                request: std::time::Duration::from_secs(2),
            },
            ..storage.served.access.clone()
        };
        let store = ferry_store::open(&storage.served.url, access).unwrap();
        let mut reader = Device::open(store).await;
        let report = reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["writer 2"], "{backend:?}: {report:?}");
        let status = reader.engine.status().unwrap();
        let huge_reason = status
            .quarantined
            .iter()
            .find(|q| q.name.ends_with(&file(&writers[0]).file_name().unwrap().to_string_lossy().to_string()) && q.reason.contains("2147483648 bytes"));
        assert!(huge_reason.is_some(), "{backend:?}: {:?}", status.quarantined);
        // The FIFO: refused as what it is where the folder is read directly; a server that
        // tries to serve it fails or times out, and that device waits for the next pass.
        let fifo_tag = keys().names.device_tag(&writers[1].engine.device());
        let refused = status.quarantined.iter().any(|q| q.tag == Some(fifo_tag))
            || report.failed.iter().any(|f| f.tag == fifo_tag);
        assert!(refused, "{backend:?}: {report:?} {:?}", status.quarantined);
        // A server thread blocked opening the FIFO would hold the runtime's shutdown: a writer
        // that comes and goes releases it.
        let fifo = file(&writers[1]);
        std::thread::spawn(move || drop(std::fs::OpenOptions::new().write(true).open(fifo)));
        if backend == Backend::Folder {
            let fifo = status.quarantined.iter().find(|q| q.tag == Some(fifo_tag)).unwrap();
            assert!(fifo.reason.contains("is a FIFO, not a stored object"), "{}", fifo.reason);
        }
    }
}

per_backend! {
    #[tokio::test]
    async fn planted_head_names_are_looked_at_once_then_wait(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        writer.copy("real");
        writer.engine.upload().await.unwrap();
        // Well-formed names of devices that never wrote anything.
        for n in 1..=3u8 {
            let planted = ObjectName::Head {
                device: ferry_protocol::DeviceTag([n; 16]),
                seq: 9,
            };
            plant(store, &planted, b"FRY".to_vec()).await;
        }
        let counted = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
        let mut reader = Device::open(counted.clone()).await;
        counted.counts.take();
        let report = reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts(), ["real"]);
        assert_eq!(report.quarantined, 3);
        let [_, gets, lists, _] = counted.counts.take();
        // Each planted name: a GET of its first segment, and a LIST of its snapshots and one
        // of its segments (a device whose first name was taken starts at a later one).
        assert!(gets <= 4 && lists <= 8, "{gets} GETs, {lists} LISTs");
        let status = reader.engine.status().unwrap();
        assert_eq!(status.quarantined.len(), 3);
        assert!(status.quarantined[0].name.contains("/head/"), "{:?}", status.quarantined);
        assert!(status.quarantined[0].reason.contains("stray or planted"));
        assert!(status.problems.is_empty(), "{:?}", status.problems);
        // The next poll: one LIST, nothing else, nothing reported again.
        let again = reader.engine.fetch().await.unwrap();
        assert_eq!(again.quarantined, 0);
        assert_eq!(counted.counts.take(), [0, 0, 1, 0]);
    }
}

per_backend! {
    #[tokio::test]
    async fn a_junk_snapshot_name_never_hides_the_real_snapshot(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let compacting = ferry_sync::EngineConfig {
            snapshot_every: 4,
            max_segment_ops: 1,
            ..config()
        };
        let mut writer = Device::open_with(Arc::clone(&storage.store), compacting).await;
        writer.upload_clips(1..=6).await;
        let tag = keys().names.device_tag(&writer.engine.device());
        let prefix = format!("snap/{tag}/");
        let real = common::names_under(store, &prefix).await;
        assert_eq!(real.len(), 1, "{real:?}");
        let snap = |seq| ObjectName::Snap { device: tag, seq };
        // Junk newer than the real snapshot: one below the head, one far beyond it.
        plant(store, &snap(5), b"FRY junk".to_vec()).await;
        plant(store, &snap(u64::MAX >> 4), b"FRY junk".to_vec()).await;

        let mut reader = Device::open(Arc::clone(&storage.store)).await;
        let report = reader.engine.fetch().await.unwrap();
        assert_eq!(reader.texts().len(), 6, "{report:?}");
        // The junk below the head was read and set aside (the one beyond it never read), and
        // once the stream is past it, nothing waits for it any more.
        assert_eq!(report.quarantined, 1);
        let set_aside: Vec<String> = reader
            .engine
            .transfers(50)
            .unwrap()
            .into_iter()
            .filter(|t| t.outcome == Outcome::Quarantined)
            .filter_map(|t| t.name)
            .collect();
        assert_eq!(set_aside, [format!("{ROOT}{}", snap(5))]);
        assert!(reader.engine.status().unwrap().quarantined.is_empty());
    }
}

per_backend! {
    #[tokio::test]
    async fn a_storage_behind_what_a_device_announced_is_reported_until_it_catches_up(backend) {
        let storage = storage(backend).await;
        let store = &*storage.store;
        init(store).await;
        let mut writer = Device::open(Arc::clone(&storage.store)).await;
        let tag = keys().names.device_tag(&writer.engine.device());
        let head = |seq| ObjectName::Head { device: tag, seq };
        writer.upload_clips(1..=2).await;
        let head_2 = raw(store, &head(2)).await;
        writer.upload_clips(3..=3).await;
        // The storage serves the state before the third clip to a device joining now.
        store.delete(&format!("{ROOT}{}", head(3))).await.unwrap();
        let log_3 = ObjectName::Log { device: tag, seq: 3 };
        store.delete(&format!("{ROOT}{log_3}")).await.unwrap();
        plant(store, &head(2), head_2).await;
        let mut joining = Device::open(Arc::clone(&storage.store)).await;
        joining.engine.fetch().await.unwrap();
        assert_eq!(joining.texts(), ["clip 1", "clip 2"]);
        assert!(joining.engine.behind().unwrap().is_empty(), "nothing announced yet");

        // A roll call asks; the writer answers with its newest segment, over the relay.
        let roll_call = joining.engine.roll_call();
        assert!(roll_call.is_roll_call());
        let report = writer.engine.fetch_hint(roll_call).await.unwrap();
        assert_eq!(report.segments, 0, "a roll call fetches nothing");
        let answer = writer.engine.roll_call_answer().unwrap().unwrap();
        assert_eq!(answer.seq, 3);
        joining.engine.fetch_hint(answer).await.unwrap();
        let behind = joining.engine.behind().unwrap();
        assert_eq!(behind.len(), 1, "{behind:?}");
        assert_eq!((behind[0].announced, behind[0].applied), (3, 2));
        // A poll says so, once.
        let said = |device: &Device| {
            logged(device, &|d: &str| d.contains("at seq 2, but") && d.contains("announced seq 3"))
        };
        joining.engine.fetch().await.unwrap();
        joining.engine.fetch().await.unwrap();
        assert_eq!(said(&joining), 1);
        // A replayed older hint changes nothing.
        let old = ferry_protocol::RelayHint { device: tag, seq: 1 };
        joining.engine.fetch_hint(old).await.unwrap();
        assert_eq!(joining.engine.behind().unwrap()[0].announced, 3);

        // The writer puts back what the storage lost; the joining device catches up.
        writer.engine.fetch().await.unwrap();
        joining.engine.fetch().await.unwrap();
        assert_eq!(joining.texts(), ["clip 1", "clip 2", "clip 3"]);
        assert!(joining.engine.behind().unwrap().is_empty());
    }
}
