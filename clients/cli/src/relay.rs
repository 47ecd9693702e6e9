//! This device on its relay: a connection on a few topics ([`Topics`]), and the hints signed,
//! sealed and opened on them ([`Hints`]), in one place for all who use them.
//!
//! ```text
//! agent          Hints::listen ─ announce after each upload, roll call at start,
//!                                next() → fetch what a hint names, rotate() daily
//! a command      Hints::speak  ─ announce what it uploaded, flush, gone
//! first sync     Hints::listen ─ roll call, then next() until the others answered
//! pairing        Topics        ─ the pairing session's frames on the code's topic
//! ```
//!
//! Hints go on the topic of the time now; a device listens on the topics around it (see
//! `ferry_protocol::relay`), so that two clocks a little apart still meet. Each hint is signed
//! by the device it speaks for; whether a hint heard is believed is the engine's to say
//! (`Engine::heard`).

use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::{Claimed, DeviceTag, Identity, Keys, RelayHint, TopicId};
use ferry_relay_client::{ClientConfig, ClientError, Delivery, RelayClient, State, Status};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::error::Failure;

/// Seconds of Unix time now, the clock relay topics rotate by.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A relay connection and the topics heard on it.
pub(crate) struct Topics {
    url: String,
    client: RelayClient,
    deliveries: mpsc::Receiver<Delivery>,
    heard: Vec<TopicId>,
}

impl Topics {
    /// Connects (in the background) as `config` says, hearing nothing yet. The error says
    /// what is wrong with the URL.
    pub(crate) fn start(config: ClientConfig) -> Result<Topics, ClientError> {
        let url = config.url.clone();
        let (client, deliveries) = RelayClient::start(config)?;
        Ok(Topics {
            url,
            client,
            deliveries,
            heard: Vec::new(),
        })
    }

    /// The relay's URL, as configured.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Hears `topic` too. Subscribing goes before any publish on the one connection, so an
    /// answer to what is published next is not missed.
    pub(crate) fn hear(&mut self, topic: TopicId) -> Result<(), Failure> {
        self.client
            .subscribe(topic)
            .map_err(|e| Failure::new(e.to_string()))?;
        self.heard.push(topic);
        Ok(())
    }

    /// Stops hearing `topic`.
    fn leave(&mut self, topic: TopicId) -> Result<(), Failure> {
        self.client
            .unsubscribe(topic)
            .map_err(|e| Failure::new(e.to_string()))?;
        self.heard.retain(|t| *t != topic);
        Ok(())
    }

    /// Publishes `data` on `topic` (held for the next connection while there is none).
    pub(crate) fn publish(&self, topic: TopicId, data: Vec<u8>) -> Result<(), Failure> {
        self.client
            .publish(topic, data)
            .map_err(|e| Failure::new(format!("the relay did not take a message: {e}")))
    }

    /// Waits, at most `within`, for what was published to go out; true when it did.
    pub(crate) async fn flush(&self, within: Duration) -> bool {
        self.client.flush(within).await
    }

    /// The next message, on whichever topic (one left a moment ago may still bring one);
    /// `None` once the client stopped.
    pub(crate) async fn next(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// The next message on `topic`; `None` once the client stopped.
    pub(crate) async fn next_on(&mut self, topic: TopicId) -> Option<Delivery> {
        loop {
            let delivery = self.deliveries.recv().await?;
            if delivery.topic == topic {
                return Some(delivery);
            }
        }
    }

    /// Waits, at most `within`, for the relay to take the connection; else says why it did not.
    pub(crate) async fn connected(&self, within: Duration) -> Result<(), String> {
        let mut status = self.client.watch();
        match tokio::time::timeout(within, status.wait_for(|s| s.state == State::Connected)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.unreachable_because()),
        }
    }

    /// Whether the relay holds the connection now.
    pub(crate) fn is_connected(&self) -> bool {
        self.client.status().state == State::Connected
    }

    /// Why the relay cannot be reached, as the client last heard.
    pub(crate) fn unreachable_because(&self) -> String {
        self.client
            .status()
            .last_error
            .unwrap_or_else(|| "no answer".into())
    }

    /// Every change of the connection's state.
    pub(crate) fn watch(&self) -> watch::Receiver<Status> {
        self.client.watch()
    }
}

/// This device's hints on its relay: signed by this device, sealed with the repository's relay
/// key on the topic of the time now, and opened as they arrive on the topics around it.
pub(crate) struct Hints {
    topics: Topics,
    keys: Keys,
    /// This device's identity, which signs its hints.
    signer: Arc<Identity>,
    /// Whether it listens (and so follows the topics as they rotate).
    listening: bool,
    /// When the topics to listen on change next.
    topics_change: Instant,
    /// Messages heard that do not open with the key.
    junk: Junk,
    /// Hints in a known device's name that it did not sign: counted apart from junk, so that
    /// junk (which anyone can send) never hides them.
    forged: Junk,
}

/// What is heard on the relay: a hint that opened (whether it is believed is the engine's to
/// say: `Engine::heard`), or a hint as an older version of Ferry sends them.
pub(crate) enum Heard {
    /// A signed hint, not yet believed.
    Hint(Claimed<RelayHint>),
    /// An unsigned hint, in the name of the device of this tag: refused, but it tells that the
    /// device (if it is one) needs an upgrade.
    Older(DeviceTag),
}

/// How often ignored messages of one kind are said: the first of a minute with its reason, the
/// others as one count when the next minute's first comes, so that someone flooding the topic
/// cannot flood the log.
const JUNK_EVERY: Duration = Duration::from_secs(60);

/// Messages of one kind heard on the relay and ignored, counted.
#[derive(Debug, Default)]
struct Junk {
    /// When the first of this minute was said.
    said: Option<Instant>,
    /// How many more came since.
    more: u64,
}

impl Junk {
    /// Counts one, saying it (with `why`) if it is the first of a minute, and how many the
    /// minute before had.
    fn heard(&mut self, why: &dyn std::fmt::Display, now: Instant) -> Said {
        match self.said {
            Some(said) if now.saturating_duration_since(said) < JUNK_EVERY => {
                self.more += 1;
                Said::Counted
            }
            _ => {
                let before = std::mem::take(&mut self.more);
                self.said = Some(now);
                if before > 0 {
                    warn!(
                        count = before,
                        "ignored {before} more relay messages in the minute after the last one \
                         said"
                    );
                }
                warn!(
                    %why,
                    "ignored a relay message (more within a minute are counted, not each said)"
                );
                Said::Logged { before }
            }
        }
    }
}

/// What became of a message ignored.
#[derive(Debug, PartialEq, Eq)]
enum Said {
    /// Logged, after the count of the minute before.
    Logged { before: u64 },
    /// Counted, to be said with the next minute's first.
    Counted,
}

impl Hints {
    /// Connects to the relay at `url` to announce only, as a command that uploaded does; its
    /// hints are signed by `signer`, this device.
    pub(crate) fn speak(url: &str, keys: &Keys, signer: &Arc<Identity>) -> Result<Hints, Failure> {
        Hints::start(ClientConfig::new(url), keys, signer, false)
    }

    /// Connects to the relay at `url` and listens on the topics of the time now; its hints are
    /// signed by `signer`, this device.
    pub(crate) fn listen(url: &str, keys: &Keys, signer: &Arc<Identity>) -> Result<Hints, Failure> {
        Hints::start(ClientConfig::new(url), keys, signer, true)
    }

    fn start(
        config: ClientConfig,
        keys: &Keys,
        signer: &Arc<Identity>,
        listening: bool,
    ) -> Result<Hints, Failure> {
        let url = config.url.clone();
        let mut topics = Topics::start(config)
            .map_err(|e| Failure::new(format!("the relay URL `{url}` does not work: {e}")))?;
        if listening {
            for topic in keys.relay.listen_topics(unix_now()) {
                topics.hear(topic)?;
            }
        }
        Ok(Hints {
            topics,
            keys: keys.clone(),
            signer: Arc::clone(signer),
            listening,
            topics_change: next_topic_change(),
            junk: Junk::default(),
            forged: Junk::default(),
        })
    }

    /// Tells the other devices of `hints`, signed and sealed, on the topic of the time now;
    /// false when one could not be handed to the relay client. The devices then see it at
    /// their next poll: that is logged, not failed.
    pub(crate) fn announce(&self, hints: &[RelayHint]) -> bool {
        let topic = self.keys.relay.publish_topic(unix_now());
        let mut all = true;
        for hint in hints {
            let sent = match self.keys.relay.seal_hint(&topic, hint, &self.signer) {
                Ok(sealed) => self.topics.publish(topic, sealed.into_bytes()),
                Err(error) => Err(Failure::new(format!("a hint could not be sealed: {error}"))),
            };
            if let Err(failure) = sent {
                warn!(error = %failure.message, "a hint was not published");
                all = false;
            }
        }
        all
    }

    /// Waits, at most `within`, for what was announced to go out; true when it did.
    pub(crate) async fn flush(&self, within: Duration) -> bool {
        self.topics.flush(within).await
    }

    /// The next hint that opens with this repository's key (others are skipped, and said
    /// at most once a minute with a count); `None` once the client stopped.
    pub(crate) async fn next(&mut self) -> Option<Heard> {
        loop {
            let delivery = self.topics.next().await?;
            match self.keys.relay.open_hint(&delivery.topic, &delivery.data) {
                Ok(hint) => return Some(Heard::Hint(hint)),
                Err(ferry_protocol::Error::UnsignedHint { device }) => {
                    return Some(Heard::Older(device));
                }
                Err(error) => {
                    self.junk.heard(&error, Instant::now());
                }
            }
        }
    }

    /// Counts a hint in the name of `name`, a known device, that it did not sign: said at
    /// most once a minute (with a count).
    pub(crate) fn forged(&mut self, name: &str) {
        let why = format!(
            "a relay hint in the name of {name} that {name} did not sign: someone holding the \
             sync key sent it"
        );
        self.forged.heard(&why, Instant::now());
    }

    /// When the topics to listen on change next: call [`rotate`](Self::rotate) then.
    pub(crate) fn topics_change(&self) -> Instant {
        self.topics_change
    }

    /// Listens on the topics of the time now: hears the new ones, leaves the old ones. A
    /// request the relay client could not take is tried again at the next rotation.
    pub(crate) fn rotate(&mut self) {
        self.topics_change = next_topic_change();
        if !self.listening {
            return;
        }
        let wanted = self.keys.relay.listen_topics(unix_now());
        let new: Vec<TopicId> = (wanted.iter())
            .filter(|t| !self.topics.heard.contains(t))
            .copied()
            .collect();
        for topic in new {
            if let Err(failure) = self.topics.hear(topic) {
                warn!(error = %failure.message, "could not subscribe to the relay's new topic");
            }
        }
        let old: Vec<TopicId> = (self.topics.heard.iter())
            .filter(|t| !wanted.contains(t))
            .copied()
            .collect();
        for topic in old {
            if let Err(failure) = self.topics.leave(topic) {
                warn!(error = %failure.message, "could not leave the relay's old topic");
            }
        }
        debug!("relay: topics rotated");
    }

    /// Every change of the connection's state.
    pub(crate) fn watch(&self) -> watch::Receiver<Status> {
        self.topics.watch()
    }
}

/// When the topics to listen on change next, on the clock of this process.
fn next_topic_change() -> Instant {
    let now = unix_now();
    let next = ferry_protocol::relay::next_topic_change(now);
    Instant::now() + Duration::from_secs(next.saturating_sub(now))
}

/// Tells the devices on the relay at `relay` (when one is set) of the newest of `hints` (it
/// covers the ones before it), signed by `signer`, so their agents fetch now rather than at
/// their next poll; for a command that uploaded and then exits.
pub(crate) async fn announce_once(
    relay: Option<&str>,
    keys: &Keys,
    signer: &Arc<Identity>,
    hints: &[RelayHint],
) {
    let (Some(url), Some(hint)) = (relay, hints.last()) else {
        return;
    };
    let Ok(speaker) = Hints::speak(url, keys, signer) else {
        return;
    };
    if speaker.announce(std::slice::from_ref(hint)) && !speaker.flush(Duration::from_secs(2)).await
    {
        tracing::info!("the relay did not answer: other devices see this at their next poll");
    }
}

/// Whether the relay at `url` takes a TCP connection now (within three seconds). A relay out
/// of reach is worth saying when it is set, though devices only poll until it answers.
pub(crate) fn reachable(url: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().ok_or("no port")?;
    let addrs = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| format!("{host} does not resolve: {e}"))?;
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

/// The warning for a relay set that does not answer now.
pub(crate) fn unreachable_warning(url: &str, why: &str) -> String {
    format!(
        "warning: the relay at {url} cannot be reached now ({why}); devices poll the storage \
         until it answers (check the URL, and that the relay runs)"
    )
}

/// The origin of the page a relay serves (`https://relay.example`), from its URL as devices
/// use it (`wss://relay.example/…`).
pub(crate) fn page_origin(relay: &str) -> Option<String> {
    let url = url::Url::parse(relay).ok()?;
    let scheme = match url.scheme() {
        "wss" | "https" => "https",
        "ws" | "http" => "http",
        _ => return None,
    };
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_is_said_once_a_minute_with_the_count_of_the_minute_before() {
        let mut junk = Junk::default();
        let start = Instant::now();
        let error = "does not open";
        assert_eq!(junk.heard(&error, start), Said::Logged { before: 0 });
        for n in 1..=1000 {
            let at = start + Duration::from_millis(n * 50);
            assert_eq!(junk.heard(&error, at), Said::Counted);
        }
        let next_minute = start + JUNK_EVERY + Duration::from_secs(1);
        assert_eq!(
            junk.heard(&error, next_minute),
            Said::Logged { before: 1000 }
        );
        assert_eq!(
            junk.heard(&error, next_minute + Duration::from_secs(1)),
            Said::Counted
        );
        let quiet_hour = next_minute + Duration::from_secs(3600);
        assert_eq!(junk.heard(&error, quiet_hour), Said::Logged { before: 1 });
    }
}
