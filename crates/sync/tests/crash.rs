//! Crash safety, on each backend: a writer process is killed with SIGKILL at random moments
//! while it records and syncs, restarted, and killed again, 50 times. Afterwards nothing it reported as recorded is
//! missing, no operation is duplicated, and no segment was ever written twice with different
//! bytes (the engine refuses that with `SyncError::Divergent`, which would end a child with
//! exit code 3).
//!
//! The child is this same test binary, running the ignored test `crash_child`; the S3 and
//! WebDAV servers run in the parent, on 127.0.0.1, and outlive every child.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, Device, Rng, engine_at, init, keys, per_backend, servers};
use ferry_core::{ClipContent, DataKind};
use ferry_protocol::ObjectName;
use ferry_protocol::names::ROOT;
use ferry_store::s3::Timeouts;
use ferry_store::url::StoreUrl;
use ferry_store::{FolderStore, S3Store, Store, WebDavStore};
use ferry_sync::{EngineConfig, SyncError};

const RUNS: u64 = 50;

fn child_config() -> EngineConfig {
    let mut config = common::config();
    config.snapshot_every = 15;
    config.max_segment_ops = 5;
    config.checkpoint_every = 10;
    config
}

/// The store a URL names, with the test servers' credentials.
fn open_store(url: &str) -> Arc<dyn Store> {
    match StoreUrl::parse(url).unwrap() {
        StoreUrl::Folder(path) => Arc::new(FolderStore::open(path).unwrap()),
        StoreUrl::S3(location) => Arc::new(S3Store::new(
            &location,
            servers::credentials(),
            Timeouts::default(),
        )),
        StoreUrl::WebDav(location) => Arc::new(
            WebDavStore::new(
                &location,
                Some(servers::dav_credentials()),
                Timeouts::default(),
            )
            .unwrap(),
        ),
        StoreUrl::Held(_) => unreachable!("the crash test serves no repository held on the LAN"),
    }
}

/// The writer: records numbered clips and syncs, printing each clip once `record` returned.
#[tokio::test]
#[ignore = "run by crash_safety as a child process"]
async fn crash_child() {
    let Ok(dir) = std::env::var("FERRY_CRASH_DIR") else {
        return;
    };
    let run: u64 = std::env::var("FERRY_CRASH_RUN").unwrap().parse().unwrap();
    let dir = Path::new(&dir);
    let url = std::env::var("FERRY_CRASH_STORE").unwrap();
    let store = open_store(&url);
    let mut engine = engine_at(store, &dir.join("writer.db"), child_config())
        .await
        .unwrap();
    for i in 0.. {
        let text = format!("run {run} clip {i}");
        engine
            .record(DataKind::Clips, |r, names, now| {
                r.copy(names, ClipContent::Text(text.clone()), now)
            })
            .unwrap();
        println!("recorded {text}");
        if i % 3 == 2 {
            match engine.sync().await {
                Ok(_) => {}
                Err(SyncError::Divergent { name }) => {
                    eprintln!("divergent segment {name}");
                    std::process::exit(3);
                }
                Err(error) => panic!("{error}"),
            }
        }
    }
}

per_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crash_safety_under_sigkill(backend) {
        // The servers run here; the children reach them on 127.0.0.1.
        let (_server, url) = match backend {
            Backend::Folder => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("repo");
                FolderStore::create(&path).unwrap();
                (Server::Folder(dir), StoreUrl::Folder(path).to_string())
            }
            Backend::S3 => {
                let (running, location) = servers::s3().await;
                (Server::Running(running), StoreUrl::S3(location).to_string())
            }
            Backend::WebDav => {
                let (running, location) = servers::webdav(0).await;
                (
                    Server::Running(running),
                    StoreUrl::WebDav(location).to_string(),
                )
            }
        };
        crash_safety_on(backend, &url).await;
    }
}

/// Keeps a backend alive for the length of a run.
#[allow(dead_code)]
enum Server {
    Folder(tempfile::TempDir),
    Running(servers::Running),
}

async fn crash_safety_on(backend: Backend, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(url);
    init(&*store).await;
    let recorded = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut rng = Rng::new(0xC0FF_EE00_D15E_A5E5 ^ backend as u64);
    let exe = std::env::current_exe().unwrap();
    for run in 0..RUNS {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FERRY_CRASH_DIR", dir.path())
            .env("FERRY_CRASH_STORE", url)
            .env("FERRY_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::clone(&recorded);
        let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(text) = line.strip_prefix("recorded ") {
                    lines.lock().unwrap().push(text.to_owned());
                    let _ = first_tx.send(());
                }
            }
        });
        // One run in four is killed wherever it is, start-up and recovery included; the others
        // once they recorded, somewhere in their stream of records and syncs. Waiting for the
        // first record, rather than guessing how long a start takes, keeps this the same test on
        // a slow machine.
        if rng.below(4) != 0 {
            let first = tokio::time::timeout(Duration::from_secs(60), first_rx.recv()).await;
            assert!(
                matches!(first, Ok(Some(()))),
                "{backend:?} run {run}: the writer recorded nothing"
            );
        }
        tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
        let early = child.try_wait().unwrap();
        if early.is_none() {
            child.kill().unwrap();
        }
        let status = child.wait().unwrap();
        reader.join().unwrap();
        if let Some(status) = early {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("{backend:?} run {run}: the writer ended by itself ({status}): {stderr}");
        }
        assert!(!status.success());
    }

    // The writer, started once more, uploads everything it holds: a segment reserved before a
    // kill goes out with the very bytes reserved (Divergent otherwise).
    let mut writer = engine_at(
        Arc::clone(&store),
        &dir.path().join("writer.db"),
        child_config(),
    )
    .await
    .unwrap();
    writer.upload().await.unwrap();
    let status = writer.status().unwrap();
    assert_eq!((status.pending_ops, status.pending_segments), (0, 0));

    let recorded = recorded.lock().unwrap().clone();
    let mut reader = Device::open(Arc::clone(&store)).await;
    reader.engine.fetch().await.unwrap();
    let present = reader.texts();
    for text in &recorded {
        assert!(present.contains(text), "{text} was recorded and is lost");
    }
    let mut unique = present.clone();
    unique.dedup();
    assert_eq!(unique.len(), present.len(), "a clip appears twice");
    // Every operation the writer made is there exactly once: its counter equals the clips and
    // its registration in the roster.
    let writer_ops = reader.engine.state().seen(&writer.device());
    assert_eq!(
        writer_ops,
        present.len() as u64 + 1,
        "operations lost or duplicated"
    );
    assert!(reader.engine.status().unwrap().quarantined.is_empty());
    eprintln!(
        "{backend:?}: {} clips reported recorded, {} present, writer at segment {}",
        recorded.len(),
        present.len(),
        status.last_seq
    );

    // The writer's stored segments after its newest snapshot run without gaps to its head (or
    // none are left, when the newest snapshot covers them all).
    let tag = keys().names.device_tag(&writer.device());
    let page = store
        .list(&format!("{ROOT}log/{tag}/"), None, 1000)
        .await
        .unwrap();
    let seqs: Vec<u64> = page
        .objects
        .iter()
        .filter_map(|o| match o.name.strip_prefix(ROOT)?.parse().ok()? {
            ObjectName::Log { seq, .. } => Some(seq),
            _ => None,
        })
        .collect();
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "a gap in the stored segments: {seqs:?}"
        );
    }
    match seqs.last() {
        Some(last) => assert_eq!(*last, status.last_seq),
        // Everything compacted: the newest snapshot covers the last segment.
        None => {
            let snaps = store
                .list(&format!("{ROOT}snap/{tag}/"), None, 1000)
                .await
                .unwrap();
            let newest = snaps
                .objects
                .iter()
                .filter_map(|o| match o.name.strip_prefix(ROOT)?.parse().ok()? {
                    ObjectName::Snap { seq, .. } => Some(seq),
                    _ => None,
                })
                .max();
            assert_eq!(newest, Some(status.last_seq));
        }
    }
}
