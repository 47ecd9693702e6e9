//! Who wrote what: every segment and snapshot read from storage is checked against the device
//! roster before anything in it is applied.
//!
//! | the writer in the roster | the object | verdict |
//! | --- | --- | --- |
//! | registered with keys K | signed with K | its own |
//! | registered | signed with another key, or unsigned (format 1) | forged |
//! | registered | registers the writer again with other keys | forged |
//! | not registered | registers the writer with K and is signed with K | its own (first use) |
//! | not registered | no registration | taken on trust, as format 1 objects are: nothing yet says which key is the writer's |
//! | any | registers a device other than its writer | forged: a device registers only itself |

use ferry_core::{Action, Op, State};
use ferry_protocol::{Claimed, DeviceId, DeviceKeys, Error};

use super::Engine;
use super::quarantine::Refusal;

/// The keys a segment's operations register for its writer; a registration of any other
/// device is refused.
pub(super) fn registered_by(writer: DeviceId, ops: &[Op]) -> Result<Option<DeviceKeys>, Refusal> {
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

impl Engine {
    /// How the roster names `device` in messages: its registered name, else its short id.
    pub(super) fn who(&self, device: &DeviceId) -> String {
        match self.replica.state().device(device) {
            Some(entry) if !entry.name.is_empty() => entry.name.clone(),
            _ => format!("device {}", device.short()),
        }
    }

    /// Checks that `writer` wrote `claimed`; `registers` is the keys the object itself
    /// registers for its writer, if any.
    pub(super) fn check_author<T>(
        &self,
        claimed: &Claimed<T>,
        writer: DeviceId,
        registers: Option<DeviceKeys>,
    ) -> Result<(), Refusal> {
        let who = self.who(&writer);
        let Some(entry) = self.replica.state().device(&writer) else {
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

    /// Checks a snapshot's roster against this device's: it may add devices, never give a
    /// known one other keys.
    pub(super) fn check_roster(&self, theirs: &State) -> Result<(), Refusal> {
        for (device, entry) in theirs.devices() {
            if let Some(ours) = self.replica.state().device(device)
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
