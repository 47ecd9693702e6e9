//! Retrying what can pass: jittered exponential backoff within a deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::StoreError;

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The pause before the first retry (before jitter).
    pub first_delay: Duration,
    /// The longest pause between two attempts.
    pub max_delay: Duration,
    /// No retry starts later than this after the first attempt.
    pub deadline: Duration,
    /// At most this many attempts in all.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// 200 ms doubling to 10 s, for at most a minute and 8 attempts.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        first_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(10),
        deadline: Duration::from_secs(60),
        max_attempts: 8,
    };

    /// No retries at all.
    pub const NEVER: RetryPolicy = RetryPolicy {
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        deadline: Duration::ZERO,
        max_attempts: 1,
    };

    /// Runs `attempt` until it succeeds, fails for good, or the policy gives up; then returns
    /// its last result. Pauses are drawn between half and all of the current delay, and a
    /// server's own "retry after" is honoured when it is longer.
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let start = Instant::now();
        let mut delay = self.first_delay;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !error.is_transient() || attempts >= self.max_attempts {
                return Err(error);
            }
            let mut pause = jitter(delay);
            if let StoreError::Throttled {
                retry_after: Some(asked),
                ..
            } = &error
            {
                pause = pause.max(*asked);
            }
            if start.elapsed() + pause > self.deadline {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(self.max_delay);
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// A pause between half and all of `delay`.
fn jitter(delay: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let fraction = match getrandom::fill(&mut byte) {
        Ok(()) => f64::from(byte[0]) / 255.0,
        Err(_) => 1.0,
    };
    delay.mul_f64(0.5 + 0.5 * fraction)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn transient() -> StoreError {
        StoreError::Transient {
            backend: "test",
            detail: "503".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = RetryPolicy::DEFAULT
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(transient()),
                    _ => Ok("done"),
                }
            })
            .await;
        assert_eq!(result, Ok("done"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn lasting_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = RetryPolicy::DEFAULT
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::NotFound { name: "x".into() })
            })
            .await;
        assert!(matches!(result, Err(StoreError::NotFound { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_and_attempt_limit_hold() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result: Result<(), _> = RetryPolicy::DEFAULT
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(transient())
            })
            .await;
        assert!(result.is_err());
        assert!(calls.load(Ordering::SeqCst) <= RetryPolicy::DEFAULT.max_attempts);
        assert!(started.elapsed() <= RetryPolicy::DEFAULT.deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_asking_for_a_pause_gets_it() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result = RetryPolicy::DEFAULT
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(StoreError::Throttled {
                        backend: "test",
                        retry_after: Some(Duration::from_secs(5)),
                    })
                } else {
                    Ok(())
                }
            })
            .await;
        assert_eq!(result, Ok(()));
        assert!(started.elapsed() >= Duration::from_secs(5));
    }
}
