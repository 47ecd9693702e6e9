//! Hybrid logical clock: time stamps that follow wall-clock time when clocks agree and never go
//! backwards or break causality when they do not.
//!
//! A stamp is `(wall_ms, logical, device)`, ordered in that order. A device ticks its clock for
//! every operation it makes and observes the stamp of every operation it receives, so an operation
//! made after seeing another always sorts after it, whatever the two wall clocks say. The device
//! id breaks ties, so no two operations ever share a stamp.
//!
//! Skew: a device whose clock runs hours behind still orders its new operations after everything
//! it has seen (the logical counter carries it); a device whose clock runs ahead drags the stamps
//! of every device that hears from it forward to its time, which keeps the order consistent
//! everywhere at the cost of stamps that read as "in the future" until real time catches up.

use std::fmt;

use serde::{Deserialize, Serialize};

use ferry_protocol::DeviceId;

/// Bits of the packed time that count events within one millisecond.
const LOGICAL_BITS: u32 = 16;
/// The largest wall-clock time a stamp can hold: about 8,900 years after 1970.
const MAX_WALL_MS: u64 = u64::MAX >> LOGICAL_BITS;

/// A hybrid logical time stamp: 24 bytes, ordered by time, then device.
///
/// The time packs the wall-clock milliseconds (high 48 bits) and the logical counter (low 16
/// bits) into one integer, so a counter that runs over simply carries into the next millisecond.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    time: u64,
    /// The device that made the stamp: the tie-break.
    pub device: DeviceId,
}

impl Hlc {
    /// The smallest stamp: before every real one.
    pub const ZERO: Hlc = Hlc {
        time: 0,
        device: DeviceId([0; 16]),
    };

    /// A stamp from its parts.
    pub fn new(wall_ms: u64, logical: u16, device: DeviceId) -> Hlc {
        Hlc {
            time: (wall_ms.min(MAX_WALL_MS) << LOGICAL_BITS) | u64::from(logical),
            device,
        }
    }

    /// Milliseconds since the Unix epoch, as far as the clocks involved know.
    pub fn wall_ms(&self) -> u64 {
        self.time >> LOGICAL_BITS
    }

    /// Wall-clock milliseconds and logical counter as one integer, ordered as the stamps are
    /// (before the device).
    pub(crate) fn packed_time(&self) -> u64 {
        self.time
    }

    /// The count of events within that millisecond, or while the wall clock lagged.
    pub fn logical(&self) -> u16 {
        (self.time & ((1 << LOGICAL_BITS) - 1)) as u16
    }
}

impl Default for Hlc {
    fn default() -> Self {
        Hlc::ZERO
    }
}

impl fmt::Debug for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Hlc({}.{} {})",
            self.wall_ms(),
            self.logical(),
            self.device
        )
    }
}

/// One device's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlcClock {
    device: DeviceId,
    time: u64,
}

impl HlcClock {
    /// A clock for `device` that has seen nothing yet.
    pub fn new(device: DeviceId) -> Self {
        HlcClock { device, time: 0 }
    }

    /// The device this clock stamps for.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// A new stamp, later than every stamp made or observed so far. `physical_ms` is the wall
    /// clock now; it is trusted only as far as it moves the clock forward.
    pub fn tick(&mut self, physical_ms: u64) -> Hlc {
        let physical = physical_ms.min(MAX_WALL_MS) << LOGICAL_BITS;
        self.time = if physical > self.time {
            physical
        } else {
            self.time.saturating_add(1)
        };
        Hlc {
            time: self.time,
            device: self.device,
        }
    }

    /// Takes note of a stamp from elsewhere, so that every later tick sorts after it.
    pub fn observe(&mut self, stamp: Hlc) {
        self.time = self.time.max(stamp.time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    fn clock(byte: u8) -> HlcClock {
        HlcClock::new(DeviceId([byte; 16]))
    }

    #[test]
    fn follows_the_wall_clock_and_never_goes_back() {
        let mut c = clock(1);
        let a = c.tick(1_000);
        let b = c.tick(1_000);
        let d = c.tick(500); // the wall clock stepped back
        let e = c.tick(2_000);
        assert!(a < b && b < d && d < e);
        assert_eq!((a.wall_ms(), a.logical()), (1_000, 0));
        assert_eq!((d.wall_ms(), d.logical()), (1_000, 2));
        assert_eq!((e.wall_ms(), e.logical()), (2_000, 0));
    }

    #[test]
    fn a_device_hours_behind_still_orders_after_what_it_saw() {
        let mut ahead = clock(1);
        let mut behind = clock(2);
        let now = 100 * HOUR;
        let seen = ahead.tick(now);
        behind.observe(seen);
        let reply = behind.tick(now - 5 * HOUR);
        assert!(reply > seen);
        assert_eq!(reply.wall_ms(), now);
    }

    #[test]
    fn a_device_hours_ahead_pulls_others_forward_consistently() {
        let mut fast = clock(1);
        let mut slow = clock(2);
        let now = 100 * HOUR;
        let future = fast.tick(now + 3 * HOUR);
        slow.observe(future);
        let next = slow.tick(now);
        assert!(next > future);
        // Once real time passes the fast clock, stamps follow the wall clock again.
        let later = slow.tick(now + 4 * HOUR);
        assert_eq!((later.wall_ms(), later.logical()), (now + 4 * HOUR, 0));
    }

    #[test]
    fn ties_break_on_the_device() {
        let a = clock(1).tick(5);
        let b = clock(2).tick(5);
        assert_ne!(a, b);
        assert!(a < b);
    }

    #[test]
    fn the_logical_counter_overflows_into_the_wall_clock() {
        let mut c = clock(1);
        c.observe(Hlc::new(10, u16::MAX, DeviceId([9; 16])));
        let next = c.tick(0);
        assert_eq!((next.wall_ms(), next.logical()), (11, 0));
    }
}
