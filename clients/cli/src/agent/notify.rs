//! Desktop notifications, for what needs the person: the storage failing for longer than
//! `notify.after`, the storage refusing the credentials, a repository that no longer matches the
//! key, a new device in the roster, objects set aside as damaged. Through the freedesktop
//! notification service (D-Bus) where there is one; each cause at most once an hour; off with
//! `notify.enabled = false`. A notification names devices and errors, never a clip's content.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ferry_protocol::DeviceId;
use ferry_store::StoreError;
use ferry_sync::SyncError;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::device::Device;

/// The shortest time between two notifications of one cause.
const ONCE_PER: Duration = Duration::from_secs(3600);
/// How much of an error's message a notification shows.
const BODY_CHARS: usize = 300;

/// Why a notification is shown; each is rate-limited on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Cause {
    StorageFailing,
    CredentialsRefused,
    WrongKey,
    NewDevice,
    Quarantined,
}

/// What was said, and what has been seen, to say only what is new.
pub(super) struct Notifier {
    enabled: bool,
    after: Duration,
    /// When the storage began failing, while it does.
    failing_since: Option<Instant>,
    said: HashMap<Cause, Instant>,
    /// The devices in the roster at the last look (`None` before the first).
    devices: Option<BTreeSet<DeviceId>>,
    /// The objects set aside at the last look.
    quarantined: Option<BTreeSet<String>>,
}

impl Notifier {
    pub(super) fn new(device: &Device) -> Notifier {
        let settings = &device.config.settings;
        let mut notifier = Notifier {
            enabled: settings.notify_enabled,
            after: settings.notify_after,
            failing_since: None,
            said: HashMap::new(),
            devices: None,
            quarantined: None,
        };
        // What is there at the start is known already: only news is said.
        notifier.news(device);
        notifier
    }

    /// Follows a pass against the storage: its error, or `None` when it answered.
    pub(super) fn pass(&mut self, error: Option<&SyncError>) {
        let Some(error) = error else {
            self.failing_since = None;
            return;
        };
        let failing = self
            .failing_since
            .get_or_insert_with(Instant::now)
            .elapsed();
        let Some(cause) = cause_of(error, failing, self.after) else {
            return;
        };
        let (summary, body) = match cause {
            Cause::CredentialsRefused => (
                "Ferry: the storage refused the credentials".to_owned(),
                format!("{error}. Nothing syncs until this is fixed: run `ferry doctor`."),
            ),
            Cause::WrongKey => (
                "Ferry: the repository does not match this device's key".to_owned(),
                format!("{error}. Run `ferry doctor`."),
            ),
            _ => (
                "Ferry cannot sync with its storage".to_owned(),
                format!(
                    "For {} now: {error}. Clips are kept on this device and go out once the \
                     storage answers.",
                    humantime::format_duration(Duration::from_secs(failing.as_secs()))
                ),
            ),
        };
        self.say(cause, &summary, &body);
    }

    /// Looks for what is new after data came in: devices in the roster, objects set aside.
    pub(super) fn news(&mut self, device: &Device) {
        let devices: BTreeSet<DeviceId> =
            device.engine.state().devices().map(|(id, _)| *id).collect();
        if let Some(known) = self.devices.replace(devices.clone()) {
            let memberships = match device.engine.memberships() {
                Ok(memberships) => memberships,
                Err(error) => {
                    // Said at the next news, once the database answers: never a false alarm.
                    debug!(%error, "notifications: the memberships could not be read");
                    self.devices = Some(known);
                    return;
                }
            };
            for id in devices.difference(&known) {
                let body = match memberships.get(id) {
                    Some(ferry_core::Membership::Attested(paired)) => {
                        format!("Added by {}.", device.device_name(&paired.by))
                    }
                    Some(ferry_core::Membership::Unchained(paired)) => format!(
                        "Vouched for only by {}, whose own membership does not hold: if \
                         nobody here added it, a copy of the key is loose (see `ferry devices`).",
                        device.device_name(&paired.by)
                    ),
                    _ => "It joined with the sync key alone, not added by a known device: if \
                          nobody here added it, a copy of the key is loose (see `ferry devices`)."
                        .to_owned(),
                };
                let summary = format!("Ferry: a new device joined, {}", device.device_name(id));
                self.say(Cause::NewDevice, &summary, &body);
            }
        }
        let quarantined = match device.engine.status() {
            Ok(status) => status.quarantined,
            Err(error) => {
                debug!(%error, "notifications: the status could not be read");
                return;
            }
        };
        let names: BTreeSet<String> = quarantined.iter().map(|q| q.name.clone()).collect();
        if let Some(known) = self.quarantined.replace(names.clone()) {
            let new: Vec<_> = quarantined
                .iter()
                .filter(|q| !known.contains(&q.name))
                .collect();
            if let Some(first) = new.first() {
                let summary = match new.len() {
                    1 => "Ferry set aside a damaged object".to_owned(),
                    n => format!("Ferry set aside {n} damaged objects"),
                };
                let body = format!(
                    "{}: {}. What was stored before is untouched; `ferry status` lists what \
                     was set aside and when it is tried again.",
                    first.name, first.reason
                );
                self.say(Cause::Quarantined, &summary, &body);
            }
        }
    }

    /// Shows a notification unless they are off or this cause was said within the hour.
    fn say(&mut self, cause: Cause, summary: &str, body: &str) {
        if !self.enabled
            || self
                .said
                .get(&cause)
                .is_some_and(|at| at.elapsed() < ONCE_PER)
        {
            return;
        }
        self.said.insert(cause, Instant::now());
        info!(summary, "notification");
        let summary = summary.to_owned();
        let body = markup_escaped(&body.chars().take(BODY_CHARS).collect::<String>());
        tokio::task::spawn_blocking(move || {
            let shown = notify_rust::Notification::new()
                .appname("Ferry")
                .summary(&summary)
                .body(&body)
                .icon("dialog-warning")
                .show();
            if let Err(error) = shown {
                warn!(%error, "no desktop notification could be shown");
            }
        });
    }
}

/// What a failed pass is worth saying: refused credentials and a repository under another key
/// at once, any other failure once the storage has failed for `after`.
fn cause_of(error: &SyncError, failing: Duration, after: Duration) -> Option<Cause> {
    match error {
        SyncError::Store(StoreError::Unauthorized { .. } | StoreError::Forbidden { .. }) => {
            Some(Cause::CredentialsRefused)
        }
        SyncError::OtherRepository { .. } => Some(Cause::WrongKey),
        _ if failing >= after => Some(Cause::StorageFailing),
        _ => None,
    }
}

/// Notification servers read the body as markup: what comes from errors is shown as text.
fn markup_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_said_at_once_and_other_failures_after_a_while() {
        let minute = Duration::from_secs(60);
        let refused = SyncError::Store(StoreError::Unauthorized {
            backend: "S3",
            detail: "InvalidAccessKeyId".into(),
            credentials: "the access key …WXYZ".into(),
        });
        assert_eq!(
            cause_of(&refused, Duration::ZERO, minute),
            Some(Cause::CredentialsRefused)
        );
        let unreachable = SyncError::Store(StoreError::Transient {
            backend: "S3",
            detail: "connection refused".into(),
        });
        assert_eq!(
            cause_of(&unreachable, Duration::from_secs(59), minute),
            None
        );
        assert_eq!(
            cause_of(&unreachable, minute, minute),
            Some(Cause::StorageFailing)
        );
    }

    #[test]
    fn error_text_is_not_read_as_markup() {
        assert_eq!(
            markup_escaped("s3://<bucket> & <b>x</b>"),
            "s3://&lt;bucket&gt; &amp; &lt;b&gt;x&lt;/b&gt;"
        );
    }
}
