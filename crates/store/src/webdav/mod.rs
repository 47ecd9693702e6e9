//! A repository in a WebDAV collection (Nextcloud, ownCloud, Apache mod_dav, nginx, rclone…).
//!
//! Objects are files under the collection the URL names; folders are made with MKCOL the first
//! time something is written into them (and remembered, so it costs one request per folder and
//! process). A new repository may name a collection that does not exist yet:
//! [`Store::create_root`] makes each missing level. Write-once puts send `If-None-Match: *`, and
//! every body goes with its `Content-Length` (nginx refuses a PUT without one). Listings are
//! PROPFIND with depth 1, folder by folder below the prefix, sorted and paged here, because
//! servers neither sort nor page.
//!
//! The login is negotiated as the server asks (`login`).
//! Requests are made here with `reqwest`; `reqwest_dav` is used only to read PROPFIND answers.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use reqwest_dav::list_cmd::ListMultiStatus;
use reqwest_dav::re_exports::reqwest::{self, Method, Response, StatusCode, Url, header};
use reqwest_dav::re_exports::serde_xml_rs;

use crate::error::{CHECK_THE_SERVER, error_chain, root_cause};
use crate::s3::Timeouts;
use crate::store::{Bounded, Write, page};
use crate::url::WebDavLocation;
use crate::url::percent_decode;
use crate::{ListPage, ObjectMeta, Store, StoreError};

mod login;

pub use login::WebDavCredentials;
use login::{CHALLENGES, Login};

const BACKEND: &str = "the WebDAV server";

/// A store in a WebDAV collection.
pub struct WebDavStore {
    http: reqwest::Client,
    /// The collection's URL, ending in `/`.
    root: Url,
    url: String,
    /// The URL path of the collection, ending in `/`, as it appears in PROPFIND hrefs.
    root_path: String,
    login: Login,
    /// Folders known to exist.
    folders: Mutex<HashSet<String>>,
    /// The login, as a refusal names it.
    credentials: String,
}

impl fmt::Debug for WebDavStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A request's body: sent with its length, and again as it was if the server asks to log in.
type Body = Option<Bytes>;

impl WebDavStore {
    /// A store for `location`; `credentials` when the server asks for a login.
    pub fn new(
        location: &WebDavLocation,
        credentials: Option<WebDavCredentials>,
        timeouts: Timeouts,
    ) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .build()
            .map_err(|e| StoreError::Misconfigured(format!("HTTP client: {e}")))?;
        let mut root = Url::parse(&location.url)
            .map_err(|e| StoreError::Misconfigured(format!("`{}`: {e}", location.url)))?;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        let named = match &credentials {
            Some(login) => format!("the password of the user `{}`", login.user),
            None => "the store URL: the server asks for a login, so put the user in it \
                     (webdav+https://user@host/…) and give the password"
                .to_owned(),
        };
        Ok(WebDavStore {
            http,
            // Decoded, as the hrefs of a listing are before they are compared with it: a
            // folder named with a space or an accent is listed in whichever encoding the
            // server chose.
            root_path: percent_decode(root.path()),
            root,
            url: location.url.clone(),
            login: Login::new(credentials),
            folders: Mutex::new(HashSet::new()),
            credentials: named,
        })
    }

    /// Says where the password came from ("saved for this device", "from
    /// FERRY_WEBDAV_PASSWORD"), so that a refusal names the place to fix it.
    pub fn with_credentials_origin(mut self, origin: &str) -> Self {
        if self.login.given() {
            self.credentials = format!("{} ({origin})", self.credentials);
        }
        self
    }

    /// The URL of `name` below the collection.
    fn at(&self, name: &str) -> Result<Url, StoreError> {
        self.root.join(name).map_err(|e| {
            StoreError::Misconfigured(format!("`{name}` is not a name below {}: {e}", self.url))
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Response, StoreError> {
        self.send_to(method, self.at(path)?, None, build).await
    }

    /// Sends one request, and again when the server answers with a challenge that teaches
    /// something new (the scheme to use, or a fresh Digest nonce): at most [`CHALLENGES`]
    /// times, as the nonce may turn stale just as the first challenge is answered.
    async fn send_to(
        &self,
        method: Method,
        url: Url,
        body: Body,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Response, StoreError> {
        let mut challenges = 0;
        loop {
            let mut request = build(self.http.request(method.clone(), url.clone()));
            if let Some(body) = &body {
                request = request
                    .header(header::CONTENT_LENGTH, body.len())
                    .body(body.clone());
            }
            let (request, sent) = self.login.authorize(request, &method, &url)?;
            let response = request.send().await.map_err(request_error)?;
            if response.status() == StatusCode::UNAUTHORIZED
                && challenges < CHALLENGES
                && self.login.learn(&response, &sent)
            {
                challenges += 1;
                continue;
            }
            return Ok(response);
        }
    }

    /// PROPFIND of `url` at `depth` ("0": the resource itself, "1": and its members).
    async fn propfind(&self, url: Url, depth: &'static str) -> Result<Response, StoreError> {
        self.send_to(
            Method::from_bytes(b"PROPFIND").expect("PROPFIND is a method"),
            url,
            Some(Bytes::from_static(PROPFIND_BODY.as_bytes())),
            |r| {
                r.header("Depth", depth)
                    .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
            },
        )
        .await
    }

    /// Whether the collection at `url` answers a listing: it is there, whatever a MKCOL
    /// that lost a race to make it said.
    async fn listed(&self, url: &Url) -> Result<bool, StoreError> {
        let response = self.propfind(url.clone(), "0").await?;
        Ok(response.status() == StatusCode::MULTI_STATUS)
    }

    /// Whether the collection at `url` exists.
    async fn collection_exists(&self, url: &Url) -> Result<bool, StoreError> {
        let response = self.propfind(url.clone(), "0").await?;
        match response.status() {
            StatusCode::NOT_FOUND | StatusCode::CONFLICT => Ok(false),
            StatusCode::UNAUTHORIZED => Err(self.classify(&response, url.path())),
            // Listed, or there but not listable by this user, or not a DAV resource (a
            // server's front page above the DAV root): in every case not for Ferry to make.
            _ => Ok(true),
        }
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
                // The parent is missing: only the collection itself can be, as the levels
                // below it are made top down.
                StatusCode::CONFLICT => return Err(self.missing_root()),
                // Another writer made the same folder at the same moment, and the server
                // says so with an error of its own (403 on Apache, 500 on WsgiDAV): the
                // folder is there all the same.
                StatusCode::FORBIDDEN | StatusCode::INTERNAL_SERVER_ERROR
                    if self.listed(&self.at(&folder)?).await? =>
                {
                    self.remember(&folder);
                }
                _ => return Err(self.classify(&response, &folder)),
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

    fn missing_root(&self) -> StoreError {
        StoreError::Misconfigured(format!(
            "the WebDAV folder {} does not exist: create it on the server, or fix the store URL",
            self.url
        ))
    }

    async fn upload(&self, name: &str, bytes: Vec<u8>, write: Write) -> Result<(), StoreError> {
        let body = Bytes::from(bytes);
        let url = self.at(name)?;
        self.make_folders(name).await?;
        for attempt in 0..2 {
            let response = self
                .send_to(Method::PUT, url.clone(), Some(body.clone()), |r| {
                    let r = r.header(header::CONTENT_TYPE, "application/octet-stream");
                    if write == Write::Once {
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
            return Err(self.classify(&response, name));
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
            let response = self.propfind(self.at(&folder)?, "1").await?;
            match response.status() {
                StatusCode::MULTI_STATUS => {}
                StatusCode::NOT_FOUND if !folder.is_empty() => continue,
                StatusCode::NOT_FOUND | StatusCode::CONFLICT => return Err(self.missing_root()),
                _ => return Err(self.classify(&response, &folder)),
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
    } else if let Some(url) = error.url()
        && error.is_connect()
    {
        // No connection at all: where (the origin carries no login), and what the system said.
        StoreError::Unreachable {
            backend: BACKEND,
            endpoint: url.origin().ascii_serialization(),
            reason: root_cause(&error),
            fix: CHECK_THE_SERVER,
        }
    } else {
        StoreError::Transient {
            backend: BACKEND,
            detail: error_chain(&error),
        }
    }
}

impl WebDavStore {
    /// Sorts a failed response into the classes the sync engine acts on.
    fn classify(&self, response: &Response, name: &str) -> StoreError {
        classify(response, name, &self.credentials)
    }
}

fn classify(response: &Response, name: &str, credentials: &str) -> StoreError {
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
            credentials: credentials.to_owned(),
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
        s if s.is_server_error() => StoreError::ServerFailed {
            backend: BACKEND,
            detail,
        },
        _ => StoreError::Transient {
            backend: BACKEND,
            detail,
        },
    }
}

#[async_trait]
impl Store for WebDavStore {
    async fn create_root(&self) -> Result<(), StoreError> {
        // From the collection up, find the levels that are missing, then make them top down.
        let mut missing = Vec::new();
        let mut level = self.root.clone();
        while !self.collection_exists(&level).await? {
            missing.push(level.clone());
            match level.join("..") {
                Ok(parent) if parent.path() != level.path() => level = parent,
                _ => break,
            }
        }
        for level in missing.into_iter().rev() {
            let response = self
                .send_to(
                    Method::from_bytes(b"MKCOL").expect("MKCOL is a method"),
                    level.clone(),
                    None,
                    |r| r,
                )
                .await?;
            let status = response.status();
            let raced = matches!(
                status,
                StatusCode::FORBIDDEN | StatusCode::INTERNAL_SERVER_ERROR
            ) && self.listed(&level).await?;
            if !(status.is_success() || status == StatusCode::METHOD_NOT_ALLOWED || raced) {
                return Err(self.classify(&response, level.path()));
            }
        }
        self.remember("");
        Ok(())
    }

    async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.upload(name, bytes, Write::Once).await
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.upload(name, bytes, Write::Replace).await
    }

    async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        let mut response = self.send(Method::GET, name, |r| r).await?;
        if !response.status().is_success() {
            return Err(self.classify(&response, name));
        }
        // The client's request timeout covers the body too.
        let mut bounded = Bounded::start(name, limit, response.content_length())?;
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            bounded.push(&chunk)?;
        }
        Ok(bounded.finish())
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
            _ => Err(self.classify(&response, name)),
        }
    }
}
