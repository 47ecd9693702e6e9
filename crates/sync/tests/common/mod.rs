//! Shared helpers: the three backends with their servers, devices, and a store wrapper that
//! counts requests and fails some of them on purpose.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::{ClipContent, DataKind, Op, Replica};
use ferry_protocol::names::ROOT;
use ferry_protocol::{Keys, NamesKey, ObjectName, SyncKey};
use ferry_store::{ListPage, RetryPolicy, Store, StoreError};
use ferry_sync::{Engine, EngineConfig, repo};

#[allow(unused_imports)]
pub use ferry_test_kit::{BACKENDS, Backend, Served, identity_for, per_backend, servers};

/// A running backend and the store opened on it.
pub struct Storage {
    pub store: Arc<dyn Store>,
    pub served: Served,
}

pub async fn storage(backend: Backend) -> Storage {
    let served = Served::start(backend).await;
    Storage {
        store: served.open(),
        served,
    }
}

pub fn keys() -> Keys {
    SyncKey::from_bytes([0x5A; 32]).keys()
}

pub fn other_keys() -> Keys {
    SyncKey::from_bytes([0xA5; 32]).keys()
}

/// Retries quickly, so that tests with failing storage stay fast.
pub const FAST_RETRY: RetryPolicy = RetryPolicy {
    first_delay: Duration::from_millis(1),
    max_delay: Duration::from_millis(5),
    deadline: Duration::from_secs(5),
    max_attempts: 4,
};

pub fn config() -> EngineConfig {
    EngineConfig {
        retry: FAST_RETRY,
        ..EngineConfig::default()
    }
}

/// The engine of the device whose database is at `database`, with the test key and that
/// device's identity.
pub async fn engine_at(
    store: Arc<dyn Store>,
    database: &std::path::Path,
    config: EngineConfig,
) -> Result<Engine, ferry_sync::SyncError> {
    Engine::open(store, keys(), identity_for(database), database, config).await
}

/// A device: its engine and its home folder.
pub struct Device {
    pub engine: Engine,
    pub home: tempfile::TempDir,
}

impl Device {
    pub async fn open(store: Arc<dyn Store>) -> Device {
        Device::open_with(store, config()).await
    }

    /// A new device. Its registration in the roster is its first operation, pending until its
    /// first upload.
    pub async fn open_with(store: Arc<dyn Store>, config: EngineConfig) -> Device {
        let home = tempfile::tempdir().unwrap();
        let engine = engine_at(store, &home.path().join("ferry.db"), config)
            .await
            .unwrap();
        Device { engine, home }
    }

    pub async fn reopen(self, store: Arc<dyn Store>) -> Device {
        self.reopen_with(store, config()).await
    }

    pub async fn reopen_with(self, store: Arc<dyn Store>, config: EngineConfig) -> Device {
        let Device { engine, home } = self;
        drop(engine);
        let engine = engine_at(store, &home.path().join("ferry.db"), config)
            .await
            .unwrap();
        Device { engine, home }
    }

    /// The identity this device signs with.
    pub fn identity(&self) -> ferry_protocol::Identity {
        identity_for(&self.home.path().join("ferry.db"))
    }

    pub fn copy(&mut self, text: &str) -> Op {
        self.engine
            .record(
                DataKind::Clips,
                |replica: &mut Replica, names: &NamesKey, now| {
                    replica.copy(names, ClipContent::Text(text.to_owned()), now)
                },
            )
            .unwrap()
    }

    /// Copies "clip {n}" for each `n` of `clips`, uploading each in its own segment.
    pub async fn upload_clips(&mut self, clips: std::ops::RangeInclusive<u32>) {
        for n in clips {
            self.copy(&format!("clip {n}"));
            self.engine.upload().await.unwrap();
        }
    }

    pub fn texts(&self) -> Vec<String> {
        let mut texts: Vec<String> = self
            .engine
            .state()
            .history(None, usize::MAX)
            .into_iter()
            .filter_map(|clip| clip.content.text().map(str::to_owned))
            .collect();
        texts.sort();
        texts
    }
}

/// Syncs every device twice over, so that each has what the others had.
pub async fn sync_all(devices: &mut [Device]) {
    for _ in 0..2 {
        for device in devices.iter_mut() {
            device.engine.sync().await.unwrap();
        }
    }
}

/// Every device holds the same state.
pub fn assert_converged(devices: &[Device]) {
    let first = devices[0].engine.state().encode();
    for device in &devices[1..] {
        assert!(device.engine.state().encode() == first, "states differ");
    }
}

/// The names stored under `prefix` (below the repository root).
pub async fn names_under(store: &dyn Store, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&format!("{ROOT}{prefix}"), after.as_deref(), 1000)
            .await
            .unwrap();
        names.extend(page.objects.into_iter().map(|o| o.name));
        match page.next {
            Some(next) => after = Some(next),
            None => return names,
        }
    }
}

/// Writes `bytes` at an object name directly, as hostile or broken storage would.
pub async fn plant(store: &dyn Store, name: &ObjectName, bytes: Vec<u8>) {
    store.put(&format!("{ROOT}{name}"), bytes).await.unwrap();
}

/// The bytes stored at an object name, read directly.
pub async fn raw(store: &dyn Store, name: &ObjectName) -> Vec<u8> {
    store
        .get(&format!("{ROOT}{name}"), ferry_store::ANY_SIZE)
        .await
        .unwrap()
}

/// Creates the repository in `store`.
pub async fn init(store: &dyn Store) {
    repo::init(store, &keys(), None, &FAST_RETRY).await.unwrap();
}

/// Request counts per kind.
#[derive(Default)]
pub struct Counts {
    pub put: AtomicU64,
    pub get: AtomicU64,
    pub list: AtomicU64,
    pub delete: AtomicU64,
}

impl Counts {
    pub fn take(&self) -> [u64; 4] {
        [
            self.put.swap(0, Ordering::Relaxed),
            self.get.swap(0, Ordering::Relaxed),
            self.list.swap(0, Ordering::Relaxed),
            self.delete.swap(0, Ordering::Relaxed),
        ]
    }
}

/// Wraps a real store: counts every request, and fails one in `fail_one_in` of them (0: none)
/// with a transient error, before or after the real request (an answer lost on the way back).
/// Reads and listings of names under a `denied` prefix fail every time, as a server failing
/// on one object does.
pub struct Instrumented {
    pub inner: Arc<dyn Store>,
    pub counts: Arc<Counts>,
    pub fail_one_in: u64,
    pub denied: Mutex<Vec<String>>,
    rng: Mutex<Rng>,
}

impl std::fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Instrumented(fails 1 in {})", self.fail_one_in)
    }
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Store>, fail_one_in: u64) -> Self {
        Instrumented {
            inner,
            counts: Arc::new(Counts::default()),
            fail_one_in,
            denied: Mutex::new(Vec::new()),
            rng: Mutex::new(Rng::new(0x9E37_79B9)),
        }
    }

    /// Fails every read and listing of names below `prefix` (under the repository root).
    pub fn deny(&self, prefix: &str) {
        self.denied.lock().unwrap().push(format!("{ROOT}{prefix}"));
    }

    /// Serves everything again.
    pub fn allow_all(&self) {
        self.denied.lock().unwrap().clear();
    }

    fn refuse(&self, name: &str) -> Result<(), StoreError> {
        if self
            .denied
            .lock()
            .unwrap()
            .iter()
            .any(|p| name.starts_with(p))
        {
            return Err(StoreError::ServerFailed {
                backend: "test",
                detail: format!("HTTP 500 on {name}"),
            });
        }
        Ok(())
    }

    /// Decides this request's fate: None = go through; Some(true) = fail before, Some(false) =
    /// do it, then fail.
    fn fate(&self) -> Option<bool> {
        if self.fail_one_in == 0 {
            return None;
        }
        let x = self.rng.lock().unwrap().next_u64();
        x.is_multiple_of(self.fail_one_in).then_some(x & 0x100 == 0)
    }

    fn injected() -> StoreError {
        StoreError::Transient {
            backend: "test",
            detail: "injected failure".into(),
        }
    }
}

macro_rules! faulty {
    ($self:ident, $call:expr) => {{
        match $self.fate() {
            Some(true) => Err(Instrumented::injected()),
            Some(false) => {
                let _ = $call;
                Err(Instrumented::injected())
            }
            None => $call,
        }
    }};
}

#[async_trait]
impl Store for Instrumented {
    async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.counts.put.fetch_add(1, Ordering::Relaxed);
        faulty!(self, self.inner.put_new(name, bytes.clone()).await)
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.counts.put.fetch_add(1, Ordering::Relaxed);
        faulty!(self, self.inner.put(name, bytes.clone()).await)
    }

    async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        self.counts.get.fetch_add(1, Ordering::Relaxed);
        self.refuse(name)?;
        faulty!(self, self.inner.get(name, limit).await)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        self.counts.list.fetch_add(1, Ordering::Relaxed);
        self.refuse(prefix)?;
        faulty!(self, self.inner.list(prefix, start_after, limit).await)
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.counts.delete.fetch_add(1, Ordering::Relaxed);
        faulty!(self, self.inner.delete(name).await)
    }

    /// One request, as on S3 (up to a thousand names).
    async fn delete_many(&self, names: &[String]) -> Result<(), StoreError> {
        self.counts.delete.fetch_add(1, Ordering::Relaxed);
        faulty!(self, self.inner.delete_many(names).await)
    }
}

/// A small deterministic random source for interleavings.
pub use ferry_test_kit::random::Rng;
