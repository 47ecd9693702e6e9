//! New generations of the repository, as this device meets them (SPEC §11): following one that
//! another device made, and making one (`ferry devices remove`, `ferry key rotate`).
//!
//! ```text
//! follow: listing shows head/next/ ─▶ engine.next_generation ─▶ keep the new key in the
//!         secret store ─▶ engine.follow ─▶ sync there (a device stopped after keeping the key
//!         moves when it opens again: the engine finds the way from its database)
//! make:   sync, follow what is there ─▶ plan ─▶ keep the next key (next-sync-key) ─▶
//!         engine.rotate ─▶ follow the chosen candidate (this one, or a race's winner) ─▶ again
//!         from there while a device meant to be removed is not (removal wins)
//! ```

use std::collections::BTreeSet;
use std::fmt;

use ferry_core::Membership;
use ferry_protocol::{DeviceId, SyncKey};
use ferry_secrets::Secret;
use ferry_sync::{Destination, NextGeneration, SyncError};
use serde::{Deserialize, Serialize};

use crate::device::{self, Device};
use crate::error::Failure;
use crate::output::as_text;

/// The most generations one command follows or makes: more is a storage that plants them.
const MAX_STEPS: usize = 64;

/// The most rounds a rotation takes while races with other devices' rotations leave some of
/// its removals undone.
const MAX_ROUNDS: usize = 4;

/// A move to a new generation, as said to the person.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Moved {
    /// The generation the device is on now.
    pub(crate) generation: u32,
    /// What this device calls the device that made it.
    pub(crate) by: String,
    /// That device.
    #[serde(skip)]
    pub(crate) by_id: DeviceId,
    /// When it was made, in Unix milliseconds by that device's clock.
    pub(crate) at_ms: u64,
}

impl fmt::Display for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "The repository has a new key (generation {}, made on {} by {}): this device moved \
             to it and keeps it.",
            self.generation,
            day(self.at_ms),
            self.by
        )
    }
}

/// Follows the generations after the one this device is on, when the last listing of the
/// storage showed one: for each, the new key is kept in the secret store first, then the
/// device moves and syncs there. The last move, if any. A generation that removes this device,
/// leaves it out, or is disputed, is a failure that says so and what to do.
pub(crate) async fn follow(device: &mut Device) -> Result<Option<Moved>, Failure> {
    let mut moved = None;
    for _ in 0..MAX_STEPS {
        if !device.engine.successor_listed() {
            return Ok(moved);
        }
        let next = match device.engine.next_generation(&BTreeSet::new()).await {
            Ok(Some(next)) => next,
            Ok(None) => return Ok(moved),
            Err(error) => return Err(shut_out(device, error)),
        };
        step(device, &next).await?;
        moved = Some(Moved {
            generation: next.successor.generation,
            by: device.device_name(&next.by),
            by_id: next.by,
            at_ms: next.at_ms,
        });
        // What the others wrote there, and the listing that shows the generation after it;
        // the others hear of this device's first snapshot there on the new key's topic.
        let (up, _) = device.engine.sync().await?;
        device.announce(&up.hints).await;
    }
    Err(Failure::new(format!(
        "the storage shows more than {MAX_STEPS} new generations of the repository one after \
         the other: this device stopped following them; check the storage"
    )))
}

/// Moves this device to `next`: its key kept first, so that a device stopped half-way moves
/// when it opens again.
async fn step(device: &mut Device, next: &NextGeneration) -> Result<(), Failure> {
    if next.handover.storage.is_some() {
        return Err(Failure::new(format!(
            "the repository moved to other storage, or its storage credentials were replaced, \
             with generation {}: this version of Ferry cannot follow that; pair this device \
             again from one that moved",
            next.successor.generation
        )));
    }
    keep_key(device, &next.handover.key)?;
    let store = device.engine.store();
    device.engine.follow(next, store).await?;
    device.keys = next.handover.key.keys();
    // A next key kept for the generation left behind is never used again: a device given it
    // in a candidate that lost may be one removed since.
    device::secrets(&device.home, &device.config).delete(Secret::NextSyncKey)?;
    Ok(())
}

/// Keeps `key` as this device's sync key.
fn keep_key(device: &Device, key: &SyncKey) -> Result<(), Failure> {
    if std::env::var_os("FERRY_KEY").is_some() {
        return Err(Failure::new(
            "the repository moved to a new key, but this device takes its key from FERRY_KEY, \
             where the new one cannot be kept: unset FERRY_KEY, and the device takes the new \
             key into its secret store by itself at its next sync",
        ));
    }
    let secrets = device::secrets(&device.home, &device.config);
    secrets.set(Secret::SyncKey, key.recovery_code().expose())?;
    Ok(())
}

/// The engine's word that this device writes nothing more, with the devices' names.
pub(crate) fn shut_out(device: &Device, error: SyncError) -> Failure {
    let message = match &error {
        SyncError::Removed { by, at_ms } => format!(
            "this device was removed from the repository on {} by {}: it writes nothing more; \
             to use it again, pair it from another device (`ferry pair` there, `ferry join` \
             here)",
            day(*at_ms),
            device.device_name(by)
        ),
        SyncError::LeftOut { by, at_ms } => format!(
            "the repository moved to a new key on {} (made by {by_name}), which was not given to \
             this device, since no known device vouched for it: pair it again from another \
             device; or, if {by_name} is the device that is lost, remove it here with `ferry \
             devices remove {by_name}`",
            day(*at_ms),
            by_name = device.device_name(by)
        ),
        SyncError::Dispute { sides } => {
            let sides: Vec<String> = sides
                .iter()
                .map(|(by, removed)| {
                    let removed: Vec<String> =
                        removed.iter().map(|d| device.device_name(d)).collect();
                    format!("{} removed {}", device.device_name(by), removed.join(", "))
                })
                .collect();
            format!(
                "devices removed each other ({}): one of them is lost, and only you know which; \
                 this device writes nothing until you remove that one here with `ferry devices \
                 remove DEVICE`",
                sides.join("; ")
            )
        }
        _ => return error.into(),
    };
    Failure::new(message)
}

/// A calendar day in local time.
fn day(at_ms: u64) -> String {
    let at = i64::try_from(at_ms).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp_millis(at).map_or_else(
        || "an unknown day".to_owned(),
        |at| {
            at.with_timezone(&chrono::Local)
                .format("%-d %b %Y")
                .to_string()
        },
    )
}

/// The generation this device is on, for `ferry status` and `ferry doctor`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Standing {
    /// Its number (1: the repository's first key).
    pub(crate) generation: u32,
    /// What this device calls the device that made it, when known.
    pub(crate) made_by: Option<String>,
    /// The devices that got the key and have not written under it yet (seen from here).
    pub(crate) not_moved: Vec<String>,
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "generation {}", self.generation)?;
        if let Some(by) = &self.made_by {
            write!(f, " (new key made by {by})")?;
        }
        if !self.not_moved.is_empty() {
            write!(
                f,
                "; not moved to it yet: {} (they move at their next sync)",
                self.not_moved.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Where this device stands: its generation, who made it, and which devices that hold have
/// not moved to it yet (nothing of theirs read in it here); `None` on the first generation.
pub(crate) fn standing(device: &Device) -> Result<Option<Standing>, Failure> {
    let generation = device.engine.generation();
    if generation <= 1 {
        return Ok(None);
    }
    let removed = device.engine.removed();
    let memberships = device.engine.memberships()?;
    let read: BTreeSet<DeviceId> = device
        .engine
        .status()?
        .peers
        .iter()
        .map(|peer| peer.device)
        .collect();
    let own = device.engine.device();
    let not_moved = device
        .engine
        .state()
        .devices()
        .map(|(id, _)| *id)
        .filter(|id| *id != own && !removed.contains(id) && !read.contains(id))
        .filter(|id| memberships.get(id).is_some_and(Membership::holds))
        .filter(|id| !left(device, id))
        .map(|id| device.device_name(&id))
        .collect();
    Ok(Some(Standing {
        generation,
        made_by: device
            .engine
            .creator(generation)
            .map(|by| device.device_name(&by)),
        not_moved,
    }))
}

/// Whether `id` said it left the repository (`ferry leave` there).
fn left(device: &Device, id: &DeviceId) -> bool {
    let key = format!("{}{id}", ferry_core::LEFT_PREFIX);
    let state = device.engine.state();
    state
        .setting(&key, ferry_core::Strategy::Latest, device.engine.device())
        .is_some_and(|resolved| resolved.value().is_some())
}

/// What a rotation is about to do, for the person to confirm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Preview {
    /// The devices removed.
    pub(crate) removed: Vec<Listed>,
    /// The devices that receive the new key (this one first).
    pub(crate) recipients: Vec<Listed>,
    /// The devices that receive nothing and are not removed.
    pub(crate) left_out: Vec<Listed>,
}

/// A device as a rotation lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Listed {
    #[serde(with = "as_text")]
    pub(crate) device: DeviceId,
    pub(crate) name: String,
    pub(crate) fingerprint: String,
    /// What this device calls the device that added it (itself, when it joined alone).
    pub(crate) added_by: String,
    /// When it was last heard from here.
    pub(crate) last_seen_ms: Option<u64>,
    /// Whether it is this device.
    #[serde(default)]
    pub(crate) this_device: bool,
}

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  {} ({}), key {}, added by {}, ",
            self.name,
            self.device.short(),
            self.fingerprint,
            self.added_by
        )?;
        match self.last_seen_ms {
            _ if self.this_device => write!(f, "this device"),
            Some(at) => write!(f, "last heard {} ago", crate::output::age(at)),
            None => write!(f, "not heard from here"),
        }
    }
}

impl fmt::Display for Preview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, title: &str, devices: &[Listed]| {
            if devices.is_empty() {
                return Ok(());
            }
            writeln!(f, "{title}")?;
            devices.iter().try_for_each(|d| writeln!(f, "{d}"))
        };
        list(
            f,
            "Removed (they cannot read anything written from now on):",
            &self.removed,
        )?;
        list(f, "Given the new key:", &self.recipients)?;
        list(
            f,
            "Left out (nobody known vouched for them; --include gives them the key):",
            &self.left_out,
        )
    }
}

/// What a rotation would do now: `revoke` removed, `include` given the key whatever their
/// membership.
pub(crate) fn preview(
    device: &Device,
    revoke: &[DeviceId],
    include: &[DeviceId],
) -> Result<Preview, Failure> {
    let plan = device.engine.rotation_plan(revoke, include)?;
    let memberships = device.engine.memberships()?;
    let own = device.engine.device();
    let listed = |id: &DeviceId| -> Result<Listed, Failure> {
        let entry = device.engine.state().device(id);
        let last_seen_ms = device
            .engine
            .last_received(&device.engine.tag_of(id))?
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_millis() as u64);
        let added_by = match memberships.get(id) {
            Some(Membership::First) => "nobody: the repository's first device".to_owned(),
            Some(Membership::Attested(p)) => device.device_name(&p.by),
            Some(Membership::Unchained(p)) => format!(
                "{} only, whose own membership does not hold",
                device.device_name(&p.by)
            ),
            Some(Membership::Unattested) | None => {
                "nobody known (it joined with the key alone)".to_owned()
            }
        };
        Ok(Listed {
            device: *id,
            name: device.device_name(id),
            fingerprint: entry.map_or_else(|| "?".to_owned(), |e| e.keys.fingerprint()),
            added_by,
            last_seen_ms,
            this_device: *id == own,
        })
    };
    Ok(Preview {
        removed: plan.revoked.iter().map(listed).collect::<Result<_, _>>()?,
        recipients: plan
            .recipients
            .iter()
            .map(|(id, _)| listed(id))
            .collect::<Result<_, _>>()?,
        left_out: plan.left_out.iter().map(listed).collect::<Result<_, _>>()?,
    })
}

/// What a rotation did.
#[derive(Debug, Serialize)]
pub(crate) struct Rotated {
    /// The generation the repository is on now.
    pub(crate) generation: u32,
    /// Who moved it there, and who is out.
    #[serde(flatten)]
    pub(crate) preview: Preview,
    /// The new recovery code, when it may be shown (on a terminal only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) recovery_code: Option<String>,
    /// What else to know (devices removed already, an upload to try again).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
}

impl fmt::Display for Rotated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |devices: &[Listed]| {
            devices
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let given = names(&self.preview.recipients);
        if self.preview.removed.is_empty() {
            writeln!(
                f,
                "Made a new key for the repository (generation {}), given to {given}.",
                self.generation
            )?;
        } else {
            writeln!(
                f,
                "Removed {} from the repository: the new key (generation {}) went to {given}.",
                names(&self.preview.removed),
                self.generation
            )?;
        }
        if !self.preview.left_out.is_empty() {
            writeln!(
                f,
                "Left out (nobody known vouched for them): {}; pair them again, or run this \
                 again with --include.",
                names(&self.preview.left_out)
            )?;
        }
        match &self.recovery_code {
            Some(code) => writeln!(
                f,
                "\nThe new recovery code (the old one opens nothing written from now on); keep \
                 it safe (`ferry key show --yes` prints it again on a device that holds it):\n\n    \
                 {code}\n"
            )?,
            None => writeln!(
                f,
                "The new recovery code is not printed here (not a terminal): `ferry key show \
                 --yes` prints it."
            )?,
        }
        writeln!(
            f,
            "The other devices move to the new key by themselves at their next sync; `ferry \
             status` shows those that have not yet."
        )?;
        for note in &self.notes {
            writeln!(f, "{note}.")?;
        }
        if !self.preview.removed.is_empty() {
            writeln!(
                f,
                "What Ferry cannot do: a removed device keeps what it already downloaded, and \
                 still holds the storage credentials, so it can read and delete the old \
                 generation and delete (not read or forge) objects of the new one until you \
                 replace the S3 access key or WebDAV app password at your provider."
            )?;
        }
        Ok(())
    }
}

/// Makes a new generation of the repository that removes `revoke` and gives the new key to
/// the devices that remain (and to `include`), and moves this device to it. When another
/// device's rotation wins the race, this device follows it and, while a device it meant to
/// remove is still in, rotates again from there. `confirmed`, when given, are the devices the
/// person confirmed: no round gives the key to any other. The new recovery code is in the
/// answer when `show_code`.
pub(crate) async fn rotate(
    device: &mut Device,
    revoke: &[DeviceId],
    include: &[DeviceId],
    confirmed: Option<&[DeviceId]>,
    show_code: bool,
) -> Result<Rotated, Failure> {
    refuse_early(device, revoke).await?;
    // The person's word, on this device: the candidates of the devices removed here no
    // longer count for it (two devices that removed each other: the lost one's).
    for id in revoke {
        device.engine.remove_here(*id)?;
    }
    // On the newest generation (as the person's word here now chooses it), with everything
    // this device holds sent and the others read.
    device.engine.fetch().await?;
    let moved = follow(device).await?;
    device.engine.sync().await?;
    let removed = device.engine.removed();
    let mut notes = Vec::new();
    let mut wanted: Vec<DeviceId> = Vec::new();
    for id in revoke {
        if removed.contains(id) {
            notes.push(format!(
                "{} was removed by an earlier new key already",
                device.device_name(id)
            ));
        } else {
            wanted.push(*id);
        }
    }
    let secrets = device::secrets(&device.home, &device.config);
    // The generation this device just moved to removes them already: one this device made in
    // a run of this command that stopped half-way, or another device's.
    if let Some(moved) = moved.filter(|_| wanted.is_empty()) {
        let key = device::sync_key(&secrets)?;
        let note = if moved.by_id == device.engine.device() {
            "this finished the new key an earlier run of this command made".to_owned()
        } else {
            format!(
                "this device moved to the new key {} made, which removes them",
                moved.by
            )
        };
        return Ok(Rotated {
            generation: device.engine.generation(),
            preview: preview(device, revoke, include)?,
            recovery_code: show_code.then(|| key.recovery_code().expose().to_owned()),
            notes: vec![note],
        });
    }
    if !revoke.is_empty() && wanted.is_empty() {
        return Err(Failure::new(format!(
            "{}: nothing was changed",
            notes.join("; ")
        )));
    }
    let mut used = None;
    for _ in 0..MAX_ROUNDS {
        let plan = device.engine.rotation_plan(&wanted, include)?;
        if let Some(confirmed) = confirmed
            && let Some((stray, _)) = plan.recipients.iter().find(|(d, _)| !confirmed.contains(d))
        {
            return Err(Failure::new(format!(
                "{} would get the new key, but was not among the devices you confirmed (the \
                 roster changed meanwhile): nothing more was done; run the command again",
                device.device_name(stray)
            )));
        }
        if used.is_none() {
            used = Some(preview(device, &wanted, include)?);
        }
        let old = device::sync_key(&secrets)?;
        let new = next_key(&secrets, &old, device.engine.generation())?;
        let made = device
            .engine
            .rotate(&old, &new, None, &plan, Destination::Here)
            .await;
        // Another candidate of this device's own (a run stopped half-way with other devices
        // to remove) is followed below like any other.
        match made {
            Ok(_) | Err(SyncError::CandidateMade) => {}
            Err(error) => return Err(error.into()),
        }
        // The others hear on the old key's topic to look at the storage, where it is.
        device.announce(&[device.engine.roll_call()]).await;
        device.engine.fetch().await?;
        let Some(next) = device
            .engine
            .next_generation(&BTreeSet::new())
            .await
            .map_err(|error| shut_out(device, error))?
        else {
            return Err(Failure::new(
                "the new key was written, but the storage does not list it: run the command \
                 again (it goes on with the same key)",
            ));
        };
        step(device, &next).await?;
        let removed = device.engine.removed();
        wanted.retain(|d| !removed.contains(d) && !next.revoked.contains(d));
        if wanted.is_empty() {
            break;
        }
    }
    if !wanted.is_empty() {
        return Err(Failure::new(
            "other devices made new keys at the same time, and some of the devices to remove \
             are still in: run the command again",
        ));
    }
    // The rotation is done: what fails from here is said, not a failure.
    match device.engine.sync().await {
        Ok((up, _)) => device.announce(&up.hints).await,
        Err(error) => notes.push(format!(
            "this device's first upload under the new key failed ({error}); it goes out with \
             the next sync"
        )),
    }
    let key = device::sync_key(&secrets)?;
    Ok(Rotated {
        generation: device.engine.generation(),
        preview: used.unwrap_or_else(|| Preview {
            removed: Vec::new(),
            recipients: Vec::new(),
            left_out: Vec::new(),
        }),
        recovery_code: show_code.then(|| key.recovery_code().expose().to_owned()),
        notes,
    })
}

/// What stops a rotation before anything is written: this device among those removed, a key
/// from FERRY_KEY (the new one could not be kept), a repository whose key comes from a
/// passphrase.
pub(crate) async fn refuse_early(device: &Device, revoke: &[DeviceId]) -> Result<(), Failure> {
    if revoke.contains(&device.engine.device()) {
        return Err(Failure::usage(
            "a device cannot remove itself: remove it from another device, or leave the \
             repository with `ferry leave`",
        ));
    }
    if std::env::var_os("FERRY_KEY").is_some() {
        return Err(Failure::new(
            "this device takes its key from FERRY_KEY, where a new key could not be kept: unset \
             FERRY_KEY (the key is then read from the secret store) and run the command again",
        ));
    }
    let store = device.engine.store();
    let retry = device::INTERACTIVE;
    let header = ferry_sync::repo::open_in(&*store, &device.keys, &retry, device.engine.root());
    if header.await?.kdf.is_some() {
        return Err(Failure::new(
            "this repository's key comes from a passphrase, and this version of Ferry does not \
             yet make a new key from a new passphrase: nothing was changed",
        ));
    }
    Ok(())
}

/// The key this rotation makes on the generation `generation`: the one kept by a run on it
/// that stopped half-way, else a new one, kept before anything is written (as
/// `<generation> <recovery code>`).
fn next_key(
    secrets: &ferry_secrets::Secrets,
    current: &SyncKey,
    generation: u32,
) -> Result<SyncKey, Failure> {
    if let Some(kept) = secrets.get(Secret::NextSyncKey)?
        && let Some((made_on, code)) = kept.split_once(' ')
        && made_on.parse() == Ok(generation)
        && let Ok(kept) = SyncKey::from_recovery_code(code)
        && kept.key_id() != current.key_id()
    {
        return Ok(kept);
    }
    let key = SyncKey::generate()?;
    let kept = zeroize::Zeroizing::new(format!("{generation} {}", key.recovery_code().expose()));
    secrets.set(Secret::NextSyncKey, &kept)?;
    Ok(key)
}
