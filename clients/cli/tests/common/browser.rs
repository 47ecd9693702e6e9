//! The browser page in tests and benchmarks: the page built once, a relay serving it, and
//! `clients/web/e2e/pair.mjs` driving Debian's Chromium (headless, through Playwright).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use super::Storage;

/// The built page: `FERRY_TEST_WEB` (where `scripts/test.sh` built it), else built here once.
pub fn page() -> &'static Path {
    static PAGE: OnceLock<PathBuf> = OnceLock::new();
    PAGE.get_or_init(|| {
        if let Some(dir) = std::env::var_os("FERRY_TEST_WEB") {
            return root().join(dir);
        }
        let dir = target().join("web-test");
        let _ = std::fs::remove_dir_all(&dir);
        let built = Command::new(root().join("scripts/build-web.sh"))
            .arg(&dir)
            .status()
            .expect("scripts/build-web.sh did not start");
        assert!(built.success(), "scripts/build-web.sh failed");
        dir
    })
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The target folder: `CARGO_TARGET_DIR` (relative to the workspace, where cargo was run), or
/// the workspace's own.
pub fn target() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    root().join(dir)
}

/// Where `test`'s screenshots go (emptied first).
pub fn shots(test: &str) -> PathBuf {
    let dir = target().join("browser-shots").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A relay serving the page, whose policy lets it reach `storage` (a server's).
pub fn relay_serving(storage: &Storage) -> ferry_relay::RunningRelay {
    let served = storage.url.starts_with("s3://") || storage.url.starts_with("webdav");
    let origin = served.then(|| format!("http://127.0.0.1:{}", storage.port()));
    storage
        .runtime
        .block_on(ferry_relay::RunningRelay::start(ferry_relay::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            web: Some(page().to_owned()),
            web_connect: origin.into_iter().collect(),
            ..ferry_relay::Config::default()
        }))
        .unwrap()
}

/// The run of `clients/web/e2e/pair.mjs` that opens `url` in Chromium and taps Join, with
/// `flags`; screenshots go to `shots`.
pub fn in_browser(url: &str, shots: &Path, flags: &[&str]) -> Command {
    let e2e = root().join("clients/web/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "Playwright is not installed: run `npm ci --prefix clients/web/e2e` (scripts/test.sh does)"
    );
    // Bounded: a browser that hangs fails the test rather than the whole run.
    let mut command = Command::new("timeout");
    command
        .args(["180", "node"])
        .arg(e2e.join("pair.mjs"))
        .arg(url)
        .arg(shots)
        .args(flags);
    command
}

/// A browser run, stopped when the test ends before it does (`timeout` passes the signal on to
/// node, whose Playwright closes Chromium).
pub struct Stopped(pub std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let pid = self.0.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = self.0.wait();
        }
    }
}

/// What the page showed, from the run's last line of output. The browser's console must hold
/// no error but those `expected` (a bucket without a CORS rule for the page: [`NO_CORS`]).
pub fn said_by(
    status: std::process::ExitStatus,
    stdout: &str,
    stderr: &str,
    shots: &Path,
    expected: &[&str],
) -> Value {
    assert!(
        status.success(),
        "the browser run failed: {stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    let said: Value = serde_json::from_str(last).unwrap_or_else(|_| panic!("{stdout}"));
    let problems: Vec<&str> = said["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|problem| problem.as_str().unwrap())
        .filter(|problem| !expected.iter().any(|expected| problem.contains(expected)))
        .collect();
    assert!(problems.is_empty(), "{said}");
    println!("screenshots of the page: {}", shots.display());
    said
}

/// The page's address with the pairing `code` in its fragment.
pub fn page_url(relay: &ferry_relay::RunningRelay, code: &str) -> String {
    format!("http://{}/app/#pair={code}", relay.local_addr())
}
