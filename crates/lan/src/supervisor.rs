//! The task that knows who is connected: it accepts and dials, keeps one connection per
//! device, routes frames to them, and tells the application who came and went.
//!
//! Two devices that find each other at once both dial. Once the hellos name the device, the
//! connection dialled by the device with the smaller id is kept on both sides, and the other
//! closes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferry_protocol::DeviceId;
use ferry_protocol::lan::Frame;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::{Event, LanConfig, LanError, Peer, calls, conn};

/// The most connections that may be in their handshake at once; more are refused at once.
const MAX_OPENING: usize = 32;

/// What every connection task shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: Arc<LanConfig>,
    pub(crate) psk: Arc<Zeroizing<[u8; 32]>>,
    /// The port this device listens on.
    pub(crate) port: u16,
    pub(crate) internal: mpsc::UnboundedSender<Internal>,
    pub(crate) events: mpsc::Sender<Event>,
    /// Connections, either way, refused because the other end did not prove the group's key.
    pub(crate) refused: Arc<AtomicU64>,
    /// Calls waiting for answers, and where to send parts.
    pub(crate) calls: Arc<calls::Table>,
}

/// What connection tasks and discovery tell the supervisor.
pub(crate) enum Internal {
    /// An address worth dialling (found by discovery, or resolved from `lan.peers`), after
    /// `wait` unless a connection from there came meanwhile.
    Dial { addr: SocketAddr, wait: Duration },
    /// A connection said hello and is ready for frames.
    Ready {
        id: u64,
        peer: Peer,
        frames: mpsc::Sender<Frame>,
        parts: mpsc::Sender<Frame>,
        dialed: Option<SocketAddr>,
    },
    /// A connection could not be set up.
    Failed {
        id: u64,
        dialed: Option<SocketAddr>,
        error: LanError,
    },
    /// A ready connection ended.
    Closed {
        id: u64,
        device: DeviceId,
        why: String,
    },
}

/// What the application asks for.
pub(crate) enum Command {
    /// Queue `frame` for one device, or for every connected one.
    Send { to: Option<DeviceId>, frame: Frame },
    /// Dial an address now.
    Dial(SocketAddr),
}

struct Connection {
    id: u64,
    peer: Peer,
    frames: mpsc::Sender<Frame>,
    /// Parts of calls, sent when no frame waits.
    parts: mpsc::Sender<Frame>,
}

struct Supervisor {
    shared: Shared,
    connections: HashMap<DeviceId, Connection>,
    /// Connections in their handshake.
    opening: HashSet<u64>,
    /// Addresses being dialled.
    dialing: HashSet<SocketAddr>,
    /// Which device each dialled address led to.
    reached: HashMap<SocketAddr, DeviceId>,
    /// Fixed peers whose key was found wrong (said once).
    said_wrong_key: HashSet<SocketAddr>,
    next_id: u64,
    peers: watch::Sender<Vec<Peer>>,
}

pub(crate) async fn run(
    shared: Shared,
    listener: TcpListener,
    mut internal: mpsc::UnboundedReceiver<Internal>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    peers: watch::Sender<Vec<Peer>>,
) {
    let mut redial = tokio::time::interval(shared.config.redial_every);
    redial.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut supervisor = Supervisor {
        shared,
        connections: HashMap::new(),
        opening: HashSet::new(),
        dialing: HashSet::new(),
        reached: HashMap::new(),
        said_wrong_key: HashSet::new(),
        next_id: 0,
        peers,
    };
    loop {
        // Connection news before the application's commands: a frame it answers was read on a
        // connection whose readiness is queued already.
        tokio::select! {
            biased;
            Some(message) = internal.recv() => supervisor.internal(message).await,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => supervisor.accepted(stream, addr),
                Err(error) => {
                    warn!(%error, "accepting a LAN connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            command = commands.recv() => match command {
                Some(Command::Send { to, frame }) => supervisor.send(to, frame).await,
                Some(Command::Dial(addr)) => supervisor.dial(addr),
                // The handle is gone: the LAN path stops, and its connections with it.
                None => return,
            },
            _ = redial.tick() => supervisor.redial(),
        }
    }
}

impl Supervisor {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.opening.insert(self.next_id);
        self.next_id
    }

    fn accepted(&mut self, stream: TcpStream, addr: SocketAddr) {
        if self.opening.len() >= MAX_OPENING {
            debug!(%addr, "too many LAN connections opening: refused");
            return;
        }
        let id = self.next_id();
        tokio::spawn(conn::serve(self.shared.clone(), id, stream, addr, None));
    }

    /// Dials `addr` unless it is being dialled or leads to a device connected already.
    fn dial(&mut self, addr: SocketAddr) {
        let connected = |device: &DeviceId| self.connections.contains_key(device);
        let listening = self
            .connections
            .values()
            .any(|c| c.peer.listening == addr || c.peer.addr == addr);
        if self.dialing.contains(&addr)
            || listening
            || self.reached.get(&addr).is_some_and(connected)
            || self.opening.len() >= MAX_OPENING
        {
            return;
        }
        self.dialing.insert(addr);
        let id = self.next_id();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let timeout = shared.config.handshake_timeout;
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => conn::serve(shared, id, stream, addr, Some(addr)).await,
                Ok(Err(error)) => {
                    let error = LanError::Io(error);
                    let _ = shared.internal.send(Internal::Failed {
                        id,
                        dialed: Some(addr),
                        error,
                    });
                }
                Err(_) => {
                    let error = LanError::TimedOut("connecting");
                    let _ = shared.internal.send(Internal::Failed {
                        id,
                        dialed: Some(addr),
                        error,
                    });
                }
            }
        });
    }

    /// Dials the fixed peers (`lan.peers`, resolved again each time) and the remembered ones
    /// that are not connected.
    fn redial(&mut self) {
        for addr in self.shared.config.remembered.clone() {
            self.dial(addr);
        }
        for peer in &self.shared.config.peers {
            let (peer, internal) = (peer.clone(), self.shared.internal.clone());
            tokio::spawn(async move {
                match tokio::net::lookup_host(peer.as_str()).await {
                    Ok(addrs) => {
                        for addr in addrs {
                            let wait = Duration::ZERO;
                            let _ = internal.send(Internal::Dial { addr, wait });
                        }
                    }
                    Err(error) => debug!(%peer, %error, "a LAN peer's name did not resolve"),
                }
            });
        }
    }

    async fn internal(&mut self, message: Internal) {
        match message {
            Internal::Dial { addr, wait } if wait.is_zero() => self.dial(addr),
            Internal::Dial { addr, wait } => {
                let internal = self.shared.internal.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let wait = Duration::ZERO;
                    let _ = internal.send(Internal::Dial { addr, wait });
                });
            }
            Internal::Failed { id, dialed, error } => {
                self.opening.remove(&id);
                let foreign = matches!(error, LanError::Handshake | LanError::Refused);
                if foreign {
                    self.shared.refused.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(addr) = dialed {
                    self.dialing.remove(&addr);
                    if foreign && self.said_wrong_key.insert(addr) {
                        warn!(%addr, "LAN: {error}");
                    }
                }
            }
            Internal::Ready {
                id,
                peer,
                frames,
                parts,
                dialed,
            } => {
                self.opening.remove(&id);
                if let Some(addr) = dialed {
                    self.dialing.remove(&addr);
                    self.reached.insert(addr, peer.device);
                }
                let connection = Connection {
                    id,
                    peer,
                    frames,
                    parts,
                };
                self.ready(connection).await;
            }
            Internal::Closed { id, device, why } => {
                if self.connections.get(&device).is_some_and(|c| c.id == id) {
                    self.connections.remove(&device);
                    info!(%device, %why, "LAN: a peer disconnected");
                    self.publish();
                    let _ = self
                        .shared
                        .events
                        .send(Event::Disconnected { device, why })
                        .await;
                }
            }
        }
    }

    /// Keeps `new` unless the device has a connection already that both sides prefer: the one
    /// dialled by the device with the smaller id.
    async fn ready(&mut self, new: Connection) {
        let device = new.peer.device;
        if let Some(old) = self.connections.get(&device) {
            let me = self.shared.config.device;
            let preferred_dialer = me.min(device);
            let dialer = |c: &Connection| if c.peer.dialed { me } else { device };
            if dialer(old) == preferred_dialer || dialer(&new) != preferred_dialer {
                // Dropping `new` closes it.
                return;
            }
        }
        info!(%device, addr = %new.peer.addr, "LAN: a peer connected");
        let peer = new.peer.clone();
        self.connections.insert(device, new);
        self.publish();
        let _ = self.shared.events.send(Event::Connected(peer)).await;
    }

    async fn send(&mut self, to: Option<DeviceId>, frame: Frame) {
        let targets: Vec<DeviceId> = match to {
            Some(device) => vec![device],
            None => self.connections.keys().copied().collect(),
        };
        for device in targets {
            let Some(connection) = self.connections.get(&device) else {
                continue;
            };
            if let Err(mpsc::error::TrySendError::Full(_)) =
                connection.frames.try_send(frame.clone())
            {
                // It cannot keep up: closed, and it catches up from heads when it reconnects.
                self.connections.remove(&device);
                self.publish();
                let why = "it fell behind".to_owned();
                warn!(%device, "LAN: a peer fell behind and was disconnected");
                let _ = self
                    .shared
                    .events
                    .send(Event::Disconnected { device, why })
                    .await;
            }
        }
    }

    /// Tells the calls, then the application, who is connected now: a device the application
    /// sees connected can be called at once.
    fn publish(&self) {
        let links = self
            .connections
            .iter()
            .map(|(device, c)| (*device, c.parts.clone()))
            .collect();
        self.shared.calls.connected(links);
        let mut peers: Vec<Peer> = self.connections.values().map(|c| c.peer.clone()).collect();
        peers.sort_by_key(|p| p.device);
        self.peers.send_replace(peers);
    }
}
