//! Sending: the page's own operations (a clip pasted and sent, a pin) go out as sealed, signed
//! segments of this device's log, as every device writes them.
//!
//! ```text
//! pending ops ─▶ seal segment seq+1 (signed) ─▶ PUT log/<tag>/<seq> (write-once)
//!   "already there": ours from an earlier try (signed here, the same operations) ─▶ stored;
//!                    anything else (a name someone took) ─▶ skipped, sealed again at seq+2
//! ─▶ PUT head/<tag>/<seq> (write-once) ─▶ a signed hint for the relay
//! ```
//!
//! The page's first segment carries its registration (its name and public keys, signed with
//! them), so that every device lists it and can remove it like any other. The operations wait
//! in what the page keeps until a segment holding them is stored.

use std::cell::RefCell;
use std::rc::Rc;

use ferry_core::{Action, Op};
use ferry_protocol::{DeviceTag, Head, Identity, Keys, ObjectName, RawOp, RelayHint, Segment};
use ferry_read::Position;

use crate::pass::{Known, now_ms};
use crate::storage::{Storage, StorageError};

/// The most operations in one segment.
const BATCH: usize = 256;

/// The most bytes of encoded operations in one segment (well within what a segment may hold).
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// The most taken names one send steps over; the rest waits for the next.
const MAX_SKIPS: usize = 32;

/// How many of this device's heads below its newest wait before they are deleted, together
/// (readers take the newest; the others only lengthen every device's poll).
const STALE_HEADS: u64 = 16;

/// What one send wrote.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    pub(crate) segments: u64,
    pub(crate) ops: u64,
    /// The hints to publish on the relay: topic (hex) and sealed bytes.
    pub(crate) hints: Vec<(String, Vec<u8>)>,
}

/// One send, holding what it needs across its requests.
pub(crate) struct Send {
    pub(crate) storage: Rc<Storage>,
    pub(crate) keys: Rc<Keys>,
    pub(crate) identity: Rc<Identity>,
    pub(crate) tag: DeviceTag,
    pub(crate) known: Rc<RefCell<Known>>,
}

/// An object's store path.
fn path(name: &ObjectName) -> String {
    format!("{}{name}", ferry_protocol::names::ROOT)
}

impl Send {
    pub(crate) async fn run(&self) -> Result<Sent, String> {
        let mut sent = Sent::default();
        let mut skips = 0;
        loop {
            let (seq, ops) = {
                let known = self.known.borrow();
                let mut bytes = 0;
                let ops: Vec<Op> = known
                    .pending
                    .iter()
                    .take(BATCH)
                    .take_while(|op| {
                        let len = op.encode().len();
                        let fits = bytes == 0 || bytes + len <= BATCH_BYTES;
                        bytes += len;
                        fits
                    })
                    .cloned()
                    .collect();
                (known.last_seq.saturating_add(1), ops)
            };
            let (Some(first), Some(last)) = (ops.first(), ops.last()) else {
                if sent.segments > 0 {
                    self.prune_heads().await;
                }
                return Ok(sent);
            };
            let (first_op, last_op) = (first.counter, last.counter);
            let device = self.identity_device();
            let log = ObjectName::Log {
                device: self.tag,
                seq,
            };
            let segment = Segment {
                device,
                seq,
                first_op,
                ops: ops.iter().map(|op| RawOp(op.encode())).collect(),
            };
            let sealed = self
                .keys
                .data
                .seal_signed(&log, &segment, &self.identity)
                .map_err(|e| e.to_string())?
                .into_bytes();
            match self.storage.put_new(&path(&log), &sealed).await {
                Ok(()) => {}
                Err(StorageError::AlreadyExists) => match self.found(&log, &segment).await? {
                    Found::Ours => {}
                    Found::Twin => {
                        self.known.borrow_mut().own_current = false;
                        return Err(TWIN.to_owned());
                    }
                    Found::Foreign if skips + 1 < MAX_SKIPS => {
                        // Someone took the name: the operations go out under the next.
                        skips += 1;
                        self.known.borrow_mut().last_seq = seq;
                        continue;
                    }
                    Found::Foreign => {
                        return Err(format!(
                            "the storage held {MAX_SKIPS} of this device's next names with objects \
                             it did not write; what waits goes out on the next try"
                        ));
                    }
                },
                Err(error) => return Err(error.to_string()),
            }
            let head_name = ObjectName::Head {
                device: self.tag,
                seq,
            };
            let head = Head {
                device,
                seq,
                ops: last_op,
                first_seq: 1,
                snapshot: None,
            };
            let head_sealed = self
                .keys
                .data
                .seal_signed(&head_name, &head, &self.identity)
                .map_err(|e| e.to_string())?
                .into_bytes();
            match self.storage.put_new(&path(&head_name), &head_sealed).await {
                // A head stands once written: readers take the highest.
                Ok(()) | Err(StorageError::AlreadyExists) => {}
                Err(error) => return Err(error.to_string()),
            }
            {
                let mut known = self.known.borrow_mut();
                known.pending.drain(..ops.len());
                known.last_seq = seq;
                known
                    .cursors
                    .insert(self.tag, Position { seq, ops: last_op });
            }
            sent.segments += 1;
            sent.ops += ops.len() as u64;
            let topic = self.keys.relay.publish_topic(now_ms() / 1000);
            let hint = RelayHint {
                device: self.tag,
                seq,
            };
            if let Ok(sealed) = self.keys.relay.seal_hint(&topic, &hint, &self.identity) {
                sent.hints.push((topic.to_string(), sealed.into_bytes()));
            }
        }
    }

    /// Deletes this device's heads below its newest once [`STALE_HEADS`] of them wait; what
    /// could not be deleted is tried again after the next send.
    async fn prune_heads(&self) {
        let (from, newest) = {
            let known = self.known.borrow();
            (known.heads_pruned_to + 1, known.last_seq)
        };
        if newest.saturating_sub(from) < STALE_HEADS {
            return;
        }
        for seq in from..newest {
            let head = ObjectName::Head {
                device: self.tag,
                seq,
            };
            if self.storage.delete(&path(&head)).await.is_err() {
                return;
            }
            self.known.borrow_mut().heads_pruned_to = seq;
        }
    }

    fn identity_device(&self) -> ferry_protocol::DeviceId {
        self.known.borrow().replica.device()
    }

    /// What `log` holds, where this device tried to write `segment`.
    async fn found(&self, log: &ObjectName, segment: &Segment) -> Result<Found, String> {
        let limit = log.kind().max_sealed() as u64;
        let found = match self.storage.get(&path(log), limit).await {
            Ok(found) => found,
            Err(StorageError::NotFound | StorageError::TooLarge { .. }) => {
                return Ok(Found::Foreign);
            }
            Err(error) => return Err(error.to_string()),
        };
        let Ok(claimed) = self.keys.data.open_signed::<Segment>(log, &found) else {
            return Ok(Found::Foreign);
        };
        if claimed.verify(&self.identity.public()).is_err() {
            return Ok(Found::Foreign);
        }
        Ok(match claimed.value == *segment {
            true => Found::Ours,
            false => Found::Twin,
        })
    }
}

/// What a name this device meant to write already held.
enum Found {
    /// This device's segment from an earlier try (the page closed before it noted the write):
    /// signed here, with the same operations.
    Ours,
    /// A segment signed with this device's key, with other operations: another copy of this
    /// device wrote there. Nothing more is written: its operations and these would claim the
    /// same counters.
    Twin,
    /// Anything else: a name someone else took.
    Foreign,
}

/// Why a send stops when another copy of this device wrote.
const TWIN: &str = "another copy of this page (another tab, or a browser restored from a \
                    backup) wrote as this device, so this one stops sending: close the other \
                    tabs and reload this page; if it happens again, choose \"Forget this \
                    browser\" and pair it again";

/// Whether the state already holds this device's registration, or `pending` does.
pub(crate) fn registered(known: &Known) -> bool {
    let device = known.replica.device();
    known.replica.state().device(&device).is_some()
        || known
            .pending
            .iter()
            .any(|op| matches!(op.action, Action::RegisterDevice { .. }))
}
