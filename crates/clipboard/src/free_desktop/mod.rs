//! Linux and the BSDs: the Wayland compositor's data-control events where it offers them, else
//! the X server's selection events (XWayland included, as on GNOME), else polling.

mod wayland;
mod x11;

use tracing::{debug, warn};

use crate::{ClipboardError, Observed, Source, WatchConfig, Watcher, spawn};

/// Starts the watcher of the Wayland compositor of `WAYLAND_DISPLAY` when it offers
/// data-control, else of the X server of `display` (or `DISPLAY`), else a poller.
pub(crate) fn start(
    display: Option<&str>,
    config: WatchConfig,
    on_change: impl FnMut(Observed) -> bool + Send + 'static,
) -> Result<Watcher, ClipboardError> {
    match Connected::to(display, config)? {
        Connected::Wayland(watcher) => Ok(Watcher {
            source: watcher.source(),
            thread: spawn("ferry-clipboard-watch", move || watcher.run(on_change))?,
        }),
        Connected::X11(watcher, instead_of_wayland) => Ok(Watcher {
            source: Source::XFixes { instead_of_wayland },
            thread: spawn("ferry-clipboard-watch", move || watcher.run(on_change))?,
        }),
        Connected::Neither(why) => {
            warn!(%why, "no clipboard events here: polling the clipboard instead");
            let every = config.poll_interval;
            let mut watcher = Watcher::poll(config, on_change)?;
            watcher.source = Source::Polling { every, why };
            Ok(watcher)
        }
    }
}

/// Which events [`start`] would listen to here, without listening.
pub(crate) fn probe() -> Result<Source, ClipboardError> {
    Ok(match Connected::to(None, WatchConfig::default())? {
        Connected::Wayland(watcher) => watcher.source(),
        Connected::X11(_, instead_of_wayland) => Source::XFixes { instead_of_wayland },
        Connected::Neither(why) => Source::Polling {
            every: WatchConfig::default().poll_interval,
            why,
        },
    })
}

/// A connection to the desktop that gives clipboard events, or why none does.
enum Connected {
    Wayland(wayland::WaylandWatcher),
    /// With why Wayland's own events are not used, where a compositor was there.
    X11(Box<x11::X11Watcher>, Option<String>),
    Neither(String),
}

impl Connected {
    /// The compositor of `WAYLAND_DISPLAY` when it offers data-control, else the X server of
    /// `display` (or `DISPLAY`: XWayland included).
    fn to(display: Option<&str>, config: WatchConfig) -> Result<Connected, ClipboardError> {
        let mut instead_of_wayland = None;
        if display.is_none() && std::env::var_os("WAYLAND_DISPLAY").is_some() {
            match wayland::WaylandWatcher::connect(config) {
                Ok(watcher) => return Ok(Connected::Wayland(watcher)),
                // GNOME offers no data-control: its clipboard is reachable through XWayland.
                Err(error) => {
                    debug!(%error, "no Wayland clipboard events: trying X11");
                    instead_of_wayland = Some(match error {
                        ClipboardError::NoEvents(why) | ClipboardError::NoDisplay(why) => why,
                        other => other.to_string(),
                    });
                }
            }
        }
        match x11::X11Watcher::connect(display, config) {
            Ok(watcher) => Ok(Connected::X11(Box::new(watcher), instead_of_wayland)),
            Err(ClipboardError::NoEvents(detail)) => {
                Ok(Connected::Neither(match instead_of_wayland {
                    Some(wayland) => format!("{wayland}; and {detail}"),
                    None => detail,
                }))
            }
            Err(error) => Err(error),
        }
    }
}
