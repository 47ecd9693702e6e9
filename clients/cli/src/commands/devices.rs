//! `ferry devices`: the roster. Every device that signs what it writes, the fingerprint of its
//! keys, who added it (the device that paired it) and when, how far this device has read it
//! and when it last heard from it (its newest segment received here); devices that never
//! registered (an older Ferry) are listed too, since nothing tells their objects from a
//! forgery. `ferry devices rename` names a device on every device; `ferry pair` attests the
//! device it paired through the hidden `vouch`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::UNIX_EPOCH;

use ferry_core::DeviceEntry;
use ferry_protocol::{DeviceId, DeviceKeys};
use serde::Serialize;

use crate::cli::DevicesAction;
use crate::device::{Changed, Device};
use crate::error::Failure;
use crate::output::{Lines, Output, age, as_text};

/// The roster as this device knows it.
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct Roster(Vec<Member>);

#[derive(Serialize)]
pub(crate) struct Member {
    #[serde(with = "as_text")]
    device: DeviceId,
    name: String,
    this_device: bool,
    /// Whether it registered its keys (devices of an older Ferry did not).
    registered: bool,
    /// Fingerprint of its public keys.
    fingerprint: Option<String>,
    added_ms: Option<u64>,
    /// The device that added it: the one that paired it, else itself.
    added_by: Option<String>,
    /// The id of the device that paired it, when one did.
    paired_by: Option<String>,
    /// It joined with the sync key alone rather than being added by a device already there:
    /// worth a look if nobody remembers adding it.
    unpaired: bool,
    /// Its newest segment applied on this device (from its head).
    last_seq: Option<u64>,
    /// When its newest segment or snapshot was received here.
    last_seen_ms: Option<u64>,
    /// When it left the repository (`ferry leave` there), if it did.
    left_ms: Option<u64>,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.device.short();
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
        if let Some(left) = self.left_ms {
            return write!(f, "\tleft {} ago", age(left));
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
    /// The name of the device that paired `device`, when one did.
    pub(crate) fn paired_by(&self, device: &DeviceId) -> Option<&str> {
        self.0
            .iter()
            .find(|m| m.device == *device && m.paired_by.is_some())
            .and_then(|m| m.added_by.as_deref())
    }

    /// Each device's id and name.
    pub(crate) fn ids(&self) -> impl Iterator<Item = (&DeviceId, &str)> {
        self.0.iter().map(|m| (&m.device, m.name.as_str()))
    }

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
        .map(|(id, entry)| {
            let paired = state.paired_by(id);
            let added_by = paired.as_ref().map_or(entry.added_by(), |p| p.by);
            Member {
                device: *id,
                name: device.device_name(id),
                this_device: *id == own,
                registered: true,
                fingerprint: Some(entry.keys.fingerprint()),
                added_ms: Some(entry.added.wall_ms()),
                added_by: Some(device.device_name(&added_by)),
                paired_by: paired.map(|p| p.by.to_string()),
                unpaired: added_by == *id && Some(*id) != anchor,
                last_seq: read.get(id).map(|(seq, _)| *seq),
                last_seen_ms: read.get(id).and_then(|(_, seen)| *seen),
                left_ms: left(device, id),
            }
        })
        .collect();
    for (id, (seq, seen)) in &read {
        if state.device(id).is_none() {
            members.push(Member {
                device: *id,
                name: device.device_name(id),
                this_device: false,
                registered: false,
                fingerprint: None,
                added_ms: None,
                added_by: None,
                paired_by: None,
                unpaired: false,
                last_seq: Some(*seq),
                last_seen_ms: *seen,
                left_ms: left(device, id),
            });
        }
    }
    members.sort_by(|a, b| (!a.this_device, &a.name).cmp(&(!b.this_device, &b.name)));
    Ok(Roster(members))
}

/// When `id` left the repository: the synced setting `left/<id>` that `ferry leave` writes
/// there.
fn left(device: &Device, id: &DeviceId) -> Option<u64> {
    let key = format!("{}{id}", crate::commands::leave::LEFT_PREFIX);
    device
        .engine
        .state_for(ferry_core::DataKind::Settings)
        .setting(&key, ferry_core::Strategy::Latest, device.engine.device())
        .and_then(|resolved| resolved.value()?.parse().ok())
}

/// The device registered first: the one that made the repository, which nobody could add.
fn first_registered<'a>(
    entries: impl Iterator<Item = (&'a DeviceId, &'a DeviceEntry)>,
) -> Option<DeviceId> {
    entries
        .min_by_key(|(_, entry)| entry.added)
        .map(|(id, _)| *id)
}

/// `ferry devices [rename|vouch]`.
pub(crate) fn run(
    device: &mut Device,
    action: Option<DevicesAction>,
    out: &mut Output,
) -> Result<Changed, Failure> {
    match action {
        None => {
            out.report(&roster(device)?);
            Ok(Changed::No)
        }
        Some(DevicesAction::Rename {
            device: which,
            name,
        }) => {
            let id = find(device, &which)?;
            let name = checked_name(&name)?;
            device.name_device(id, &name)?;
            device.follow_own_name()?;
            out.done(&Renamed { device: id, name });
            Ok(Changed::Yes)
        }
        Some(DevicesAction::Vouch {
            device: paired,
            name,
            keys,
        }) => {
            let bad = |what: &str| Failure::usage(format!("vouch: {what}"));
            let id: DeviceId = paired.parse().map_err(|_| bad("not a device id"))?;
            let keys = DeviceKeys::from_hex(&keys).map_err(|e| bad(&e.to_string()))?;
            out.report(&vouch(device, id, keys, &name)?);
            Ok(Changed::Yes)
        }
    }
}

/// Attests the device `id` that this one paired, with its public `keys`, under `name`.
pub(crate) fn vouch(
    device: &mut Device,
    id: DeviceId,
    keys: DeviceKeys,
    name: &str,
) -> Result<Vouched, Failure> {
    device.engine.vouch(id, keys)?;
    device.name_device(id, &checked_name(name)?)?;
    let own = device.engine.device();
    Ok(Vouched {
        device_id: own,
        name: device.device_name(&own),
    })
}

/// A device named by a unique prefix of its id, or by its name.
pub(crate) fn find(device: &Device, which: &str) -> Result<DeviceId, Failure> {
    let roster = roster(device)?;
    let by_name: Vec<&Member> = roster.0.iter().filter(|m| m.name == which).collect();
    let by_id: Vec<&Member> = roster
        .0
        .iter()
        .filter(|m| !which.is_empty() && m.device.to_string().starts_with(&which.to_lowercase()))
        .collect();
    let found = match (by_name.as_slice(), by_id.as_slice()) {
        ([one], _) | ([], [one]) => one,
        ([], []) => {
            return Err(Failure::usage(format!(
                "no device is named or numbered \"{which}\": `ferry devices` lists them"
            )));
        }
        _ => {
            return Err(Failure::usage(format!(
                "\"{which}\" could be several devices: give more of its id (`ferry devices` \
                 lists them)"
            )));
        }
    };
    Ok(found.device)
}

/// A device name: not empty, one line, at most 64 characters.
fn checked_name(name: &str) -> Result<String, Failure> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Failure::usage(
            "a device name is 1 to 64 characters on one line",
        ));
    }
    Ok(name.to_owned())
}

/// What `ferry devices rename` did.
#[derive(Serialize)]
struct Renamed {
    #[serde(with = "as_text")]
    device: DeviceId,
    name: String,
}

impl fmt::Display for Renamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Device {} is now \"{}\".",
            self.device.short(),
            self.name
        )
    }
}

/// What a vouch did: which device attested (the one `ferry pair` runs on).
#[derive(Serialize, serde::Deserialize)]
pub(crate) struct Vouched {
    #[serde(with = "as_text")]
    pub(crate) device_id: DeviceId,
    pub(crate) name: String,
}

impl fmt::Display for Vouched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}) attested the paired device.",
            self.name,
            self.device_id.short()
        )
    }
}
