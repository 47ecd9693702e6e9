//! Upload and download rate limits, shared by every transfer of a store.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{ListPage, ProbeReport, Store, StoreError};

/// A byte rate shared by everything that holds a clone: a token bucket holding one second of
/// bytes, which transfers may overdraw and then wait off.
#[derive(Debug, Clone)]
pub struct RateLimit {
    bucket: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    bytes_per_sec: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimit {
    /// A limit of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimit {
            bucket: Arc::new(Mutex::new(Bucket {
                bytes_per_sec: rate,
                tokens: rate,
                updated: Instant::now(),
            })),
        }
    }

    /// Waits until `bytes` may pass.
    pub async fn acquire(&self, bytes: u64) {
        let wait = {
            let mut bucket = match self.bucket.lock() {
                Ok(bucket) => bucket,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            let refill = now.duration_since(bucket.updated).as_secs_f64() * bucket.bytes_per_sec;
            bucket.tokens = (bucket.tokens + refill).min(bucket.bytes_per_sec);
            bucket.updated = now;
            bucket.tokens -= bytes as f64;
            if bucket.tokens < 0.0 {
                Duration::from_secs_f64(-bucket.tokens / bucket.bytes_per_sec)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A store whose uploads and downloads are held to rate limits.
#[derive(Debug)]
pub struct Limited<S> {
    inner: S,
    upload: Option<RateLimit>,
    download: Option<RateLimit>,
}

impl<S> Limited<S> {
    /// Wraps `inner`; `None` leaves that direction unlimited.
    pub fn new(inner: S, upload: Option<RateLimit>, download: Option<RateLimit>) -> Self {
        Limited {
            inner,
            upload,
            download,
        }
    }
}

impl<S> Limited<S> {
    async fn up(&self, bytes: usize) {
        if let Some(limit) = &self.upload {
            limit.acquire(bytes as u64).await;
        }
    }

    async fn down(&self, bytes: usize) {
        if let Some(limit) = &self.download {
            limit.acquire(bytes as u64).await;
        }
    }
}

#[async_trait]
impl<S: Store> Store for Limited<S> {
    async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.up(bytes.len()).await;
        self.inner.put_new(name, bytes).await
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.up(bytes.len()).await;
        self.inner.put(name, bytes).await
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let bytes = self.inner.get(name).await?;
        self.down(bytes.len()).await;
        Ok(bytes)
    }

    async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, StoreError> {
        let bytes = self.inner.get_range(name, range).await?;
        self.down(bytes.len()).await;
        Ok(bytes)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        self.inner.list(prefix, start_after, limit).await
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete(name).await
    }

    async fn create_root(&self) -> Result<(), StoreError> {
        self.inner.create_root().await
    }

    async fn probe(&self) -> ProbeReport {
        self.inner.probe().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn transfers_share_one_rate() {
        let limit = RateLimit::new(1000);
        let started = Instant::now();
        // One second of burst, then 3000 more bytes at 1000 B/s, from three transfers at once.
        let a = limit.clone();
        let b = limit.clone();
        tokio::join!(limit.acquire(1000), a.acquire(1500), b.acquire(1500));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(2900), "{took:?}");
        assert!(took <= Duration::from_millis(3100), "{took:?}");
    }
}
