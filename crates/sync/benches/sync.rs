//! End-to-end figures of the sync engine on this machine:
//!
//! 1. requests per clip on the sender and on a receiver, and per idle poll (counted by a wrapper
//!    around the store);
//! 2. `record()` throughput and the local database's size per 100k clips;
//! 3. cold start of a new device against a repository of `FERRY_BENCH_CLIPS` clips (default
//!    100,000) written by three devices and compacted, on the in-process S3 server on loopback;
//! 4. a rotation (a device removed) of a repository of that many clips and
//!    `FERRY_BENCH_BLOB_MIB` MiB of images (default 100).
//!
//! `cargo bench -p ferry-sync --bench sync [-- requests|cold|rotation]`

use std::sync::Arc;
use std::time::Instant;

use ferry_core::ClipContent;
use ferry_store::Store;
use ferry_store::s3::Timeouts;
use ferry_sync::EngineConfig;

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Device, Instrumented, engine_at, init, servers, storage};

fn text(device: usize, n: usize) -> ClipContent {
    ClipContent::Text(format!(
        "clip {n} from device {device}: https://example.org/some/path?item={n}&from=ferry"
    ))
}

async fn requests_per_clip() {
    let storage = storage(common::Backend::S3).await;
    init(&*storage.store).await;
    let counted = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
    let store: Arc<dyn Store> = counted.clone();
    let mut sender = Device::open(Arc::clone(&store)).await;
    let mut receiver = Device::open(Arc::clone(&store)).await;
    sender.copy("warm-up");
    sender.engine.upload().await.unwrap();
    receiver.engine.fetch().await.unwrap();
    counted.counts.take();

    const CLIPS: u64 = 100;
    let (mut sent, mut received, mut hinted) = ([0u64; 4], [0u64; 4], [0u64; 4]);
    for n in 0..CLIPS {
        sender.copy(&format!("clip {n}"));
        let hints = sender.engine.upload().await.unwrap().hints;
        add(&mut sent, counted.counts.take());
        if n % 2 == 0 {
            receiver.engine.fetch().await.unwrap();
            add(&mut received, counted.counts.take());
        } else {
            receiver.engine.fetch_hint(hints[0]).await.unwrap();
            add(&mut hinted, counted.counts.take());
        }
    }
    receiver.engine.fetch().await.unwrap();
    let idle = counted.counts.take();
    let per = |counts: [u64; 4], n: u64| {
        format!(
            "{:.2} PUT, {:.2} GET, {:.2} LIST, {:.2} DELETE",
            counts[0] as f64 / n as f64,
            counts[1] as f64 / n as f64,
            counts[2] as f64 / n as f64,
            counts[3] as f64 / n as f64
        )
    };
    println!("requests per clip, sender:            {}", per(sent, CLIPS));
    println!(
        "requests per clip, receiver (poll):   {}",
        per(received, CLIPS / 2)
    );
    println!(
        "requests per clip, receiver (hint):   {}",
        per(hinted, CLIPS / 2)
    );
    println!("requests per idle poll:               {}", per(idle, 1));
}

fn add(total: &mut [u64; 4], counts: [u64; 4]) {
    for (t, c) in total.iter_mut().zip(counts) {
        *t += c;
    }
}

async fn cold_start(clips: usize) {
    let (_server, location) = servers::s3().await;
    let store: Arc<dyn Store> = Arc::new(ferry_store::S3Store::new(
        &location,
        servers::credentials(),
        Timeouts::default(),
    ));
    init(&*store).await;
    let per_device = clips / 3;
    let config = EngineConfig {
        snapshot_every: per_device as u64,
        ..common::config()
    };
    let homes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut writers = Vec::new();
    for home in &homes {
        let engine = engine_at(
            Arc::clone(&store),
            &home.path().join("ferry.db"),
            config.clone(),
        )
        .await
        .unwrap();
        writers.push(engine);
    }
    let started = Instant::now();
    for n in 0..per_device {
        writers[0].copy(text(0, n)).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "record(): {per_device} clips in {elapsed:.2} s = {:.0} ops/s (each a committed, fsynced transaction)",
        per_device as f64 / elapsed
    );
    for (d, writer) in writers.iter_mut().enumerate().skip(1) {
        for n in 0..per_device {
            writer.copy(text(d, n)).unwrap();
        }
    }
    let started = Instant::now();
    for writer in &mut writers {
        writer.upload().await.unwrap();
    }
    println!(
        "upload of {} clips in segments of 1000 (+ a snapshot per device): {:.2} s",
        per_device * 3,
        started.elapsed().as_secs_f64()
    );
    let db = homes[0].path().join("ferry.db");
    let size = std::fs::metadata(&db).unwrap().len()
        + std::fs::metadata(homes[0].path().join("ferry.db-wal")).map_or(0, |m| m.len());
    println!(
        "local database of a writer (its operations not yet folded into a checkpoint): \
         {:.1} MiB for {per_device} clips = {:.1} MiB per 100k clips",
        size as f64 / 1048576.0,
        size as f64 / 1048576.0 * 100_000.0 / per_device as f64
    );
    // A tail after the snapshots.
    for n in 0..10 {
        writers[0].copy(text(0, per_device + n)).unwrap();
    }
    writers[0].upload().await.unwrap();

    let counted = Arc::new(Instrumented::new(Arc::clone(&store), 0));
    let fresh_store: Arc<dyn Store> = counted.clone();
    let home = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut fresh = engine_at(fresh_store, &home.path().join("ferry.db"), common::config())
        .await
        .unwrap();
    let report = fresh.fetch().await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let [put, get, list, delete] = counted.counts.take();
    assert_eq!(fresh.state().stats().clips, per_device * 3 + 10);
    println!(
        "cold start: {} clips from 3 devices in {elapsed:.2} s, {} requests ({get} GET, {list} LIST, \
         {put} PUT, {delete} DELETE), {:.1} MiB read",
        per_device * 3 + 10,
        get + list + put + delete,
        report.bytes as f64 / 1048576.0
    );
    drop(fresh);
    let size = std::fs::metadata(home.path().join("ferry.db"))
        .unwrap()
        .len()
        + std::fs::metadata(home.path().join("ferry.db-wal")).map_or(0, |m| m.len());
    println!(
        "local database after the cold start (checkpoint + search index, no operation log): \
         {:.1} MiB for {} clips",
        size as f64 / 1048576.0,
        per_device * 3 + 10
    );
}

/// A rotation of a repository of `clips` clips and `blob_mib` MiB of images: how long until the
/// remaining devices read and write under the new key, in how many requests; then how long the
/// blobs take to be sealed again in the new generation; and how long a device that was away
/// takes to move when it comes back.
async fn rotation(clips: usize, blob_mib: usize) {
    use ferry_core::{Body, DataKind};
    use ferry_protocol::SyncKey;
    use std::collections::BTreeSet;

    let (_server, location) = servers::s3().await;
    let raw: Arc<dyn Store> = Arc::new(ferry_store::S3Store::new(
        &location,
        servers::credentials(),
        Timeouts::default(),
    ));
    init(&*raw).await;
    let counted = Arc::new(Instrumented::new(Arc::clone(&raw), 0));
    let store: Arc<dyn Store> = counted.clone();
    let config = EngineConfig {
        snapshot_every: clips as u64,
        // Blobs go in steps, as in the agent: the rotation is measured apart from them.
        large_in_steps: true,
        ..common::config()
    };
    let mut laptop = Device::open_with(Arc::clone(&store), config.clone()).await;
    let mut desk = Device::open_with(Arc::clone(&raw), config.clone()).await;
    let mut phone = Device::open_with(Arc::clone(&raw), config.clone()).await;
    laptop.engine.founded().unwrap();
    for device in [&mut laptop, &mut desk, &mut phone] {
        device.engine.sync().await.unwrap();
    }
    laptop.engine.sync().await.unwrap();
    for other in [&desk, &phone] {
        let (id, keys) = (other.engine.device(), other.identity().public());
        laptop.engine.vouch(id, keys).unwrap();
    }
    for n in 0..clips {
        laptop.engine.copy(text(0, n)).unwrap();
    }
    let image_len = 2 * 1024 * 1024;
    for n in 0..blob_mib / 2 {
        let bytes: Vec<u8> = (0..image_len).map(|i| (i * 7 + n * 13) as u8).collect();
        let content = ClipContent::image("image/png", Body::Inline(bytes));
        laptop.engine.copy(content).unwrap();
    }
    laptop.engine.upload().await.unwrap();
    while !matches!(
        laptop.engine.large_step().await.unwrap(),
        ferry_sync::LargeStep::Idle
    ) {}
    desk.engine.sync().await.unwrap();
    phone.engine.sync().await.unwrap();
    assert!(desk.engine.state_for(DataKind::Clips).stats().clips >= clips);

    // The laptop removes the phone; the desk is away.
    counted.counts.take();
    let started = Instant::now();
    let old = SyncKey::from_bytes([0x5A; 32]);
    let new = SyncKey::generate().unwrap();
    let plan = laptop
        .engine
        .rotation_plan(&[phone.engine.device()], &[])
        .unwrap();
    laptop
        .engine
        .rotate(&old, &new, None, &plan, ferry_sync::Destination::Here)
        .await
        .unwrap();
    laptop.engine.fetch().await.unwrap();
    let next = laptop
        .engine
        .next_generation(&BTreeSet::new())
        .await
        .unwrap()
        .unwrap();
    laptop
        .engine
        .follow(&next, Arc::clone(&store))
        .await
        .unwrap();
    laptop.engine.upload().await.unwrap();
    let moved = started.elapsed().as_secs_f64();
    let [put, get, list, delete] = counted.counts.take();
    println!(
        "rotation of {clips} clips and {blob_mib} MiB of images, until the devices read and write \
         under the new key: {moved:.2} s, {} requests ({put} PUT, {get} GET, {list} LIST, \
         {delete} DELETE)",
        put + get + list + delete
    );
    let started = Instant::now();
    let mut chunks = 0;
    loop {
        match laptop.engine.large_step().await.unwrap() {
            ferry_sync::LargeStep::Idle => break,
            _ => chunks += 1,
        }
    }
    let blobs = started.elapsed().as_secs_f64();
    let [put, get, list, delete] = counted.counts.take();
    println!(
        "then its blobs sealed again in the new generation: {blobs:.2} s for {blob_mib} MiB \
         ({:.0} MiB/s), {} requests ({put} PUT, {get} GET, {list} LIST, {delete} DELETE) for \
         {chunks} steps",
        blob_mib as f64 / blobs,
        put + get + list + delete
    );
    // The desk comes back.
    let started = Instant::now();
    desk.engine.fetch().await.unwrap();
    let listed = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let next = desk
        .engine
        .next_generation(&BTreeSet::new())
        .await
        .unwrap()
        .unwrap();
    desk.engine.follow(&next, Arc::clone(&raw)).await.unwrap();
    desk.engine.upload().await.unwrap();
    let desk_moved = started.elapsed().as_secs_f64();
    let started = Instant::now();
    desk.engine.fetch().await.unwrap();
    let caught_up = started.elapsed().as_secs_f64();
    assert_eq!(desk.engine.state().encode(), laptop.engine.state().encode());
    println!(
        "a device away during it: its poll {listed:.2} s, its move (choice, wrap, header, \
         snapshot of {clips} clips written) {desk_moved:.2} s, then the new generation read \
         {caught_up:.2} s"
    );
}

fn main() {
    let clips = std::env::var("FERRY_BENCH_CLIPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let blob_mib = std::env::var("FERRY_BENCH_BLOB_MIB")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    runtime.block_on(async {
        if only.as_deref().is_none_or(|only| only == "requests") {
            requests_per_clip().await;
        }
        if only.as_deref().is_none_or(|only| only == "cold") {
            cold_start(clips).await;
        }
        if only.as_deref().is_none_or(|only| only == "rotation") {
            rotation(clips, blob_mib).await;
        }
    });
}
