//! Every setting, typed: each key's default, what it may be synced as, and the one parser that
//! turns its text into a field of [`Settings`].

use std::sync::Arc;
use std::time::Duration;

use ferry_core::{ContentKind, DataKind, Retention, Scope, Strategy};
use ferry_store::RetryPolicy;
use ferry_sync::{Direction, EngineConfig, Filters, Throttle};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::values::{boolean, count, list, poll_interval, rate, relay, size, text, word, words};

/// Where secrets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SecretStore {
    /// The OS keychain (Secret Service, macOS Keychain, Windows Credential Manager).
    #[default]
    Keychain,
    /// A private file under the Ferry home.
    File,
}

ferry_core::spelled!(pub(crate) SecretStore, "secret store", {
    Keychain = "keychain",
    File = "file",
});

/// The settings in force, parsed once when the layers are loaded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub(crate) store: Option<String>,
    /// The folder this device held the repository in before it moved to other storage.
    pub(crate) store_before: Option<String>,
    pub(crate) relay: Option<String>,
    pub(crate) device_name: Option<String>,
    pub(crate) secret_store: SecretStore,
    pub(crate) s3_access_key_id: Option<String>,
    pub(crate) poll_interval: Duration,
    /// Bytes a second for large content going out; `None`: no limit.
    pub(crate) upload_limit: Option<u64>,
    /// The same coming in.
    pub(crate) download_limit: Option<u64>,
    pub(crate) direction: Direction,
    pub(crate) scope: Scope,
    pub(crate) conflict: Strategy,
    pub(crate) watch_clipboard: bool,
    pub(crate) poll_clipboard: bool,
    pub(crate) apply_remote: bool,
    /// `ferry copy` also places what it records on this clipboard (unless `--no-place`).
    pub(crate) place_copies: bool,
    pub(crate) max_bytes: u64,
    pub(crate) exclude: Vec<Regex>,
    pub(crate) kinds: Vec<ContentKind>,
    pub(crate) retention: Retention,
    pub(crate) lan_enabled: bool,
    pub(crate) lan_port: u16,
    pub(crate) lan_discovery: bool,
    pub(crate) lan_peers: Vec<String>,
    pub(crate) notify_enabled: bool,
    pub(crate) notify_after: Duration,
}

impl Settings {
    /// The built-in defaults of every key.
    pub(crate) fn defaults() -> Settings {
        let mut settings = Settings::default();
        for key in KEYS {
            if let Some(default) = key.default {
                // Every default parses (tested below).
                let _ = (key.set)(&mut settings, default);
            }
        }
        settings
    }

    /// The filters clips must pass to be recorded.
    pub(crate) fn filters(&self) -> Filters {
        Filters {
            max_item_bytes: Some(self.max_bytes),
            exclude: self.exclude.clone(),
            kinds: Some(self.kinds.clone()),
        }
    }

    /// The engine's settings, with `retry` for storage requests.
    pub(crate) fn engine(&self, retry: RetryPolicy) -> EngineConfig {
        EngineConfig {
            retry,
            direction: self.direction,
            filters: self.filters(),
            scope: self.scope,
            device_name: self.device_name.clone().unwrap_or_default(),
            upload_limit: self.upload_limit.map(|rate| Arc::new(Throttle::new(rate))),
            download_limit: self
                .download_limit
                .map(|rate| Arc::new(Throttle::new(rate))),
            ..EngineConfig::default()
        }
    }
}

/// What a value must be, when it is not: said after "`key` must be …".
pub(super) type Expected = String;

/// One known setting.
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) default: Option<&'static str>,
    /// May be set for all devices (`ferry config set --synced`).
    pub(crate) synced: bool,
    pub(crate) help: &'static str,
    /// Parses a value into its field of the settings.
    set: fn(&mut Settings, &str) -> Result<(), Expected>,
}

impl Key {
    /// Parses `value` into this key's field of `settings`.
    pub(crate) fn set(&self, settings: &mut Settings, value: &str) -> Result<(), Expected> {
        (self.set)(settings, value)
    }
}

/// The shortest poll interval: ten listings a second.
pub(super) const MIN_POLL: Duration = Duration::from_millis(100);
/// The longest: once a day.
pub(super) const MAX_POLL: Duration = Duration::from_secs(24 * 3600);

/// The shortest wait before saying the storage keeps failing.
const MIN_NOTIFY_AFTER: Duration = Duration::from_secs(1);

/// Every setting.
pub(crate) const KEYS: &[Key] = &[
    Key {
        name: "store",
        default: None,
        synced: false,
        help: "where the repository is: file:///…, s3://bucket/prefix?…, webdav+https://user@host/…",
        set: |s, v| {
            s.store = text(v);
            Ok(())
        },
    },
    Key {
        name: "store_before",
        default: None,
        synced: false,
        help: "the folder this device held the repository in before it moved (`ferry store \
               move`): served on the LAN to the devices that have not moved yet; unset it once \
               every device has",
        set: |s, v| {
            s.store_before = text(v);
            Ok(())
        },
    },
    Key {
        name: "relay",
        default: None,
        synced: true,
        help: "the relay's URL (ws:// or wss://); empty for none. The synced value is the \
               repository's (`ferry init --relay` records it): it serves every device that has \
               none of its own",
        set: |s, v| {
            s.relay = relay(v)?;
            Ok(())
        },
    },
    Key {
        name: "device_name",
        default: None,
        synced: false,
        help: "this device's name, as other devices show it",
        set: |s, v| {
            s.device_name = text(v);
            Ok(())
        },
    },
    Key {
        name: "secret_store",
        default: Some("keychain"),
        synced: false,
        help: "where secrets live: the OS keychain, or a 0600 file under the Ferry home",
        set: |s, v| {
            s.secret_store = word(v)?;
            Ok(())
        },
    },
    Key {
        name: "s3.access_key_id",
        default: None,
        synced: false,
        help: "the S3 access key id (its secret is in the secret store or AWS_SECRET_ACCESS_KEY)",
        set: |s, v| {
            s.s3_access_key_id = text(v);
            Ok(())
        },
    },
    Key {
        name: "sync.poll_interval",
        default: Some("30s"),
        synced: true,
        help: "how often to look for new data when no relay or folder event says so",
        set: |s, v| {
            s.poll_interval = poll_interval(v)?;
            Ok(())
        },
    },
    Key {
        name: "sync.upload_limit",
        default: Some("0"),
        synced: false,
        help: "the most bytes a second that images, files and snapshots go out at, like \
               512KiB/s; 0 for no limit (a copy's text is never held by it)",
        set: |s, v| {
            s.upload_limit = rate(v)?;
            Ok(())
        },
    },
    Key {
        name: "sync.download_limit",
        default: Some("0"),
        synced: false,
        help: "the most bytes a second that images, files and snapshots come in at, like \
               2MiB/s; 0 for no limit",
        set: |s, v| {
            s.download_limit = rate(v)?;
            Ok(())
        },
    },
    Key {
        name: "sync.direction",
        default: Some("both"),
        synced: false,
        help: "both, send_only or receive_only",
        set: |s, v| {
            s.direction = word(v)?;
            Ok(())
        },
    },
    Key {
        name: "sync.scope",
        default: Some("clips,collections,aliases,settings"),
        synced: false,
        help: "which kinds of data sync; the others stay on this device",
        set: |s, v| {
            let kinds: Vec<DataKind> = words(v)?;
            s.scope = Scope {
                clips: kinds.contains(&DataKind::Clips),
                collections: kinds.contains(&DataKind::Collections),
                aliases: kinds.contains(&DataKind::Aliases),
                settings: kinds.contains(&DataKind::Settings),
            };
            Ok(())
        },
    },
    Key {
        name: "sync.conflict",
        default: Some("latest"),
        synced: true,
        help: "how concurrent edits of one alias or setting show: latest, keep_both, local_wins, remote_wins",
        set: |s, v| {
            s.conflict = word(v)?;
            Ok(())
        },
    },
    Key {
        name: "clipboard.watch",
        default: Some("true"),
        synced: false,
        help: "record what is copied on this device",
        set: |s, v| {
            s.watch_clipboard = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "clipboard.poll",
        default: Some("false"),
        synced: false,
        help: "read the clipboard every 250 ms instead of waiting for change events (for \
               desktops whose events do not reach Ferry)",
        set: |s, v| {
            s.poll_clipboard = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "clipboard.apply_remote",
        default: Some("true"),
        synced: true,
        help: "put the newest clip from another device on this clipboard",
        set: |s, v| {
            s.apply_remote = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "clipboard.place_copies",
        default: Some("true"),
        synced: false,
        help: "`ferry copy` also puts what it records on this clipboard",
        set: |s, v| {
            s.place_copies = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "clipboard.max_bytes",
        default: Some("16MiB"),
        synced: true,
        help: "clips larger than this are not recorded",
        set: |s, v| {
            s.max_bytes = size(v)?;
            Ok(())
        },
    },
    Key {
        name: "clipboard.exclude",
        default: Some(""),
        synced: true,
        help: "regular expressions: text matching any is not recorded",
        set: |s, v| {
            s.exclude = list(v)
                .map(Regex::new)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("a list of valid regular expressions ({e})"))?;
            Ok(())
        },
    },
    Key {
        name: "clipboard.kinds",
        default: Some("text,rich_text,image,file"),
        synced: true,
        help: "which kinds of clip are recorded",
        set: |s, v| {
            s.kinds = words(v)?;
            Ok(())
        },
    },
    Key {
        name: "lan.enabled",
        default: Some("true"),
        synced: true,
        help: "pass clips directly to this person's devices on the same network",
        set: |s, v| {
            s.lan_enabled = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "lan.port",
        default: Some("47291"),
        synced: false,
        help: "the TCP port nearby devices connect to (open it in the firewall); 0 for any",
        set: |s, v| {
            s.lan_port = v
                .trim()
                .parse()
                .map_err(|_| "a port number from 0 to 65535".to_owned())?;
            Ok(())
        },
    },
    Key {
        name: "lan.discovery",
        default: Some("true"),
        synced: false,
        help: "find nearby devices by mDNS (announcing only a name that changes every hour)",
        set: |s, v| {
            s.lan_discovery = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "lan.peers",
        default: Some(""),
        synced: false,
        help: "host:port of devices to connect to where multicast is blocked (AP isolation, VLANs)",
        set: |s, v| {
            s.lan_peers = list(v)
                .map(|peer| match peer.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                        Ok(peer.to_owned())
                    }
                    _ => Err(format!("a list of host:port (`{peer}` is not)")),
                })
                .collect::<Result<_, _>>()?;
            Ok(())
        },
    },
    Key {
        name: "notify.enabled",
        default: Some("true"),
        synced: true,
        help: "desktop notifications when something needs the person: storage failing, \
               credentials refused, a new device, damaged objects (never a clip's content)",
        set: |s, v| {
            s.notify_enabled = boolean(v)?;
            Ok(())
        },
    },
    Key {
        name: "notify.after",
        default: Some("5m"),
        synced: true,
        help: "how long the storage must keep failing before a notification says so",
        set: |s, v| {
            s.notify_after = humantime::parse_duration(v)
                .ok()
                .filter(|after| (MIN_NOTIFY_AFTER..=MAX_POLL).contains(after))
                .ok_or("a duration from 1s to 24h, like 30s, 5m or 1h")?;
            Ok(())
        },
    },
    Key {
        name: "retention.trash_days",
        default: Some("30"),
        synced: true,
        help: "days a deleted clip stays in the trash",
        set: |s, v| {
            let days = count(v)?;
            let ms = days
                .checked_mul(24 * 3_600_000)
                .ok_or("at most 100000 days")?;
            s.retention.trash_ms = (days > 0).then_some(ms);
            Ok(())
        },
    },
    Key {
        name: "retention.max_history",
        default: Some("0"),
        synced: true,
        help: "most clips kept in the history (0: no limit); pinned and favourite clips stay",
        set: |s, v| {
            let most = usize::try_from(count(v)?).map_err(|_| "a smaller number")?;
            s.retention.max_history = (most > 0).then_some(most);
            Ok(())
        },
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(key: &str, value: &str) -> Result<Settings, Expected> {
        let mut settings = Settings::defaults();
        let key = KEYS.iter().find(|k| k.name == key).unwrap();
        key.set(&mut settings, value).map(|()| settings)
    }

    #[test]
    fn every_default_parses() {
        for key in KEYS {
            if let Some(default) = key.default {
                assert!(
                    key.set(&mut Settings::default(), default).is_ok(),
                    "{}",
                    key.name
                );
            }
        }
        let settings = Settings::defaults();
        assert_eq!(settings.poll_interval, Duration::from_secs(30));
        assert_eq!(settings.max_bytes, 16 << 20);
        assert_eq!(settings.scope, Scope::ALL);
        assert_eq!(settings.kinds.len(), 4);
        assert!(settings.watch_clipboard && settings.apply_remote && !settings.poll_clipboard);
    }

    #[test]
    fn durations_and_sizes_parse_and_absurd_ones_are_refused() {
        let interval = |v| parsed("sync.poll_interval", v).map(|s| s.poll_interval);
        assert_eq!(interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(interval("1h 30m"), Ok(Duration::from_secs(5400)));
        for bad in [
            "5",
            "ms",
            "10ms",
            "2d",
            "9999999999999999h",
            "99999999999999999999s",
        ] {
            assert!(interval(bad).is_err(), "{bad}");
        }
        let bytes = |v| parsed("clipboard.max_bytes", v).map(|s| s.max_bytes);
        assert_eq!(bytes("16MiB"), Ok(16 << 20));
        assert_eq!(bytes("512"), Ok(512));
        assert_eq!(bytes("1 KB"), Ok(1000));
        for bad in ["12 apples", "99999999999999999999GiB", "-1"] {
            assert!(bytes(bad).is_err(), "{bad}");
        }
        assert!(parsed("retention.trash_days", &u64::MAX.to_string()).is_err());
    }

    #[test]
    fn traffic_limits_are_rates_or_nothing() {
        let up = |v| parsed("sync.upload_limit", v).map(|s| s.upload_limit);
        assert_eq!(up("0"), Ok(None));
        assert_eq!(up("512KiB/s"), Ok(Some(512 * 1024)));
        assert_eq!(up("2MiB/s"), Ok(Some(2 * 1024 * 1024)));
        assert_eq!(up("2MiB"), Ok(Some(2 * 1024 * 1024)));
        let down = |v| parsed("sync.download_limit", v).map(|s| s.download_limit);
        assert_eq!(down("1 MB/s"), Ok(Some(1_000_000)));
        for bad in ["fast", "-1", "10B/s", "2MiB/h", "/s", "2PiB/s"] {
            let error = up(bad).unwrap_err();
            assert!(error.contains("like 512KiB/s"), "{bad}: {error}");
        }
        let defaults = Settings::defaults();
        assert_eq!(
            (defaults.upload_limit, defaults.download_limit),
            (None, None)
        );
    }

    #[test]
    fn notifications_wait_a_sensible_while() {
        let after = |v| parsed("notify.after", v).map(|s| s.notify_after);
        assert_eq!(after("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(Settings::defaults().notify_after, Duration::from_secs(300));
        assert!(Settings::defaults().notify_enabled);
        for bad in ["0s", "500ms", "2d", "soon"] {
            assert!(after(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn words_are_the_enums_spellings() {
        let settings = parsed("clipboard.kinds", "rich_text, image").unwrap();
        assert_eq!(settings.kinds, [ContentKind::RichText, ContentKind::Image]);
        let error = parsed("sync.direction", "sideways").unwrap_err();
        assert_eq!(error, "one of both, send_only, receive_only");
        let error = parsed("sync.scope", "clips,passwords").unwrap_err();
        assert_eq!(error, "a list of clips, collections, aliases, settings");
        assert_eq!(
            parsed("secret_store", "file").unwrap().secret_store,
            SecretStore::File
        );
    }

    #[test]
    fn lan_settings_take_ports_and_host_port_lists_and_refuse_the_rest() {
        let defaults = Settings::defaults();
        assert!(defaults.lan_enabled && defaults.lan_discovery);
        assert_eq!(defaults.lan_port, ferry_lan::DEFAULT_PORT);
        assert!(defaults.lan_peers.is_empty());
        let settings = parsed("lan.peers", "192.168.1.20:47291, desk.local:9000").unwrap();
        assert_eq!(
            settings.lan_peers,
            ["192.168.1.20:47291", "desk.local:9000"]
        );
        for bad in ["desk.local", ":47291", "desk:port", "desk:70000"] {
            let error = parsed("lan.peers", bad).unwrap_err();
            assert!(
                error.contains("host:port") && error.contains(bad),
                "{error}"
            );
        }
        for bad in ["-1", "65536", "http"] {
            assert_eq!(
                parsed("lan.port", bad).unwrap_err(),
                "a port number from 0 to 65535"
            );
        }
        assert_eq!(parsed("lan.port", "0").unwrap().lan_port, 0);
        assert!(parsed("lan.enabled", "perhaps").is_err());
    }
}
