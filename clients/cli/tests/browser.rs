//! The browser page (`clients/web`) as a person meets it: built by `scripts/build-web.sh`,
//! served by the relay at `/app/`, opened in Debian's Chromium (headless, driven by Playwright:
//! `clients/web/e2e`), and paired with a real `ferry pair` through that relay.
//!
//! Screenshots of the page at phone and desktop size are written under the target folder's
//! `browser-shots/`, named after the test.

mod common;

use std::path::Path;

use common::browser::*;
use common::*;
use ferry_test_kit::Backend;
use serde_json::Value;

/// Opens `url` in Chromium, taps Join, and reads what the page shows; `expected` as for
/// [`said_by`].
fn join_in_browser(url: &str, shots: &Path, reload: bool, expected: &[&str]) -> Value {
    let flags: &[&str] = if reload { &["--reload"] } else { &[] };
    let ran = in_browser(url, shots, flags)
        .output()
        .expect("node did not start");
    said_by(
        ran.status,
        &String::from_utf8_lossy(&ran.stdout),
        &String::from_utf8_lossy(&ran.stderr),
        shots,
        expected,
    )
}

/// What Chromium writes to the console when a bucket's answer has no CORS header for the page.
const NO_CORS: &[&str] = &["has been blocked by CORS policy", "net::ERR_FAILED"];

/// The bucket has no CORS rule for the relay's page (as a new bucket has none): the page pairs,
/// then says what stops it from reading and who can fix it.
#[test]
fn a_browser_pairs_from_the_link_stays_paired_and_says_when_the_bucket_lets_no_page_in() {
    let storage = storage(Backend::S3);
    let relay = relay_serving(&storage);
    let laptop = Device::new();
    laptop.init_with_relay(&storage, "laptop", Some(&relay.url()));
    // `ferry pair --browser` gives the link to the page that the relay serves.
    let offer = Offer::start(&laptop, &["--no-qr", "--browser"]);
    let link = offer.link.clone().expect("a link for the browser");
    assert_eq!(link, page_url(&relay, &offer.code), "{}", offer.uri);

    let said = join_in_browser(&link, &shots("pairs_from_the_link"), true, NO_CORS);
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
    // Without a CORS rule the bucket does not let the page read: it says so, and what to do.
    let status = said["status"].as_str().unwrap();
    let origin = format!("http://127.0.0.1:{}", storage.port());
    for words in [
        &format!("bucket at {origin} answers, but has no CORS rule"),
        "ferry doctor",
    ] {
        assert!(status.contains(words), "{status}");
    }

    let (code, events, stderr) = offer.finish();
    assert_eq!(code, 0, "{events:?}\n{stderr}");
    // `ferry doctor` sends the preflights a browser sends, and prints the rule to add.
    let page = format!("http://{}", relay.local_addr());
    let browser_row = || {
        let rows: Value = serde_json::from_str(&laptop.run(&["--json", "doctor"]).stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .find(|row| row["check"] == "browser")
            .cloned()
            .unwrap_or_else(|| panic!("no browser check: {rows}"))
    };
    let row = browser_row();
    let detail = row["detail"].as_str().unwrap();
    assert_eq!(row["warning"], true, "{row}");
    for words in [
        format!("does not let the page at {page}/app/ read it"),
        "aws s3api put-bucket-cors".into(),
        format!("\"AllowedOrigins\":[\"{page}\"]"),
        format!("MINIO_API_CORS_ALLOW_ORIGIN={page}"),
    ] {
        assert!(detail.contains(&words), "{words}: {detail}");
    }
    // Once the rule is there, doctor says so.
    storage.allow_origin(&page);
    let row = browser_row();
    assert_eq!(row["ok"], true, "{row}");
    assert_eq!(row["info"], false, "{row}");
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
fn the_page_shows_the_history_takes_a_new_copy_live_copies_a_clip_and_keeps_it_offline() {
    use std::io::{BufRead, BufReader, Read};

    let storage = storage(Backend::S3);
    let relay = relay_serving(&storage);
    // The bucket's CORS rule lets the relay's page in.
    storage.allow_origin(&format!("http://{}", relay.local_addr()));
    let laptop = Device::new();
    laptop.init_with_relay(&storage, "laptop", Some(&relay.url()));
    laptop.run(&["copy", "the first clip"]).ok();
    let offer = Offer::start(&laptop, &["--no-qr"]);

    let shots = shots("history");
    let mut browser = Stopped(
        in_browser(
            &page_url(&relay, &offer.code),
            &shots,
            &[
                "--history",
                "the first clip",
                "--then",
                "the second clip",
                "--send",
                "sent from the phone",
                "--pin",
                "the first clip",
                "--offline-reload",
                &format!("http://127.0.0.1:{}", storage.port()),
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node did not start"),
    );
    let browser = &mut browser.0;
    let mut lines = BufReader::new(browser.stdout.take().unwrap());
    let mut shown = String::new();
    lines.read_line(&mut shown).unwrap();
    let (code, events, stderr) = offer.finish();
    assert_eq!(code, 0, "{events:?}\n{stderr}\n{shown}");
    let shown: Value = serde_json::from_str(shown.trim()).unwrap_or_else(|_| {
        let mut rest = String::new();
        let _ = browser.stderr.take().unwrap().read_to_string(&mut rest);
        panic!("the page did not show the history: {shown}\n{rest}")
    });
    println!("from Join to the history on screen: {} ms", shown["shown"]);

    // Copied on the laptop while the page is open: it shows without a reload.
    laptop.run(&["copy", "the second clip"]).ok();
    let mut rest = String::new();
    lines.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    browser
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    // The reload without the bucket logs its refused requests.
    let offline = ["net::ERR_INTERNET_DISCONNECTED"];
    let said = said_by(browser.wait().unwrap(), &rest, &stderr, &shots, &offline);
    let history = &said["history"];
    assert_eq!(
        history["texts"],
        serde_json::json!(["sent from the phone", "the second clip", "the first clip"]),
        "{said}"
    );
    println!("the second clip appeared after {} ms", history["second_ms"]);
    // Tapped, the clip is on the browser's clipboard.
    assert_eq!(history["clipboard"], "the second clip", "{said}");
    assert_eq!(history["toast"], "Copied", "{said}");
    assert_eq!(history["status"], "", "{said}");
    // What the page sent, and its pin, reach the laptop as any device's do; the browser is
    // in the roster now, by its own registration.
    assert_eq!(history["sent"], true, "{said}");
    assert_eq!(history["pinned"], "true", "{said}");
    laptop.run(&["sync"]).ok();
    let clips = laptop.json(&["history"]);
    let texts: Vec<&str> = clips
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|clip| clip["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["sent from the phone", "the second clip", "the first clip"],
        "{clips}"
    );
    let first = clips
        .as_array()
        .unwrap()
        .iter()
        .find(|clip| clip["text"] == "the first clip")
        .unwrap();
    assert_eq!(first["pinned"], true, "{clips}");
    let devices = laptop.json(&["devices"]);
    let browser = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|device| device["name"].as_str().unwrap().ends_with("(browser)"))
        .unwrap_or_else(|| panic!("{devices}"));
    assert_eq!(browser["registered"], true, "{devices}");
    // Opened again with the bucket out of reach, the page shows what it kept, and says why
    // nothing newer comes.
    let offline = &history["offline"];
    assert_eq!(offline["texts"], history["texts"], "{said}");
    let status = offline["status"].as_str().unwrap();
    assert!(
        status.contains("cannot be reached from this browser"),
        "{status}"
    );
}

/// A segment damaged in storage is set aside by the page, as by any device, with a visible
/// note; what came before it shows. A second tab of the page says it does not run beside the
/// first.
#[test]
fn a_damaged_segment_is_set_aside_by_the_page_and_the_rest_shows() {
    let storage = storage(Backend::S3);
    let relay = relay_serving(&storage);
    storage.allow_origin(&format!("http://{}", relay.local_addr()));
    let laptop = Device::new();
    laptop.init_with_relay(&storage, "laptop", Some(&relay.url()));
    laptop.run(&["copy", "the first clip"]).ok();
    laptop.run(&["copy", "the damaged clip"]).ok();
    let status = laptop.json(&["status"]);
    let segment = storage.files().join(format!(
        "ferry/v1/log/{}/{:016x}",
        status["tag"].as_str().unwrap(),
        status["last_seq"].as_u64().unwrap()
    ));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[80] ^= 4;
    std::fs::write(&segment, &bytes).unwrap();
    let offer = Offer::start(&laptop, &["--no-qr"]);

    let shots = shots("damaged_segment");
    let ran = in_browser(
        &page_url(&relay, &offer.code),
        &shots,
        &["--history", "the first clip", "--second-tab"],
    )
    .output()
    .expect("node did not start");
    let said = said_by(
        ran.status,
        &String::from_utf8_lossy(&ran.stdout),
        &String::from_utf8_lossy(&ran.stderr),
        &shots,
        &[],
    );
    let (code, events, stderr) = offer.finish();
    assert_eq!(code, 0, "{events:?}\n{stderr}");
    let history = &said["history"];
    assert_eq!(
        history["texts"],
        serde_json::json!(["the first clip"]),
        "{said}"
    );
    let aside = history["setAside"].as_array().unwrap();
    assert_eq!(aside.len(), 1, "{said}");
    let note = aside[0].as_str().unwrap();
    assert!(note.contains("ferry/v1/log/"), "{note}");
    // A second tab of the page does not run as the same device beside the first.
    let second = history["secondTab"].as_str().unwrap();
    assert!(second.contains("open in another tab"), "{second}");
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
        &[],
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
        let said = join_in_browser(&page_url(&relay, code), &shots("unusable_code"), false, &[]);
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
    // Asked for a browser, `ferry pair` refuses at once, before any code is shown.
    let refused = laptop.run(&["pair", "--browser", "--no-qr"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("a browser reaches only an S3-compatible bucket")
            && refused.stderr.contains("ferry store move"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stdout.contains("Pairing code"),
        "{}",
        refused.stdout
    );
    // Without `--browser`, a browser that opens the link hears why from the page.
    let offer = Offer::start(&laptop, &["--no-qr"]);

    let said = join_in_browser(
        &page_url(&relay, &offer.code),
        &shots("folder_refused"),
        false,
        &[],
    );
    assert_eq!(said["paired"], false, "{said}");
    let failure = said["failure"].as_str().unwrap();
    assert!(failure.contains("ferry store move"), "{failure}");

    let reason = offer.failed();
    assert!(reason.contains("a browser cannot read it"), "{reason}");
    stop_agent(agent);
}
