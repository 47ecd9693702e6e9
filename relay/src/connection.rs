//! One client, from the first byte to the close: handshake, then the session loop.
//!
//! The session loop waits on four things at once: the relay shutting down, messages queued for
//! this client, the client's next frame, and the keepalive timer. Each frame from the client is
//! rate-limited (connection budget, then address budget), parsed, and applied to the hub.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ::http::StatusCode;
use ferry_protocol::TopicId;
use ferry_protocol::relay::wire::{ErrorCode, Event, Rejection, Request};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant as TokioInstant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, error::CapacityError};
use tracing::debug;

use crate::Shared;
use crate::http::{self, Route};
use crate::hub::{ConnectionId, Outbox, Subscribed};
use crate::limits::{AddressGuard, AddressKey, TokenBucket};
use crate::metrics::{Budget, Closed, Metrics, Rejected};
use crate::web;

/// Serves one accepted connection until it closes or the relay stops.
/// `address` is the connection's place under its address's cap, taken at accept (`None` behind
/// a proxy, where it is taken from the forwarded address after the request head).
pub(crate) async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    address: Option<AddressGuard>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The handshake's buffers are freed before the session starts: only the session's state
    // stays with an idle connection.
    let Some((mut ws, address)) = handshake(stream, peer, address, &shared).await else {
        return;
    };
    let config = &shared.config;
    Metrics::add(&shared.metrics.connections, 1);
    Metrics::add(&shared.metrics.connections_total, 1);
    let mut session = Session {
        outbox: Outbox::new(config.send_queue, config.slow_consumer),
        id: shared.next_connection(),
        bucket: TokenBucket::full(config.burst, Instant::now()),
        address,
        topics: Vec::new(),
        limited: false,
        shared: &shared,
    };
    let end = session.run(&mut ws, &mut stop).await;
    session.leave_all();
    Metrics::sub(&shared.metrics.connections, 1);
    if let Some((code, reason)) = end {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = timeout(config.write_timeout, ws.close(Some(frame))).await;
    }
}

/// Reads the request head and answers it. Returns the WebSocket when it was an upgrade that
/// the limits admit.
async fn handshake<S>(
    mut stream: S,
    peer: SocketAddr,
    address: Option<AddressGuard>,
    shared: &Shared,
) -> Option<(WebSocketStream<S>, AddressGuard)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = &shared.config;
    let head = match timeout(config.handshake_timeout, http::read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(http::HeadError::Malformed)) => {
            shared.metrics.rejected(Rejected::BadRequest);
            let response = http::response(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "not an HTTP request\n",
            );
            answer(&mut stream, shared, response).await;
            return None;
        }
        Ok(Err(http::HeadError::Io)) => return None,
        Err(_) => {
            shared.metrics.rejected(Rejected::HandshakeTimeout);
            debug!(%peer, "handshake timed out");
            return None;
        }
    };
    let plain = |status, body: &str| http::response(status, "text/plain; charset=utf-8", body);
    let response = match head.route {
        Route::Upgrade { accept } => {
            let ip = match head.forwarded_for {
                Some(forwarded) if config.behind_proxy => forwarded,
                _ => peer.ip(),
            };
            let address = address.or_else(|| shared.addresses.admit(AddressKey::from(ip)));
            if let Some(address) = address {
                let upgraded = http::switching_protocols(&accept);
                let written = timeout(config.write_timeout, stream.write_all(&upgraded)).await;
                if !matches!(written, Ok(Ok(()))) {
                    return None;
                }
                let ws = WebSocketStream::from_partially_read(
                    stream,
                    head.rest,
                    Role::Server,
                    Some(shared.ws),
                )
                .await;
                return Some((ws, address));
            }
            shared.metrics.rejected(Rejected::AddressLimit);
            http::too_many_connections()
        }
        Route::Health if shared.metrics.broker.healthy() => plain(StatusCode::OK, "ok\n"),
        // Still 200: an instance without its broker serves its own devices.
        Route::Health => plain(StatusCode::OK, "degraded: broker unreachable\n"),
        Route::Metrics => {
            let body = shared.metrics.render();
            http::response(StatusCode::OK, "text/plain; version=0.0.4", &body)
        }
        Route::Web(request) => match &shared.site {
            Some(site) if request.path.starts_with("/app") => {
                let answer = site.answer(&request);
                send_file(&mut stream, shared, answer).await;
                return None;
            }
            Some(_) => web::root(&request.path).unwrap_or_else(|| {
                plain(
                    StatusCode::NOT_FOUND,
                    "the relay serves the page at /app/\n",
                )
            }),
            None => plain(
                StatusCode::NOT_FOUND,
                "the relay serves /v1/ws, /healthz and /metrics (and the page at /app/ when \
                 started with --web DIR)\n",
            ),
        },
        Route::Refuse { status, reason } => {
            shared.metrics.rejected(Rejected::BadRequest);
            plain(status, &format!("{reason}\n"))
        }
    };
    answer(&mut stream, shared, response).await;
    None
}

async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, shared: &Shared, response: Vec<u8>) {
    let write = async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    let _ = timeout(shared.config.write_timeout, write).await;
}

/// How much of a file goes out under one write timeout: a slow link that keeps taking bytes
/// gets the whole file, one that stops is dropped.
const FILE_PART: usize = 64 * 1024;

/// Sends a page file: its head, then its body (shared by every request for it) part by part,
/// each part within the write timeout.
async fn send_file<S: AsyncWrite + Unpin>(stream: &mut S, shared: &Shared, answer: web::Answer) {
    let limit = shared.config.write_timeout;
    if !matches!(
        timeout(limit, stream.write_all(&answer.head)).await,
        Ok(Ok(()))
    ) {
        return;
    }
    if let Some(body) = &answer.body {
        for part in body.chunks(FILE_PART) {
            if !matches!(timeout(limit, stream.write_all(part)).await, Ok(Ok(()))) {
                return;
            }
        }
    }
    let _ = timeout(limit, stream.shutdown()).await;
}

/// Why the relay ends a session, if it is the one ending it: the close code and reason to send.
type End = Option<(CloseCode, &'static str)>;

struct Session<'a> {
    shared: &'a Shared,
    id: ConnectionId,
    outbox: Arc<Outbox>,
    bucket: TokenBucket,
    address: AddressGuard,
    topics: Vec<TopicId>,
    /// The previous frame was refused for rate; further refusals without a `ref` stay silent.
    limited: bool,
}

impl Session<'_> {
    async fn run<S>(&mut self, ws: &mut WebSocketStream<S>, stop: &mut watch::Receiver<bool>) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = &self.shared.config;
        let mut last_heard = TokioInstant::now();
        let mut wake = last_heard + config.ping_interval;
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => return Some((CloseCode::Away, "the relay is restarting")),
                () = self.outbox.wait() => {
                    let Ok(batch) = self.outbox.take() else {
                        self.shared.metrics.closed(Closed::SlowConsumer);
                        return Some((CloseCode::Policy, "reading too slowly"));
                    };
                    let write = async {
                        for message in batch {
                            ws.feed(message).await?;
                        }
                        ws.flush().await
                    };
                    match timeout(config.write_timeout, write).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return None,
                        Err(_) => {
                            self.shared.metrics.closed(Closed::WriteTimeout);
                            return None;
                        }
                    }
                }
                frame = ws.next() => {
                    last_heard = TokioInstant::now();
                    match frame {
                        None => return None,
                        Some(Ok(message)) => {
                            if let Some(end) = self.receive(message) {
                                return Some(end);
                            }
                        }
                        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                            self.shared.metrics.rejected(Rejected::TooLarge);
                            self.shared.metrics.closed(Closed::TooLarge);
                            let error = Event::Error {
                                code: ErrorCode::TooLarge,
                                message: format!(
                                    "a message may hold at most {} bytes",
                                    config.max_message_size
                                ),
                                reference: None,
                            };
                            if let Some(json) = error.to_json() {
                                let _ = timeout(config.write_timeout, ws.send(Message::text(json)))
                                    .await;
                            }
                            return Some((CloseCode::Size, "message too large"));
                        }
                        Some(Err(_)) => return None,
                    }
                }
                () = sleep_until(wake) => {
                    let now = TokioInstant::now();
                    let silent = now.duration_since(last_heard);
                    if silent >= config.idle_timeout {
                        self.shared.metrics.closed(Closed::Idle);
                        return Some((CloseCode::Away, "idle"));
                    }
                    if silent >= config.ping_interval {
                        let ping = ws.send(Message::Ping(Default::default()));
                        if !matches!(timeout(config.write_timeout, ping).await, Ok(Ok(()))) {
                            return None;
                        }
                        wake = (now + config.ping_interval).min(last_heard + config.idle_timeout);
                    } else {
                        wake = last_heard + config.ping_interval;
                    }
                }
            }
        }
    }

    /// Takes one frame from the connection's budget, then the address's; `None` when either is
    /// spent.
    fn over_budget(&mut self) -> Option<Budget> {
        let now = Instant::now();
        let config = &self.shared.config;
        if !self.bucket.take(config.rate, config.burst, now) {
            Some(Budget::Connection)
        } else if !self.address.take(now) {
            Some(Budget::Address)
        } else {
            None
        }
    }

    /// Handles one frame from the client; answers go through the client's own queue. Returns
    /// how to end the session when the frame ends it.
    fn receive(&mut self, message: Message) -> Option<(CloseCode, &'static str)> {
        let metrics = &self.shared.metrics;
        let text = match &message {
            Message::Text(text) => Some(text.as_str()),
            Message::Binary(_) => None,
            // Pings and pongs count against the budgets like requests. The WebSocket layer has
            // answered a ping already, so a client that pings faster than its budget allows is
            // closed rather than answered again and again.
            Message::Ping(_) | Message::Pong(_) => {
                Metrics::add(&metrics.bytes_in, message.len() as u64);
                if let Some(budget) = self.over_budget() {
                    metrics.rate_limited(budget);
                    metrics.closed(Closed::ControlFlood);
                    return Some((CloseCode::Policy, "pinging too fast"));
                }
                return None;
            }
            Message::Close(_) | Message::Frame(_) => return None,
        };
        self.request(text, message.len());
        None
    }

    /// Handles a text or binary frame of `len` bytes (`None` for binary).
    fn request(&mut self, text: Option<&str>, len: usize) {
        let metrics = &self.shared.metrics;
        Metrics::add(&metrics.messages_in, 1);
        Metrics::add(&metrics.bytes_in, len as u64);
        let request = match text {
            Some(text) => Request::parse(text),
            None => Err(Rejection {
                code: ErrorCode::BadFrame,
                message: "binary frames are not part of the protocol; send JSON text frames".into(),
                reference: None,
            }),
        };
        let reference = match &request {
            Ok(
                Request::Subscribe { reference, .. }
                | Request::Unsubscribe { reference, .. }
                | Request::Publish { reference, .. },
            ) => *reference,
            Err(rejection) => rejection.reference,
        };

        if let Some(budget) = self.over_budget() {
            metrics.rate_limited(budget);
            if !self.limited || reference.is_some() {
                let message = match budget {
                    Budget::Connection => "this connection sends too fast; slow down",
                    Budget::Address => "your address sends too fast; slow down",
                };
                self.reply(Event::Error {
                    code: ErrorCode::RateLimited,
                    message: message.into(),
                    reference,
                });
            }
            self.limited = true;
            return;
        }
        self.limited = false;

        match request {
            Err(rejection) => {
                metrics.rejected(match rejection.code {
                    ErrorCode::TooLarge => Rejected::TooLarge,
                    ErrorCode::UnknownType => Rejected::UnknownType,
                    _ => Rejected::BadFrame,
                });
                self.reply(rejection.to_event());
            }
            Ok(Request::Subscribe { topic, reference }) => self.subscribe(topic, reference),
            Ok(Request::Unsubscribe { topic, reference }) => {
                if let Some(index) = self.topics.iter().position(|t| *t == topic) {
                    self.topics.swap_remove(index);
                    self.leave(&topic);
                }
                self.acknowledge(reference);
            }
            Ok(Request::Publish {
                topic,
                data,
                reference,
            }) => {
                self.shared.publish(&topic, self.id, data);
                self.acknowledge(reference);
            }
        }
    }

    /// Subscribes this connection to `topic`, within its cap of topics.
    fn subscribe(&mut self, topic: TopicId, reference: Option<u64>) {
        let max_topics = self.shared.config.max_topics;
        if !self.topics.contains(&topic) {
            if self.topics.len() >= max_topics {
                self.shared.metrics.rejected(Rejected::TooManyTopics);
                self.reply(Event::Error {
                    code: ErrorCode::TooManyTopics,
                    message: format!(
                        "a connection may hold at most {max_topics} topics; unsubscribe first"
                    ),
                    reference,
                });
                return;
            }
            if self.shared.pairing.contains(&topic) {
                if let Err((rejected, code, message)) = self.join_pairing(topic) {
                    self.shared.metrics.rejected(rejected);
                    self.reply(Event::Error {
                        code,
                        message: message.into(),
                        reference,
                    });
                    return;
                }
            } else {
                self.shared.hub.subscribe(topic, self.id, &self.outbox);
            }
            self.topics.push(topic);
        }
        self.acknowledge(reference);
    }

    /// Subscribes to a pairing code's topic: two devices meet there, so a third is refused,
    /// and one address holds only a few such topics at once (it cannot sit on every code).
    fn join_pairing(&self, topic: TopicId) -> Result<(), (Rejected, ErrorCode, &'static str)> {
        if !self.address.take_pairing() {
            return Err((
                Rejected::TooManyPairings,
                ErrorCode::TooManyPairings,
                "your address holds as many pairing codes at once as this relay allows; finish \
                 or cancel a pairing first",
            ));
        }
        match self.shared.hub.subscribe_within(
            topic,
            self.id,
            &self.outbox,
            self.shared.config.pairing_subscribers,
        ) {
            Subscribed::Added | Subscribed::Already => Ok(()),
            Subscribed::Full => {
                self.address.release_pairing();
                Err((
                    Rejected::Crowded,
                    ErrorCode::Crowded,
                    "this pairing code's meeting place is full (the two devices pairing are \
                     there already): someone else is using it; start again with a new code",
                ))
            }
        }
    }

    /// Unsubscribes from `topic`, giving back a pairing topic's count.
    fn leave(&self, topic: &TopicId) {
        if self.shared.hub.unsubscribe(topic, self.id) && self.shared.pairing.contains(topic) {
            self.address.release_pairing();
        }
    }

    fn acknowledge(&self, reference: Option<u64>) {
        if let Some(reference) = reference {
            self.reply(Event::Ok { reference });
        }
    }

    fn reply(&self, event: Event) {
        if let Some(json) = event.to_json() {
            self.outbox.push(Message::text(json));
        }
    }

    fn leave_all(&mut self) {
        for topic in std::mem::take(&mut self.topics) {
            self.leave(&topic);
        }
    }
}
