//! macOS: the pasteboard's change count. macOS sends no event when something is copied, but
//! `NSPasteboard.changeCount` is an integer the pasteboard server raises at each copy: the
//! watcher reads it every `poll_interval` and reads the content only when it moved. Content
//! that password managers mark with the `org.nspasteboard.ConcealedType` or `TransientType`
//! types (the nspasteboard.org conventions) is reported as secret, never read.

use std::thread;

use objc2_app_kit::NSPasteboard;
use tracing::warn;

use crate::{ClipboardError, Observed, Source, WatchConfig, Watcher, read_arboard, spawn};

/// Types whose presence keeps the content out.
const HIDDEN: [&str; 2] = [
    "org.nspasteboard.ConcealedType",
    "org.nspasteboard.TransientType",
];

/// Starts the watcher's thread. `_display` names an X display elsewhere; macOS has one
/// pasteboard.
pub(crate) fn start(
    _display: Option<&str>,
    config: WatchConfig,
    mut on_change: impl FnMut(Observed) -> bool + Send + 'static,
) -> Result<Watcher, ClipboardError> {
    let every = config.poll_interval;
    let thread = spawn("ferry-clipboard-watch", move || {
        let mut clipboard = match arboard::Clipboard::new() {
            Ok(clipboard) => clipboard,
            Err(error) => {
                warn!(%error, "could not open the pasteboard: no longer watching it");
                return;
            }
        };
        let pasteboard = NSPasteboard::generalPasteboard();
        let mut seen = pasteboard.changeCount();
        loop {
            thread::sleep(config.poll_interval);
            let count = pasteboard.changeCount();
            if count == seen {
                continue;
            }
            seen = count;
            let observed = match concealed(&pasteboard) {
                true => Some(Observed::Secret),
                false => read_arboard(&mut clipboard, &config),
            };
            if let Some(observed) = observed
                && !on_change(observed)
            {
                return;
            }
        }
    })?;
    Ok(Watcher {
        source: Source::ChangeCount { every },
        thread,
    })
}

/// The change count is always there to read.
pub(crate) fn probe() -> Result<Source, ClipboardError> {
    Ok(Source::ChangeCount {
        every: WatchConfig::default().poll_interval,
    })
}

/// Whether the current content is marked as not to be kept.
fn concealed(pasteboard: &NSPasteboard) -> bool {
    pasteboard.types().is_some_and(|types| {
        types
            .iter()
            .any(|kind| HIDDEN.contains(&kind.to_string().as_str()))
    })
}
