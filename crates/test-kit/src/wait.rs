//! Waiting for something a test caused to become true: asked again every 20 ms until it is,
//! and a failure naming what never happened once the limit passes. Never a bare sleep.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is asked again.
const EVERY: Duration = Duration::from_millis(20);

/// Waits until `check` gives a value, at most `limit`; then fails the test, naming `what`.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(EVERY);
    }
}

/// [`eventually`] for a check that awaits (a request to a server, say).
pub async fn eventually_async<T, F>(limit: Duration, what: &str, mut check: impl FnMut() -> F) -> T
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(EVERY).await;
    }
}
