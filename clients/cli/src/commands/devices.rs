//! `ferry devices`: the roster. Every device that signs what it writes, the fingerprint of its
//! keys, who vouched for it (the device that paired it, or one whose user compared its
//! fingerprint) and whether that chain leads back to the repository's first device, how far
//! this device has read it and when it last heard from it (its newest segment received here);
//! devices that never registered (an older Ferry) are listed too, since nothing tells their
//! objects from a forgery. `ferry devices rename` names this device everywhere, or labels
//! another here; `ferry devices vouch` attests a device after its fingerprint is confirmed;
//! `ferry pair` attests the device it paired through the hidden `attest`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::UNIX_EPOCH;

use ferry_core::Membership;
use ferry_protocol::{DeviceId, DeviceKeys};
use serde::{Deserialize, Serialize};

use crate::cli::{DataCommand, DevicesAction, RotateArgs};
use crate::config::Config;
use crate::device::{Changed, Device};
use crate::error::Failure;
use crate::generation;
use crate::home::Home;
use crate::output::{Done, Lines, Output, age, as_text};
use crate::prompt;

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
    /// The device that vouched for it (paired it), else itself.
    added_by: Option<String>,
    /// The id of the device that vouched for it, when one did.
    paired_by: Option<String>,
    /// `first` (the repository's first device), `attested` (vouched for by a device whose own
    /// membership holds), `unchained` (vouched for only by devices whose membership does not
    /// hold), `unattested` (it joined with the sync key alone) or `unregistered`.
    membership: &'static str,
    /// Its membership does not hold: worth a look if nobody remembers adding it.
    unpaired: bool,
    /// Its newest segment applied on this device (from its head).
    last_seq: Option<u64>,
    /// When its newest segment or snapshot was received here.
    last_seen_ms: Option<u64>,
    /// When it left the repository (`ferry leave` there), if it did.
    left_ms: Option<u64>,
    /// Whether a new key of the repository removed it (`ferry devices remove`).
    removed: bool,
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
        let by = self.added_by.as_deref().unwrap_or("?");
        match self.membership {
            "first" => write!(f, ", the repository's first device")?,
            "attested" if by != self.name => write!(f, " by {by}")?,
            "unchained" => write!(
                f,
                "\tvouched for only by {by}, whose own membership does not hold"
            )?,
            "unattested" => write!(f, "\tjoined with the sync key, not added by a known device")?,
            _ => {}
        }
        if let Some(left) = self.left_ms {
            return write!(f, "\tleft {} ago", age(left));
        }
        if self.removed {
            return write!(f, "\tremoved: it cannot read what is written now");
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
    /// The name of the device that vouched for `device`, when one whose own membership holds
    /// did.
    pub(crate) fn paired_by(&self, device: &DeviceId) -> Option<&str> {
        self.0
            .iter()
            .find(|m| m.device == *device && m.membership == "attested")
            .and_then(|m| m.added_by.as_deref())
    }

    /// Each device's id and name.
    pub(crate) fn ids(&self) -> impl Iterator<Item = (&DeviceId, &str)> {
        self.0.iter().map(|m| (&m.device, m.name.as_str()))
    }

    /// This device's name, when its own membership does not hold: the others flag it.
    pub(crate) fn this_device_unpaired(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|m| m.this_device && m.unpaired)
            .map(|m| m.name.as_str())
    }

    /// Devices whose membership does not hold (they joined with the sync key alone, or only
    /// such devices vouched for them), other than this one.
    pub(crate) fn unpaired(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|m| m.unpaired && !m.this_device && !m.removed)
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
    let names = device.device_names(read.keys().copied());
    let name = |id: &DeviceId| names.get(id).cloned().unwrap_or_else(|| id.short());
    let memberships = device.engine.memberships()?;
    let removed = device.engine.removed();
    let mut members: Vec<Member> = state
        .devices()
        .map(|(id, entry)| {
            let membership = memberships.get(id).unwrap_or(&Membership::Unattested);
            let pairing = match membership {
                Membership::Attested(p) | Membership::Unchained(p) => Some(p),
                Membership::First | Membership::Unattested => None,
            };
            let added_by = pairing.map_or(entry.added_by(), |p| p.by);
            Member {
                device: *id,
                name: name(id),
                this_device: *id == own,
                registered: true,
                fingerprint: Some(entry.keys.fingerprint()),
                added_ms: Some(entry.added.wall_ms()),
                added_by: Some(name(&added_by)),
                paired_by: pairing.map(|p| p.by.to_string()),
                membership: match membership {
                    Membership::First => "first",
                    Membership::Attested(_) => "attested",
                    Membership::Unchained(_) => "unchained",
                    Membership::Unattested => "unattested",
                },
                unpaired: !membership.holds(),
                last_seq: read.get(id).map(|(seq, _)| *seq),
                last_seen_ms: read.get(id).and_then(|(_, seen)| *seen),
                left_ms: left(device, id),
                removed: removed.contains(id),
            }
        })
        .collect();
    for (id, (seq, seen)) in &read {
        if state.device(id).is_none() {
            members.push(Member {
                device: *id,
                name: name(id),
                this_device: false,
                registered: false,
                fingerprint: None,
                added_ms: None,
                added_by: None,
                paired_by: None,
                membership: "unregistered",
                unpaired: false,
                last_seq: Some(*seq),
                last_seen_ms: *seen,
                left_ms: left(device, id),
                removed: removed.contains(id),
            });
        }
    }
    members.sort_by(|a, b| (!a.this_device, &a.name).cmp(&(!b.this_device, &b.name)));
    Ok(Roster(members))
}

/// When `id` left the repository: the synced setting `left/<id>` that `ferry leave` writes
/// there.
fn left(device: &Device, id: &DeviceId) -> Option<u64> {
    let key = format!("{}{id}", ferry_core::LEFT_PREFIX);
    device
        .engine
        .state_for(ferry_core::DataKind::Settings)
        .setting(&key, ferry_core::Strategy::Latest, device.engine.device())
        .and_then(|resolved| resolved.value()?.parse().ok())
}

/// `ferry devices [rename|vouch]`.
pub(crate) async fn run(
    device: &mut Device,
    action: Option<DevicesAction>,
    out: &mut Output,
) -> Result<Changed, Failure> {
    match action {
        // `prepare` makes a removal a rotation; one that comes as it is (from an older client)
        // is one still.
        Some(DevicesAction::Remove {
            devices,
            include,
            passphrase,
            yes,
        }) => {
            let args = RotateArgs {
                revoke: devices,
                include,
                passphrase,
                yes,
                ..RotateArgs::default()
            };
            rotate(device, args, out).await
        }
        Some(DevicesAction::Rotate(args)) => rotate(device, args, out).await,
        Some(DevicesAction::RotationPlan {
            revoke,
            include,
            passphrase,
        }) => {
            let revoke = find_all(device, &revoke)?;
            let include = find_all(device, &include)?;
            generation::refuse_early(device, &revoke, passphrase).await?;
            out.report(&generation::preview(device, &revoke, &include)?);
            Ok(Changed::No)
        }
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
            let state = device.engine.state();
            let taken = state.devices().map(|(other, _)| *other).find(|other| {
                *other != id
                    && state
                        .own_name(other)
                        .is_some_and(|own| own.eq_ignore_ascii_case(&name))
            });
            if let Some(other) = taken {
                out.note(format!(
                    "warning: device {} calls itself \"{name}\" too: one of the two shows as \
                     \"{name} (2)\"",
                    other.short()
                ));
            }
            out.done(&rename(device, id, name)?);
            Ok(Changed::Yes)
        }
        Some(DevicesAction::Vouch {
            device: which,
            yes,
            fingerprint,
        }) => {
            let candidate = candidate(device, &which)?;
            match fingerprint {
                Some(confirmed) if confirmed == candidate.fingerprint => {}
                Some(confirmed) => {
                    return Err(Failure::new(format!(
                        "{} now has the key fingerprint {}, not the {confirmed} you confirmed: \
                         nothing was vouched for; run `ferry devices vouch` again",
                        candidate.name, candidate.fingerprint
                    )));
                }
                None if yes => {}
                None => {
                    return Err(Failure::usage(
                        "`ferry devices vouch` needs the fingerprint confirmed: on a terminal it \
                         asks, otherwise add --yes",
                    ));
                }
            }
            let entry = device.engine.state().device(&candidate.device).cloned();
            let keys = entry
                .map(|e| e.keys)
                .ok_or_else(|| unregistered(&candidate.name))?;
            device.engine.vouch(candidate.device, keys)?;
            let own = device.engine.device();
            let line = format!(
                "Vouched for {} ({}, key {}): every device now counts it as added by {}.",
                candidate.name,
                candidate.device.short(),
                candidate.fingerprint,
                device.device_name(&own)
            );
            out.done(&Done::new("vouched", candidate.device, line));
            Ok(Changed::Yes)
        }
        Some(DevicesAction::Candidate { device: which }) => {
            out.report(&candidate(device, &which)?);
            Ok(Changed::No)
        }
        Some(DevicesAction::Attest {
            device: paired,
            keys,
        }) => {
            let bad = |what: &str| Failure::usage(format!("attest: {what}"));
            let id: DeviceId = paired.parse().map_err(|_| bad("not a device id"))?;
            let keys = DeviceKeys::from_hex(&keys).map_err(|e| bad(&e.to_string()))?;
            out.report(&attest(device, id, keys)?);
            Ok(Changed::Yes)
        }
    }
}

/// Makes a new key for the repository, removing devices or not (`ferry devices remove`,
/// `ferry key rotate`): once the person confirmed who gets it (or said --yes).
async fn rotate(
    device: &mut Device,
    args: RotateArgs,
    out: &mut Output,
) -> Result<Changed, Failure> {
    if args.finish {
        out.report(&generation::finish(device, args.force).await?);
        return Ok(Changed::No);
    }
    let revoke = find_all(device, &args.revoke)?;
    let include = find_all(device, &args.include)?;
    let confirmed = match &args.confirmed {
        Some(confirmed) => Some(find_all(device, confirmed)?),
        None if args.yes => None,
        None => {
            return Err(Failure::usage(
                "a new key needs the devices that get it confirmed: on a terminal the command \
                 lists them and asks, otherwise add --yes",
            ));
        }
    };
    let confirmed = confirmed.as_deref();
    let to = match (args.storage, args.move_to.is_some()) {
        (None, _) if args.move_to.is_some() || args.new_credentials => {
            return Err(Failure::new(
                "the new storage's credentials did not come with the command: run it again",
            ));
        }
        (None, _) => generation::Where::Here,
        (Some(storage), true) => generation::Where::Moved(storage),
        (Some(storage), false) => generation::Where::Credentials(storage),
    };
    let show_code = args.show_code;
    let passphrase = args.new_passphrase.as_ref().map(|p| p.0.as_str());
    if args.passphrase && passphrase.is_none() {
        return Err(Failure::new(
            "the new passphrase did not come with the command: run it again",
        ));
    }
    let made = generation::Made {
        confirmed,
        show_code,
        to,
        passphrase,
    };
    let rotated = generation::rotate(device, &revoke, &include, made).await?;
    out.report(&rotated);
    Ok(Changed::No)
}

/// The devices `names` name (each a name or a unique prefix of an id).
fn find_all(device: &Device, names: &[String]) -> Result<Vec<DeviceId>, Failure> {
    names.iter().map(|which| find(device, which)).collect()
}

/// Lists, on a terminal, who a new key goes to and who is removed or left out, and asks
/// before going on; the command then carries the devices confirmed, which must still be the
/// ones when it runs (here, or in the agent). The new recovery code is shown only when the
/// command's output is a terminal.
pub(crate) async fn confirm_rotation(
    home: &Home,
    config: &Config,
    command: &mut DataCommand,
) -> Result<(), Failure> {
    let DataCommand::Devices {
        action: Some(DevicesAction::Rotate(args)),
    } = command
    else {
        return Ok(());
    };
    args.show_code = std::io::IsTerminal::is_terminal(&std::io::stdout());
    if args.yes || args.confirmed.is_some() || args.finish {
        return Ok(());
    }
    let ask = DataCommand::Devices {
        action: Some(DevicesAction::RotationPlan {
            revoke: args.revoke.clone(),
            include: args.include.clone(),
            passphrase: args.passphrase,
        }),
    };
    let mut answer = Output::new(true);
    Box::pin(super::run_data(
        home.clone(),
        config.clone(),
        ask,
        &mut answer,
    ))
    .await?;
    eprint!("{}", answer.stderr);
    let preview: generation::Preview = serde_json::from_slice(&answer.stdout)
        .map_err(|e| Failure::new(format!("the rotation's plan came back oddly: {e}")))?;
    if !prompt::interactive() {
        let shown = preview.to_string();
        return Err(Failure::usage(format!(
            "a new key goes only to the devices confirmed: run the command again on a \
             terminal to be asked, or with --yes for these:\n{}",
            shown.trim_end()
        )));
    }
    let question = if let Some(url) = &args.move_to {
        format!("{preview}Move the repository to {url} with a new key? [y/N] ")
    } else if args.new_credentials {
        format!("{preview}Hand them the new storage credentials with a new key? [y/N] ")
    } else if args.revoke.is_empty() {
        format!("{preview}Make a new key for the repository? [y/N] ")
    } else {
        format!("{preview}Remove them and make a new key? [y/N] ")
    };
    match prompt::line(&question, "the answer")?.trim() {
        "y" | "Y" | "yes" => {
            // The very devices confirmed, whatever names change meanwhile; the run checks
            // that the same devices get the key.
            args.revoke = preview
                .removed
                .iter()
                .map(|d| d.device.to_string())
                .collect();
            let given = preview.recipients.iter().map(|d| d.device.to_string());
            args.confirmed = Some(given.collect());
            Ok(())
        }
        _ => Err(Failure::new("nothing was changed")),
    }
}

/// Names this device everywhere, or labels another one here.
fn rename(device: &mut Device, id: DeviceId, name: String) -> Result<Renamed, Failure> {
    if id == device.engine.device() {
        device.set_name(&name)?;
        device.follow_own_name()?;
        return Ok(Renamed {
            device: id,
            name,
            label: false,
        });
    }
    // Its own name again takes the label away.
    let own = device.engine.state().own_name(&id);
    let label = (own.as_deref() != Some(name.as_str())).then(|| name.clone());
    let labelled = label.is_some();
    device.labels.set(id, label)?;
    Ok(Renamed {
        device: id,
        name: device.device_name(&id),
        label: labelled,
    })
}

/// The device `which` names, as `ferry devices vouch` would vouch for it: refused when it is
/// this device, unregistered, or when this device's own membership does not hold (its word
/// would not count).
fn candidate(device: &Device, which: &str) -> Result<Candidate, Failure> {
    let id = find(device, which)?;
    let name = device.device_name(&id);
    let own = device.engine.device();
    if id == own {
        return Err(Failure::usage(
            "a device cannot vouch for itself: run `ferry devices vouch` on a device already \
             added, naming this one",
        ));
    }
    let entry = device
        .engine
        .state()
        .device(&id)
        .ok_or_else(|| unregistered(&name))?;
    let memberships = device.engine.memberships()?;
    if !memberships.get(&own).is_some_and(Membership::holds) {
        return Err(Failure::new(format!(
            "this device's own membership does not hold (`ferry devices` says why), so its \
             word would not count: vouch for {name} from a device that does, or have one vouch \
             for this device first"
        )));
    }
    Ok(Candidate {
        device: id,
        name,
        fingerprint: entry.keys.fingerprint(),
    })
}

fn unregistered(name: &str) -> Failure {
    Failure::new(format!(
        "{name} never registered its keys (an older Ferry): there is nothing to vouch for until \
         it runs this version"
    ))
}

/// Asks, on a terminal, whether to vouch for the device `ferry devices vouch` names, showing
/// its fingerprint; the command then carries the fingerprint confirmed, which must still be
/// the device's when it runs (here, or in the agent).
pub(crate) async fn confirm_vouch(
    home: &Home,
    config: &Config,
    command: &mut DataCommand,
) -> Result<(), Failure> {
    let DataCommand::Devices {
        action:
            Some(DevicesAction::Vouch {
                device: which,
                yes: false,
                fingerprint: fingerprint @ None,
            }),
    } = command
    else {
        return Ok(());
    };
    let ask = DataCommand::Devices {
        action: Some(DevicesAction::Candidate {
            device: which.clone(),
        }),
    };
    let mut answer = Output::new(true);
    Box::pin(super::run_data(
        home.clone(),
        config.clone(),
        ask,
        &mut answer,
    ))
    .await?;
    eprint!("{}", answer.stderr);
    let candidate: Candidate = serde_json::from_slice(&answer.stdout)
        .map_err(|e| Failure::new(format!("the device to vouch for came back oddly: {e}")))?;
    let shown = format!(
        "{} ({}) has the key fingerprint {}; `ferry doctor` on that device shows its own on \
         its secrets line (\"this device's identity (key …)\")",
        candidate.name,
        candidate.device.short(),
        candidate.fingerprint
    );
    if !prompt::interactive() {
        return Err(Failure::usage(format!(
            "{shown}: compare the two, then run `ferry devices vouch` again on a terminal, or \
             with --yes"
        )));
    }
    let question = format!(
        "{shown}.\nVouch for {} only if the two are the same. Vouch? [y/N] ",
        candidate.name
    );
    match prompt::line(&question, "the answer")?.trim() {
        "y" | "Y" | "yes" => {
            // The very device confirmed, whatever names change meanwhile.
            *which = candidate.device.to_string();
            *fingerprint = Some(candidate.fingerprint);
            Ok(())
        }
        _ => Err(Failure::new("nothing was vouched for")),
    }
}

/// Attests the device `id` that this one paired, with its public `keys`.
pub(crate) fn attest(
    device: &mut Device,
    id: DeviceId,
    keys: DeviceKeys,
) -> Result<Vouched, Failure> {
    device.engine.vouch(id, keys)?;
    let own = device.engine.device();
    Ok(Vouched {
        device_id: own,
        name: device.device_name(&own),
    })
}

/// A device named by a unique prefix of its id, or by its name.
pub(crate) fn find(device: &Device, which: &str) -> Result<DeviceId, Failure> {
    let roster = roster(device)?;
    // Devices that chose one name show as "laptop", "laptop (2)", …: the bare name could be
    // any of them.
    let sharing: Vec<&Member> = roster
        .0
        .iter()
        .filter(|m| numbered(&m.name, which))
        .collect();
    if sharing.len() > 1 {
        let shown: Vec<String> = sharing
            .iter()
            .map(|m| format!("\"{}\" ({})", m.name, m.device.short()))
            .collect();
        // Which device shows which name can change as devices come and go: the id cannot.
        return Err(Failure::usage(format!(
            "{} devices go by \"{which}\": {}; name the one you mean by its id prefix (in \
             parentheses here)",
            sharing.len(),
            shown.join(", ")
        )));
    }
    let by_name: Vec<&Member> = roster.0.iter().filter(|m| m.name == which).collect();
    let by_id: Vec<&Member> = roster
        .0
        .iter()
        .filter(|m| !which.is_empty() && m.device.to_string().starts_with(&which.to_lowercase()))
        .collect();
    // A name that is also another device's id prefix names neither: a device could otherwise
    // take a name that reads as another's id.
    let found = match (by_name.as_slice(), by_id.as_slice()) {
        ([one], []) | ([], [one]) => one,
        ([named], [numbered]) if named.device == numbered.device => named,
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

/// Whether `shown` is `base`, or `base` made unique ("laptop (2)").
fn numbered(shown: &str, base: &str) -> bool {
    shown == base
        || shown
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix(" ("))
            .and_then(|rest| rest.strip_suffix(')'))
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// A device name: not empty, one line, at most 64 characters, not hex digits alone (which
/// would read as a device id).
pub(crate) fn checked_name(name: &str) -> Result<String, Failure> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Failure::usage("a device name cannot be empty"));
    }
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Failure::usage(
            "a device name is at most 64 characters, without tabs or line breaks",
        ));
    }
    if name.len() >= 4 && name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Failure::usage(
            "a device name of hex digits alone would read as a device id: add a letter past f",
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
    /// A label only this device shows (another device was renamed), rather than this device's
    /// name on every device.
    label: bool,
}

impl fmt::Display for Renamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.device.short();
        if self.label {
            writeln!(
                f,
                "Device {short} is now \"{}\" here: a device names itself, so this label stays \
                 on this device (renaming it to its own name takes the label away).",
                self.name
            )
        } else {
            writeln!(f, "Device {short} is now \"{}\".", self.name)
        }
    }
}

/// The device `ferry devices vouch` would vouch for, and the fingerprint to confirm.
#[derive(Serialize, Deserialize)]
struct Candidate {
    #[serde(with = "as_text")]
    device: DeviceId,
    name: String,
    fingerprint: String,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}) has the key fingerprint {}: confirm it with --yes once `ferry doctor` on \
             that device shows the same",
            self.name,
            self.device.short(),
            self.fingerprint
        )
    }
}

/// What an attestation did: which device attested (the one `ferry pair` runs on).
#[derive(Serialize, Deserialize)]
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
