//! Traffic control: a byte rate that large transfers (blob chunks, snapshots) keep to, shared
//! by everything that moves them in one direction.
//!
//! The rate is a clock of when the link is next free: bytes that go take their time at the rate
//! from then, so over any stretch that ends with a transfer the average stays at or below the
//! rate. There is no burst: after an idle spell the next transfer waits its own time, no
//! longer. Small objects (segments, heads, listings) never go through it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A byte rate for large transfers in one direction.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: u64,
    /// When the bytes charged so far have had their time.
    free_at: Mutex<Instant>,
}

impl Throttle {
    /// A limit of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Throttle {
        Throttle {
            bytes_per_second: bytes_per_second.max(1),
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// The limit, in bytes a second.
    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// Counts `bytes` as going out from when the link is free, and returns when they have had
    /// their time: what goes next waits until then.
    pub fn charge(&self, bytes: u64) -> Instant {
        let took = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second as f64);
        let mut free_at = self
            .free_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *free_at = (*free_at).max(Instant::now()) + took;
        *free_at
    }

    /// When the bytes charged so far have had their time.
    pub fn free_at(&self) -> Instant {
        *self
            .free_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bytes_take_their_time_one_after_another() {
        let throttle = Throttle::new(1024);
        let start = Instant::now();
        assert_eq!(throttle.charge(512), start + Duration::from_millis(500));
        assert_eq!(throttle.charge(1024), start + Duration::from_millis(1500));
        assert_eq!(throttle.free_at(), start + Duration::from_millis(1500));
        // After an idle spell, no burst: the next bytes take their time from now.
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        assert_eq!(throttle.charge(2048), now + Duration::from_secs(2));
    }

    #[test]
    fn a_rate_of_zero_is_one_byte_a_second() {
        assert_eq!(Throttle::new(0).bytes_per_second(), 1);
    }
}
