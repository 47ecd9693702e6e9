//! `ferry init` and `ferry join`: setting a device up on a new or an existing repository.
//! Pairing (`commands::pair`) ends here too, with what the other device sent.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::DataKind;
use ferry_protocol::pairing::Credentials;
use ferry_protocol::{DeviceId, Identity, KdfParams, KeyId, SyncKey};
use ferry_secrets::{Secret, Secrets};
use ferry_store::Store;
use ferry_store::url::StoreUrl;
use ferry_sync::{SyncError, repo};
use serde::Serialize;

use crate::cli::{InitArgs, JoinArgs};
use crate::commands::sync::RollCall;
use crate::config::{self, Config};
use crate::device::{self, CreateFolder, Device};
use crate::error::Failure;
use crate::held::Role;
use crate::home::Home;
use crate::output::Output;
use crate::prompt;

/// How a new device is being set up.
pub(crate) struct Setup {
    pub(crate) store: String,
    pub(crate) relay: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) key: KeySource,
    pub(crate) code: ShowCode,
    /// Set when pairing: what the other device sent and this one made.
    pub(crate) paired: Option<Paired>,
}

/// What pairing brings to a setup.
pub(crate) struct Paired {
    /// The storage credentials (instead of the environment's).
    pub(crate) credentials: Credentials,
    /// The identity whose public keys the other device attested.
    pub(crate) identity: Identity,
    /// The id this device gave itself, which the other device attested.
    pub(crate) device: DeviceId,
    /// The name of the device that paired this one.
    pub(crate) by: String,
}

/// Whether a new repository's recovery code is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShowCode {
    /// Printed once, for the person who ran the command.
    Print,
    /// Not printed (the output goes to a log, such as the journal of a service); the person is
    /// told how to see it.
    Withhold,
}

pub(crate) enum KeySource {
    /// A new random key.
    New,
    /// A new key from a passphrase.
    NewPassphrase,
    /// The repository's key, from the recovery code given as an argument.
    RecoveryCode(String),
    /// The repository's key, from a recovery code asked for (or read from standard input).
    AskRecoveryCode,
    /// The repository's key, from its passphrase.
    Passphrase,
    /// The repository's key, received by pairing.
    Paired(SyncKey),
}

impl From<InitArgs> for Setup {
    fn from(args: InitArgs) -> Setup {
        Setup {
            store: args.store,
            relay: args.relay,
            name: args.name,
            key: if args.passphrase {
                KeySource::NewPassphrase
            } else {
                KeySource::New
            },
            code: ShowCode::Print,
            paired: None,
        }
    }
}

impl From<JoinArgs> for Setup {
    /// Joining offline, with `--store`.
    fn from(args: JoinArgs) -> Setup {
        Setup {
            store: args.store.unwrap_or_default(),
            relay: args.relay,
            name: args.name,
            key: match (args.recovery_code, args.passphrase) {
                (Some(code), _) => KeySource::RecoveryCode(code),
                (None, true) => KeySource::Passphrase,
                (None, false) => KeySource::AskRecoveryCode,
            },
            code: ShowCode::Print,
            paired: None,
        }
    }
}

/// A device's name when none is given: the machine's (its host name, as the system reports it
/// on every platform), else "device".
pub(crate) fn default_name() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "device".to_owned())
}

/// Refuses a device that is already set up: one home holds one repository.
pub(crate) fn not_set_up(config: &Config) -> Result<(), Failure> {
    match config.settings.store.as_deref() {
        Some(existing) => Err(Failure::new(format!(
            "this device is already set up with the store {existing} (in {}): leave it first \
             with `ferry leave`, or use another --home for a second repository",
            config.user_file.display()
        ))),
        None => Ok(()),
    }
}

fn recovery_key(code: &str) -> Result<SyncKey, Failure> {
    SyncKey::from_recovery_code(code)
        .map_err(|e| Failure::usage(format!("that recovery code is not valid: {e}")))
}

/// Sets this device up on a new or existing repository, then syncs it for the first time.
pub(crate) async fn setup(
    home: Home,
    config: Config,
    setup: Setup,
    out: &mut Output,
) -> Result<SetUp, Failure> {
    let (device, done) = install(home, config, setup, out).await?;
    first_sync(device, done, out).await
}

/// Sets this device up and opens it: the key, the settings and the secrets are kept and the
/// database is made. Nothing is written on this device before the key is known to open the
/// repository.
pub(crate) async fn install(
    home: Home,
    config: Config,
    setup: Setup,
    out: &mut Output,
) -> Result<(Device, SetUp), Failure> {
    not_set_up(&config)?;
    if let Some(name) = &setup.name {
        crate::commands::devices::checked_name(name)?;
    }
    let url = device::parse_store(&setup.store)?;
    if let Some(relay) = &setup.relay {
        config::check(config::key("relay")?, relay)?;
        if setup.paired.is_none()
            && let Err(why) = crate::relay::reachable(relay)
        {
            out.note(crate::relay::unreachable_warning(relay, &why));
        }
    }
    let secrets = device::secrets(&home, &config);
    // Fail before touching the storage when the secret store cannot hold the key: a repository
    // made with a key that could not be kept would be lost.
    secrets.get(Secret::SyncKey)?;
    let creating = matches!(setup.key, KeySource::New | KeySource::NewPassphrase);
    let (store, held) = match &setup.paired {
        Some(paired) => device::open_store_with(&url, &paired.credentials)?,
        None => {
            let folder = if creating {
                CreateFolder::Yes
            } else {
                CreateFolder::No
            };
            device::open_store(&url, &config, &secrets, folder)?
        }
    };
    let identity = Arc::new(match &setup.paired {
        Some(paired) => Identity::from_secret_bytes(&paired.identity.to_secret_bytes()),
        None => Identity::generate()?,
    });
    let holder = Holder {
        role: &held,
        home: &home,
        config: &config,
        identity: &identity,
    };
    let passphrase = matches!(setup.key, KeySource::NewPassphrase | KeySource::Passphrase);
    let (key, created) = derive_key(&*store, setup.key, holder).await?;
    let code = key.recovery_code();
    keep_secrets(&secrets, code.expose(), setup.paired.as_ref(), &url)?;
    let name = remember(
        &config,
        &setup.store,
        setup.relay.as_deref(),
        setup.name,
        setup.paired.as_ref(),
        &url,
    )?;
    if let Some(warning) = device::file_store_warning(&secrets) {
        out.note(warning);
    }
    let config = Config::load(None, &config.user_file, &[])?;
    let lock = device::lock(&home, Duration::from_secs(30))?;
    let paired_as = setup.paired.as_ref().map(|p| p.device);
    let mut device =
        Device::open_paired(home, config, lock, device::INTERACTIVE, paired_as).await?;
    device.set_name(&name)?;
    if created {
        device.engine.founded()?;
    }
    if created
        && let Some(relay) = setup.relay.as_deref()
        && !crate::config::on_this_machine(relay)
    {
        // The repository's relay, for a device that joins without being told of it.
        let relay = relay.to_owned();
        device.engine.record(DataKind::Settings, |r, _, now| {
            r.set_setting("relay".to_owned(), Some(relay), now)
        })?;
    }
    let holds = matches!(device.held, Role::Holds(_));
    // A folder repository is joined through this device, from another machine: a relay only
    // this machine reaches is no use there.
    let join = created.then(|| match holds {
        true => join_line(
            &StoreUrl::Held(device.engine.device().to_string()).to_string(),
            setup
                .relay
                .as_deref()
                .filter(|url| !crate::config::on_this_machine(url)),
            false,
        ),
        false => join_line(&setup.store, setup.relay.as_deref(), passphrase),
    });
    let done = SetUp {
        recovery_code: (created && setup.code == ShowCode::Print).then(|| code.expose().to_owned()),
        device_id: device.engine.device().to_string(),
        key_id: key.key_id().to_string(),
        store: setup.store,
        relay: setup.relay,
        created,
        holds,
        join,
        agent_starts: false,
        name,
        paired_by: setup.paired.map(|p| p.by),
        clips: None,
    };
    Ok((device, done))
}

/// What reaching a repository another device holds takes: the key first (its LAN is keyed
/// by it), then a LAN of this command's own.
#[derive(Clone, Copy)]
struct Holder<'a> {
    role: &'a Role,
    home: &'a Home,
    config: &'a Config,
    /// Who this device is on that LAN: the identity the pairing device attested, or one of
    /// the moment (a holder lets in callers it does not know yet).
    identity: &'a Arc<Identity>,
}

/// The repository's key from `source`: a new one (the repository is made with it), or the
/// existing repository's (which it must open); and whether the repository is new.
async fn derive_key(
    store: &dyn Store,
    source: KeySource,
    holder: Holder<'_>,
) -> Result<(SyncKey, bool), Failure> {
    let retry = device::INTERACTIVE;
    let given = match source {
        KeySource::Passphrase => Given::Passphrase,
        KeySource::RecoveryCode(_) | KeySource::AskRecoveryCode => Given::RecoveryCode,
        _ => Given::Pairing,
    };
    let open = |key: SyncKey| async move {
        let keys = key.keys();
        crate::held::reach(
            holder.role,
            holder.home,
            holder.config,
            &keys,
            holder.identity,
        )
        .await;
        // The generation the key opens (the first, or one made later: SPEC §11.5).
        let found = |_: &ferry_protocol::RepoHeader| Ok(keys.clone());
        match ferry_sync::generation::locate(store, &retry, found).await {
            Ok((located, _)) if !located.successors.is_empty() => Err(Failure::new(format!(
                "this is the repository's old key: it moved to a newer one (generation {}), \
                 which this key does not open; join with the new recovery code (`ferry key \
                 show --yes` on a device that moved prints it), or pair this device from one \
                 of them",
                located.generation + 1
            ))),
            Ok(_) => Ok((key, false)),
            Err(SyncError::Protocol(ferry_protocol::Error::WrongKey { object, device })) => {
                Err(wrong_key(given, object, device))
            }
            Err(error) => Err(error.into()),
        }
    };
    if let Role::Reaches(line) = holder.role
        && !matches!(
            source,
            KeySource::Paired(_) | KeySource::RecoveryCode(_) | KeySource::AskRecoveryCode
        )
    {
        return Err(Failure::usage(format!(
            "lan://{} is a repository another device holds: join it with `ferry pair` on that \
             device and `ferry join` here, or with --recovery-code",
            line.holder()
        )));
    }
    match source {
        KeySource::New => {
            // A new repository may name a folder that does not exist yet (WebDAV): make it.
            retry.run(|| store.create_root()).await?;
            let key = SyncKey::generate()?;
            repo::init(store, &key.keys(), None, &retry).await?;
            Ok((key, true))
        }
        KeySource::NewPassphrase => {
            retry.run(|| store.create_root()).await?;
            let params = KdfParams::generate()?;
            let key = SyncKey::from_passphrase(&prompt::new_passphrase()?, &params)?;
            repo::init(store, &key.keys(), Some(params), &retry).await?;
            Ok((key, true))
        }
        KeySource::RecoveryCode(code) => open(recovery_key(&code)?).await,
        KeySource::AskRecoveryCode => {
            let code = prompt::secret("Recovery code: ", "the recovery code")?;
            open(recovery_key(&code)?).await
        }
        KeySource::Passphrase => {
            let first = repo::header(store, &retry).await;
            let passphrase = prompt::passphrase()?;
            // Each generation's key comes from its own parameters: the passphrase opens the
            // one it was set for (SPEC §11.5).
            let mut derived: Option<SyncKey> = None;
            let key_for = |header: &ferry_protocol::RepoHeader| {
                let opened = header
                    .kdf
                    .as_ref()
                    .and_then(|params| SyncKey::from_passphrase(&passphrase, params).ok());
                // A generation with a random key, or parameters no passphrase goes through:
                // it opens with no passphrase.
                let key = match opened {
                    Some(key) => key,
                    None => SyncKey::generate()?,
                };
                let keys = key.keys();
                derived = Some(key);
                Ok(keys)
            };
            match ferry_sync::generation::locate(store, &retry, key_for).await {
                Ok(_) => {}
                // A repository whose first key is not a passphrase's, and no later one
                // opened with it.
                Err(SyncError::Protocol(ferry_protocol::Error::WrongKey { .. }))
                    if first.as_ref().is_ok_and(|header| header.kdf.is_none()) =>
                {
                    return Err(Failure::new(
                        "this repository's key was not made from a passphrase: join it with \
                         --recovery-code",
                    ));
                }
                Err(SyncError::Protocol(ferry_protocol::Error::WrongKey { object, device })) => {
                    return Err(wrong_key(given, object, device));
                }
                Err(error) => return Err(error.into()),
            }
            match derived {
                Some(key) => open(key).await,
                None => Err(Failure::new("the repository's header could not be read")),
            }
        }
        KeySource::Paired(key) => open(key).await,
    }
}

/// How a key to open a repository with came.
#[derive(Clone, Copy)]
enum Given {
    Passphrase,
    RecoveryCode,
    Pairing,
}

/// A key that does not open the repository, said for how it was given.
fn wrong_key(given: Given, repository: KeyId, from_it: KeyId) -> Failure {
    let keys = format!("it gives key {from_it}, the repository's is {repository}");
    Failure::new(match given {
        Given::Passphrase => format!(
            "that passphrase does not open this repository ({keys}). Type it again (case and \
             spaces count), join with the recovery code instead (`ferry key show --yes` on a \
             device already in it shows it), or add this device with `ferry pair` there"
        ),
        Given::RecoveryCode => format!(
            "that recovery code does not open this repository ({keys}). Check it against \
             `ferry key show --yes` on a device already in it, or add this device with \
             `ferry pair` there"
        ),
        Given::Pairing => format!(
            "the key the other device sent does not open this repository ({keys}): that \
             device's storage setting names another repository; check its `ferry status`"
        ),
    })
}

/// Keeps the sync key (as its recovery `code`), this device's identity and the storage
/// credentials in the secret store.
fn keep_secrets(
    secrets: &Secrets,
    code: &str,
    paired: Option<&Paired>,
    url: &StoreUrl,
) -> Result<(), Failure> {
    secrets.set(Secret::SyncKey, code)?;
    match paired {
        Some(paired) => {
            secrets.set(Secret::DeviceIdentity, &paired.identity.to_hex())?;
            device::keep_given_credentials(&paired.credentials, secrets)
        }
        None => {
            // This device's identity, made now unless an earlier setup of this home left one
            // (with the database that registered it).
            device::identity(secrets)?;
            device::keep_credentials(url, secrets)
        }
    }
}

/// Writes the settings of the setup to the user's config file; returns the device's name.
fn remember(
    config: &Config,
    store: &str,
    relay: Option<&str>,
    name: Option<String>,
    paired: Option<&Paired>,
    url: &StoreUrl,
) -> Result<String, Failure> {
    let user = &config.user_file;
    config::write_user(user, "store", Some(store))?;
    if let Some(relay) = relay {
        config::write_user(user, "relay", Some(relay))?;
    }
    let name = name
        .or_else(|| config.settings.device_name.clone())
        .unwrap_or_else(default_name);
    config::write_user(user, "device_name", Some(&name))?;
    if config.secret_store_chosen() {
        config::write_user(
            user,
            "secret_store",
            Some(config.settings.secret_store.as_str()),
        )?;
    }
    let access_key_id = match paired {
        Some(Paired {
            credentials: Credentials::S3 { access_key_id, .. },
            ..
        }) => Some(access_key_id.clone()),
        Some(_) => None,
        None => std::env::var("AWS_ACCESS_KEY_ID").ok(),
    };
    if let (StoreUrl::S3(_), Some(id)) = (url, access_key_id) {
        config::write_user(user, "s3.access_key_id", Some(&id))?;
    }
    Ok(name)
}

/// The first sync of a device just set up. A joining device first asks the devices that are
/// up how far they have written: storage that serves it an older state cannot tell it so
/// itself.
pub(crate) async fn first_sync(
    mut device: Device,
    mut done: SetUp,
    out: &mut Output,
) -> Result<SetUp, Failure> {
    let roll_call = if done.created {
        None
    } else {
        RollCall::ask(&device).await
    };
    match device.engine.sync().await {
        // The other devices' agents fetch this device's first segment (its name, its keys) now.
        Ok((upload, _)) => device.announce(&upload.hints).await,
        Err(error) => out.note(format!(
            "warning: the first sync failed ({error}); it is retried later"
        )),
    }
    if let Some(roll_call) = roll_call {
        for behind in roll_call.hear(&mut device).await? {
            out.note(format!("warning: {behind}"));
        }
    }
    if !done.created {
        done.clips = Some(device.engine.state().stats().clips);
    }
    if let Err(failure) = leave_relay_to_the_repository(&device) {
        out.note(format!(
            "warning: this device keeps its own copy of the repository's relay ({})",
            failure.message
        ));
    }
    Ok(done)
}

/// The relay this device was set up with, in its config file, when it is the repository's own
/// (the synced one) is left to the repository: changing it there (`ferry config set --synced
/// relay`) then moves this device too. A relay on this machine, or another one, stays.
fn leave_relay_to_the_repository(device: &Device) -> Result<(), Failure> {
    let Some((mine, config::Source::User(_))) = device.config.get("relay") else {
        return Ok(());
    };
    if config::on_this_machine(mine) {
        return Ok(());
    }
    let synced = device::synced_settings(&device.engine, &device.config);
    if synced
        .iter()
        .any(|(key, value)| key == "relay" && value == mine)
    {
        config::write_user(&device.config.user_file, "relay", None)?;
    }
    Ok(())
}

/// What `init` or `join` did.
#[derive(Serialize)]
pub(crate) struct SetUp {
    /// A new repository's recovery code, when it is to be shown.
    recovery_code: Option<String>,
    device_id: String,
    key_id: String,
    store: String,
    relay: Option<String>,
    /// A new repository (`init`), or one joined.
    created: bool,
    /// Whether this device holds the repository in its folder for the others.
    holds: bool,
    /// For a new repository, the command that joins it from another device (with its recovery
    /// code, or its passphrase).
    join: Option<String>,
    /// Whether the agent starts right after (its first run), so there is no next step to say.
    #[serde(skip)]
    pub(crate) agent_starts: bool,
    name: String,
    /// The device that paired this one, when it joined by pairing.
    paired_by: Option<String>,
    /// Clips in the history after the first sync of a joining device.
    clips: Option<usize>,
}

impl fmt::Display for SetUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = &self.store;
        if !self.created {
            return self.joined(f);
        }
        writeln!(f, "Created a Ferry repository at {store}.\n")?;
        match &self.recovery_code {
            Some(code) => write!(
                f,
                "Recovery code (shown once; save it in your password manager or on paper):\n\n\
                 \x20   {code}\n\n\
                 Anyone with this code can read your clips; without it a lost device cannot be\n\
                 replaced.\n\n"
            )?,
            None => write!(
                f,
                "Its recovery code is not printed here, where a log would keep it. Show it with \
                 `ferry key show --yes` in a terminal and save it in your password manager or on \
                 paper: without it a lost device cannot be replaced.\n\n"
            )?,
        }
        if self.holds {
            write!(
                f,
                "This device holds the repository: your other machines on this network reach it\n\
                 through this device while its agent runs, with no cloud and no server. To reach\n\
                 it from anywhere, keep it in a bucket or on a WebDAV server instead (README,\n\
                 \"Storage of your own\").\n\n"
            )?;
        }
        let meet = match &self.relay {
            Some(relay) if !crate::config::on_this_machine(relay) => {
                format!("they meet through the relay at {relay}")
            }
            _ => "they meet on this network".to_owned(),
        };
        writeln!(
            f,
            "Add a device: run `ferry pair` here and `ferry join` there ({meet})."
        )?;
        if let Some(join) = &self.join {
            let with = match join.contains("--passphrase") {
                true => "the passphrase",
                false => "the recovery code",
            };
            write!(
                f,
                "Or, on the new device (it asks for {with}):\n\n\x20   {join}\n"
            )?;
        }
        match self.agent_starts {
            true => writeln!(f),
            false => writeln!(
                f,
                "\nNext: start the agent with `ferry agent`, or `ferry service install` to start \
                 it at each login."
            ),
        }
    }
}

impl SetUp {
    /// What a device that joined says.
    fn joined(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = &self.store;
        match &self.paired_by {
            Some(by) => writeln!(
                f,
                "Joined the repository with key {}… as \"{}\", paired by {by} (storage: \
                 {store}, relay: {}).",
                &self.key_id[..4.min(self.key_id.len())],
                self.name,
                self.relay.as_deref().unwrap_or("none")
            )?,
            None => writeln!(
                f,
                "This device ({}) joined the repository at {store}.",
                self.name
            )?,
        }
        match self.clips {
            Some(1) => writeln!(f, "Fetched 1 clip."),
            Some(clips) => writeln!(f, "Fetched {clips} clips."),
            None => Ok(()),
        }
    }
}

/// The command that joins the repository at `store` from another device, ready to paste.
fn join_line(store: &str, relay: Option<&str>, passphrase: bool) -> String {
    let mut line = format!("ferry join --store {}", shell_quote(store));
    if let Some(relay) = relay {
        line.push_str(&format!(" --relay {}", shell_quote(relay)));
    }
    if passphrase {
        line.push_str(" --passphrase");
    }
    line
}

/// `text` as one shell word: as it is when every character is safe, else in single quotes.
fn shell_quote(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn store_urls_are_quoted_for_the_shell() {
        for (url, quoted) in [
            ("file:///home/me/ferry", "file:///home/me/ferry"),
            (
                "s3://b/p?endpoint=http://h:9&region=x",
                "'s3://b/p?endpoint=http://h:9&region=x'",
            ),
            ("file:///it's here", r"'file:///it'\''s here'"),
            ("", "''"),
        ] {
            assert_eq!(shell_quote(url), quoted);
        }
    }
}
