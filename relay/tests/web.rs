//! The browser page served at `/app/` (`--web DIR`) over real sockets: the files, their
//! policy and caching, gzip, revalidation, and what the folder or a request may not do.

mod common;

use std::path::Path;

use common::*;
use ferry_relay::{Config, RelayError, RunningRelay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// An answer: status, headers (names in lower case), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn request(relay: &RunningRelay, method: &str, path: &str, headers: &str) -> Answer {
    let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: relay\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .unwrap()
        .unwrap();
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let body = bytes[end + 4..].to_vec();
    let answer = Answer {
        status,
        headers,
        body,
    };
    if status == 304 {
        // A 304 names no length (RFC 9110 §8.6) and has no body.
        assert_eq!(answer.header("content-length"), None, "{path}");
        assert!(answer.body.is_empty(), "{path}: a 304 with a body");
        return answer;
    }
    let length: usize = answer.header("content-length").unwrap().parse().unwrap();
    if method == "HEAD" {
        assert!(
            answer.body.is_empty(),
            "{method} {path} answered with a body"
        );
    } else {
        assert_eq!(answer.body.len(), length, "{path}: Content-Length is wrong");
    }
    answer
}

async fn get(relay: &RunningRelay, path: &str) -> Answer {
    request(relay, "GET", path, "").await
}

const WASM: &[u8] = b"\0asm\x01\0\0\0 not really, but served as it is";

/// A file of several parts as the relay sends them.
fn large() -> Vec<u8> {
    (0..1_000_000u32).map(|i| (i % 251) as u8).collect()
}

/// A built page: an index, a hashed script and module with a gzip copy, a service worker, a
/// hidden file and a file in a subfolder.
fn page(dir: &Path) {
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>Ferry</title>",
    )
    .unwrap();
    std::fs::write(dir.join("app.0123456789abcdef.js"), "export const x = 1;").unwrap();
    std::fs::write(dir.join("ferry_web.89abcdef01234567.wasm"), WASM).unwrap();
    std::fs::write(
        dir.join("ferry_web.89abcdef01234567.wasm.gz"),
        b"gzipped bytes",
    )
    .unwrap();
    std::fs::write(dir.join("report.20241231.js"), "dated, not hashed").unwrap();
    std::fs::write(dir.join("large.0123456789abcdef.bin"), large()).unwrap();
    std::fs::write(
        dir.join("sw.js"),
        "self.addEventListener('fetch', () => {});",
    )
    .unwrap();
    std::fs::write(dir.join(".secret"), "not for the web").unwrap();
    std::fs::write(dir.join(".ferry-web-build"), "").unwrap();
    std::fs::create_dir(dir.join("icons")).unwrap();
    std::fs::write(dir.join("icons/ferry.svg"), "<svg/>").unwrap();
}

async fn serving(dir: &Path, connect: &[&str]) -> RunningRelay {
    relay(Config {
        web: Some(dir.to_owned()),
        web_connect: connect.iter().map(|s| s.to_string()).collect(),
        ..Config::default()
    })
    .await
}

#[tokio::test]
async fn the_page_is_served_with_its_policy_types_and_caching() {
    let dir = tempfile::tempdir().unwrap();
    page(dir.path());
    let relay = serving(dir.path(), &["http://127.0.0.1:9000"]).await;

    let index = get(&relay, "/app/").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.body, b"<!doctype html><title>Ferry</title>");
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let policy = index.header("content-security-policy").unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "connect-src 'self' http://127.0.0.1:9000;",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(part), "{part} is not in {policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(index.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(index.header("referrer-policy"), Some("no-referrer"));

    let script = get(&relay, "/app/app.0123456789abcdef.js?v=2").await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        script.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    for plain in ["/app/sw.js", "/app/report.20241231.js"] {
        assert_eq!(
            get(&relay, plain).await.header("cache-control"),
            Some("no-cache")
        );
    }
    assert_eq!(get(&relay, "/app/icons/ferry.svg").await.body, b"<svg/>");
    let large_file = get(&relay, "/app/large.0123456789abcdef.bin").await;
    assert!(large_file.body == large(), "the large file arrived damaged");

    // The module as it is, or its gzip copy to a browser that takes gzip.
    let wasm_path = "/app/ferry_web.89abcdef01234567.wasm";
    let wasm = get(&relay, wasm_path).await;
    assert_eq!(wasm.body, WASM);
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));
    assert_eq!(wasm.header("content-encoding"), None);
    assert_eq!(wasm.header("vary"), Some("Accept-Encoding"));
    let gzip = request(
        &relay,
        "GET",
        wasm_path,
        "Accept-Encoding: gzip, deflate, br\r\n",
    )
    .await;
    assert_eq!(gzip.body, b"gzipped bytes");
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(gzip.header("content-type"), Some("application/wasm"));
    assert_ne!(
        gzip.header("etag"),
        wasm.header("etag"),
        "one tag for two bodies"
    );
    let refused = request(&relay, "GET", wasm_path, "Accept-Encoding: gzip;q=0\r\n").await;
    assert_eq!(refused.body, WASM);
    let copy = "/app/ferry_web.89abcdef01234567.wasm.gz";
    assert_eq!(
        get(&relay, copy).await.status,
        404,
        "the gzip copy is not a file of its own"
    );
    // The gzip copy revalidates under its own tag.
    let tag = gzip.header("etag").unwrap();
    let headers = format!("Accept-Encoding: gzip\r\nIf-None-Match: {tag}\r\n");
    assert_eq!(
        request(&relay, "GET", wasm_path, &headers).await.status,
        304
    );

    // A browser that has the file is told it has not changed; HEAD tells without the body.
    let etag = index.header("etag").unwrap().to_owned();
    let again = request(
        &relay,
        "GET",
        "/app/",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let changed = request(&relay, "GET", "/app/", "If-None-Match: \"other\"\r\n").await;
    assert_eq!(changed.status, 200);
    let head = request(&relay, "HEAD", "/app/sw.js", "").await;
    assert_eq!(head.status, 200);

    // `/app` and `/` lead to the page; the relay's own endpoints are unchanged.
    for path in ["/app", "/"] {
        let moved = get(&relay, path).await;
        assert_eq!(moved.status, 301, "{path}");
        assert_eq!(moved.header("location"), Some("/app/"));
    }
    assert_eq!(http_get(&relay, "/healthz").await, (200, "ok\n".into()));
}

#[tokio::test]
async fn nothing_outside_the_pages_files_is_reached() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("outside.txt"), "outside").unwrap();
    let dir = outer.path().join("page");
    std::fs::create_dir(&dir).unwrap();
    page(&dir);
    let relay = serving(&dir, &[]).await;
    for path in [
        "/app/../outside.txt",
        "/app/%2e%2e/outside.txt",
        "/app/..%2foutside.txt",
        "/app/.secret",
        "/app/icons/../index.html",
        "/app//etc/passwd",
        "/app/nothing.js",
        "/outside.txt",
        "/app/index.html\0",
    ] {
        let answer = get(&relay, path).await;
        // Not found, or not even a request (a NUL in the path).
        assert!(
            [400, 404].contains(&answer.status),
            "{path}: {}",
            answer.status
        );
        assert!(!answer.body.starts_with(b"outside"), "{path}");
    }
    let policy = get(&relay, "/app/").await;
    let policy = policy.header("content-security-policy").unwrap();
    assert!(
        policy.contains("connect-src 'self';"),
        "without --web-connect the page reaches the relay alone: {policy}"
    );
    let post = request(&relay, "POST", "/app/", "Content-Length: 0\r\n").await;
    assert_eq!(post.status, 405);
}

#[tokio::test]
async fn without_a_page_the_relay_says_how_to_serve_one() {
    let relay = relay(Config::default()).await;
    let (status, body) = http_get(&relay, "/app/").await;
    assert_eq!(status, 404);
    assert!(body.contains("--web DIR"), "{body}");
}

#[tokio::test]
async fn a_folder_that_cannot_be_served_stops_the_relay_before_it_starts() {
    let start = |dir: &Path, connect: &[&str]| {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            web: Some(dir.to_owned()),
            web_connect: connect.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        };
        async move { RunningRelay::start(config).await.map(drop) }
    };
    let dir = tempfile::tempdir().unwrap();

    let missing = start(&dir.path().join("nothing"), &[]).await.unwrap_err();
    assert!(matches!(missing, RelayError::Web { .. }), "{missing}");
    let said = missing.to_string();
    assert!(said.contains("scripts/build-web.sh"), "{said}");

    // The page's sources, or any site with an index, are not a build of the page.
    std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
    let sources = start(dir.path(), &[]).await.unwrap_err().to_string();
    assert!(sources.contains("not a build of the page"), "{sources}");
    std::fs::remove_file(dir.path().join("index.html")).unwrap();
    std::fs::write(dir.path().join(".ferry-web-build"), "").unwrap();
    let no_index = start(dir.path(), &[]).await.unwrap_err().to_string();
    assert!(no_index.contains("no index.html"), "{no_index}");

    page(dir.path());
    let injected = "https://s3.example.com; script-src *";
    let refused = start(dir.path(), &[injected]).await.unwrap_err();
    assert!(
        matches!(refused, RelayError::WebConnect { .. }),
        "{refused}"
    );

    // A folder far larger than a page is refused rather than read into memory.
    let big = std::fs::File::create(dir.path().join("huge.bin")).unwrap();
    big.set_len(65 * 1024 * 1024).unwrap();
    let huge = start(dir.path(), &[]).await.unwrap_err().to_string();
    assert!(huge.contains("more than 64 MiB"), "{huge}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_in_the_pages_folder_is_skipped_without_being_opened() {
    let dir = tempfile::tempdir().unwrap();
    page(dir.path());
    let fifo = dir.path().join("blocks.js");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opening the FIFO to read would wait for a writer forever: the relay starts at once.
    let relay = timeout(WAIT, serving(dir.path(), &[])).await.unwrap();
    assert_eq!(get(&relay, "/app/blocks.js").await.status, 404);
    assert_eq!(get(&relay, "/app/").await.status, 200);
}
