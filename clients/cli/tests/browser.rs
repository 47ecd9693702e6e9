//! The browser page (`clients/web`) as a person meets it: built by `scripts/build-web.sh`,
//! served by the relay at `/app/`, opened in Debian's Chromium (headless, driven by Playwright:
//! `clients/web/e2e`), and paired with a real `ferry pair` through that relay.
//!
//! Screenshots of the page at phone and desktop size are written under the target folder's
//! `browser-shots/`, named after the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use ferry_test_kit::Backend;
use serde_json::Value;

/// The built page: `FERRY_TEST_WEB` (where `scripts/test.sh` built it), else built here once.
fn page() -> &'static Path {
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

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The target folder: `CARGO_TARGET_DIR` (relative to the workspace, where cargo was run), or
/// the workspace's own.
fn target() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    root().join(dir)
}

/// Where `test`'s screenshots go (emptied first).
fn shots(test: &str) -> PathBuf {
    let dir = target().join("browser-shots").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A relay serving the page, whose policy lets it reach `storage` (a server's).
fn relay_serving(storage: &Storage) -> ferry_relay::RunningRelay {
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

/// Opens `url` in Chromium, taps Join, and reads what the page shows (`clients/web/e2e/pair.mjs`).
fn join_in_browser(url: &str, shots: &Path, reload: bool) -> Value {
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
        .arg(shots);
    if reload {
        command.arg("--reload");
    }
    let ran = command.output().expect("node did not start");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "the browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let said: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}"));
    assert_eq!(said["problems"], serde_json::json!([]), "{said}");
    println!("screenshots of the page: {}", shots.display());
    said
}

fn page_url(relay: &ferry_relay::RunningRelay, code: &str) -> String {
    format!("http://{}/app/#pair={code}", relay.local_addr())
}

#[test]
fn a_browser_pairs_from_the_link_and_stays_paired() {
    let storage = storage(Backend::S3);
    let relay = relay_serving(&storage);
    let laptop = Device::new();
    laptop.init_with_relay(&storage, "laptop", Some(&relay.url()));
    let offer = Offer::start(&laptop, &["--no-qr"]);

    let said = join_in_browser(
        &page_url(&relay, &offer.code),
        &shots("pairs_from_the_link"),
        true,
    );
    assert_eq!(said["paired"], true, "{said}");
    assert_eq!(said["by"], "laptop", "{said}");
    assert_eq!(said["store"], storage.url.as_str(), "{said}");
    // The code left the address bar once used.
    assert!(
        !said["address"].as_str().unwrap().contains("pair="),
        "{said}"
    );
    // Opened again, the page is still paired.
    assert_eq!(said["reloaded"]["paired"], true, "{said}");

    let (code, events, stderr) = offer.finish();
    assert_eq!(code, 0, "{events:?}\n{stderr}");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "joined", "{events:?}");
    let name = last["name"].as_str().unwrap();
    assert!(name.ends_with("(browser)"), "{name}");
    assert!(said["title"].as_str().unwrap().contains(name), "{said}");

    // The laptop vouched for the browser's own keys: it enters the roster when it writes its
    // registration, as any device does.
    assert_eq!(last["device_id"].as_str().unwrap().len(), 32, "{last}");
}

#[test]
fn a_wrong_code_in_the_link_ends_both_sides() {
    let storage = storage(Backend::S3);
    let relay = relay_serving(&storage);
    let laptop = Device::new();
    laptop.init_with_relay(&storage, "laptop", Some(&relay.url()));
    let offer = Offer::start(&laptop, &["--no-qr"]);
    // The same number, so the same meeting place, with other words.
    let shown = offer.parsed();
    let [first, second] = shown.words();
    let typed = ferry_protocol::pairing::PairingCode::from_parts(
        shown.nameplate(),
        [(first + 1) % 2048, second],
    );

    let said = join_in_browser(
        &page_url(&relay, &typed.to_string()),
        &shots("wrong_code"),
        false,
    );
    assert_eq!(said["paired"], false, "{said}");
    let failure = said["failure"].as_str().unwrap();
    assert!(failure.contains("Wrong code"), "{failure}");

    let reason = offer.failed();
    assert!(reason.contains("wrong code"), "{reason}");
    assert_eq!(laptop.json(&["devices"]).as_array().unwrap().len(), 1);
}

#[test]
fn a_link_whose_code_cannot_work_is_refused_before_anything_is_asked() {
    let storage = storage(Backend::S3);
    let relay = relay_serving(&storage);
    for (code, says) in [
        ("802-xxxx-yyyy", "not one of the pairing words"),
        ("hello", "three digits"),
    ] {
        let said = join_in_browser(&page_url(&relay, code), &shots("unusable_code"), false);
        assert_eq!(
            said["joining"], false,
            "{code}: the page offered to join: {said}"
        );
        let failure = said["failure"].as_str().unwrap();
        assert!(failure.contains(says), "{code}: {failure}");
    }
}

#[test]
fn a_folder_repository_is_refused_by_the_page_and_ferry_pair_says_why() {
    let storage = storage(Backend::Folder);
    let relay = relay_serving(&storage);
    let port = free_port();
    let laptop = Device::new().with("FERRY_LAN_PORT", port.to_string());
    laptop.init_with_relay(&storage, "laptop", Some(&relay.url()));
    let agent = start_agent(&laptop, None, &[]);
    let _logs = LogsOnFailure(vec![&laptop]);
    let offer = Offer::start(&laptop, &["--no-qr"]);

    let said = join_in_browser(
        &page_url(&relay, &offer.code),
        &shots("folder_refused"),
        false,
    );
    assert_eq!(said["paired"], false, "{said}");
    let failure = said["failure"].as_str().unwrap();
    assert!(failure.contains("ferry store move"), "{failure}");

    let reason = offer.failed();
    assert!(reason.contains("a browser cannot read it"), "{reason}");
    stop_agent(agent);
}
