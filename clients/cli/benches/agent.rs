//! End-to-end figures of the agent, with real parts: two Xvfb desktops, two `ferry agent`
//! processes (built with the bench profile), an S3 server and a relay on 127.0.0.1.
//!
//! ```text
//! cargo bench -p ferry --bench agent                          # everything below
//! cargo bench -p ferry --bench agent -- --phases latency --copies 200 --scenarios RelayS3
//! cargo bench -p ferry --bench agent -- --phases idle --history 100000 --idle-secs 60
//! cargo bench -p ferry --bench agent -- --phases latency --scenarios LanVeth    # as root
//! cargo bench -p ferry --bench agent -- --phases discovery,idle-lan             # as root
//! cargo bench -p ferry --bench agent -- --phases latency --scenarios Held
//! cargo bench -p ferry --bench agent -- --phases held-join --history 100000
//! ```
//!
//! Latency: a copy made with xclip on desktop A, timed from the moment A's clipboard changes
//! (an XFixes event seen by this harness) to the moment B's clipboard holds the same text
//! (another XFixes event), for (a) relay + S3, (b) relay + folder, (c) S3 polled at the
//! fastest interval (100 ms) with no relay, (d) the LAN path alone: S3 polled once an hour, no
//! relay, B connected to A through `lan.peers` on 127.0.0.1, (e) the LAN path between two
//! network namespaces joined by veth pairs and a bridge, the agents finding each other by
//! mDNS, with the storage and the relay out of their reach, (f) the default setup: A holds a
//! folder repository and serves it on the LAN, B joined it as `lan://A` and reaches it through
//! `lan.peers` on 127.0.0.1, no relay. Copies follow each other at most five a second.
//!
//! Held join: A holds a folder repository of `--history` clips and its agent runs; B pairs with
//! it through a relay on 127.0.0.1 and reaches the repository through A: from the code typed
//! on B to `ferry join` done with the whole history there.
//!
//! Discovery (root): in those namespaces, from the start of agent B's process (A running) to
//! B's log saying a peer connected, with no address remembered, over `--trials` starts.
//!
//! Idle LAN (root): what the LAN path adds to an idle agent with one connected peer: agent A in
//! a namespace, the storage and relay forwarded in, watched for `--idle-secs` with
//! `lan.enabled = false` and then with the LAN on and B connected.
//!
//! Idle: an agent with a history of `--history` clips, after it settled, left alone for
//! `--idle-secs`: CPU time from /proc (user + system) and resident memory; on X11 with events,
//! on X11 by polling, and (where sway is installed) on a headless Wayland compositor.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use common::fill::fill;
use common::{
    Backend, Device, Display, Offer, Wayland, have, netns, pair, start_agent, start_agent_in,
    stop_agent,
};
use ferry_clipboard::{Clip, Observed, WatchConfig, Watcher};

/// The agent's end-to-end figures.
#[derive(clap::Parser)]
struct Options {
    /// Which phases run: latency, idle, discovery, idle-lan, held-join (discovery and
    /// idle-lan, and the LanVeth scenario, make network namespaces: root only).
    #[arg(long, value_delimiter = ',', default_value = "latency,idle")]
    phases: Vec<String>,
    /// Agent starts timed by the discovery phase.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Copies timed per latency scenario.
    #[arg(long, default_value_t = 200)]
    copies: usize,
    /// Clips in the history of the idle agent.
    #[arg(long, default_value_t = 100_000)]
    history: usize,
    /// How long the idle agent is watched.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Which latency scenarios run (also LanVeth, root only, and Held).
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
            Scenario::LanVeth,
            Scenario::Held,
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
    if options.phases.iter().any(|p| p == "discovery") {
        discovery(options.trials);
    }
    if options.phases.iter().any(|p| p == "idle-lan") {
        idle_lan(options.idle_secs);
    }
    if options.phases.iter().any(|p| p == "held-join") {
        held_join(options.history);
    }
}

/// Two hosts on a LAN of network namespaces, for the root-only figures.
fn network() -> netns::Network {
    netns::Network::create(2).expect("this figure takes network namespaces: run it as root")
}

/// What an agent in a namespace needs to find its peers by mDNS at the default port.
fn on_the_lan() -> Vec<(&'static str, String)> {
    vec![
        ("FERRY_LAN_DISCOVERY", "true".to_owned()),
        ("FERRY_LAN_PORT", "47291".to_owned()),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Scenario {
    RelayS3,
    RelayFolder,
    PollS3,
    LanOnly,
    LanVeth,
    Held,
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
        // The relay and the storage exist, on this machine's 127.0.0.1, out of the agents' reach.
        Scenario::LanVeth => (Backend::S3, true, "1h"),
        Scenario::Held => (Backend::Folder, false, "30s"),
    };
    let network = matches!(scenario, Scenario::LanVeth).then(network);
    let hosts = match &network {
        Some(network) => [Some(network.host(0)), Some(network.host(1))],
        None => [None, None],
    };
    let (desk_a, desk_b) = (Display::start(), Display::start());
    let (pair, held_agent) = match scenario {
        Scenario::Held => {
            let (pair, agent) = held_pair(&desk_a, poll);
            (pair, Some(agent))
        }
        _ => (pair(backend, with_relay), None),
    };
    let env = [
        ("FERRY_SYNC_POLL_INTERVAL", poll.to_owned()),
        (
            "FERRY_LOG",
            std::env::var("FERRY_LOG").unwrap_or_else(|_| "info".into()),
        ),
    ];
    let (mut env_a, mut env_b) = (env.to_vec(), env.to_vec());
    match scenario {
        Scenario::LanOnly => {
            let port = common::free_port();
            env_a.push(("FERRY_LAN_PORT", port.to_string()));
            env_b.push(("FERRY_LAN_PEERS", format!("127.0.0.1:{port}")));
        }
        Scenario::LanVeth => {
            env_a.extend(on_the_lan());
            env_b.extend(on_the_lan());
        }
        _ => {}
    }
    let agent_a = match held_agent {
        Some(agent) => agent,
        None => start_agent_in(hosts[0], &pair.a, Some(&desk_a), &env_a),
    };
    let agent_b = start_agent_in(hosts[1], &pair.b, Some(&desk_b), &env_b);
    if let Scenario::LanOnly | Scenario::LanVeth | Scenario::Held = scenario {
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

/// The default setup: A holds a folder repository (its agent running on display `desk_a`,
/// polling every `poll`), B joined it as `lan://A`, reaching A through `lan.peers`.
fn held_pair(desk_a: &Display, poll: &str) -> (common::Pair, common::Running) {
    let storage = common::storage(Backend::Folder);
    let port = common::free_port();
    let a = Device::new().with("FERRY_LAN_PORT", port.to_string());
    let code = a.init(&storage, "alpha");
    let agent = start_agent(
        &a,
        Some(desk_a),
        &[("FERRY_SYNC_POLL_INTERVAL", poll.to_owned())],
    );
    let b = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    let holder = a.json(&["status"])["device"].as_str().unwrap().to_owned();
    b.run_with_input(
        &[
            "join",
            "--store",
            &format!("lan://{holder}"),
            "--name",
            "beta",
        ],
        Some(format!("{code}\n").as_bytes()),
    )
    .ok();
    let pair = common::Pair {
        storage,
        relay: None,
        a,
        b,
        code,
    };
    (pair, agent)
}

/// Joining the default setup from another device: the code typed on B to its history whole.
fn held_join(clips: usize) {
    let storage = common::storage(Backend::Folder);
    let relay = common::relay(&storage);
    let port = common::free_port();
    let a = Device::new().with("FERRY_LAN_PORT", port.to_string());
    a.init(&storage, "alpha");
    fill(&a, &storage, clips);
    let agent = start_agent(&a, None, &[]);
    let b = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    let offer = Offer::start(&a, &["--no-qr", "--relay", &relay.url()]);
    let code = offer.code.clone();
    let started = Instant::now();
    let joined = b
        .run_with_input(
            &["--json", "join", "--relay", &relay.url(), "--name", "beta"],
            Some(format!("{code}\n").as_bytes()),
        )
        .ok();
    let took = started.elapsed();
    let joined: serde_json::Value = serde_json::from_str(joined.stdout.trim()).unwrap();
    let (status, _, stderr) = offer.finish();
    assert_eq!(status, 0, "{stderr}");
    println!(
        "held join: {} clips on B {:.2} s after the code was typed",
        joined["clips"],
        took.as_secs_f64()
    );
    stop_agent(agent);
    storage.runtime.block_on(relay.stop()).unwrap();
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

/// An agent's share of a core over `secs` once it settled (open, first fetch, connections),
/// with its resident and peak resident KiB at the end.
fn left_alone(pid: u32, secs: u64) -> (f64, u64, u64) {
    std::thread::sleep(Duration::from_secs(10));
    let (cpu0, _, _) = usage(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (cpu1, rss, peak) = usage(pid);
    let share = (cpu1 - cpu0) / started.elapsed().as_secs_f64() * 100.0;
    (share, rss, peak)
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
        let (share, rss, peak) = left_alone(agent.0.id(), secs);
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

/// When `device`'s agent log first says `what`, by the log's own clock.
fn logged_at(device: &Device, what: &str) -> Option<SystemTime> {
    let log = common::agent_log(device);
    let line = log.lines().find(|line| line.contains(what))?;
    humantime::parse_rfc3339(line.split_whitespace().next()?).ok()
}

/// The median and the slowest of `samples`, in milliseconds.
fn median_and_max(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = samples.get(samples.len() / 2).copied().unwrap_or_default();
    (ms(median), ms(samples.last().copied().unwrap_or_default()))
}

fn discovery(trials: usize) {
    let network = network();
    let (host_a, host_b) = (network.host(0), network.host(1));
    let pair = pair(Backend::S3, false);
    let (desk_a, desk_b) = (Display::start(), Display::start());
    let (mut from_start, mut from_listening) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        // Nothing remembered: only mDNS brings them together.
        for device in [&pair.a, &pair.b] {
            let _ = std::fs::remove_file(device.home().join("lan-peers"));
            let _ = std::fs::remove_file(device.home().join("agent.log"));
        }
        let agent_a = start_agent_in(Some(host_a), &pair.a, Some(&desk_a), &on_the_lan());
        let started = SystemTime::now();
        let agent_b = start_agent_in(Some(host_b), &pair.b, Some(&desk_b), &on_the_lan());
        let connected = common::eventually(Duration::from_secs(30), "B connected", || {
            logged_at(&pair.b, "LAN: a peer connected")
        });
        let listening = logged_at(&pair.b, "LAN: listening").unwrap();
        from_start.push(connected.duration_since(started).unwrap_or_default());
        from_listening.push(connected.duration_since(listening).unwrap_or_default());
        stop_agent(agent_b);
        stop_agent(agent_a);
    }
    let (start_median, start_max) = median_and_max(&mut from_start);
    let (listen_median, listen_max) = median_and_max(&mut from_listening);
    println!(
        "discovery over veth ({trials} starts, storage out of reach): from B's start to a \
         connected peer median {start_median:.0} ms, max {start_max:.0} ms; from B's LAN \
         listening median {listen_median:.0} ms, max {listen_max:.0} ms"
    );
}

fn idle_lan(secs: u64) {
    let network = network();
    let (host_a, host_b) = (network.host(0), network.host(1));
    let pair = pair(Backend::S3, true);
    let relay_port = pair.relay.as_ref().unwrap().local_addr().port();
    let sockets = tempfile::tempdir().unwrap();
    let _forwards: Vec<netns::Forward> = [host_a, host_b]
        .into_iter()
        .flat_map(|host| {
            [pair.storage.port(), relay_port].map(|port| host.forward(port, sockets.path()))
        })
        .collect();
    let (desk_a, desk_b) = (Display::start(), Display::start());
    let off = [("FERRY_LAN_ENABLED", "false".to_owned())];
    let agent = start_agent_in(Some(host_a), &pair.a, Some(&desk_a), &off);
    let (off_share, off_rss, _) = left_alone(agent.0.id(), secs);
    stop_agent(agent);
    let agent_b = start_agent_in(Some(host_b), &pair.b, Some(&desk_b), &on_the_lan());
    let agent_a = start_agent_in(Some(host_a), &pair.a, Some(&desk_a), &on_the_lan());
    common::eventually(Duration::from_secs(30), "A connected to B", || {
        let peers = pair.a.json(&["status"])["lan"]["peers"].clone();
        (peers.as_array()?.len() == 1).then_some(())
    });
    let (on_share, on_rss, _) = left_alone(agent_a.0.id(), secs);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "idle over {secs} s (S3 + relay, X11 events): LAN off CPU {off_share:.3} %, RSS \
         {:.1} MiB; LAN on (mDNS, one peer connected) CPU {on_share:.3} %, RSS {:.1} MiB; \
         the LAN adds {:.3} % CPU and {} KiB",
        mib(off_rss),
        mib(on_rss),
        on_share - off_share,
        on_rss as i64 - off_rss as i64,
    );
    stop_agent(agent_a);
    stop_agent(agent_b);
    if let Some(relay) = pair.relay {
        pair.storage.runtime.block_on(relay.stop()).unwrap();
    }
}
