//! The repository's storage as the page reaches it: an S3-compatible bucket, through the
//! browser's `fetch`, every request signed here (SigV4 in a presigned URL, valid for a minute:
//! the secret never reaches JavaScript, and a read needs no CORS preflight). Reads are bounded
//! as a desktop device's are: an object larger than its kind may be is not read to the end.
//!
//! WebDAV and folder repositories are not reached from a page (pairing refuses a folder; a
//! WebDAV server rarely answers a browser's preflight with what a page needs).

use std::fmt;
use std::time::Duration;

use ferry_protocol::pairing::Credentials;
use ferry_store::StoreUrl;
use ferry_store::url::S3Location;
use js_sys::{Reflect, Uint8Array};
use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, UrlStyle};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStreamDefaultReader, RequestCache, RequestInit, RequestMode, Response};

/// How long a signed request stays valid: as long as S3 allows a request's clock to be off,
/// so that a phone whose clock is a few minutes wrong still reads.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// The most pages one listing reads (a million names): a storage that lists on and on is
/// not followed further.
const MAX_PAGES: usize = 1000;

/// The most bytes a read reserves up front, whatever length the answer declares.
const RESERVE_AT_MOST: u64 = 1024 * 1024;

/// The most bytes of an error answer read, for its code and message.
const ERROR_BODY: u64 = 16 * 1024;

/// The most bytes of a listing page read (1,000 names, each well under 1 KiB).
const LISTING: u64 = 2 * 1024 * 1024;

/// Why the storage did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StorageError {
    /// The store URL the page was paired with is not one a page can reach.
    Unsupported(String),
    /// The request got no answer: the browser is offline, the bucket does not answer, or the
    /// page's security policy does not let it connect there.
    Unreachable {
        /// The bucket's endpoint: scheme, host and port.
        origin: String,
    },
    /// The bucket answers, but its CORS rule does not let this page read the answers.
    NoCors {
        /// The bucket's endpoint: scheme, host and port.
        origin: String,
    },
    /// Nothing at that name.
    NotFound,
    /// Something is at that name already (a write-once PUT).
    AlreadyExists,
    /// The credentials were refused, or do not allow the request.
    Denied {
        /// The HTTP status.
        status: u16,
        /// The storage's error code, when it gave one.
        code: String,
    },
    /// The object is larger than an object of its kind may be: it was not read to the end.
    TooLarge {
        /// The most bytes it may have.
        limit: u64,
    },
    /// Any other refusal or failure.
    Failed {
        /// The HTTP status.
        status: u16,
        /// The storage's error code, when it gave one.
        code: String,
    },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Unsupported(why) => f.write_str(why),
            StorageError::Unreachable { origin } => write!(
                f,
                "the bucket at {origin} cannot be reached from this browser: check its \
                 connection (the page tries again by itself)"
            ),
            StorageError::NoCors { origin } => write!(
                f,
                "the bucket at {origin} answers, but has no CORS rule that lets this page use \
                 it: whoever manages the bucket adds the rule that `ferry doctor` prints on a \
                 paired computer"
            ),
            StorageError::NotFound => f.write_str("nothing is stored at that name"),
            StorageError::AlreadyExists => f.write_str("something is stored at that name already"),
            StorageError::Denied { status, code } => write!(
                f,
                "the bucket refused this page's credentials (HTTP {status}{}): they may have been \
                 replaced or may not allow this; if this browser's clock is wrong, set it right; \
                 otherwise pair this browser again",
                code_part(code)
            ),
            StorageError::TooLarge { limit } => write!(
                f,
                "the object is larger than an object of its kind may be ({limit} bytes): it was \
                 not read"
            ),
            StorageError::Failed { status, code } => {
                write!(
                    f,
                    "the bucket failed the request (HTTP {status}{})",
                    code_part(code)
                )
            }
        }
    }
}

fn code_part(code: &str) -> String {
    match code.is_empty() {
        true => String::new(),
        false => format!(", {code}"),
    }
}

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Its name, below the store's prefix.
    pub(crate) path: String,
}

/// The bucket the page's repository is in, and the keys that sign its requests.
pub(crate) struct Storage {
    bucket: Bucket,
    credentials: rusty_s3::Credentials,
    /// The store's folder in the bucket, with its trailing `/` (empty for the bucket's root).
    prefix: String,
    /// The endpoint as messages name it.
    origin: String,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("origin", &self.origin)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// The storage `store` (a store URL, as pairing handed it) names, reached with
    /// `credentials`.
    pub(crate) fn open(store: &str, credentials: &Credentials) -> Result<Storage, StorageError> {
        let url = StoreUrl::parse(store)
            .map_err(|e| StorageError::Unsupported(format!("the store URL is unusable: {e}")))?;
        let location = match url {
            StoreUrl::S3(location) => location,
            StoreUrl::WebDav(_) => {
                return Err(StorageError::Unsupported(
                    "this repository is on a WebDAV server, which a browser page does not reach \
                     yet: move it to an S3-compatible bucket (`ferry store move`) to use it here"
                        .into(),
                ));
            }
            StoreUrl::Folder(_) | StoreUrl::Held(_) => {
                return Err(StorageError::Unsupported(
                    "this repository is a folder on a computer, which a browser cannot reach: \
                     move it to an S3-compatible bucket (`ferry store move`) to use it here"
                        .into(),
                ));
            }
        };
        let Credentials::S3 {
            access_key_id,
            secret_access_key,
        } = credentials
        else {
            return Err(StorageError::Unsupported(
                "the pairing handed no S3 keys for this bucket: pair this browser again".into(),
            ));
        };
        Storage::s3(&location, access_key_id, secret_access_key)
    }

    fn s3(location: &S3Location, key: &str, secret: &str) -> Result<Storage, StorageError> {
        let unusable =
            |e: String| StorageError::Unsupported(format!("the store URL is unusable: {e}"));
        let endpoint = url::Url::parse(&location.endpoint).map_err(|e| unusable(e.to_string()))?;
        let origin = endpoint.origin().ascii_serialization();
        let style = match location.path_style {
            true => UrlStyle::Path,
            false => UrlStyle::VirtualHost,
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            location.bucket.clone(),
            location.region.clone(),
        )
        .map_err(|e| unusable(e.to_string()))?;
        let prefix = match location.prefix.is_empty() {
            true => String::new(),
            false => format!("{}/", location.prefix),
        };
        Ok(Storage {
            bucket,
            credentials: rusty_s3::Credentials::new(key, secret),
            prefix,
            origin,
        })
    }

    /// The bucket's endpoint: scheme, host and port.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// The object at `name` (below the store's prefix), if it has at most `limit` bytes.
    pub(crate) async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        let key = format!("{}{name}", self.prefix);
        let url = self
            .bucket
            .get_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        let response = self.send_about("GET", url.as_str(), Some(&key)).await?;
        self.check(&response).await?;
        read_bounded(&response, limit).await
    }

    /// Writes `bytes` at `name` (below the store's prefix), unless something is there already.
    pub(crate) async fn put_new(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let key = format!("{}{name}", self.prefix);
        let url = self
            .bucket
            .put_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        let response = self
            .send_with("PUT", url.as_str(), Some(bytes), Some(&key))
            .await?;
        match response.status() {
            // Write-once: what is there stays (409, a conflicting write under way, is tried again).
            412 => Err(StorageError::AlreadyExists),
            _ => self.check(&response).await,
        }
    }

    /// Deletes the object at `name` (below the store's prefix); deleting what is not there
    /// succeeds.
    pub(crate) async fn delete(&self, name: &str) -> Result<(), StorageError> {
        let key = format!("{}{name}", self.prefix);
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        let response = self.send_about("DELETE", url.as_str(), Some(&key)).await?;
        match response.status() {
            404 => Ok(()),
            _ => self.check(&response).await,
        }
    }

    /// Every object whose name (below the store's prefix) starts with `prefix`, in name order,
    /// with names below the store's prefix. Each page must go on past the last: a listing that
    /// does not, or that runs past [`MAX_PAGES`] pages, is refused rather than followed.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StorageError> {
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut action = ListObjectsV2::new(&self.bucket, Some(&self.credentials));
            action.with_prefix(format!("{}{prefix}", self.prefix));
            action.with_max_keys(1000);
            if let Some(after) = &after {
                action.with_start_after(after.clone());
            }
            let url = action.sign(SIGNED_FOR);
            let response = self.send("GET", url.as_str()).await?;
            self.check(&response).await?;
            let body = read_bounded(&response, LISTING).await?;
            let unreadable = |code: &str| StorageError::Failed {
                status: response.status(),
                code: code.into(),
            };
            let page = ListObjectsV2::parse_response(&String::from_utf8_lossy(&body))
                .map_err(|_| unreadable("an unreadable listing"))?;
            let Some(last) = page.contents.last().map(|object| object.key.clone()) else {
                return Ok(found);
            };
            if after.as_ref().is_some_and(|after| last <= *after) {
                return Err(unreadable("a listing that does not go on"));
            }
            for object in page.contents {
                if let Some(name) = object.key.strip_prefix(&self.prefix) {
                    found.push(Listed {
                        path: name.to_owned(),
                    });
                }
            }
            if page.next_continuation_token.is_none() {
                return Ok(found);
            }
            after = Some(last);
        }
        Err(StorageError::Failed {
            status: 200,
            code: format!("a listing of more than {MAX_PAGES} pages"),
        })
    }

    /// Sends one request; an answer of any status is an answer.
    async fn send(&self, method: &str, url: &str) -> Result<Response, StorageError> {
        self.send_with(method, url, None, None).await
    }

    /// [`send`](Self::send), for a request about the object `key` (which a failed request asks
    /// about again, to tell why it failed).
    async fn send_about(
        &self,
        method: &str,
        url: &str,
        key: Option<&str>,
    ) -> Result<Response, StorageError> {
        self.send_with(method, url, None, key).await
    }

    /// [`send_about`](Self::send_about), with a body: written once (`If-None-Match: *`).
    async fn send_with(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        key: Option<&str>,
    ) -> Result<Response, StorageError> {
        let unreachable = || StorageError::Unreachable {
            origin: self.origin.clone(),
        };
        let init = RequestInit::new();
        init.set_method(method);
        init.set_cache(RequestCache::NoStore);
        if let Some(bytes) = body {
            init.set_body(&Uint8Array::from(bytes));
            let headers = web_sys::Headers::new().map_err(|_| unreachable())?;
            headers
                .set("If-None-Match", "*")
                .map_err(|_| unreachable())?;
            init.set_headers(&headers);
        }
        let promise = fetch(url, &init).ok_or_else(unreachable)?;
        match JsFuture::from(promise).await {
            Ok(answer) => answer.dyn_into::<Response>().map_err(|_| unreachable()),
            Err(_) => Err(self.why_unanswered(key).await),
        }
    }

    /// Why a request got no answer the page may read: a HEAD of the object `key` (or of the
    /// repository's header) asked without CORS (an answer the page cannot read, but that shows
    /// the bucket answers) tells a missing CORS rule from a bucket that cannot be reached.
    async fn why_unanswered(&self, key: Option<&str>) -> StorageError {
        let key = key.map_or_else(|| format!("{}ferry/v1/repo", self.prefix), str::to_owned);
        let url = self
            .bucket
            .head_object(Some(&self.credentials), &key)
            .sign(SIGNED_FOR);
        let init = RequestInit::new();
        init.set_method("HEAD");
        init.set_mode(RequestMode::NoCors);
        init.set_cache(RequestCache::NoStore);
        let answered = match fetch(url.as_str(), &init) {
            Some(promise) => JsFuture::from(promise).await.is_ok(),
            None => false,
        };
        let origin = self.origin.clone();
        match answered {
            true => StorageError::NoCors { origin },
            false => StorageError::Unreachable { origin },
        }
    }

    /// Turns a refusal into its error, with the code the storage gave.
    async fn check(&self, response: &Response) -> Result<(), StorageError> {
        let status = response.status();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = read_bounded(response, ERROR_BODY).await.unwrap_or_default();
        let code = xml_element(&String::from_utf8_lossy(&body), "Code").unwrap_or_default();
        Err(match status {
            404 => StorageError::NotFound,
            401 | 403 => StorageError::Denied { status, code },
            _ => StorageError::Failed { status, code },
        })
    }
}

/// `fetch` of the page or of a worker.
fn fetch(url: &str, init: &RequestInit) -> Option<js_sys::Promise> {
    let global = js_sys::global();
    if let Some(window) = global.dyn_ref::<web_sys::Window>() {
        return Some(window.fetch_with_str_and_init(url, init));
    }
    global
        .dyn_ref::<web_sys::WorkerGlobalScope>()
        .map(|worker| worker.fetch_with_str_and_init(url, init))
}

/// The text of the first `<name>` element in `xml`, unescaped for the five XML entities; short
/// and printable, for a message.
fn xml_element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml.get(start..)?.find('<')?;
    let text = xml.get(start..end)?;
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(text.chars().filter(|c| !c.is_control()).take(80).collect())
}

/// The body of `response`, refused once it passes `limit` bytes (by its declared length, or
/// while it is read).
async fn read_bounded(response: &Response, limit: u64) -> Result<Vec<u8>, StorageError> {
    let too_large = StorageError::TooLarge { limit };
    let declared = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|len| len.trim().parse::<u64>().ok());
    let Some(body) = response.body() else {
        return Ok(Vec::new());
    };
    if declared.is_some_and(|len| len > limit) {
        // Not downloaded.
        let _ = body.cancel();
        return Err(too_large);
    }
    let failed = || StorageError::Failed {
        status: response.status(),
        code: "the answer broke off".into(),
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(RESERVE_AT_MOST) as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|_| failed())?;
        let done = Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()
            .and_then(|done| done.as_bool())
            .unwrap_or(true);
        if done {
            return Ok(bytes);
        }
        let value = Reflect::get(&chunk, &JsValue::from_str("value")).map_err(|_| failed())?;
        let value: Uint8Array = value.dyn_into().map_err(|_| failed())?;
        if bytes.len() as u64 + u64::from(value.length()) > limit {
            // Stop the download; what was read is dropped.
            let _ = reader.cancel();
            return Err(too_large);
        }
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_any_bytes_without_panicking() {
        assert_eq!(
            xml_element("<Error><Code>AccessDenied</Code></Error>", "Code").as_deref(),
            Some("AccessDenied")
        );
        assert_eq!(xml_element("<Code>a&amp;b", "Code").as_deref(), None);
        assert_eq!(
            xml_element("<Code>x\u{7}y</Code>", "Code").as_deref(),
            Some("xy")
        );
        for text in ["", "<Code>", "<Code><", "<Cod", "\u{fffd}<Code>é</Code>"] {
            let _ = xml_element(text, "Code");
        }
    }

    #[test]
    fn only_an_s3_store_is_reached_from_a_page() {
        let s3 = Credentials::S3 {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
        };
        let storage = Storage::open(
            "s3://notes/ferry?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
            &s3,
        )
        .expect("an S3 store opens");
        assert_eq!(storage.origin(), "http://127.0.0.1:9000");
        assert_eq!(storage.prefix, "ferry/");
        assert!(!format!("{storage:?}").contains("secret"));
        for (store, says) in [
            ("file:///home/ana/ferry", "a folder on a computer"),
            ("webdav+https://dav.example/ferry/", "a WebDAV server"),
        ] {
            let error = Storage::open(store, &Credentials::None).expect_err(store);
            assert!(error.to_string().contains(says), "{error}");
        }
        let error = Storage::open(
            "s3://notes?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
            &Credentials::None,
        )
        .expect_err("no keys");
        assert!(
            error.to_string().contains("pair this browser again"),
            "{error}"
        );
    }
}
