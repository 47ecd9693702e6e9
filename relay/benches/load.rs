//! Load harness for the relay: starts the release `ferry-relay` binary as its own process and
//! drives it over loopback, then prints:
//!
//! 1. relay RSS per idle subscriber, at each count of `--idle` (one topic per subscriber, as
//!    devices of different people), above the RSS of the started, empty relay;
//! 2. fan-out throughput: `--publishers` connections publishing as fast as the relay takes them
//!    to topics of `--group` subscribers each, counted where the subscribers receive;
//! 3. hop latency (publish sent to message received) p50/p99/max at each of `--rates` messages
//!    per second spread over pairs of devices, with the servers' CPU time per delivery.
//!
//! With `--brokers redis,nats` the idle and latency phases also run scaled out: two relay
//! processes share publishes through a `redis-server` or `nats-server` started for the run; in
//! the latency phase every sender is on one instance and its partner on the other, so each hop
//! crosses the broker, and the CPU time is the sum over both relays and the broker.
//!
//! ```text
//! cargo bench -p ferry-relay --bench load -- [--idle 10000,19000] [--seconds 5]
//!     [--publishers 20] [--group 50] [--rates 1000,10000] [--phases idle,fanout,latency]
//!     [--brokers none,redis,nats]
//! ```
//!
//! Clients and relay share the machine, so the throughput figures include the harness's own
//! cost of reading every delivery. Each process may hold at most as many sockets as its open-
//! file limit allows; the harness raises its own soft limit to the hard limit.
//!
//! `FERRY_RELAY_BENCH_WRAP` runs the relay under another program, for example
//! `FERRY_RELAY_BENCH_WRAP="valgrind --tool=massif --massif-out-file=/tmp/relay.massif"` to see
//! where its memory goes (the relay is stopped with SIGTERM so that such tools write their report).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_protocol::TopicId;
use ferry_protocol::relay::wire::{Event, Request};
use ferry_test_kit::brokers::{Broker, Kind};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

type Ws = WebSocketStream<TcpStream>;

/// The size of a sealed relay hint.
const HINT_LEN: usize = 309;

/// The relay's load figures.
#[derive(clap::Parser)]
struct Options {
    /// Idle connections held, one run per number.
    #[arg(long, value_delimiter = ',', default_value = "10000,19000")]
    idle: Vec<usize>,
    /// How long the fan-out and latency phases run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Publishing devices in the fan-out phase.
    #[arg(long, default_value_t = 20)]
    publishers: usize,
    /// Subscribers per publisher's topic.
    #[arg(long, default_value_t = 50)]
    group: usize,
    /// Publishes a second in the latency phase, one run per number.
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    rates: Vec<u64>,
    /// Which phases run: idle, fanout, latency.
    #[arg(long, value_delimiter = ',', default_value = "idle,fanout,latency")]
    phases: Vec<String>,
    /// Run the idle and latency phases on one relay (none), or on two sharing a broker (redis,
    /// nats).
    #[arg(long, value_delimiter = ',', default_value = "none")]
    brokers: Vec<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn options() -> Options {
    <Options as clap::Parser>::parse()
}

/// The relay under test, in its own process.
struct Relay {
    child: Child,
    address: SocketAddr,
}

impl Relay {
    /// A relay process; with `broker`, once it is connected to it.
    fn start(broker: Option<&Broker>) -> Relay {
        let mut command = match std::env::var("FERRY_RELAY_BENCH_WRAP") {
            Ok(wrap) => {
                let mut parts = wrap.split_whitespace();
                let mut c = Command::new(parts.next().expect("a wrapper command"));
                c.args(parts).arg(env!("CARGO_BIN_EXE_ferry-relay"));
                c
            }
            Err(_) => Command::new(env!("CARGO_BIN_EXE_ferry-relay")),
        };
        if let Some(broker) = broker {
            command.args(["--broker", &broker.url()]);
        }
        let mut child = command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--max-connections",
                "1000000",
                "--max-connections-per-ip",
                "1000000",
                "--rate",
                "1000000",
                "--burst",
                "1000000",
                "--rate-per-ip",
                "100000000",
                "--burst-per-ip",
                "100000000",
                "--ping-interval",
                "1h",
                "--idle-timeout",
                "2h",
                "--send-queue",
                "256",
            ])
            .env("FERRY_RELAY_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start ferry-relay (built by cargo bench)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let relay = Relay { child, address };
        if broker.is_some() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !relay
                .metrics()
                .contains("\nferry_relay_broker_connected 1\n")
            {
                assert!(
                    Instant::now() < deadline,
                    "the relay did not reach its broker"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        relay
    }

    /// The relay's `/metrics` text.
    fn metrics(&self) -> String {
        let mut stream = std::net::TcpStream::connect(self.address).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n")
            .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        response
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.address)
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat` (clock ticks
/// of 10 ms, Linux's USER_HZ).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields[i].parse::<u64>().expect("ticks");
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The broker a phase runs on, started for it: `None` for a single relay.
fn broker(name: &str) -> Option<Broker> {
    match name {
        "none" => None,
        "redis" => Some(Broker::start(Kind::Redis)),
        "nats" => Some(Broker::start(Kind::Nats)),
        other => panic!("unknown broker {other}: use none, redis or nats"),
    }
}

/// How a run is set up, for its report lines.
fn setup(relays: usize, broker: Option<&Broker>) -> String {
    let relays = match relays {
        1 => "1 relay".to_owned(),
        n => format!("{n} relays"),
    };
    match broker {
        None => relays,
        Some(broker) => format!("{relays} + {:?}", broker.kind()),
    }
}

impl Drop for Relay {
    /// Stops the relay the way a service manager does (SIGTERM), killing it only if it hangs.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects from one of several loopback addresses (each has its own ephemeral port range).
async fn connect(relay: &str, address: SocketAddr, n: usize) -> Ws {
    let source = IpAddr::from([127, 0, 1, (n % 200) as u8 + 1]);
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source, 0)).expect("bind");
    let stream = socket.connect(address).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = client_async_with_config(relay, stream, Some(config))
        .await
        .expect("handshake");
    ws
}

async fn subscribe(ws: &mut Ws, topic: TopicId) {
    let request = Request::Subscribe {
        topic,
        reference: Some(0),
    };
    ws.send(Message::text(request.to_json()))
        .await
        .expect("send");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                assert_eq!(
                    Event::parse(&text).expect("event"),
                    Event::Ok { reference: 0 }
                );
                return;
            }
            Some(Ok(_)) => continue,
            other => panic!("subscribe failed: {other:?}"),
        }
    }
}

fn topic(n: u64) -> TopicId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    id[8] = 0xFE;
    TopicId(id)
}

/// Opens `count` subscribers, each on its own topic, 500 handshakes at a time.
async fn open_idle(relay: &Relay, from: usize, count: usize, held: &mut Vec<Ws>) {
    let url = relay.url();
    let gate = Arc::new(Semaphore::new(500));
    let mut tasks = JoinSet::new();
    for n in from..from + count {
        let gate = Arc::clone(&gate);
        let url = url.clone();
        let address = relay.address;
        tasks.spawn(async move {
            let _permit = gate.acquire().await;
            let mut ws = connect(&url, address, n).await;
            subscribe(&mut ws, topic(n as u64)).await;
            ws
        });
    }
    while let Some(ws) = tasks.join_next().await {
        held.push(ws.expect("subscriber"));
    }
}

async fn settle_rss(relay: &Relay) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.rss_kib()
}

async fn idle_memory(options: &Options, broker: Option<&Broker>) {
    let relay = Relay::start(broker);
    let setup = setup(1, broker);
    let baseline = settle_rss(&relay).await;
    println!("idle subscribers [{setup}]: empty relay RSS {baseline} KiB");
    let mut held = Vec::new();
    for &target in &options.idle {
        let started = Instant::now();
        let have = held.len();
        open_idle(&relay, have, target.saturating_sub(have), &mut held).await;
        let rss = settle_rss(&relay).await;
        let per = (rss.saturating_sub(baseline) as f64 * 1024.0) / held.len() as f64;
        println!(
            "idle subscribers [{setup}]: {:>6} connections, relay RSS {rss} KiB, {per:.0} B per \
             connection above the empty relay (opened in {:.1} s)",
            held.len(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// Publishers push as fast as the relay takes frames; every subscriber counts what it gets.
async fn fanout(options: &Options) {
    let relay = Relay::start(None);
    let url = relay.url();
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = JoinSet::new();
    for group in 0..options.publishers {
        for member in 0..options.group {
            let mut ws = connect(&url, relay.address, group * options.group + member).await;
            subscribe(&mut ws, topic(1_000_000 + group as u64)).await;
            let received = Arc::clone(&received);
            readers.spawn(async move {
                while let Some(Ok(frame)) = ws.next().await {
                    if frame.is_text() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    }
    let stop = Instant::now() + Duration::from_secs(options.seconds);
    let sent = Arc::new(AtomicU64::new(0));
    let mut publishers = JoinSet::new();
    for group in 0..options.publishers {
        let mut ws = connect(&url, relay.address, 10_000 + group).await;
        let frame = Request::Publish {
            topic: topic(1_000_000 + group as u64),
            data: vec![0xA5; HINT_LEN],
            reference: None,
        }
        .to_json();
        let sent = Arc::clone(&sent);
        publishers.spawn(async move {
            let message = Message::text(frame);
            while Instant::now() < stop {
                for _ in 0..32 {
                    ws.feed(message.clone()).await.expect("publish");
                }
                ws.flush().await.expect("flush");
                sent.fetch_add(32, Ordering::Relaxed);
            }
            ws
        });
    }
    let start = Instant::now();
    let before = received.load(Ordering::Relaxed);
    let mut kept = Vec::new();
    while let Some(ws) = publishers.join_next().await {
        kept.push(ws.expect("publisher"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let delivered = received.load(Ordering::Relaxed) - before;
    println!(
        "fan-out: {} publishers x {} subscribers per topic, {:.1} s: {} published, {} delivered \
         = {:.0} deliveries/s",
        options.publishers,
        options.group,
        elapsed,
        sent.load(Ordering::Relaxed),
        delivered,
        delivered as f64 / elapsed
    );
    readers.abort_all();
}

/// Pairs of devices; each publish carries its send time; the partner measures the hop. With a
/// broker, partners are on different instances.
async fn latency(rate: u64, seconds: u64, broker: Option<&Broker>) {
    let near = Relay::start(broker);
    let other = broker.map(|broker| Relay::start(Some(broker)));
    let relays: Vec<&Relay> = std::iter::once(&near).chain(&other).collect();
    let mut servers: Vec<u32> = relays.iter().map(|relay| relay.child.id()).collect();
    servers.extend(broker.and_then(Broker::pid));
    let far = other.as_ref().unwrap_or(&near);
    let pairs = 100usize;
    let origin = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut readers = JoinSet::new();
    let mut senders = Vec::new();
    for pair in 0..pairs {
        let mut reader = connect(&far.url(), far.address, 2 * pair).await;
        subscribe(&mut reader, topic(2_000_000 + pair as u64)).await;
        let mut sender = connect(&near.url(), near.address, 2 * pair + 1).await;
        subscribe(&mut sender, topic(2_000_000 + pair as u64)).await;
        senders.push(sender);
        let tx = tx.clone();
        readers.spawn(async move {
            while let Some(Ok(Message::Text(text))) = reader.next().await {
                if let Ok(Event::Message { data, .. }) = Event::parse(&text) {
                    let sent = u64::from_le_bytes(data[..8].try_into().expect("stamp"));
                    let now = origin.elapsed().as_micros() as u64;
                    let _ = tx.send(now.saturating_sub(sent));
                }
            }
        });
    }
    drop(tx);
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let cpu = || {
        servers
            .iter()
            .map(|pid| cpu_seconds(*pid))
            .collect::<Vec<f64>>()
    };
    let cpu_before = cpu();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    for n in 0..total {
        ticker.tick().await;
        let pair = (n as usize) % pairs;
        let mut data = (origin.elapsed().as_micros() as u64).to_le_bytes().to_vec();
        data.resize(HINT_LEN, 0);
        let request = Request::Publish {
            topic: topic(2_000_000 + pair as u64),
            data,
            reference: None,
        };
        senders[pair]
            .send(Message::text(request.to_json()))
            .await
            .expect("publish");
    }
    let achieved = total as f64 / started.elapsed().as_secs_f64();
    let mut samples = Vec::with_capacity(total as usize);
    while samples.len() < total as usize {
        match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
            Ok(Some(sample)) => samples.push(sample),
            _ => break,
        }
    }
    let each: Vec<f64> = cpu().iter().zip(&cpu_before).map(|(a, b)| a - b).collect();
    let cpu_spent: f64 = each.iter().sum();
    readers.abort_all();
    let drops: Vec<String> = relays
        .iter()
        .flat_map(|relay| {
            relay
                .metrics()
                .lines()
                .filter(|line| line.contains("dropped_total") && !line.starts_with('#'))
                .filter(|line| !line.ends_with(" 0"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    if !drops.is_empty() {
        println!(
            "latency [{}]: drops: {}",
            setup(relays.len(), broker),
            drops.join(", ")
        );
    }
    samples.sort_unstable();
    let pick = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let delivered = samples.len() as f64;
    println!(
        "latency [{}]: {} msgs at {:.0} msgs/s over {pairs} pairs, {} received: p50 {} us, \
         p99 {} us, max {} us; server CPU {cpu_spent:.2} s {each:.2?} = {:.0} deliveries per \
         CPU-second ({:.1} us each)",
        setup(relays.len(), broker),
        total,
        achieved,
        samples.len(),
        pick(0.50),
        pick(0.99),
        samples.last().copied().unwrap_or(0),
        delivered / cpu_spent,
        cpu_spent * 1e6 / delivered
    );
}

fn main() {
    let options = options();
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("could not raise the open-file limit: {error}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let run = |phase: &str| options.phases.iter().any(|p| p == phase);
        if run("idle") {
            for name in &options.brokers {
                idle_memory(&options, broker(name).as_ref()).await;
            }
        }
        if run("fanout") {
            fanout(&options).await;
        }
        if run("latency") {
            for name in &options.brokers {
                for &rate in &options.rates {
                    latency(rate, options.seconds, broker(name).as_ref()).await;
                }
            }
        }
    });
}
