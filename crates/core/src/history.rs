//! The order of the history: the slots of the clips with content, by last use.
//!
//! A key is one `u128`: the last use's time (64 bits), the rank of its device among the devices
//! seen (32 bits), and the clip's slot (32 bits). It sorts exactly as the last-use stamps do
//! (time, then device id) in 16 bytes instead of the 28 a stamp and slot take, which halves the
//! tree of a large history. Ranks are places in the sorted list of devices; a device that sorts
//! before others shifts their ranks up, which rewrites every key once, in order: a new device
//! joining is rare and the rewrite is linear.

use std::collections::BTreeSet;
use std::ops::Bound;

use ferry_protocol::DeviceId;

use crate::hlc::Hlc;

#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    keys: BTreeSet<u128>,
    /// Every device that has been the last user of a clip, in id order.
    devices: Vec<DeviceId>,
}

impl History {
    /// The history of clips last used at the given times, in any order.
    pub(crate) fn build(clips: impl Iterator<Item = (Hlc, u32)> + Clone) -> History {
        let mut devices: Vec<DeviceId> = clips.clone().map(|(at, _)| at.device).collect();
        devices.sort_unstable();
        devices.dedup();
        let mut history = History {
            keys: BTreeSet::new(),
            devices,
        };
        history.keys = clips
            .map(|(at, slot)| key(at, slot, history.rank(&at.device)))
            .collect();
        history
    }

    pub(crate) fn insert(&mut self, at: Hlc, slot: u32) {
        let rank = match self.devices.binary_search(&at.device) {
            Ok(rank) => rank,
            Err(rank) => {
                self.devices.insert(rank, at.device);
                if rank + 1 < self.devices.len() {
                    self.shift_ranks_from(rank);
                }
                rank
            }
        };
        self.keys.insert(key(at, slot, rank));
    }

    pub(crate) fn remove(&mut self, at: Hlc, slot: u32) {
        if let Ok(rank) = self.devices.binary_search(&at.device) {
            self.keys.remove(&key(at, slot, rank));
        }
    }

    /// Slots, newest first: all of them, or those of the clips last used before a time.
    pub(crate) fn newest_first(&self, before: Option<Hlc>) -> impl Iterator<Item = u32> + '_ {
        // Devices ranked at or above the insertion point of `at.device` sort after it (or are
        // it): a key with slot 0 at that rank bounds the range from above.
        let upper = match before {
            Some(at) => Bound::Excluded(key(at, 0, self.rank(&at.device))),
            None => Bound::Unbounded,
        };
        self.keys
            .range((Bound::Unbounded, upper))
            .rev()
            .map(|&key| slot_of(key))
    }

    fn rank(&self, device: &DeviceId) -> usize {
        match self.devices.binary_search(device) {
            Ok(rank) | Err(rank) => rank,
        }
    }

    /// Moves every key whose device ranks at or above `rank` one rank up, for the device just
    /// placed there. The order of the keys does not change, so the tree is rebuilt in one pass.
    fn shift_ranks_from(&mut self, rank: usize) {
        let from = rank as u128;
        let keys = std::mem::take(&mut self.keys);
        self.keys = keys
            .into_iter()
            .map(|key| {
                let old = (key >> 32) & u128::from(u32::MAX);
                if old >= from { key + (1 << 32) } else { key }
            })
            .collect();
    }
}

fn key(at: Hlc, slot: u32, rank: usize) -> u128 {
    (u128::from(at.packed_time()) << 64) | ((rank as u128) << 32) | u128::from(slot)
}

fn slot_of(key: u128) -> u32 {
    key as u32
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn stamp(time: u64, device: u8) -> Hlc {
        Hlc::new(time, 0, DeviceId([device; 16]))
    }

    proptest! {
        /// Whatever order devices arrive in, the keys sort as the stamps do, removals find
        /// their keys, and a page below any stamp (of a known device or not) is exactly the
        /// stamps below it.
        #[test]
        fn keys_sort_as_stamps(
            clips in proptest::collection::vec((0..20u64, 0..8u8), 0..60),
            removed in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
            cursor in (0..21u64, 0..9u8),
        ) {
            // One stamp per clip, as every copy has its own.
            let mut stamps: Vec<Hlc> = clips.iter().map(|&(t, d)| stamp(t, d)).collect();
            stamps.sort();
            stamps.dedup();
            let mut history = History::default();
            for (slot, at) in stamps.iter().enumerate().rev() {
                history.insert(*at, slot as u32);
            }
            let mut live: Vec<(Hlc, u32)> =
                stamps.iter().enumerate().map(|(slot, at)| (*at, slot as u32)).collect();
            for index in removed {
                if live.is_empty() {
                    break;
                }
                let (at, slot) = live.remove(index.index(live.len()));
                history.remove(at, slot);
            }
            let newest: Vec<u32> = live.iter().rev().map(|&(_, slot)| slot).collect();
            prop_assert_eq!(history.newest_first(None).collect::<Vec<_>>(), newest);
            let built = History::build(live.iter().copied());
            prop_assert_eq!(built.newest_first(None).collect::<Vec<_>>(), history.newest_first(None).collect::<Vec<_>>());
            let at = stamp(cursor.0, cursor.1);
            let below: Vec<u32> =
                live.iter().rev().filter(|(t, _)| *t < at).map(|&(_, slot)| slot).collect();
            prop_assert_eq!(history.newest_first(Some(at)).collect::<Vec<_>>(), below);
        }
    }
}
