//! `ferry-lan`: devices on one network find each other and pass sealed segments directly.
//!
//! [`Lan::start`] opens a TCP listener, announces it over mDNS under a name only devices with
//! the same sync key recognise (`discovery`), dials the devices it finds and the fixed peers
//! it was given, and keeps one encrypted connection per device (`supervisor`, `conn`): a Noise
//! NNpsk0 channel keyed by the LAN transport PSK (`noise`). The application sends frames with
//! [`Lan::send`] and receives [`Event`]s.
//!
//! ```text
//! mDNS announce / browse ─▶ addresses ─┐
//! lan.peers, remembered ───────────────┼─▶ supervisor ─ dial/accept ─▶ handshake ─▶ hello
//! Lan::send(frame) ─▶ supervisor ─▶ per-peer queue ─▶ writer ─▶ Noise ─▶ TCP
//! events ◀─ reader ◀─ Noise ◀─ TCP                       (one connection per device)
//! ```
//!
//! [`Calls`] ask a connected device a question and wait for its whole answer: how the devices
//! of a folder repository reach the device that holds it (`ferry_protocol::held`).
//!
//! [`Meeting`] is the other use of the LAN: two devices pairing without a relay meet at a
//! place named after the code's nameplate and pass the pairing frames over one connection.
//!
//! What it does not do: open segments or trust them. Frames carry the same sealed objects as
//! storage, and the receiver checks them exactly as it checks storage. The LAN is a faster
//! path, never the only one: whatever it drops, the bucket still has.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod calls;
mod conn;
mod discovery;
mod error;
mod meeting;
mod members;
mod noise;
mod supervisor;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use ferry_protocol::lan::PERIOD_SECS;
use ferry_protocol::{DeviceId, Identity, LanKey};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

pub use calls::{CallError, Calls};
pub use error::LanError;
pub use ferry_protocol::lan::{DEFAULT_PORT, Frame, Unanswered};
pub use meeting::{FIRST_FRAME, Meeting, MeetingConfig, PAIRING_PORT};
pub use members::Members;

/// The most bytes of frames every connection together holds while they arrive; a large frame
/// waits for room (and the rest of its connection with it).
const MAX_BUFFERED: usize = 64 * 1024 * 1024;

use supervisor::{Command, Shared};

/// How a device takes part in its LAN.
#[derive(Debug, Clone)]
pub struct LanConfig {
    /// This device's id, said in its hello.
    pub device: DeviceId,
    /// This device's keys: its hello is signed with them.
    pub identity: Arc<Identity>,
    /// The devices let in: the roster's, as the application keeps it up to date.
    pub members: Members,
    /// Whether this path only makes calls: a command of a device whose agent keeps the
    /// device's own connection. Others let it in when a member's key signs its hello, under
    /// a passing id (`device` says nothing), and neither send it segments nor list it.
    pub caller: bool,
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// mDNS discovery, or `None` where multicast is blocked or unwanted.
    pub discovery: Option<DiscoveryConfig>,
    /// Peers to dial by `host:port`, where discovery cannot find them (`lan.peers`).
    pub peers: Vec<String>,
    /// Addresses where peers were reached before, dialled like `peers`.
    pub remembered: Vec<SocketAddr>,
    /// Time allowed for connecting, the handshake, and the hellos.
    pub handshake_timeout: Duration,
    /// An idle connection sends a ping this often.
    pub ping_every: Duration,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
    /// How often fixed and remembered peers that are not connected are dialled again.
    pub redial_every: Duration,
    /// Frames queued for one peer before it counts as too slow and is disconnected.
    pub queue: usize,
    /// The largest question this device takes from a peer's call ([`Event::Asked`]); zero
    /// (the default) refuses every call: only a device that holds a repository answers.
    pub max_question: usize,
    /// The repository's generation before this one, for a device that holds a repository:
    /// devices that have not moved to the new key yet still reach it, as callers only (their
    /// calls are answered; nothing else they send is taken), so that they learn of the new key
    /// in the folder it serves.
    pub earlier: Option<Earlier>,
}

/// Who may still reach a holder under the key of the generation before its own.
#[derive(Debug, Clone)]
pub struct Earlier {
    /// That generation's LAN key.
    pub key: LanKey,
    /// The devices let in under it: the application's choice (Ferry's: the members whose
    /// membership holds, never a removed device).
    pub members: Members,
}

impl LanConfig {
    /// Defaults for an agent: listen on every interface on [`DEFAULT_PORT`], discover by mDNS,
    /// let in any device whose hello is signed (see [`Members`]).
    pub fn new(device: DeviceId, identity: Arc<Identity>) -> LanConfig {
        LanConfig {
            device,
            identity,
            members: Members::anyone(),
            caller: false,
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            discovery: Some(DiscoveryConfig::default()),
            peers: Vec::new(),
            remembered: Vec::new(),
            handshake_timeout: Duration::from_secs(5),
            ping_every: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            redial_every: Duration::from_secs(30),
            queue: 256,
            max_question: 0,
            earlier: None,
        }
    }
}

/// How mDNS discovery runs.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// The mDNS port (5353; a test may use another so as not to meet the machine's own).
    pub mdns_port: u16,
    /// Announce and browse on the loopback interface only (tests on one machine).
    pub loopback_only: bool,
    /// How long one announced name lasts ([`PERIOD_SECS`]; tests shorten it to see names turn).
    pub period: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            mdns_port: 5353,
            loopback_only: false,
            period: Duration::from_secs(PERIOD_SECS),
        }
    }
}

/// A connected device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its device id, from its hello.
    pub device: DeviceId,
    /// The address of the connection's other end.
    pub addr: SocketAddr,
    /// Where it listens: where to dial it next time.
    pub listening: SocketAddr,
    /// Whether this device dialled it.
    pub dialed: bool,
    /// When the connection was made.
    pub since: SystemTime,
}

/// What happens on the LAN.
#[derive(Debug)]
pub enum Event {
    /// A device connected (or its connection was replaced): a good time to send it heads.
    Connected(Peer),
    /// A device sent a frame (heads or a segment; pings and hellos stay here).
    Received {
        /// Who sent it.
        from: DeviceId,
        /// What it sent.
        frame: Frame,
    },
    /// A device asked a question (see [`Calls`]): answer it with [`Calls::answer`] or
    /// [`Calls::refuse`].
    Asked {
        /// Who asked.
        from: DeviceId,
        /// Its call, to answer.
        call: u32,
        /// The whole question, at most [`LanConfig::max_question`] bytes.
        question: Vec<u8>,
    },
    /// A device this one dialled refused its handshake (said once per address): it holds
    /// another sync key, perhaps the repository's newer one, which the storage shows.
    Refused {
        /// Where it was dialled.
        addr: std::net::SocketAddr,
    },
    /// A device's connection ended.
    Disconnected {
        /// Which device.
        device: DeviceId,
        /// Why.
        why: String,
    },
}

impl Event {
    /// The bytes of the frame or question it carries.
    fn bytes(&self) -> usize {
        match self {
            Event::Received {
                frame: Frame::Segment { sealed, .. } | Frame::Chunk { sealed, .. },
                ..
            } => sealed.len(),
            Event::Asked { question, .. } => question.len(),
            _ => 0,
        }
    }
}

/// What happens on the LAN, in order: the receiving end of [`Lan::start`].
pub struct Events {
    events: mpsc::Receiver<Event>,
    queued: Arc<AtomicUsize>,
}

impl Events {
    /// The next event; `None` once the LAN path stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        let event = self.events.recv().await?;
        self.queued.fetch_sub(event.bytes(), Ordering::Relaxed);
        Some(event)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<Event, mpsc::error::TryRecvError> {
        let event = self.events.try_recv()?;
        self.queued.fetch_sub(event.bytes(), Ordering::Relaxed);
        Ok(event)
    }
}

/// The LAN path of one device; dropping it closes every connection and stops announcing.
pub struct Lan {
    commands: mpsc::UnboundedSender<Command>,
    peers: watch::Receiver<Vec<Peer>>,
    local: SocketAddr,
    supervisor: JoinHandle<()>,
    discovery: Option<discovery::Discovery>,
    discovery_error: Option<String>,
    refused: Arc<AtomicU64>,
    calls: Calls,
    members: Members,
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

impl Lan {
    /// Starts listening, announcing and dialling, with `key` proving membership of the group.
    /// Fails only when the port cannot be opened; discovery that cannot start is reported by
    /// [`Lan::discovery_error`] and the fixed peers are still dialled.
    pub async fn start(config: LanConfig, key: &LanKey) -> Result<(Lan, Events), LanError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| LanError::Listen {
                    port: config.listen.port(),
                    source,
                })?;
        let local = listener.local_addr()?;
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::channel(config.queue.max(1));
        let (peers_tx, peers) = watch::channel(Vec::new());
        let (discovery, discovery_error) = match &config.discovery {
            Some(discovery) => {
                match discovery::start(discovery, key.clone(), local, internal_tx.clone()) {
                    Ok(running) => (Some(running), None),
                    Err(error) => {
                        tracing::warn!(%error, "LAN: discovery is off");
                        (None, Some(error.to_string()))
                    }
                }
            }
            None => (None, None),
        };
        let refused = Arc::new(AtomicU64::new(0));
        let calls = Calls {
            table: Arc::default(),
        };
        let queued = Arc::new(AtomicUsize::new(0));
        let members = config.members.clone();
        let earlier_psk = config
            .earlier
            .as_ref()
            .map(|earlier| Arc::new(earlier.key.transport_psk()));
        let shared = Shared {
            queued: Arc::clone(&queued),
            budget: Arc::new(Semaphore::new(MAX_BUFFERED)),
            calls: Arc::clone(&calls.table),
            config: Arc::new(config),
            psk: Arc::new(key.transport_psk()),
            earlier_psk,
            port: local.port(),
            internal: internal_tx,
            events: events_tx,
            refused: Arc::clone(&refused),
        };
        let supervisor = tokio::spawn(supervisor::run(
            shared,
            listener,
            internal_rx,
            commands_rx,
            peers_tx,
        ));
        let lan = Lan {
            commands,
            peers,
            local,
            supervisor,
            discovery,
            discovery_error,
            refused,
            calls,
            members,
        };
        Ok((lan, Events { events, queued }))
    }

    /// Queues `frame` for `to`, or for every connected device. A device that cannot keep up is
    /// disconnected (and catches up when it reconnects).
    pub fn send(&self, to: Option<DeviceId>, frame: Frame) {
        let _ = self.commands.send(Command::Send { to, frame });
    }

    /// Dials `addr` now (unless it leads to a device connected already).
    pub fn dial(&self, addr: SocketAddr) {
        let _ = self.commands.send(Command::Dial(addr));
    }

    /// The devices connected now.
    pub fn peers(&self) -> Vec<Peer> {
        self.peers.borrow().clone()
    }

    /// Waits until the set of connected devices changes.
    pub async fn peers_changed(&mut self) -> Vec<Peer> {
        let _ = self.peers.changed().await;
        self.peers.borrow_and_update().clone()
    }

    /// The address this device listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether mDNS discovery runs.
    pub fn discovering(&self) -> bool {
        self.discovery.is_some()
    }

    /// Why discovery does not run, when it was asked for and could not start.
    pub fn discovery_error(&self) -> Option<&str> {
        self.discovery_error.as_deref()
    }

    /// Asks and answers connected devices (a repository held by a device is reached this way).
    pub fn calls(&self) -> Calls {
        self.calls.clone()
    }

    /// Whom this LAN path lets in: set it as the roster changes.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// How many connections, made here or to here, were refused because the other end did
    /// not prove the group's key: strangers, or devices of another repository.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}
