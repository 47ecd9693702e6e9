//! Counters for `/metrics`, in the Prometheus text format. Nothing here names a topic or an
//! address.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Why the relay refused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    BadFrame,
    TooLarge,
    RateLimited,
    TooManyTopics,
    UnknownType,
    ConnectionLimit,
    AddressLimit,
    HandshakeTimeout,
    BadRequest,
    Crowded,
    TooManyPairings,
}

impl Rejected {
    const ALL: [Rejected; 11] = [
        Rejected::BadFrame,
        Rejected::TooLarge,
        Rejected::RateLimited,
        Rejected::TooManyTopics,
        Rejected::UnknownType,
        Rejected::ConnectionLimit,
        Rejected::AddressLimit,
        Rejected::HandshakeTimeout,
        Rejected::BadRequest,
        Rejected::Crowded,
        Rejected::TooManyPairings,
    ];

    fn label(self) -> &'static str {
        match self {
            Rejected::BadFrame => "bad_frame",
            Rejected::TooLarge => "too_large",
            Rejected::RateLimited => "rate_limited",
            Rejected::TooManyTopics => "too_many_topics",
            Rejected::UnknownType => "unknown_type",
            Rejected::ConnectionLimit => "connection_limit",
            Rejected::AddressLimit => "ip_connection_limit",
            Rejected::HandshakeTimeout => "handshake_timeout",
            Rejected::BadRequest => "bad_request",
            Rejected::Crowded => "crowded",
            Rejected::TooManyPairings => "too_many_pairings",
        }
    }
}

/// Why the relay closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    Idle,
    SlowConsumer,
    WriteTimeout,
    TooLarge,
    /// Pings or pongs past the rate limits.
    ControlFlood,
}

impl Closed {
    const ALL: [Closed; 5] = [
        Closed::Idle,
        Closed::SlowConsumer,
        Closed::WriteTimeout,
        Closed::TooLarge,
        Closed::ControlFlood,
    ];

    fn label(self) -> &'static str {
        match self {
            Closed::Idle => "idle",
            Closed::SlowConsumer => "slow_consumer",
            Closed::WriteTimeout => "write_timeout",
            Closed::TooLarge => "too_large",
            Closed::ControlFlood => "control_flood",
        }
    }
}

/// Which budget a rate-limited message ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    Connection,
    Address,
}

/// Why a publish between instances was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrokerDrop {
    /// The queue to the broker was full: the oldest publish made room.
    QueueFull,
    /// There was no broker connection to send it on.
    Unreachable,
    /// A broker message that is not an envelope.
    Malformed,
    /// A broker message longer than any envelope.
    Oversized,
    /// More messages for one topic than it takes from other instances (`--rate-per-ip` and
    /// `--burst-per-ip`, as from one address).
    Metered,
}

impl BrokerDrop {
    const ALL: [BrokerDrop; 5] = [
        BrokerDrop::QueueFull,
        BrokerDrop::Unreachable,
        BrokerDrop::Malformed,
        BrokerDrop::Oversized,
        BrokerDrop::Metered,
    ];

    fn label(self) -> &'static str {
        match self {
            BrokerDrop::QueueFull => "queue_full",
            BrokerDrop::Unreachable => "unreachable",
            BrokerDrop::Malformed => "malformed",
            BrokerDrop::Oversized => "oversized",
            BrokerDrop::Metered => "rate",
        }
    }
}

/// The broker's counters; shown only when the relay has a broker.
#[derive(Default)]
pub(crate) struct BrokerMetrics {
    configured: AtomicBool,
    connected: AtomicBool,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) received: AtomicU64,
    dropped: [AtomicU64; BrokerDrop::ALL.len()],
}

impl BrokerMetrics {
    pub(crate) fn configure(&self) {
        self.configured.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// False when a broker is configured and this instance is not connected to it.
    pub(crate) fn healthy(&self) -> bool {
        !self.configured.load(Ordering::Relaxed) || self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self, why: BrokerDrop, n: u64) {
        if n > 0 {
            Metrics::add(&self.dropped[why as usize], n);
        }
    }
}

/// The relay's counters and gauges.
#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) connections: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) topics: AtomicU64,
    pub(crate) subscriptions: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) dropped: AtomicU64,
    rejected: [AtomicU64; Rejected::ALL.len()],
    closed: [AtomicU64; Closed::ALL.len()],
    rate_limited: [AtomicU64; 2],
    pub(crate) broker: BrokerMetrics,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, why: Rejected) {
        Self::add(&self.rejected[why as usize], 1);
    }

    pub(crate) fn closed(&self, why: Closed) {
        Self::add(&self.closed[why as usize], 1);
    }

    pub(crate) fn rate_limited(&self, budget: Budget) {
        Self::add(&self.rate_limited[budget as usize], 1);
        self.rejected(Rejected::RateLimited);
    }

    /// The Prometheus text exposition of every counter: the table [`SHOWN`], then [`BROKER`]
    /// where the relay has a broker.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let broker = self.broker.configured.load(Ordering::Relaxed);
        let shown = SHOWN.iter().chain(BROKER.iter().filter(|_| broker));
        for metric in shown {
            let _ = writeln!(out, "# HELP ferry_relay_{} {}", metric.name, metric.help);
            let _ = writeln!(
                out,
                "# TYPE ferry_relay_{} {}",
                metric.name,
                metric.kind.as_str()
            );
            for (labels, value) in (metric.samples)(self) {
                let _ = writeln!(out, "ferry_relay_{}{labels} {value}", metric.name);
            }
        }
        out
    }
}

/// A Prometheus metric type.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// One metric of `/metrics`: its name after `ferry_relay_`, type, help, and how its samples
/// (labels, value) are read.
struct Shown {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    samples: fn(&Metrics) -> Vec<(String, u64)>,
}

/// The relay's own metrics.
const SHOWN: &[Shown] = &[
    Shown {
        name: "connections",
        kind: Kind::Gauge,
        help: "WebSocket connections open now.",
        samples: |m| one(&m.connections),
    },
    Shown {
        name: "connections_total",
        kind: Kind::Counter,
        help: "WebSocket connections accepted.",
        samples: |m| one(&m.connections_total),
    },
    Shown {
        name: "topics",
        kind: Kind::Gauge,
        help: "Topics with at least one subscriber.",
        samples: |m| one(&m.topics),
    },
    Shown {
        name: "subscriptions",
        kind: Kind::Gauge,
        help: "Subscriptions, over all topics and connections.",
        samples: |m| one(&m.subscriptions),
    },
    Shown {
        name: "messages_in_total",
        kind: Kind::Counter,
        help: "Frames received from clients.",
        samples: |m| one(&m.messages_in),
    },
    Shown {
        name: "messages_out_total",
        kind: Kind::Counter,
        help: "Messages delivered to subscribers.",
        samples: |m| one(&m.messages_out),
    },
    Shown {
        name: "bytes_in_total",
        kind: Kind::Counter,
        help: "Payload bytes of frames received.",
        samples: |m| one(&m.bytes_in),
    },
    Shown {
        name: "bytes_out_total",
        kind: Kind::Counter,
        help: "Payload bytes of messages delivered.",
        samples: |m| one(&m.bytes_out),
    },
    Shown {
        name: "dropped_total",
        kind: Kind::Counter,
        help: "Messages dropped because a subscriber's send queue was full.",
        samples: |m| one(&m.dropped),
    },
    Shown {
        name: "rejections_total",
        kind: Kind::Counter,
        help: "Frames and connections refused, by reason.",
        samples: |m| labelled("reason", Rejected::ALL.map(Rejected::label), &m.rejected),
    },
    Shown {
        name: "rate_limited_total",
        kind: Kind::Counter,
        help: "Messages refused for exceeding a rate limit, by budget.",
        samples: |m| labelled("budget", ["connection", "ip"], &m.rate_limited),
    },
    Shown {
        name: "closed_total",
        kind: Kind::Counter,
        help: "Connections the relay closed, by reason.",
        samples: |m| labelled("reason", Closed::ALL.map(Closed::label), &m.closed),
    },
];

/// The broker's metrics, shown only when the relay has a broker.
const BROKER: &[Shown] = &[
    Shown {
        name: "broker_connected",
        kind: Kind::Gauge,
        help: "1 while this instance is connected to its broker, else 0.",
        samples: |m| {
            vec![(
                String::new(),
                u64::from(m.broker.connected.load(Ordering::Relaxed)),
            )]
        },
    },
    Shown {
        name: "broker_connects_total",
        kind: Kind::Counter,
        help: "Connections made to the broker (the first and every reconnection).",
        samples: |m| one(&m.broker.connects),
    },
    Shown {
        name: "broker_connect_failures_total",
        kind: Kind::Counter,
        help: "Attempts to connect to the broker that failed (the log says why).",
        samples: |m| one(&m.broker.connect_failures),
    },
    Shown {
        name: "broker_published_total",
        kind: Kind::Counter,
        help: "Publishes sent to the other instances through the broker.",
        samples: |m| one(&m.broker.published),
    },
    Shown {
        name: "broker_received_total",
        kind: Kind::Counter,
        help: "Publishes received from other instances through the broker.",
        samples: |m| one(&m.broker.received),
    },
    Shown {
        name: "broker_dropped_total",
        kind: Kind::Counter,
        help: "Publishes between instances dropped, by reason.",
        samples: |m| {
            labelled(
                "reason",
                BrokerDrop::ALL.map(BrokerDrop::label),
                &m.broker.dropped,
            )
        },
    },
];

/// The one unlabelled sample of `counter`.
fn one(counter: &AtomicU64) -> Vec<(String, u64)> {
    vec![(String::new(), counter.load(Ordering::Relaxed))]
}

/// One `{name="label"}` sample per label, read from the counter at the same index.
fn labelled<const N: usize>(
    name: &str,
    labels: [&str; N],
    counters: &[AtomicU64; N],
) -> Vec<(String, u64)> {
    labels
        .iter()
        .zip(counters)
        .map(|(label, counter)| {
            let value = counter.load(Ordering::Relaxed);
            (format!("{{{name}=\"{label}\"}}"), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_type_and_samples_and_the_broker_shows_when_configured() {
        let metrics = Metrics::default();
        metrics.rejected(Rejected::TooLarge);
        metrics.rate_limited(Budget::Address);
        let text = metrics.render();
        for line in [
            "# HELP ferry_relay_connections WebSocket connections open now.",
            "# TYPE ferry_relay_connections gauge",
            "ferry_relay_connections 0",
            "ferry_relay_rejections_total{reason=\"too_large\"} 1",
            "ferry_relay_rejections_total{reason=\"rate_limited\"} 1",
            "ferry_relay_rate_limited_total{budget=\"connection\"} 0",
            "ferry_relay_rate_limited_total{budget=\"ip\"} 1",
            "ferry_relay_closed_total{reason=\"control_flood\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("broker"), "{text}");
        metrics.broker.configure();
        metrics.broker.dropped(BrokerDrop::Oversized, 2);
        let text = metrics.render();
        assert!(text.contains("ferry_relay_broker_connected 0\n"), "{text}");
        assert!(text.contains("ferry_relay_broker_dropped_total{reason=\"oversized\"} 2\n"));
    }
}
