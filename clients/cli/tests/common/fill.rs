//! A history made quickly for benchmarks: clips copied through the sync engine itself, in the
//! device's own database, and uploaded.

use std::time::Instant;

use ferry_core::ClipContent;
use ferry_protocol::{Identity, SyncKey};
use ferry_store::s3::Timeouts;
use ferry_store::{FolderStore, S3Store, Store};
use ferry_sync::{Engine, EngineConfig};

use super::{Device, Storage};

/// Fills `device`'s database with `clips` clips (and uploads them) through the engine itself.
pub fn fill(device: &Device, storage: &Storage, clips: usize) {
    let secrets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(device.home().join("secrets.json")).unwrap())
            .unwrap();
    let key = SyncKey::from_recovery_code(secrets["sync-key"].as_str().unwrap()).unwrap();
    let identity = Identity::from_hex(secrets["device-identity"].as_str().unwrap()).unwrap();
    let store: std::sync::Arc<dyn Store> = if storage.url.starts_with("s3://") {
        let ferry_store::url::StoreUrl::S3(location) =
            ferry_store::url::StoreUrl::parse(&storage.url).unwrap()
        else {
            unreachable!()
        };
        std::sync::Arc::new(S3Store::new(
            &location,
            super::servers::credentials(),
            Timeouts::default(),
        ))
    } else {
        std::sync::Arc::new(FolderStore::open(storage.url.trim_start_matches("file://")).unwrap())
    };
    storage.runtime.block_on(async {
        let mut engine = Engine::open(
            store,
            key.keys(),
            identity,
            &device.home().join("ferry.db"),
            EngineConfig::default(),
        )
        .await
        .unwrap();
        let started = Instant::now();
        for i in 0..clips {
            engine
                .copy(ClipContent::Text(format!(
                    "history clip {i}: some text of a typical length for a copied line"
                )))
                .unwrap();
            if i % 5_000 == 4_999 {
                engine.upload().await.unwrap();
            }
        }
        engine.upload().await.unwrap();
        eprintln!(
            "filled {clips} clips in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    });
}
