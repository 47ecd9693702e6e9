//! The repository in storage, spoken to by object name: every request goes through the
//! retry policy, and every store path is made here, below the root of the generation it
//! speaks to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ferry_protocol::names::{HEAD_PREFIX, SNAP_PREFIX};
use ferry_protocol::{DeviceTag, ObjectName};
use ferry_store::{RetryPolicy, Store, StoreError};
use tracing::debug;

use crate::SyncError;
use crate::engine::StorageHealth;

/// What a write-once PUT accepts when the name already holds bytes (a retry after a crash or
/// a lost answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfPresent {
    /// The stored bytes must be these very bytes (segments: sealed once, kept until uploaded).
    SameBytes,
    /// Whatever is there stands (objects sealed again with the same content, or content-named).
    Keep,
}

/// The store and the retry policy, together, speaking to one generation of the repository.
pub(crate) struct Remote {
    store: Arc<dyn Store>,
    /// The generation's folder below the store's prefix (SPEC §11.1).
    root: String,
    retry: RetryPolicy,
    /// Whether the storage answered its last request, and since when.
    health: Mutex<Option<StorageHealth>>,
    /// Whether the last listing of `head/` showed a candidate for the next generation.
    next_listed: AtomicBool,
}

impl Remote {
    pub(crate) fn new(store: Arc<dyn Store>, retry: RetryPolicy, root: String) -> Remote {
        Remote {
            store,
            root,
            retry,
            health: Mutex::new(None),
            next_listed: AtomicBool::new(false),
        }
    }

    /// The store path of an object.
    pub(crate) fn path(&self, name: &ObjectName) -> String {
        format!("{}{name}", self.root)
    }

    /// Parses a store path back into an object name; `None` for anything that is not one of
    /// this generation's.
    pub(crate) fn parse(&self, path: &str) -> Option<ObjectName> {
        path.strip_prefix(&self.root)?.parse().ok()
    }

    /// The generation's folder below the store's prefix.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The store itself, for what speaks to more than one generation.
    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The store, to share with another generation's.
    pub(crate) fn shared_store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Whether the last listing of `head/` showed a candidate for the next generation.
    pub(crate) fn next_listed(&self) -> bool {
        self.next_listed.load(Ordering::Relaxed)
    }

    /// The retry policy its requests follow.
    pub(crate) fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Whether the storage answered its last request (`None` before the first).
    pub(crate) fn health(&self) -> Option<StorageHealth> {
        self.health.lock().map_or(None, |health| health.clone())
    }

    /// Notes how the storage answered a request (after its retries). An answer that refuses
    /// (not found, not allowed, already there) is an answer; no connection, a timeout or a
    /// server failing is not.
    fn seen<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let failure = match &result {
            Err(
                error @ (StoreError::Unreachable { .. }
                | StoreError::Transient { .. }
                | StoreError::ServerFailed { .. }),
            ) => Some(error.to_string()),
            _ => None,
        };
        if let Ok(mut health) = self.health.lock() {
            let answering = failure.is_none();
            match health.as_mut() {
                Some(now) if now.answering == answering => now.error = failure,
                _ => {
                    *health = Some(StorageHealth {
                        answering,
                        since: SystemTime::now(),
                        error: failure,
                    })
                }
            }
        }
        result
    }

    pub(crate) fn set_retry(&mut self, retry: RetryPolicy) {
        self.retry = retry;
    }

    /// The object's bytes, if it is no larger than an object of its kind may be (SPEC §2):
    /// a larger one is not read.
    pub(crate) async fn get(&self, name: &ObjectName) -> Result<Vec<u8>, StoreError> {
        let path = self.path(name);
        let limit = name.kind().max_sealed() as u64;
        self.seen(self.retry.run(|| self.store.get(&path, limit)).await)
    }

    /// Deletes the object (deleting what is not there succeeds).
    pub(crate) async fn delete(&self, name: &ObjectName) -> Result<(), StoreError> {
        let path = self.path(name);
        self.seen(self.retry.run(|| self.store.delete(&path)).await)
    }

    /// Deletes the objects in as few requests as the storage allows.
    pub(crate) async fn delete_many(&self, names: &[ObjectName]) -> Result<(), StoreError> {
        let paths: Vec<String> = names.iter().map(|name| self.path(name)).collect();
        self.seen(self.retry.run(|| self.store.delete_many(&paths)).await)
    }

    /// Writes `bytes` at `name` once; what is already there is judged by `if_present`.
    pub(crate) async fn put_once(
        &self,
        name: &ObjectName,
        bytes: &[u8],
        if_present: IfPresent,
    ) -> Result<(), SyncError> {
        let path = self.path(name);
        match self.seen(
            self.retry
                .run(|| self.store.put_new(&path, bytes.to_vec()))
                .await,
        ) {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists { .. }) if if_present == IfPresent::Keep => Ok(()),
            Err(StoreError::AlreadyExists { .. }) => {
                if self.get(name).await? == bytes {
                    Ok(())
                } else {
                    Err(SyncError::Divergent { name: path })
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Writes `bytes` at `name` whatever is there: only for a name that is this device's alone
    /// and holds bytes it did not write.
    pub(crate) async fn overwrite(&self, name: &ObjectName, bytes: &[u8]) -> Result<(), SyncError> {
        let path = self.path(name);
        self.seen(
            self.retry
                .run(|| self.store.put(&path, bytes.to_vec()))
                .await,
        )?;
        Ok(())
    }

    /// Writes `bytes` at `name` once. `None` when they are stored (now, or by an earlier try);
    /// otherwise what the name already holds, for the caller to judge (empty when it cannot be
    /// read as an object of its kind: too large, or not a file).
    pub(crate) async fn put_or_read(
        &self,
        name: &ObjectName,
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, SyncError> {
        let path = self.path(name);
        match self.seen(
            self.retry
                .run(|| self.store.put_new(&path, bytes.to_vec()))
                .await,
        ) {
            Ok(()) => Ok(None),
            Err(StoreError::AlreadyExists { .. }) => match self.get(name).await {
                Ok(found) if found == bytes => Ok(None),
                Ok(found) => Ok(Some(found)),
                Err(error) if error.is_bad_object() => Ok(Some(Vec::new())),
                Err(error) => Err(error.into()),
            },
            Err(error) => Err(error.into()),
        }
    }

    /// Every object whose path starts with `prefix` (below the root), with its size; names
    /// that are not Ferry's are left out.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<(ObjectName, u64)>, StoreError> {
        let prefix = format!("{}{prefix}", self.root);
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.seen(
                self.retry
                    .run(|| {
                        self.store
                            .list(&prefix, after.as_deref(), ferry_store::MAX_PAGE)
                    })
                    .await,
            )?;
            for object in page.objects {
                match self.parse(&object.name) {
                    Some(name) => found.push((name, object.size)),
                    None => debug!(name = %object.name, "ignoring a stray object"),
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// The newest head of every device, from the names alone (one LIST for an idle poll),
    /// which also shows whether a candidate for the next generation (`head/next/`) is there.
    pub(crate) async fn heads(&self) -> Result<BTreeMap<DeviceTag, u64>, StoreError> {
        let mut heads = BTreeMap::new();
        let mut next = false;
        for (name, _) in self.list(HEAD_PREFIX).await? {
            match name {
                ObjectName::Head { device, seq } => {
                    let newest = heads.entry(device).or_insert(seq);
                    *newest = (*newest).max(seq);
                }
                ObjectName::Next { .. } => next = true,
                other => debug!(name = %other, "ignoring a stray object under head/"),
            }
        }
        self.next_listed.store(next, Ordering::Relaxed);
        Ok(heads)
    }

    /// The segments stored for the device of `tag`: seq → size.
    pub(crate) async fn segments(&self, tag: DeviceTag) -> Result<BTreeMap<u64, u64>, StoreError> {
        Ok(self
            .list(&ObjectName::log_prefix(&tag))
            .await?
            .into_iter()
            .filter_map(|(name, size)| match name {
                ObjectName::Log { device, seq } if device == tag => Some((seq, size)),
                _ => None,
            })
            .collect())
    }

    /// The snapshots stored for the device of `tag`: seq → size.
    pub(crate) async fn snapshots(&self, tag: DeviceTag) -> Result<BTreeMap<u64, u64>, StoreError> {
        Ok(self
            .list(&format!("{SNAP_PREFIX}{tag}/"))
            .await?
            .into_iter()
            .filter_map(|(name, size)| match name {
                ObjectName::Snap { device, seq } if device == tag => Some((seq, size)),
                _ => None,
            })
            .collect())
    }

    /// The seqs of the snapshots stored for the device of `tag`.
    pub(crate) async fn snapshot_seqs(&self, tag: DeviceTag) -> Result<BTreeSet<u64>, StoreError> {
        Ok(self.snapshots(tag).await?.into_keys().collect())
    }
}
