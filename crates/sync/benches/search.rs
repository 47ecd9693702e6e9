//! What one keystroke in `ferry pick` costs at 100k clips: the fuzzy search of the history (every
//! clip scored as fzf would, the best 200 kept, the newest first among equals); and, with an
//! empty query, the pinned clips then the newest.
//!
//! The history is written by one device and read by a second after a cold start, as a device
//! that joins a long-used repository holds it.
//!
//! `cargo bench -p ferry-sync --bench search` (`FERRY_BENCH_CLIPS` changes the 100,000)

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group};
use ferry_core::{ClipContent, DataKind};
use ferry_store::Store;
use ferry_sync::{Engine, EngineConfig};
use ferry_test_kit::random::Rng;

#[path = "../tests/common/mod.rs"]
mod common;

use common::{engine_at, init};

/// The picker's page: as many clips as it lists.
const PAGE: usize = 200;

const WORDS: &[&str] = &[
    "invoice",
    "meeting",
    "password",
    "deploy",
    "release",
    "kernel",
    "address",
    "street",
    "payment",
    "ticket",
    "server",
    "config",
    "monday",
    "tuesday",
    "report",
    "quarter",
    "budget",
    "project",
    "ferry",
    "clipboard",
    "terminal",
    "function",
    "return",
    "error",
    "warning",
    "london",
    "berlin",
    "tokyo",
    "order",
    "number",
    "customer",
    "support",
    "review",
    "merge",
    "branch",
    "commit",
    "docker",
    "postgres",
    "redis",
    "photo",
    "holiday",
    "flight",
    "hotel",
];

/// A clip of 3 to 30 words and a number, like most copied text.
fn clip(rng: &mut Rng, n: usize) -> ClipContent {
    let words = 3 + rng.index(28);
    let mut text = format!("#{n}");
    for _ in 0..words {
        text.push(' ');
        text.push_str(WORDS[rng.index(WORDS.len())]);
    }
    ClipContent::Text(text)
}

/// A device holding `clips` clips (a tenth pinned), fetched from the one that wrote them.
async fn history(clips: usize) -> (Engine, Vec<tempfile::TempDir>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(ferry_store::FolderStore::open(dir.path()).unwrap());
    init(&*store).await;
    let config = EngineConfig {
        snapshot_every: clips as u64,
        ..common::config()
    };
    let writer_home = tempfile::tempdir().unwrap();
    let mut writer = engine_at(
        Arc::clone(&store),
        &writer_home.path().join("ferry.db"),
        config,
    )
    .await
    .unwrap();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    for n in 0..clips {
        let op = writer.copy(clip(&mut rng, n)).unwrap().unwrap();
        if n % 10 == 0 {
            let id = op_clip(&op);
            writer
                .record(DataKind::Clips, |r, _, now| r.set_pinned(id, true, now))
                .unwrap();
        }
    }
    writer.upload().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut reader = engine_at(store, &home.path().join("ferry.db"), common::config())
        .await
        .unwrap();
    reader.fetch().await.unwrap();
    assert!(reader.state_for(DataKind::Clips).stats().clips >= clips);
    (reader, vec![dir, writer_home, home])
}

fn op_clip(op: &ferry_core::Op) -> ferry_core::ClipId {
    match &op.action {
        ferry_core::Action::Copy { clip, .. } => *clip,
        other => panic!("not a copy: {other:?}"),
    }
}

/// One keystroke: the views the picker lists.
fn keystroke(engine: &Engine, query: &str) -> usize {
    let state = engine.state_for(DataKind::Clips);
    if query.trim().is_empty() {
        let mut views = state.pinned();
        views.truncate(PAGE);
        let room = PAGE - views.len();
        views.extend(
            state
                .history(None, PAGE)
                .into_iter()
                .filter(|v| !v.pinned)
                .take(room),
        );
        return views.len();
    }
    state.find(query, PAGE).len()
}

fn bench(c: &mut Criterion) {
    let clips = std::env::var("FERRY_BENCH_CLIPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (engine, _dirs) = runtime.block_on(history(clips));
    let mut group = c.benchmark_group(format!("pick keystroke, {clips} clips"));
    // From the empty query to a two-word query, as a person types it.
    for query in [
        "",
        "i",
        "inv",
        "invoice",
        "invoice lon",
        "invoice london",
        "invce lndn",
        "#4242",
    ] {
        group.bench_function(format!("{query:?}"), |b| {
            b.iter(|| black_box(keystroke(&engine, black_box(query))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
