//! Watching a folder repository (the embedded default, or one Syncthing or NFS shares) so
//! devices on it see each other's segments at once, with no relay.

use std::path::Path;

use ferry_store::url::StoreUrl;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::warn;

use crate::device::{self, Device};
use crate::error::Failure;

/// A watched repository folder: the watcher, kept alive, and its news.
pub(super) type Watched = (notify::RecommendedWatcher, mpsc::Receiver<()>);

/// Watches `device`'s repository when it is a folder; `None` for other storage, or a folder
/// that cannot be watched (said, and polled as any storage).
pub(super) fn repository(device: &Device) -> Result<Option<Watched>, Failure> {
    let store = device
        .config
        .settings
        .store
        .as_deref()
        .map(device::parse_store);
    let Some(Ok(StoreUrl::Folder(path))) = store else {
        return Ok(None);
    };
    let tag = device.engine.status()?.tag.to_string();
    match folder(&path, device.engine.root(), tag) {
        Ok(watched) => Ok(Some(watched)),
        Err(error) => {
            warn!(%error, "the repository folder cannot be watched: polling");
            Ok(None)
        }
    }
}

/// Watches the folder `path` for new heads of devices other than `own_tag` (and candidates for
/// a new key) in the generation whose folder is `root`; each burst of them sends one `()` (the
/// channel holds one, so a burst is one fetch).
fn folder(path: &Path, root: &str, own_tag: String) -> notify::Result<Watched> {
    let (tx, rx) = mpsc::channel(1);
    let heads = format!("/{root}{}", ferry_protocol::names::HEAD_PREFIX);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)) {
            return;
        }
        let foreign_head = event.paths.iter().any(|path| {
            let path = path.to_string_lossy();
            path.contains(&heads) && !path.contains(&own_tag)
        });
        if foreign_head {
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(path, RecursiveMode::Recursive)?;
    Ok((watcher, rx))
}
