//! The browser page, served at `/app/` from a folder the operator gives (`--web DIR`, what
//! `scripts/build-web.sh` writes), so that the page and the relay's WebSocket share one origin.
//!
//! The folder is read once, when the relay starts: every request is answered from memory, so
//! nothing a request names reaches the file system (no `..`, no symbolic link out of the
//! folder, no FIFO that blocks a reader), and the set of files is bounded. A new build of the
//! page takes a restart.
//!
//! Every answer carries a strict Content-Security-Policy: scripts and WebAssembly only from the
//! page's own files, no inline script, and connections only to the relay itself and the
//! storage origins the operator names (`--web-connect`). Files whose names carry a content hash
//! (`ferry_web.0123456789abcdef.wasm`, as `scripts/build-web.sh` names them) are cached for a
//! year; the others are checked again each time. A file's bytes are held once and shared by
//! every answer that sends them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use ::http::StatusCode;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::RelayError;

/// Where the page is served.
pub(crate) const PREFIX: &str = "/app/";

/// The most files the page may have.
const MAX_FILES: usize = 256;

/// The most bytes all its files may take together (gzip copies included).
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// How deep folders inside the page's folder are read.
const MAX_DEPTH: usize = 4;

/// The file `scripts/build-web.sh` writes into every build: a folder without it (the page's
/// sources, another site) is not served.
const BUILT: &str = ".ferry-web-build";

/// What a request for the page asks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// The path, without the query.
    pub(crate) path: String,
    /// A HEAD request: the answer has no body.
    pub(crate) head: bool,
    /// The `If-None-Match` header, when given.
    pub(crate) if_none_match: Option<String>,
    /// Whether the browser takes gzip.
    pub(crate) gzip: bool,
}

/// The page's files, read into memory, and the policy they are served under.
#[derive(Debug)]
pub(crate) struct Site {
    files: HashMap<String, File>,
    policy: String,
}

/// An answer to a request for the page: the status line and headers, then the file's bytes
/// when there are any to send.
pub(crate) struct Answer {
    pub(crate) head: Vec<u8>,
    pub(crate) body: Option<Bytes>,
}

#[derive(Debug)]
struct File {
    body: Bytes,
    /// The same, gzipped, when the folder holds `NAME.gz` beside `NAME`.
    gzip: Option<Bytes>,
    content_type: &'static str,
    /// The entity tag of the file as it is; its gzip copy's has `-gz` added.
    etag: String,
    /// Its name carries a hash of its content: it never changes under that name.
    immutable: bool,
}

impl Site {
    /// Reads the page from `dir`, to be served with connections allowed to the relay and to
    /// `connect` (origins such as `https://s3.example.com`).
    pub(crate) fn load(dir: &Path, connect: &[String]) -> Result<Site, RelayError> {
        let fail = |detail: String| RelayError::Web {
            dir: dir.to_owned(),
            detail,
        };
        for origin in connect {
            check_origin(origin).map_err(|detail| RelayError::WebConnect {
                origin: origin.clone(),
                detail,
            })?;
        }
        let mut found = Vec::new();
        walk(dir, "", 0, &mut found).map_err(|e| fail(e.to_string()))?;
        if !dir.join(BUILT).is_file() {
            // The error goes on to say which folder to give.
            return Err(fail("it is not a build of the page".into()));
        }
        if found.len() > MAX_FILES {
            return Err(fail(format!(
                "it holds more than {MAX_FILES} files; give the folder of the built page alone"
            )));
        }
        let mut total = 0u64;
        let mut bodies = HashMap::new();
        for (name, path) in found {
            let mut body = Vec::new();
            std::fs::File::open(&path)
                .and_then(|file| file.take(MAX_BYTES - total + 1).read_to_end(&mut body))
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            total += body.len() as u64;
            if total > MAX_BYTES {
                return Err(fail(format!(
                    "its files take more than {} MiB; give the folder of the built page alone",
                    MAX_BYTES / 1024 / 1024
                )));
            }
            bodies.insert(name, body);
        }
        let gzipped: Vec<String> = bodies
            .keys()
            .filter_map(|name| name.strip_suffix(".gz"))
            .filter(|plain| bodies.contains_key(*plain))
            .map(str::to_owned)
            .collect();
        let mut gzips = HashMap::new();
        for plain in gzipped {
            if let Some(gzip) = bodies.remove(&format!("{plain}.gz")) {
                gzips.insert(plain, gzip);
            }
        }
        let files: HashMap<String, File> = bodies
            .into_iter()
            .map(|(name, body)| {
                let etag = hex(&Sha256::digest(&body)[..12]);
                let file = File {
                    gzip: gzips.remove(&name).map(Bytes::from),
                    content_type: content_type(&name),
                    etag,
                    immutable: hashed(&name),
                    body: Bytes::from(body),
                };
                (name, file)
            })
            .collect();
        if !files.contains_key("index.html") {
            return Err(fail(
                "it has no index.html: build the page with scripts/build-web.sh DIR".into(),
            ));
        }
        Ok(Site {
            files,
            policy: policy(connect),
        })
    }

    /// How many files the page has.
    pub(crate) fn files(&self) -> usize {
        self.files.len()
    }

    /// The answer to `request`, whose path starts with `/app`.
    pub(crate) fn answer(&self, request: &Request) -> Answer {
        let whole = |head: Vec<u8>| Answer { head, body: None };
        let Some(rest) = request.path.strip_prefix(PREFIX) else {
            // `/app` without its slash: relative links in the page need the slash.
            return whole(redirect(PREFIX));
        };
        let name = match rest {
            "" => "index.html".to_owned(),
            dir if dir.ends_with('/') => format!("{dir}index.html"),
            name => name.to_owned(),
        };
        let Some(file) = self.files.get(&name) else {
            return whole(not_found());
        };
        let cache = match file.immutable {
            true => "public, max-age=31536000, immutable",
            false => "no-cache",
        };
        let (body, etag, gzipped) = match (&file.gzip, request.gzip) {
            (Some(gzip), true) => (gzip, format!("\"{}-gz\"", file.etag), true),
            _ => (&file.body, format!("\"{}\"", file.etag), false),
        };
        let mut head = format!(
            "Content-Type: {}\r\nCache-Control: {cache}\r\nETag: {etag}\r\n\
             Content-Security-Policy: {}\r\nX-Content-Type-Options: nosniff\r\n\
             Referrer-Policy: no-referrer\r\nCross-Origin-Opener-Policy: same-origin\r\n\
             Cross-Origin-Resource-Policy: same-origin\r\nX-Frame-Options: DENY\r\n",
            file.content_type, self.policy
        );
        if file.gzip.is_some() {
            head.push_str("Vary: Accept-Encoding\r\n");
        }
        let matches = request.if_none_match.as_deref().is_some_and(|tags| {
            tags.split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*")
        });
        if matches {
            // No Content-Length: a 304's would have to be the file's (RFC 9110 §8.6).
            let head = format!(
                "HTTP/1.1 {}\r\n{head}Connection: close\r\n\r\n",
                StatusCode::NOT_MODIFIED
            );
            return whole(head.into_bytes());
        }
        if gzipped {
            head.push_str("Content-Encoding: gzip\r\n");
        }
        let head = format!(
            "HTTP/1.1 {}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
            StatusCode::OK,
            body.len()
        );
        Answer {
            head: head.into_bytes(),
            body: (!request.head).then(|| body.clone()),
        }
    }
}

/// The answer for a path outside `/app/` when the relay serves the page: `/` leads there.
pub(crate) fn root(path: &str) -> Option<Vec<u8>> {
    (path == "/").then(|| redirect(PREFIX))
}

/// A short answer, whole: status, headers, body.
fn build(status: StatusCode, head: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn redirect(to: &str) -> Vec<u8> {
    build(
        StatusCode::MOVED_PERMANENTLY,
        &format!("Location: {to}\r\nCache-Control: no-store\r\n"),
        "",
    )
}

fn not_found() -> Vec<u8> {
    build(
        StatusCode::NOT_FOUND,
        "Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n",
        "no such file in the page\n",
    )
}

/// The page's Content-Security-Policy: nothing but its own files, WebAssembly compiled from
/// them, and connections to this relay (`'self'` covers its WebSocket) and to `connect`.
fn policy(connect: &[String]) -> String {
    let connect: String = connect.iter().map(|origin| format!(" {origin}")).collect();
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' blob: data:; connect-src 'self'{connect}; manifest-src 'self'; \
         worker-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// Whether `origin` is a bare origin that can go into the policy as it is: a scheme of HTTP
/// or HTTPS and a host, with a port perhaps, and nothing else (no path, no space, no `;`).
pub(crate) fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or("an origin starts with https:// (or http:// for a store on this machine)")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if rest.is_empty() || !rest.chars().all(allowed) {
        return Err(
            "an origin is a scheme and a host with a port perhaps, such as \
                    https://s3.eu-west-1.amazonaws.com, with no path"
                .into(),
        );
    }
    Ok(())
}

/// Collects the regular files under `dir` (named relative to the page's folder, `/` between
/// folders), skipping hidden names and whatever is not a file or folder.
fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    found: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    // The folder given is named by the error around this one.
    let named = |path: &Path, error: std::io::Error| match depth {
        0 if path == dir => error,
        _ => std::io::Error::new(error.kind(), format!("{}: {error}", path.display())),
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<_, _>>())
        .map_err(|e| named(dir, e))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        if found.len() > MAX_FILES {
            return Ok(());
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            warn!(file = ?entry.path(), "the page's file name is not UTF-8: not served");
            continue;
        };
        if name.starts_with('.') || !name.chars().all(servable) {
            continue;
        }
        let path = entry.path();
        // Followed links are the operator's own choice; FIFOs, sockets and devices are skipped
        // without being opened.
        let meta = std::fs::metadata(&path).map_err(|e| named(&path, e))?;
        if meta.is_dir() && depth < MAX_DEPTH {
            walk(&path, &format!("{prefix}{name}/"), depth + 1, found)?;
        } else if meta.is_file() {
            found.push((format!("{prefix}{name}"), path));
        } else if !meta.is_dir() {
            warn!(file = %path.display(), "not a regular file: not served");
        }
    }
    Ok(())
}

/// The characters a served name may hold: what a URL path carries as it is.
fn servable(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~')
}

/// Whether a file name carries a content hash as `scripts/build-web.sh` writes it: 16
/// lowercase hexadecimal digits between the name and the extension
/// (`ferry_web.0123456789abcdef.wasm`); a date or a version is not one.
fn hashed(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    let parts: Vec<&str> = base.split('.').collect();
    match parts.as_slice() {
        [first, .., hash, _] if !first.is_empty() => {
            hash.len() == 16 && hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        }
        _ => false,
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_told_from_plain_ones() {
        assert!(hashed("ferry_web.0123456789abcdef.wasm"));
        assert!(hashed("assets/app.0123456789abcdef.js"));
        assert!(hashed("ferry_web_bg.0123456789abcdef.wasm"));
        assert!(!hashed("index.html"));
        assert!(!hashed("sw.js"));
        assert!(!hashed("0123456789abcdef.js"));
        assert!(!hashed("report.20241231.js"));
        assert!(!hashed("app.0123456789ABCDEF.js"));
        assert!(!hashed("app.0123456789abcdef.min.js"));
    }

    #[test]
    fn only_bare_origins_go_into_the_policy() {
        for good in [
            "https://s3.eu-west-1.amazonaws.com",
            "http://127.0.0.1:9000",
            "https://[::1]:8443/",
        ] {
            assert_eq!(check_origin(good), Ok(()), "{good}");
        }
        for bad in [
            "s3.example.com",
            "https://",
            "https://a.example; script-src *",
            "https://a.example/path",
            "https://a.example 'unsafe-inline'",
            "ftp://a.example",
            "https://a.example\r\nSet-Cookie: x",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }
}
