//! Who may connect: the devices of the repository's roster, each with the key it signs with.
//!
//! A device that has read no other device's registration yet (it just joined) lets in any
//! device whose hello is signed: everything it is sent is checked against the roster later
//! anyway. Once the application names the members, only they connect, each proving its key.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ferry_protocol::DeviceId;
use tokio::sync::watch;

/// The devices a LAN path lets in; a handle the application updates as its roster changes.
#[derive(Clone)]
pub struct Members {
    known: Arc<watch::Sender<Known>>,
}

/// The members with their signing keys, or `None` for anyone.
pub(crate) type Known = Option<Arc<HashMap<DeviceId, [u8; 32]>>>;

impl Members {
    /// Any device whose hello is signed by the key it names (a device that knows no other
    /// device yet).
    pub fn anyone() -> Members {
        Members {
            known: Arc::new(watch::channel(None).0),
        }
    }

    /// Only these devices, each with its Ed25519 signing key, from now on. Connections of
    /// devices no longer named close, and devices refused before as unknown are dialled again.
    pub fn set(&self, members: impl IntoIterator<Item = (DeviceId, [u8; 32])>) {
        let members: HashMap<DeviceId, [u8; 32]> = members.into_iter().collect();
        self.known.send_if_modified(|known| {
            if known.as_deref() == Some(&members) {
                return false;
            }
            *known = Some(Arc::new(members));
            true
        });
    }

    /// Whether `device` may connect, signing with `key`.
    pub(crate) fn allow(&self, device: &DeviceId, key: &[u8; 32]) -> bool {
        match &*self.known.borrow() {
            None => true,
            Some(known) => known.get(device) == Some(key),
        }
    }

    /// Whether a caller signing with `key` may connect: a command of some member device,
    /// which says no device id of its own (it is known by a passing one).
    pub(crate) fn allow_caller(&self, key: &[u8; 32]) -> bool {
        match &*self.known.borrow() {
            None => true,
            Some(known) => known.values().any(|k| k == key),
        }
    }

    /// Tells of every change from now on.
    pub(crate) fn watch(&self) -> watch::Receiver<Known> {
        self.known.subscribe()
    }
}

impl Default for Members {
    fn default() -> Self {
        Members::anyone()
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.known.borrow() {
            None => f.write_str("Members(anyone)"),
            Some(known) => write!(f, "Members({} devices)", known.len()),
        }
    }
}
