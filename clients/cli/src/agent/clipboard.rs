//! The agent and the desktop clipboard: copies seen become clips; the newest clip from
//! another device is placed, and so is the clip `ferry pick` chose.

use std::sync::{Arc, Mutex};

use ferry_clipboard::{Clip, Observed, WatchConfig, Watcher, Writer};
use ferry_core::{Body, ClipContent, DataKind};
use ferry_sync::Refusal;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Agent, ClipboardParts};
use crate::clipboard;
use crate::device::Device;
use crate::error::Failure;
use crate::output::Output;

impl Agent {
    pub(super) fn observed(&mut self, observed: Observed) {
        let clip = match observed {
            Observed::Clip(clip) => clip,
            Observed::Secret => return self.skipped(Refusal::Secret),
            // The clipboard stopped reading at the limit: the size is not known.
            Observed::TooLarge { .. } => {
                let max = self.device.config.settings.max_bytes;
                return self.skipped(Refusal::TooLarge { bytes: None, max });
            }
        };
        if [&self.placed, &self.recorded]
            .into_iter()
            .flatten()
            .any(|known| known.same_content(&clip))
        {
            return;
        }
        if !self.device.config.settings.watch_clipboard {
            return;
        }
        if self.paused.is_some() {
            return self.skipped(Refusal::Paused);
        }
        match self.device.engine.copy(clipboard::content(&clip)) {
            Ok(Some(op)) => {
                debug!(counter = op.counter, "recorded a copy");
                self.recorded = Some(clip);
                self.placed = None;
                self.upload_soon();
            }
            Ok(None) => info!("a copy was not recorded (`ferry log --kind filter` says why)"),
            Err(error) => warn!(%error, "a copy could not be recorded"),
        }
    }

    /// A copy not recorded: said in the agent's log and in the transfer log, never quoting it.
    fn skipped(&mut self, refusal: Refusal) {
        info!("a copy was not recorded: {refusal}");
        if let Err(error) = self.device.engine.skipped(&refusal) {
            warn!(%error, "the transfer log could not say so");
        }
    }

    /// Places the newest clip on this clipboard when another device copied it last.
    pub(super) async fn apply_newest(&mut self) {
        if !self.device.config.settings.apply_remote {
            return;
        }
        let Some(writer) = self.writer.clone() else {
            return;
        };
        let me = self.device.engine.device();
        let (id, content) = {
            let state = self.device.engine.state_for(DataKind::Clips);
            let Some(newest) = state.newest() else { return };
            if newest.last_used.device == me || self.applied == Some(newest.id) {
                return;
            }
            (newest.id, newest.content.clone())
        };
        // An image not here yet comes in steps, at the traffic limit; it is placed when whole
        // (if it is still the newest).
        if let ClipContent::Image(image) = &content
            && let Body::Blob { id: blob, .. } = image.body
            && !self.device.engine.holds_blob(blob).unwrap_or(false)
        {
            self.device.engine.want_blob(blob);
            self.large_soon();
            return;
        }
        let clip = match clipboard::clip(&mut self.device, content).await {
            Ok(Some(clip)) => clip,
            Ok(None) => return,
            Err(error) => {
                warn!(%error, "the newest image could not be fetched");
                return;
            }
        };
        // Only now: an image not fetched yet (storage out of reach) is tried again with the
        // next fetch, or when it arrives from a nearby device.
        self.applied = Some(id);
        let _ = std::fs::write(self.device.home.applied_file(), id.to_string());
        match self.place(writer, clip).await {
            Ok(()) => info!(clip = %id, "placed the newest clip from another device"),
            Err(error) => warn!(%error, "the clip could not be placed on the clipboard"),
        }
    }

    /// Places clip `id` (a prefix) that `ferry pick` chose on this clipboard.
    pub(super) async fn place_chosen(&mut self, id: &str) -> Result<(), Failure> {
        let writer = self.writer.clone().ok_or_else(|| {
            Failure::new(
                "the agent has no clipboard (it started without DISPLAY or WAYLAND_DISPLAY): \
                 use `ferry pick --print`",
            )
        })?;
        let clip = clipboard::chosen(&mut self.device, id).await?;
        self.place(writer, clip)
            .await
            .map_err(|error| Failure::new(format!("the clip could not be placed: {error}")))
    }

    /// Places what `ferry copy` recorded on this clipboard too, or says why it could not.
    pub(super) async fn place_copied(
        &mut self,
        clip: Result<Option<Clip>, Failure>,
        out: &mut Output,
    ) {
        let placed = match (clip, self.writer.clone()) {
            (Ok(None), _) => return,
            (Err(failure), _) => Err(failure.message),
            (Ok(Some(_)), None) => Err("the clip could not be placed on the clipboard: the \
                                        agent has no clipboard (it started without DISPLAY or \
                                        WAYLAND_DISPLAY; `ferry doctor` says more)"
                .to_owned()),
            (Ok(Some(clip)), Some(writer)) => self
                .place(writer, clip)
                .await
                .map_err(|why| format!("the clip could not be placed on the clipboard: {why}")),
        };
        if let Err(why) = placed {
            out.note(format!("warning: recorded; {why}"));
        }
    }

    /// Places `clip`, which the watcher then does not record again.
    async fn place(&mut self, writer: Arc<Mutex<Writer>>, clip: Clip) -> Result<(), String> {
        self.placed = Some(clip.clone());
        tokio::task::spawn_blocking(move || {
            writer
                .lock()
                .map_err(|_| "the clipboard writer failed earlier".to_owned())?
                .set(&clip)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| "the clipboard writer stopped".to_owned())?
    }
}

/// Starts the clipboard watcher and writer; without a clipboard the agent syncs only.
pub(super) fn start_clipboard(device: &Device) -> ClipboardParts {
    let writer = match Writer::open() {
        Ok(writer) => Arc::new(Mutex::new(writer)),
        Err(error) => {
            warn!("{error}");
            return (None, None, None);
        }
    };
    let (tx, rx) = mpsc::channel(16);
    let config = WatchConfig {
        max_bytes: device.config.settings.max_bytes,
        ..WatchConfig::default()
    };
    let on_change = move |observed| tx.blocking_send(observed).is_ok();
    let started = if device.config.settings.poll_clipboard {
        Watcher::poll(config, on_change)
    } else {
        Watcher::start(config, on_change)
    };
    match started {
        Ok(watcher) => {
            info!(mode = ?watcher.mode(), source = %watcher.source(), "watching the clipboard");
            (Some(rx), Some(watcher), Some(writer))
        }
        Err(error) => {
            warn!("{error}");
            (None, None, Some(writer))
        }
    }
}
