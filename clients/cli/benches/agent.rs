//! End-to-end figures of the agent, with real parts: two Xvfb desktops, two `ferry agent`
//! processes (built with the bench profile), an S3 server and a relay on 127.0.0.1.
//!
//! ```text
//! cargo bench -p ferry --bench agent                          # everything below
//! cargo bench -p ferry --bench agent -- --phases latency --copies 200 --scenarios RelayS3
//! cargo bench -p ferry --bench agent -- --phases idle --history 100000 --idle-secs 60
//! ```
//!
//! Latency: a copy made with xclip on desktop A, timed from the moment A's clipboard changes
//! (an XFixes event seen by this harness) to the moment B's clipboard holds the same text
//! (another XFixes event), for (a) relay + S3, (b) relay + folder, (c) S3 polled at the
//! fastest interval (100 ms) with no relay, (d) the LAN path alone: S3 polled once an hour, no
//! relay, B connected to A through `lan.peers` on 127.0.0.1. Copies follow each other at most
//! five a second.
//!
//! Idle: an agent with a history of `--history` clips, after it settled, left alone for
//! `--idle-secs`: CPU time from /proc (user + system) and resident memory; on X11 with events,
//! on X11 by polling, and (where sway is installed) on a headless Wayland compositor.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Backend, Device, Display, Storage, Wayland, have, pair, start_agent, stop_agent};
use ferry_clipboard::{Clip, Observed, WatchConfig, Watcher};
use ferry_core::ClipContent;
use ferry_protocol::{Identity, SyncKey};
use ferry_store::s3::Timeouts;
use ferry_store::{FolderStore, S3Store, Store};
use ferry_sync::{Engine, EngineConfig};

/// The agent's end-to-end figures.
#[derive(clap::Parser)]
struct Options {
    /// Which phases run: latency, idle.
    #[arg(long, value_delimiter = ',', default_value = "latency,idle")]
    phases: Vec<String>,
    /// Copies timed per latency scenario.
    #[arg(long, default_value_t = 200)]
    copies: usize,
    /// Clips in the history of the idle agent.
    #[arg(long, default_value_t = 100_000)]
    history: usize,
    /// How long the idle agent is watched.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Which latency scenarios run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "RelayS3,RelayFolder,PollS3,LanOnly"
    )]
    scenarios: Vec<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn options() -> Options {
    <Options as clap::Parser>::parse()
}

fn main() {
    let options = options();
    for tool in ["Xvfb", "xclip"] {
        assert!(
            common::have(tool),
            "{tool} is needed: scripts/test.sh installs it"
        );
    }
    if options.phases.iter().any(|p| p == "latency") {
        for scenario in [
            Scenario::RelayS3,
            Scenario::RelayFolder,
            Scenario::PollS3,
            Scenario::LanOnly,
        ] {
            let name = format!("{scenario:?}");
            if options
                .scenarios
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&name))
            {
                latency(scenario, options.copies);
            }
        }
    }
    if options.phases.iter().any(|p| p == "idle") {
        idle(options.history, options.idle_secs);
    }
}

#[derive(Debug, Clone, Copy)]
enum Scenario {
    RelayS3,
    RelayFolder,
    PollS3,
    LanOnly,
}

/// Texts that appear on a display's clipboard, with when.
fn watch(display: &Display) -> (Watcher, mpsc::Receiver<(Instant, String)>) {
    let (tx, rx) = mpsc::channel();
    let watcher = Watcher::start_on(Some(&display.name), WatchConfig::default(), move |seen| {
        if let Observed::Clip(Clip::Text(text)) = seen {
            let _ = tx.send((Instant::now(), text));
        }
        true
    })
    .unwrap();
    (watcher, rx)
}

fn wait_for(
    rx: &mpsc::Receiver<(Instant, String)>,
    text: &str,
    limit: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok((at, seen)) if seen == text => return Some(at),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

fn latency(scenario: Scenario, copies: usize) {
    let (backend, with_relay, poll) = match scenario {
        Scenario::RelayS3 => (Backend::S3, true, "30s"),
        Scenario::RelayFolder => (Backend::Folder, true, "30s"),
        Scenario::PollS3 => (Backend::S3, false, "100ms"),
        Scenario::LanOnly => (Backend::S3, false, "1h"),
    };
    let pair = pair(backend, with_relay);
    let (desk_a, desk_b) = (Display::start(), Display::start());
    let env = [
        ("FERRY_SYNC_POLL_INTERVAL", poll.to_owned()),
        (
            "FERRY_LOG",
            std::env::var("FERRY_LOG").unwrap_or_else(|_| "info".into()),
        ),
    ];
    let (mut env_a, mut env_b) = (env.to_vec(), env.to_vec());
    if let Scenario::LanOnly = scenario {
        let port = common::free_port();
        env_a.push(("FERRY_LAN_PORT", port.to_string()));
        env_b.push(("FERRY_LAN_PEERS", format!("127.0.0.1:{port}")));
    }
    let agent_a = start_agent(&pair.a, Some(&desk_a), &env_a);
    let agent_b = start_agent(&pair.b, Some(&desk_b), &env_b);
    if let Scenario::LanOnly = scenario {
        common::eventually(Duration::from_secs(15), "B connected to A", || {
            let peers = pair.b.json(&["status"])["lan"]["peers"].clone();
            (peers.as_array()?.len() == 1).then_some(())
        });
    }
    let (_watch_a, seen_a) = watch(&desk_a);
    let (_watch_b, seen_b) = watch(&desk_b);
    let mut samples = Vec::with_capacity(copies);
    let mut missed = Vec::new();
    let mut owner = None;
    for i in 0..copies + 5 {
        let text = format!("latency probe {i} of {scenario:?}");
        owner = Some(desk_a.copy("UTF8_STRING", text.as_bytes()));
        let Some(copied) = wait_for(&seen_a, &text, Duration::from_secs(5)) else {
            missed.push(format!("{i} (not seen on A)"));
            continue;
        };
        let Some(arrived) = wait_for(&seen_b, &text, Duration::from_secs(10)) else {
            missed.push(format!("{i}"));
            for (name, device) in [("A", &pair.a), ("B", &pair.b)] {
                let log = common::agent_log(device);
                let tail: Vec<&str> = log.lines().rev().take(12).collect();
                eprintln!(
                    "--- {name} after miss {i}:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            continue;
        };
        if arrived.duration_since(copied) > Duration::from_millis(500) {
            eprintln!("slow: copy {i} took {:?}", arrived.duration_since(copied));
        }
        // The first few warm connections and caches up.
        if i >= 5 {
            samples.push(arrived.duration_since(copied));
        }
        // Five copies a second at most: a fast person, and under the relay's publish rate.
        std::thread::sleep(Duration::from_millis(200).saturating_sub(copied.elapsed()));
    }
    drop(owner);
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "latency {scenario:?}: {} copies, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, missed {missed:?}",
        samples.len(),
        ms(at(0.50)),
        ms(at(0.90)),
        ms(at(0.99)),
        ms(samples.last().copied().unwrap_or_default()),
    );
    stop_agent(agent_a);
    stop_agent(agent_b);
    if let Some(relay) = pair.relay {
        pair.storage.runtime.block_on(relay.stop()).unwrap();
    }
}

/// Fills `device`'s database with `clips` clips (and uploads them) through the engine itself.
fn fill(device: &Device, storage: &Storage, clips: usize) {
    let secrets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(device.home().join("secrets.json")).unwrap())
            .unwrap();
    let key = SyncKey::from_recovery_code(secrets["sync-key"].as_str().unwrap()).unwrap();
    let identity = Identity::from_hex(secrets["device-identity"].as_str().unwrap()).unwrap();
    let store: std::sync::Arc<dyn Store> = if storage.url.starts_with("s3://") {
        let ferry_store::url::StoreUrl::S3(location) =
            ferry_store::url::StoreUrl::parse(&storage.url).unwrap()
        else {
            unreachable!()
        };
        std::sync::Arc::new(S3Store::new(
            &location,
            common::servers::credentials(),
            Timeouts::default(),
        ))
    } else {
        std::sync::Arc::new(FolderStore::open(storage.url.trim_start_matches("file://")).unwrap())
    };
    storage.runtime.block_on(async {
        let mut engine = Engine::open(
            store,
            key.keys(),
            identity,
            &device.home().join("ferry.db"),
            EngineConfig::default(),
        )
        .await
        .unwrap();
        let started = Instant::now();
        for i in 0..clips {
            engine
                .copy(ClipContent::Text(format!(
                    "history clip {i}: some text of a typical length for a copied line"
                )))
                .unwrap();
            if i % 5_000 == 4_999 {
                engine.upload().await.unwrap();
            }
        }
        engine.upload().await.unwrap();
        eprintln!(
            "filled {clips} clips in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    });
}

/// (user + system CPU seconds, resident KiB, peak resident KiB) of a process.
fn usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (ticks as f64 / per_second, kib("VmRSS:"), kib("VmHWM:"))
}

fn idle(history: usize, secs: u64) {
    let pair = pair(Backend::S3, true);
    fill(&pair.a, &pair.storage, history);
    let desk = Display::start();
    // The first start folds the filled operations into the checkpoint; the figures are of the
    // starts after it, as every later day of an agent's life is.
    let first = start_agent(&pair.a, Some(&desk), &[]);
    std::thread::sleep(Duration::from_secs(10));
    let (_, rss, peak) = usage(first.0.id());
    println!(
        "first start after recording {history} clips: RSS {:.1} MiB (peak {:.1} MiB)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    stop_agent(first);
    // On X11 with events and by polling, then on a Wayland compositor (sway) with events.
    let wayland = have("sway").then(Wayland::start);
    let mut modes = vec![("X11 events", false), ("X11 polling", true)];
    if wayland.is_some() {
        modes.push(("Wayland events", false));
    }
    for (mode, poll) in modes {
        let mut env = vec![("FERRY_CLIPBOARD_POLL", poll.to_string())];
        let x11 = match (&wayland, mode.starts_with("Wayland")) {
            (Some(wayland), true) => {
                env.extend(wayland.env());
                None
            }
            _ => Some(&desk),
        };
        let agent = start_agent(&pair.a, x11, &env);
        let pid = agent.0.id();
        // Let it settle: open, first fetch, relay connection.
        std::thread::sleep(Duration::from_secs(10));
        let (cpu0, _, _) = usage(pid);
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let (cpu1, rss, peak) = usage(pid);
        let share = (cpu1 - cpu0) / started.elapsed().as_secs_f64() * 100.0;
        println!(
            "idle ({mode}, {history} clips, S3 + relay, poll every 30 s): CPU {share:.3} % of a core over {secs} s, RSS {:.1} MiB (peak {:.1} MiB)",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
        stop_agent(agent);
    }
    if let Some(relay) = pair.relay {
        pair.storage.runtime.block_on(relay.stop()).unwrap();
    }
}
