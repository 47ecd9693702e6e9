//! The pairing session's transport: its frames on the relay topic of the code, on a LAN
//! meeting place found by mDNS, or both, whichever answers first; republished while the other
//! side may have missed them, and an abort frame for whatever ends an attempt early.

use std::io::IsTerminal;
use std::time::Duration;

use ferry_lan::{Meeting, MeetingConfig};
use ferry_protocol::TopicId;
use ferry_protocol::pairing::{
    self, AbortReason, Message, PairingCode, PairingError, Progress, Role, Session,
};
use ferry_relay_client::{ClientConfig, Delivery, ErrorCode, Status};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::warn;

use crate::config::Config;
use crate::error::Failure;
use crate::relay::Topics;

/// How often a side publishes its frames again while waiting: the relay keeps no history.
const REPUBLISH: Duration = Duration::from_secs(2);

/// How long the exchange may take once the other side has answered.
pub(super) const EXCHANGE: Duration = Duration::from_secs(120);

/// How long to wait for the relay to take the connection.
const CONNECT: Duration = Duration::from_secs(10);

/// How long a side waits for its last frames to go out before it exits.
const FLUSH: Duration = Duration::from_secs(2);

/// Where a side looks for the other: a relay, the LAN, or both.
pub(super) struct Paths {
    pub(super) relay: Option<String>,
    lan: Option<MeetingConfig>,
}

impl Paths {
    /// The relay to pair through (the one given, else the code's, else the configured one)
    /// and the LAN where discovery is on; at least one of them.
    pub(super) fn choose(
        given: Option<&str>,
        from_code: Option<String>,
        config: &Config,
    ) -> Result<Paths, Failure> {
        let relay = given
            .map(str::to_owned)
            .or(from_code)
            .or_else(|| config.settings.relay.clone());
        let settings = &config.settings;
        // The port after the agent's (a free one where the agent's is free-floating too).
        let lan = (settings.lan_enabled && settings.lan_discovery).then(|| MeetingConfig {
            port: match settings.lan_port {
                0 => 0,
                port => port.saturating_add(1),
            },
            ..MeetingConfig::default()
        });
        if relay.is_none() && lan.is_none() {
            return Err(Failure::usage(
                "no relay configured, and LAN discovery is off (`lan.enabled` or \
                 `lan.discovery` is false): give `--relay URL` (the relay the other device \
                 uses; its QR code carries it), or turn discovery on to pair on this network",
            ));
        }
        Ok(Paths { relay, lan })
    }

    /// Where the other device should be, for messages: "through the relay at X and on this
    /// network".
    pub(super) fn described(&self) -> String {
        match (&self.relay, &self.lan) {
            (Some(relay), Some(_)) => format!("through the relay at {relay} and on this network"),
            (Some(relay), None) => format!("through the relay at {relay}"),
            (None, _) => "on this network, with no relay configured".to_owned(),
        }
    }
}

/// The relay topic of the code, carrying the session's frames.
struct RelayPath {
    topics: Topics,
    topic: TopicId,
    /// The relay connection's state: a refusal of the code's topic shows there.
    status: watch::Receiver<Status>,
    /// Until when the relay may take to connect before the person is told it cannot be
    /// reached (`None` once connected or told).
    connect_by: Option<Instant>,
}

impl RelayPath {
    /// Hears the code's topic on the relay at `url`; with `wait`, fails unless the relay takes
    /// the connection within [`CONNECT`].
    async fn open(url: &str, code: &PairingCode, wait: Wait) -> Result<RelayPath, Failure> {
        let mut topics = Topics::start(ClientConfig {
            connect_timeout: CONNECT,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            ..ClientConfig::new(url)
        })
        .map_err(|e| Failure::usage(e.to_string()))?;
        let topic = pairing::topic(code.nameplate());
        topics.hear(topic)?;
        if wait == Wait::ForRelay
            && let Err(because) = topics.connected(CONNECT).await
        {
            return Err(Failure::new(format!(
                "cannot reach the relay at {url} ({because}); check the URL, or give another \
                 with --relay"
            )));
        }
        Ok(RelayPath {
            status: topics.watch(),
            topics,
            topic,
            // Only worth saying when the LAN may still carry the pairing (not waited for).
            connect_by: (wait == Wait::No).then(|| Instant::now() + CONNECT),
        })
    }

    fn publish(&self, frame: Vec<u8>) -> Result<(), Failure> {
        self.topics.publish(self.topic, frame)
    }
}

/// Whether opening the relay path waits for the relay to answer: it does when the relay is
/// the only path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    ForRelay,
    No,
}

/// The LAN meeting place carrying the session's frames.
struct LanPath {
    meeting: Meeting,
    frames: mpsc::Receiver<Vec<u8>>,
}

impl LanPath {
    async fn open(
        config: &MeetingConfig,
        code: &PairingCode,
        role: Role,
    ) -> Result<LanPath, ferry_lan::LanError> {
        let (meeting, frames) = match role {
            Role::Offer => Meeting::host(code.nameplate(), config).await?,
            Role::Join => Meeting::seek(code.nameplate(), config)?,
        };
        Ok(LanPath { meeting, frames })
    }
}

/// What a side heard while it waited.
enum Heard {
    Frame(Vec<u8>),
    RelayStopped,
    LanStopped,
    Republish,
    RelayLate,
    /// The relay refused the code's topic: someone else is at the meeting place, or this
    /// address holds too many.
    RelayRefused(ErrorCode, String),
    Deadline,
}

/// One side's session, on the relay topic of its code, its LAN meeting place, or both.
pub(super) struct Channel {
    relay: Option<RelayPath>,
    lan: Option<LanPath>,
    pub(super) session: Session,
    /// How many of the session's frames were published.
    published: usize,
    next_republish: Instant,
    /// Times this side published something new: with the answers, its round trips.
    pub(super) bursts: u32,
}

impl Channel {
    pub(super) async fn open(
        paths: &Paths,
        code: &PairingCode,
        role: Role,
    ) -> Result<Channel, Failure> {
        let session = Session::new(role, code).map_err(failure)?;
        let lan = match &paths.lan {
            Some(config) => match LanPath::open(config, code, role).await {
                Ok(lan) => Some(lan),
                Err(error) if paths.relay.is_some() => {
                    warn!(%error, "pairing goes through the relay only");
                    None
                }
                Err(error) => {
                    return Err(Failure::new(format!(
                        "cannot pair on this network: {error}; give `--relay URL` to pair \
                         through a relay"
                    )));
                }
            },
            None => None,
        };
        // With the LAN as well, a relay that cannot be reached is said, not fatal.
        let relay = match &paths.relay {
            Some(url) => {
                let wait = if lan.is_none() {
                    Wait::ForRelay
                } else {
                    Wait::No
                };
                Some(RelayPath::open(url, code, wait).await?)
            }
            None => None,
        };
        let mut channel = Channel {
            relay,
            lan,
            session,
            published: 0,
            next_republish: Instant::now() + REPUBLISH,
            bursts: 0,
        };
        channel.publish_new()?;
        Ok(channel)
    }

    /// Publishes the frames not published yet, on every path.
    fn publish_new(&mut self) -> Result<(), Failure> {
        let frames = &self.session.frames()[self.published..];
        if frames.is_empty() {
            return Ok(());
        }
        for frame in frames {
            if let Some(relay) = &self.relay {
                relay.publish(frame.clone())?;
            }
            if let Some(lan) = &self.lan {
                lan.meeting.send(frame.clone());
            }
        }
        self.published = self.session.frames().len();
        self.bursts += 1;
        Ok(())
    }

    /// Publishes the new frames on every path, and the others again on the relay, for a side
    /// that may have missed them (a LAN connection is given every frame when it opens).
    fn publish_all(&mut self) -> Result<(), Failure> {
        if let Some(relay) = &self.relay {
            for frame in &self.session.frames()[..self.published] {
                relay.publish(frame.clone())?;
            }
        }
        self.publish_new()?;
        self.next_republish = Instant::now() + REPUBLISH;
        Ok(())
    }

    /// The next thing heard on either path, or a timer.
    async fn hear(&mut self, deadline: Instant) -> Heard {
        let relay_late = self.relay.as_ref().and_then(|r| r.connect_by);
        let on_relay = self.relay.is_some();
        let (topics, status) = match self.relay.as_mut() {
            Some(relay) => (
                Some((&mut relay.topics, relay.topic)),
                Some(&mut relay.status),
            ),
            None => (None, None),
        };
        tokio::select! {
            delivery = recv_relay(topics) => match delivery {
                Some(delivery) => Heard::Frame(delivery.data),
                None => Heard::RelayStopped,
            },
            frame = recv_lan(self.lan.as_mut()) => match frame {
                Some(frame) => Heard::Frame(frame),
                None => Heard::LanStopped,
            },
            (code, why) = relay_refused(status) => Heard::RelayRefused(code, why),
            () = sleep_until(self.next_republish), if on_relay => Heard::Republish,
            () = sleep_until(relay_late.unwrap_or(deadline)), if relay_late.is_some() => {
                Heard::RelayLate
            }
            () = sleep_until(deadline) => Heard::Deadline,
        }
    }

    /// Waits for the other side's next news, until `deadline` (then `None`). A frame that
    /// ends the attempt is answered with an abort and returned as the failure.
    async fn next(&mut self, deadline: Instant) -> Result<Option<Progress>, Failure> {
        loop {
            let frame = match self.hear(deadline).await {
                Heard::Frame(frame) => frame,
                Heard::RelayStopped if self.lan.is_some() => {
                    self.relay = None;
                    continue;
                }
                Heard::RelayStopped => return Err(Failure::new("the relay connection stopped")),
                Heard::LanStopped if self.relay.is_some() => {
                    self.lan = None;
                    continue;
                }
                Heard::LanStopped => return Err(Failure::new("pairing on this network stopped")),
                Heard::Republish => {
                    self.publish_all()?;
                    continue;
                }
                Heard::RelayLate => {
                    self.relay_late();
                    continue;
                }
                // Someone else at the meeting place ends the attempt whatever the other path
                // does; an address with too many codes still pairs on the LAN.
                Heard::RelayRefused(code, why)
                    if self.lan.is_some() && code != ErrorCode::Crowded =>
                {
                    warn!(%code, %why, "the relay refused this code's topic: pairing goes on on this network only");
                    self.relay = None;
                    continue;
                }
                Heard::RelayRefused(code, why) => {
                    // The other side, if it is there, hears why on the topic it holds.
                    self.abort(AbortReason::Crowded).await;
                    return Err(refused(self.session.role(), &code, &why));
                }
                Heard::Deadline => return Ok(None),
            };
            let progress = match self.session.receive(&frame) {
                Ok(progress) => progress,
                Err(error) => return Err(self.fail(error).await),
            };
            if progress.send_now {
                self.publish_all()?;
            }
            return Ok(Some(progress));
        }
    }

    /// Whether what the other side publishes reaches this side now: the relay took the
    /// connection, or (with no relay) the LAN meeting runs.
    pub(super) fn listening(&self) -> bool {
        match &self.relay {
            Some(relay) => relay.topics.is_connected(),
            None => self.lan.is_some(),
        }
    }

    /// The relay this side is connected to now, if any: one known to be reachable from here.
    pub(super) fn relay_connected(&self) -> Option<&str> {
        let relay = self.relay.as_ref()?;
        relay.topics.is_connected().then(|| relay.topics.url())
    }

    /// Says once that the relay has not answered, when the LAN may still carry the pairing.
    fn relay_late(&mut self) {
        let Some(relay) = &mut self.relay else {
            return;
        };
        relay.connect_by = None;
        if !relay.topics.is_connected() {
            let note = format!(
                "cannot reach the relay at {} ({}); still waiting on this network",
                relay.topics.url(),
                relay.topics.unreachable_because()
            );
            warn!("{note}");
            if std::io::stderr().is_terminal() {
                eprintln!("{note}");
            }
        }
    }

    /// [`next`](Self::next), unless the person presses Ctrl-C first: the other side is then
    /// told, and the code is used up.
    pub(super) async fn next_unless_cancelled(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<Progress>, Failure> {
        tokio::select! {
            next = self.next(deadline) => next,
            _ = tokio::signal::ctrl_c() => {
                self.abort(AbortReason::Cancelled).await;
                Err(Failure::new("pairing cancelled; the code is no longer valid"))
            }
        }
    }

    /// Seals `message` for the other side and publishes it.
    pub(super) fn send(&mut self, message: &Message) -> Result<(), Failure> {
        self.session.send(message).map_err(failure)?;
        self.publish_new()
    }

    /// Tells the other side this one gives up, and says why here.
    async fn fail(&mut self, error: PairingError) -> Failure {
        if let Some(reason) = error.abort_reason() {
            self.abort(reason).await;
        }
        failure(error)
    }

    pub(super) async fn abort(&mut self, reason: AbortReason) {
        let frame = self.session.abort(reason);
        if let Some(relay) = &self.relay {
            let _ = relay.publish(frame.clone());
        }
        if let Some(lan) = &self.lan {
            lan.meeting.send(frame);
        }
        self.flush().await;
    }

    /// Waits, at most [`FLUSH`], for what was published to go out on every path.
    pub(super) async fn flush(&self) {
        let relay = async {
            if let Some(relay) = &self.relay {
                relay.topics.flush(FLUSH).await;
            }
        };
        let lan = async {
            if let Some(lan) = &self.lan {
                lan.meeting.flush(FLUSH).await;
            }
        };
        tokio::join!(relay, lan);
    }
}

/// Waits for the relay to refuse the code's topic (a third device, or too many codes from
/// this address); never, without a relay.
async fn relay_refused(status: Option<&mut watch::Receiver<Status>>) -> (ErrorCode, String) {
    let Some(status) = status else {
        return std::future::pending().await;
    };
    loop {
        if let Some((code, why)) = status.borrow_and_update().refused.clone()
            && matches!(code, ErrorCode::Crowded | ErrorCode::TooManyPairings)
        {
            return (code, why);
        }
        if status.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// What a refusal of the code's topic means for this side.
fn refused(role: Role, code: &ErrorCode, why: &str) -> Failure {
    Failure::new(match (code, role) {
        (ErrorCode::Crowded, Role::Offer) => {
            "the relay says this code's meeting place is crowded (two other devices are there): \
             someone else is using it; run `ferry pair` again for a new code"
                .to_owned()
        }
        (ErrorCode::Crowded, Role::Join) => {
            "the relay says this code's meeting place is crowded (two devices are there \
             already): someone else is using it; run `ferry pair` again on the other device \
             for a new code, and join with that"
                .to_owned()
        }
        _ => format!("the relay refused this pairing: {why}"),
    })
}

async fn recv_relay(relay: Option<(&mut Topics, TopicId)>) -> Option<Delivery> {
    match relay {
        Some((topics, topic)) => topics.next_on(topic).await,
        None => std::future::pending().await,
    }
}

async fn recv_lan(lan: Option<&mut LanPath>) -> Option<Vec<u8>> {
    match lan {
        Some(lan) => lan.frames.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) fn failure(error: PairingError) -> Failure {
    Failure::new(error.to_string())
}
