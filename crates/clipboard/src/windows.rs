//! Windows: the clipboard format listener. A message-only window registered with
//! `AddClipboardFormatListener` receives `WM_CLIPBOARDUPDATE` after each copy, so the watcher's
//! thread sleeps between copies. Before reading, it looks for the formats through which
//! password managers and other programs keep content out of clipboard tools:
//! `ExcludeClipboardContentFromMonitorProcessing` (and the older `Clipboard Viewer Ignore`) by
//! their presence, `CanIncludeInClipboardHistory` and `CanUploadToCloudClipboard` by a value of 0.

use clipboard_win::formats::{CF_DIB, CF_DIBV5, CF_UNICODETEXT};
use clipboard_win::{Monitor, raw};
use tracing::warn;

use crate::{ClipboardError, Observed, Source, WatchConfig, Watcher, read_arboard, spawn};

/// Formats whose presence alone keeps the content out.
const EXCLUDE: [&str; 2] = [
    "ExcludeClipboardContentFromMonitorProcessing",
    "Clipboard Viewer Ignore",
];

/// Formats holding a 32-bit flag: 0 keeps the content out of history and of cloud sync.
const ALLOW_FLAGS: [&str; 2] = ["CanIncludeInClipboardHistory", "CanUploadToCloudClipboard"];

/// Starts the listener's thread. `_display` names an X display elsewhere; Windows has one
/// clipboard.
pub(crate) fn start(
    _display: Option<&str>,
    config: WatchConfig,
    mut on_change: impl FnMut(Observed) -> bool + Send + 'static,
) -> Result<Watcher, ClipboardError> {
    // The listener's window belongs to the thread that made it: made there, and whether that
    // worked is sent back before `start` returns.
    let (ready, started) = std::sync::mpsc::sync_channel(1);
    let thread = spawn("ferry-clipboard-watch", move || {
        let mut monitor = match listen() {
            Ok(monitor) => {
                let _ = ready.send(Ok(()));
                monitor
            }
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let mut clipboard = match arboard::Clipboard::new() {
            Ok(clipboard) => clipboard,
            Err(error) => {
                warn!(%error, "could not open the clipboard: no longer watching it");
                return;
            }
        };
        loop {
            match monitor.recv() {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    warn!(%error, "the clipboard listener failed: no longer watching");
                    return;
                }
            }
            if let Some(observed) = read(&mut clipboard, &config)
                && !on_change(observed)
            {
                return;
            }
        }
    })?;
    match started.recv() {
        Ok(Ok(())) => Ok(Watcher {
            source: Source::FormatListener,
            thread,
        }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ClipboardError::NoEvents(
            "the clipboard listener's thread ended before it listened".into(),
        )),
    }
}

/// Whether the format listener can be registered here.
pub(crate) fn probe() -> Result<Source, ClipboardError> {
    listen().map(|_| Source::FormatListener)
}

fn listen() -> Result<Monitor, ClipboardError> {
    Monitor::new().map_err(|error| {
        ClipboardError::NoEvents(format!("the clipboard format listener failed: {error}"))
    })
}

/// What the copy that woke the listener holds.
fn read(clipboard: &mut arboard::Clipboard, config: &WatchConfig) -> Option<Observed> {
    match inspect(config) {
        Ok(Some(observed)) => return Some(observed),
        Ok(None) => {}
        // Unread rather than read without knowing whether it is kept out.
        Err(error) => {
            warn!(%error, "could not open the clipboard to look at its formats: copy not recorded");
            return None;
        }
    }
    read_arboard(clipboard, config)
}

/// Looks at the formats without reading the content: `Secret` when it is kept out,
/// `TooLarge` when it is over the limit, `None` when it may be read.
fn inspect(config: &WatchConfig) -> Result<Option<Observed>, clipboard_win::ErrorCode> {
    let format = |name: &str| raw::register_format(name).map(|id| id.get());
    if EXCLUDE
        .iter()
        .filter_map(|name| format(name))
        .any(raw::is_format_avail)
    {
        return Ok(Some(Observed::Secret));
    }
    // Reading a format needs the clipboard open, and another clipboard tool may have it open
    // as well just after a copy: tried for up to a second (every 5 ms). Closed when `_open` goes.
    let _open = clipboard_win::Clipboard::new_attempts(200)?;
    for id in ALLOW_FLAGS.iter().filter_map(|name| format(name)) {
        let mut flag = [0xffu8; 4];
        if raw::is_format_avail(id) && raw::get(id, &mut flag)? == 4 && flag == [0; 4] {
            return Ok(Some(Observed::Secret));
        }
    }
    // Text is read first, as elsewhere; it is UTF-16 here (at most 1.5 times as many bytes in
    // UTF-8), so a size over twice the limit is over it whatever the text. An image is
    // measured as its uncompressed pixels.
    let size = |id| raw::size(id).map_or(0, |size| size.get() as u64);
    let too_large = if raw::is_format_avail(CF_UNICODETEXT) {
        Some(size(CF_UNICODETEXT)).filter(|&bytes| bytes > config.max_bytes.saturating_mul(2))
    } else {
        [CF_DIBV5, CF_DIB]
            .into_iter()
            .filter(|&id| raw::is_format_avail(id))
            .map(size)
            .find(|&bytes| bytes > config.max_bytes)
    };
    Ok(too_large.map(|bytes| Observed::TooLarge { bytes }))
}
