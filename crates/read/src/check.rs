//! Who wrote what: every segment and snapshot read from storage is opened, matched to its name
//! and checked against the device roster before anything in it is applied.
//!
//! | the writer in the roster | the object | verdict |
//! | --- | --- | --- |
//! | registered with keys K | signed with K | its own |
//! | registered | signed with another key, or unsigned (format 1) | forged |
//! | registered | registers the writer again with other keys | forged |
//! | not registered | registers the writer with K and is signed with K | its own (first use) |
//! | not registered | no registration | taken on trust, as format 1 objects are: nothing yet says which key is the writer's |
//! | any | registers a device other than its writer | forged: a device registers only itself |

use ferry_core::{Action, CoreError, Op, State};
use ferry_protocol::{
    Claimed, DeviceId, DeviceKeys, DeviceTag, Error, Keys, ObjectName, Segment, Snapshot,
};

use crate::Refusal;

/// Where a device stands with another device's log: its last segment applied, and its last
/// operation applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// The seq of the last segment (or snapshot) applied.
    pub seq: u64,
    /// The counter of the last operation applied.
    pub ops: u64,
}

/// What the reading device checks objects against.
#[derive(Clone, Copy)]
pub struct Checker<'a> {
    /// The repository's keys (of the generation read).
    pub keys: &'a Keys,
    /// The reading device's state: its roster says which keys each writer signs with.
    pub state: &'a State,
    /// How many kinds of operation the reading build knows (`Action::KINDS`).
    pub known_actions: u32,
    /// The reading device's clock, ms since the Unix epoch.
    pub now_ms: u64,
}

impl Checker<'_> {
    /// How the roster names `device` in messages: its registered name, else its short id.
    pub fn who(&self, device: &DeviceId) -> String {
        who(self.state, device)
    }

    /// Opens and checks the segment `name` of the device of `tag`, which this device has
    /// applied up to `cursor`: `None` when it is its writer's, but operations before it are not
    /// applied yet. Its operations already applied (a segment the writer sealed again under a
    /// later name) are left out.
    pub fn open_segment(
        &self,
        name: &ObjectName,
        tag: &DeviceTag,
        cursor: Position,
        bytes: &[u8],
    ) -> Result<Option<(Segment, Vec<Op>)>, Refusal> {
        let damaged = |reason: String| Refusal::Damaged(reason);
        let claimed = self
            .keys
            .data
            .open_signed::<Segment>(name, bytes)
            .map_err(|e| damaged(e.to_string()))?;
        let segment = &claimed.value;
        if self.keys.names.device_tag(&segment.device) != *tag {
            return Err(damaged(
                "the segment's device does not match its name".into(),
            ));
        }
        if !matches!(name, ObjectName::Log { seq, .. } if *seq == segment.seq) {
            return Err(damaged(format!(
                "the segment claims seq {}, which is not its name's",
                segment.seq
            )));
        }
        if segment.seq <= cursor.seq {
            return Err(damaged(format!(
                "the segment claims seq {}, but seq {} is applied already",
                segment.seq, cursor.seq
            )));
        }
        if segment.first_op == 0 {
            return Err(damaged(
                "the segment claims to start at operation 0; a device counts from 1".into(),
            ));
        }
        let mut ops = Vec::with_capacity(segment.ops.len());
        let mut newer = 0u64;
        for (i, raw) in segment.ops.iter().enumerate() {
            let op = match Op::decode_known(&raw.0, self.known_actions) {
                Ok(op) => op,
                Err(CoreError::NewerAction { .. }) => {
                    newer += 1;
                    continue;
                }
                Err(error) => return Err(damaged(format!("operation {i}: {error}"))),
            };
            let expected = segment.first_op + i as u64;
            if op.device() != segment.device || op.counter != expected {
                return Err(damaged(format!(
                    "operation {i} is not operation {expected} of the segment's device"
                )));
            }
            ops.push(op);
        }
        let registers = registered_by(segment.device, &ops)?;
        self.check_author(&claimed, segment.device, registers)?;
        if let Some(latest) = ops.iter().map(|op| op.hlc).max() {
            Refusal::if_too_far_ahead(latest, self.now_ms)?;
        }
        if newer > 0 {
            return Err(Refusal::Newer { ops: newer });
        }
        // A device's operations are counted without gaps, and the count is signed: a segment
        // follows on when it starts at or before the next operation, whatever its seq.
        if segment.first_op > cursor.ops + 1 {
            return Ok(None);
        }
        ops.retain(|op| op.counter > cursor.ops);
        Ok(Some((claimed.value, ops)))
    }

    /// Opens and checks the snapshot `name` (at `seq`) of the device of `tag`: its state, and
    /// where its device's stream stands once it is merged.
    pub fn open_snapshot(
        &self,
        name: &ObjectName,
        tag: DeviceTag,
        seq: u64,
        bytes: &[u8],
    ) -> Result<(Snapshot, State, Position), Refusal> {
        let damaged = |reason: String| Refusal::Damaged(reason);
        let claimed = self
            .keys
            .data
            .open_signed::<Snapshot>(name, bytes)
            .map_err(|e| damaged(e.to_string()))?;
        let snapshot = &claimed.value;
        if self.keys.names.device_tag(&snapshot.device) != tag || snapshot.seq != seq {
            return Err(damaged(
                "the snapshot's device or seq does not match its name".into(),
            ));
        }
        let Some(own) = snapshot
            .version_vector
            .iter()
            .find(|cursor| cursor.device == snapshot.device)
        else {
            return Err(damaged(
                "the snapshot's version vector does not include its own device".into(),
            ));
        };
        if own.seq != seq {
            return Err(damaged(format!(
                "the snapshot's version vector puts its own device at seq {}, not {seq}",
                own.seq
            )));
        }
        let advanced = Position { seq, ops: own.ops };
        let state = State::decode_format(&snapshot.state, claimed.format())
            .map_err(|e| damaged(e.to_string()))?;
        let registers = state.device(&snapshot.device).map(|entry| entry.keys);
        self.check_author(&claimed, snapshot.device, registers)?;
        self.check_roster(&state)?;
        Refusal::if_too_far_ahead(state.latest(), self.now_ms)?;
        Ok((claimed.value, state, advanced))
    }

    /// Checks that `writer` wrote `claimed`; `registers` is the keys the object itself
    /// registers for its writer, if any.
    pub fn check_author<T>(
        &self,
        claimed: &Claimed<T>,
        writer: DeviceId,
        registers: Option<DeviceKeys>,
    ) -> Result<(), Refusal> {
        let who = self.who(&writer);
        let Some(entry) = self.state.device(&writer) else {
            return match registers {
                Some(keys) => claimed.verify(&keys).map_err(|_| {
                    Refusal::Forged(format!(
                        "its signature does not match the key it registers for {who}"
                    ))
                }),
                None => Ok(()),
            };
        };
        if let Some(keys) = registers
            && keys != entry.keys
        {
            return Err(Refusal::Forged(format!(
                "it registers {who} again with another key ({}), but {who} is registered with {}",
                keys.fingerprint(),
                entry.keys.fingerprint()
            )));
        }
        claimed.verify(&entry.keys).map_err(|error| {
            Refusal::Forged(match error {
                Error::NotSigned => {
                    format!("it is not signed, but {who} signs everything it writes")
                }
                _ => format!("not signed by {who}'s key"),
            })
        })
    }

    /// Checks a snapshot's roster against the reading device's: it may add devices, never give
    /// a known one other keys.
    pub fn check_roster(&self, theirs: &State) -> Result<(), Refusal> {
        for (device, entry) in theirs.devices() {
            if let Some(ours) = self.state.device(device)
                && ours.keys != entry.keys
            {
                return Err(Refusal::Forged(format!(
                    "it gives {} another key ({}) than the one registered ({})",
                    self.who(device),
                    entry.keys.fingerprint(),
                    ours.keys.fingerprint()
                )));
            }
        }
        Ok(())
    }
}

/// How the roster of `state` names `device` in messages: its registered name, else its short id.
pub fn who(state: &State, device: &DeviceId) -> String {
    match state.device(device) {
        Some(entry) if !entry.name.is_empty() => entry.name.clone(),
        _ => format!("device {}", device.short()),
    }
}

/// The keys a segment's operations register for its writer; a registration of any other
/// device is refused.
pub fn registered_by(writer: DeviceId, ops: &[Op]) -> Result<Option<DeviceKeys>, Refusal> {
    let mut claimed = None;
    for op in ops {
        if let Action::RegisterDevice { device, keys, .. } = &op.action {
            if *device != writer {
                return Err(Refusal::Forged(format!(
                    "it registers another device ({}): a device registers only itself",
                    device.short()
                )));
            }
            claimed = Some(*keys);
        }
    }
    Ok(claimed)
}

/// Of snapshots read together (a device starting from storage), each given as its writer and
/// its state, those whose roster gives a device other keys than that device's own snapshot
/// registers for itself (a device's own signed word about its keys outranks anyone else's):
/// their index, with the device and the keys they give it.
pub fn contradicted(snapshots: &[(DeviceId, &State)]) -> Vec<(usize, DeviceId, DeviceKeys)> {
    let own: std::collections::BTreeMap<DeviceId, DeviceKeys> = snapshots
        .iter()
        .filter_map(|(writer, state)| Some((*writer, state.device(writer)?.keys)))
        .collect();
    snapshots
        .iter()
        .enumerate()
        .filter_map(|(i, (writer, state))| {
            state.devices().find_map(|(device, entry)| {
                (device != writer && own.get(device).is_some_and(|keys| *keys != entry.keys))
                    .then_some((i, *device, entry.keys))
            })
        })
        .collect()
}
