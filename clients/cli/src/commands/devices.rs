//! `ferry devices`: the roster. Every device that signs what it writes, the fingerprint of its
//! keys, who added it and when, how far this device has read it and when it last heard from it
//! (its newest segment received here); devices that never
//! registered (an older Ferry) are listed too, since nothing tells their objects from a
//! forgery.

use std::collections::BTreeMap;
use std::fmt;
use std::time::UNIX_EPOCH;

use ferry_core::DeviceEntry;
use ferry_protocol::DeviceId;
use serde::Serialize;

use crate::device::Device;
use crate::error::Failure;
use crate::output::{Lines, Output, age};

/// The roster as this device knows it.
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct Roster(Vec<Member>);

#[derive(Serialize)]
pub(crate) struct Member {
    device: String,
    name: String,
    this_device: bool,
    /// Whether it registered its keys (devices of an older Ferry did not).
    registered: bool,
    /// Fingerprint of its public keys.
    fingerprint: Option<String>,
    added_ms: Option<u64>,
    /// The device that added it: itself when it joined with the sync key alone.
    added_by: Option<String>,
    /// It joined with the sync key alone rather than being added by a device already there:
    /// worth a look if nobody remembers adding it.
    unpaired: bool,
    /// Its newest segment applied on this device (from its head).
    last_seq: Option<u64>,
    /// When its newest segment or snapshot was received here.
    last_seen_ms: Option<u64>,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = &self.device[..8];
        let mark = if self.this_device { "*" } else { " " };
        write!(f, "{mark} {}\t{short}", self.name)?;
        match (&self.fingerprint, self.added_ms) {
            (Some(fingerprint), Some(added)) => {
                write!(f, "\tkey {fingerprint}\tadded {} ago", age(added))?;
            }
            _ => write!(
                f,
                "\tnot registered (an older Ferry: its objects are not signed)"
            )?,
        }
        if let Some(by) = &self.added_by
            && !self.unpaired
            && by != &self.name
        {
            write!(f, " by {by}")?;
        }
        if self.unpaired {
            write!(f, "\tjoined with the sync key, not added by a known device")?;
        }
        match (self.last_seq, self.last_seen_ms) {
            (Some(seq), Some(seen)) => {
                write!(
                    f,
                    "\tread up to segment {seq}, last heard {} ago",
                    age(seen)
                )
            }
            (Some(seq), None) => write!(f, "\tread up to segment {seq}"),
            (None, _) if self.this_device => Ok(()),
            (None, _) => write!(f, "\tnothing read yet"),
        }
    }
}

impl fmt::Display for Roster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Lines(&self.0).fmt(f)
    }
}

impl Roster {
    /// Devices that joined with the sync key alone, other than this one.
    pub(crate) fn unpaired(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|m| m.unpaired && !m.this_device)
            .map(|m| m.name.as_str())
    }
}

/// The roster of `device`, this device first, then by name.
pub(crate) fn roster(device: &Device) -> Result<Roster, Failure> {
    let state = device.engine.state();
    let own = device.engine.device();
    let mut read: BTreeMap<DeviceId, (u64, Option<u64>)> = BTreeMap::new();
    for peer in device.engine.status()?.peers {
        let seen = device.engine.last_received(&peer.tag)?;
        let seen_ms = seen.and_then(|at| at.duration_since(UNIX_EPOCH).ok());
        read.insert(
            peer.device,
            (peer.seq, seen_ms.map(|d| d.as_millis() as u64)),
        );
    }
    let anchor = first_registered(state.devices());
    let mut members: Vec<Member> = state
        .devices()
        .map(|(id, entry)| Member {
            device: id.to_string(),
            name: device.device_name(id),
            this_device: *id == own,
            registered: true,
            fingerprint: Some(entry.keys.fingerprint()),
            added_ms: Some(entry.added.wall_ms()),
            added_by: Some(device.device_name(&entry.added_by())),
            unpaired: entry.added_by() == *id && Some(*id) != anchor,
            last_seq: read.get(id).map(|(seq, _)| *seq),
            last_seen_ms: read.get(id).and_then(|(_, seen)| *seen),
        })
        .collect();
    for (id, (seq, seen)) in &read {
        if state.device(id).is_none() {
            members.push(Member {
                device: id.to_string(),
                name: device.device_name(id),
                this_device: false,
                registered: false,
                fingerprint: None,
                added_ms: None,
                added_by: None,
                unpaired: false,
                last_seq: Some(*seq),
                last_seen_ms: *seen,
            });
        }
    }
    members.sort_by(|a, b| (!a.this_device, &a.name).cmp(&(!b.this_device, &b.name)));
    Ok(Roster(members))
}

/// The device registered first: the one that made the repository, which nobody could add.
fn first_registered<'a>(
    entries: impl Iterator<Item = (&'a DeviceId, &'a DeviceEntry)>,
) -> Option<DeviceId> {
    entries
        .min_by_key(|(_, entry)| entry.added)
        .map(|(id, _)| *id)
}

/// `ferry devices`.
pub(crate) fn list(device: &Device, out: &mut Output) -> Result<(), Failure> {
    out.report(&roster(device)?);
    Ok(())
}
