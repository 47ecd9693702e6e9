//! Setting a device up (`init`, `join`), its recovery code (`key`), and the settings that live
//! in files (`config` without `--synced`).

use std::time::Duration;

use ferry_protocol::{KdfParams, SyncKey};
use ferry_secrets::Secret;
use ferry_store::url::StoreUrl;
use ferry_sync::repo;
use serde_json::{Value, json};

use crate::cli::{ConfigAction, InitArgs, JoinArgs, KeyAction};
use crate::config::{self, Config, KEYS};
use crate::data::{Output, name_device};
use crate::device::{self, Device};
use crate::error::Failure;
use crate::home::Home;
use crate::prompt;

/// How a new device is being set up.
pub(crate) struct Setup {
    pub(crate) store: String,
    pub(crate) relay: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) key: KeySource,
    pub(crate) code: ShowCode,
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
        }
    }
}

impl From<JoinArgs> for Setup {
    fn from(args: JoinArgs) -> Setup {
        Setup {
            store: args.store,
            relay: args.relay,
            name: args.name,
            key: match (args.recovery_code, args.passphrase) {
                (Some(code), _) => KeySource::RecoveryCode(code),
                (None, true) => KeySource::Passphrase,
                (None, false) => KeySource::AskRecoveryCode,
            },
            code: ShowCode::Print,
        }
    }
}

fn default_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "device".to_owned())
}

fn recovery_key(code: &str) -> Result<SyncKey, Failure> {
    SyncKey::from_recovery_code(code)
        .map_err(|e| Failure::usage(format!("that recovery code is not valid: {e}")))
}

/// Sets this device up on a new or existing repository. Nothing is written on this device
/// before the key is known to open the repository.
pub(crate) async fn setup(
    home: Home,
    config: Config,
    setup: Setup,
    json: bool,
) -> Result<Value, Failure> {
    if let Some(existing) = config.settings.store.as_deref() {
        return Err(Failure::new(format!(
            "this device is already set up with the store {existing} (in {}); use another \
             --home for a second repository",
            config.user_file.display()
        )));
    }
    let url = device::parse_store(&setup.store)?;
    let secrets = device::secrets(&home, &config);
    // Fail before touching the storage when the secret store cannot hold the key: a repository
    // made with a key that could not be kept would be lost.
    secrets.get(Secret::SyncKey)?;
    let creating = matches!(setup.key, KeySource::New | KeySource::NewPassphrase);
    let store = device::open_store(&url, &config, &secrets, creating)?;
    let retry = device::INTERACTIVE;
    if creating {
        // A new repository may name a folder that does not exist yet (WebDAV): make it.
        retry.run(|| store.create_root()).await?;
    }
    let (key, created) = match setup.key {
        KeySource::New => {
            let key = SyncKey::generate()?;
            repo::init(&*store, &key.keys(), None, &retry).await?;
            (key, true)
        }
        KeySource::NewPassphrase => {
            let params = KdfParams::generate()?;
            let key = SyncKey::from_passphrase(&prompt::new_passphrase()?, &params)?;
            repo::init(&*store, &key.keys(), Some(params), &retry).await?;
            (key, true)
        }
        KeySource::RecoveryCode(code) => {
            let key = recovery_key(&code)?;
            repo::open(&*store, &key.keys(), &retry).await?;
            (key, false)
        }
        KeySource::AskRecoveryCode => {
            let code = prompt::secret("Recovery code: ", "the recovery code")?;
            let key = recovery_key(&code)?;
            repo::open(&*store, &key.keys(), &retry).await?;
            (key, false)
        }
        KeySource::Passphrase => {
            let header = repo::header(&*store, &retry).await?;
            let params = header.kdf.ok_or_else(|| {
                Failure::new(
                    "this repository's key was not made from a passphrase: join it with \
                     --recovery-code",
                )
            })?;
            let key = SyncKey::from_passphrase(&prompt::passphrase()?, &params)?;
            repo::open(&*store, &key.keys(), &retry).await?;
            (key, false)
        }
    };
    let code = key.recovery_code();
    secrets.set(Secret::SyncKey, code.expose())?;
    device::keep_credentials(&url, &secrets)?;
    let user = &config.user_file;
    config::write_user(user, "store", Some(&setup.store))?;
    if let Some(relay) = &setup.relay {
        config::write_user(user, "relay", Some(relay))?;
    }
    let name = setup
        .name
        .or_else(|| config.settings.device_name.as_deref().map(str::to_owned))
        .unwrap_or_else(default_name);
    config::write_user(user, "device_name", Some(&name))?;
    if config.secret_store_chosen() {
        config::write_user(
            user,
            "secret_store",
            Some(config.settings.secret_store.as_str()),
        )?;
    }
    if let (StoreUrl::S3(_), Ok(id)) = (&url, std::env::var("AWS_ACCESS_KEY_ID")) {
        config::write_user(user, "s3.access_key_id", Some(&id))?;
    }
    if let Some(warning) = device::file_store_warning(&secrets) {
        eprintln!("{warning}");
    }
    let config = Config::load(None, user, &[])?;
    let lock = device::lock(&home, Duration::from_secs(30))?;
    let mut device = Device::open(home, config, lock, device::INTERACTIVE).await?;
    name_device(&mut device, &name)?;
    if let Err(error) = device.engine.sync().await {
        eprintln!("warning: the first sync failed ({error}); it is retried later");
    }
    let result = json!({
        "recovery_code": if created { Some(code.expose()) } else { None },
        "device_id": device.engine.device().to_string(),
        "key_id": key.key_id().to_string(),
        "store": setup.store,
        "created": created,
    });
    if !json {
        match (created, setup.code) {
            (true, ShowCode::Print) => print_new_repository(&setup.store, code.expose()),
            (true, ShowCode::Withhold) => {
                println!("Created a Ferry repository at {}.", setup.store);
                println!();
                println!(
                    "Its recovery code is not printed here, where a log would keep it. Show it \
                     with `ferry key show --yes` in a terminal and save it in your password \
                     manager or on paper: without it a lost device cannot be replaced."
                );
            }
            (false, _) => println!(
                "This device ({name}) joined the repository at {}.",
                setup.store
            ),
        }
    }
    Ok(result)
}

fn print_new_repository(store: &str, code: &str) {
    println!("Created a Ferry repository at {store}.");
    println!();
    println!("Recovery code (shown once; save it in your password manager or on paper):");
    println!();
    println!("    {code}");
    println!();
    println!("Anyone with this code can read your clips; without it a lost device cannot be");
    println!("replaced. Add another device with (it asks for the code):");
    println!();
    println!("    ferry join --store {}", shell_quote(store));
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

/// `ferry key show|export`.
pub(crate) fn key(home: &Home, config: &Config, action: KeyAction) -> Result<(), Failure> {
    let secrets = device::secrets(home, config);
    let key = device::sync_key(&secrets)?;
    match action {
        KeyAction::Show { yes: false } => Err(Failure::usage(
            "the recovery code opens all your data: print it with `ferry key show --yes` when no \
             one can see your screen, or write it to a file with `ferry key export --output FILE`",
        )),
        KeyAction::Show { yes: true } => {
            println!("{}", key.recovery_code().expose());
            Ok(())
        }
        KeyAction::Export { output } => {
            let text = format!(
                "Ferry recovery code for the repository at {} (key {}):\n\n    {}\n",
                config.settings.store.as_deref().unwrap_or("?"),
                key.key_id(),
                key.recovery_code().expose()
            );
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&output).map_err(|e| {
                Failure::new(format!("{} could not be created: {e}", output.display()))
            })?;
            std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| {
                Failure::new(format!("{} could not be written: {e}", output.display()))
            })?;
            eprintln!(
                "wrote the recovery code to {} (mode 0600)",
                output.display()
            );
            Ok(())
        }
    }
}

/// `ferry config` on the file layers: get, set, unset, ls.
pub(crate) fn local_config(
    config: &Config,
    action: ConfigAction,
    json: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    match action {
        ConfigAction::Get { key } => {
            config::key(&key)?;
            let (value, source) = config
                .get(&key)
                .ok_or_else(|| Failure::new(format!("`{key}` is not set")))?;
            if json {
                out.stdout.extend_from_slice(
                    json!({ "key": key, "value": value, "source": source.to_string() })
                        .to_string()
                        .as_bytes(),
                );
                out.stdout.push(b'\n');
            } else {
                out.stdout
                    .extend_from_slice(format!("{value}\n").as_bytes());
            }
        }
        ConfigAction::Set { key, value, .. } => {
            let spec = config::key(&key)?;
            config::check(spec, &value)?;
            config::write_user(&config.user_file, &key, Some(&value))?;
        }
        ConfigAction::Unset { key, .. } => {
            config::key(&key)?;
            config::write_user(&config.user_file, &key, None)?;
        }
        ConfigAction::Ls => {
            let rows: Vec<(&str, String, String, bool)> = KEYS
                .iter()
                .map(|k| {
                    let (value, source) = config
                        .get(k.name)
                        .map(|(v, s)| (v.clone(), s.to_string()))
                        .unwrap_or_default();
                    (k.name, value, source, k.synced)
                })
                .collect();
            if json {
                let value = Value::Array(
                    rows.iter()
                        .map(|(k, v, s, synced)| {
                            json!({ "key": k, "value": v, "source": s, "syncable": synced })
                        })
                        .collect(),
                );
                out.stdout
                    .extend_from_slice(format!("{value}\n").as_bytes());
            } else {
                for (scope, synced) in [("this device", false), ("synced (--synced)", true)] {
                    out.stdout
                        .extend_from_slice(format!("# {scope}\n").as_bytes());
                    for (k, v, s, _) in rows.iter().filter(|r| r.3 == synced) {
                        out.stdout
                            .extend_from_slice(format!("{k} = {v:?}\t({s})\n").as_bytes());
                    }
                }
            }
        }
    }
    Ok(())
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
