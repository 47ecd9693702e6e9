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
}

impl Rejected {
    const ALL: [Rejected; 9] = [
        Rejected::BadFrame,
        Rejected::TooLarge,
        Rejected::RateLimited,
        Rejected::TooManyTopics,
        Rejected::UnknownType,
        Rejected::ConnectionLimit,
        Rejected::AddressLimit,
        Rejected::HandshakeTimeout,
        Rejected::BadRequest,
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
}

impl BrokerDrop {
    const ALL: [BrokerDrop; 4] = [
        BrokerDrop::QueueFull,
        BrokerDrop::Unreachable,
        BrokerDrop::Malformed,
        BrokerDrop::Oversized,
    ];

    fn label(self) -> &'static str {
        match self {
            BrokerDrop::QueueFull => "queue_full",
            BrokerDrop::Unreachable => "unreachable",
            BrokerDrop::Malformed => "malformed",
            BrokerDrop::Oversized => "oversized",
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

    /// The Prometheus text exposition of every counter.
    pub(crate) fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            write_metric(&mut out, name, kind, help, samples);
        };
        metric(
            "connections",
            "gauge",
            "WebSocket connections open now.",
            &[("", get(&self.connections))],
        );
        metric(
            "connections_total",
            "counter",
            "WebSocket connections accepted.",
            &[("", get(&self.connections_total))],
        );
        metric(
            "topics",
            "gauge",
            "Topics with at least one subscriber.",
            &[("", get(&self.topics))],
        );
        metric(
            "subscriptions",
            "gauge",
            "Subscriptions, over all topics and connections.",
            &[("", get(&self.subscriptions))],
        );
        metric(
            "messages_in_total",
            "counter",
            "Frames received from clients.",
            &[("", get(&self.messages_in))],
        );
        metric(
            "messages_out_total",
            "counter",
            "Messages delivered to subscribers.",
            &[("", get(&self.messages_out))],
        );
        metric(
            "bytes_in_total",
            "counter",
            "Payload bytes of frames received.",
            &[("", get(&self.bytes_in))],
        );
        metric(
            "bytes_out_total",
            "counter",
            "Payload bytes of messages delivered.",
            &[("", get(&self.bytes_out))],
        );
        metric(
            "dropped_total",
            "counter",
            "Messages dropped because a subscriber's send queue was full.",
            &[("", get(&self.dropped))],
        );
        let rejected = by_reason(Rejected::ALL.map(Rejected::label), &self.rejected);
        metric(
            "rejections_total",
            "counter",
            "Frames and connections refused, by reason.",
            &samples(&rejected),
        );
        metric(
            "rate_limited_total",
            "counter",
            "Messages refused for exceeding a rate limit, by budget.",
            &[
                (
                    "{budget=\"connection\"}",
                    get(&self.rate_limited[Budget::Connection as usize]),
                ),
                (
                    "{budget=\"ip\"}",
                    get(&self.rate_limited[Budget::Address as usize]),
                ),
            ],
        );
        let closed = by_reason(Closed::ALL.map(Closed::label), &self.closed);
        metric(
            "closed_total",
            "counter",
            "Connections the relay closed, by reason.",
            &samples(&closed),
        );
        let broker = &self.broker;
        if broker.configured.load(Ordering::Relaxed) {
            metric(
                "broker_connected",
                "gauge",
                "1 while this instance is connected to its broker, else 0.",
                &[("", u64::from(broker.connected.load(Ordering::Relaxed)))],
            );
            metric(
                "broker_connects_total",
                "counter",
                "Connections made to the broker (the first and every reconnection).",
                &[("", get(&broker.connects))],
            );
            metric(
                "broker_connect_failures_total",
                "counter",
                "Attempts to connect to the broker that failed (the log says why).",
                &[("", get(&broker.connect_failures))],
            );
            metric(
                "broker_published_total",
                "counter",
                "Publishes sent to the other instances through the broker.",
                &[("", get(&broker.published))],
            );
            metric(
                "broker_received_total",
                "counter",
                "Publishes received from other instances through the broker.",
                &[("", get(&broker.received))],
            );
            let dropped = by_reason(BrokerDrop::ALL.map(BrokerDrop::label), &broker.dropped);
            metric(
                "broker_dropped_total",
                "counter",
                "Publishes between instances dropped, by reason.",
                &samples(&dropped),
            );
        }
        out
    }
}

fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP ferry_relay_{name} {help}");
    let _ = writeln!(out, "# TYPE ferry_relay_{name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "ferry_relay_{name}{labels} {value}");
    }
}

/// One `{reason="..."}` sample per label, read from the counter at the same index.
fn by_reason<const N: usize>(labels: [&str; N], counters: &[AtomicU64; N]) -> Vec<(String, u64)> {
    labels
        .iter()
        .zip(counters)
        .map(|(label, counter)| {
            let value = counter.load(Ordering::Relaxed);
            (format!("{{reason=\"{label}\"}}"), value)
        })
        .collect()
}

fn samples(labelled: &[(String, u64)]) -> Vec<(&str, u64)> {
    labelled.iter().map(|(l, v)| (l.as_str(), *v)).collect()
}
