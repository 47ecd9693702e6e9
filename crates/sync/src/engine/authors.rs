//! Who wrote what: objects read from storage are checked against this device's roster and
//! clock by `ferry_read::Checker` (its module says what counts as a device's own).

use ferry_protocol::DeviceId;
use ferry_read::Checker;

use super::Engine;
use crate::transfer::now_ms;

impl Engine {
    /// What objects read now are checked against: this generation's keys, this device's
    /// roster and clock.
    pub(super) fn checker(&self) -> Checker<'_> {
        Checker {
            keys: &self.keys,
            state: self.replica.state(),
            known_actions: self.config.known_actions,
            now_ms: now_ms(),
        }
    }

    /// How the roster names `device` in messages: its registered name, else its short id.
    pub(super) fn who(&self, device: &DeviceId) -> String {
        self.checker().who(device)
    }
}
