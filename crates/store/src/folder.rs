//! A repository in a plain folder: the embedded default, and the way to use any tool that syncs
//! folders (Syncthing, NFS, a mounted drive).
//!
//! Every write goes to a hidden temporary file beside its target, is flushed to disk, and is then
//! moved into place in one step (rename, or a hard link for write-once objects so an existing
//! object is never replaced), after which the directory itself is flushed. Readers and other
//! tools therefore see a whole object or none, and a crash at any instant leaves at most a
//! temporary file, which listings ignore. Names map to paths one to one (`ferry/v1/log/…` is
//! `<root>/ferry/v1/log/…`); a name with an empty, `.` or `..` part, or a part starting with a
//! dot, is refused so nothing can escape the root or collide with temporary files.
//!
//! Reads open only regular files, without following a link and without blocking on a FIFO, and
//! check the size on the open file before reading it; every call has a timeout, so a hung
//! network mount makes a call fail rather than the device stall. Every call first checks that
//! the folder opened is still there, and not empty once it held something (a drive unmounted
//! from under it leaves an empty mount point that must not be written into); else the storage
//! is unreachable. A write makes the folders it needs below the root, never the root itself.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::store::page;
use crate::{ListPage, ObjectMeta, Store, StoreError};

const BACKEND: &str = "the folder";

/// A store in a local folder.
#[derive(Debug, Clone)]
pub struct FolderStore {
    root: PathBuf,
    /// Whether the folder has held something (when opened, or written since): from then on
    /// an empty folder there is not this one (see [`check_root`]).
    held: Arc<AtomicBool>,
    /// How long one call may take.
    timeout: Duration,
}

/// What to do about a folder that is gone.
const PUT_IT_BACK: &str = "mount it or put it back; what is recorded waits on this device \
                           (to use the folder that is there now instead, restart the agent)";

/// How long one call may take unless [`FolderStore::with_timeout`] says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl FolderStore {
    /// Opens a store in an existing folder.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        match fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => Ok(FolderStore {
                held: Arc::new(AtomicBool::new(holds_anything(&root))),
                root,
                timeout: DEFAULT_TIMEOUT,
            }),
            Ok(_) => Err(StoreError::Misconfigured(format!(
                "{} is a file, not a folder: point the store URL at a folder",
                root.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::Misconfigured(format!(
                    "the folder {} does not exist: create it, or fix the store URL",
                    root.display()
                )))
            }
            Err(e) => Err(io_error(e, &root.display().to_string())),
        }
    }

    /// Opens a store in a folder, creating the folder first if needed.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| io_error(e, &root.display().to_string()))?;
        FolderStore::open(root)
    }

    /// Sets how long one call may take (a folder on a network mount can hang).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        check_name(name)?;
        Ok(self.root.join(name))
    }

    /// The folder opened, as the calls below check it and write into it.
    fn opened(&self) -> Opened {
        Opened {
            root: self.root.clone(),
            held: Arc::clone(&self.held),
        }
    }

    /// Runs `f` on the blocking pool, giving up on it after the timeout.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let task = tokio::task::spawn_blocking(f);
        match tokio::time::timeout(self.timeout, task).await {
            Ok(done) => done.map_err(|e| StoreError::Transient {
                backend: BACKEND,
                detail: format!("worker task failed: {e}"),
            })?,
            Err(_) => Err(StoreError::Transient {
                backend: BACKEND,
                detail: format!(
                    "{} did not answer within {:?}",
                    self.root.display(),
                    self.timeout
                ),
            }),
        }
    }
}

/// The folder a store opened, for a call on the blocking pool.
struct Opened {
    root: PathBuf,
    held: Arc<AtomicBool>,
}

impl Opened {
    /// Checks that it is still there (see [`check_root`]).
    fn check(&self) -> Result<(), StoreError> {
        check_root(&self.root, self.held.load(Ordering::Relaxed))
    }

    /// Writes `bytes` to a new hidden file beside `target` (the object `name`), making the
    /// folders below the root it needs: a root gone meanwhile is unreachable, never made again.
    fn write_temp(&self, target: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        write_temp(&self.root, target, bytes).map_err(|e| match self.check() {
            Err(gone) => gone,
            Ok(()) => io_error(e, name),
        })
    }

    /// Notes that it holds something now: from then on, an empty folder there is not it.
    fn wrote(&self) {
        self.held.store(true, Ordering::Relaxed);
    }
}

/// Whether the folder at `root` holds any entry.
fn holds_anything(root: &Path) -> bool {
    fs::read_dir(root).is_ok_and(|mut entries| entries.next().is_some())
}

/// Checks that the folder opened is still at `root`: there, a folder, and not empty when it has
/// `held` something. A write into a drive's empty mount point, or into a folder made again,
/// would go where no other device looks, and a read there would find nothing. (The folder is
/// known by what it holds, not by its inode: a drive plugged in again, a FAT or network file
/// system remounted, may give the very folder another.)
fn check_root(root: &Path, held: bool) -> Result<(), StoreError> {
    let gone = |reason: &str| StoreError::Unreachable {
        backend: BACKEND,
        endpoint: root.display().to_string(),
        reason: reason.to_owned(),
        fix: PUT_IT_BACK,
    };
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() && (!held || holds_anything(root)) => Ok(()),
        Ok(meta) if meta.is_dir() => Err(gone(
            "it is empty now, where it held the repository: a drive was unmounted from it \
             (leaving its empty mount point), or the folder was replaced",
        )),
        Ok(_) => Err(gone("a file is there now, not the folder")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(gone("it is not there: unmounted, moved or deleted"))
        }
        Err(e) => Err(io_error(e, &root.display().to_string())),
    }
}

/// Refuses names that could leave the root or clash with temporary files.
/// A listing's prefix stays below the root: its folders are names as [`check_name`] takes them
/// (the part after the last `/` is the start of a name, and may be empty).
fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    let folders = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => return Ok(()),
    };
    let last = &prefix[folders.len() + 1..];
    if folders.is_empty()
        || check_name(folders).is_err()
        || last.starts_with('.')
        || last.contains('\\')
    {
        return Err(StoreError::Misconfigured(format!(
            "`{}` is not a valid listing prefix (empty, `.`-led or `..` parts are refused)",
            prefix.escape_debug()
        )));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let bad = name.is_empty()
        || name.contains('\0')
        || name.contains('\\')
        || name
            .split('/')
            .any(|part| part.is_empty() || part.starts_with('.'));
    if bad {
        return Err(StoreError::Misconfigured(format!(
            "`{}` is not a valid object name (empty, `.`-led or `..` parts are refused)",
            name.escape_debug()
        )));
    }
    Ok(())
}

fn io_error(e: io::Error, name: &str) -> StoreError {
    match e.kind() {
        io::ErrorKind::NotFound => StoreError::NotFound { name: name.into() },
        io::ErrorKind::AlreadyExists => StoreError::AlreadyExists { name: name.into() },
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            StoreError::Forbidden {
                backend: BACKEND,
                detail: e.to_string(),
                hint: "check that this user may read and write the folder and that it is not \
                       mounted read-only",
            }
        }
        _ => StoreError::Transient {
            backend: BACKEND,
            detail: e.to_string(),
        },
    }
}

/// Reads the regular file at `path` (the object `name`) if it holds at most `limit` bytes.
fn read_file(path: &Path, name: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
    let not_an_object = |what| StoreError::NotAnObject {
        name: name.to_owned(),
        what,
    };
    let mut file = match open_no_follow(path) {
        Ok(file) => file,
        Err(e) if is_symlink_refusal(&e, path) => return Err(not_an_object("a symbolic link")),
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => return Err(not_an_object("a folder")),
        Err(e) => return Err(io_error(e, name)),
    };
    // Checked on the open file: nothing can be swapped in between.
    let meta = file.metadata().map_err(|e| io_error(e, name))?;
    if !meta.is_file() {
        return Err(not_an_object(describe(&meta.file_type())));
    }
    let too_large = |size| StoreError::TooLarge {
        name: name.to_owned(),
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    (&mut file)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| io_error(e, name))?;
    if out.len() as u64 > limit {
        // It grew while being read.
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

/// Opens `path` for reading without following a final symbolic link and without waiting for a
/// writer when it is a FIFO.
#[cfg(unix)]
fn open_no_follow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> io::Result<File> {
    let kind = fs::symlink_metadata(path)?.file_type();
    if kind.is_symlink() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // Windows opens no folder as a file ("access denied"): say what it is instead.
    if kind.is_dir() {
        return Err(io::Error::from(io::ErrorKind::IsADirectory));
    }
    File::open(path)
}

/// Whether opening `path` failed because it is a symbolic link.
fn is_symlink_refusal(error: &io::Error, path: &Path) -> bool {
    error.kind() != io::ErrorKind::NotFound
        && fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
}

/// What a file that is not a regular file is, for a refusal.
fn describe(kind: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Makes the folders from `root` (which must be there: it is never made again) down to `dir`.
fn make_folders(root: &Path, dir: &Path) -> io::Result<()> {
    let mut at = root.to_path_buf();
    for part in dir
        .strip_prefix(root)
        .map_err(io::Error::other)?
        .components()
    {
        at.push(part);
        match fs::create_dir(&at) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Writes `bytes` to a new hidden file beside `target`, below `root`, and flushes it.
fn write_temp(root: &Path, target: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let dir = target.parent().unwrap_or(root);
    make_folders(root, dir)?;
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(io::Error::other)?;
    let file_name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("object");
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let temp = dir.join(format!(".{file_name}.{hex}.tmp"));
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Flushes a directory entry change to disk. (Windows opens no folder as a file, and NTFS
/// journals the rename itself.)
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[async_trait]
impl Store for FolderStore {
    async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let target = self.path(name)?;
        let name = name.to_owned();
        let opened = self.opened();
        self.blocking(move || {
            opened.check()?;
            let temp = opened.write_temp(&target, &name, &bytes)?;
            // A hard link never replaces an existing file. Where links are not supported,
            // check and rename: devices never write each other's names, so no race remains.
            let placed = match fs::hard_link(&temp, &target) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
                Err(_) if target.exists() => Err(io::Error::from(io::ErrorKind::AlreadyExists)),
                Err(_) => fs::rename(&temp, &target),
            };
            let _ = fs::remove_file(&temp);
            placed.map_err(|e| io_error(e, &name))?;
            opened.wrote();
            sync_dir(target.parent().unwrap_or(Path::new("."))).map_err(|e| io_error(e, &name))
        })
        .await
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let target = self.path(name)?;
        let name = name.to_owned();
        let opened = self.opened();
        self.blocking(move || {
            opened.check()?;
            let temp = opened.write_temp(&target, &name, &bytes)?;
            if let Err(e) = fs::rename(&temp, &target) {
                let _ = fs::remove_file(&temp);
                return Err(io_error(e, &name));
            }
            opened.wrote();
            sync_dir(target.parent().unwrap_or(Path::new("."))).map_err(|e| io_error(e, &name))
        })
        .await
    }

    async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.path(name)?;
        let name = name.to_owned();
        let opened = self.opened();
        self.blocking(move || {
            opened.check()?;
            read_file(&path, &name, limit)
        })
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        check_prefix(prefix)?;
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        let opened = self.opened();
        self.blocking(move || {
            opened.check()?;
            // Walk only the deepest folder the prefix names.
            let base = match prefix.rfind('/') {
                Some(i) => &prefix[..=i],
                None => "",
            };
            let mut found = Vec::new();
            walk(&root, base, &prefix, &mut found).map_err(|e| io_error(e, &prefix))?;
            Ok(page(found, start_after.as_deref(), limit))
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let path = self.path(name)?;
        let name = name.to_owned();
        let opened = self.opened();
        self.blocking(move || {
            opened.check()?;
            match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error(e, &name)),
            }
        })
        .await
    }
}

/// Collects the files below `root/dir` whose names start with `prefix`, skipping hidden entries.
/// An entry deleted between the folder's read and its own (another device replacing its head)
/// is left out, not an error: the listing is of the moment it was read.
fn walk(root: &Path, dir: &str, prefix: &str, out: &mut Vec<ObjectMeta>) -> io::Result<()> {
    let entries = match fs::read_dir(root.join(dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let name = format!("{dir}{file_name}");
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if kind.is_dir() {
            let sub = format!("{name}/");
            if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                walk(root, &sub, prefix, out)?;
            }
        } else if name.starts_with(prefix) {
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(ObjectMeta {
                name,
                size: meta.len(),
                etag: None,
                modified: meta.modified().ok(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_or_clash_are_refused() {
        for bad in [
            "",
            "/abs",
            "a//b",
            "../x",
            "a/../b",
            "a/./b",
            "a/.hidden",
            "a\\b",
            "a\0b",
            "x/",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["repo", "ferry/v1/log/ab/0000000000000001", "a-b_c.d"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[tokio::test]
    async fn a_listing_never_climbs_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("outside/secret")).unwrap();
        std::fs::write(dir.path().join("outside/secret/file"), b"x").unwrap();
        let store = FolderStore::create(dir.path().join("root")).unwrap();
        for bad in [
            "../outside/",
            "ferry/../../outside/",
            "/etc/",
            "a//b/",
            "ferry/.x/",
            "ferry/..",
        ] {
            assert!(store.list(bad, None, 10).await.is_err(), "{bad:?}");
        }
        for good in ["", "ferry/", "ferry/v1/head/", "fer", ".."] {
            let page = store.list(good, None, 10).await.unwrap();
            assert!(page.objects.is_empty(), "{good:?}");
        }
    }

    fn copy_folder(from: &Path, to: &Path) {
        fs::create_dir(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            match entry.file_type().unwrap().is_dir() {
                true => copy_folder(&entry.path(), &target),
                false => drop(fs::copy(entry.path(), target).unwrap()),
            }
        }
    }

    #[tokio::test]
    async fn a_folder_gone_or_replaced_is_unreachable_and_never_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repository");
        let store = FolderStore::create(&root).unwrap();
        store.put_new("ferry/v1/repo", b"r".to_vec()).await.unwrap();
        let unreachable = |result: Result<(), StoreError>, why: &str| match result {
            Err(error @ StoreError::Unreachable { .. }) => {
                let text = error.to_string();
                assert!(text.contains(why) && text.contains("put it back"), "{text}");
            }
            other => panic!("{other:?}"),
        };

        // Moved away (or unmounted, where the mount point goes with it).
        let away = dir.path().join("away");
        fs::rename(&root, &away).unwrap();
        let put = store.put_new("ferry/v1/log/ab/1", b"s".to_vec()).await;
        unreachable(put, "it is not there");
        assert!(!root.exists(), "the folder was made again");
        unreachable(
            store.list("ferry/v1/", None, 10).await.map(drop),
            "not there",
        );
        unreachable(store.get("ferry/v1/repo", 10).await.map(drop), "not there");

        // An empty folder in its place, as a drive unmounted leaves its mount point.
        fs::create_dir(&root).unwrap();
        let put = store.put("ferry/v1/head/ab/1", b"h".to_vec()).await;
        unreachable(put, "it is empty now");
        assert!(
            fs::read_dir(&root).unwrap().next().is_none(),
            "written into"
        );

        // Back, as a copy (a drive mounted again may give the folder another inode): the same
        // repository, all as before.
        fs::remove_dir(&root).unwrap();
        copy_folder(&away, &root);
        store
            .put_new("ferry/v1/log/ab/1", b"s".to_vec())
            .await
            .unwrap();
        assert_eq!(store.get("ferry/v1/repo", 10).await.unwrap(), b"r");
    }
}
