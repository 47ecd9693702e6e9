//! Several devices sharing one repository on each backend: convergence, request counts,
//! durability across restarts, the repository lifecycle, failing and hostile storage.

mod common;

use std::sync::Arc;

use common::{
    Device, FAST_RETRY, Instrumented, Rng, assert_converged, config, engine_at, identity_for, init,
    keys, names_under, other_keys, per_backend, storage, sync_all,
};
use ferry_core::{ClipContent, ClipId, DataKind, Strategy};
use ferry_protocol::names::ROOT;
use ferry_protocol::{DeviceId, Error as ProtocolError};
use ferry_store::{ANY_SIZE, Store};
use ferry_sync::transfer::Kind;
use ferry_sync::{Engine, SyncError, repo};

per_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn devices_converge_after_random_interleavings_on_every_backend(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let mut devices = Vec::new();
        for _ in 0..3 {
            devices.push(Device::open(Arc::clone(&storage.store)).await);
        }
        let mut rng = Rng::new(0x1234_5678 ^ backend as u64);
        let mut expected = Vec::new();
        for step in 0..60 {
            let d = rng.below(3) as usize;
            match rng.below(6) {
                0..=2 => {
                    let text = format!("clip {step} from {d}");
                    devices[d].copy(&text);
                    expected.push(text);
                }
                3 => {
                    let name = format!("alias{}", rng.below(3));
                    devices[d]
                        .engine
                        .record(DataKind::Aliases, |r, _, now| {
                            r.set_alias(name, Some(format!("v{step}")), now)
                        })
                        .unwrap();
                }
                4 => {
                    devices[d].engine.upload().await.unwrap();
                }
                _ => {
                    devices[d].engine.sync().await.unwrap();
                }
            }
        }
        sync_all(&mut devices).await;
        assert_converged(&devices);
        expected.sort();
        assert_eq!(devices[0].texts(), expected, "{backend:?}");
        for device in &devices {
            let status = device.engine.status().unwrap();
            assert_eq!(status.pending_ops, 0);
            assert_eq!(status.peers.len(), 2, "{backend:?}");
            assert!(status.quarantined.is_empty());
        }
    }
}

per_backend! {
    #[tokio::test]
    async fn a_clip_costs_two_puts_to_send_one_get_to_receive_and_an_idle_poll_one_list(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let counted = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
        let store: Arc<dyn Store> = counted.clone();
        let mut sender = Device::open(Arc::clone(&store)).await;
        let mut receiver = Device::open(Arc::clone(&store)).await;
        counted.counts.take();

        // The first upload of a minute also lists the sender's own segments, once (a segment
        // the storage lost in the middle of its log is put back then).
        sender.copy("first");
        sender.engine.upload().await.unwrap();
        let [put, get, list, delete] = counted.counts.take();
        assert_eq!((put, get, list, delete), (2, 0, 1, 0), "first clip sent");

        sender.copy("second");
        let report = sender.engine.upload().await.unwrap();
        assert_eq!(report.hints.len(), 1);
        let [put, get, list, delete] = counted.counts.take();
        assert_eq!(
            (put, get, list, delete),
            (2, 0, 0, 0),
            "the older head waits to be deleted with others"
        );

        // Receiving through a poll: one LIST, then one GET per new segment (and, for a device never
        // seen before, one LIST of its snapshots, once).
        receiver.engine.fetch().await.unwrap();
        let [put, get, list, _] = counted.counts.take();
        assert_eq!((put, get, list), (0, 2, 2));

        // Through a relay hint: exactly one GET.
        sender.copy("third");
        let hint = sender.engine.upload().await.unwrap().hints[0];
        counted.counts.take();
        let report = receiver.engine.fetch_hint(hint).await.unwrap();
        assert_eq!(report.segments, 1);
        assert_eq!(counted.counts.take(), [0, 1, 0, 0]);

        // An idle poll: one LIST, nothing else.
        receiver.engine.fetch().await.unwrap();
        assert_eq!(counted.counts.take(), [0, 0, 1, 0]);
        assert_eq!(receiver.texts(), ["first", "second", "third"]);

        // Sixteen heads below the newest go in one batch (one request on S3), with the
        // seventeenth clip: 34 PUTs and 1 DELETE for 17 clips.
        sender.upload_clips(4..=17).await;
        let [put, _, _, delete] = counted.counts.take();
        assert_eq!((put, delete), (28, 1));
        let tag = keys().names.device_tag(&sender.engine.device());
        let heads = names_under(&*storage.store, &format!("head/{tag}/")).await;
        assert_eq!(heads.len(), 1, "{heads:?}");
        receiver.engine.fetch().await.unwrap();
        assert_eq!(receiver.texts().len(), 17);
    }
}

per_backend! {
    #[tokio::test]
    async fn recorded_operations_survive_a_restart_and_go_out_after_it(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let mut a = Device::open(Arc::clone(&storage.store)).await;
        let device = a.engine.device();
        a.copy("kept across restarts");
        let mut a = a.reopen(Arc::clone(&storage.store)).await;
        assert_eq!(a.engine.device(), device, "the device keeps its id");
        assert_eq!(a.texts(), ["kept across restarts"]);
        // The clip and the device's registration in the roster.
        assert_eq!(a.engine.status().unwrap().pending_ops, 2);
        a.engine.upload().await.unwrap();

        let mut b = Device::open(Arc::clone(&storage.store)).await;
        b.engine.fetch().await.unwrap();
        assert_eq!(b.texts(), ["kept across restarts"]);
        // And the receiver's applied state survives its restart too, without fetching again.
        let b = b.reopen(Arc::clone(&storage.store)).await;
        assert_eq!(b.texts(), ["kept across restarts"]);
        assert_eq!(b.engine.status().unwrap().peers[0].seq, 1);
    }
}

per_backend! {
    #[tokio::test]
    async fn state_is_rebuilt_from_checkpoints(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("ferry.db");
        let mut small = config();
        small.checkpoint_every = 5;
        small.max_segment_ops = 3;
        let mut a = Device::open(Arc::clone(&storage.store)).await;
        let mut b = engine_at(Arc::clone(&storage.store), &db, small.clone())
.await
            .unwrap();
        for n in 0..20 {
            a.copy(&format!("clip {n}"));
            b.record(DataKind::Clips, |r, names, now| {
                r.copy(names, ClipContent::Text(format!("b {n}")), now)
            })
            .unwrap();
        }
        a.engine.upload().await.unwrap();
        b.sync().await.unwrap();
        assert_eq!(b.status().unwrap().last_seq, 7, "20 ops in segments of 3");
        let before = b.state().encode();
        drop(b);
        let b = engine_at(Arc::clone(&storage.store), &db, small)
.await
            .unwrap();
        assert!(b.state().encode() == before);
    }
}

per_backend! {
    #[tokio::test]
    async fn history_search_finds_words_local_and_remote(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let mut a = Device::open(Arc::clone(&storage.store)).await;
        let mut b = Device::open(Arc::clone(&storage.store)).await;
        a.copy("the quick brown fox");
        b.copy("lazy dogs sleep");
        a.engine.sync().await.unwrap();
        b.engine.sync().await.unwrap();
        let search = |query: &str| texts(&b, &b.engine.search(query, 10).unwrap());
        assert_eq!(search("quick fox"), ["the quick brown fox"]);
        assert_eq!(search("dogs"), ["lazy dogs sleep"]);
        assert!(search("cat").is_empty());
        // Input is words, never query syntax.
        assert!(
            b.engine
                .search("\"unbalanced AND (", 10)
                .unwrap()
                .is_empty()
        );
        // As typed, the last word is the start of one; whole words stay whole.
        assert!(search("qui").is_empty());
        assert_eq!(found(&b, "qui"), ["the quick brown fox"]);
        assert_eq!(found(&b, "brown qu"), ["the quick brown fox"]);
        assert_eq!(found(&b, "la"), ["lazy dogs sleep"]);
        assert!(found(&b, "bro qu").is_empty());
        assert!(found(&b, "(* AND").is_empty());
        assert!(found(&b, "   ").is_empty());
    }
}

/// The texts of the clips a search as typed finds, in its order.
fn found(device: &Device, query: &str) -> Vec<String> {
    texts(device, &device.engine.search_as_typed(query, 10).unwrap())
}

/// The texts of the clips `ids`, in their order.
fn texts(device: &Device, ids: &[ClipId]) -> Vec<String> {
    let state = device.engine.state_for(DataKind::Clips);
    ids.iter()
        .filter_map(|id| Some(state.clip(id)?.content.text()?.to_owned()))
        .collect()
}

#[tokio::test]
async fn search_finds_the_last_copied_first_here_from_others_and_after_an_upgrade() {
    let storage = storage(common::Backend::Folder).await;
    init(&*storage.store).await;
    let mut a = Device::open(Arc::clone(&storage.store)).await;
    let mut b = Device::open(Arc::clone(&storage.store)).await;
    for text in ["note one", "note two", "note three"] {
        a.copy(text);
    }
    assert_eq!(found(&a, "not"), ["note three", "note two", "note one"]);
    // Copied again, a clip moves up, here and on the device that fetches it.
    a.copy("note one");
    assert_eq!(found(&a, "note"), ["note one", "note three", "note two"]);
    a.engine.upload().await.unwrap();
    b.engine.fetch().await.unwrap();
    assert_eq!(found(&b, "no"), ["note one", "note three", "note two"]);
    b.copy("note two");
    assert_eq!(found(&b, "n"), ["note two", "note one", "note three"]);

    // A database from before the ordered index (schema 4: rows by hash, no prefix index) is
    // indexed again from its state when it opens, in the order of last copy.
    let db = b.home.path().join("ferry.db");
    drop(b.engine);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP TABLE clip_text;
         DROP TABLE clip_rows;
         CREATE TABLE clip_rows (rowid INTEGER PRIMARY KEY, clip BLOB NOT NULL);
         CREATE VIRTUAL TABLE clip_text USING fts5(body, content = '', detail = none);
         PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);
    let b = Device {
        engine: engine_at(Arc::clone(&storage.store), &db, config())
            .await
            .unwrap(),
        home: b.home,
    };
    assert_eq!(found(&b, "no"), ["note two", "note one", "note three"]);
}

per_backend! {
    #[tokio::test]
    async fn init_refuses_an_existing_repository(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let error = repo::init(&*storage.store, &other_keys(), None, &FAST_RETRY)
            .await
            .unwrap_err();
        assert!(
            matches!(error, SyncError::RepositoryExists { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("ferry join"));
        // The first repository is intact.
        repo::open(&*storage.store, &keys(), &FAST_RETRY)
            .await
            .unwrap();
    }
}

per_backend! {
    #[tokio::test]
    async fn a_wrong_key_is_named_and_nothing_is_written(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("ferry.db");
        let error = Engine::open(
    Arc::clone(&storage.store),
    other_keys(),
    identity_for(&db),
    &db,
    config(),
)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(error, SyncError::Protocol(ProtocolError::WrongKey { .. })),
            "{backend:?}: {error}"
        );
        assert!(!db.exists(), "no local database for a wrong key");
        let page = storage.store.list(ROOT, None, 100).await.unwrap();
        assert_eq!(page.objects.len(), 1, "only the repository header");
    }
}

per_backend! {
    #[tokio::test]
    async fn missing_and_newer_repositories_say_what_to_do(backend) {
        let storage = storage(backend).await;
        let home = tempfile::tempdir().unwrap();
        let db = home.path().join("ferry.db");
        let error = engine_at(Arc::clone(&storage.store), &db, config())
.await
            .err()
            .unwrap();
        assert!(matches!(error, SyncError::NoRepository));

        init(&*storage.store).await;
        let name = format!("{ROOT}repo");
        let mut bytes = storage.store.get(&name, ANY_SIZE).await.unwrap();
        bytes[3] = 9; // a future format version
        storage.store.put(&name, bytes).await.unwrap();
        let error = engine_at(Arc::clone(&storage.store), &db, config())
.await
            .err()
            .unwrap();
        assert!(
            error.to_string().to_lowercase().contains("upgrade"),
            "{error}"
        );
    }
}

per_backend! {
    #[tokio::test]
    async fn send_only_and_receive_only_devices_keep_to_their_direction(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let with = |direction| {
            let mut config = config();
            config.direction = direction;
            config
        };
        let mut sender = Device::open_with(
            Arc::clone(&storage.store),
            with(ferry_sync::Direction::SendOnly),
        )
        .await;
        let mut receiver = Device::open_with(
            Arc::clone(&storage.store),
            with(ferry_sync::Direction::ReceiveOnly),
        )
        .await;
        let mut both = Device::open(Arc::clone(&storage.store)).await;
        sender.copy("from the sender");
        receiver.copy("stays on the receiver");
        both.copy("from both");
        for _ in 0..2 {
            for device in [&mut sender, &mut receiver, &mut both] {
                device.engine.sync().await.unwrap();
            }
        }
        assert_eq!(sender.texts(), ["from the sender"]);
        assert_eq!(
            receiver.texts(),
            ["from both", "from the sender", "stays on the receiver"]
        );
        assert_eq!(both.texts(), ["from both", "from the sender"]);
        assert_eq!(receiver.engine.status().unwrap().pending_ops, 1);
        let tag = keys().names.device_tag(&receiver.engine.device());
        assert!(
            names_under(&*storage.store, &format!("log/{tag}/"))
                .await
                .is_empty()
        );
    }
}

per_backend! {
    #[tokio::test]
    async fn filtered_clips_are_never_recorded_or_uploaded_and_the_log_says_why(backend) {
        let card = regex::Regex::new(r"^\d{4} \d{4} \d{4} \d{4}$").unwrap();
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let mut strict = config();
        strict.filters.max_item_bytes = Some(40);
        strict.filters.exclude = vec![card.clone()];
        let mut a = Device::open_with(Arc::clone(&storage.store), strict).await;
        let text = |t: &str| ClipContent::Text(t.to_owned());
        assert!(
            a.engine
                .copy(text("4111 1111 1111 1111"))
                .unwrap()
                .is_none()
        );
        assert!(a.engine.copy(text(&"long ".repeat(20))).unwrap().is_none());
        assert!(a.engine.copy(text("fine")).unwrap().is_some());
        let report = a.engine.upload().await.unwrap();
        assert_eq!(report.ops, 2, "the registration and one clip");
        assert_eq!(a.texts(), ["fine"]);
        let skipped: Vec<_> = a
            .engine
            .transfers(10)
            .unwrap()
            .into_iter()
            .filter(|t| t.kind == Kind::Filter)
            .collect();
        assert_eq!(skipped.len(), 2);
        for line in &skipped {
            let detail = line.detail.as_deref().unwrap();
            assert!(
                !detail.contains("4111"),
                "the log quotes the clip: {detail}"
            );
        }
        assert!(
            skipped
                .iter()
                .any(|t| t.detail.as_deref().unwrap().contains("matches the clipboard.exclude pattern"))
        );
        assert!(
            skipped
                .iter()
                .any(|t| t.detail.as_deref().unwrap().contains("B is over clipboard.max_bytes ("))
        );

        let mut b = Device::open(Arc::clone(&storage.store)).await;
        b.engine.fetch().await.unwrap();
        assert_eq!(b.texts(), ["fine"]);
    }
}

per_backend! {
    #[tokio::test]
    async fn a_dry_run_reports_what_would_move_and_changes_nothing(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let counted = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
        let store: Arc<dyn Store> = counted.clone();
        let mut small = config();
        small.max_segment_ops = 2;
        let mut a = Device::open_with(Arc::clone(&store), small).await;
        let mut b = Device::open(Arc::clone(&store)).await;
        for n in 0..3 {
            a.copy(&format!("clip {n}"));
        }
        counted.counts.take();
        let plan = a.engine.dry_run().await.unwrap();
        let ops: Vec<u64> = plan.upload.iter().map(|p| p.ops).collect();
        assert_eq!(ops, [2, 2], "the registration and three clips");
        assert!(plan.upload[0].name.ends_with("/0000000000000001"));
        let [put, _, _, delete] = counted.counts.take();
        assert_eq!((put, delete), (0, 0), "a dry run writes nothing");
        assert_eq!(a.engine.status().unwrap().pending_ops, 4);

        a.engine.upload().await.unwrap();
        let plan = b.engine.dry_run().await.unwrap();
        assert_eq!(plan.download.len(), 2);
        assert!(plan.download.iter().all(|p| p.bytes > 0));
        assert!(b.texts().is_empty(), "nothing applied by a dry run");
        b.engine.fetch().await.unwrap();
        assert_eq!(b.texts().len(), 3);
        // Once its own registration is out too, nothing is left to move.
        b.engine.upload().await.unwrap();
        assert_eq!(
            b.engine.dry_run().await.unwrap(),
            ferry_sync::DryRun::default()
        );
    }
}

per_backend! {
    #[tokio::test]
    async fn data_outside_the_scope_stays_on_the_device_and_others_changes_to_it_do_not_show(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let mut narrow = config();
        narrow.scope = ferry_core::Scope {
            clips: true,
            collections: true,
            aliases: false,
            settings: false,
        };
        let mut private = Device::open_with(Arc::clone(&storage.store), narrow.clone()).await;
        let mut shared = Device::open(Arc::clone(&storage.store)).await;
        let set = |device: &mut Device, kind: DataKind, key: &str, value: &str| {
            let (key, value) = (key.to_owned(), value.to_owned());
            device
                .engine
                .record(kind, move |r, _, now| match kind {
                    DataKind::Settings => r.set_setting(key, Some(value), now),
                    _ => r.set_alias(key, Some(value), now),
                })
                .unwrap();
        };
        set(&mut private, DataKind::Settings, "theme", "dark");
        set(&mut private, DataKind::Aliases, "sig", "private signature");
        set(&mut shared, DataKind::Aliases, "sig", "shared signature");
        private.copy("a clip syncs");
        shared.copy("so does this one");
        for _ in 0..2 {
            private.engine.sync().await.unwrap();
            shared.engine.sync().await.unwrap();
        }
        // Clips (in scope) sync both ways.
        assert_eq!(private.texts(), shared.texts());
        assert_eq!(private.texts().len(), 2);
        // Out of scope: the private device keeps its own values, the other sees none of them.
        let any = DeviceId([0; 16]);
        let alias = |state: &ferry_core::State| -> Vec<String> {
            state
                .alias("sig", Strategy::KeepBoth, any)
                .map(|resolved| {
                    resolved
                        .values
                        .iter()
                        .filter_map(|v| v.value.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            alias(private.engine.state_for(DataKind::Aliases)),
            ["private signature"]
        );
        assert_eq!(
            alias(shared.engine.state_for(DataKind::Aliases)),
            ["shared signature"]
        );
        let theme = |state: &ferry_core::State| {
            state
                .setting("theme", Strategy::KeepBoth, any)
                .and_then(|r| r.value().map(str::to_owned))
        };
        assert_eq!(theme(shared.engine.state()), None);
        assert_eq!(
            theme(private.engine.state_for(DataKind::Settings)).as_deref(),
            Some("dark")
        );
        // Nothing local-only is pending upload, and it survives a restart.
        assert_eq!(private.engine.status().unwrap().pending_ops, 0);
        let Device { engine, home } = private;
        drop(engine);
        let engine = engine_at(Arc::clone(&storage.store), &home.path().join("ferry.db"), narrow)
.await
        .unwrap();
        assert_eq!(
            alias(engine.state_for(DataKind::Aliases)),
            ["private signature"]
        );
    }
}

/// A device that opened the repository before opens at once when the storage fails, after one
/// request and no retries, and says it opened offline; a new device cannot open without it.
#[tokio::test]
async fn a_known_device_opens_offline_after_one_request() {
    let storage = storage(common::Backend::Folder).await;
    init(&*storage.store).await;
    let Device { engine, home } = Device::open(Arc::clone(&storage.store)).await;
    assert!(!engine.opened_offline());
    drop(engine);
    // Every request fails, as when the network is down.
    let down = Arc::new(Instrumented::new(Arc::clone(&storage.store), 1));
    let store: Arc<dyn Store> = down.clone();
    down.counts.take();
    let engine = engine_at(Arc::clone(&store), &home.path().join("ferry.db"), config())
        .await
        .unwrap();
    assert!(engine.opened_offline());
    assert_eq!(down.counts.take().iter().sum::<u64>(), 1);
    drop(engine);

    let new = tempfile::tempdir().unwrap();
    let error = engine_at(store, &new.path().join("ferry.db"), config())
        .await
        .err()
        .expect("a new device needs the storage to open");
    assert!(error.is_transient(), "{error}");
}
