//! Opening this device's side: its secrets, its storage, its sync key and its engine.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::{ClipContent, ClipId, DataKind, NAME_PREFIX};
use ferry_lan::{DiscoveryConfig, LanConfig, Members};
use ferry_protocol::pairing::Credentials;
use ferry_protocol::{Identity, Keys, SyncKey};
use ferry_secrets::{Secret, Secrets};
use ferry_store::s3::Timeouts;
use ferry_store::url::StoreUrl;
use ferry_store::{Access, RetryPolicy, S3Credentials, Store};
use ferry_sync::{Engine, EngineConfig};

use crate::config::{Config, SecretStore};
use crate::error::{Failure, file_error};
use crate::generation::{Pending, finish_move};
use crate::held::{HeldStore, Line, Role};
use crate::home::Home;
use crate::names::Labels;

/// The secret store the config chose.
pub(crate) fn secrets(home: &Home, config: &Config) -> Secrets {
    match config.settings.secret_store {
        SecretStore::File => Secrets::file(home.secrets_file()),
        SecretStore::Keychain => Secrets::keychain(home.data.display().to_string()),
    }
}

/// The warning shown whenever secrets are written to the file store.
pub(crate) fn file_store_warning(secrets: &Secrets) -> Option<String> {
    match secrets.backend() {
        ferry_secrets::Backend::File(path) => Some(format!(
            "warning: the sync key and storage credentials are kept in {} (mode 0600), not in \
             an OS keychain: anyone who can read that file can read all your Ferry data",
            path.display()
        )),
        ferry_secrets::Backend::Keychain => None,
    }
}

/// The sync key: `FERRY_KEY` (a recovery code), else the secret store.
pub(crate) fn sync_key(secrets: &Secrets) -> Result<SyncKey, Failure> {
    let code = match std::env::var("FERRY_KEY") {
        Ok(code) => zeroize::Zeroizing::new(code),
        Err(_) => secrets.get(Secret::SyncKey)?.ok_or_else(|| {
            Failure::new(format!(
                "this device has no sync key in {}; set it up with `ferry join --store URL` \
                 (or pass --secret-store to say where the key is)",
                secrets.describe()
            ))
        })?,
    };
    // The error is not quoted: it would name a character of the key.
    SyncKey::from_recovery_code(&code).map_err(|_| {
        Failure::new(format!(
            "the sync key in {} is not a valid recovery code; run `ferry join` again",
            match std::env::var_os("FERRY_KEY") {
                Some(_) => "FERRY_KEY".to_owned(),
                None => secrets.describe(),
            }
        ))
    })
}

/// This device's identity from the secret store; one is made and kept there the first time
/// (a device set up before identities existed gets its own at its next start).
pub(crate) fn identity(secrets: &Secrets) -> Result<Identity, Failure> {
    match secrets.get(Secret::DeviceIdentity)? {
        // The error is not quoted: it would show part of the secret.
        Some(text) => Identity::from_hex(&text).map_err(|_| {
            Failure::new(format!(
                "this device's identity key in {} is damaged; join the repository again with \
                 `ferry join` (the device gets a new identity)",
                secrets.describe()
            ))
        }),
        None => {
            let identity = Identity::generate()?;
            secrets.set(Secret::DeviceIdentity, &identity.to_hex())?;
            Ok(identity)
        }
    }
}

/// Parses a store URL, with the fix in the message.
pub(crate) fn parse_store(url: &str) -> Result<StoreUrl, Failure> {
    StoreUrl::parse(url).map_err(|e| Failure::usage(format!("bad store URL `{url}`: {e}")))
}

/// Whether a folder repository's folder is made when it does not exist: for a new repository
/// only (an existing one that is missing is an error to report, not an empty folder to make).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CreateFolder {
    Yes,
    No,
}

/// Timeouts for every storage request of the command line and the agent.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    request: Duration::from_secs(60),
};

/// Opens the storage at `url`. Its credentials are the ones saved for this device; the
/// environment's (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, `FERRY_WEBDAV_PASSWORD`) are
/// used only where none are saved: by `init` and `join`, which save them. So variables set for
/// another program never replace this device's credentials, and a refusal names which were used.
/// A repository another device holds is reached through the line of the returned role, which
/// has no LAN yet.
pub(crate) fn open_store(
    url: &StoreUrl,
    config: &Config,
    secrets: &Secrets,
    folder: CreateFolder,
) -> Result<(Arc<dyn Store>, Role), Failure> {
    let mut access = Access {
        timeouts: TIMEOUTS,
        create_folder: folder == CreateFolder::Yes,
        ..Access::default()
    };
    match url {
        StoreUrl::S3(_) => {
            let (credentials, origin) = s3_credentials(config, secrets)?;
            access.s3 = Some(credentials);
            access.origin = Some(origin);
        }
        StoreUrl::WebDav(location) if location.user.is_some() => {
            let (password, origin) = webdav_password(secrets)?;
            access.webdav_password = Some(password);
            access.origin = Some(origin);
        }
        StoreUrl::WebDav(_) | StoreUrl::Folder(_) | StoreUrl::Held(_) => {}
    }
    opened(url, access)
}

/// The store `url` names, with `access`, and what this device has to do with a repository
/// held on the LAN.
fn opened(url: &StoreUrl, access: Access) -> Result<(Arc<dyn Store>, Role), Failure> {
    if let StoreUrl::Held(holder) = url {
        let holder = holder
            .parse()
            .map_err(|_| Failure::usage(format!("bad store URL `{url}`: not a device id")))?;
        let line = Line::new(holder);
        let store = Arc::new(HeldStore::new(line.clone()));
        return Ok((store, Role::Reaches(line)));
    }
    let store = ferry_store::open(url, access)?;
    let role = match url {
        StoreUrl::Folder(_) => Role::Holds(Arc::clone(&store)),
        _ => Role::Neither,
    };
    Ok((store, role))
}

/// The devices a holder still lets in under the key of the generation before its own: the
/// members whose membership holds, but those a new key removed.
pub(crate) fn earlier_members(engine: &Engine) -> Members {
    let members = Members::anyone();
    let removed = engine.removed();
    let holds = engine.memberships().unwrap_or_default();
    let state = engine.state();
    let kept = holds
        .iter()
        .filter(|(device, membership)| membership.holds() && !removed.contains(device))
        .filter_map(|(device, _)| Some((*device, state.device(device)?.keys.sign)));
    members.set(kept);
    members
}

/// The folder this device held the repository in before it moved, still served to the
/// devices that have not moved yet (`store_before`); a folder that is gone is served no more.
fn held_before(config: &Config) -> Role {
    let Some(before) = config.settings.store_before.as_deref() else {
        return Role::Neither;
    };
    let url = match StoreUrl::parse(before) {
        Ok(url @ StoreUrl::Folder(_)) => url,
        _ => return Role::Neither,
    };
    match ferry_store::open(&url, Access::default()) {
        Ok(store) => Role::Holds(store),
        Err(error) => {
            tracing::warn!(%error, "the folder held before the move is not served any more");
            Role::Neither
        }
    }
}

/// The LAN settings of this device, as the agent runs its LAN path.
pub(crate) fn lan_config(
    home: &Home,
    config: &Config,
    device: ferry_protocol::DeviceId,
    identity: &Arc<Identity>,
) -> LanConfig {
    let settings = &config.settings;
    let mut lan = LanConfig::new(device, Arc::clone(identity));
    lan.listen.set_port(settings.lan_port);
    lan.discovery = settings.lan_discovery.then(DiscoveryConfig::default);
    lan.peers = settings.lan_peers.clone();
    lan.remembered = remembered_peers(home);
    lan
}

/// Where this device reached peers on the LAN before.
pub(crate) fn remembered_peers(home: &Home) -> Vec<std::net::SocketAddr> {
    std::fs::read_to_string(home.lan_peers_file())
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// Lets in on the LAN the devices whose keys the roster knows (registered, or attested while
/// they join), but those a new key removed; while this device knows no other (it has just
/// joined), any signed hello.
pub(crate) fn admit(engine: &Engine, members: &Members) {
    let known = engine.state().known_keys();
    if known.keys().all(|device| *device == engine.device()) {
        return;
    }
    let removed = engine.removed();
    let kept = known
        .into_iter()
        .filter(|(device, _)| !removed.contains(device));
    members.set(kept.map(|(device, keys)| (device, keys.sign)));
}

/// Opens the storage at `url` with credentials given outright: those a pairing device sent.
pub(crate) fn open_store_with(
    url: &StoreUrl,
    credentials: &Credentials,
) -> Result<(Arc<dyn Store>, Role), Failure> {
    open_store_given(url, credentials, "sent by the device that paired this one")
}

/// Opens the storage at `url` with credentials given outright, from `origin` (as a refusal
/// names it).
pub(crate) fn open_store_given(
    url: &StoreUrl,
    credentials: &Credentials,
    origin: &'static str,
) -> Result<(Arc<dyn Store>, Role), Failure> {
    let mut access = Access {
        timeouts: TIMEOUTS,
        ..Access::default()
    };
    match (url, credentials) {
        (
            StoreUrl::S3(_),
            Credentials::S3 {
                access_key_id,
                secret_access_key,
            },
        ) => {
            access.s3 = Some(S3Credentials {
                access_key_id: access_key_id.clone(),
                secret_access_key: secret_access_key.clone(),
            });
            access.origin = Some(origin);
        }
        (StoreUrl::WebDav(_), Credentials::WebDav { password }) => {
            access.webdav_password = Some(password.clone());
            access.origin = Some(origin);
        }
        (StoreUrl::S3(_), _) => {
            return Err(Failure::new(format!(
                "no S3 credentials were {origin}: set them up on the device that sent them, or \
                 join with `ferry join --store URL` and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            )));
        }
        _ => {}
    }
    opened(url, access)
}

/// The credentials this device uses for `url`, to send to a device it pairs.
pub(crate) fn credentials_for(
    url: &StoreUrl,
    config: &Config,
    secrets: &Secrets,
) -> Result<Credentials, Failure> {
    Ok(match url {
        StoreUrl::S3(_) => {
            let (credentials, _) = s3_credentials(config, secrets)?;
            Credentials::S3 {
                access_key_id: credentials.access_key_id,
                secret_access_key: credentials.secret_access_key,
            }
        }
        StoreUrl::WebDav(location) if location.user.is_some() => Credentials::WebDav {
            password: webdav_password(secrets)?.0,
        },
        StoreUrl::WebDav(_) | StoreUrl::Folder(_) | StoreUrl::Held(_) => Credentials::None,
    })
}

/// Keeps credentials a pairing device sent (the S3 key id goes to the config by the caller).
pub(crate) fn keep_given_credentials(
    credentials: &Credentials,
    secrets: &Secrets,
) -> Result<(), Failure> {
    match credentials {
        Credentials::S3 {
            secret_access_key, ..
        } => secrets.set(Secret::S3SecretKey, secret_access_key)?,
        Credentials::WebDav { password } => secrets.set(Secret::WebDavPassword, password)?,
        Credentials::None => {}
    }
    Ok(())
}

/// Where the credentials in use came from, as a refusal names it.
const SAVED: &str = "saved for this device by `ferry init` or `ferry join`";

fn s3_credentials(
    config: &Config,
    secrets: &Secrets,
) -> Result<(S3Credentials, &'static str), Failure> {
    let saved_id = config.settings.s3_access_key_id.as_deref();
    let saved_secret = secrets.get(Secret::S3SecretKey)?;
    if let (Some(id), Some(secret)) = (saved_id, &saved_secret) {
        let credentials = S3Credentials {
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_string(),
        };
        return Ok((credentials, SAVED));
    }
    match (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Ok(access_key_id), Ok(secret_access_key)) => Ok((
            S3Credentials {
                access_key_id,
                secret_access_key,
            },
            "from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
        )),
        _ => Err(Failure::new(
            "the S3 credentials are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
             (`ferry init` and `ferry join` keep them for this device)",
        )),
    }
}

fn webdav_password(secrets: &Secrets) -> Result<(String, &'static str), Failure> {
    if let Some(password) = secrets.get(Secret::WebDavPassword)? {
        return Ok((password.to_string(), SAVED));
    }
    match std::env::var("FERRY_WEBDAV_PASSWORD") {
        Ok(password) => Ok((password, "from FERRY_WEBDAV_PASSWORD in the environment")),
        Err(_) => Err(Failure::new(
            "the WebDAV password is missing: set FERRY_WEBDAV_PASSWORD (`ferry init` and `ferry \
             join` keep it for this device)",
        )),
    }
}

/// Keeps the storage credentials found in the environment, so the agent finds them later.
pub(crate) fn keep_credentials(url: &StoreUrl, secrets: &Secrets) -> Result<(), Failure> {
    match url {
        StoreUrl::S3(_) => {
            if let Ok(secret) = std::env::var("AWS_SECRET_ACCESS_KEY") {
                secrets.set(Secret::S3SecretKey, &secret)?;
            }
        }
        StoreUrl::WebDav(_) => {
            if let Ok(password) = std::env::var("FERRY_WEBDAV_PASSWORD") {
                secrets.set(Secret::WebDavPassword, &password)?;
            }
        }
        StoreUrl::Folder(_) | StoreUrl::Held(_) => {}
    }
    Ok(())
}

/// Retries for a command someone waits on: a few quick tries, then say what failed.
pub(crate) const INTERACTIVE: RetryPolicy = RetryPolicy {
    first_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(1),
    deadline: Duration::from_secs(3),
    max_attempts: 3,
};

/// Which LAN reaches a repository another device holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// One of the command's own, started when the device is opened.
    OwnLan,
    /// The agent's, given when it starts.
    AgentLan,
}

/// This device, opened: the engine over its repository and the settings in force.
pub(crate) struct Device {
    pub(crate) engine: Engine,
    pub(crate) keys: Keys,
    /// This device's keys, for its LAN hellos (the engine signs what it writes with its own).
    pub(crate) identity: Arc<Identity>,
    pub(crate) config: Config,
    pub(crate) home: Home,
    /// Whether it holds its repository for the others, or reaches it through the holder.
    pub(crate) held: Role,
    /// What this device calls other devices.
    pub(crate) labels: Labels,
    /// Held while the database is open here.
    _lock: File,
}

/// Whether a command changed data (so it goes out now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Changed {
    Yes,
    No,
}

/// The synced settings as this device resolves them now, key and value.
pub(crate) fn synced_settings(engine: &Engine, config: &Config) -> Vec<(String, String)> {
    engine
        .state_for(DataKind::Settings)
        .settings(config.settings.conflict, engine.device())
        .into_iter()
        .filter_map(|(key, resolved)| Some((key.to_owned(), resolved.value()?.to_owned())))
        .collect()
}

/// What only a running agent knows, told to the commands it runs (for `ferry status` and
/// `ferry doctor`): that it runs, what its LAN path does, and how its relay connection stands.
#[derive(Debug, Clone)]
pub(crate) struct InAgent {
    pub(crate) nearby: Nearby,
    /// The relay connection, while the agent keeps one.
    pub(crate) relay: Option<ferry_relay_client::Status>,
}

/// What the agent's LAN path is doing: the agent tells the commands it runs, for `ferry status`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Nearby {
    /// `lan.enabled`.
    pub(crate) enabled: bool,
    /// Where it listens.
    pub(crate) listening: Option<std::net::SocketAddr>,
    /// Whether mDNS discovery runs.
    pub(crate) discovering: bool,
    /// Why it (or its discovery) does not run.
    pub(crate) error: Option<String>,
    /// The devices connected now.
    pub(crate) peers: Vec<ferry_protocol::DeviceId>,
}

impl Nearby {
    pub(crate) fn off() -> Nearby {
        Nearby::default()
    }

    pub(crate) fn running(lan: &ferry_lan::Lan) -> Nearby {
        Nearby {
            enabled: true,
            listening: Some(lan.local_addr()),
            discovering: lan.discovering(),
            error: lan.discovery_error().map(str::to_owned),
            peers: Vec::new(),
        }
    }

    pub(crate) fn failed(error: String) -> Nearby {
        Nearby {
            enabled: true,
            error: Some(error),
            ..Nearby::default()
        }
    }
}

impl Device {
    /// Opens this device's engine, retrying storage requests by `retry`; the caller holds the
    /// home's lock in `lock`. A repository another device holds is reached through a LAN of
    /// this command's own.
    pub(crate) async fn open(
        home: Home,
        config: Config,
        lock: File,
        retry: RetryPolicy,
    ) -> Result<Device, Failure> {
        Device::open_paired(home, config, lock, retry, None).await
    }

    /// [`open`](Self::open) for the agent: a repository another device holds is reached
    /// through the agent's LAN once it runs ([`Line::attach`]).
    pub(crate) async fn open_in_agent(
        home: Home,
        config: Config,
        lock: File,
        retry: RetryPolicy,
    ) -> Result<Device, Failure> {
        Device::open_with(home, config, lock, retry, None, Reach::AgentLan).await
    }

    /// [`open`](Self::open) for a device just paired: a new database takes the id `paired_as`,
    /// under which the pairing device attested it.
    pub(crate) async fn open_paired(
        home: Home,
        config: Config,
        lock: File,
        retry: RetryPolicy,
        paired_as: Option<ferry_protocol::DeviceId>,
    ) -> Result<Device, Failure> {
        Device::open_with(home, config, lock, retry, paired_as, Reach::OwnLan).await
    }

    async fn open_with(
        home: Home,
        mut config: Config,
        lock: File,
        retry: RetryPolicy,
        paired_as: Option<ferry_protocol::DeviceId>,
        reach: Reach,
    ) -> Result<Device, Failure> {
        if config.settings.store.is_none() {
            return Err(Failure::new(format!(
                "this device is not set up (no store in {}); create a repository with `ferry \
                 init --store URL`, or join one with `ferry join --store URL`",
                config.user_file.display()
            )));
        }
        let secrets = secrets(&home, &config);
        // A move to other storage that stopped half-way: done once the database moved.
        if let Some(pending) = Pending::kept(&secrets)? {
            let on = Engine::database_generation(&home.database())?;
            if on == Some((pending.generation(), Some(pending.key_id()?))) {
                finish_move(&mut config, &secrets, &pending)?;
            } else {
                secrets.delete(Secret::NextStorage)?;
            }
        }
        let url = parse_store(config.settings.store.as_deref().unwrap_or_default())?;
        let keys = sync_key(&secrets)?.keys();
        let identity = identity(&secrets)?;
        let signer = Arc::new(Identity::from_secret_bytes(&identity.to_secret_bytes()));
        let (store, held) = open_store(&url, &config, &secrets, CreateFolder::No)?;
        let held = match held {
            Role::Neither => held_before(&config),
            held => held,
        };
        if reach == Reach::OwnLan {
            crate::held::reach(&held, &home, &config, &keys, &signer).await;
        }
        let mut engine = Engine::open(
            store,
            keys.clone(),
            identity,
            &home.database(),
            EngineConfig {
                paired_as,
                ..config.settings.engine(retry)
            },
        )
        .await?;
        config.with_synced(&synced_settings(&engine, &config));
        // Synced settings may filter clips too.
        engine.set_filters(config.settings.filters());
        if let Role::Reaches(line) = &held {
            line.admit(&engine);
        }
        Ok(Device {
            engine,
            keys,
            identity: signer,
            config,
            labels: Labels::load(&home)?,
            home,
            held,
            _lock: lock,
        })
    }

    /// Tells the other devices through the relay, when one is set, that new segments are
    /// there (the newest hint covers the ones before it), for a command that then exits.
    pub(crate) async fn announce(&self, hints: &[ferry_protocol::RelayHint]) {
        let relay = self.config.settings.relay.as_deref();
        crate::relay::announce_once(relay, &self.keys, &self.identity, hints).await;
    }

    /// Records this device's name as a synced setting, so other devices show it (only a
    /// device names itself: see `ferry_core::roster`).
    pub(crate) fn set_name(&mut self, name: &str) -> Result<(), Failure> {
        let key = format!("{NAME_PREFIX}{}", self.engine.device());
        let name = name.to_owned();
        self.engine.record(DataKind::Settings, |r, _, now| {
            r.set_setting(key, Some(name), now)
        })?;
        Ok(())
    }

    /// Keeps this device's `device_name` setting in step with the name it gave itself (a
    /// `ferry devices rename` made here, or by the agent for a command), so that the setting
    /// never shows, nor a later setup brings back, an old name.
    pub(crate) fn follow_own_name(&mut self) -> Result<(), Failure> {
        let Some(name) = self.engine.state().own_name(&self.engine.device()) else {
            return Ok(());
        };
        if self.config.settings.device_name.as_deref() == Some(name.as_str()) {
            return Ok(());
        }
        crate::config::write_user(&self.config.user_file, "device_name", Some(&name))?;
        self.config.settings.device_name = Some(name);
        Ok(())
    }

    /// Finds a clip (in the history or the trash) by id or unique prefix.
    pub(crate) fn find_clip(&self, prefix: &str) -> Result<ClipId, Failure> {
        let prefix = prefix.to_ascii_lowercase();
        let state = self.engine.state_for(DataKind::Clips);
        if let Ok(id) = prefix.parse::<ClipId>()
            && state.clip(&id).is_some()
        {
            return Ok(id);
        }
        if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Failure::usage(format!(
                "`{prefix}` is not a clip id: give at least 4 hex digits as `ferry history` shows"
            )));
        }
        let mut found: Vec<ClipId> = state
            .history(None, usize::MAX)
            .into_iter()
            .chain(state.trash())
            .map(|view| view.id)
            .filter(|id| id.to_string().starts_with(&prefix))
            .collect();
        found.dedup();
        match found.as_slice() {
            [id] => Ok(*id),
            [] => Err(Failure::new(format!(
                "no clip has an id starting with {prefix}; `ferry history` lists them"
            ))),
            _ => Err(Failure::usage(format!(
                "{} clips have ids starting with {prefix}: give more digits",
                found.len()
            ))),
        }
    }

    /// The content of clip `id`, when this device holds it.
    pub(crate) fn clip_content(&self, id: &ClipId) -> Result<ClipContent, Failure> {
        self.engine
            .state_for(DataKind::Clips)
            .clip(id)
            .map(|view| view.content.clone())
            .ok_or_else(|| Failure::new(format!("clip {id} has no content on this device")))
    }

    /// What this device calls `device` (see [`crate::names`]).
    pub(crate) fn device_name(&self, device: &ferry_protocol::DeviceId) -> String {
        self.device_names([*device])
            .remove(device)
            .unwrap_or_else(|| device.short())
    }

    /// What this device calls each registered device and each of `others`.
    pub(crate) fn device_names(
        &self,
        others: impl IntoIterator<Item = ferry_protocol::DeviceId>,
    ) -> std::collections::BTreeMap<ferry_protocol::DeviceId, String> {
        // Without the memberships (the database could not say), no device is preferred.
        let holds = self
            .engine
            .memberships()
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, membership)| membership.holds())
            .map(|(id, _)| id)
            .collect();
        crate::names::names(self.engine.state(), &self.labels, &holds, others)
    }
}

/// Takes the home's lock without waiting; `None` when someone holds it.
pub(crate) fn try_lock(home: &Home) -> Result<Option<File>, Failure> {
    home.create()?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.lock_file())
        .map_err(file_error(&home.lock_file(), "opened"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(file_error(&home.lock_file(), "locked")(e)),
    }
}

/// Takes the home's lock, waiting up to `wait` for another command to finish.
pub(crate) fn lock(home: &Home, wait: Duration) -> Result<File, Failure> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(file) = try_lock(home)? {
            return Ok(file);
        }
        if std::time::Instant::now() >= deadline {
            return Err(held_too_long(home, wait));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Another command held this device's lock for all of `wait`.
pub(crate) fn held_too_long(home: &Home, wait: Duration) -> Failure {
    Failure::new(format!(
        "another Ferry command holds {} and did not finish within {wait:?}; try again",
        home.lock_file().display()
    ))
}
