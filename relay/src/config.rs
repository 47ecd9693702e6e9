//! Every setting of the relay, in one place: flags, their `FERRY_RELAY_*` variables, defaults.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[cfg(feature = "cli")]
use clap::{Parser, ValueEnum};

/// What to do with a connection that reads its messages slower than they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(ValueEnum))]
pub enum SlowConsumer {
    /// Drop the oldest queued message to make room (the client misses a ping, not the data:
    /// it still finds the data on its next poll).
    DropOldest,
    /// Close the connection; the client reconnects and polls.
    Disconnect,
}

/// The relay's settings. Every limit has a flag and an environment variable.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(Parser))]
#[cfg_attr(
    feature = "cli",
    command(
        name = "ferry-relay",
        version,
        about = "Ferry's relay: tells a person's devices that new data is ready.",
        long_about = "Ferry's relay: tells a person's devices that new data is ready.\n\n\
        An anonymous WebSocket pub/sub server. Devices subscribe to unguessable topics and publish \
        small sealed hints; the relay forwards each hint to the topic's other subscribers. It keeps \
        nothing on disk, no history and no accounts, and sees only opaque bytes.\n\n\
        Endpoints: GET /v1/ws (WebSocket), GET /healthz, GET /metrics (Prometheus text), and the \
        browser page at /app/ with --web DIR.\n\
        Durations take a unit: 500ms, 10s, 5m, 1h, 1h 30m.\n\n\
        Several relays behind one load balancer share publishes through a broker (--broker): \
        Redis or NATS. The broker's password is read from FERRY_RELAY_BROKER_PASSWORD only."
    )
)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port; the address is printed as
    /// "listening on ADDR:PORT".
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_LISTEN", default_value = defaults::LISTEN))]
    pub listen: SocketAddr,

    /// Most connections open at once; more are refused with HTTP 503.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS))]
    pub max_connections: usize,

    /// Most connections from one address (an IPv4 address, or an IPv6 /64); more are refused
    /// with HTTP 429.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_MAX_CONNECTIONS_PER_IP", default_value_t = defaults::MAX_CONNECTIONS_PER_IP))]
    pub max_connections_per_ip: u32,

    /// Most topics one connection may subscribe to.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_MAX_TOPICS", default_value_t = defaults::MAX_TOPICS))]
    pub max_topics: usize,

    /// Most connections on one pairing code's topic: the two devices pairing (a third is
    /// told "crowded"). More only lets someone else listen in.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_PAIRING_SUBSCRIBERS", default_value_t = defaults::PAIRING_SUBSCRIBERS))]
    pub pairing_subscribers: usize,

    /// Largest WebSocket message accepted, in bytes. A published payload is at most 512 bytes
    /// whatever this says; a larger message gets "too_large" and the connection is closed.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_MAX_MESSAGE_SIZE", default_value_t = defaults::MAX_MESSAGE_SIZE))]
    pub max_message_size: usize,

    /// Messages per second one connection may send (sustained).
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_RATE", default_value_t = defaults::RATE))]
    pub rate: f64,

    /// Messages one connection may send in a burst.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_BURST", default_value_t = defaults::BURST))]
    pub burst: f64,

    /// Messages per second all connections of one address may send together (sustained).
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_RATE_PER_IP", default_value_t = defaults::RATE_PER_IP))]
    pub rate_per_ip: f64,

    /// Messages all connections of one address may send in a burst.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_BURST_PER_IP", default_value_t = defaults::BURST_PER_IP))]
    pub burst_per_ip: f64,

    /// Time a client has to finish the TLS and WebSocket handshakes.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_HANDSHAKE_TIMEOUT", default_value = defaults::HANDSHAKE_TIMEOUT, value_parser = humantime::parse_duration))]
    pub handshake_timeout: Duration,

    /// The relay pings a connection that has been silent this long.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_PING_INTERVAL", default_value = defaults::PING_INTERVAL, value_parser = humantime::parse_duration))]
    pub ping_interval: Duration,

    /// A connection silent this long (no message, no pong) is closed.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_IDLE_TIMEOUT", default_value = defaults::IDLE_TIMEOUT, value_parser = humantime::parse_duration))]
    pub idle_timeout: Duration,

    /// A write to a client that takes longer than this closes the connection.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_WRITE_TIMEOUT", default_value = defaults::WRITE_TIMEOUT, value_parser = humantime::parse_duration))]
    pub write_timeout: Duration,

    /// Messages queued for one connection before the slow-consumer policy applies.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_SEND_QUEUE", default_value_t = defaults::SEND_QUEUE))]
    pub send_queue: usize,

    /// What to do when a connection's send queue is full.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "FERRY_RELAY_SLOW_CONSUMER",
            value_enum,
            default_value = "drop-oldest"
        )
    )]
    pub slow_consumer: SlowConsumer,

    /// Take the client address from the last X-Forwarded-For entry. Only behind a reverse proxy
    /// that sets it: otherwise clients choose their own address and escape the per-IP limits.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_BEHIND_PROXY"))]
    pub behind_proxy: bool,

    /// Serve TLS (wss://) with this PEM certificate chain. Needs --tls-key.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "FERRY_RELAY_TLS_CERT", requires = "tls_key")
    )]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key for --tls-cert.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "FERRY_RELAY_TLS_KEY", requires = "tls_cert")
    )]
    pub tls_key: Option<PathBuf>,

    /// Share publishes with other relay instances through this broker:
    /// redis://HOST:PORT, rediss://HOST:PORT (TLS), nats://HOST:PORT or tls://HOST:PORT.
    /// A user name may be in the URL; the password never is (FERRY_RELAY_BROKER_PASSWORD).
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_BROKER", value_name = "URL", value_parser = BrokerUrlParser))]
    pub broker: Option<BrokerUrl>,

    /// Broker channel names start with this: relays with different namespaces on one broker
    /// do not hear each other.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_BROKER_NAMESPACE", default_value = defaults::BROKER_NAMESPACE))]
    pub broker_namespace: String,

    /// Publishes waiting for the broker; past this the oldest is dropped (and counted).
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_BROKER_QUEUE", default_value_t = defaults::BROKER_QUEUE))]
    pub broker_queue: usize,

    /// How long the broker may take to answer (a connection, a publish, a ping). A quiet broker
    /// connection is pinged every two of these; one that does not answer in time is dropped
    /// and made again.
    #[cfg_attr(feature = "cli", arg(long, env = "FERRY_RELAY_BROKER_TIMEOUT", default_value = defaults::BROKER_TIMEOUT, value_parser = humantime::parse_duration))]
    pub broker_timeout: Duration,

    /// A PEM file of CA certificates that signed the broker's TLS certificate.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "FERRY_RELAY_BROKER_CA", value_name = "PEM")
    )]
    pub broker_ca: Option<PathBuf>,

    /// A NATS credentials file (.creds: user JWT and NKey seed) for the broker.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "FERRY_RELAY_BROKER_CREDENTIALS", value_name = "FILE")
    )]
    pub broker_credentials: Option<PathBuf>,

    /// Serve the browser page from this folder at /app/ (what scripts/build-web.sh writes), on
    /// the relay's own origin. The folder is read at start: a new build takes a restart.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "FERRY_RELAY_WEB", value_name = "DIR")
    )]
    pub web: Option<PathBuf>,

    /// An origin the page may connect to besides the relay: the storage its devices use, such
    /// as https://s3.eu-west-1.amazonaws.com (repeat the flag, or separate with commas). Without
    /// one, the page may connect to the relay alone.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "FERRY_RELAY_WEB_CONNECT",
            value_name = "ORIGIN",
            value_delimiter = ',',
            requires = "web"
        )
    )]
    pub web_connect: Vec<String>,

    /// Print ferry-relay's manual page (roff) and exit: `ferry-relay --man-page > ferry-relay.1`.
    #[cfg_attr(feature = "cli", arg(long, exclusive = true))]
    pub man_page: bool,

    /// The broker's password or token. Never a flag (a command line is visible to every user
    /// of the machine): `ferry-relay` reads it from FERRY_RELAY_BROKER_PASSWORD.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub broker_password: Option<Secret>,
}

/// A pub/sub engine that relay instances share publishes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    /// `redis://` or `rediss://` (TLS).
    Redis(String),
    /// `nats://` or `tls://` (TLS).
    Nats(String),
}

impl BrokerUrl {
    /// The URL as given (it holds no password).
    pub fn as_str(&self) -> &str {
        match self {
            BrokerUrl::Redis(url) | BrokerUrl::Nats(url) => url,
        }
    }
}

impl FromStr for BrokerUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        // The messages never repeat the URL: a mistyped one may still hold a password.
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            "that is not a broker URL: write redis://HOST:PORT or nats://HOST:PORT".to_owned()
        })?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && userinfo.contains(':')
        {
            return Err(
                "the broker URL holds a password, which every user of this machine can \
                 read on a command line: remove it from the URL and set FERRY_RELAY_BROKER_PASSWORD"
                    .into(),
            );
        }
        if authority.rsplit('@').next().is_none_or(str::is_empty) {
            return Err("the broker URL names no host".into());
        }
        match scheme {
            "redis" | "rediss" => Ok(BrokerUrl::Redis(text.into())),
            "nats" | "tls" => Ok(BrokerUrl::Nats(text.into())),
            other => Err(format!(
                "unknown broker \"{other}://\": use redis://, rediss://, nats:// or tls://"
            )),
        }
    }
}

/// Parses `--broker` with errors that do not quote the value (clap's own would, password and
/// all).
#[cfg(feature = "cli")]
#[derive(Clone)]
struct BrokerUrlParser;

#[cfg(feature = "cli")]
impl clap::builder::TypedValueParser for BrokerUrlParser {
    type Value = BrokerUrl;

    fn parse_ref(
        &self,
        command: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<BrokerUrl, clap::Error> {
        let refuse = |message: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid --broker: {message}\n"),
            )
            .with_cmd(command)
        };
        let text = value.to_str().ok_or_else(|| refuse("not UTF-8"))?;
        text.parse().map_err(|message: String| refuse(&message))
    }
}

/// A password that never shows in `Debug` output, logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The defaults, shared by the flags and by [`Config::default`].
pub mod defaults {
    /// The address listened on: this machine only, the port devices are told by default.
    pub const LISTEN: &str = "127.0.0.1:8787";
    /// Connections open at once.
    pub const MAX_CONNECTIONS: usize = 20_000;
    /// Connections per address.
    pub const MAX_CONNECTIONS_PER_IP: u32 = 64;
    /// Topics per connection.
    pub const MAX_TOPICS: usize = 16;
    /// Connections per pairing code's topic.
    pub const PAIRING_SUBSCRIBERS: usize = 2;
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
    /// The start of every broker channel name.
    pub const BROKER_NAMESPACE: &str = "ferry-relay";
    /// Publishes waiting for the broker.
    pub const BROKER_QUEUE: usize = 4096;
    /// Time for the TLS and WebSocket handshakes.
    pub const HANDSHAKE_TIMEOUT: &str = "10s";
    /// Silence before the relay pings a connection.
    pub const PING_INTERVAL: &str = "30s";
    /// Silence before a connection is closed.
    pub const IDLE_TIMEOUT: &str = "75s";
    /// Time for one write to a client.
    pub const WRITE_TIMEOUT: &str = "10s";
    /// Time the broker may take to answer.
    pub const BROKER_TIMEOUT: &str = "5s";
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: defaults::LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8787))),
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_ip: defaults::MAX_CONNECTIONS_PER_IP,
            max_topics: defaults::MAX_TOPICS,
            pairing_subscribers: defaults::PAIRING_SUBSCRIBERS,
            max_message_size: defaults::MAX_MESSAGE_SIZE,
            rate: defaults::RATE,
            burst: defaults::BURST,
            rate_per_ip: defaults::RATE_PER_IP,
            burst_per_ip: defaults::BURST_PER_IP,
            handshake_timeout: duration(defaults::HANDSHAKE_TIMEOUT),
            ping_interval: duration(defaults::PING_INTERVAL),
            idle_timeout: duration(defaults::IDLE_TIMEOUT),
            write_timeout: duration(defaults::WRITE_TIMEOUT),
            send_queue: defaults::SEND_QUEUE,
            slow_consumer: SlowConsumer::DropOldest,
            behind_proxy: false,
            tls_cert: None,
            tls_key: None,
            broker: None,
            broker_namespace: defaults::BROKER_NAMESPACE.into(),
            broker_queue: defaults::BROKER_QUEUE,
            broker_timeout: duration(defaults::BROKER_TIMEOUT),
            broker_ca: None,
            broker_credentials: None,
            web: None,
            web_connect: Vec::new(),
            man_page: false,
            broker_password: None,
        }
    }
}

/// A default duration, as the flags state it.
fn duration(text: &str) -> Duration {
    // The defaults are constants that a test parses.
    humantime::parse_duration(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "cli")]
    fn durations_take_a_unit() {
        let parse = |text: &str| {
            Config::try_parse_from(["ferry-relay", "--idle-timeout", text]).map(|c| c.idle_timeout)
        };
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "10", "s", "10 parsecs", "99999999999999999999h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn broker_urls_name_their_engine_and_never_a_password() {
        assert_eq!(
            "redis://cache:6379/2".parse(),
            Ok(BrokerUrl::Redis("redis://cache:6379/2".into()))
        );
        assert!(matches!(
            "rediss://relay@cache".parse(),
            Ok(BrokerUrl::Redis(_))
        ));
        assert!(matches!(
            "nats://[::1]:4222".parse(),
            Ok(BrokerUrl::Nats(_))
        ));
        assert!(matches!(
            "tls://nats.example:4222".parse(),
            Ok(BrokerUrl::Nats(_))
        ));
        let password = "redis://user:hunter2@cache:6379".parse::<BrokerUrl>();
        assert!(
            password
                .unwrap_err()
                .contains("FERRY_RELAY_BROKER_PASSWORD")
        );
        assert!(":pw@cache".parse::<BrokerUrl>().is_err());
        for bad in [
            "",
            "cache:6379",
            "http://cache",
            "redis://",
            "nats://user@/x",
        ] {
            assert!(bad.parse::<BrokerUrl>().is_err(), "{bad}");
        }
        let secret = Secret("hunter2".into());
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    #[cfg(feature = "cli")]
    fn flag_defaults_match_config_default() {
        let parsed = Config::try_parse_from(["ferry-relay"]).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
        assert_eq!(parsed.idle_timeout, Duration::from_secs(75));
    }
}
