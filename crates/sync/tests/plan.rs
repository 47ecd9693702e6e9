//! A dry run and the sync after it agree: on random repository states (devices behind, never
//! seen, compacted past, with quarantined objects waiting or due, with unsent work), every
//! object the dry run names is an object the sync moves, and nothing else moves.

mod common;

use std::sync::Arc;

use common::{Backend, Device, Rng, init, keys, storage};
use ferry_protocol::ObjectName;
use ferry_protocol::names::ROOT;
use ferry_store::ANY_SIZE;
use ferry_sync::transfer::{Kind, Outcome, Route};
use ferry_sync::{DryRun, EngineConfig, Transfer};

fn small() -> EngineConfig {
    let mut config = common::config();
    config.max_segment_ops = 3;
    config.snapshot_every = 8;
    config
}

/// Objects by name with a count: operations for uploads, bytes for downloads; sorted.
type Moves = Vec<(String, u64)>;

/// What a dry run says goes up and comes down.
fn planned(dry_run: &DryRun) -> (Moves, Moves) {
    let mut up: Vec<_> = dry_run
        .upload
        .iter()
        .map(|p| (p.name.clone(), p.ops))
        .collect();
    let mut down: Vec<_> = dry_run
        .download
        .iter()
        .map(|p| (p.name.clone(), p.bytes))
        .collect();
    up.sort();
    down.sort();
    (up, down)
}

/// The same, from the transfer log lines a sync wrote.
fn moved(lines: &[Transfer]) -> (Moves, Moves) {
    let name = |t: &Transfer| t.name.clone().unwrap_or_default();
    let mut up: Vec<_> = lines
        .iter()
        .filter(|t| t.direction == Route::Up && t.kind == Kind::Segment)
        .map(|t| (name(t), t.ops))
        .collect();
    let mut down: Vec<_> = lines
        .iter()
        .filter(|t| t.direction == Route::Down)
        .filter(|t| matches!(t.kind, Kind::Segment | Kind::Snapshot))
        .filter(|t| matches!(t.outcome, Outcome::Ok | Outcome::Quarantined))
        .map(|t| (name(t), t.bytes))
        .collect();
    up.sort();
    down.sort();
    (up, down)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_names_exactly_what_the_sync_after_it_moves() {
    for seed in 1..=24u64 {
        let storage = storage(Backend::Folder).await;
        let store = &*storage.store;
        init(store).await;
        let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut writers = Vec::new();
        for _ in 0..3 {
            writers.push(Device::open_with(Arc::clone(&storage.store), small()).await);
        }
        let mut observer = Device::open_with(Arc::clone(&storage.store), small()).await;
        // Damaged objects with their right bytes: served right again before the final dry run,
        // since a dry run cannot know whether an object due for another try opens this time.
        let mut damaged = std::collections::BTreeMap::new();
        for step in 0..60 {
            let w = rng.below(3) as usize;
            match rng.below(10) {
                0..=4 => {
                    writers[w].copy(&format!("{seed}/{step}"));
                }
                5..=6 => {
                    writers[w].engine.sync().await.unwrap();
                }
                7 => {
                    observer.copy(&format!("observer {seed}/{step}"));
                    observer.engine.sync().await.unwrap();
                }
                8 if rng.below(3) == 0 => {
                    // A new device: never seen anyone. (A dry run cannot know which objects
                    // are damaged before reading them: once there are some, the new device
                    // has read them.)
                    observer = Device::open_with(Arc::clone(&storage.store), small()).await;
                    if !damaged.is_empty() {
                        observer.engine.sync().await.unwrap();
                    }
                }
                8 => {
                    // A damaged segment of a writer, seen (and set aside) by the observer.
                    let tag = keys().names.device_tag(&writers[w].engine.device());
                    let seq = writers[w].engine.status().unwrap().last_seq;
                    let path = format!("{ROOT}{}", ObjectName::Log { device: tag, seq });
                    if seq > 0
                        && let Ok(mut bytes) = store.get(&path, ANY_SIZE).await
                    {
                        damaged.entry(path.clone()).or_insert_with(|| bytes.clone());
                        let last = bytes.len() - 1;
                        bytes[last] ^= 1;
                        store.put(&path, bytes).await.unwrap();
                        observer.engine.sync().await.unwrap();
                    }
                }
                _ => {
                    // Work not sent yet.
                    observer.copy(&format!("unsent {seed}/{step}"));
                }
            }
        }

        for (path, bytes) in damaged {
            if store.get(&path, ANY_SIZE).await.is_ok() {
                store.put(&path, bytes).await.unwrap();
            }
        }
        let dry_run = observer.engine.dry_run().await.unwrap();
        let before = observer.engine.transfers(usize::MAX).unwrap().len();
        observer.engine.sync().await.unwrap();
        let lines = observer.engine.transfers(usize::MAX).unwrap();
        let new = &lines[..lines.len() - before];
        let (planned_up, planned_down) = planned(&dry_run);
        let (moved_up, moved_down) = moved(new);
        assert_eq!(planned_up, moved_up, "seed {seed}: uploads");
        assert_eq!(planned_down, moved_down, "seed {seed}: downloads");
        assert_eq!(
            observer.engine.dry_run().await.unwrap(),
            DryRun::default(),
            "seed {seed}: a sync leaves nothing a dry run would move, but {:?}",
            observer.engine.status().unwrap().quarantined
        );
    }
}
