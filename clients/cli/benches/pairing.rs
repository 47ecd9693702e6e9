//! How long pairing takes, with real parts: a relay and a repository on 127.0.0.1, and two
//! `ferry` processes (built with the bench profile) per pairing, `ferry pair` on a device that
//! is set up and `ferry join` on a new one. With `--path lan` there is no relay: the two run in
//! two network namespaces on a LAN of their own (root only) and meet there by mDNS, on a folder
//! store both see.
//!
//! ```text
//! cargo bench -p ferry --bench pairing                                # 50 pairings, S3
//! cargo bench -p ferry --bench pairing -- --pairings 200 --store folder
//! cargo bench -p ferry --bench pairing -- --path lan
//! ```
//!
//! The figure is the joining device's own: from the moment it has the code (before it dials
//! the relay or browses) to the moment the key is installed and the repository opened, the
//! first fetch excluded, as `ferry join` logs it, with the round trips it waited for.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Backend, Device, Offer, netns, relay, storage};

/// The pairing figures.
#[derive(clap::Parser)]
struct Options {
    /// Pairings timed.
    #[arg(long, default_value_t = 50)]
    pairings: usize,
    /// The repository's store: s3, webdav or folder (always folder on the LAN).
    #[arg(long, default_value = "s3")]
    store: String,
    /// Where the devices meet: relay, or lan (two network namespaces, no relay).
    #[arg(long, default_value = "relay")]
    path: String,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Variables given to a `ferry` process.
type Env = Vec<(&'static str, String)>;

fn main() {
    let mut options = <Options as clap::Parser>::parse();
    let on_lan = options.path == "lan";
    let network = on_lan.then(|| netns::Network::create(2).expect("--path lan needs root"));
    let hosts = network.as_ref().map(|n| (n.host(0), n.host(1)));
    if on_lan {
        options.store = "folder".into();
    }
    let backend = match options.store.as_str() {
        "folder" => Backend::Folder,
        "webdav" => Backend::WebDav,
        _ => Backend::S3,
    };
    let storage = storage(backend);
    let relay = (!on_lan).then(|| relay(&storage));
    let relay_url = relay.as_ref().map(|r| r.url());
    let laptop = Device::new();
    let mut init = vec!["init", "--store", &storage.url, "--name", "laptop"];
    init.extend(relay_url.iter().flat_map(|url| ["--relay", url.as_str()]));
    laptop.run_full(&init, None, &storage.env).ok();
    laptop.run(&["copy", "history"]).ok();

    let mut joins = Vec::new();
    let mut whole = Vec::new();
    let mut trips = Vec::new();
    let (env, holder_env): (Env, Env) = if on_lan {
        let lan = vec![
            ("FERRY_LAN_DISCOVERY", "true".into()),
            ("FERRY_LAN_PORT", "47291".into()),
        ];
        (lan.clone(), lan)
    } else {
        let port = common::free_port();
        (
            vec![("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"))],
            vec![("FERRY_LAN_PORT", port.to_string())],
        )
    };
    // A folder repository is reached through its holder's agent: it runs throughout.
    let holder = (backend == Backend::Folder)
        .then(|| common::start_agent_in(hosts.map(|h| h.0), &laptop, None, &holder_env));
    for _ in 0..options.pairings {
        let offer = Offer::start_in(hosts.map(|h| h.0), &laptop, &[], &env);
        let code = offer.code.clone();

        let desktop = Device::new();
        if on_lan {
            // A person takes longer than this to type the code; a machine that does not waits
            // out mDNS's one-second pause between multicasts of a record (RFC 6762 §6), the
            // place's announcement having just gone out.
            std::thread::sleep(Duration::from_secs(1));
        }
        let started = Instant::now();
        let mut join = vec!["join"];
        join.extend(relay_url.iter().flat_map(|url| ["--relay", url.as_str()]));
        let ran = desktop
            .run_in(
                hosts.map(|h| h.1),
                &join,
                Some(format!("{code}\n").as_bytes()),
                &env,
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
        let (status, _, stderr) = offer.finish();
        assert_eq!(status, 0, "{stderr}");
    }
    if let Some(agent) = holder {
        common::stop_agent(agent);
    }
    joins.sort();
    whole.sort();
    trips.sort();
    let at = |list: &[Duration], q: f64| list[((list.len() - 1) as f64 * q).round() as usize];
    let path = if on_lan {
        "on a LAN of two network namespaces, no relay"
    } else {
        "over a relay on 127.0.0.1"
    };
    println!(
        "pairing {path}, {} store, {} pairings:",
        options.store, options.pairings
    );
    println!(
        "  code typed → key installed and repository opened: p50 {:?}, p99 {:?}, max {:?}",
        at(&joins, 0.5),
        at(&joins, 0.99),
        joins.last().unwrap()
    );
    println!(
        "  round trips: min {}, max {}",
        trips.first().unwrap(),
        trips.last().unwrap()
    );
    println!(
        "  whole `ferry join` process, first sync and roll call included: p50 {:?}, p99 {:?}",
        at(&whole, 0.5),
        at(&whole, 0.99)
    );
}
