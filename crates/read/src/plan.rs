//! Which objects a device reads of another device's log, from what is known of it, with no
//! I/O: the sync engine executes these plans and renders them for a dry run, and the browser
//! page executes them too, so every kind of device reads a log the same way.

use std::collections::BTreeSet;

use ferry_protocol::{DeviceTag, ObjectName};

/// What is known of another device's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its tag.
    pub tag: DeviceTag,
    /// Its newest head seq.
    pub head: u64,
    /// Its last segment applied here (0: never seen).
    pub applied: u64,
    /// Its snapshots, where they were listed: the newest usable one is read (a name that does
    /// not open, or lies beyond the head, never hides an older real one).
    pub snapshots: BTreeSet<u64>,
    /// Its segments known not to be stored (compacted away or deleted).
    pub missing: BTreeSet<u64>,
    /// Its segments as listed, once the stream stopped at a missing or quarantined one: a
    /// writer skips a name that someone else took, so a later segment may follow on (readers
    /// check its operation counter), and the plan reads the next listed one to find out.
    pub stored: Option<BTreeSet<u64>>,
}

impl Peer {
    /// A device known only by its head and how far it is applied here.
    pub fn new(tag: DeviceTag, head: u64, applied: u64) -> Peer {
        Peer {
            tag,
            head,
            applied,
            snapshots: BTreeSet::new(),
            missing: BTreeSet::new(),
            stored: None,
        }
    }
}

/// One object a fetch reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The device's snapshot at this seq: its state up to there, in one object.
    Snapshot(u64),
    /// The device's segment at this seq.
    Segment(u64),
}

/// Why a device's stream stops short of its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The segment is not stored and no snapshot covers it: the next poll looks again.
    Missing(u64),
    /// The segment is quarantined and not due for another try: the stream waits for it.
    Quarantined(u64),
}

/// The reads that bring one device up to its head, in order, and where they stop short.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerPlan {
    /// What to read.
    pub reads: Vec<Read>,
    /// Why the reads end before the head, if they do.
    pub stop: Option<Stop>,
}

impl PeerPlan {
    /// The snapshot the plan starts with, if it starts with one.
    pub fn leading_snapshot(&self) -> Option<u64> {
        match self.reads.first() {
            Some(Read::Snapshot(seq)) => Some(*seq),
            _ => None,
        }
    }
}

/// The reads for one device. A device never seen starts from its newest snapshot; a segment
/// known to be missing, or held in quarantine, is skipped through the snapshot when it covers
/// it (the device compacted past it), else stepped over to the next listed segment when the
/// segments are listed; `held` (store paths, below `root`) are the quarantined objects not to
/// read now.
pub fn fetch(peer: &Peer, held: &BTreeSet<String>, root: &str) -> PeerPlan {
    let is_quarantined = |name: ObjectName| held.contains(&format!("{root}{name}"));
    let device = peer.tag;
    // A writer snapshots at a segment it has uploaded, under a head it has written: a
    // snapshot beyond the newest head is not one of its.
    let usable_snapshot = peer
        .snapshots
        .iter()
        .rev()
        .copied()
        .find(|&seq| seq <= peer.head && !is_quarantined(ObjectName::Snap { device, seq }));
    let mut plan = PeerPlan::default();
    let mut at = peer.applied;
    while at < peer.head {
        let next = at + 1;
        let blocked = if peer.missing.contains(&next) {
            Some(Stop::Missing(next))
        } else if is_quarantined(ObjectName::Log { device, seq: next }) {
            Some(Stop::Quarantined(next))
        } else {
            None
        };
        if (at == 0 || blocked.is_some())
            && let Some(seq) = usable_snapshot.filter(|&seq| seq > at)
        {
            plan.reads.push(Read::Snapshot(seq));
            at = seq;
            continue;
        }
        if blocked.is_some() {
            let readable = |&&seq: &&u64| {
                !peer.missing.contains(&seq) && !is_quarantined(ObjectName::Log { device, seq })
            };
            if let Some(stored) = &peer.stored
                && let Some(&after) = stored
                    .range(next.saturating_add(1)..)
                    .take_while(|&&seq| seq <= peer.head)
                    .find(readable)
            {
                plan.reads.push(Read::Segment(after));
                at = after;
                continue;
            }
            plan.stop = blocked;
            break;
        }
        plan.reads.push(Read::Segment(next));
        at = next;
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: DeviceTag = DeviceTag([7; 16]);

    fn peer(head: u64, applied: u64, snapshot: Option<u64>, missing: &[u64]) -> Peer {
        peer_with(head, applied, snapshot.as_slice(), missing)
    }

    fn peer_with(head: u64, applied: u64, snapshots: &[u64], missing: &[u64]) -> Peer {
        Peer {
            tag: TAG,
            head,
            applied,
            snapshots: snapshots.iter().copied().collect(),
            missing: missing.iter().copied().collect(),
            stored: None,
        }
    }

    fn listed(peer: Peer, stored: &[u64]) -> Peer {
        Peer {
            stored: Some(stored.iter().copied().collect()),
            ..peer
        }
    }

    fn quarantined(names: &[ObjectName]) -> BTreeSet<String> {
        names
            .iter()
            .map(|name| format!("{}{name}", ferry_protocol::names::ROOT))
            .collect()
    }

    use Read::{Segment, Snapshot};

    /// A case: its name, the device as known, the quarantined names, the reads, the stop.
    type Case<'a> = (
        &'a str,
        Peer,
        &'a BTreeSet<String>,
        &'a [Read],
        Option<Stop>,
    );

    #[test]
    fn fetch_plans_by_case() {
        let none = BTreeSet::new();
        let snap_5 = quarantined(&[ObjectName::Snap {
            device: TAG,
            seq: 5,
        }]);
        let log_3 = quarantined(&[ObjectName::Log {
            device: TAG,
            seq: 3,
        }]);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("up to date", peer(4, 4, None, &[]), &none, &[], None),
            ("ahead of an old head (a replay)", peer(2, 4, None, &[]), &none, &[], None),
            ("never seen, no snapshot", peer(3, 0, None, &[]), &none,
                &[Segment(1), Segment(2), Segment(3)], None),
            ("never seen, with a snapshot", peer(7, 0, Some(5), &[]), &none,
                &[Snapshot(5), Segment(6), Segment(7)], None),
            ("never seen, snapshot at the head", peer(5, 0, Some(5), &[1, 2, 3, 4, 5]), &none,
                &[Snapshot(5)], None),
            ("behind", peer(6, 4, Some(2), &[]), &none, &[Segment(5), Segment(6)], None),
            ("behind a compaction", peer(8, 2, Some(6), &[3, 4, 5, 6]), &none,
                &[Snapshot(6), Segment(7), Segment(8)], None),
            ("compacted past a snapshot not listed", peer(8, 2, None, &[3]), &none,
                &[], Some(Stop::Missing(3))),
            ("a gap the snapshot does not cover", peer(9, 0, Some(4), &[1, 2, 3, 4, 6]), &none,
                &[Snapshot(4), Segment(5)], Some(Stop::Missing(6))),
            ("a gap mid-stream, covered", peer(9, 1, Some(7), &[3]), &none,
                &[Segment(2), Snapshot(7), Segment(8), Segment(9)], None),
            ("a quarantined snapshot", peer(6, 0, Some(5), &[]), &snap_5,
                &[Segment(1), Segment(2), Segment(3), Segment(4), Segment(5), Segment(6)], None),
            ("a quarantined snapshot, segments gone", peer(6, 0, Some(5), &[1]), &snap_5,
                &[], Some(Stop::Missing(1))),
            ("a quarantined segment", peer(5, 1, None, &[]), &log_3,
                &[Segment(2)], Some(Stop::Quarantined(3))),
            ("a quarantined segment a snapshot covers", peer(6, 2, Some(4), &[]), &log_3,
                &[Snapshot(4), Segment(5), Segment(6)], None),
            ("a snapshot older than the cursor", peer(5, 3, Some(2), &[]), &none,
                &[Segment(4), Segment(5)], None),
            ("a junk snapshot name beyond the head", peer_with(7, 0, &[5, 9], &[]), &none,
                &[Snapshot(5), Segment(6), Segment(7)], None),
            ("the newest snapshot quarantined, an older one real", peer_with(6, 0, &[4, 5], &[1]),
                &snap_5, &[Snapshot(4), Segment(5), Segment(6)], None),
            ("a quarantined segment, the segments listed", listed(peer(5, 1, None, &[]), &[2, 3, 4, 5]),
                &log_3, &[Segment(2), Segment(4), Segment(5)], None),
            ("a missing segment, the segments listed", listed(peer(5, 1, None, &[3]), &[2, 4, 5]),
                &none, &[Segment(2), Segment(4), Segment(5)], None),
            ("nothing listed after the gap", listed(peer(5, 1, None, &[3]), &[2, 6]),
                &none, &[Segment(2)], Some(Stop::Missing(3))),
            ("listed, but a snapshot covers the gap", listed(peer(6, 2, Some(4), &[]), &[3, 5, 6]),
                &log_3, &[Snapshot(4), Segment(5), Segment(6)], None),
            ("the head itself quarantined, listed", listed(peer(3, 2, None, &[]), &[3]),
                &log_3, &[], Some(Stop::Quarantined(3))),
        ];
        for (case, peer, quarantined, reads, stop) in cases {
            let plan = fetch(peer, quarantined, ferry_protocol::names::ROOT);
            assert_eq!(plan.reads, *reads, "{case}");
            assert_eq!(plan.stop, *stop, "{case}");
        }
    }

    #[test]
    fn every_small_plan_reads_forward_within_the_head_and_never_what_is_held() {
        // Every combination for a device of up to 3 segments: snapshots, missing and held
        // objects, and a listing or none.
        let subsets =
            |bits: u32| -> BTreeSet<u64> { (1..=3).filter(|s| bits & (1 << s) != 0).collect() };
        for head in 0..=3 {
            for applied in 0..=4 {
                for (snaps, missing, held, stored) in (0..8u32 * 8 * 8 * 9)
                    .map(|n| (n % 8 * 2, n / 8 % 8 * 2, n / 64 % 8 * 2, n / 512))
                {
                    let peer = Peer {
                        stored: (stored < 8).then(|| subsets(stored * 2)),
                        ..peer_with(
                            head,
                            applied,
                            &Vec::from_iter(subsets(snaps)),
                            &Vec::from_iter(subsets(missing)),
                        )
                    };
                    let held: Vec<ObjectName> = subsets(held)
                        .into_iter()
                        .flat_map(|seq| {
                            [
                                ObjectName::Log { device: TAG, seq },
                                ObjectName::Snap { device: TAG, seq },
                            ]
                        })
                        .collect();
                    let plan = fetch(&peer, &quarantined(&held), ferry_protocol::names::ROOT);
                    let mut at = applied;
                    for read in &plan.reads {
                        let (seq, name) = match *read {
                            Snapshot(seq) => (seq, ObjectName::Snap { device: TAG, seq }),
                            Segment(seq) => (seq, ObjectName::Log { device: TAG, seq }),
                        };
                        assert!(seq > at && seq <= head, "{peer:?}: {plan:?}");
                        assert!(!held.contains(&name), "{peer:?}: {plan:?}");
                        assert!(matches!(read, Snapshot(_)) || !peer.missing.contains(&seq));
                        at = seq;
                    }
                }
            }
        }
    }
}
