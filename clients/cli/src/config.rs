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
//! Every key is declared in [`KEYS`] with its type, default and whether it may be synced, so a
//! typo in a file is an error that names the file and the key. Secrets are never settings.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::{ContentKind, Retention, Scope, Strategy};
use ferry_sync::{Direction, Filters};
use regex::Regex;

use crate::error::Failure;

/// The type of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Text,
    Bool,
    Duration,
    Bytes,
    Count,
    List,
    OneOf(&'static [&'static str]),
}

/// One known setting.
pub(crate) struct Key {
    pub(crate) name: &'static str,
    ty: Type,
    default: Option<&'static str>,
    /// May be set for all devices (`ferry config set --synced`).
    pub(crate) synced: bool,
    pub(crate) help: &'static str,
}

/// The shortest poll interval: ten listings a second.
const MIN_POLL: Duration = Duration::from_millis(100);

const DIRECTIONS: &[&str] = &["both", "send_only", "receive_only"];
const STRATEGIES: &[&str] = &["latest", "keep_both", "local_wins", "remote_wins"];
const SECRET_STORES: &[&str] = &["keychain", "file"];
const KINDS: &[&str] = &["clips", "collections", "aliases", "settings"];

/// Every setting.
pub(crate) const KEYS: &[Key] = &[
    Key {
        name: "store",
        ty: Type::Text,
        default: None,
        synced: false,
        help: "where the repository is: file:///…, s3://bucket/prefix?…, webdav+https://user@host/…",
    },
    Key {
        name: "relay",
        ty: Type::Text,
        default: None,
        synced: false,
        help: "the relay's URL (wss://…); empty for none",
    },
    Key {
        name: "device_name",
        ty: Type::Text,
        default: None,
        synced: false,
        help: "this device's name, as other devices show it",
    },
    Key {
        name: "secret_store",
        ty: Type::OneOf(SECRET_STORES),
        default: Some("keychain"),
        synced: false,
        help: "where secrets live: the OS keychain, or a 0600 file under the Ferry home",
    },
    Key {
        name: "s3.access_key_id",
        ty: Type::Text,
        default: None,
        synced: false,
        help: "the S3 access key id (its secret is in the secret store or AWS_SECRET_ACCESS_KEY)",
    },
    Key {
        name: "sync.poll_interval",
        ty: Type::Duration,
        default: Some("30s"),
        synced: true,
        help: "how often to look for new data when no relay or folder event says so",
    },
    Key {
        name: "sync.direction",
        ty: Type::OneOf(DIRECTIONS),
        default: Some("both"),
        synced: false,
        help: "both, send_only or receive_only",
    },
    Key {
        name: "sync.scope",
        ty: Type::List,
        default: Some("clips,collections,aliases,settings"),
        synced: false,
        help: "which kinds of data sync; the others stay on this device",
    },
    Key {
        name: "sync.conflict",
        ty: Type::OneOf(STRATEGIES),
        default: Some("latest"),
        synced: true,
        help: "how concurrent edits of one alias or setting show: latest, keep_both, local_wins, remote_wins",
    },
    Key {
        name: "clipboard.watch",
        ty: Type::Bool,
        default: Some("true"),
        synced: false,
        help: "record what is copied on this device",
    },
    Key {
        name: "clipboard.poll",
        ty: Type::Bool,
        default: Some("false"),
        synced: false,
        help: "read the clipboard every 250 ms instead of waiting for change events (for \
               desktops whose events do not reach Ferry)",
    },
    Key {
        name: "clipboard.apply_remote",
        ty: Type::Bool,
        default: Some("true"),
        synced: true,
        help: "put the newest clip from another device on this clipboard",
    },
    Key {
        name: "clipboard.max_bytes",
        ty: Type::Bytes,
        default: Some("16MiB"),
        synced: true,
        help: "clips larger than this are not recorded",
    },
    Key {
        name: "clipboard.exclude",
        ty: Type::List,
        default: Some(""),
        synced: true,
        help: "regular expressions: text matching any is not recorded",
    },
    Key {
        name: "clipboard.kinds",
        ty: Type::List,
        default: Some("text,rich_text,image,file"),
        synced: true,
        help: "which kinds of clip are recorded",
    },
    Key {
        name: "retention.trash_days",
        ty: Type::Count,
        default: Some("30"),
        synced: true,
        help: "days a deleted clip stays in the trash",
    },
    Key {
        name: "retention.max_history",
        ty: Type::Count,
        default: Some("0"),
        synced: true,
        help: "most clips kept in the history (0: no limit); pinned and favourite clips stay",
    },
];

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

/// Every setting's value (as text, checked) and source.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    values: BTreeMap<&'static str, (String, Source)>,
    /// The user config file, where `ferry config set` writes.
    pub(crate) user_file: PathBuf,
}

pub(crate) fn key(name: &str) -> Result<&'static Key, Failure> {
    KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
        Failure::usage(format!(
            "there is no setting `{name}`; `ferry config ls` lists them all"
        ))
    })
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
            user_file: user.to_owned(),
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
                config.set_checked(key, value, Source::Env(var))?;
            }
        }
        for (name, value) in flags {
            config.set_checked(key(name)?, value.clone(), Source::Flag)?;
        }
        Ok(config)
    }

    /// Puts the synced settings under the file, environment and flag layers.
    pub(crate) fn with_synced(&mut self, synced: &[(String, String)]) {
        for (name, value) in synced {
            let Some(key) = KEYS.iter().find(|k| k.synced && k.name == name) else {
                continue;
            };
            if check(key, value).is_err() {
                continue;
            }
            let lower = matches!(self.values.get(key.name), None | Some((_, Source::Default)));
            if lower {
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
            self.set_checked(key, value, source.clone())
                .map_err(|e| Failure::new(format!("{} (in {})", e.message, path.display())))?;
        }
        Ok(())
    }

    fn set_checked(
        &mut self,
        key: &'static Key,
        value: String,
        source: Source,
    ) -> Result<(), Failure> {
        check(key, &value)?;
        self.values.insert(key.name, (value, source));
        Ok(())
    }

    /// A setting's text and source.
    pub(crate) fn get(&self, name: &str) -> Option<&(String, Source)> {
        self.values.get(name)
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|(value, _)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    pub(crate) fn store(&self) -> Option<&str> {
        self.text("store")
    }

    pub(crate) fn relay(&self) -> Option<&str> {
        self.text("relay")
    }

    pub(crate) fn device_name(&self) -> Option<&str> {
        self.text("device_name")
    }

    pub(crate) fn secret_store(&self) -> &str {
        self.text("secret_store").unwrap_or("keychain")
    }

    /// Whether the secret store was chosen anywhere but the default.
    pub(crate) fn secret_store_chosen(&self) -> bool {
        !matches!(self.get("secret_store"), None | Some((_, Source::Default)))
    }

    pub(crate) fn s3_access_key_id(&self) -> Option<&str> {
        self.text("s3.access_key_id")
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        self.text("sync.poll_interval")
            .and_then(|v| parse_duration(v).ok())
            .unwrap_or(Duration::from_secs(30))
    }

    pub(crate) fn direction(&self) -> Direction {
        match self.text("sync.direction") {
            Some("send_only") => Direction::SendOnly,
            Some("receive_only") => Direction::ReceiveOnly,
            _ => Direction::Both,
        }
    }

    pub(crate) fn scope(&self) -> Scope {
        let kinds = list(self.text("sync.scope").unwrap_or(""));
        let has = |kind: &str| kinds.iter().any(|k| k == kind);
        Scope {
            clips: has("clips"),
            collections: has("collections"),
            aliases: has("aliases"),
            settings: has("settings"),
        }
    }

    pub(crate) fn strategy(&self) -> Strategy {
        match self.text("sync.conflict") {
            Some("keep_both") => Strategy::KeepBoth,
            Some("local_wins") => Strategy::LocalWins,
            Some("remote_wins") => Strategy::RemoteWins,
            _ => Strategy::Latest,
        }
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.text(name) == Some("true")
    }

    pub(crate) fn max_bytes(&self) -> u64 {
        self.text("clipboard.max_bytes")
            .and_then(|v| parse_bytes(v).ok())
            .unwrap_or(16 * 1024 * 1024)
    }

    pub(crate) fn filters(&self) -> Filters {
        let exclude = list(self.text("clipboard.exclude").unwrap_or(""))
            .iter()
            .filter_map(|p| Regex::new(p).ok())
            .collect();
        let kinds = list(self.text("clipboard.kinds").unwrap_or(""))
            .iter()
            .filter_map(|k| content_kind(k))
            .collect();
        Filters {
            max_item_bytes: Some(self.max_bytes()),
            exclude,
            kinds: Some(kinds),
        }
    }

    pub(crate) fn retention(&self) -> Retention {
        let count = |name| self.text(name).and_then(|v| v.parse::<u64>().ok());
        Retention {
            trash_ms: count("retention.trash_days")
                .filter(|&d| d > 0)
                .map(|d| d * 24 * 3_600_000),
            max_history: count("retention.max_history")
                .filter(|&n| n > 0)
                .map(|n| n as usize),
        }
    }
}

fn content_kind(name: &str) -> Option<ContentKind> {
    match name {
        "text" => Some(ContentKind::Text),
        "rich_text" => Some(ContentKind::RichText),
        "image" => Some(ContentKind::Image),
        "file" => Some(ContentKind::File),
        _ => None,
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

/// Items of a list setting: one a line (from a TOML array), else separated by commas.
fn list(text: &str) -> Vec<String> {
    let separator = if text.contains('\n') { '\n' } else { ',' };
    text.split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks `value` against the key's type.
pub(crate) fn check(key: &Key, value: &str) -> Result<(), Failure> {
    let bad = |what: &str| {
        Failure::usage(format!(
            "`{}` must be {what}, not `{value}` ({})",
            key.name, key.help
        ))
    };
    match key.ty {
        Type::Text => Ok(()),
        Type::Bool => match value {
            "true" | "false" => Ok(()),
            _ => Err(bad("true or false")),
        },
        Type::Duration => match parse_duration(value) {
            Ok(duration) if duration >= MIN_POLL => Ok(()),
            _ => Err(bad("a duration of at least 100ms, like 500ms, 30s or 5m")),
        },
        Type::Bytes => parse_bytes(value)
            .map(|_| ())
            .map_err(|_| bad("a size like 512KiB or 16MiB")),
        Type::Count => value
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| bad("a whole number")),
        Type::OneOf(choices) if choices.contains(&value) => Ok(()),
        Type::OneOf(choices) => Err(bad(&format!("one of {}", choices.join(", ")))),
        Type::List => {
            let items = list(value);
            match key.name {
                "sync.scope" => match items.iter().find(|i| !KINDS.contains(&i.as_str())) {
                    Some(_) => Err(bad(&format!("a list of {}", KINDS.join(", ")))),
                    None => Ok(()),
                },
                "clipboard.kinds" => match items.iter().find(|i| content_kind(i).is_none()) {
                    Some(_) => Err(bad("a list of text, rich_text, image, file")),
                    None => Ok(()),
                },
                "clipboard.exclude" => match items.iter().find_map(|p| Regex::new(p).err()) {
                    Some(error) => Err(bad(&format!(
                        "a list of valid regular expressions ({error})"
                    ))),
                    None => Ok(()),
                },
                _ => Ok(()),
            }
        }
    }
}

/// `250ms`, `30s`, `5m`, `1h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, ()> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or(())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| ())?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        _ => Err(()),
    }
}

/// `512`, `64KiB`, `16MiB`, `1GiB` (also KB/MB/GB as powers of 1000).
pub(crate) fn parse_bytes(text: &str) -> Result<u64, ()> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| ())?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(()),
    };
    number.checked_mul(factor).ok_or(())
}

/// Sets (or with `None` removes) `key` in the user config file, keeping its other settings.
pub(crate) fn write_user(path: &Path, key: &str, value: Option<&str>) -> Result<(), Failure> {
    let mut table: toml::Table = if path.exists() {
        fs::read_to_string(path)
            .map_err(|e| Failure::new(format!("{} could not be read: {e}", path.display())))?
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
        }
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Failure::new(format!("{} could not be created: {e}", parent.display())))?;
    }
    let text = toml::to_string(&table)
        .map_err(|e| Failure::new(format!("the config could not be written: {e}")))?;
    let temporary = path.with_extension("toml.tmp");
    fs::write(&temporary, text)
        .and_then(|()| fs::rename(&temporary, path))
        .map_err(|e| Failure::new(format!("{} could not be written: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("ms").is_err());
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("512"), Ok(512));
        assert!(parse_bytes("12 apples").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
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
        assert_eq!(config.poll_interval(), Duration::from_secs(10));
        assert_eq!(config.relay(), Some("wss://flag"));
        assert!(!config.flag("clipboard.apply_remote"));
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
        let filters = config.filters();
        assert_eq!(filters.exclude.len(), 2);
        assert!(filters.exclude[0].is_match("xx"));
        let env = Config::load(
            None,
            &dir.path().join("none.toml"),
            &[("clipboard.exclude", "a,b".into())],
        )
        .unwrap();
        assert_eq!(env.filters().exclude.len(), 2);
    }

    #[test]
    fn writing_keeps_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("config.toml");
        write_user(&user, "store", Some("file:///tmp/x")).unwrap();
        write_user(&user, "sync.poll_interval", Some("5s")).unwrap();
        write_user(&user, "store", None).unwrap();
        let config = Config::load(None, &user, &[]).unwrap();
        assert_eq!(config.store(), None);
        assert_eq!(config.poll_interval(), Duration::from_secs(5));
    }
}
