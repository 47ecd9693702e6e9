//! A repository in a WebDAV collection (Nextcloud, ownCloud, Apache mod_dav, nginx, rclone…),
//! through `reqwest_dav`.
//!
//! Objects are files under the collection the URL names; folders are made with MKCOL the first
//! time something is written into them (and remembered, so it costs one request per folder and
//! process). Write-once puts send `If-None-Match: *`. Listings are PROPFIND with depth 1, folder
//! by folder below the prefix, sorted and paged here, because servers neither sort nor page.
//! Status codes are read directly rather than through the library's error decoding, which prints
//! parse errors to standard output and cannot tell a 404 from other failures.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use reqwest_dav::list_cmd::ListMultiStatus;
use reqwest_dav::re_exports::reqwest::{self, Method, Response, StatusCode, header};
use reqwest_dav::re_exports::serde_xml_rs;
use reqwest_dav::{Auth, ClientBuilder};

use crate::error::error_chain;
use crate::s3::Timeouts;
use crate::url::WebDavLocation;
use crate::url::percent_decode;
use crate::{ListPage, ObjectMeta, Store, StoreError, page};

const BACKEND: &str = "the WebDAV server";

/// A user and password for the server.
#[derive(Clone)]
pub struct WebDavCredentials {
    /// The user name.
    pub user: String,
    /// The password (or app password).
    pub password: String,
    /// Use HTTP Digest authentication instead of Basic.
    pub digest: bool,
}

impl fmt::Debug for WebDavCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A store in a WebDAV collection.
pub struct WebDavStore {
    client: reqwest_dav::Client,
    url: String,
    /// The URL path of the collection, ending in `/`, as it appears in PROPFIND hrefs.
    root_path: String,
    /// Folders known to exist.
    folders: Mutex<HashSet<String>>,
}

impl fmt::Debug for WebDavStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebDavStore {
    /// A store for `location`; `credentials` when the server asks for a login.
    pub fn new(
        location: &WebDavLocation,
        credentials: Option<WebDavCredentials>,
        timeouts: Timeouts,
    ) -> Result<Self, StoreError> {
        let agent = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .build()
            .map_err(|e| StoreError::Misconfigured(format!("HTTP client: {e}")))?;
        let auth = match credentials {
            None => Auth::Anonymous,
            Some(c) if c.digest => Auth::Digest(c.user, c.password),
            Some(c) => Auth::Basic(c.user, c.password),
        };
        let client = ClientBuilder::new()
            .set_host(location.url.clone())
            .set_agent(agent)
            .set_auth(auth)
            .build()
            .map_err(|e| StoreError::Misconfigured(format!("WebDAV client: {e:?}")))?;
        let root_path = reqwest::Url::parse(&location.url)
            .map(|u| u.path().to_owned())
            .map_err(|e| StoreError::Misconfigured(format!("`{}`: {e}", location.url)))?;
        Ok(WebDavStore {
            client,
            url: location.url.clone(),
            root_path,
            folders: Mutex::new(HashSet::new()),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Response, StoreError> {
        let request =
            self.client
                .start_request(method, path)
                .await
                .map_err(|e| StoreError::Transient {
                    backend: BACKEND,
                    detail: format!("{e:?}"),
                })?;
        build(request).send().await.map_err(request_error)
    }

    /// Makes the folders above `name` that are not known to exist, top down.
    async fn make_folders(&self, name: &str) -> Result<(), StoreError> {
        let mut folder = String::new();
        let parts: Vec<&str> = name.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            folder.push_str(part);
            folder.push('/');
            if self.known(&folder) {
                continue;
            }
            let response = self
                .send(
                    Method::from_bytes(b"MKCOL").expect("MKCOL is a method"),
                    &folder,
                    |r| r,
                )
                .await?;
            match response.status() {
                // Created, or (405) already there; some servers answer 201 either way.
                s if s.is_success() || s == StatusCode::METHOD_NOT_ALLOWED => {
                    self.remember(&folder);
                }
                _ => return Err(classify(response, &folder).await),
            }
        }
        Ok(())
    }

    fn known(&self, folder: &str) -> bool {
        self.folders
            .lock()
            .map(|set| set.contains(folder))
            .unwrap_or(false)
    }

    fn remember(&self, folder: &str) {
        if let Ok(mut set) = self.folders.lock() {
            set.insert(folder.to_owned());
        }
    }

    fn forget_folders(&self) {
        if let Ok(mut set) = self.folders.lock() {
            set.clear();
        }
    }

    async fn upload(&self, name: &str, bytes: Vec<u8>, once: bool) -> Result<(), StoreError> {
        let body = Bytes::from(bytes);
        self.make_folders(name).await?;
        for attempt in 0..2 {
            let response = self
                .send(Method::PUT, name, |r| {
                    let r = r
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .body(body.clone());
                    if once {
                        r.header(header::IF_NONE_MATCH, "*")
                    } else {
                        r
                    }
                })
                .await?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            // A folder we thought was there went away: make it again, once.
            if attempt == 0 && matches!(status, StatusCode::CONFLICT | StatusCode::NOT_FOUND) {
                self.forget_folders();
                self.make_folders(name).await?;
                continue;
            }
            return Err(classify(response, name).await);
        }
        Err(StoreError::Transient {
            backend: BACKEND,
            detail: format!("could not make the folders for {name}"),
        })
    }

    /// The files below `folder` (relative, ending in `/` or empty) whose names start with
    /// `prefix`.
    async fn walk(&self, folder: String, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut found = Vec::new();
        let mut pending = vec![folder];
        while let Some(folder) = pending.pop() {
            let response = self
                .send(
                    Method::from_bytes(b"PROPFIND").expect("PROPFIND is a method"),
                    &folder,
                    |r| {
                        r.header("Depth", "1")
                            .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
                            .body(PROPFIND_BODY)
                    },
                )
                .await?;
            match response.status() {
                StatusCode::MULTI_STATUS => {}
                StatusCode::NOT_FOUND if !folder.is_empty() => continue,
                StatusCode::NOT_FOUND => {
                    return Err(StoreError::Misconfigured(format!(
                        "the WebDAV folder {} does not exist: create it on the server, or fix \
                         the store URL",
                        self.url
                    )));
                }
                _ => return Err(classify(response, &folder).await),
            }
            let text = response.text().await.map_err(request_error)?;
            let listing: ListMultiStatus =
                serde_xml_rs::from_str(&text).map_err(|e| StoreError::Transient {
                    backend: BACKEND,
                    detail: format!("unreadable PROPFIND answer for {folder}: {e}"),
                })?;
            for entry in listing.responses {
                let path = percent_decode(entry.href.split("://").last().unwrap_or(""));
                let path = match entry.href.contains("://") {
                    // An absolute URL: keep its path.
                    true => path
                        .find('/')
                        .map(|i| path[i..].to_owned())
                        .unwrap_or_default(),
                    false => path,
                };
                let Some(relative) = path.strip_prefix(&self.root_path) else {
                    continue;
                };
                if relative.trim_end_matches('/') == folder.trim_end_matches('/') {
                    continue; // Depth 1 includes the folder itself.
                }
                let Some(prop) = entry
                    .prop_stat
                    .iter()
                    .find(|p| p.status.contains(" 200"))
                    .map(|p| &p.prop)
                else {
                    continue;
                };
                let is_folder = prop.resource_type.collection.is_some() || relative.ends_with('/');
                if is_folder {
                    let sub = format!("{}/", relative.trim_end_matches('/'));
                    self.remember(&sub);
                    if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                        pending.push(sub);
                    }
                } else if relative.starts_with(prefix) {
                    found.push(ObjectMeta {
                        name: relative.to_owned(),
                        size: prop.content_length.unwrap_or(0).max(0) as u64,
                        etag: prop.tag.clone(),
                        modified: prop.last_modified.map(SystemTime::from),
                    });
                }
            }
        }
        Ok(found)
    }
}

const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop>
<D:resourcetype/><D:getcontentlength/><D:getetag/><D:getlastmodified/>
</D:prop></D:propfind>"#;

fn request_error(error: reqwest::Error) -> StoreError {
    if error.is_builder() {
        StoreError::Misconfigured(format!("the WebDAV request could not be made: {error}"))
    } else {
        StoreError::Transient {
            backend: BACKEND,
            detail: error_chain(&error),
        }
    }
}

/// Sorts a failed response into the classes the sync engine acts on.
async fn classify(response: Response, name: &str) -> StoreError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let detail = format!("HTTP {status}");
    match status {
        StatusCode::UNAUTHORIZED => StoreError::Unauthorized {
            backend: BACKEND,
            detail,
        },
        StatusCode::FORBIDDEN => StoreError::Forbidden {
            backend: BACKEND,
            detail,
            hint: "check that this user may read and write the folder on the server (for \
                   Nextcloud, that the folder is not shared read-only)",
        },
        StatusCode::NOT_FOUND => StoreError::NotFound { name: name.into() },
        StatusCode::PRECONDITION_FAILED => StoreError::AlreadyExists { name: name.into() },
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => StoreError::Misconfigured(
            format!("{BACKEND} does not allow this here ({detail}): is the URL a WebDAV folder?"),
        ),
        StatusCode::INSUFFICIENT_STORAGE | StatusCode::PAYLOAD_TOO_LARGE => StoreError::Forbidden {
            backend: BACKEND,
            detail,
            hint: "the server is out of space or the object is over its size limit: free \
                       space or raise the quota",
        },
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => StoreError::Throttled {
            backend: BACKEND,
            retry_after,
        },
        _ => StoreError::Transient {
            backend: BACKEND,
            detail,
        },
    }
}

#[async_trait]
impl Store for WebDavStore {
    async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.upload(name, bytes, true).await
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.upload(name, bytes, false).await
    }

    async fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let response = self.send(Method::GET, name, |r| r).await?;
        if !response.status().is_success() {
            return Err(classify(response, name).await);
        }
        Ok(response.bytes().await.map_err(request_error)?.to_vec())
    }

    async fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, StoreError> {
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let wanted = format!("bytes={}-{}", range.start, range.end - 1);
        let response = self
            .send(Method::GET, name, |r| r.header(header::RANGE, wanted))
            .await?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                Ok(response.bytes().await.map_err(request_error)?.to_vec())
            }
            // The server ignored the range: cut it out here.
            StatusCode::OK => {
                let all = response.bytes().await.map_err(request_error)?;
                let len = all.len() as u64;
                let (start, end) = (range.start.min(len), range.end.min(len));
                Ok(all[start as usize..end as usize].to_vec())
            }
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(Vec::new()),
            _ => Err(classify(response, name).await),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        let folder = match prefix.rfind('/') {
            Some(i) => prefix[..=i].to_owned(),
            None => String::new(),
        };
        let found = self.walk(folder, prefix).await?;
        Ok(page(found, start_after, limit))
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        let response = self.send(Method::DELETE, name, |r| r).await?;
        match response.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(classify(response, name).await),
        }
    }
}
