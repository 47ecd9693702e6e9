//! Token buckets and the per-address table that bounds what one client can take.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f32,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn full(burst: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: burst as f32,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let tokens = (f64::from(self.tokens) + elapsed * rate).min(burst);
        if tokens >= 1.0 {
            self.tokens = (tokens - 1.0) as f32;
            true
        } else {
            self.tokens = tokens as f32;
            false
        }
    }
}

/// The unit the per-address limits count in: an IPv4 address, or an IPv6 /64 (one subscriber's
/// network: a single host commonly holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AddressKey {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(u32::from(v4)),
                None => AddressKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

struct AddressEntry {
    connections: u32,
    bucket: TokenBucket,
    /// Pairing topics its connections hold.
    pairings: u32,
}

/// The most pairing topics the connections of one address hold at once: a household pairing
/// a few devices, not one address covering the 1,000 meeting places.
pub(crate) const MAX_PAIRINGS_PER_ADDRESS: u32 = 4;

/// Connections and message budget per address. An entry lives while the address has a
/// connection open, so the table never holds more entries than there are connections.
pub(crate) struct Addresses {
    entries: Mutex<HashMap<AddressKey, AddressEntry>>,
    max_connections: u32,
    rate: f64,
    burst: f64,
}

impl Addresses {
    pub(crate) fn new(max_connections: u32, rate: f64, burst: f64) -> Arc<Self> {
        Arc::new(Addresses {
            entries: Mutex::new(HashMap::new()),
            max_connections,
            rate,
            burst,
        })
    }

    /// Counts a new connection from `key`, or refuses it when the address is at its cap.
    pub(crate) fn admit(self: &Arc<Self>, key: AddressKey) -> Option<AddressGuard> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.entry(key).or_insert_with(|| AddressEntry {
            connections: 0,
            bucket: TokenBucket::full(self.burst, Instant::now()),
            pairings: 0,
        });
        if entry.connections >= self.max_connections {
            return None;
        }
        let others = entry.connections;
        entry.connections += 1;
        Some(AddressGuard {
            addresses: Arc::clone(self),
            key,
            others,
        })
    }

    fn release(&self, key: AddressKey) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(&key) {
            entry.connections = entry.connections.saturating_sub(1);
            if entry.connections == 0 {
                entries.remove(&key);
            }
        }
    }

    /// Counts one more pairing topic for `key`, unless it holds as many as it may.
    fn take_pairing(&self, key: AddressKey) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = entries.get_mut(&key) else {
            return false;
        };
        if entry.pairings >= MAX_PAIRINGS_PER_ADDRESS {
            return false;
        }
        entry.pairings += 1;
        true
    }

    fn release_pairing(&self, key: AddressKey) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(&key) {
            entry.pairings = entry.pairings.saturating_sub(1);
        }
    }

    fn take(&self, key: AddressKey, now: Instant) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get_mut(&key)
            .is_some_and(|entry| entry.bucket.take(self.rate, self.burst, now))
    }
}

/// One admitted connection; dropping it gives the slot back.
pub(crate) struct AddressGuard {
    addresses: Arc<Addresses>,
    key: AddressKey,
    /// Connections the address held already when this one was admitted.
    others: u32,
}

/// Whether a connection may take one of the relay's `free` slots out of `total`. The last tenth
/// is kept for addresses that hold no connection yet: however many addresses crowd the relay up
/// to their own caps, a new one still gets in.
pub(crate) fn may_take_slot(others: u32, free: usize, total: usize) -> bool {
    free > 0 && (others == 0 || free > total / 10)
}

impl AddressGuard {
    /// Connections the address held already when this one was admitted.
    pub(crate) fn others(&self) -> u32 {
        self.others
    }

    /// Takes one message from the address's budget.
    pub(crate) fn take(&self, now: Instant) -> bool {
        self.addresses.take(self.key, now)
    }

    /// Counts a pairing topic this connection subscribes to; false when the address holds
    /// [`MAX_PAIRINGS_PER_ADDRESS`] already.
    pub(crate) fn take_pairing(&self) -> bool {
        self.addresses.take_pairing(self.key)
    }

    /// Gives back a pairing topic this connection held.
    pub(crate) fn release_pairing(&self) {
        self.addresses.release_pairing(self.key);
    }
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        self.addresses.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(3.0, start);
        assert!((0..3).all(|_| bucket.take(10.0, 3.0, start)));
        assert!(!bucket.take(10.0, 3.0, start));
        assert!(bucket.take(10.0, 3.0, start + Duration::from_millis(100)));
        assert!(!bucket.take(10.0, 3.0, start + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take(10.0, 3.0, later)).count(), 3);
    }

    #[test]
    fn addresses_cap_connections_and_forget_closed_ones() {
        let addresses = Addresses::new(2, 1.0, 1.0);
        let key = AddressKey::from(IpAddr::from([10, 0, 0, 1]));
        let a = addresses.admit(key).unwrap();
        let b = addresses.admit(key).unwrap();
        assert!(addresses.admit(key).is_none());
        drop(a);
        let c = addresses.admit(key).unwrap();
        drop((b, c));
        assert!(addresses.entries.lock().unwrap().is_empty());
    }

    #[test]
    fn the_last_slots_are_kept_for_new_addresses() {
        // (connections the address holds, free slots, total): may it take one?
        let cases = [
            ((0, 1, 100), true),
            ((3, 1, 100), false),
            ((3, 10, 100), false),
            ((3, 11, 100), true),
            ((0, 0, 100), false),
            ((1, 1, 4), true),
        ];
        for ((others, free, total), allowed) in cases {
            assert_eq!(
                may_take_slot(others, free, total),
                allowed,
                "{others} {free} {total}"
            );
        }
        let addresses = Addresses::new(4, 1.0, 1.0);
        let key = AddressKey::from(IpAddr::from([10, 0, 0, 1]));
        let first = addresses.admit(key).unwrap();
        let second = addresses.admit(key).unwrap();
        assert_eq!((first.others(), second.others()), (0, 1));
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_v4_as_v4() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddressKey::from(one), AddressKey::from(two));
        assert_ne!(AddressKey::from(one), AddressKey::from(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            AddressKey::from(mapped),
            AddressKey::from(IpAddr::from([10, 0, 0, 1]))
        );
    }
}
