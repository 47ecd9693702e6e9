//! `ferry-relay`: the anonymous relay that tells a person's devices "new data is ready".
//!
//! Devices of one sync key meet on a topic (32 bytes derived from their relay key, so it links
//! to nothing) and publish sealed hints there after each upload; the relay forwards each hint to
//! the topic's other subscribers. The wire protocol is in `ferry_protocol::relay::wire` and
//! `protocol/SPEC.md` §8.
//!
//! ```text
//! TcpListener ─accept─▶ [TLS] ─▶ HTTP head ─┬─ /healthz, /metrics: answer, close
//!                                           ├─ /app/: the browser page's files (--web)
//!                                           └─ /v1/ws: upgrade ─▶ session loop
//! session loop: client frame ─▶ rate limits ─▶ Request::parse ─▶ Hub (sub/unsub/pub)
//!               Hub ─▶ each other subscriber's bounded Outbox ─▶ its socket
//! ```
//!
//! Every resource a client can make the relay hold is bounded by [`Config`]: connections in
//! total and per address, topics per connection, message size, message rate per connection and
//! per address, handshake and idle time, queued messages per connection.
//!
//! Several instances behind one load balancer share publishes through a broker (Redis or NATS,
//! [`broker`]); without one, an instance is complete on its own.
//!
//! Features (all on by default): `cli`, what the `ferry-relay` binary alone needs (flags through
//! clap, its manual page, logs on stderr, the open-file limit); `redis` and `nats`, the brokers.
//! A program that embeds [`run`] with neither turns them off (`default-features = false`).
//!
//! With `--web DIR` it also serves the browser page (the `web` module), read from that folder at start.
//!
//! What it does not do: store anything (no disk, no history, no accounts), read payloads, or
//! guarantee delivery. Sync never depends on the relay: a device that misses a hint finds the
//! data on its next poll.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod broker;
pub mod config;
mod connection;
mod http;
mod hub;
mod limits;
mod metrics;
mod tls;
mod web;

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::http::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{info, warn};

pub use config::{BrokerUrl, Config, Secret, SlowConsumer};

use broker::{AnyBackend, Broker};
use ferry_protocol::TopicId;
use ferry_protocol::relay::wire::Event;
use hub::{ConnectionId, Hub};
use limits::{AddressGuard, AddressKey, Addresses};
use metrics::{Metrics, Rejected};
use tokio_tungstenite::tungstenite::Message;

/// Bytes the WebSocket layer keeps for reading; it grows to fit a larger frame (a `pub` is about
/// 800 bytes) and idle connections keep only this. 4096 costs 3.8 KiB more per idle connection
/// than 256 (BENCHMARKS.md).
const READ_BUFFER: usize = 256;

/// How long open connections get to close after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the relay could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The TLS certificate or key could not be used.
    #[error("cannot use the TLS {what} {path}: {detail}; give a PEM file (--tls-cert, --tls-key)")]
    Tls {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The broker settings cannot be used.
    #[error("cannot use the broker: {0}")]
    Broker(String),
    /// The page's folder cannot be served.
    #[error(
        "cannot serve the page from {dir}: {detail} (--web DIR takes the folder \
         scripts/build-web.sh wrote)"
    )]
    Web {
        /// The folder given.
        dir: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// An origin given to `--web-connect` is not one.
    #[error("--web-connect {origin}: {detail}")]
    WebConnect {
        /// What was given.
        origin: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The listening socket failed.
    #[error("the listening socket failed: {0}")]
    Io(#[from] io::Error),
}

/// What every connection shares.
pub(crate) struct Shared {
    config: Config,
    ws: WebSocketConfig,
    hub: Hub,
    metrics: Arc<Metrics>,
    addresses: Arc<Addresses>,
    broker: Option<Broker>,
    next_id: AtomicU64,
    /// The topics of the 1,000 pairing codes' meeting places (§9.2), which two devices share.
    pairing: HashSet<TopicId>,
    /// The browser page, when the relay serves one (`--web`).
    site: Option<web::Site>,
}

impl Shared {
    /// What the connections of a relay with `config` share; `brokered` when it shares
    /// publishes with other instances.
    fn new(config: Config, brokered: bool, site: Option<web::Site>) -> Shared {
        let metrics = Arc::new(Metrics::default());
        let broker = brokered.then(|| Broker::new(&config, Arc::clone(&metrics)));
        let ws = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_write_buffer_size(64 * 1024)
            .max_message_size(Some(config.max_message_size))
            .max_frame_size(Some(config.max_message_size));
        Shared {
            ws,
            hub: Hub::new(
                Arc::clone(&metrics),
                (config.rate_per_ip, config.burst_per_ip),
            ),
            addresses: Addresses::new(
                config.max_connections_per_ip,
                config.rate_per_ip,
                config.burst_per_ip,
            ),
            metrics,
            broker,
            next_id: AtomicU64::new(0),
            pairing: (0..1000).map(ferry_protocol::pairing::topic).collect(),
            site,
            config,
        }
    }

    fn next_connection(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands `data` to every subscriber of `topic` on this instance but `from`.
    fn deliver(&self, topic: &TopicId, from: ConnectionId, data: Vec<u8>) {
        let event = Event::Message {
            topic: *topic,
            data,
        };
        let Some(json) = event.to_json() else {
            return;
        };
        let size = json.len() as u64;
        let fanout = self.hub.publish(topic, from, &Message::text(json));
        let metrics = &self.metrics;
        Metrics::add(&metrics.messages_out, fanout.delivered);
        Metrics::add(&metrics.bytes_out, fanout.delivered * size);
        Metrics::add(&metrics.dropped, fanout.dropped);
    }

    /// A client's publish: to the other instances, and to this instance's subscribers.
    fn publish(&self, topic: &TopicId, from: ConnectionId, data: Vec<u8>) {
        if let Some(broker) = &self.broker {
            broker.publish(topic, &data);
        }
        self.deliver(topic, from, data);
    }
}

/// Runs the relay on `listener` until `shutdown` completes, then closes every connection with
/// "going away" (clients reconnect elsewhere or later) and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let tls = tls_acceptor(&config)?;
    let backend = AnyBackend::from_config(&config)?;
    let site = site(&config)?;
    if let (Some(site), Some(dir)) = (&site, &config.web) {
        info!(dir = %dir.display(), files = site.files(), "serving the page at /app/");
    }
    serve(listener, config, tls, backend, site, shutdown).await
}

/// Checks that the settings can be served (the TLS files load, the broker's files read), so that
/// a binary can refuse to start before it binds.
pub fn check(config: &Config) -> Result<(), RelayError> {
    tls_acceptor(config)?;
    site(config)?;
    AnyBackend::from_config(config).map(drop)
}

fn site(config: &Config) -> Result<Option<web::Site>, RelayError> {
    match &config.web {
        Some(dir) => web::Site::load(dir, &config.web_connect).map(Some),
        None => Ok(None),
    }
}

fn tls_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, RelayError> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(tls::acceptor(cert, key)?)),
        _ => Ok(None),
    }
}

async fn serve(
    listener: TcpListener,
    config: Config,
    tls: Option<tokio_rustls::TlsAcceptor>,
    backend: Option<AnyBackend>,
    site: Option<web::Site>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let shared = Arc::new(Shared::new(config, backend.is_some(), site));
    let driver = backend.map(|backend| AbortOnDrop(backend.spawn(Arc::clone(&shared))));
    let slots = Arc::new(Semaphore::new(shared.config.max_connections));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    info!(
        address = %listener.local_addr()?,
        tls = tls.is_some(),
        "relay running"
    );

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait for connections to close.
                        warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some((address, slot)) = admit(&shared, &slots, &stream, peer) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                let stopped = stopped.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        None => connection::serve(stream, peer, address, shared, stopped).await,
                        // Boxed: a TLS session is several KiB, and an unboxed branch would make
                        // every plain connection's task that large too.
                        Some(tls) => {
                            Box::pin(serve_tls(tls, stream, peer, address, shared, stopped)).await
                        }
                    }
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    info!(
        connections = connections.len(),
        "shutting down: closing connections"
    );
    drop(listener);
    let _ = stop.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.shutdown().await;
    }
    drop(driver);
    Ok(())
}

/// Admits a connection from `peer`: within its address's cap, and with a slot of the relay's
/// own (one not left to the addresses that use few); else answers it with the refusal, counted.
fn admit(
    shared: &Shared,
    slots: &Arc<Semaphore>,
    stream: &TcpStream,
    peer: SocketAddr,
) -> Option<(Option<AddressGuard>, OwnedSemaphorePermit)> {
    // Counted per address from the first byte, so idle sockets from one address cannot take
    // the slots other addresses need. Behind a proxy every connection comes from the proxy: the
    // client's address is read from the request head.
    let address = if shared.config.behind_proxy {
        None
    } else {
        match shared.addresses.admit(AddressKey::from(peer.ip())) {
            Some(guard) => Some(guard),
            None => {
                shared.metrics.rejected(Rejected::AddressLimit);
                let _ = stream.try_write(&http::too_many_connections());
                return None;
            }
        }
    };
    let others = address.as_ref().map_or(0, AddressGuard::others);
    let total = shared.config.max_connections;
    let slot = match limits::may_take_slot(others, slots.available_permits(), total) {
        true => Arc::clone(slots).try_acquire_owned().ok(),
        false => None,
    };
    let Some(slot) = slot else {
        shared.metrics.rejected(Rejected::ConnectionLimit);
        let busy = http::response(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the relay is full; retry later\n",
        );
        let _ = stream.try_write(&busy);
        return None;
    };
    Some((address, slot))
}

/// A task that stops when its handle is dropped (the broker driver ends with the relay, also
/// when the relay's own task is aborted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn serve_tls(
    tls: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    address: Option<AddressGuard>,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(shared.config.handshake_timeout, tls.accept(stream));
    match handshake.await {
        Ok(Ok(stream)) => connection::serve(stream, peer, address, shared, stopped).await,
        Ok(Err(_)) => shared.metrics.rejected(Rejected::BadRequest),
        Err(_) => shared.metrics.rejected(Rejected::HandshakeTimeout),
    }
}

/// A relay running in the background of the current runtime, for tests, benchmarks and
/// embedding. Dropping it stops the relay at once; [`RunningRelay::stop`] stops it gracefully.
pub struct RunningRelay {
    address: std::net::SocketAddr,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), RelayError>>,
}

impl RunningRelay {
    /// Binds `config.listen` (port 0 picks a free port) and starts serving.
    pub async fn start(config: Config) -> Result<RunningRelay, RelayError> {
        let tls = tls_acceptor(&config)?;
        let backend = AnyBackend::from_config(&config)?;
        let site = site(&config)?;
        let listener = TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let secure = tls.is_some();
        let stopped = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve(listener, config, tls, backend, site, stopped));
        Ok(RunningRelay {
            address,
            tls: secure,
            stop: Some(stop),
            task,
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.address
    }

    /// The relay's WebSocket URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}",
            self.address,
            ferry_protocol::relay::wire::WS_PATH
        )
    }

    /// Closes every connection with "going away" and waits for the relay to finish.
    pub async fn stop(mut self) -> Result<(), RelayError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(error) => Err(RelayError::Io(io::Error::other(error))),
        }
    }
}

impl Drop for RunningRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
