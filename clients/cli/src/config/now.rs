//! What `ferry config set` and `unset` say: the setting's value in force afterwards, the layer
//! it comes from, and when it applies.

use std::fmt;

use serde::Serialize;

use super::{Config, Source};

/// When a changed setting applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Applies {
    /// The running agent took it up.
    Now,
    /// The running agent takes it up when it restarts.
    AtRestart,
    /// No agent runs: the next one starts with it.
    WhenTheAgentStarts,
    /// A layer above the one changed (the environment, a flag, or for a synced change this
    /// device's own files) still decides it.
    Overridden,
}

/// A setting as it stands after a change.
#[derive(Debug, Serialize)]
pub(crate) struct SettingNow {
    key: String,
    /// The value in force; empty when none is set anywhere.
    value: String,
    /// Where that value comes from (the layer that won).
    source: String,
    applies: Applies,
}

impl Config {
    /// `key` as it stands in this config after a change to this device's files or (`synced`)
    /// to the synced settings, applying as `applies` says unless a layer above decides it.
    pub(crate) fn now(&self, key: &str, synced: bool, applies: Applies) -> SettingNow {
        let (value, source) = match self.get(key) {
            Some((value, source)) => (value.clone(), source.clone()),
            None => (String::new(), Source::Default),
        };
        let above = match source {
            Source::Env(_) | Source::Flag => true,
            Source::Base(_) | Source::User(_) => synced,
            Source::Default | Source::Synced => false,
        };
        let applies = if above { Applies::Overridden } else { applies };
        let source = match self.get(key) {
            Some(_) => source.to_string(),
            None => "not set".to_owned(),
        };
        SettingNow {
            key: key.to_owned(),
            value,
            source,
            applies,
        }
    }
}

impl fmt::Display for SettingNow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value.is_empty() {
            true if self.source == "not set" => write!(f, "{} is not set", self.key)?,
            true => write!(f, "{} is not set ({})", self.key, self.source)?,
            false => write!(f, "{} = {} ({})", self.key, self.value, self.source)?,
        }
        match self.applies {
            Applies::Now => writeln!(f, "; in force now"),
            Applies::AtRestart => writeln!(
                f,
                "; the running agent takes it up when it restarts (`ferry stop`, then start it)"
            ),
            Applies::WhenTheAgentStarts => writeln!(f, "; the agent starts with it"),
            Applies::Overridden => writeln!(
                f,
                "; that layer wins over the one just changed: change or remove it there"
            ),
        }
    }
}
