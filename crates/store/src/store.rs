//! The [`Store`] trait every backend implements, how a store is opened from its URL, and what
//! the backends share (listing pages, bounded reads, probes).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::StoreError;
use crate::folder::FolderStore;
use crate::s3::{self, S3Credentials, S3Store};
use crate::url::StoreUrl;
use crate::webdav::{WebDavCredentials, WebDavStore};

/// How to reach a store, beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The keys, for an `s3://` URL.
    pub s3: Option<S3Credentials>,
    /// The password of the URL's user, for a WebDAV URL that names one.
    pub webdav_password: Option<String>,
    /// Where the credentials came from, for a refusal to name ("from the environment").
    pub origin: Option<&'static str>,
    /// Timeouts of each network request.
    pub timeouts: s3::Timeouts,
    /// Make a folder store's folder when it is not there yet.
    pub create_folder: bool,
}

/// Opens the backend `url` names, with `access`. An S3 URL without keys, or a WebDAV URL with a
/// user but no password, is [`StoreError::Misconfigured`].
pub fn open(url: &StoreUrl, access: Access) -> Result<Arc<dyn Store>, StoreError> {
    let missing = |what: &str| StoreError::Misconfigured(format!("the {what} are missing"));
    let origin = access.origin.unwrap_or("given");
    Ok(match url {
        StoreUrl::Folder(path) => {
            let store = match access.create_folder {
                true => FolderStore::create(path)?,
                false => FolderStore::open(path)?,
            };
            Arc::new(store.with_timeout(access.timeouts.request))
        }
        StoreUrl::S3(location) => {
            let credentials = access.s3.ok_or_else(|| missing("S3 credentials"))?;
            Arc::new(
                S3Store::new(location, credentials, access.timeouts)
                    .with_credentials_origin(origin),
            )
        }
        StoreUrl::WebDav(location) => {
            let login = match &location.user {
                Some(user) => Some(WebDavCredentials {
                    user: user.clone(),
                    password: access
                        .webdav_password
                        .ok_or_else(|| missing("WebDAV password"))?,
                }),
                None => None,
            };
            Arc::new(
                WebDavStore::new(location, login, access.timeouts)?.with_credentials_origin(origin),
            )
        }
        StoreUrl::Held(device) => {
            return Err(StoreError::Misconfigured(format!(
                "the repository held by device {device} is reached over the LAN, by a program \
                 that runs it"
            )));
        }
    })
}

/// The most names one [`Store::list`] call returns.
pub const MAX_PAGE: usize = 1000;

/// A [`Store::get`] limit that accepts any size: for tools and tests that read what they wrote.
pub const ANY_SIZE: u64 = u64::MAX;

/// An object's body being read into memory, refused as soon as it goes past a limit.
pub(crate) struct Bounded<'a> {
    name: &'a str,
    limit: u64,
    out: Vec<u8>,
}

impl<'a> Bounded<'a> {
    /// Starts reading the object `name`, whose server announced `expected` bytes (refused at
    /// once when that is over `limit`).
    pub(crate) fn start(
        name: &'a str,
        limit: u64,
        expected: Option<u64>,
    ) -> Result<Bounded<'a>, StoreError> {
        let bounded = Bounded {
            name,
            limit,
            out: Vec::new(),
        };
        match expected {
            Some(size) if size > limit => Err(bounded.too_large(size)),
            Some(size) => Ok(Bounded {
                out: Vec::with_capacity(size as usize),
                ..bounded
            }),
            None => Ok(bounded),
        }
    }

    /// Takes the next chunk of the body.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let size = self.out.len() as u64 + chunk.len() as u64;
        if size > self.limit {
            return Err(self.too_large(size));
        }
        self.out.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }

    fn too_large(&self, size: u64) -> StoreError {
        StoreError::TooLarge {
            name: self.name.to_owned(),
            size,
            limit: self.limit,
        }
    }
}

/// What a listing says of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its name below the store's root.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The server's entity tag, where it gives one.
    pub etag: Option<String>,
    /// When it was last written, where the server says.
    pub modified: Option<SystemTime>,
}

/// One page of a listing, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// The objects.
    pub objects: Vec<ObjectMeta>,
    /// Where the next page starts (pass it as `start_after`), or `None` on the last page.
    pub next: Option<String>,
}

/// Which operations the storage allows, as [`Store::probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// Listing.
    pub list: Result<(), StoreError>,
    /// Writing.
    pub write: Result<(), StoreError>,
    /// Reading.
    pub read: Result<(), StoreError>,
    /// Deleting.
    pub delete: Result<(), StoreError>,
    /// Whether a write-once put over an existing object is refused (`If-None-Match: *`):
    /// `None` when it could not be tried. A server that replaces the object instead lets
    /// anyone with write access overwrite a device's next object without being refused.
    pub write_once: Option<bool>,
}

impl ProbeReport {
    /// Whether everything is allowed.
    pub fn is_ok(&self) -> bool {
        self.list.is_ok() && self.write.is_ok() && self.read.is_ok() && self.delete.is_ok()
    }
}

/// Storage for one repository.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Writes an object that must not exist yet. Where the storage can tell, an existing object
    /// gives [`StoreError::AlreadyExists`] and is left as it was.
    async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// Writes an object, replacing any with that name. Readers see the old or the new bytes,
    /// never a mix.
    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// Reads a whole object of at most `limit` bytes. A larger one is [`StoreError::TooLarge`]
    /// and is not read (its size is checked first where the storage says it, and the read stops
    /// at `limit` where it does not); anything but a stored object is
    /// [`StoreError::NotAnObject`]. Every read has a timeout.
    async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, StoreError>;

    /// Lists objects whose names start with `prefix`, in name order, after `start_after`, at
    /// most `limit` (and at most [`MAX_PAGE`]) of them.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError>;

    /// Deletes an object. Deleting one that is not there is not an error.
    async fn delete(&self, name: &str) -> Result<(), StoreError>;

    /// Deletes objects in as few requests as the storage allows: one per [`MAX_PAGE`] names
    /// where it deletes in batches (S3), else one each. Deleting one that is not there is not
    /// an error.
    async fn delete_many(&self, names: &[String]) -> Result<(), StoreError> {
        for name in names {
            self.delete(name).await?;
        }
        Ok(())
    }

    /// Makes the place the store lives in where the storage has folders and it is missing (for
    /// a new repository: a WebDAV collection and its missing parents). Buckets are never made:
    /// an S3 store does nothing here, and a folder store is made when opened with
    /// [`FolderStore::create`].
    async fn create_root(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Checks that listing, writing, reading and deleting are allowed, and whether write-once
    /// puts are enforced, with a short-lived object under `ferry/probe/`.
    async fn probe(&self) -> ProbeReport {
        let name = match probe_name() {
            Ok(name) => name,
            Err(e) => {
                return ProbeReport {
                    list: Err(e.clone()),
                    write: Err(e.clone()),
                    read: Err(e.clone()),
                    delete: Err(e),
                    write_once: None,
                };
            }
        };
        let list = self.list("ferry/", None, 1).await.map(|_| ());
        let write = self.put_new(&name, b"ferry probe".to_vec()).await;
        // A listing that answers but does not show what was just written would keep every
        // device from seeing the others (a WebDAV server that spells the folder's path
        // another way): the listing is refused then.
        let listed = async || {
            let page = self.list(&name, None, 10).await?;
            Ok::<bool, StoreError>(page.objects.iter().any(|o| o.name == name))
        };
        let list = match (list, &write) {
            // Asked twice, a second apart, for storage whose listings lag behind its writes.
            (Ok(()), Ok(())) => match listed().await {
                Ok(false) => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    listed().await
                }
                other => other,
            },
            (list, _) => list.map(|()| true),
        };
        let list = match list {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Misconfigured(format!(
                "the listing does not show {name}, just written: devices would never see \
                     each other's data; check the storage URL's folder (for WebDAV, how the \
                     server spells its path)"
            ))),
            Err(e) => Err(e),
        };
        let read = match &write {
            Ok(()) => self.get(&name, 64).await.and_then(|bytes| {
                if bytes == b"ferry probe" {
                    Ok(())
                } else {
                    Err(StoreError::Transient {
                        backend: "storage",
                        detail: "the probe object read back different bytes".into(),
                    })
                }
            }),
            Err(e) => Err(e.clone()),
        };
        let write_once = match &write {
            Ok(()) => match self.put_new(&name, b"ferry probe again".to_vec()).await {
                Ok(()) => Some(false),
                Err(StoreError::AlreadyExists { .. }) => Some(true),
                Err(_) => None,
            },
            Err(_) => None,
        };
        let delete = match &write {
            Ok(()) => self.delete(&name).await,
            Err(e) => Err(e.clone()),
        };
        ProbeReport {
            list,
            write,
            read,
            delete,
            write_once,
        }
    }
}

/// One page of `found` (in any order): sorted by name, after `start_after`, at most `limit`.
/// For backends whose servers neither sort nor page.
pub(crate) fn page(
    mut found: Vec<ObjectMeta>,
    start_after: Option<&str>,
    limit: usize,
) -> ListPage {
    let limit = limit.clamp(1, MAX_PAGE);
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let mut objects: Vec<ObjectMeta> = found
        .into_iter()
        .filter(|o| start_after.is_none_or(|after| o.name.as_str() > after))
        .take(limit + 1)
        .collect();
    let next = if objects.len() > limit {
        objects.truncate(limit);
        objects.last().map(|o| o.name.clone())
    } else {
        None
    };
    ListPage { objects, next }
}

fn probe_name() -> Result<String, StoreError> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| StoreError::Transient {
        backend: "system",
        detail: format!("random number generator: {e}"),
    })?;
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("ferry/probe/{hex}"))
}

/// How a backend writes an object: once (refused when the name is taken), or over whatever is
/// there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Once,
    Replace,
}
