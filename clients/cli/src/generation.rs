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
use ferry_protocol::generation::Storage;
use ferry_protocol::pairing::Credentials;
use ferry_protocol::{DeviceId, KdfParams, SyncKey};
use ferry_secrets::Secret;
use ferry_store::url::StoreUrl;
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
    /// The storage it is in, when that changed (a move, or new credentials).
    #[serde(skip)]
    pub(crate) storage: Option<String>,
}

impl fmt::Display for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(url) = &self.storage {
            return write!(
                f,
                "The repository has a new key and storage (generation {}, made on {} by {}): \
                 this device moved to it, at {url}, and keeps both.",
                self.generation,
                day(self.at_ms),
                self.by
            );
        }
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
            storage: next.handover.storage.as_ref().map(|s| s.url.clone()),
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
/// when it opens again. A generation in other storage, or reached with new credentials, is
/// kept with its key as one secret until the database moved, then taken into the config and
/// the secret store ([`finish_move`]).
async fn step(device: &mut Device, next: &NextGeneration) -> Result<(), Failure> {
    let secrets = device::secrets(&device.home, &device.config);
    match &next.handover.storage {
        None => {
            keep_key(device, &next.handover.key)?;
            let store = device.engine.store();
            device.engine.follow(next, store).await?;
        }
        Some(storage) => {
            refuse_key_from_env()?;
            let url = device::parse_store(&storage.url)?;
            if matches!(url, StoreUrl::Folder(_) | StoreUrl::Held(_)) {
                return Err(Failure::new(format!(
                    "the repository's new key (generation {}) names a folder as its storage, \
                     which this device cannot reach: pair it again from a device that moved",
                    next.successor.generation
                )));
            }
            let origin = "handed over with the repository's new key";
            let (store, _) = device::open_store_given(&url, &storage.credentials, origin)?;
            let pending = Pending {
                generation: next.successor.generation,
                key: next.handover.key.recovery_code().expose().to_owned(),
                storage: storage.clone(),
            };
            secrets.set(Secret::NextStorage, &pending.to_text()?)?;
            if let Err(error) = device.engine.follow(next, store).await {
                // Not moved: the move is not kept for another generation to take.
                secrets.delete(Secret::NextStorage)?;
                return Err(error.into());
            }
            finish_move(&mut device.config, &secrets, &pending)?;
        }
    }
    device.keys = next.handover.key.keys();
    // A next key kept for the generation left behind is never used again: a device given it
    // in a candidate that lost may be one removed since.
    secrets.delete(Secret::NextSyncKey)?;
    Ok(())
}

/// A move to a generation in other storage (or reached with new credentials) while this
/// device makes it: kept in the secret store from before the database moves until the config
/// and the secrets name the new storage.
#[derive(Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The generation moved to.
    generation: u32,
    /// Its key, as its recovery code.
    key: String,
    /// Its storage.
    storage: Storage,
}

impl Drop for Pending {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl Pending {
    fn to_text(&self) -> Result<zeroize::Zeroizing<String>, Failure> {
        serde_json::to_string(self)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| Failure::new(format!("the move could not be kept: {e}")))
    }

    /// The move kept in `secrets`, if one is.
    pub(crate) fn kept(secrets: &ferry_secrets::Secrets) -> Result<Option<Pending>, Failure> {
        let Some(text) = secrets.get(Secret::NextStorage)? else {
            return Ok(None);
        };
        // Not quoted: it holds the key.
        serde_json::from_str(&text).map(Some).map_err(|_| {
            Failure::new(format!(
                "the move in progress kept in {} is damaged; remove that entry (next-storage) \
                 and pair this device again from another one",
                secrets.describe()
            ))
        })
    }

    /// The generation it moves to.
    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    /// That generation's key id.
    pub(crate) fn key_id(&self) -> Result<ferry_protocol::KeyId, Failure> {
        SyncKey::from_recovery_code(&self.key)
            .map(|key| key.key_id())
            .map_err(|_| Failure::new("the key of the move in progress is damaged"))
    }
}

/// Takes a move whose database part is done into this device's config and secret store: the
/// new key, the storage URL, its credentials; then forgets the move.
pub(crate) fn finish_move(
    config: &mut crate::config::Config,
    secrets: &ferry_secrets::Secrets,
    pending: &Pending,
) -> Result<(), Failure> {
    let Storage { url, credentials } = &pending.storage;
    secrets.set(Secret::SyncKey, &pending.key)?;
    device::keep_given_credentials(credentials, secrets)?;
    // The old storage's secret, of another kind, opens nothing any more.
    let stale = match credentials {
        Credentials::S3 { .. } => [Secret::WebDavPassword].as_slice(),
        Credentials::WebDav { .. } => &[Secret::S3SecretKey],
        Credentials::None => &[Secret::S3SecretKey, Secret::WebDavPassword],
    };
    for secret in stale {
        secrets.delete(*secret)?;
    }
    let user = &config.user_file;
    let key_id = match credentials {
        Credentials::S3 { access_key_id, .. } => Some(access_key_id.as_str()),
        _ => None,
    };
    crate::config::write_user(user, "s3.access_key_id", key_id)?;
    // A folder this device held stays served to the devices that have not moved yet: they
    // learn of the move there.
    let before = config.settings.store.clone().unwrap_or_default();
    if before != *url && matches!(device::parse_store(&before), Ok(StoreUrl::Folder(_))) {
        crate::config::write_user(user, "store_before", Some(&before))?;
        config.settings.store_before = Some(before);
    } else if config
        .settings
        .store_before
        .as_deref()
        .is_some_and(|held| same_store(held, url))
    {
        // Back to the folder held before: it is the repository's again.
        crate::config::write_user(user, "store_before", None)?;
        config.settings.store_before = None;
    }
    crate::config::write_user(user, "store", Some(url))?;
    config.settings.store = Some(url.clone());
    config.settings.s3_access_key_id = key_id.map(str::to_owned);
    secrets.delete(Secret::NextStorage)?;
    Ok(())
}

/// The storage a move goes to (`move_to`), or this repository's own with new credentials,
/// with the credentials given where the command was typed: from the environment as `ferry
/// init` takes them, else asked for on a terminal.
pub(crate) fn storage_given(
    move_to: Option<&str>,
    config: &crate::config::Config,
) -> Result<Storage, Failure> {
    let current = config.settings.store.as_deref().unwrap_or_default();
    let url = move_to.unwrap_or(current);
    let parsed = device::parse_store(url)?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let ask = |prompt: &str, what: &str, hidden: bool| -> Result<String, Failure> {
        if !crate::prompt::interactive() {
            return Err(Failure::usage(format!(
                "{what} for {url} is needed: set it in the environment (AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY for S3, FERRY_WEBDAV_PASSWORD for WebDAV) or run the \
                 command on a terminal to be asked"
            )));
        }
        let answer = match hidden {
            true => crate::prompt::secret(prompt, what)?,
            false => crate::prompt::line(prompt, what)?,
        };
        Ok(answer.to_string())
    };
    let credentials = match &parsed {
        StoreUrl::S3(_) => Credentials::S3 {
            access_key_id: match env("AWS_ACCESS_KEY_ID") {
                Some(id) => id,
                None => ask("S3 access key id: ", "the S3 access key id", false)?,
            },
            secret_access_key: match env("AWS_SECRET_ACCESS_KEY") {
                Some(secret) => secret,
                None => ask("S3 secret access key: ", "the S3 secret access key", true)?,
            },
        },
        StoreUrl::WebDav(location) if location.user.is_some() => Credentials::WebDav {
            password: match env("FERRY_WEBDAV_PASSWORD") {
                Some(password) => password,
                None => ask("WebDAV password: ", "the WebDAV password", true)?,
            },
        },
        StoreUrl::WebDav(_) if move_to.is_some() => Credentials::None,
        StoreUrl::WebDav(_) => {
            return Err(Failure::usage(
                "this repository's WebDAV server takes no password (the URL names no user): \
                 there are no credentials to replace",
            ));
        }
        StoreUrl::Folder(_) | StoreUrl::Held(_) if move_to.is_some() => {
            return Err(Failure::usage(format!(
                "`{url}` is a folder: a repository moves to a bucket (s3://…) or a WebDAV \
                 server (webdav+https://…), which every device reaches by itself"
            )));
        }
        StoreUrl::Folder(_) | StoreUrl::Held(_) => {
            return Err(Failure::usage(
                "this repository is kept in a folder, which takes no credentials: there are \
                 none to replace (`ferry store move URL` moves it to a bucket or a WebDAV \
                 server)",
            ));
        }
    };
    Ok(Storage {
        url: url.to_owned(),
        credentials,
    })
}

/// Keeps `key` as this device's sync key.
fn keep_key(device: &Device, key: &SyncKey) -> Result<(), Failure> {
    refuse_key_from_env()?;
    let secrets = device::secrets(&device.home, &device.config);
    secrets.set(Secret::SyncKey, key.recovery_code().expose())?;
    Ok(())
}

/// A device whose key comes from FERRY_KEY cannot keep a new one.
fn refuse_key_from_env() -> Result<(), Failure> {
    if std::env::var_os("FERRY_KEY").is_some() {
        return Err(Failure::new(
            "the repository moved to a new key, but this device takes its key from FERRY_KEY, \
             where the new one cannot be kept: unset FERRY_KEY, and the device takes the new \
             key into its secret store by itself at its next sync",
        ));
    }
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
    /// When it was made, in Unix milliseconds by that device's clock, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) made_at_ms: Option<u64>,
    /// How many devices that hold are on it, this one included (seen from here).
    pub(crate) moved: usize,
    /// The devices that got the key and have not written under it yet (seen from here).
    pub(crate) not_moved: Vec<String>,
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "generation {}", self.generation)?;
        match (&self.made_by, self.made_at_ms) {
            (Some(by), Some(at)) => write!(f, " (new key made on {} by {by})", day(at))?,
            (Some(by), None) => write!(f, " (new key made by {by})")?,
            (None, _) => {}
        }
        if !self.not_moved.is_empty() {
            let all = self.moved + self.not_moved.len();
            write!(
                f,
                ": {} of {all} devices moved; not moved to it yet: {} (they move at their next \
                 sync)",
                self.moved,
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
    // The devices given the key (known from the candidate this device followed), else the
    // members that hold.
    let given: Vec<DeviceId> = match device.engine.recipients()? {
        Some(recipients) => recipients,
        None => device
            .engine
            .state()
            .devices()
            .map(|(id, _)| *id)
            .filter(|id| memberships.get(id).is_some_and(Membership::holds))
            .collect(),
    };
    let (moved, not_moved): (Vec<DeviceId>, Vec<DeviceId>) = given
        .into_iter()
        .filter(|id| *id != own && !removed.contains(id))
        .filter(|id| !left(device, id))
        .partition(|id| read.contains(id));
    Ok(Some(Standing {
        generation,
        made_by: device
            .engine
            .creator(generation)
            .map(|by| device.device_name(&by)),
        made_at_ms: device.engine.made_at()?,
        moved: moved.len() + 1,
        not_moved: not_moved.iter().map(|id| device.device_name(id)).collect(),
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

/// Where a rotation puts the repository.
#[derive(Debug, Clone)]
pub(crate) enum Where {
    /// Where it is, with the credentials the devices have.
    Here,
    /// In other storage.
    Moved(Storage),
    /// Where it is, with new credentials.
    Credentials(Storage),
}

impl Where {
    /// What the person is told of it.
    fn said(&self) -> Option<MovedTo> {
        match self {
            Where::Here => None,
            Where::Moved(storage) => Some(MovedTo {
                url: storage.url.clone(),
                moved: true,
            }),
            Where::Credentials(storage) => Some(MovedTo {
                url: storage.url.clone(),
                moved: false,
            }),
        }
    }
}

/// Where a rotation put the repository, as said to the person.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MovedTo {
    /// The store URL.
    pub(crate) url: String,
    /// Whether it moved there (else only its credentials changed).
    pub(crate) moved: bool,
}

/// The store a rotation writes the new generation in, checked before anything is written:
/// the credentials work there, a move goes to other storage that holds no repository, and
/// new credentials open this repository.
async fn destination(device: &Device, to: &Where, next_root: &str) -> Result<Destination, Failure> {
    let (storage, moving) = match to {
        Where::Here => return Ok(Destination::Here),
        Where::Moved(storage) => (storage, true),
        Where::Credentials(storage) => (storage, false),
    };
    let url = device::parse_store(&storage.url)?;
    let (store, _) = device::open_store_given(&url, &storage.credentials, "given to this command")?;
    let retry = device::INTERACTIVE;
    // A WebDAV folder a move goes to is made, as `ferry init` makes it.
    if moving {
        retry.run(|| store.create_root()).await?;
    }
    let probe = store.probe().await;
    let failed: Vec<String> = [
        ("listing", &probe.list),
        ("writing", &probe.write),
        ("reading", &probe.read),
        ("deleting", &probe.delete),
    ]
    .into_iter()
    .filter_map(|(what, result)| result.as_ref().err().map(|e| format!("{what}: {e}")))
    .collect();
    if !failed.is_empty() {
        return Err(Failure::new(format!(
            "{url} does not allow everything Ferry needs ({}): nothing was changed",
            failed.join("; ")
        )));
    }
    if moving {
        let taken = match ferry_sync::repo::header(&*store, &retry).await {
            Err(SyncError::NoRepository) => false,
            Err(error) => return Err(error.into()),
            Ok(_) => true,
        };
        // A later generation there is another repository's, unless it is the one this move
        // makes (written by a run that stopped half-way).
        let later = ferry_sync::generation::later_roots(&*store, &retry).await?;
        if taken || later.iter().any(|(_, root)| root != next_root) {
            return Err(Failure::usage(format!(
                "{url} holds a Ferry repository already: move to an empty bucket prefix or \
                 WebDAV folder (nothing was changed)"
            )));
        }
        Ok(Destination::Moved {
            storage: storage.clone(),
            store,
        })
    } else {
        ferry_sync::repo::open_in(&*store, &device.keys, &retry, device.engine.root()).await?;
        Ok(Destination::Credentials {
            storage: storage.clone(),
            store,
        })
    }
}

/// Whether this device is already where `to` goes: its store is the move's, or its
/// credentials are the ones given.
fn there_already(device: &Device, to: &Where) -> Result<bool, Failure> {
    let current = device.config.settings.store.as_deref().unwrap_or_default();
    Ok(match to {
        Where::Here => false,
        Where::Moved(storage) => same_store(current, &storage.url),
        Where::Credentials(storage) => {
            let url = device::parse_store(current)?;
            let secrets = device::secrets(&device.home, &device.config);
            device::credentials_for(&url, &device.config, &secrets)? == storage.credentials
        }
    })
}

/// Whether two store URLs name the same store (as parsed, so that spellings of one agree).
fn same_store(a: &str, b: &str) -> bool {
    match (StoreUrl::parse(a), StoreUrl::parse(b)) {
        (Ok(a), Ok(b)) => a.to_string() == b.to_string(),
        _ => a == b,
    }
}

/// What a rotation did.
#[derive(Debug, Serialize)]
pub(crate) struct Rotated {
    /// The generation the repository is on now.
    pub(crate) generation: u32,
    /// Who moved it there, and who is out.
    #[serde(flatten)]
    pub(crate) preview: Preview,
    /// Where the repository is now, when it moved or its credentials were replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) storage: Option<MovedTo>,
    /// Whether the new key comes from a new passphrase.
    pub(crate) passphrase: bool,
    /// Whether it was all done already (by an earlier run of the command).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) done_before: bool,
    /// The new recovery code, when it may be shown (on a terminal only, and not for a key
    /// from a passphrase).
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
        if let (true, Some(to)) = (self.done_before, &self.storage) {
            writeln!(
                f,
                "{} (generation {}, made by this device): nothing more to do.",
                match to.moved {
                    true => format!("The repository is at {} already", to.url),
                    false => "The devices have the new storage credentials already".to_owned(),
                },
                self.generation
            )?;
            if let Some(code) = &self.recovery_code {
                writeln!(f, "\nIts recovery code:\n\n    {code}\n")?;
            }
            return Ok(());
        }
        if let Some(to) = &self.storage {
            match to.moved {
                true => writeln!(
                    f,
                    "Moved the repository to {} under a new key (generation {}), given with \
                     the new location to {given}.",
                    to.url, self.generation
                )?,
                false => writeln!(
                    f,
                    "Handed the new storage credentials to {given} with a new key (generation \
                     {}).",
                    self.generation
                )?,
            }
        }
        if self.storage.is_some() && self.preview.removed.is_empty() {
        } else if self.preview.removed.is_empty() {
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
            _ if self.passphrase => writeln!(
                f,
                "The new passphrase opens the repository from now on (`ferry join --passphrase` \
                 on a new device); the old one opens nothing written from now on."
            )?,
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
             status` shows those that have not yet, and once none is left `ferry key rotate \
             --finish` deletes the old generation."
        )?;
        match &self.storage {
            Some(MovedTo { moved: true, .. }) => writeln!(
                f,
                "The old storage is left as it was: the devices that have not moved yet still \
                 read and write there until they do. Once `ferry status` shows every device \
                 moved, `ferry key rotate --finish` empties a folder this device held; empty a \
                 bucket or WebDAV folder at the provider."
            )?,
            Some(MovedTo { moved: false, .. }) => writeln!(
                f,
                "Replace the old credentials at your provider once every device has moved \
                 (`ferry status` lists those that have not): from then on only the new ones \
                 open the storage."
            )?,
            None => {}
        }
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

/// How a rotation is made, beside whom it removes and includes.
pub(crate) struct Made<'a> {
    /// The devices the person confirmed: no round gives the key to any other.
    pub(crate) confirmed: Option<&'a [DeviceId]>,
    /// Whether the new recovery code may be in the answer.
    pub(crate) show_code: bool,
    /// Where the repository is then.
    pub(crate) to: Where,
    /// The new passphrase the new key comes from, if it comes from one.
    pub(crate) passphrase: Option<&'a str>,
}

/// Makes a new generation of the repository that removes `revoke` and gives the new key to
/// the devices that remain (and to `include`), and moves this device to it. When another
/// device's rotation wins the race, this device follows it and, while a device it meant to
/// remove is still in, rotates again from there.
pub(crate) async fn rotate(
    device: &mut Device,
    revoke: &[DeviceId],
    include: &[DeviceId],
    made: Made<'_>,
) -> Result<Rotated, Failure> {
    let Made {
        confirmed,
        show_code,
        to,
        passphrase,
    } = made;
    refuse_early(device, revoke, passphrase.is_some()).await?;
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
    // Where a move (or new credentials) goes, this device is already: a run of this command
    // that stopped half-way made it (this device followed it before the command ran), or the
    // person asks for what is so.
    if there_already(device, &to)? {
        let own = device.engine.device();
        if !wanted.is_empty() || device.engine.creator(device.engine.generation()) != Some(own) {
            return Err(Failure::usage(match &to {
                Where::Credentials(_) => "these are the storage credentials in use already: make \
                                         new ones at the provider first (nothing was changed)"
                    .to_owned(),
                _ => format!(
                    "the repository is at {} already; to hand the devices new credentials for \
                     it, run `ferry key rotate --new-credentials` (nothing was changed)",
                    device.config.settings.store.as_deref().unwrap_or_default()
                ),
            }));
        }
        let key = device::sync_key(&secrets)?;
        return Ok(Rotated {
            generation: device.engine.generation(),
            preview: preview(device, revoke, include)?,
            storage: to.said(),
            passphrase: passphrase.is_some() && made_here(device),
            done_before: true,
            recovery_code: (show_code && passphrase.is_none())
                .then(|| key.recovery_code().expose().to_owned()),
            notes: Vec::new(),
        });
    }
    // The generation this device just moved to removes them already: one this device made in
    // a run of this command that stopped half-way, or another device's.
    let here = matches!(to, Where::Here);
    if let Some(moved) = moved.filter(|_| here && wanted.is_empty()) {
        let key = device::sync_key(&secrets)?;
        let note = if moved.by_id == device.engine.device() {
            "this finished the new key an earlier run of this command made".to_owned()
        } else if revoke.is_empty() {
            format!("this device moved to the new key {} made", moved.by)
        } else {
            format!(
                "this device moved to the new key {} made, which removes them",
                moved.by
            )
        };
        return Ok(Rotated {
            generation: device.engine.generation(),
            preview: preview(device, revoke, include)?,
            storage: to.said(),
            passphrase: passphrase.is_some() && made_here(device),
            done_before: false,
            recovery_code: (show_code && passphrase.is_none())
                .then(|| key.recovery_code().expose().to_owned()),
            notes: vec![note],
        });
    }
    if !revoke.is_empty() && wanted.is_empty() {
        return Err(Failure::new(format!(
            "{}: nothing was changed",
            notes.join("; ")
        )));
    }
    let old = device::sync_key(&secrets)?;
    if let Some(passphrase) = passphrase {
        same_passphrase(device, &old, passphrase).await?;
    }
    let (new, _) = next_key(&secrets, &old, device.engine.generation(), passphrase)?;
    let next_root = ferry_protocol::generation::root(device.engine.generation() + 1, new.key_id());
    let destination = destination(device, &to, &next_root).await?;
    let mut used = None;
    let mut done = false;
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
        let (new, kdf) = next_key(&secrets, &old, device.engine.generation(), passphrase)?;
        let made = device
            .engine
            .rotate(&old, &new, kdf, &plan, destination.clone())
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
        // Another device's new key may have won the race: a move (or new credentials) is
        // made again from there.
        let went = match &to {
            Where::Here => true,
            Where::Moved(storage) | Where::Credentials(storage) => {
                next.handover.storage.as_ref() == Some(storage)
            }
        };
        if wanted.is_empty() && went {
            done = true;
            break;
        }
    }
    if !done {
        return Err(Failure::new(
            "other devices made new keys at the same time, and this one's did not win: run the \
             command again (it goes on from the newest key)",
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
        storage: to.said(),
        preview: used.unwrap_or_else(|| Preview {
            removed: Vec::new(),
            recipients: Vec::new(),
            left_out: Vec::new(),
        }),
        passphrase: passphrase.is_some() && made_here(device),
        done_before: false,
        recovery_code: (show_code && passphrase.is_none())
            .then(|| key.recovery_code().expose().to_owned()),
        notes,
    })
}

/// Whether this device made the generation it is on.
fn made_here(device: &Device) -> bool {
    device.engine.creator(device.engine.generation()) == Some(device.engine.device())
}

/// What stops a rotation before anything is written: this device among those removed, a key
/// from FERRY_KEY (the new one could not be kept), a repository whose key comes from a
/// passphrase when no new one is given (`new_passphrase`).
pub(crate) async fn refuse_early(
    device: &Device,
    revoke: &[DeviceId],
    new_passphrase: bool,
) -> Result<(), Failure> {
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
    if header.await?.kdf.is_some() && !new_passphrase {
        return Err(Failure::usage(
            "this repository's key comes from a passphrase, which a removed device knows: the \
             new key needs a new one. Run the command again with --passphrase (it is asked for \
             twice on a terminal, else read from FERRY_NEW_PASSPHRASE); nothing was changed",
        ));
    }
    Ok(())
}

/// Refuses a new passphrase that makes the current key again with the current generation's
/// parameters: it is the passphrase in use, which a removed device knows.
async fn same_passphrase(device: &Device, old: &SyncKey, passphrase: &str) -> Result<(), Failure> {
    let store = device.engine.store();
    let retry = device::INTERACTIVE;
    let header = ferry_sync::repo::open_in(&*store, &device.keys, &retry, device.engine.root());
    if let Some(params) = header.await?.kdf
        && SyncKey::from_passphrase(passphrase, &params)?.key_id() == old.key_id()
    {
        return Err(Failure::usage(
            "that is the passphrase in use now, which a removed device knows: choose another \
             (nothing was changed)",
        ));
    }
    Ok(())
}

/// The key this rotation makes on the generation `generation`, with its passphrase
/// parameters when it comes from `passphrase`: the one kept by a run on it that stopped
/// half-way, else a new one, kept before anything is written (as `<generation> <recovery
/// code>`, then the parameters as JSON).
fn next_key(
    secrets: &ferry_secrets::Secrets,
    current: &SyncKey,
    generation: u32,
    passphrase: Option<&str>,
) -> Result<(SyncKey, Option<KdfParams>), Failure> {
    if let Some(kept) = secrets.get(Secret::NextSyncKey)? {
        let mut fields = kept.splitn(3, ' ');
        let made_on = fields.next().and_then(|n| n.parse::<u32>().ok());
        let key = fields
            .next()
            .and_then(|c| SyncKey::from_recovery_code(c).ok());
        let kdf: Option<KdfParams> = fields.next().and_then(|k| serde_json::from_str(k).ok());
        if made_on == Some(generation)
            && let Some(key) = key.filter(|key| key.key_id() != current.key_id())
        {
            match (passphrase, kdf) {
                (None, None) => return Ok((key, None)),
                // The header an earlier run wrote holds these parameters: the passphrase must
                // make this very key with them.
                (Some(passphrase), Some(kdf))
                    if SyncKey::from_passphrase(passphrase, &kdf)?.key_id() == key.key_id() =>
                {
                    return Ok((key, Some(kdf)));
                }
                // Made another way, or from another passphrase: made again (a generation an
                // earlier run began under it lost nothing and is deleted by --finish).
                _ => {}
            }
        }
    }
    let (key, kdf) = match passphrase {
        Some(passphrase) => {
            let kdf = KdfParams::generate()?;
            (SyncKey::from_passphrase(passphrase, &kdf)?, Some(kdf))
        }
        None => (SyncKey::generate()?, None),
    };
    let mut kept =
        zeroize::Zeroizing::new(format!("{generation} {}", key.recovery_code().expose()));
    if let Some(kdf) = &kdf {
        let params = serde_json::to_string(kdf)
            .map_err(|e| Failure::new(format!("the new key could not be kept: {e}")))?;
        kept.push(' ');
        kept.push_str(&params);
    }
    secrets.set(Secret::NextSyncKey, &kept)?;
    Ok((key, kdf))
}

/// What `ferry key rotate --finish` did.
#[derive(Debug, Serialize)]
pub(crate) struct Finished {
    /// The generation kept.
    pub(crate) generation: u32,
    /// The folders of earlier generations emptied in the storage, with the objects deleted.
    pub(crate) emptied: Vec<Emptied>,
    /// Images and files written under the current key first, which only earlier generations
    /// held.
    pub(crate) resealed: usize,
    /// Images and files that clips name and no generation held whole.
    pub(crate) unreadable: usize,
    /// The folder this device held before the repository moved, emptied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) old_folder: Option<String>,
    /// The devices that had not moved (with --force): they must be paired again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) shut_out: Vec<String>,
}

/// A generation's folder emptied.
#[derive(Debug, Serialize)]
pub(crate) struct Emptied {
    pub(crate) folder: String,
    pub(crate) objects: usize,
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.emptied.is_empty() && self.old_folder.is_none() {
            writeln!(
                f,
                "Nothing was left of the generations before this one (generation {}).",
                self.generation
            )?;
        } else if !self.emptied.is_empty() {
            let folders: Vec<String> = self
                .emptied
                .iter()
                .map(|e| format!("{} ({} objects)", e.folder, e.objects))
                .collect();
            writeln!(
                f,
                "Deleted the generations before generation {}: {}.",
                self.generation,
                folders.join(", ")
            )?;
        }
        if self.resealed > 0 {
            writeln!(
                f,
                "{} images and files that only they held were written under the current key \
                 first.",
                self.resealed
            )?;
        }
        if self.unreadable > 0 {
            writeln!(
                f,
                "{} images and files that clips name were whole in no generation, and are \
                 gone.",
                self.unreadable
            )?;
        }
        if let Some(folder) = &self.old_folder {
            writeln!(
                f,
                "Emptied {folder}, where this device held the repository before it moved \
                 (`store_before` is unset)."
            )?;
        }
        if !self.shut_out.is_empty() {
            writeln!(
                f,
                "{} had not moved: pair them again (`ferry pair` here, `ferry join` there).",
                self.shut_out.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Deletes the generations before the one this device is on, and the folder it held before
/// a move, once every device that matters has moved (or, with `force`, all the same).
pub(crate) async fn finish(device: &mut Device, force: bool) -> Result<Finished, Failure> {
    device.engine.sync().await?;
    let Some(standing) = standing(device)? else {
        return Err(Failure::usage(
            "the repository is on its first key: there is no earlier generation to delete",
        ));
    };
    if !standing.not_moved.is_empty() && !force {
        return Err(Failure::new(format!(
            "not moved to the current key yet: {}; deleting the earlier generations now would \
             shut them out (they would have to be paired again). Run this again once `ferry \
             status` shows every device moved, or with --force; nothing was deleted",
            standing.not_moved.join(", ")
        )));
    }
    let done = device.engine.finish_generations().await?;
    let current = device.config.settings.store.clone().unwrap_or_default();
    let old_folder = match device.config.settings.store_before.clone() {
        Some(before) => {
            let repo_id = device.engine.repo_id().await?;
            let emptied = !same_store(&before, &current) && empty_folder(&before, repo_id).await?;
            crate::config::write_user(&device.config.user_file, "store_before", None)?;
            device.config.settings.store_before = None;
            emptied.then_some(before)
        }
        None => None,
    };
    Ok(Finished {
        generation: standing.generation,
        emptied: done
            .emptied
            .into_iter()
            .map(|(folder, objects)| Emptied { folder, objects })
            .collect(),
        resealed: done.resealed,
        unreadable: done.unreadable,
        old_folder,
        shut_out: standing.not_moved,
    })
}

/// Deletes every generation of the repository `repo_id` in the folder at `url` (the
/// repository moved away from it); whether anything was deleted. A folder whose generations
/// are another repository's is left alone.
async fn empty_folder(url: &str, repo_id: [u8; 16]) -> Result<bool, Failure> {
    let parsed = device::parse_store(url)?;
    if !matches!(parsed, StoreUrl::Folder(_)) {
        return Ok(false);
    }
    let store = match ferry_store::open(&parsed, ferry_store::Access::default()) {
        Ok(store) => store,
        // Gone already.
        Err(ferry_store::StoreError::NotFound { .. }) => return Ok(false),
        Err(error) => return Err(error.into()),
    };
    let retry = device::INTERACTIVE;
    let mut roots = vec![ferry_protocol::names::ROOT.to_owned()];
    let later = ferry_sync::generation::later_roots(&*store, &retry).await?;
    roots.extend(later.into_iter().map(|(_, root)| root));
    let mut deleted = 0;
    for root in roots {
        let name = format!("{root}{}", ferry_protocol::ObjectName::Repo);
        let limit = ferry_protocol::ObjectName::Repo.kind().max_sealed() as u64;
        match retry.run(|| store.get(&name, limit)).await {
            Ok(bytes) => {
                let ours = ferry_protocol::RepoHeader::from_bytes(&bytes)
                    .is_ok_and(|header| header.repo_id == repo_id);
                if !ours {
                    continue;
                }
            }
            // A folder whose header went first, in an earlier run.
            Err(ferry_store::StoreError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        deleted += ferry_sync::generation::empty(&*store, &retry, &root).await?;
    }
    Ok(deleted > 0)
}
