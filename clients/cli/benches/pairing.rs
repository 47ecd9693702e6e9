//! How long pairing takes, with real parts: a relay and a repository on 127.0.0.1, and two
//! `ferry` processes (built with the bench profile) per pairing, `ferry pair` on a device that
//! is set up and `ferry join` on a new one.
//!
//! ```text
//! cargo bench -p ferry --bench pairing                                # 50 pairings, S3
//! cargo bench -p ferry --bench pairing -- --pairings 200 --store folder
//! ```
//!
//! The figure is the joining device's own: from the moment it has the code (before it dials
//! the relay) to the moment the key is installed and the repository opened, the first fetch
//! excluded, as `ferry join` logs it, with the relay round trips it waited for.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Backend, Device, relay, storage};

/// The pairing figures.
#[derive(clap::Parser)]
struct Options {
    /// Pairings timed.
    #[arg(long, default_value_t = 50)]
    pairings: usize,
    /// The repository's store: s3, webdav or folder.
    #[arg(long, default_value = "s3")]
    store: String,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let options = <Options as clap::Parser>::parse();
    let backend = match options.store.as_str() {
        "folder" => Backend::Folder,
        "webdav" => Backend::WebDav,
        _ => Backend::S3,
    };
    let storage = storage(backend);
    let relay = relay(&storage);
    let laptop = Device::new();
    laptop
        .run_full(
            &[
                "init",
                "--store",
                &storage.url,
                "--relay",
                &relay.url(),
                "--name",
                "laptop",
            ],
            None,
            &storage.env,
        )
        .ok();
    laptop.run(&["copy", "history"]).ok();

    let mut joins = Vec::new();
    let mut whole = Vec::new();
    let mut trips = Vec::new();
    for _ in 0..options.pairings {
        let mut offer = laptop
            .command(&["--json", "pair"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(offer.stdout.take().unwrap()).lines();
        let first: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let code = first["code"].as_str().unwrap().to_owned();

        let desktop = Device::new();
        let started = Instant::now();
        let ran = desktop
            .run_with_input(
                &["join", "--relay", &relay.url()],
                Some(format!("{code}\n").as_bytes()),
            )
            .ok();
        whole.push(started.elapsed());
        let logged = ran
            .stderr
            .lines()
            .find(|l| l.contains("key installed and repository opened"))
            .unwrap_or_else(|| panic!("no timing in\n{}", ran.stderr));
        let field = |name: &str| -> u64 {
            logged
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        joins.push(Duration::from_millis(field("elapsed_ms")));
        trips.push(field("round_trips"));
        assert!(offer.wait().unwrap().success());
    }
    joins.sort();
    whole.sort();
    trips.sort();
    let at = |list: &[Duration], q: f64| list[((list.len() - 1) as f64 * q).round() as usize];
    println!(
        "pairing over a relay on 127.0.0.1, {} store, {} pairings:",
        options.store, options.pairings
    );
    println!(
        "  code typed → key installed and repository opened: p50 {:?}, p99 {:?}, max {:?}",
        at(&joins, 0.5),
        at(&joins, 0.99),
        joins.last().unwrap()
    );
    println!(
        "  relay round trips: min {}, max {}",
        trips.first().unwrap(),
        trips.last().unwrap()
    );
    println!(
        "  whole `ferry join` process, first sync and roll call included: p50 {:?}, p99 {:?}",
        at(&whole, 0.5),
        at(&whole, 0.99)
    );
}
