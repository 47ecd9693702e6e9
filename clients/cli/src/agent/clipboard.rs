//! The agent and the desktop clipboard: copies seen become clips; the newest clip from
//! another device is placed.

use std::sync::{Arc, Mutex};

use ferry_clipboard::{Clip, Observed, WatchConfig, Watcher, Writer};
use ferry_core::{Body, ClipContent, DataKind};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Agent, ClipboardParts};
use crate::device::Device;

impl Agent {
    pub(super) fn observed(&mut self, observed: Observed) {
        let clip = match observed {
            Observed::Clip(clip) => clip,
            Observed::Secret => {
                info!("a password manager marked the copied content as secret: not recorded");
                return;
            }
            Observed::TooLarge { bytes } => {
                info!(
                    bytes,
                    "the copied content is over clipboard.max_bytes: not recorded"
                );
                return;
            }
        };
        if [&self.placed, &self.recorded]
            .into_iter()
            .flatten()
            .any(|known| same_clip(known, &clip))
        {
            return;
        }
        if !self.device.config.settings.watch_clipboard {
            return;
        }
        if self.paused.is_some() {
            info!("sync is paused: a copy was not recorded");
            return;
        }
        let content = match &clip {
            Clip::Text(text) => ClipContent::Text(text.clone()),
            Clip::Png(png) => ClipContent::image("image/png", Body::Inline(png.clone())),
        };
        match self.device.engine.copy(content) {
            Ok(Some(op)) => {
                debug!(counter = op.counter, "recorded a copy");
                self.recorded = Some(clip);
                self.placed = None;
                self.upload_soon();
            }
            Ok(None) => info!("a copy was filtered out (see `ferry log --kind filter`)"),
            Err(error) => warn!(%error, "a copy could not be recorded"),
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
        let clip = match content {
            ClipContent::Text(text) => Clip::Text(text),
            ClipContent::RichText(rich) => Clip::Text(rich.plain),
            ClipContent::Image(image) if image.mime == "image/png" => match image.body {
                Body::Inline(bytes) => Clip::Png(bytes),
                Body::Blob { id, .. } => match self.device.engine.blob(id).await {
                    Ok(bytes) => Clip::Png(bytes),
                    Err(error) => {
                        warn!(%error, "the newest image could not be fetched");
                        return;
                    }
                },
            },
            _ => return,
        };
        // Only now: an image not fetched yet (storage out of reach) is tried again with the
        // next fetch, or when it arrives from a nearby device.
        self.applied = Some(id);
        let _ = std::fs::write(self.device.home.applied_file(), id.to_string());
        self.placed = Some(clip.clone());
        let placed = tokio::task::spawn_blocking(move || {
            writer
                .lock()
                .map_err(|_| "the clipboard writer failed earlier".to_owned())?
                .set(&clip)
                .map_err(|e| e.to_string())
        })
        .await;
        match placed {
            Ok(Ok(())) => info!(clip = %id, "placed the newest clip from another device"),
            Ok(Err(error)) => warn!(%error, "the clip could not be placed on the clipboard"),
            Err(error) => warn!(%error, "the clipboard writer stopped"),
        }
    }
}

/// Whether two clips hold the same content. Images compare by pixels: the clipboard writer
/// re-encodes the PNG it serves, so the watcher reads other bytes back than were placed.
pub(super) fn same_clip(a: &Clip, b: &Clip) -> bool {
    match (a, b) {
        (Clip::Png(x), Clip::Png(y)) if x != y => {
            match (
                ferry_clipboard::decode_png(x),
                ferry_clipboard::decode_png(y),
            ) {
                (Ok(x), Ok(y)) => x == y,
                _ => false,
            }
        }
        _ => a == b,
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
            info!(mode = ?watcher.mode(), "watching the clipboard");
            (Some(rx), Some(watcher), Some(writer))
        }
        Err(error) => {
            warn!("{error}");
            (None, None, Some(writer))
        }
    }
}
