//! The repository's lifecycle: create it once (its first generation, `ferry/v1/`), and check
//! the key before anything else (on the generation a device is on: see `generation` for the
//! ones after the first).

use ferry_protocol::generation::later_root;
use ferry_protocol::names::ROOT;
use ferry_protocol::{KdfParams, Keys, ObjectName, RepoHeader};
use ferry_store::{RetryPolicy, Store, StoreError};

use crate::SyncError;
use crate::generation::path_in;

/// The most bytes read at the header's name.
fn header_limit() -> u64 {
    ObjectName::Repo.kind().max_sealed() as u64
}

/// Creates a repository: writes the public header with its sealed key check, once. Refuses when
/// a repository (or anything at its name) is already there.
pub async fn init(
    store: &dyn Store,
    keys: &Keys,
    kdf: Option<KdfParams>,
    retry: &RetryPolicy,
) -> Result<RepoHeader, SyncError> {
    let name = path_in(ROOT, &ObjectName::Repo);
    match retry.run(|| store.get(&name, header_limit())).await {
        Ok(bytes) => return Err(exists(&bytes)),
        Err(StoreError::NotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    // A repository that moved here has no first generation in this storage.
    let later = crate::generation::later_roots(store, retry).await?;
    if let Some((_, key_id, _)) = later.last().and_then(|(_, root)| later_root(root)) {
        return Err(SyncError::RepositoryExists {
            key_id: key_id.to_string(),
        });
    }
    let header = RepoHeader::create(keys, kdf)?;
    match retry.run(|| store.put_new(&name, header.to_bytes())).await {
        Ok(()) => Ok(header),
        Err(StoreError::AlreadyExists { .. }) => {
            let bytes = retry.run(|| store.get(&name, header_limit())).await?;
            Err(exists(&bytes))
        }
        Err(error) => Err(error.into()),
    }
}

fn exists(bytes: &[u8]) -> SyncError {
    SyncError::RepositoryExists {
        key_id: RepoHeader::from_bytes(bytes)
            .map(|header| header.key_id.to_string())
            .unwrap_or_else(|_| "unreadable".to_owned()),
    }
}

/// Reads the repository header and checks that `keys` open it. Nothing is written.
pub async fn open(
    store: &dyn Store,
    keys: &Keys,
    retry: &RetryPolicy,
) -> Result<RepoHeader, SyncError> {
    open_in(store, keys, retry, ROOT).await
}

/// Reads the header of the generation whose folder is `root` and checks that `keys` open it.
pub async fn open_in(
    store: &dyn Store,
    keys: &Keys,
    retry: &RetryPolicy,
    root: &str,
) -> Result<RepoHeader, SyncError> {
    let name = path_in(root, &ObjectName::Repo);
    let bytes = match retry.run(|| store.get(&name, header_limit())).await {
        Ok(bytes) => bytes,
        Err(StoreError::NotFound { .. }) => return Err(no_repository(store, retry).await),
        Err(error) => return Err(error.into()),
    };
    let header = RepoHeader::from_bytes(&bytes)?;
    header.verify(keys)?;
    Ok(header)
}

/// Reads only the public part of the header: which key and passphrase parameters the
/// repository uses (for joining with a passphrase).
pub async fn header(store: &dyn Store, retry: &RetryPolicy) -> Result<RepoHeader, SyncError> {
    let name = path_in(ROOT, &ObjectName::Repo);
    match retry.run(|| store.get(&name, header_limit())).await {
        Ok(bytes) => Ok(RepoHeader::from_bytes(&bytes)?),
        Err(StoreError::NotFound { .. }) => Err(no_repository(store, retry).await),
        Err(error) => Err(error.into()),
    }
}

/// Why there is no header: the place the store names may itself be missing (a WebDAV folder
/// that was never made answers a read of any name below it with 404 too), which is the more
/// useful thing to say.
pub(crate) async fn no_repository(store: &dyn Store, retry: &RetryPolicy) -> SyncError {
    match retry.run(|| store.list("", None, 1)).await {
        Err(missing @ StoreError::Misconfigured(_)) => missing.into(),
        _ => SyncError::NoRepository,
    }
}
