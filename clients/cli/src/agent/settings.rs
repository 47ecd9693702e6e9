//! Settings that change while the agent runs: a `ferry config` command it ran (on this
//! device's file or synced), or synced settings merged from another device. What can apply at
//! once does, before the next copy is recorded; the rest waits for a restart, and says so.

use tracing::{info, warn};

use super::Agent;
use super::clipboard::start_clipboard;
use crate::device;
use crate::error::Failure;
use crate::relay::Hints;

/// The keys a running agent cannot take up: they shape what it opened at its start.
const AT_RESTART: &[&str] = &[
    "store",
    "secret_store",
    "s3.access_key_id",
    "sync.upload_limit",
    "sync.download_limit",
    "sync.direction",
    "sync.scope",
    "lan.enabled",
    "lan.port",
    "lan.discovery",
    "lan.peers",
];

/// What changed when the settings were read again.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Keys in force now.
    pub(crate) now: Vec<&'static str>,
    /// Keys that take effect when the agent restarts.
    pub(crate) at_restart: Vec<&'static str>,
}

impl Agent {
    /// Reads the settings again (files, environment, flags, synced) and applies what changed.
    pub(super) fn reread_settings(&mut self) -> Result<Applied, Failure> {
        let synced = device::synced_settings(&self.device.engine, &self.device.config);
        let config = self.device.config.reread(&synced)?;
        let changed = self.device.config.changed_from(&config);
        self.synced_seen = synced;
        self.device.config = config;
        let mut applied = Applied::default();
        let mut clipboard = false;
        for key in changed {
            if AT_RESTART.contains(&key) {
                applied.at_restart.push(key);
                continue;
            }
            match key {
                "clipboard.exclude" | "clipboard.kinds" | "clipboard.max_bytes" => {
                    let filters = self.device.config.settings.filters();
                    self.device.engine.set_filters(filters);
                    // The watcher reads no more than the largest copy recorded.
                    clipboard |= key == "clipboard.max_bytes";
                }
                "clipboard.watch" | "clipboard.poll" | "clipboard.apply_remote" => {
                    clipboard = true;
                }
                "relay" => self.restart_relay(),
                "notify.enabled" | "notify.after" => {
                    self.notifier = super::notify::Notifier::new(&self.device);
                }
                // The rest is read where it is used (the poll interval by the agent's loop).
                _ => {}
            }
            applied.now.push(key);
        }
        if clipboard {
            self.restart_clipboard();
        }
        if !applied.now.is_empty() || !applied.at_restart.is_empty() {
            info!(now = ?applied.now, at_restart = ?applied.at_restart, "settings changed");
        }
        Ok(applied)
    }

    /// After data from elsewhere merged: applies the synced settings when they changed.
    pub(super) fn follow_synced_settings(&mut self) {
        let synced = device::synced_settings(&self.device.engine, &self.device.config);
        if synced == self.synced_seen {
            return;
        }
        if let Err(failure) = self.device.follow_own_name() {
            warn!(error = %failure.message, "this device's new name could not be written");
        }
        if let Err(failure) = self.reread_settings() {
            warn!(error = %failure.message, "the settings could not be read again");
        }
    }

    fn restart_clipboard(&mut self) {
        let settings = &self.device.config.settings;
        let (clips, watcher, writer) = if settings.watch_clipboard || settings.apply_remote {
            start_clipboard(&self.device)
        } else {
            (None, None, None)
        };
        self.clips = clips;
        self._watcher = watcher;
        self.writer = writer;
    }

    fn restart_relay(&mut self) {
        self.relay = super::relay::listen(&self.device);
        self.relay_state = self.relay.as_ref().map(Hints::watch);
    }
}
