//! Watching a folder repository (the embedded default, or one Syncthing or NFS shares) so
//! devices on it see each other's segments at once, with no relay.

use std::path::Path;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Watches `root` for new heads of devices other than `own_tag`; each burst of them sends one
/// `()` (the channel holds one, so a burst is one fetch).
pub(crate) fn folder(
    root: &Path,
    own_tag: String,
) -> notify::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let heads = format!(
        "/{}{}",
        ferry_protocol::names::ROOT,
        ferry_protocol::names::HEAD_PREFIX
    );
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
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok((watcher, rx))
}
