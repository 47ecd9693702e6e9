//! Scale-out: relay instances share publishes through a pub/sub backend, Redis or NATS.
//!
//! ```text
//! client pub ─▶ Hub (this instance's subscribers)
//!            └▶ Broker::publish ─▶ bounded queue (drop-oldest) ─▶ driver ─▶ backend channel
//! backend (every partition) ─▶ driver ─▶ Envelope::decode ─▶ not ours ─▶ Hub (every subscriber)
//! ```
//!
//! The topic space is split into a fixed set of channels ([`envelope::PARTITIONS`]) that every
//! instance subscribes to when it connects, so devices coming and going never cause broker
//! traffic of their own. Each message carries its origin instance: an instance skips its own.
//! While the broker is unreachable each instance keeps serving its own devices, publishes for
//! the others are dropped (and counted), and the driver reconnects with jittered backoff.

// A relay built without a backend (the `redis` and `nats` features) leaves parts of the driver
// unused.
#![cfg_attr(
    not(all(feature = "redis", feature = "nats")),
    allow(dead_code, unused_variables)
)]

mod envelope;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;

use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ferry_protocol::TopicId;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};
use tracing::{debug, info, warn};

use crate::config::{BrokerUrl, Config};
use crate::hub::{ConnectionId, Outbox};
use crate::metrics::{BrokerDrop, Metrics};
use crate::{RelayError, Shared, SlowConsumer};
use envelope::{Envelope, InstanceId, Unreadable};

/// The connection id that stands for "another instance" when the hub fans out a publish that
/// came through the broker: no local connection has it, so every local subscriber receives it.
const REMOTE: ConnectionId = ConnectionId::MAX;

/// The first and the longest wait between connection attempts (each is jittered).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(4);

/// What to do when the broker's TLS certificate is not trusted.
const UNTRUSTED: &str =
    "TLS failed: check the server's certificate, or give the CA that signed it with --broker-ca";

/// Whether a backend's error is about the server's certificate.
fn untrusted(error: &impl std::fmt::Display) -> bool {
    error.to_string().contains("certificate")
}

/// Why the broker could not be reached or was lost; the message names the cause and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BrokerError(String);

/// A publish on its way to the broker.
pub(crate) struct Outgoing {
    pub(crate) partition: usize,
    pub(crate) envelope: Vec<u8>,
}

/// A pub/sub backend the relay can share publishes through.
pub(crate) trait Backend: Send + Sync + 'static {
    /// One live connection.
    type Link: Link;

    /// Connects and subscribes to every partition.
    fn connect(&self) -> impl Future<Output = Result<Self::Link, BrokerError>> + Send;
}

/// One live connection to a broker. Any error ends it; the driver connects again.
pub(crate) trait Link: Send {
    /// Publishes each envelope on its partition's channel, in order.
    fn publish(
        &mut self,
        batch: &[Outgoing],
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// The next message on any partition. Cancel-safe.
    fn next(&mut self) -> impl Future<Output = Result<Vec<u8>, BrokerError>> + Send;

    /// Checks the connection is alive (a round trip).
    fn ping(&mut self) -> impl Future<Output = Result<(), BrokerError>> + Send;
}

/// The backend a relay was configured with.
pub(crate) enum AnyBackend {
    #[cfg(feature = "redis")]
    Redis(redis::Redis),
    #[cfg(feature = "nats")]
    Nats(nats::Nats),
}

impl AnyBackend {
    /// The backend for `config.broker`, or `None` without one. Fails when a file it needs (a CA,
    /// NATS credentials) cannot be read, so a relay refuses to start rather than run alone.
    pub(crate) fn from_config(config: &Config) -> Result<Option<AnyBackend>, RelayError> {
        let names = |separator| channel_names(&config.broker_namespace, separator);
        Ok(match &config.broker {
            None => None,
            #[cfg(feature = "redis")]
            Some(BrokerUrl::Redis(url)) => Some(AnyBackend::Redis(redis::Redis::new(
                url,
                config,
                names(':'),
            )?)),
            #[cfg(not(feature = "redis"))]
            Some(BrokerUrl::Redis(_)) => return Err(left_out("Redis", "redis")),
            #[cfg(feature = "nats")]
            Some(BrokerUrl::Nats(url)) => {
                Some(AnyBackend::Nats(nats::Nats::new(url, config, names('.'))?))
            }
            #[cfg(not(feature = "nats"))]
            Some(BrokerUrl::Nats(_)) => return Err(left_out("NATS", "nats")),
        })
    }

    /// Starts the driver for this backend.
    pub(crate) fn spawn(self, shared: Arc<Shared>) -> JoinHandle<()> {
        match self {
            #[cfg(feature = "redis")]
            AnyBackend::Redis(backend) => tokio::spawn(drive(backend, shared)),
            #[cfg(feature = "nats")]
            AnyBackend::Nats(backend) => tokio::spawn(drive(backend, shared)),
        }
    }
}

/// The refusal of a broker whose backend this relay was built without.
#[cfg(not(all(feature = "redis", feature = "nats")))]
fn left_out(broker: &str, feature: &str) -> RelayError {
    RelayError::Broker(format!(
        "this ferry-relay was built without {broker} (the `{feature}` feature of the ferry-relay \
         crate): build it with that feature, or choose the other broker"
    ))
}

/// The channel of each partition: `NAMESPACE{separator}v1{separator}NN`.
fn channel_names(namespace: &str, separator: char) -> Vec<String> {
    (0..envelope::PARTITIONS)
        .map(|p| {
            format!(
                "{namespace}{separator}v{}{separator}{p:02}",
                envelope::VERSION
            )
        })
        .collect()
}

/// This instance's side of the broker: where its publishes queue for the other instances.
pub(crate) struct Broker {
    origin: InstanceId,
    queue: Arc<Outbox<Outgoing>>,
    metrics: Arc<Metrics>,
}

impl Broker {
    pub(crate) fn new(config: &Config, metrics: Arc<Metrics>) -> Broker {
        metrics.broker.configure();
        Broker {
            origin: instance_id(),
            queue: Outbox::new(config.broker_queue, SlowConsumer::DropOldest),
            metrics,
        }
    }

    /// Queues a client's publish for the other instances; never waits.
    pub(crate) fn publish(&self, topic: &TopicId, data: &[u8]) {
        let envelope = Envelope {
            origin: self.origin,
            topic: *topic,
            data,
        };
        let outgoing = Outgoing {
            partition: envelope::partition(topic),
            envelope: envelope.encode(),
        };
        if !self.queue.push(outgoing) {
            self.metrics.broker.dropped(BrokerDrop::QueueFull, 1);
        }
    }

    /// Hands a broker message to this instance's subscribers, unless this instance sent it or
    /// it is not an envelope.
    fn receive(&self, shared: &Shared, bytes: &[u8]) {
        match Envelope::decode(bytes) {
            Ok(envelope) if envelope.origin == self.origin => {}
            Ok(envelope) => {
                Metrics::add(&self.metrics.broker.received, 1);
                if shared.hub.admit_remote(&envelope.topic, Instant::now()) {
                    shared.deliver(&envelope.topic, REMOTE, envelope.data.to_vec());
                } else {
                    self.metrics.broker.dropped(BrokerDrop::Metered, 1);
                }
            }
            Err(unreadable) => {
                debug!(bytes = bytes.len(), ?unreadable, "dropped a broker message");
                self.metrics.broker.dropped(
                    match unreadable {
                        Unreadable::Malformed => BrokerDrop::Malformed,
                        Unreadable::Oversized => BrokerDrop::Oversized,
                    },
                    1,
                );
            }
        }
    }

    /// Drops what is queued, as it arrives, while there is no broker to take it. Never ends.
    async fn discard(&self) -> Infallible {
        loop {
            self.queue.wait().await;
            let dropped = self.queue.take().map_or(0, |batch| batch.len());
            self.metrics
                .broker
                .dropped(BrokerDrop::Unreachable, dropped as u64);
        }
    }
}

/// A random id for this process (16 bytes from the standard library's per-process random
/// keys, mixed with the time).
fn instance_id() -> InstanceId {
    let state = RandomState::new();
    let now = SystemTime::now();
    let high = state.hash_one((now, 0u8)).to_le_bytes();
    let low = state.hash_one((now, 1u8)).to_le_bytes();
    let mut id = [0; 16];
    id[..8].copy_from_slice(&high);
    id[8..].copy_from_slice(&low);
    id
}

/// Keeps this instance connected to the broker for the life of the relay.
async fn drive<B: Backend>(backend: B, shared: Arc<Shared>) {
    let Some(broker) = &shared.broker else {
        return;
    };
    let metrics = &broker.metrics.broker;
    let patience = shared.config.broker_timeout;
    let mut backoff = Backoff::default();
    let mut reachable = true;
    loop {
        let connect = async {
            match timeout(patience, backend.connect()).await {
                Ok(result) => result,
                Err(_) => Err(BrokerError(format!(
                    "the broker did not answer within {patience:?} (--broker-timeout); check \
                     --broker and that the broker is running"
                ))),
            }
        };
        let connected = tokio::select! {
            connected = connect => connected,
            never = broker.discard() => match never {},
        };
        match connected {
            Ok(mut link) => {
                metrics.set_connected(true);
                Metrics::add(&metrics.connects, 1);
                info!("broker connected: publishes reach the other relay instances");
                backoff = Backoff::default();
                reachable = true;
                let error = session(&mut link, &shared, broker).await;
                metrics.set_connected(false);
                warn!(
                    %error,
                    "lost the broker: this instance serves its own devices and reconnects"
                );
            }
            Err(error) if reachable => {
                Metrics::add(&metrics.connect_failures, 1);
                reachable = false;
                warn!(
                    %error,
                    "broker unreachable: this instance serves its own devices and keeps trying"
                );
            }
            Err(error) => {
                Metrics::add(&metrics.connect_failures, 1);
                debug!(%error, "broker still unreachable");
            }
        }
        tokio::select! {
            () = sleep(backoff.next()) => {}
            never = broker.discard() => match never {},
        }
    }
}

/// Relays publishes both ways over one connection until it fails.
async fn session<L: Link>(link: &mut L, shared: &Shared, broker: &Broker) -> BrokerError {
    let metrics = &broker.metrics.broker;
    let patience = shared.config.broker_timeout;
    let mut ping = tokio::time::interval(patience * 2);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    loop {
        tokio::select! {
            () = broker.queue.wait() => {
                let mut batch = broker.queue.take().unwrap_or_default();
                if batch.is_empty() {
                    continue;
                }
                let batch = batch.make_contiguous();
                let count = batch.len() as u64;
                match timeout(patience, link.publish(batch)).await {
                    Ok(Ok(())) => Metrics::add(&metrics.published, count),
                    Ok(Err(error)) => {
                        metrics.dropped(BrokerDrop::Unreachable, count);
                        return error;
                    }
                    Err(_) => {
                        metrics.dropped(BrokerDrop::Unreachable, count);
                        return BrokerError(format!(
                            "the broker took over {patience:?} to take a publish"
                        ));
                    }
                }
            }
            message = link.next() => match message {
                Ok(bytes) => broker.receive(shared, &bytes),
                Err(error) => return error,
            },
            _ = ping.tick() => match timeout(patience, link.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return error,
                Err(_) => {
                    return BrokerError(format!(
                        "the broker did not answer a ping within {patience:?}"
                    ));
                }
            },
        }
    }
}

/// Waits that double from [`BACKOFF_MIN`] to [`BACKOFF_MAX`], each drawn at random from its
/// upper half so that relays restarted together do not reconnect in step.
#[derive(Default)]
struct Backoff {
    attempts: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let ceiling = BACKOFF_MIN
            .saturating_mul(1 << self.attempts.min(16))
            .min(BACKOFF_MAX);
        self.attempts = self.attempts.saturating_add(1);
        let random = RandomState::new().hash_one(self.attempts);
        let half = ceiling / 2;
        half + half.mul_f64((random % 1000) as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(feature = "redis", feature = "nats"))]
    use ferry_test_kit::brokers::{Broker as TestBroker, Kind};

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter() {
        let mut backoff = Backoff::default();
        let first = backoff.next();
        assert!(
            first >= BACKOFF_MIN / 2 && first <= BACKOFF_MIN,
            "{first:?}"
        );
        let waits: Vec<Duration> = (0..20).map(|_| backoff.next()).collect();
        assert!(
            waits
                .iter()
                .all(|w| *w <= BACKOFF_MAX && *w >= BACKOFF_MIN / 2)
        );
        let late = &waits[10..];
        assert!(late.iter().all(|w| *w >= BACKOFF_MAX / 2));
        assert!(late.windows(2).any(|w| w[0] != w[1]), "no jitter: {late:?}");
    }

    #[test]
    fn channel_names_are_fixed_per_partition() {
        let names = channel_names("ferry-relay", ':');
        assert_eq!(names.len(), envelope::PARTITIONS);
        assert_eq!(names[0], "ferry-relay:v1:00");
        assert_eq!(names[63], "ferry-relay:v1:63");
        assert_eq!(channel_names("x", '.')[5], "x.v1.05");
    }

    #[test]
    fn instances_differ() {
        assert_ne!(instance_id(), instance_id());
    }

    /// Every backend's link against its real server: a ping before and after traffic, and a
    /// publish read back on the channel it went to.
    #[cfg(all(feature = "redis", feature = "nats"))]
    async fn a_link_publishes_reads_and_pings(kind: Kind) {
        let server = TestBroker::start(kind);
        let config = Config {
            broker: Some(server.url().parse().unwrap()),
            ..Config::default()
        };
        let (publisher, reader) = match AnyBackend::from_config(&config).unwrap() {
            Some(AnyBackend::Redis(backend)) => {
                exchange(
                    backend.connect().await.unwrap(),
                    backend.connect().await.unwrap(),
                )
                .await
            }
            Some(AnyBackend::Nats(backend)) => {
                exchange(
                    backend.connect().await.unwrap(),
                    backend.connect().await.unwrap(),
                )
                .await
            }
            None => unreachable!(),
        };
        assert_eq!(publisher, reader);
    }

    #[cfg(all(feature = "redis", feature = "nats"))]
    async fn exchange<L: Link>(mut publisher: L, mut reader: L) -> (Vec<u8>, Vec<u8>) {
        for link in [&mut publisher, &mut reader] {
            link.ping().await.unwrap();
        }
        let sent = Envelope {
            origin: [1; 16],
            topic: TopicId([200; 32]),
            data: b"hint",
        }
        .encode();
        let outgoing = Outgoing {
            partition: envelope::partition(&TopicId([200; 32])),
            envelope: sent.clone(),
        };
        publisher.publish(&[outgoing]).await.unwrap();
        let read = timeout(Duration::from_secs(5), reader.next()).await;
        for link in [&mut publisher, &mut reader] {
            link.ping().await.unwrap();
        }
        (sent, read.unwrap().unwrap())
    }

    #[tokio::test]
    #[cfg(all(feature = "redis", feature = "nats"))]
    async fn a_redis_link_publishes_reads_and_pings() {
        a_link_publishes_reads_and_pings(Kind::Redis).await;
    }

    #[tokio::test]
    #[cfg(all(feature = "redis", feature = "nats"))]
    async fn a_nats_link_publishes_reads_and_pings() {
        a_link_publishes_reads_and_pings(Kind::Nats).await;
    }
}
