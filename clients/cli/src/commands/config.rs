//! `ferry config`: this device's settings (in its config file) and the synced ones (recorded
//! like any other change, with `--synced`).

use std::fmt;

use ferry_core::DataKind;
use serde::Serialize;

use crate::cli::{ConfigAction, DataCommand};
use crate::commands;
use crate::config::{self, Config, KEYS};
use crate::device::{Changed, Device};
use crate::error::Failure;
use crate::home::Home;
use crate::output::Output;

/// A setting's value and where it came from.
#[derive(Serialize)]
struct Setting {
    key: &'static str,
    value: String,
    source: String,
    /// May be set for all devices (`--synced`).
    syncable: bool,
}

/// `config get` prints the value alone.
#[derive(Serialize)]
struct Value {
    key: &'static str,
    value: String,
    source: String,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.value)
    }
}

/// Every setting, the per-device ones first.
#[derive(Serialize)]
#[serde(transparent)]
struct Settings(Vec<Setting>);

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (heading, synced) in [("this device", false), ("synced (--synced)", true)] {
            writeln!(f, "# {heading}")?;
            for setting in self.0.iter().filter(|s| s.syncable == synced) {
                writeln!(
                    f,
                    "{} = {:?}\t({})",
                    setting.key, setting.value, setting.source
                )?;
            }
        }
        Ok(())
    }
}

/// The key `action` changes, when it changes one, and whether in the synced settings.
pub(crate) fn changes(action: &ConfigAction) -> Option<(&str, bool)> {
    match action {
        ConfigAction::Set { key, synced, .. } | ConfigAction::Unset { key, synced } => {
            Some((key, *synced))
        }
        ConfigAction::Get { .. } | ConfigAction::Ls => None,
    }
}

/// Whether `action` runs on the file layers alone (no engine, no agent).
pub(crate) fn is_local(action: &ConfigAction, config: &Config) -> bool {
    matches!(
        action,
        ConfigAction::Set { synced: false, .. } | ConfigAction::Unset { synced: false, .. }
    ) || config.settings.store.is_none()
}

/// `ferry config …` on the file layers (and the synced values already merged into `config`).
pub(crate) fn local(
    config: &Config,
    action: ConfigAction,
    out: &mut Output,
) -> Result<(), Failure> {
    match action {
        ConfigAction::Get { key } => {
            let key = config::key(&key)?;
            let (value, source) = config
                .get(key.name)
                .ok_or_else(|| Failure::new(format!("`{}` is not set", key.name)))?;
            out.report(&Value {
                key: key.name,
                value: value.clone(),
                source: source.to_string(),
            });
        }
        ConfigAction::Set { key, value, .. } => {
            config::check(config::key(&key)?, &value)?;
            config::write_user(&config.user_file, &key, Some(&value))?;
            if key == "relay"
                && !value.is_empty()
                && let Err(why) = crate::relay::reachable(&value)
            {
                out.note(crate::relay::unreachable_warning(&value, &why));
            }
        }
        ConfigAction::Unset { key, .. } => {
            config::key(&key)?;
            config::write_user(&config.user_file, &key, None)?;
        }
        ConfigAction::Ls => {
            let rows = KEYS
                .iter()
                .map(|key| {
                    let (value, source) = config
                        .get(key.name)
                        .map(|(v, s)| (v.clone(), s.to_string()))
                        .unwrap_or_else(|| (String::new(), "not set".to_owned()));
                    Setting {
                        key: key.name,
                        value,
                        source,
                        syncable: key.synced,
                    }
                })
                .collect();
            out.report(&Settings(rows));
        }
    }
    Ok(())
}

/// The relay this device uses, and whether it is the repository's (synced) rather than its
/// own: the config files' when they name one, else read through the agent or the database.
pub(crate) async fn relay_in_use(
    home: &Home,
    config: &Config,
) -> Result<Option<(String, bool)>, Failure> {
    if let Some(url) = &config.settings.relay {
        return Ok(Some((url.clone(), false)));
    }
    let mut out = Output::new(true);
    let list = DataCommand::Config {
        action: ConfigAction::Ls,
    };
    commands::run_data(home.clone(), config.clone(), list, &mut out).await?;
    let settings: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .map_err(|e| Failure::new(format!("the settings did not read back: {e}")))?;
    Ok(settings
        .iter()
        .find(|setting| setting["key"] == "relay")
        .and_then(|relay| {
            let url = relay["value"].as_str().filter(|url| !url.is_empty())?;
            Some((url.to_owned(), relay["source"] == "synced"))
        }))
}

/// `ferry config …` with the engine open: `--synced` changes are recorded; the rest is local.
pub(crate) fn run(
    device: &mut Device,
    action: ConfigAction,
    out: &mut Output,
) -> Result<Changed, Failure> {
    let (key, value) = match action {
        ConfigAction::Set {
            key,
            value,
            synced: true,
        } => {
            let spec = config::key(&key)?;
            if !spec.synced {
                return Err(Failure::usage(format!(
                    "`{key}` is set per device, not synced: drop --synced"
                )));
            }
            config::check(spec, &value)?;
            if key == "relay" && config::on_this_machine(&value) {
                return Err(Failure::usage(format!(
                    "{value} names the machine it is read on: the other devices would each \
                     look for a relay on themselves; set it for this device alone (drop \
                     --synced), or give an address the others reach"
                )));
            }
            (key, Some(value))
        }
        ConfigAction::Unset { key, synced: true } => {
            config::key(&key)?;
            (key, None)
        }
        other => {
            local(&device.config, other, out)?;
            return Ok(Changed::No);
        }
    };
    device.engine.record(DataKind::Settings, |r, _, now| {
        r.set_setting(key, value, now)
    })?;
    Ok(Changed::Yes)
}
