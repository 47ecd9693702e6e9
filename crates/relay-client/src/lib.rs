//! `ferry-relay-client`: a device's connection to its relay.
//!
//! [`RelayClient::start`] spawns one task that owns the WebSocket. The task connects, subscribes
//! to every topic it was given, publishes what it is asked to, and hands each message it receives
//! to a bounded channel. When the connection fails or the relay goes quiet it waits (jittered
//! exponential backoff), connects again and subscribes again, on its own, for as long as the
//! client lives. Dropping the [`RelayClient`] stops the task.
//!
//! ```text
//! subscribe/publish ─▶ commands (bounded) ─▶ task ─▶ WebSocket ─▶ relay
//! deliveries (bounded) ◀─ task ◀─ {"type":"msg"} ◀─ relay
//! status() ◀─ watch ◀─ task (connecting / connected / waiting to retry)
//! ```
//!
//! What it does not do: open or seal hints (the payloads are opaque here), or guarantee delivery.
//! A publish made while disconnected is kept (the newest per topic) and sent after reconnecting;
//! a delivery the application is too slow to take is dropped and counted. Sync never depends on
//! the relay: polling finds whatever a missed hint announced.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod task;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ferry_protocol::TopicId;
pub use ferry_protocol::relay::wire::ErrorCode;
use ferry_protocol::relay::wire::{MAX_DATA, WS_PATH};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use url::Url;

/// How the client reaches its relay.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://` or `wss://` URL of the relay. A URL without a path gets `/v1/ws`.
    pub url: String,
    /// A PEM file of extra certificate authorities to trust for `wss://` (a self-hosted relay
    /// with its own CA). The system's roots are trusted as well.
    pub ca_file: Option<PathBuf>,
    /// Time allowed for TCP, TLS and the WebSocket handshake together.
    pub connect_timeout: Duration,
    /// Time allowed for one write to the relay.
    pub write_timeout: Duration,
    /// The client pings a relay it has not heard from for this long.
    pub ping_interval: Duration,
    /// A relay silent this long (no message, no pong) is given up on and dialled again.
    pub idle_timeout: Duration,
    /// The first wait before reconnecting; it doubles with each failure, up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest wait before reconnecting.
    pub max_backoff: Duration,
    /// Messages held for the application before further ones are dropped.
    pub delivery_queue: usize,
    /// Publishes per second the client sends at most, below the relay's per-connection limit
    /// (10 a second by default). Faster publishes wait, and only the newest per topic is kept:
    /// a hint names the newest segment, which covers the ones before it.
    pub publish_rate: f64,
    /// Publishes the client may send at once before `publish_rate` applies.
    pub publish_burst: f64,
}

impl ClientConfig {
    /// Defaults suited to a device's agent.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(60),
            delivery_queue: 64,
            publish_rate: 8.0,
            publish_burst: 16.0,
        }
    }
}

/// What went wrong, at the client's edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The relay URL cannot be used.
    #[error(
        "the relay URL \"{url}\" {reason}; write it as wss://host[:port] (or ws:// on a trusted network)"
    )]
    BadUrl {
        /// The URL as given, without user information.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The CA file cannot be used.
    #[error("cannot use the relay CA file {path}: {detail}; give a PEM certificate file")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The payload is over the relay's limit.
    #[error("a relay payload may hold at most {MAX_DATA} bytes, not {0}")]
    TooLarge(usize),
    /// The client's command queue is full; the request was not taken.
    #[error("the relay client is busy; the request was dropped (polling will catch up)")]
    Busy,
    /// The client's task has ended.
    #[error("the relay client has stopped")]
    Stopped,
}

impl ClientError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Busy)
    }
}

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Dialling the relay.
    Connecting,
    /// Connected, and the relay has confirmed every subscription.
    Connected,
    /// Not connected; the next attempt is after `retry_in` (from `Status::since`).
    Waiting {
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// The client was dropped.
    Stopped,
}

/// The connection state, for `ferry status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state.
    pub state: State,
    /// When the state began.
    pub since: SystemTime,
    /// When the connection last came up or was lost (or the client started): attempts while it
    /// is down do not move it, so "not connected for" counts from the loss.
    pub changed: SystemTime,
    /// The most recent failure (a failed connection, a refused request), if any.
    pub last_error: Option<String>,
    /// Connections made so far, counting the first.
    pub connections: u64,
    /// Messages dropped because the application did not take them in time.
    pub dropped: u64,
    /// The last request the relay refused: its code and why (a pairing code's topic that is
    /// full says `crowded`).
    pub refused: Option<(ErrorCode, String)>,
}

/// A message another device published on a subscribed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic it came on.
    pub topic: TopicId,
    /// The opaque payload.
    pub data: Vec<u8>,
}

enum Command {
    Subscribe(TopicId),
    Unsubscribe(TopicId),
    Publish(TopicId, Vec<u8>),
    /// Answer once every earlier publish is written to the relay.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A running connection to a relay. Dropping it closes the connection and stops its task.
pub struct RelayClient {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    dropped: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RelayClient {
    /// Starts the connection task; messages arrive on the returned receiver. Must be called
    /// within a tokio runtime.
    pub fn start(
        config: ClientConfig,
    ) -> Result<(RelayClient, mpsc::Receiver<Delivery>), ClientError> {
        let url = endpoint(&config.url)?;
        let tls = task::tls_config(config.ca_file.as_deref())?;
        let (commands, command_rx) = mpsc::channel(64);
        let (delivery_tx, deliveries) = mpsc::channel(config.delivery_queue.max(1));
        let (status_tx, status) = watch::channel(Status {
            state: State::Connecting,
            since: SystemTime::now(),
            changed: SystemTime::now(),
            last_error: None,
            refused: None,
            connections: 0,
            dropped: 0,
        });
        let dropped = Arc::new(AtomicU64::new(0));
        let worker = task::Worker {
            config,
            url,
            tls,
            commands: command_rx,
            deliveries: delivery_tx,
            status: status_tx,
            dropped: Arc::clone(&dropped),
        };
        let task = tokio::spawn(worker.run());
        Ok((
            RelayClient {
                commands,
                status,
                dropped,
                task,
            },
            deliveries,
        ))
    }

    /// Subscribes to `topic`, now if connected and again after every reconnection.
    pub fn subscribe(&self, topic: TopicId) -> Result<(), ClientError> {
        self.send(Command::Subscribe(topic))
    }

    /// Stops receiving `topic`.
    pub fn unsubscribe(&self, topic: TopicId) -> Result<(), ClientError> {
        self.send(Command::Unsubscribe(topic))
    }

    /// Publishes `data` to the other subscribers of `topic`. While disconnected, the newest
    /// payload per topic waits for the next connection.
    pub fn publish(&self, topic: TopicId, data: Vec<u8>) -> Result<(), ClientError> {
        if data.len() > MAX_DATA {
            return Err(ClientError::TooLarge(data.len()));
        }
        self.send(Command::Publish(topic, data))
    }

    /// Waits until every earlier publish has been written to the relay, at most `limit`
    /// (connecting first if need be). True when they all went out: a short-lived program calls
    /// this before it exits.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::Flush(done)).await.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(limit, written).await, Ok(Ok(())))
    }

    /// The connection state now.
    pub fn status(&self) -> Status {
        let mut status = self.status.borrow().clone();
        status.dropped = self.dropped.load(Ordering::Relaxed);
        status
    }

    /// A receiver that sees every change of state.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .try_send(command)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => ClientError::Busy,
                mpsc::error::TrySendError::Closed(_) => ClientError::Stopped,
            })
    }
}

impl Drop for RelayClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks a relay URL and gives the WebSocket endpoint it names: `ws://` or `wss://`, a host,
/// no user name or password; the default path when it has none.
pub fn endpoint(text: &str) -> Result<Url, ClientError> {
    let bad = |reason| ClientError::BadUrl {
        url: text.split('@').next_back().unwrap_or_default().to_owned(),
        reason,
    };
    let mut url = Url::parse(text).map_err(|_| bad("is not a URL"))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(bad("must start with wss:// or ws://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not hold a user name or password (the relay has no accounts)",
        ));
    }
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(WS_PATH);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_default_path() {
        assert_eq!(
            endpoint("wss://relay.example").unwrap().as_str(),
            "wss://relay.example/v1/ws"
        );
        assert_eq!(
            endpoint("ws://127.0.0.1:8787/").unwrap().as_str(),
            "ws://127.0.0.1:8787/v1/ws"
        );
        assert_eq!(
            endpoint("wss://example.org/ferry/v1/ws").unwrap().path(),
            "/ferry/v1/ws"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_credentials() {
        for bad in [
            "relay.example",
            "https://relay.example",
            "ws://",
            "not a url",
        ] {
            assert!(
                matches!(endpoint(bad), Err(ClientError::BadUrl { .. })),
                "{bad}"
            );
        }
        let error = endpoint("wss://me:hunter2@relay.example")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
