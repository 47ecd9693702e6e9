//! Replicated-state costs: applying a million operations, merging two 100k-clip states, reading
//! the newest 50 clips of 100k, and the memory a clip's metadata takes.
//!
//! `cargo bench -p ferry-core --bench state`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group};
use ferry_core::{ClipContent, ClipId, CollectionId, DeviceId, Op, Replica, State};
use ferry_protocol::{NamesKey, SyncKey};
use ferry_test_kit::random::Rng;

const T0: u64 = 1_800_000_000_000;

fn names() -> NamesKey {
    SyncKey::from_bytes([3; 32]).keys().names
}

/// Text of 20 to 200 bytes, like most clips.
fn clip_text(rng: &mut Rng, n: u64) -> ClipContent {
    let len = 20 + rng.below(180) as usize;
    let mut text = format!("clip {n} ");
    while text.len() < len {
        text.push_str("lorem ipsum ");
    }
    text.truncate(len);
    ClipContent::Text(text)
}

/// `total` operations from four devices, interleaved in arrival order, in a realistic mix:
/// 60 % copies (one in ten of earlier content), 12 % pin and favourite flags, 8 % deletes,
/// 3 % restores, 2 % purges, 8 % collection changes, 7 % alias and setting writes.
fn realistic_ops(total: usize) -> Vec<Op> {
    let names = names();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut replicas: Vec<Replica> = (1..=4).map(|i| Replica::new(DeviceId([i; 16]))).collect();
    let mut copied: Vec<ClipId> = Vec::new();
    let mut collections: Vec<CollectionId> = Vec::new();
    let mut ops = Vec::with_capacity(total);
    let mut n = 0u64;
    while ops.len() < total {
        let r = &mut replicas[rng.below(4) as usize];
        let now = T0 + ops.len() as u64;
        let roll = rng.below(100);
        let pick = |rng: &mut Rng, ids: &Vec<ClipId>| ids[rng.below(ids.len() as u64) as usize];
        let op = if roll < 60 || copied.is_empty() {
            let content = if rng.below(10) == 0 && n > 0 {
                clip_text(&mut Rng::new(rng.below(n) + 1), 0)
            } else {
                n += 1;
                clip_text(&mut rng, n)
            };
            let id = ClipId::for_content(&names, &content);
            copied.push(id);
            r.copy_as(id, content, now)
        } else if roll < 66 {
            r.set_pinned(pick(&mut rng, &copied), rng.below(2) == 0, now)
        } else if roll < 72 {
            r.set_favourite(pick(&mut rng, &copied), rng.below(2) == 0, now)
        } else if roll < 80 {
            r.delete(pick(&mut rng, &copied), now)
        } else if roll < 83 {
            r.restore(pick(&mut rng, &copied), now)
        } else if roll < 85 {
            r.purge(pick(&mut rng, &copied), now)
        } else if roll < 93 {
            if collections.len() < 20 || rng.below(50) == 0 {
                let (id, op) =
                    r.create_collection(format!("collection {}", collections.len()), now);
                collections.push(id);
                op
            } else {
                let c = collections[rng.below(collections.len() as u64) as usize];
                if rng.below(4) == 0 {
                    r.remove_from_collection(c, pick(&mut rng, &copied), now)
                } else {
                    r.add_to_collection(c, pick(&mut rng, &copied), now)
                }
            }
        } else if roll < 97 {
            let value = (rng.below(5) != 0).then(|| format!("snippet {}", rng.below(1000)));
            r.set_alias(format!("alias{}", rng.below(200)), value, now)
        } else {
            r.set_setting(
                format!("setting{}", rng.below(30)),
                Some(rng.below(100).to_string()),
                now,
            )
        };
        ops.push(op);
    }
    ops
}

/// A state of `clips` text clips copied by one device.
fn state_with_clips(device: u8, clips: u64, salt: u64) -> State {
    let mut rng = Rng::new(0x1234_5678 ^ salt);
    let mut replica = Replica::new(DeviceId([device; 16]));
    let names = names();
    for i in 0..clips {
        let content = clip_text(&mut rng, i * 2 + salt);
        replica.copy(&names, content, T0 + i);
    }
    replica.into_state()
}

fn apply(c: &mut Criterion) {
    let ops = realistic_ops(1_000_000);
    let mut group = c.benchmark_group("state");
    group.sample_size(10);
    group.bench_function("apply_1M_realistic_ops", |b| {
        b.iter_batched(
            || ops.clone(),
            |ops| {
                let mut state = State::new();
                for op in ops {
                    state.apply(op).unwrap();
                }
                state
            },
            BatchSize::PerIteration,
        )
    });

    let a = state_with_clips(1, 100_000, 0);
    let other = state_with_clips(2, 100_000, 1);
    group.bench_function("merge_two_100k_clip_states", |b| {
        b.iter_batched(
            || (a.clone(), other.clone()),
            |(mut a, other)| {
                a.merge(other);
                a
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    c.bench_function("state/newest_50_of_100k", |b| {
        b.iter(|| black_box(&a).history(None, 50).len())
    });
    c.bench_function("state/encode_100k", |b| b.iter(|| black_box(&a).encode()));
}

/// Resident memory of this process in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Prints the memory a clip takes in a 100k-clip state (metadata and the text itself).
fn report_memory() {
    const CLIPS: u64 = 100_000;
    let before = rss();
    let state = state_with_clips(1, CLIPS, 0);
    let after = rss();
    let content: u64 = state
        .history(None, usize::MAX)
        .iter()
        .map(|c| c.content.size())
        .sum();
    let per_clip = (after - before) / CLIPS;
    let content_per_clip = content / CLIPS;
    println!(
        "memory: {CLIPS} clips take {:.1} MiB resident: {per_clip} B per clip, of which {content_per_clip} B text and {} B metadata; snapshot encoding {} B per clip",
        (after - before) as f64 / (1 << 20) as f64,
        per_clip.saturating_sub(content_per_clip),
        state.encode().len() as u64 / CLIPS,
    );
    black_box(state);
}

criterion_group!(benches, apply);

fn main() {
    report_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
