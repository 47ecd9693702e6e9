//! `ferry alias`: named snippets.

use std::fmt;

use ferry_core::DataKind;
use serde::Serialize;

use crate::cli::AliasAction;
use crate::device::{Changed, Device};
use crate::error::Failure;
use crate::output::{Done, Lines, Output};

/// An alias and its value.
#[derive(Serialize)]
struct Alias {
    name: String,
    value: String,
    /// Devices set it concurrently to different values (shown by the conflict strategy).
    conflict: bool,
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.conflict { " (conflict)" } else { "" };
        write!(
            f,
            "{}\t{}{mark}",
            self.name,
            self.value.replace('\n', "\\n")
        )
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Aliases(Vec<Alias>);

impl fmt::Display for Aliases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Lines(&self.0).fmt(f)
    }
}

/// `alias get` prints the value alone, as it is, for use in scripts.
#[derive(Serialize)]
#[serde(transparent)]
struct Value(Alias);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.value)
    }
}

/// `ferry alias …`.
pub(crate) fn run(
    device: &mut Device,
    action: AliasAction,
    out: &mut Output,
) -> Result<Changed, Failure> {
    let kind = DataKind::Aliases;
    let strategy = device.config.settings.conflict;
    let me = device.engine.device();
    let state = device.engine.state_for(kind);
    let value = |name: &str| {
        let resolved = state.alias(name, strategy, me)?;
        Some(Alias {
            name: name.to_owned(),
            value: resolved.value()?.to_owned(),
            conflict: resolved.conflict,
        })
    };
    match action {
        AliasAction::Get { name } => {
            let alias = value(&name).ok_or_else(|| {
                Failure::new(format!(
                    "there is no alias `{name}`; `ferry alias ls` lists them"
                ))
            })?;
            out.report(&Value(alias));
            Ok(Changed::No)
        }
        AliasAction::Ls => {
            let names: Vec<&str> = state
                .aliases(strategy, me)
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            out.report(&Aliases(names.into_iter().filter_map(value).collect()));
            Ok(Changed::No)
        }
        AliasAction::Set { name, value } => {
            let line = format!("Alias {name} set.");
            let done = Done::new("alias set", &name, line);
            device.engine.record(kind, |replica, _, now| {
                replica.set_alias(name, Some(value), now)
            })?;
            out.done(&done);
            Ok(Changed::Yes)
        }
        AliasAction::Rm { name } => {
            if value(&name).is_none() {
                return Err(Failure::new(format!("there is no alias `{name}`")));
            }
            let done = Done::new("alias removed", &name, format!("Alias {name} removed."));
            device
                .engine
                .record(kind, |replica, _, now| replica.set_alias(name, None, now))?;
            out.done(&done);
            Ok(Changed::Yes)
        }
    }
}
