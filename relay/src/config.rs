//! Every setting of the relay, in one place: flags, their `FERRY_RELAY_*` variables, defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What to do with a connection that reads its messages slower than they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SlowConsumer {
    /// Drop the oldest queued message to make room (the client misses a ping, not the data:
    /// it still finds the data on its next poll).
    DropOldest,
    /// Close the connection; the client reconnects and polls.
    Disconnect,
}

/// The relay's settings. Every limit has a flag and an environment variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ferry-relay",
    version,
    about = "Ferry's relay: tells a person's devices that new data is ready.",
    long_about = "Ferry's relay: tells a person's devices that new data is ready.\n\n\
        An anonymous WebSocket pub/sub server. Devices subscribe to unguessable topics and publish \
        small sealed hints; the relay forwards each hint to the topic's other subscribers. It keeps \
        nothing on disk, no history and no accounts, and sees only opaque bytes.\n\n\
        Endpoints: GET /v1/ws (WebSocket), GET /healthz, GET /metrics (Prometheus text).\n\
        Durations take a unit: 500ms, 10s, 5m, 1h."
)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port; the address is printed as
    /// "listening on ADDR:PORT".
    #[arg(long, env = "FERRY_RELAY_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,

    /// Most connections open at once; more are refused with HTTP 503.
    #[arg(long, env = "FERRY_RELAY_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Most connections from one address (an IPv4 address, or an IPv6 /64); more are refused
    /// with HTTP 429.
    #[arg(long, env = "FERRY_RELAY_MAX_CONNECTIONS_PER_IP", default_value_t = defaults::MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: u32,

    /// Most topics one connection may subscribe to.
    #[arg(long, env = "FERRY_RELAY_MAX_TOPICS", default_value_t = defaults::MAX_TOPICS)]
    pub max_topics: usize,

    /// Largest WebSocket message accepted, in bytes. A published payload is at most 512 bytes
    /// whatever this says; a larger message gets "too_large" and the connection is closed.
    #[arg(long, env = "FERRY_RELAY_MAX_MESSAGE_SIZE", default_value_t = defaults::MAX_MESSAGE_SIZE)]
    pub max_message_size: usize,

    /// Messages per second one connection may send (sustained).
    #[arg(long, env = "FERRY_RELAY_RATE", default_value_t = defaults::RATE)]
    pub rate: f64,

    /// Messages one connection may send in a burst.
    #[arg(long, env = "FERRY_RELAY_BURST", default_value_t = defaults::BURST)]
    pub burst: f64,

    /// Messages per second all connections of one address may send together (sustained).
    #[arg(long, env = "FERRY_RELAY_RATE_PER_IP", default_value_t = defaults::RATE_PER_IP)]
    pub rate_per_ip: f64,

    /// Messages all connections of one address may send in a burst.
    #[arg(long, env = "FERRY_RELAY_BURST_PER_IP", default_value_t = defaults::BURST_PER_IP)]
    pub burst_per_ip: f64,

    /// Time a client has to finish the TLS and WebSocket handshakes.
    #[arg(long, env = "FERRY_RELAY_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// The relay pings a connection that has been silent this long.
    #[arg(long, env = "FERRY_RELAY_PING_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// A connection silent this long (no message, no pong) is closed.
    #[arg(long, env = "FERRY_RELAY_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// A write to a client that takes longer than this closes the connection.
    #[arg(long, env = "FERRY_RELAY_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// Messages queued for one connection before the slow-consumer policy applies.
    #[arg(long, env = "FERRY_RELAY_SEND_QUEUE", default_value_t = defaults::SEND_QUEUE)]
    pub send_queue: usize,

    /// What to do when a connection's send queue is full.
    #[arg(
        long,
        env = "FERRY_RELAY_SLOW_CONSUMER",
        value_enum,
        default_value = "drop-oldest"
    )]
    pub slow_consumer: SlowConsumer,

    /// Take the client address from the last X-Forwarded-For entry. Only behind a reverse proxy
    /// that sets it: otherwise clients choose their own address and escape the per-IP limits.
    #[arg(long, env = "FERRY_RELAY_BEHIND_PROXY")]
    pub behind_proxy: bool,

    /// Serve TLS (wss://) with this PEM certificate chain. Needs --tls-key.
    #[arg(long, env = "FERRY_RELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key for --tls-cert.
    #[arg(long, env = "FERRY_RELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// The defaults, shared by the flags and by [`Config::default`].
pub mod defaults {
    /// Connections open at once.
    pub const MAX_CONNECTIONS: usize = 20_000;
    /// Connections per address.
    pub const MAX_CONNECTIONS_PER_IP: u32 = 64;
    /// Topics per connection.
    pub const MAX_TOPICS: usize = 16;
    /// WebSocket message size, bytes.
    pub const MAX_MESSAGE_SIZE: usize = 4096;
    /// Messages per second per connection.
    pub const RATE: f64 = 10.0;
    /// Burst per connection.
    pub const BURST: f64 = 20.0;
    /// Messages per second per address.
    pub const RATE_PER_IP: f64 = 100.0;
    /// Burst per address.
    pub const BURST_PER_IP: f64 = 200.0;
    /// Messages queued per connection.
    pub const SEND_QUEUE: usize = 64;
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_ip: defaults::MAX_CONNECTIONS_PER_IP,
            max_topics: defaults::MAX_TOPICS,
            max_message_size: defaults::MAX_MESSAGE_SIZE,
            rate: defaults::RATE,
            burst: defaults::BURST,
            rate_per_ip: defaults::RATE_PER_IP,
            burst_per_ip: defaults::BURST_PER_IP,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(10),
            send_queue: defaults::SEND_QUEUE,
            slow_consumer: SlowConsumer::DropOldest,
            behind_proxy: false,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Parses `500ms`, `10s`, `5m` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("\"{text}\" needs a unit: ms, s, m or h (for example 10s)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" does not start with a whole number"))?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => return Err(format!("unknown unit \"{unit}\": use ms, s, m or h")),
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("\"{text}\" is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "10", "s", "1.5s", "10d", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flag_defaults_match_config_default() {
        let parsed = Config::try_parse_from(["ferry-relay"]).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
    }
}
