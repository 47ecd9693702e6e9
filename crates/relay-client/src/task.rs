//! The task that owns the WebSocket: connect, session, backoff, again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ferry_protocol::TopicId;
use ferry_protocol::relay::wire::{Event, Request};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::{ClientConfig as TlsConfig, RootCertStore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::{debug, warn};
use url::Url;

use crate::{ClientConfig, ClientError, Command, Delivery, State, Status};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The rustls configuration for `wss://`: the system's roots plus `ca_file`.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<Arc<TlsConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let ca_error = |detail: String| ClientError::CaFile {
            path: path.to_owned(),
            detail,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("it holds no certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
        }
    }
    let config = TlsConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::CaFile {
            path: ca_file.map(Path::to_owned).unwrap_or_default(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What a command of the application comes to on a live connection.
enum Asked {
    /// A request to send now.
    Send(Request),
    /// Nothing to send now (already so, held back by the rate, or a flush to answer later).
    Nothing,
    /// The application dropped the client.
    Stop,
}

/// Takes `command` into `wanted`: what is subscribed, what waits, who waits for a flush.
fn asked(command: Option<Command>, wanted: &mut Wanted, pace: &mut Pace) -> Asked {
    match command {
        None => Asked::Stop,
        Some(Command::Subscribe(topic)) => match wanted.topics.insert(topic) {
            true => Asked::Send(Request::Subscribe {
                topic,
                reference: None,
            }),
            false => Asked::Nothing,
        },
        Some(Command::Unsubscribe(topic)) => match wanted.topics.remove(&topic) {
            true => Asked::Send(Request::Unsubscribe {
                topic,
                reference: None,
            }),
            false => Asked::Nothing,
        },
        Some(Command::Flush(done)) => {
            wanted.flushes.push(done);
            wanted.settle();
            Asked::Nothing
        }
        Some(Command::Publish(topic, data)) => {
            if !wanted.unsent.is_empty() || !pace.take() {
                // Over the rate: keep the newest for this topic, sent when a token is there.
                wanted.unsent.insert(topic, data);
                return Asked::Nothing;
            }
            Asked::Send(Request::Publish {
                topic,
                data,
                reference: None,
            })
        }
    }
}

/// Why a session ended.
enum Ended {
    /// The client was dropped.
    Stopped,
    /// The connection failed; try again.
    Lost(String),
}

pub(crate) struct Worker {
    pub(crate) config: ClientConfig,
    pub(crate) url: Url,
    pub(crate) tls: Arc<TlsConfig>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) deliveries: mpsc::Sender<Delivery>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) dropped: Arc<AtomicU64>,
}

/// What the worker must restore on every connection.
#[derive(Default)]
struct Wanted {
    topics: BTreeSet<TopicId>,
    /// Publishes not sent yet (disconnected, or over the publish rate): the newest per topic.
    unsent: BTreeMap<TopicId, Vec<u8>>,
    /// Flushes waiting for `unsent` to go out.
    flushes: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// Paces publishes: `burst` at once, then `rate` a second.
struct Pace {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Pace {
    fn new(config: &ClientConfig) -> Pace {
        let rate = config.publish_rate.max(0.1);
        let burst = config.publish_burst.max(1.0);
        Pace {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
    }

    /// Takes a token if one is there.
    fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is there.
    fn next(&mut self) -> Instant {
        self.refill();
        let missing = (1.0 - self.tokens).max(0.0);
        self.at + Duration::from_secs_f64(missing / self.rate)
    }
}

impl Wanted {
    /// Applies a command while disconnected. False when the client was dropped.
    fn absorb(&mut self, command: Option<Command>) -> bool {
        match command {
            None => return false,
            Some(Command::Subscribe(topic)) => {
                self.topics.insert(topic);
            }
            Some(Command::Unsubscribe(topic)) => {
                self.topics.remove(&topic);
            }
            Some(Command::Publish(topic, data)) => {
                self.unsent.insert(topic, data);
            }
            Some(Command::Flush(done)) => self.flushes.push(done),
        }
        true
    }

    /// Answers the flushes once nothing is left to send.
    fn settle(&mut self) {
        if self.unsent.is_empty() {
            for done in self.flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }
}

impl Worker {
    pub(crate) async fn run(mut self) {
        let mut wanted = Wanted::default();
        let mut failures: u32 = 0;
        loop {
            self.set_state(State::Connecting, None);
            let ended = match self.connect().await {
                Ok(socket) => {
                    failures = 0;
                    self.status.send_modify(|s| s.connections += 1);
                    self.session(socket, &mut wanted).await
                }
                Err(error) => Ended::Lost(error),
            };
            let error = match ended {
                Ended::Stopped => break,
                Ended::Lost(error) => error,
            };
            let wait = backoff(&self.config, failures);
            failures = failures.saturating_add(1);
            debug!(%error, ?wait, "relay connection lost; retrying");
            self.set_state(State::Waiting { retry_in: wait }, Some(error));
            let deadline = Instant::now() + wait;
            loop {
                tokio::select! {
                    () = sleep_until(deadline) => break,
                    command = self.commands.recv() => {
                        if !wanted.absorb(command) {
                            self.set_state(State::Stopped, None);
                            return;
                        }
                    }
                }
            }
        }
        self.set_state(State::Stopped, None);
    }

    fn set_state(&self, state: State, error: Option<String>) {
        self.status.send_modify(|status| {
            let now = SystemTime::now();
            if (status.state == State::Connected) != (state == State::Connected) {
                status.changed = now;
            }
            status.state = state;
            status.since = now;
            if error.is_some() {
                status.last_error = error;
            }
        });
    }

    async fn connect(&self) -> Result<Socket, String> {
        let ws = WebSocketConfig::default()
            .read_buffer_size(4096)
            .max_message_size(Some(64 * 1024))
            .max_frame_size(Some(64 * 1024));
        let connector = Connector::Rustls(Arc::clone(&self.tls));
        let handshake = tokio_tungstenite::connect_async_tls_with_config(
            self.url.as_str(),
            Some(ws),
            true,
            Some(connector),
        );
        match timeout(self.config.connect_timeout, handshake).await {
            Ok(Ok((socket, _response))) => Ok(socket),
            Ok(Err(error)) => Err(format!("cannot reach the relay at {}: {error}", self.url)),
            Err(_) => Err(format!(
                "the relay at {} did not answer within {:?}",
                self.url, self.config.connect_timeout
            )),
        }
    }

    async fn send(&self, socket: &mut Socket, request: Request) -> Result<(), String> {
        let frame = Message::Text(Utf8Bytes::from(request.to_json()));
        match timeout(self.config.write_timeout, socket.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("the relay connection failed: {error}")),
            Err(_) => Err("the relay stopped reading".to_owned()),
        }
    }

    async fn session(&mut self, mut socket: Socket, wanted: &mut Wanted) -> Ended {
        match self.session_inner(&mut socket, wanted).await {
            Ended::Stopped => {
                let _ = timeout(self.config.write_timeout, socket.close(None)).await;
                Ended::Stopped
            }
            lost => lost,
        }
    }

    async fn session_inner(&mut self, socket: &mut Socket, wanted: &mut Wanted) -> Ended {
        let mut unconfirmed = match self.resume(socket, wanted).await {
            Ok(unconfirmed) => unconfirmed,
            Err(error) => return Ended::Lost(error),
        };

        let config = self.config.clone();
        let mut pace = Pace::new(&config);
        let mut last_heard = Instant::now();
        let mut pinged = false;
        loop {
            let wake = if pinged {
                last_heard + config.idle_timeout
            } else {
                last_heard + config.ping_interval
            };
            let next_publish = pace.next();
            tokio::select! {
                () = sleep_until(next_publish), if !wanted.unsent.is_empty() => {
                    if let Some((topic, data)) = wanted.unsent.pop_first() {
                        pace.take();
                        let request = Request::Publish { topic, data, reference: None };
                        if let Err(error) = self.send(socket, request).await {
                            return Ended::Lost(error);
                        }
                    }
                    wanted.settle();
                }
                command = self.commands.recv() => {
                    let request = match asked(command, wanted, &mut pace) {
                        Asked::Send(request) => request,
                        Asked::Nothing => continue,
                        Asked::Stop => return Ended::Stopped,
                    };
                    if let Err(error) = self.send(socket, request).await {
                        return Ended::Lost(error);
                    }
                }
                frame = socket.next() => {
                    last_heard = Instant::now();
                    pinged = false;
                    match frame {
                        None => return Ended::Lost("the relay closed the connection".into()),
                        Some(Err(error)) => {
                            return Ended::Lost(format!("the relay connection failed: {error}"));
                        }
                        Some(Ok(Message::Text(text))) => {
                            let answered = self.receive(&text);
                            if answered.is_some_and(|r| unconfirmed.remove(&r))
                                && unconfirmed.is_empty()
                            {
                                self.set_state(State::Connected, None);
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            let reason = frame
                                .map(|f| format!("{} ({})", f.reason, u16::from(f.code)))
                                .unwrap_or_default();
                            return Ended::Lost(format!("the relay closed the connection: {reason}"));
                        }
                        Some(Ok(_)) => {}
                    }
                }
                () = sleep_until(wake) => {
                    if pinged {
                        return Ended::Lost(format!(
                            "the relay was silent for {:?}",
                            config.idle_timeout
                        ));
                    }
                    let ping = socket.send(Message::Ping(Default::default()));
                    match timeout(config.write_timeout, ping).await {
                        Ok(Ok(())) => pinged = true,
                        _ => return Ended::Lost("the relay stopped reading".into()),
                    }
                }
            }
        }
    }

    /// Asks a new connection for what the client wants: every topic subscribed (with
    /// references, returned: the session counts as connected once the relay has answered each),
    /// and what waited to be published.
    async fn resume(
        &mut self,
        socket: &mut Socket,
        wanted: &mut Wanted,
    ) -> Result<BTreeSet<u64>, String> {
        let mut unconfirmed = BTreeSet::new();
        for (reference, topic) in (1..).zip(wanted.topics.clone()) {
            let request = Request::Subscribe {
                topic,
                reference: Some(reference),
            };
            self.send(socket, request).await?;
            unconfirmed.insert(reference);
        }
        while let Some((topic, data)) = wanted.unsent.pop_first() {
            let request = Request::Publish {
                topic,
                data,
                reference: None,
            };
            self.send(socket, request).await?;
        }
        wanted.settle();
        if unconfirmed.is_empty() {
            self.set_state(State::Connected, None);
        }
        Ok(unconfirmed)
    }

    /// Takes one event; gives the reference of the request it answers, if any.
    fn receive(&self, text: &str) -> Option<u64> {
        match Event::parse(text) {
            Ok(Event::Message { topic, data }) => {
                if self.deliveries.try_send(Delivery { topic, data }).is_err() {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            Ok(Event::Error {
                code,
                message,
                reference,
            }) => {
                warn!(%code, %message, "the relay refused a request");
                self.status.send_modify(|status| {
                    status.last_error =
                        Some(format!("the relay refused a request: {message} ({code})"));
                    status.refused = Some((code, message));
                });
                reference
            }
            Ok(Event::Ok { reference }) => Some(reference),
            Ok(Event::Unknown) => None,
            Err(error) => {
                debug!(%error, "ignoring a malformed relay event");
                None
            }
        }
    }
}

/// The wait before reconnection attempt `failures + 1`: exponential, capped, with full jitter
/// over its upper half so that devices cut off together do not return together.
fn backoff(config: &ClientConfig, failures: u32) -> Duration {
    let ceiling = config
        .min_backoff
        .saturating_mul(1u32 << failures.min(16))
        .min(config.max_backoff);
    let jitter = getrandom::u64().unwrap_or(0) % 1_000;
    ceiling / 2 + ceiling / 2 * (jitter as u32) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut config = ClientConfig::new("ws://127.0.0.1:1");
        config.min_backoff = Duration::from_millis(100);
        config.max_backoff = Duration::from_secs(5);
        for failures in 0..30 {
            let ceiling = (Duration::from_millis(100) * 2u32.pow(failures.min(16)))
                .min(Duration::from_secs(5));
            let wait = backoff(&config, failures);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{failures}: {wait:?}"
            );
        }
    }
}
