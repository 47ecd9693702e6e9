//! `ferry-clipboard` is the agent's hand on the desktop clipboard: it watches for copies, reads
//! what was copied (text, or an image as PNG), and places clips from other devices.
//!
//! ```text
//! Watcher::start(config, on_change)
//!   Linux and the BSDs (free_desktop/):
//!     Wayland with data-control (ext_data_control_v1, else zwlr_data_control_v1): a thread
//!                    sleeps until the compositor announces a new selection, then reads the
//!                    best of its types through a pipe
//!     X11 with XFixes: a thread sleeps until the clipboard's owner changes, then reads TARGETS
//!                    and the best target itself (INCR transfers included)
//!     otherwise:     a thread polls through arboard every `poll_interval` (250 ms unless set)
//!   Windows (windows.rs): a thread with a message-only window sleeps until the clipboard
//!                    format listener (AddClipboardFormatListener) posts an update
//!   macOS (macos.rs): a thread reads the pasteboard's change count (an integer) every
//!                    `poll_interval`, and the content only when it changed
//! Watcher::source() / probe()  which of these, and why (what `ferry doctor` says)
//!   ─▶ Observed::Clip(text | PNG) | Observed::Secret | Observed::TooLarge
//! serve(clip)        places a clip and serves it until something else is copied
//! Writer::set(clip)  places a clip with arboard (data-control on Wayland, X11 otherwise, the
//!                    system clipboard on Windows and macOS), which on X11 and Wayland keeps
//!                    serving it (clipboards live in the owner's process) until something
//!                    else is copied
//! ```
//!
//! Content that a password manager marks as secret is reported as [`Observed::Secret`], never
//! read: the `x-kde-passwordManagerHint` target with the value `secret` (X11, Wayland); the
//! `ExcludeClipboardContentFromMonitorProcessing` format, or `CanIncludeInClipboardHistory` or
//! `CanUploadToCloudClipboard` set to 0 (Windows); the `org.nspasteboard.ConcealedType` or
//! `TransientType` types (macOS). Content over [`WatchConfig::max_bytes`] is reported by size
//! only.
//!
//! What it does not do: decide what to record or apply (echo suppression, filters): that is
//! the agent's.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

#[cfg(all(unix, not(target_os = "macos")))]
mod free_desktop;
mod image;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(windows)]
mod windows;

#[cfg(all(unix, not(target_os = "macos")))]
use free_desktop as platform;
#[cfg(target_os = "macos")]
use macos as platform;
#[cfg(windows)]
use windows as platform;

use std::borrow::Cow;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tracing::debug;

pub use image::{Rgba, decode_png, encode_png};

/// What a clip on the clipboard holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Clip {
    /// Text.
    Text(String),
    /// An image, as PNG bytes.
    Png(Vec<u8>),
}

impl Clip {
    /// Whether two clips hold the same content. Images compare by pixels: a clipboard writer
    /// re-encodes the PNG it serves, so other bytes are read back than were placed.
    pub fn same_content(&self, other: &Clip) -> bool {
        match (self, other) {
            (Clip::Png(x), Clip::Png(y)) if x != y => match (decode_png(x), decode_png(y)) {
                (Ok(x), Ok(y)) => x == y,
                _ => false,
            },
            _ => self == other,
        }
    }
}

/// What the watcher saw after a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A clip to record.
    Clip(Clip),
    /// A password manager marked the content as secret: it was not read.
    Secret,
    /// The content is larger than the limit: it was not kept.
    TooLarge {
        /// Bytes seen before reading stopped.
        bytes: u64,
    },
}

/// How the watcher reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// Content larger than this is reported by size only.
    pub max_bytes: u64,
    /// How often to look when the platform gives no change events.
    pub poll_interval: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            max_bytes: 16 * 1024 * 1024,
            poll_interval: Duration::from_millis(250),
        }
    }
}

/// How the watcher learns of copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Clipboard events (Wayland data-control, X11 XFixes, Windows' format listener): no work
    /// between copies.
    Events,
    /// Reading the clipboard at an interval.
    Polling,
}

/// How the watcher learns of copies, and why: what `ferry doctor` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Wayland's standard data-control protocol, `ext_data_control_v1`.
    ExtDataControl,
    /// wlroots' data-control protocol, `zwlr_data_control_v1`.
    WlrDataControl,
    /// X11 selection events (XFixes); with the reason when a Wayland compositor was there but
    /// offered no data-control (GNOME), so the events come through XWayland.
    XFixes {
        /// Why Wayland's own events are not used.
        instead_of_wayland: Option<String>,
    },
    /// Windows' clipboard format listener (`AddClipboardFormatListener`).
    FormatListener,
    /// macOS's pasteboard change count, read at an interval (macOS sends no clipboard events).
    ChangeCount {
        /// The interval.
        every: Duration,
    },
    /// Reading the clipboard at an interval, and why no events are used.
    Polling {
        /// The interval.
        every: Duration,
        /// What offered no events.
        why: String,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::ExtDataControl => {
                f.write_str("Wayland data-control events (ext_data_control_v1)")
            }
            Source::WlrDataControl => {
                f.write_str("Wayland data-control events (zwlr_data_control_v1)")
            }
            Source::XFixes {
                instead_of_wayland: None,
            } => f.write_str("X11 selection events (XFixes)"),
            Source::XFixes {
                instead_of_wayland: Some(why),
            } => {
                write!(f, "X11 selection events through XWayland ({why})")
            }
            Source::FormatListener => {
                f.write_str("Windows clipboard events (AddClipboardFormatListener)")
            }
            Source::ChangeCount { every } => write!(
                f,
                "the pasteboard's change count, read every {every:?} (macOS sends no clipboard \
                 events; the content is read only when it changed)",
            ),
            Source::Polling { every, why } => write!(f, "polling every {every:?} ({why})"),
        }
    }
}

/// Why the clipboard cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClipboardError {
    /// No display to connect to.
    #[error(
        "no clipboard is available ({0}); the agent syncs without one (set WAYLAND_DISPLAY or \
         DISPLAY to use the desktop's clipboard)"
    )]
    NoDisplay(String),
    /// The X server lacks the XFixes extension.
    #[error("the X server offers no clipboard events ({0})")]
    NoEvents(String),
    /// An X request failed.
    #[error("the X server failed a clipboard request: {0}")]
    X11(String),
    /// A Wayland request failed.
    #[error("the Wayland compositor failed a clipboard request: {0}")]
    Wayland(String),
    /// The clipboard's owner did not answer.
    #[error("the program that owns the clipboard did not answer within {0:?}")]
    Timeout(Duration),
    /// arboard failed.
    #[error("the clipboard failed: {0}")]
    Arboard(String),
    /// An image is not a PNG this crate can read.
    #[error("the image could not be converted: {0}")]
    BadImage(String),
}

/// A running watcher. The thread ends when `on_change` returns `false` after a copy, or when
/// the display goes away.
pub struct Watcher {
    source: Source,
    thread: JoinHandle<()>,
}

impl Watcher {
    /// Starts watching the desktop's clipboard and calls `on_change` (on the watcher's own
    /// thread) after each copy: on Linux and the BSDs the Wayland compositor's of
    /// `WAYLAND_DISPLAY` when it offers data-control, else the X server's of `DISPLAY`
    /// (XWayland included), else by polling; on Windows the clipboard format listener; on
    /// macOS the pasteboard's change count.
    pub fn start(
        config: WatchConfig,
        on_change: impl FnMut(Observed) -> bool + Send + 'static,
    ) -> Result<Watcher, ClipboardError> {
        Watcher::start_on(None, config, on_change)
    }

    /// [`Watcher::start`] on the X display `display`; with `None`, on the desktop of the
    /// environment (`WAYLAND_DISPLAY`, then `DISPLAY`). Windows and macOS have one clipboard
    /// and no display names: there `display` is ignored.
    pub fn start_on(
        display: Option<&str>,
        config: WatchConfig,
        on_change: impl FnMut(Observed) -> bool + Send + 'static,
    ) -> Result<Watcher, ClipboardError> {
        platform::start(display, config, on_change)
    }

    /// How [`Watcher::start`] would learn of copies here, without watching: what `ferry
    /// doctor` says.
    pub fn probe() -> Result<Source, ClipboardError> {
        platform::probe()
    }

    /// Starts watching by reading the clipboard every `config.poll_interval`.
    pub fn poll(
        config: WatchConfig,
        mut on_change: impl FnMut(Observed) -> bool + Send + 'static,
    ) -> Result<Watcher, ClipboardError> {
        let mut clipboard = arboard::Clipboard::new().map_err(no_display)?;
        let every = config.poll_interval;
        let thread = spawn("ferry-clipboard-poll", move || {
            let mut last: Option<Observed> = read_arboard(&mut clipboard, &config);
            loop {
                thread::sleep(config.poll_interval);
                let now = read_arboard(&mut clipboard, &config);
                if now.is_some() && now != last {
                    last = now.clone();
                    if let Some(observed) = now
                        && !on_change(observed)
                    {
                        return;
                    }
                }
            }
        })?;
        Ok(Watcher {
            source: Source::Polling {
                every,
                why: "asked for with clipboard.poll".into(),
            },
            thread,
        })
    }

    /// How it learns of copies.
    pub fn mode(&self) -> Mode {
        match self.source {
            Source::Polling { .. } | Source::ChangeCount { .. } => Mode::Polling,
            _ => Mode::Events,
        }
    }

    /// Which events it listens to, or why it polls.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Whether the watcher thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

fn spawn(
    name: &str,
    run: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, ClipboardError> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(run)
        .map_err(|e| ClipboardError::Arboard(format!("could not start a thread: {e}")))
}

fn no_display(error: arboard::Error) -> ClipboardError {
    match error {
        arboard::Error::ClipboardNotSupported => {
            ClipboardError::NoDisplay("this platform has no clipboard arboard supports".into())
        }
        other => ClipboardError::NoDisplay(other.to_string()),
    }
}

fn read_arboard(clipboard: &mut arboard::Clipboard, config: &WatchConfig) -> Option<Observed> {
    if let Ok(text) = clipboard.get_text() {
        return Some(if text.len() as u64 > config.max_bytes {
            Observed::TooLarge {
                bytes: text.len() as u64,
            }
        } else {
            Observed::Clip(Clip::Text(text))
        });
    }
    let image = clipboard.get_image().ok()?;
    if image.bytes.len() as u64 > config.max_bytes {
        return Some(Observed::TooLarge {
            bytes: image.bytes.len() as u64,
        });
    }
    let rgba = Rgba {
        width: u32::try_from(image.width).ok()?,
        height: u32::try_from(image.height).ok()?,
        pixels: image.bytes.into_owned(),
    };
    match encode_png(&rgba) {
        Ok(png) => Some(Observed::Clip(Clip::Png(png))),
        Err(error) => {
            debug!(%error, "could not encode the clipboard image");
            None
        }
    }
}

/// Places `clip`, calls `placed`, and serves it until something else is copied or the display
/// goes away: for a process that places one clip and then has nothing else to do (on X11 and
/// Wayland a clipboard lives in its owner's process). Windows and macOS keep what was placed
/// after its program ends: there it returns once the clip is placed.
pub fn serve(clip: &Clip, placed: impl FnOnce()) -> Result<(), ClipboardError> {
    if cfg!(any(windows, target_os = "macos")) {
        Writer::open()?.set(clip)?;
        placed();
        return Ok(());
    }
    let (replaced, wait) = std::sync::mpsc::channel();
    let ours = clip.clone();
    // Watching first: the copy that replaces this clip cannot come unseen between the two.
    let _watcher = Watcher::start(WatchConfig::default(), move |observed| {
        let still_ours = matches!(&observed, Observed::Clip(now) if now.same_content(&ours));
        if !still_ours {
            let _ = replaced.send(());
        }
        still_ours
    })?;
    let mut writer = Writer::open()?;
    writer.set(clip)?;
    placed();
    // Also returns when the watcher ends with the display.
    let _ = wait.recv();
    Ok(())
}

/// Places clips on the clipboard and keeps serving the last one until something else is
/// copied. Keep one alive for as long as clips should stay available.
pub struct Writer {
    clipboard: arboard::Clipboard,
}

impl Writer {
    /// Opens the clipboard of `DISPLAY`.
    pub fn open() -> Result<Writer, ClipboardError> {
        Ok(Writer {
            clipboard: arboard::Clipboard::new().map_err(no_display)?,
        })
    }

    /// Places `clip`. Returns at once: arboard serves it from its own thread.
    pub fn set(&mut self, clip: &Clip) -> Result<(), ClipboardError> {
        let result = match clip {
            Clip::Text(text) => self.clipboard.set_text(text.as_str()),
            Clip::Png(png) => {
                let image = decode_png(png)?;
                self.clipboard.set_image(arboard::ImageData {
                    width: image.width as usize,
                    height: image.height as usize,
                    bytes: Cow::Owned(image.pixels),
                })
            }
        };
        result.map_err(|e| ClipboardError::Arboard(e.to_string()))
    }
}
