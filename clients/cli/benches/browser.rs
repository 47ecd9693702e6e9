//! End-to-end figures of the browser page, with real parts: an S3 server with a CORS rule for
//! the page and a relay serving the page, on 127.0.0.1; a CLI device with a history; Debian's
//! Chromium (headless, driven by `clients/web/e2e/bench.mjs`) paired as a browser device.
//!
//! ```text
//! cargo bench -p ferry --bench browser                       # 1,000 clips, 30 copies
//! cargo bench -p ferry --bench browser -- --clips 10000 --copies 50
//! ```
//!
//! First screen, cold: from the tap on Join (pairing included) to the newest clip on screen,
//! the history read from the bucket. Warm: the page opened again, from its navigation to the
//! same screen, from what the browser kept. Copy latency: from the start of `ferry copy TEXT`
//! on the CLI device (it uploads and announces on the relay) to the text on the open page.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::browser::{Stopped, page, relay_serving, root};
use common::fill::fill;
use common::{Backend, Device, Offer, storage};
use serde_json::Value;

/// The page's figures.
#[derive(clap::Parser)]
struct Options {
    /// Clips in the CLI device's history.
    #[arg(long, default_value_t = 1000)]
    clips: usize,
    /// Copies timed from the CLI device to the open page.
    #[arg(long, default_value_t = 30)]
    copies: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let options = <Options as clap::Parser>::parse();
    let storage = storage(Backend::S3);
    let relay = relay_serving(&storage);
    storage.allow_origin(&format!("http://{}", relay.local_addr()));
    let laptop = Device::new();
    laptop.init_with_relay(&storage, "laptop", Some(&relay.url()));
    fill(&laptop, &storage, options.clips);
    let newest = format!(
        "history clip {}: some text of a typical length for a copied line",
        options.clips - 1
    );
    eprintln!("page built in {}", page().display());
    let offer = Offer::start(&laptop, &["--no-qr", "--browser"]);
    let link = offer.link.clone().expect("a link for the browser");
    let mut browser = Stopped(
        std::process::Command::new("timeout")
            .args(["900", "node"])
            .arg(root().join("clients/web/e2e/bench.mjs"))
            .args([link.as_str(), newest.as_str(), &options.copies.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("node did not start"),
    );
    let mut lines = BufReader::new(browser.0.stdout.take().unwrap()).lines();
    let mut next = || -> Value {
        let line = lines.next().expect("the browser run ended early").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"))
    };
    let cold = next()["cold_ms"].as_f64().unwrap();
    let (code, events, stderr) = offer.finish();
    assert_eq!(code, 0, "{events:?}\n{stderr}");
    let warm = next()["warm_ms"].as_f64().unwrap();
    let mut latencies = Vec::new();
    for i in 0..options.copies {
        assert_eq!(next()["ready"], i, "the browser run lost its place");
        let started = Instant::now();
        laptop.run(&["copy", &format!("latency {i}")]).ok();
        assert_eq!(next()["seen"], i, "the browser run lost its place");
        latencies.push(started.elapsed());
        // Copies a person makes, not a burst.
        std::thread::sleep(Duration::from_millis(200));
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(latencies[((latencies.len() - 1) as f64 * q).round() as usize]);
    println!(
        "browser page, {} clips: first screen cold {cold:.0} ms (Join, pairing included), warm \
         {warm:.0} ms; copy on the CLI device to the open page over {} copies: p50 {:.0} ms, p90 \
         {:.0} ms, max {:.0} ms",
        options.clips,
        latencies.len(),
        at(0.5),
        at(0.9),
        at(1.0),
    );
}
