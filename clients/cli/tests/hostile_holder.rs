//! A holder that lies: a device on the LAN with the group's key that serves a folder repository
//! and alters what it serves, answers more than was asked, or goes silent. A real `ferry`
//! reaching it treats it as it treats a hostile store: a damaged object is quarantined and
//! said, an oversized answer is refused unread, silence ends a command within seconds.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, Device, storage};
use ferry_lan::{Event, Lan, LanConfig};
use ferry_protocol::held::{Question, Reply};
use ferry_protocol::{DeviceId, SyncKey};
use ferry_store::{FolderStore, Store};

/// How the fake holder misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lie {
    /// Flips a bit in every segment it serves.
    FlipSegments,
    /// Answers a read with far more bytes than were asked for.
    Oversized,
    /// Takes every question and never answers.
    Silent,
    /// Answers with empty parts that say more follows, every two seconds, forever.
    Trickle,
}

/// A fake holder serving `folder` on 127.0.0.1 with the LAN key of `code`, lying by `lie`;
/// its device id and port. It runs on `runtime` until the runtime stops.
fn fake_holder(
    runtime: &tokio::runtime::Runtime,
    folder: std::path::PathBuf,
    code: &str,
    lie: Lie,
) -> (DeviceId, u16) {
    let key = SyncKey::from_recovery_code(code).unwrap().keys().lan;
    let device = DeviceId([0x5a; 16]);
    let identity = ferry_protocol::Identity::generate().unwrap();
    let mut config = LanConfig::new(device, Arc::new(identity));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.discovery = None;
    config.max_question = ferry_protocol::held::max_question();
    let (lan, mut events) = runtime.block_on(Lan::start(config, &key)).unwrap();
    let port = lan.local_addr().port();
    let store: Arc<dyn Store> = Arc::new(FolderStore::open(folder).unwrap());
    let lan = Arc::new(lan);
    let lan_frames = Arc::clone(&lan);
    runtime.spawn(async move {
        let calls = lan.calls();
        while let Some(event) = events.recv().await {
            let Event::Asked {
                from,
                call,
                question,
            } = event
            else {
                continue;
            };
            if lie == Lie::Trickle {
                let (calls, to) = (lan_frames.clone(), from);
                tokio::spawn(async move {
                    for _ in 0..60 {
                        calls.send(
                            Some(to),
                            ferry_lan::Frame::Answer {
                                call,
                                more: true,
                                part: Vec::new(),
                            },
                        );
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                });
                continue;
            }
            let reply = match (lie, Question::decode(&question).unwrap()) {
                (Lie::Silent, _) => continue,
                (Lie::Oversized, Question::Get { .. }) => Reply::Object(vec![7; 8 << 20]),
                (_, question) => answer(&*store, question, lie).await,
            };
            let calls = calls.clone();
            tokio::spawn(async move {
                let _ = calls
                    .answer(from, call, &reply.encode(), Duration::from_secs(10))
                    .await;
            });
        }
        drop(lan);
    });
    (device, port)
}

/// What an honest holder would answer, with segments altered when `lie` says so.
async fn answer(store: &dyn Store, question: Question, lie: Lie) -> Reply {
    let refused = |e: ferry_store::StoreError| match e {
        ferry_store::StoreError::NotFound { .. } => {
            Reply::Refused(ferry_protocol::held::Refusal::NotFound)
        }
        other => Reply::Refused(ferry_protocol::held::Refusal::Failed(other.to_string())),
    };
    match question {
        Question::Get { name, limit } => match store.get(&name, limit).await {
            Ok(mut bytes) => {
                if lie == Lie::FlipSegments && name.contains("/log/") {
                    let at = bytes.len() / 2;
                    bytes[at] ^= 4;
                }
                Reply::Object(bytes)
            }
            Err(e) => refused(e),
        },
        Question::List {
            prefix,
            start_after,
            limit,
        } => match store
            .list(&prefix, start_after.as_deref(), limit as usize)
            .await
        {
            Ok(page) => Reply::Page {
                objects: page.objects.into_iter().map(|o| (o.name, o.size)).collect(),
                next: page.next,
            },
            Err(e) => refused(e),
        },
        Question::PutNew { name, bytes } => match store.put_new(&name, bytes).await {
            Ok(()) => Reply::Done,
            Err(e) => refused(e),
        },
        Question::Delete { names } => match store.delete_many(&names).await {
            Ok(()) => Reply::Done,
            Err(e) => refused(e),
        },
    }
}

/// A folder repository with two clips from "laptop", and the fake holder serving it; a new
/// device pointed at the fake (the laptop itself never runs).
fn lied_to(lie: Lie) -> (common::Storage, Device, String, DeviceId) {
    let storage = storage(Backend::Folder);
    let laptop = Device::new();
    let code = laptop.init(&storage, "laptop");
    laptop.run(&["copy", "one"]).ok();
    laptop.run(&["copy", "two"]).ok();
    let (holder, port) = fake_holder(&storage.runtime, storage.files(), &code, lie);
    let desktop = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    (storage, desktop, code, holder)
}

fn join(desktop: &Device, holder: DeviceId, code: &str) -> common::Ran {
    desktop.run_with_input(
        &[
            "join",
            "--store",
            &format!("lan://{holder}"),
            "--name",
            "desktop",
        ],
        Some(format!("{code}\n").as_bytes()),
    )
}

#[test]
fn altered_segments_from_a_holder_are_quarantined_and_said() {
    let (_storage, desktop, code, holder) = lied_to(Lie::FlipSegments);
    join(&desktop, holder, &code).ok();
    assert!(desktop.history_texts().is_empty());
    let status = desktop.run(&["status"]).ok().stdout;
    // Every segment was altered: each is set aside with what happened, none applied.
    let damaged: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("damaged"))
        .collect();
    assert!(damaged.len() >= 2, "{status}");
    assert!(
        damaged.iter().all(|l| l.contains("failed authentication")),
        "{status}"
    );
}

#[test]
fn a_holder_answering_more_than_was_asked_is_refused_unread() {
    let (_storage, desktop, code, holder) = lied_to(Lie::Oversized);
    let ran = join(&desktop, holder, &code);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("larger than"), "{}", ran.stderr);
    assert!(!desktop.files().iter().any(|f| f == "ferry.db"));
}

#[test]
fn a_silent_or_trickling_holder_ends_a_command_within_seconds() {
    for lie in [Lie::Silent, Lie::Trickle] {
        silence_ends_the_command(lie);
    }
}

fn silence_ends_the_command(lie: Lie) {
    let (_storage, desktop, code, holder) = lied_to(lie);
    let started = Instant::now();
    let ran = join(&desktop, holder, &code);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("went silent"), "{}", ran.stderr);
    // Bounded by the silence allowed (10 s) and the command's few retries, not a minute.
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}",
        started.elapsed()
    );
}
