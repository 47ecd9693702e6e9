//! Deciding apart from doing: what an upload writes (and, from `ferry_read::plan`, what a fetch
//! reads), from what is known, with no I/O. [`Engine::upload`](super::Engine::upload) and the
//! fetches execute these plans; [`Engine::dry_run`](super::Engine::dry_run) renders them, so the
//! two cannot drift apart.

pub(crate) use ferry_read::plan::{Peer, Read, Stop, fetch};

/// One segment an upload writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Write {
    /// Its seq in this device's log.
    pub(crate) seq: u64,
    /// Operations it carries.
    pub(crate) ops: u64,
    /// Sealed size when reserved; otherwise the operations' encoded size.
    pub(crate) bytes: u64,
    /// Whether it is sealed already (reserved by an upload that did not finish).
    pub(crate) source: Source,
}

/// Where a planned segment's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Sealed and kept earlier: written as they are.
    Reserved,
    /// Pending operations, sealed when the upload reaches them.
    Pending,
}

/// This device's unsent work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Outbox {
    /// Segments reserved and not uploaded, oldest first: (seq, operations, sealed bytes).
    pub(crate) reserved: Vec<(u64, u64, u64)>,
    /// Operations not yet in a segment.
    pub(crate) pending_ops: u64,
    /// Their encoded size.
    pub(crate) pending_bytes: u64,
    /// This device's newest segment (reserved or uploaded).
    pub(crate) last_seq: u64,
    /// Most operations in one segment.
    pub(crate) batch: u64,
}

/// The segments an upload writes, in order: the reserved ones, then the pending operations in
/// batches.
pub(crate) fn upload(outbox: &Outbox) -> Vec<Write> {
    let mut writes: Vec<Write> = outbox
        .reserved
        .iter()
        .map(|&(seq, ops, bytes)| Write {
            seq,
            ops,
            bytes,
            source: Source::Reserved,
        })
        .collect();
    let batch = outbox.batch.max(1);
    let per_op = outbox
        .pending_bytes
        .checked_div(outbox.pending_ops)
        .unwrap_or(0);
    let mut left = outbox.pending_ops;
    let mut seq = outbox.last_seq;
    while left > 0 {
        let ops = left.min(batch);
        seq += 1;
        writes.push(Write {
            seq,
            ops,
            bytes: ops * per_op,
            source: Source::Pending,
        });
        left -= ops;
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_plans_by_case() {
        let outbox = |reserved: &[(u64, u64, u64)], ops, bytes, last_seq, batch| Outbox {
            reserved: reserved.to_vec(),
            pending_ops: ops,
            pending_bytes: bytes,
            last_seq,
            batch,
        };
        let write = |seq, ops, bytes, source| Write {
            seq,
            ops,
            bytes,
            source,
        };
        #[rustfmt::skip]
        let cases: &[(&str, Outbox, Vec<Write>)] = &[
            ("nothing to send", outbox(&[], 0, 0, 4, 10), vec![]),
            ("one batch", outbox(&[], 3, 300, 0, 10), vec![write(1, 3, 300, Source::Pending)]),
            ("batches", outbox(&[], 25, 2500, 2, 10), vec![
                write(3, 10, 1000, Source::Pending),
                write(4, 10, 1000, Source::Pending),
                write(5, 5, 500, Source::Pending),
            ]),
            ("reserved first", outbox(&[(3, 2, 900)], 1, 40, 3, 10), vec![
                write(3, 2, 900, Source::Reserved),
                write(4, 1, 40, Source::Pending),
            ]),
            ("a zero batch takes one at a time", outbox(&[], 2, 20, 0, 0), vec![
                write(1, 1, 10, Source::Pending),
                write(2, 1, 10, Source::Pending),
            ]),
        ];
        for (case, outbox, writes) in cases {
            assert_eq!(upload(outbox), *writes, "{case}");
        }
    }
}
