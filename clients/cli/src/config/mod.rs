//! Settings, in layers (later wins):
//!
//! ```text
//! built-in defaults < synced settings (keys marked synced, set on any device)
//!   < base config (administrator, read-only: --base-config / FERRY_BASE_CONFIG)
//!   < user config (--config / FERRY_CONFIG, else config.toml under the Ferry home)
//!   < environment (FERRY_<KEY>, dots as underscores: FERRY_SYNC_POLL_INTERVAL)
//!   < command-line flags
//! ```
//!
//! Every key is declared once in [`KEYS`] with its default, whether it may be synced, and its
//! parser; each value is parsed into the typed [`Settings`] as its layer is read, so a typo or a
//! bad value is an error that names the layer and the key, and the rest of Ferry reads fields.
//! Secrets are never settings.

mod now;
mod settings;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) use now::Applies;
pub(crate) use settings::{KEYS, Key, SecretStore, Settings};
pub(crate) use values::on_this_machine;

use crate::error::{Failure, file_error};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Default,
    Synced,
    Base(PathBuf),
    User(PathBuf),
    Env(String),
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Synced => f.write_str("synced"),
            Source::Base(path) => write!(f, "base config {}", path.display()),
            Source::User(path) => write!(f, "config {}", path.display()),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::Flag => f.write_str("command line"),
        }
    }
}

/// Every setting's text and source, and the settings they make.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    values: BTreeMap<&'static str, (String, Source)>,
    /// The settings in force.
    pub(crate) settings: Settings,
    /// The user config file, where `ferry config set` writes.
    pub(crate) user_file: PathBuf,
    /// The base config file and the flags it was loaded with, to read it again.
    base_file: Option<PathBuf>,
    flags: Vec<(&'static str, String)>,
}

pub(crate) fn key(name: &str) -> Result<&'static Key, Failure> {
    KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
        Failure::usage(format!(
            "there is no setting `{name}`; `ferry config ls` lists them all"
        ))
    })
}

/// Checks `value` for `key`, as `ferry config set` does before writing it.
pub(crate) fn check(key: &Key, value: &str) -> Result<(), Failure> {
    key.set(&mut Settings::defaults(), value)
        .map_err(|expected| refused(key, value, &expected, None))
}

/// "`key` must be …, not `value`", with the key's help and the layer it came from.
fn refused(key: &Key, value: &str, expected: &str, source: Option<&Source>) -> Failure {
    let from = source
        .map(|s| format!(", from the {s}"))
        .unwrap_or_default();
    Failure::usage(format!(
        "`{}` must be {expected}, not `{}` ({}{from})",
        key.name,
        without_password(value),
        key.help
    ))
}

/// `value` as it may be shown: a URL's user name and password replaced by `…`.
fn without_password(value: &str) -> String {
    match url::Url::parse(value) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("…");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => value.to_owned(),
    }
}

impl Config {
    /// Reads the layers below the synced settings and above them; the synced settings are
    /// added later with [`Config::with_synced`], once the database is open.
    pub(crate) fn load(
        base: Option<&Path>,
        user: &Path,
        flags: &[(&'static str, String)],
    ) -> Result<Config, Failure> {
        let mut config = Config {
            values: BTreeMap::new(),
            settings: Settings::defaults(),
            user_file: user.to_owned(),
            base_file: base.map(Path::to_owned),
            flags: flags.to_vec(),
        };
        for key in KEYS {
            if let Some(default) = key.default {
                config
                    .values
                    .insert(key.name, (default.to_owned(), Source::Default));
            }
        }
        if let Some(base) = base {
            if !base.exists() {
                return Err(Failure::new(format!(
                    "the base config {} does not exist; fix FERRY_BASE_CONFIG or --base-config",
                    base.display()
                )));
            }
            config.read_file(base, Source::Base(base.to_owned()))?;
        }
        if user.exists() {
            config.read_file(user, Source::User(user.to_owned()))?;
        }
        for key in KEYS {
            let var = env_var(key.name);
            if let Ok(value) = std::env::var(&var) {
                config.set(key, value, Source::Env(var))?;
            }
        }
        for (name, value) in flags {
            config.set(key(name)?, value.clone(), Source::Flag)?;
        }
        Ok(config)
    }

    /// Puts the synced settings under the file, environment and flag layers. A synced value
    /// this build cannot read (set by a newer Ferry) is left out, and so is a synced relay on
    /// "this machine", which would be each reader's own loopback.
    pub(crate) fn with_synced(&mut self, synced: &[(String, String)]) {
        for (name, value) in synced {
            let Some(key) = KEYS.iter().find(|k| k.synced && k.name == name) else {
                continue;
            };
            if key.name == "relay" && on_this_machine(value) {
                continue;
            }
            let lower = matches!(self.values.get(key.name), None | Some((_, Source::Default)));
            if lower && key.set(&mut self.settings, value).is_ok() {
                self.values
                    .insert(key.name, (value.clone(), Source::Synced));
            }
        }
    }

    fn read_file(&mut self, path: &Path, source: Source) -> Result<(), Failure> {
        let text = fs::read_to_string(path).map_err(|e| {
            Failure::new(format!(
                "the config file {} could not be read: {e}",
                path.display()
            ))
        })?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            Failure::new(format!(
                "the config file {} is not valid TOML: {}",
                path.display(),
                e.message()
            ))
        })?;
        let mut flat = Vec::new();
        flatten("", &table, &mut flat);
        for (name, value) in flat {
            let key = KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
                Failure::new(format!(
                    "the config file {} sets `{name}`, which is not a Ferry setting; \
                     `ferry config ls` lists them all",
                    path.display()
                ))
            })?;
            self.set(key, value, source.clone())?;
        }
        Ok(())
    }

    /// Parses `value` into the settings and records where it came from.
    fn set(&mut self, key: &'static Key, value: String, source: Source) -> Result<(), Failure> {
        key.set(&mut self.settings, &value)
            .map_err(|expected| refused(key, &value, &expected, Some(&source)))?;
        self.values.insert(key.name, (value, source));
        Ok(())
    }

    /// A setting's text and source.
    pub(crate) fn get(&self, name: &str) -> Option<&(String, Source)> {
        self.values.get(name)
    }

    /// The layers read again (files, environment, flags), with `synced` under them: what a
    /// running agent applies after a setting changed.
    pub(crate) fn reread(&self, synced: &[(String, String)]) -> Result<Config, Failure> {
        let mut config = Config::load(self.base_file.as_deref(), &self.user_file, &self.flags)?;
        config.with_synced(synced);
        Ok(config)
    }

    /// The keys whose values differ between this config and `other`.
    pub(crate) fn changed_from(&self, other: &Config) -> Vec<&'static str> {
        KEYS.iter()
            .map(|key| key.name)
            .filter(|name| {
                let value = |config: &Config| config.get(name).map(|(value, _)| value.clone());
                value(self) != value(other)
            })
            .collect()
    }

    /// Whether the secret store was chosen anywhere but the default.
    pub(crate) fn secret_store_chosen(&self) -> bool {
        !matches!(self.get("secret_store"), None | Some((_, Source::Default)))
    }
}

/// The environment variable of a key.
pub(crate) fn env_var(name: &str) -> String {
    format!("FERRY_{}", name.to_ascii_uppercase().replace('.', "_"))
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (name, value) in table {
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&full, inner, out),
            toml::Value::String(text) => out.push((full, text.clone())),
            toml::Value::Array(items) => out.push((
                full,
                items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    // Newlines, so that items may hold commas (a{1,3} in a pattern).
                    .join("\n"),
            )),
            other => out.push((full, other.to_string())),
        }
    }
}

/// Sets (or with `None` removes) `key` in the user config file, keeping its other settings.
pub(crate) fn write_user(path: &Path, key: &str, value: Option<&str>) -> Result<(), Failure> {
    let mut table: toml::Table = if path.exists() {
        fs::read_to_string(path)
            .map_err(file_error(path, "read"))?
            .parse()
            .map_err(|e: toml::de::Error| {
                Failure::new(format!(
                    "{} is not valid TOML: {}",
                    path.display(),
                    e.message()
                ))
            })?
    } else {
        toml::Table::new()
    };
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut current = &mut table;
    for part in parts {
        current = match current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(inner) => inner,
            _ => {
                return Err(Failure::new(format!(
                    "{} holds `{part}` as a value, not a table: fix the file by hand",
                    path.display()
                )));
            }
        };
    }
    match value {
        Some(value) => {
            current.insert(last.to_owned(), toml::Value::String(value.to_owned()));
        }
        None => {
            current.remove(last);
            // A table the removal emptied goes too (`[s3]` once its key id is gone).
            table.retain(|_, value| !matches!(value, toml::Value::Table(t) if t.is_empty()));
        }
    }
    let text = toml::to_string(&table)
        .map_err(|e| Failure::new(format!("the config could not be written: {e}")))?;
    crate::home::write_whole(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_repositorys_relay_serves_a_device_without_one_unless_it_is_a_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.toml");
        for (synced, used) in [
            ("wss://relay.example.org", Some("wss://relay.example.org")),
            ("ws://127.0.0.1:8787", None),
            ("ws://[::ffff:127.0.0.1]:8787", None),
            ("ws://0.0.0.0:8787", None),
            ("ws://LOCALHOST.:8787", None),
            ("ws://relay.localhost", None),
            ("wss://user:secret@relay.example.org", None),
        ] {
            let mut config = Config::load(None, &user, &[]).unwrap();
            config.with_synced(&[("relay".into(), synced.into())]);
            assert_eq!(config.settings.relay.as_deref(), used, "{synced}");
        }
        // A device's own relay, even none, wins.
        fs::write(&user, "relay = \"\"\n").unwrap();
        let mut config = Config::load(None, &user, &[]).unwrap();
        config.with_synced(&[("relay".into(), "wss://relay.example.org".into())]);
        assert_eq!(config.settings.relay, None);
        let refused = Config::load(None, &user, &[("relay", "wss://u:p@relay.example".into())]);
        let message = refused.unwrap_err().message;
        assert!(message.contains("user name or password"), "{message}");
        assert!(!message.contains(":p@"), "{message}");
    }

    #[test]
    fn layers_apply_in_order_and_typos_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.toml");
        let user = dir.path().join("user.toml");
        fs::write(
            &base,
            "relay = \"wss://base\"\n[sync]\npoll_interval = \"1m\"\n",
        )
        .unwrap();
        fs::write(&user, "[sync]\npoll_interval = \"10s\"\n").unwrap();
        let mut config =
            Config::load(Some(&base), &user, &[("relay", "wss://flag".into())]).unwrap();
        config.with_synced(&[
            ("sync.poll_interval".into(), "2s".into()),
            ("clipboard.apply_remote".into(), "false".into()),
        ]);
        assert_eq!(config.settings.poll_interval, Duration::from_secs(10));
        assert_eq!(config.settings.relay.as_deref(), Some("wss://flag"));
        assert!(!config.settings.apply_remote);
        assert_eq!(
            config.get("clipboard.apply_remote").unwrap().1,
            Source::Synced
        );

        fs::write(&user, "[sync]\npoll_intervall = \"10s\"\n").unwrap();
        let error = Config::load(None, &user, &[]).unwrap_err();
        assert!(
            error.message.contains("sync.poll_intervall"),
            "{}",
            error.message
        );
        fs::write(&user, "[sync]\npoll_interval = \"often\"\n").unwrap();
        let error = Config::load(None, &user, &[]).unwrap_err();
        assert!(error.message.contains("a duration"), "{}", error.message);
    }

    #[test]
    fn broken_files_are_named_with_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("config.toml");
        for (text, expected) in [
            ("store = \"unterminated\n", "is not valid TOML"),
            ("[sync\npoll_interval = \"1s\"\n", "is not valid TOML"),
            (
                "[clipboard]\napply_remote = \"maybe\"\n",
                "must be true or false",
            ),
            ("[clipboard]\nmax_bytes = \"lots\"\n", "must be a size"),
            (
                "[sync]\nscope = [\"clips\", \"passwords\"]\n",
                "must be a list of clips",
            ),
            (
                "[clipboard]\nexclude = [\"(unclosed\"]\n",
                "valid regular expressions",
            ),
            ("\u{feff}\u{0}\u{7}", "is not valid TOML"),
        ] {
            fs::write(&user, text).unwrap();
            let error = Config::load(None, &user, &[]).unwrap_err();
            assert!(
                error.message.contains(expected),
                "{text:?}: {}",
                error.message
            );
            assert!(
                error.message.contains(&user.display().to_string()),
                "{}",
                error.message
            );
        }
        let missing = dir.path().join("base-that-is-not-there.toml");
        let error = Config::load(Some(&missing), &user, &[]).unwrap_err();
        assert!(
            error.message.contains("FERRY_BASE_CONFIG"),
            "{}",
            error.message
        );
    }

    #[test]
    fn list_items_from_a_toml_array_may_hold_commas() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("config.toml");
        fs::write(&user, "[clipboard]\nexclude = [\"^x{1,3}$\", \"token\"]\n").unwrap();
        let config = Config::load(None, &user, &[]).unwrap();
        let exclude = &config.settings.exclude;
        assert_eq!(exclude.len(), 2);
        assert!(exclude[0].is_match("xx"));
        let env = Config::load(
            None,
            &dir.path().join("none.toml"),
            &[("clipboard.exclude", "a,b".into())],
        )
        .unwrap();
        assert_eq!(env.settings.exclude.len(), 2);
    }

    #[test]
    fn a_bad_value_names_its_layer_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("none.toml");
        // Once a panic in debug builds and a wrapped number in release builds.
        let error = Config::load(
            None,
            &user,
            &[("sync.poll_interval", "9999999999999999h".into())],
        )
        .unwrap_err();
        assert_eq!(error.code, 2);
        assert!(
            error
                .message
                .contains("`sync.poll_interval` must be a duration")
                && error.message.contains("from the command line"),
            "{}",
            error.message
        );
        let synced_too_new = [("sync.conflict".to_owned(), "newest_first".to_owned())];
        let mut config = Config::load(None, &user, &[]).unwrap();
        config.with_synced(&synced_too_new);
        assert_eq!(config.settings.conflict, ferry_core::Strategy::Latest);
        assert_eq!(config.get("sync.conflict").unwrap().1, Source::Default);
    }

    #[test]
    fn writing_keeps_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("config.toml");
        write_user(&user, "store", Some("file:///tmp/x")).unwrap();
        write_user(&user, "sync.poll_interval", Some("5s")).unwrap();
        write_user(&user, "store", None).unwrap();
        let config = Config::load(None, &user, &[]).unwrap();
        assert_eq!(config.settings.store, None);
        assert_eq!(config.settings.poll_interval, Duration::from_secs(5));
    }
}
