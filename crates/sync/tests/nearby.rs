//! Segments passed directly between devices: applied at once, checked exactly as from storage,
//! and never applied twice when storage serves them later; the images they name, asked of the
//! sender and taken chunk by chunk with the same checks.

mod common;

use std::sync::Arc;

use common::{Device, config, init, keys, other_keys, per_backend, raw, storage};
use ferry_core::{Body, ClipContent};
use ferry_protocol::{BlobChunk, Identity, ObjectName, Segment};
use ferry_sync::transfer::{Kind, Outcome, Route};
use ferry_sync::{ChunkReceived, NearbyChunk, NearbySegment, Received};

/// The one segment `device` seals for what it recorded since the last.
fn seal_one(device: &mut Device) -> NearbySegment {
    let mut sealed = device.engine.seal_pending().unwrap();
    assert_eq!(sealed.len(), 1);
    sealed.remove(0)
}

fn refused(received: Received, says: &str) {
    match received {
        Received::Refused(reason) => assert!(reason.contains(says), "{reason}"),
        other => panic!("not refused: {other:?}"),
    }
}

per_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_segment_from_a_nearby_device_applies_at_once_and_storage_brings_no_duplicate(
        backend
    ) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let mut a = Device::open(Arc::clone(&storage.store)).await;
        let mut b = Device::open(Arc::clone(&storage.store)).await;
        // B has never heard of A: A's first segment carries its registration.
        a.copy("over the desk");
        let segment = seal_one(&mut a);
        assert_eq!(
            b.engine.receive(segment.clone()).unwrap(),
            Received::Applied { ops: 2, blobs: Vec::new() }
        );
        assert_eq!(b.texts(), ["over the desk"]);
        let log = b.engine.transfers(10).unwrap();
        assert!(log.iter().any(|t| t.direction == Route::Nearby && t.outcome == Outcome::Ok));

        // Storage does not have it yet: polling it is not a rollback, and fetches nothing.
        b.engine.fetch().await.unwrap();
        assert!(b.engine.status().unwrap().problems.is_empty());

        // A uploads the very bytes it sent; B's next poll finds nothing new to apply.
        a.engine.upload().await.unwrap();
        let name = ObjectName::Log { device: segment.device, seq: segment.seq };
        assert_eq!(raw(&*storage.store, &name).await, segment.sealed);
        let fetched = b.engine.fetch().await.unwrap();
        assert_eq!(fetched.segments, 0, "{backend:?}");
        assert_eq!(b.texts(), ["over the desk"]);
        assert_eq!(b.engine.receive(segment).unwrap(), Received::Already);
        let status = b.engine.status().unwrap();
        assert!(status.problems.is_empty(), "{:?}", status.problems);
        assert_eq!(b.engine.state().history(None, 10).len(), 1);
    }
}

#[tokio::test]
async fn altered_cut_foreign_misnamed_and_forged_segments_are_refused_and_nothing_is_lost() {
    let storage = storage(common::Backend::Folder).await;
    init(&*storage.store).await;
    let mut a = Device::open(Arc::clone(&storage.store)).await;
    let mut b = Device::open(Arc::clone(&storage.store)).await;
    a.copy("first");
    let first = seal_one(&mut a);
    assert_eq!(
        b.engine.receive(first.clone()).unwrap(),
        Received::Applied {
            ops: 2,
            blobs: Vec::new()
        }
    );
    a.copy("second");
    let second = seal_one(&mut a);

    let mut altered = second.clone();
    let middle = altered.sealed.len() / 2;
    altered.sealed[middle] ^= 1;
    refused(b.engine.receive(altered).unwrap(), "");

    let mut cut = second.clone();
    cut.sealed.truncate(cut.sealed.len() - 7);
    refused(b.engine.receive(cut).unwrap(), "");

    // Sealed for another name: its seq is bound into the seal.
    let mut misnamed = second.clone();
    misnamed.seq += 1;
    refused(b.engine.receive(misnamed).unwrap(), "");

    // Sealed with another sync key.
    let name = ObjectName::Log {
        device: second.device,
        seq: second.seq,
    };
    let segment: Segment = keys()
        .data
        .open_signed(&name, &second.sealed)
        .unwrap()
        .value;
    let foreign = other_keys()
        .data
        .seal_signed(&name, &segment, &a.identity())
        .unwrap();
    let foreign = NearbySegment {
        sealed: foreign.into_bytes(),
        ..second.clone()
    };
    refused(b.engine.receive(foreign).unwrap(), "key");

    // Sealed with the right key by someone posing as A (a lost device holding the key).
    let forged = keys()
        .data
        .seal_signed(&name, &segment, &Identity::generate().unwrap())
        .unwrap();
    let forged = NearbySegment {
        sealed: forged.into_bytes(),
        ..second.clone()
    };
    refused(b.engine.receive(forged).unwrap(), "");

    // A segment under B's own name is not taken from anyone.
    b.copy("mine");
    let own = seal_one(&mut b);
    assert_eq!(b.engine.receive(own).unwrap(), Received::Ignored);

    // Replayed: already applied.
    assert_eq!(b.engine.receive(first).unwrap(), Received::Already);

    // None of it changed anything; the real one still applies, and nothing was quarantined.
    assert_eq!(b.texts(), ["first", "mine"]);
    assert_eq!(
        b.engine.receive(second).unwrap(),
        Received::Applied {
            ops: 1,
            blobs: Vec::new()
        }
    );
    assert_eq!(b.texts(), ["first", "mine", "second"]);
    let status = b.engine.status().unwrap();
    assert!(status.quarantined.is_empty());
    let refusals = b
        .engine
        .transfers(50)
        .unwrap()
        .into_iter()
        .filter(|t| t.direction == Route::Nearby && t.outcome == Outcome::Failed)
        .count();
    assert_eq!(refusals, 5);
}

#[tokio::test]
async fn a_segment_ahead_waits_and_heads_bring_what_is_missing_in_order() {
    let storage = storage(common::Backend::Folder).await;
    init(&*storage.store).await;
    let mut a = Device::open(Arc::clone(&storage.store)).await;
    let mut b = Device::open(Arc::clone(&storage.store)).await;
    let mut sealed = Vec::new();
    for n in 1..=3 {
        a.copy(&format!("clip {n}"));
        sealed.push(seal_one(&mut a));
    }
    // The newest arrives first (a connection replaced mid-way): it waits.
    assert_eq!(
        b.engine.receive(sealed[2].clone()).unwrap(),
        Received::Ahead
    );
    assert!(b.texts().is_empty());
    // On connect, B tells A its heads; A sends what B lacks, oldest first.
    let lacking = a.engine.segments_for(&b.engine.heads().unwrap()).unwrap();
    assert_eq!(lacking, sealed);
    for segment in lacking {
        assert!(matches!(
            b.engine.receive(segment).unwrap(),
            Received::Applied { .. }
        ));
    }
    assert_eq!(b.texts(), ["clip 1", "clip 2", "clip 3"]);
    // And a device that has everything is sent nothing.
    assert!(
        a.engine
            .segments_for(&b.engine.heads().unwrap())
            .unwrap()
            .is_empty()
    );
    // A's heads name its own newest segment.
    let tag = sealed[0].device;
    assert!(a.engine.heads().unwrap().contains(&(tag, 3)));
}

/// An image copied on `device`, big enough to go as three chunks.
fn copy_image(device: &mut Device, bytes: &[u8]) {
    device
        .engine
        .copy(ClipContent::image(
            "image/png",
            Body::Inline(bytes.to_vec()),
        ))
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_image_from_a_nearby_device_is_asked_for_and_arrives_chunk_by_chunk() {
    let storage = storage(common::Backend::Folder).await;
    init(&*storage.store).await;
    let mut blobby = config();
    blobby.blob_threshold = 16 * 1024;
    blobby.blob_chunk = 16 * 1024;
    let mut a = Device::open_with(Arc::clone(&storage.store), blobby.clone()).await;
    let mut b = Device::open_with(Arc::clone(&storage.store), blobby).await;
    let image: Vec<u8> = (0..40 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    copy_image(&mut a, &image);
    // Nothing went to storage: B has only what A hands it.
    let Received::Applied { blobs, .. } = b.engine.receive(seal_one(&mut a)).unwrap() else {
        panic!("not applied");
    };
    let [blob] = blobs[..] else {
        panic!("{blobs:?}")
    };
    let chunks = a.engine.blob_chunks(blob).unwrap();
    assert_eq!(chunks.len(), 3);
    assert!(
        b.engine.blob_chunks(blob).unwrap().is_empty(),
        "B does not hold it yet"
    );

    // Altered, foreign-key and misplaced chunks are refused, and what was held of the blob
    // is dropped; the genuine chunks then still make it whole.
    let mut altered = chunks[0].clone();
    altered.sealed[40] ^= 1;
    let refused = |received: ChunkReceived| {
        assert!(
            matches!(received, ChunkReceived::Refused(_)),
            "{received:?}"
        );
    };
    refused(b.engine.receive_chunk(altered).unwrap());
    let name = ObjectName::Blob { blob, chunk: 1 };
    let opened: BlobChunk = keys().data.open_object(&name, &chunks[1].sealed).unwrap();
    let foreign = other_keys().data.seal_object(&name, &opened).unwrap();
    refused(
        b.engine
            .receive_chunk(NearbyChunk {
                sealed: foreign.into_bytes(),
                ..chunks[1].clone()
            })
            .unwrap(),
    );
    // Chunk 1's bytes offered as chunk 2: its name is bound into the seal.
    let misplaced = NearbyChunk {
        index: 2,
        ..chunks[1].clone()
    };
    assert_eq!(
        b.engine.receive_chunk(chunks[0].clone()).unwrap(),
        ChunkReceived::Kept
    );
    refused(b.engine.receive_chunk(misplaced).unwrap());

    for (n, chunk) in chunks.iter().enumerate() {
        let expected = if n == 2 {
            ChunkReceived::Complete
        } else {
            ChunkReceived::Kept
        };
        assert_eq!(b.engine.receive_chunk(chunk.clone()).unwrap(), expected);
    }
    assert_eq!(b.engine.blob(blob).await.unwrap(), image);
    // Replayed once whole: nothing to do.
    assert_eq!(
        b.engine.receive_chunk(chunks[0].clone()).unwrap(),
        ChunkReceived::Already
    );
    let log = b.engine.transfers(20).unwrap();
    assert!(
        log.iter().any(|t| t.direction == Route::Nearby
            && t.kind == Kind::Blob
            && t.outcome == Outcome::Ok)
    );
    assert!(log.iter().any(|t| t.direction == Route::Nearby
        && t.kind == Kind::Blob
        && t.outcome == Outcome::Failed));
}
