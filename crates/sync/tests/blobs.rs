//! Large content: images and files above the threshold travel as sealed chunks under `blob/`,
//! uploaded before the operation that names them; receivers fetch them eagerly or on demand,
//! resume an interrupted download from the chunks they hold, and refuse damaged ones.

mod common;

use std::sync::Arc;

use common::{Device, Instrumented, config, init, per_backend, storage};
use ferry_core::{Body, ClipContent};
use ferry_protocol::names::ROOT;
use ferry_protocol::{BlobId, ObjectName};
use ferry_store::{ANY_SIZE, Store};
use ferry_sync::transfer::{Kind, Outcome};
use ferry_sync::{EngineConfig, SyncError};

const CHUNK: usize = 64 * 1024;

fn blobby(eager: u64) -> EngineConfig {
    let mut config = config();
    config.blob_threshold = 16 * 1024;
    config.blob_chunk = CHUNK;
    config.eager_blob_bytes = eager;
    config
}

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Copies an image and returns its blob id, as the recorded clip names it.
fn copy_image(device: &mut Device, bytes: Vec<u8>) -> BlobId {
    let op = device
        .engine
        .copy(ClipContent::image("image/png", Body::Inline(bytes)))
        .unwrap()
        .unwrap();
    match op.action {
        ferry_core::Action::Copy {
            content: ClipContent::Image(image),
            ..
        } if let Body::Blob { id, .. } = image.body => id,
        other => panic!("not stored as a blob: {other:?}"),
    }
}

fn chunk_path(id: BlobId, chunk: u32) -> String {
    format!("{ROOT}{}", ObjectName::Blob { blob: id, chunk })
}

per_backend! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_images_travel_as_chunks_and_arrive_whole(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let counted = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
        let store: Arc<dyn Store> = counted.clone();
        let mut sender = Device::open_with(Arc::clone(&store), blobby(u64::MAX)).await;
        let mut eager = Device::open_with(Arc::clone(&store), blobby(u64::MAX)).await;
        let mut lazy = Device::open_with(Arc::clone(&store), blobby(0)).await;
        let bytes = image(300 * 1024, 7);
        counted.counts.take();
        let id = copy_image(&mut sender, bytes.clone());
        sender.engine.upload().await.unwrap();
        let [put, _, _, _] = counted.counts.take();
        assert_eq!(
            put,
            5 + 2,
            "{backend:?}: five 64 KiB chunks, then segment and head"
        );

        // Eager: the blob comes with the fetch, and reading it needs no request.
        eager.engine.fetch().await.unwrap();
        counted.counts.take();
        assert_eq!(eager.engine.blob(id).await.unwrap(), bytes);
        assert_eq!(counted.counts.take(), [0, 0, 0, 0]);

        // Lazy: the clip is there at once; its bytes come when asked for, then stay.
        lazy.engine.fetch().await.unwrap();
        assert_eq!(lazy.engine.state().stats().clips, 1);
        counted.counts.take();
        assert_eq!(lazy.engine.blob(id).await.unwrap(), bytes);
        assert_eq!(
            counted.counts.take()[1],
            5,
            "{backend:?}: one GET per chunk"
        );
        assert_eq!(lazy.engine.blob(id).await.unwrap(), bytes);
        assert_eq!(counted.counts.take()[1], 0);

        // The same image copied again is the same blob: nothing more to upload.
        let again = copy_image(&mut sender, bytes.clone());
        assert_eq!(again, id);
        sender.engine.upload().await.unwrap();
        assert_eq!(
            counted.counts.take()[0],
            2,
            "{backend:?}: segment and head only"
        );

        // Small images stay inside the segment.
        let small = sender
            .engine
            .copy(ClipContent::image(
                "image/png",
                Body::Inline(image(1000, 1)),
            ))
            .unwrap()
            .unwrap();
        assert!(matches!(
            small.action,
            ferry_core::Action::Copy {
                content: ClipContent::Image(ref image),
                ..
            } if matches!(image.body, Body::Inline(_))
        ));
    }
}

per_backend! {
    #[tokio::test]
    async fn an_interrupted_download_resumes_from_the_last_good_chunk(backend) {
        let storage = storage(backend).await;
        init(&*storage.store).await;
        let counted = Arc::new(Instrumented::new(Arc::clone(&storage.store), 0));
        let store: Arc<dyn Store> = counted.clone();
        let mut sender = Device::open_with(Arc::clone(&store), blobby(0)).await;
        let mut receiver = Device::open_with(Arc::clone(&store), blobby(0)).await;
        let bytes = image(5 * CHUNK - 100, 3);
        let id = copy_image(&mut sender, bytes.clone());
        sender.engine.upload().await.unwrap();
        receiver.engine.fetch().await.unwrap();

        // Chunk 3 is unreachable for now: the download stops there, keeping chunks 0..3.
        let third = storage.store.get(&chunk_path(id, 3), ANY_SIZE).await.unwrap();
        storage.store.delete(&chunk_path(id, 3)).await.unwrap();
        let error = receiver.engine.blob(id).await.unwrap_err();
        assert!(matches!(error, SyncError::Store(_)), "{backend:?}: {error}");

        storage.store.put(&chunk_path(id, 3), third).await.unwrap();
        counted.counts.take();
        assert_eq!(receiver.engine.blob(id).await.unwrap(), bytes);
        assert_eq!(
            counted.counts.take()[1],
            2,
            "{backend:?}: only chunks 3 and 4 fetched"
        );
    }
}

#[tokio::test]
async fn a_damaged_or_swapped_chunk_is_refused_with_its_name() {
    let storage = storage(common::Backend::Folder).await;
    init(&*storage.store).await;
    let mut sender = Device::open_with(Arc::clone(&storage.store), blobby(0)).await;
    let first = copy_image(&mut sender, image(3 * CHUNK, 1));
    let second = copy_image(&mut sender, image(3 * CHUNK, 2));
    sender.engine.upload().await.unwrap();

    let mut receiver = Device::open_with(Arc::clone(&storage.store), blobby(0)).await;
    receiver.engine.fetch().await.unwrap();
    // A bit flipped in chunk 1.
    let mut damaged = storage
        .store
        .get(&chunk_path(first, 1), ANY_SIZE)
        .await
        .unwrap();
    damaged[50] ^= 0x10;
    storage
        .store
        .put(&chunk_path(first, 1), damaged)
        .await
        .unwrap();
    let error = receiver.engine.blob(first).await.unwrap_err();
    assert!(
        matches!(&error, SyncError::BrokenBlob { name, .. } if name.ends_with("/00000001")),
        "{error}"
    );
    // Another blob's chunk at this name does not open either (the name is sealed in).
    let foreign = storage
        .store
        .get(&chunk_path(second, 0), ANY_SIZE)
        .await
        .unwrap();
    storage
        .store
        .put(&chunk_path(first, 0), foreign)
        .await
        .unwrap();
    assert!(matches!(
        receiver.engine.blob(first).await,
        Err(SyncError::BrokenBlob { .. })
    ));
    // The other blob is unaffected, and the failure shows in the status and the log.
    assert_eq!(
        receiver.engine.blob(second).await.unwrap(),
        image(3 * CHUNK, 2)
    );
    assert!(!receiver.engine.status().unwrap().problems.is_empty());
    assert!(
        receiver
            .engine
            .transfers(20)
            .unwrap()
            .iter()
            .any(|t| t.kind == Kind::Blob && t.outcome == Outcome::Failed)
    );
}
