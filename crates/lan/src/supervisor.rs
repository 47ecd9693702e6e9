//! The task that knows who is connected: it accepts and dials, keeps one connection per
//! device, routes frames to them, and tells the application who came and went.
//!
//! Two devices that find each other at once both dial. Once the hellos name the device, the
//! connection dialled by the device with the smaller id is kept on both sides, and the other
//! closes. A connection never displaces one that proved another key.
//!
//! Strangers cannot starve it: connections accepted while in their handshake are limited per
//! source address and in total, addresses that completed a hello before have slots of their
//! own, this device's own dials are counted apart, and what is past a limit is closed at once,
//! before any Noise work. Connections and callers are capped too.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferry_protocol::DeviceId;
use ferry_protocol::lan::Frame;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};
use zeroize::Zeroizing;

use crate::conn::Caller;
use crate::{Event, LanConfig, LanError, Peer, calls, conn};

/// The most accepted connections from addresses never seen to complete a hello that may be in
/// their handshake at once; more are refused at once.
const MAX_OPENING: usize = 32;

/// How long after a connection this device dialled closes it dials that address again.
const REDIAL_CLOSED: Duration = Duration::from_secs(1);

/// How long after a dial found nothing listening this device dials that address again, the
/// first time: each later try waits twice as long, until the regular redial takes over. A
/// device whose agent starts again (on a new key, say) listens within a second.
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// The same for addresses that completed a hello before: slots strangers cannot take.
const MAX_OPENING_KNOWN: usize = 16;

/// The most accepted connections from one address in their handshake at once.
const MAX_OPENING_PER_ADDRESS: usize = 4;

/// The most of this device's own dials in progress at once.
const MAX_DIALING: usize = 32;

/// The most connections set up at once, callers included.
const MAX_CONNECTIONS: usize = 64;

/// The most connections of commands (callers) of one device at once.
const MAX_CALLERS_PER_DEVICE: usize = 4;

/// The most callers whose key the roster does not know yet (devices joining with the recovery
/// code, let in by a device that holds a repository), together and from one address.
const MAX_UNKNOWN_CALLERS: usize = 8;
const MAX_UNKNOWN_CALLERS_PER_ADDRESS: usize = 2;

/// How many addresses that completed a hello are remembered, and how many of devices not in
/// the roster yet are dialled again when it changes.
const MAX_KNOWN: usize = 256;
const MAX_WAITING: usize = 16;

/// What every connection task shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: Arc<LanConfig>,
    pub(crate) psk: Arc<Zeroizing<[u8; 32]>>,
    /// The PSK of the generation before, whose devices may still call ([`LanConfig::earlier`]).
    pub(crate) earlier_psk: Option<Arc<Zeroizing<[u8; 32]>>>,
    /// The port this device listens on.
    pub(crate) port: u16,
    pub(crate) internal: mpsc::UnboundedSender<Internal>,
    pub(crate) events: mpsc::Sender<Event>,
    /// Connections, either way, refused because the other end did not prove the group's key.
    pub(crate) refused: Arc<AtomicU64>,
    /// Calls waiting for answers, and where to send parts.
    pub(crate) calls: Arc<calls::Table>,
    /// Bytes of frames waiting for the application.
    pub(crate) queued: Arc<AtomicUsize>,
    /// Bytes large frames may hold while they arrive, every connection together.
    pub(crate) budget: Arc<Semaphore>,
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
        /// The key its hello proved.
        key: [u8; 32],
        /// For a caller's connection (its `peer.device` is a passing id): what it is.
        caller: Option<Caller>,
        frames: mpsc::Sender<Frame>,
        parts: mpsc::Sender<Frame>,
        dialed: Option<SocketAddr>,
        /// Told whether the connection is kept; nothing is read from it before.
        kept: oneshot::Sender<bool>,
        /// Ends the connection at once, saying why.
        stop: oneshot::Sender<String>,
    },
    /// A connection could not be set up.
    Failed {
        id: u64,
        addr: SocketAddr,
        dialed: Option<SocketAddr>,
        error: LanError,
    },
    /// Both ends kept a ready connection: it counts from now on.
    Welcomed { id: u64, device: DeviceId },
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
    key: [u8; 32],
    /// For a caller's connection: what it is.
    caller: Option<Caller>,
    /// Ends it at once (dropping it instead lets what was queued go out first).
    stop: Option<oneshot::Sender<String>>,
    /// Whether the other end kept it too: until then it is neither listed nor called.
    welcomed: bool,
    frames: mpsc::Sender<Frame>,
    /// Parts of calls, sent when no frame waits.
    parts: mpsc::Sender<Frame>,
}

impl Connection {
    /// Ends the connection at once; what it was (a caller's, or not).
    fn stop(mut self) -> Option<Caller> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send("closed by this device".into());
        }
        self.caller
    }
}

/// A connection in its handshake.
struct Opening {
    ip: IpAddr,
    /// Dialled by this device (counted apart from those accepted).
    dialed: bool,
    /// Accepted from an address that completed a hello before.
    known: bool,
}

struct Supervisor {
    shared: Shared,
    connections: HashMap<DeviceId, Connection>,
    /// Connections in their handshake.
    opening: HashMap<u64, Opening>,
    /// Addresses that completed a hello with a member.
    known: HashSet<IpAddr>,
    /// Where devices not in the roster listen: dialled again when it changes.
    waiting: HashMap<SocketAddr, DeviceId>,
    /// Accepted connections closed at once, past the limits (said now and then).
    turned_away: u64,
    /// Addresses being dialled.
    dialing: HashSet<SocketAddr>,
    /// Which device each dialled address led to.
    reached: HashMap<SocketAddr, DeviceId>,
    /// Addresses where nothing answered a dial lately: how long until the next try, and when
    /// the last one failed.
    retrying: HashMap<SocketAddr, (Duration, Instant)>,
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
    let mut members = shared.config.members.watch();
    let mut supervisor = Supervisor {
        shared,
        connections: HashMap::new(),
        opening: HashMap::new(),
        known: HashSet::new(),
        waiting: HashMap::new(),
        turned_away: 0,
        dialing: HashSet::new(),
        reached: HashMap::new(),
        retrying: HashMap::new(),
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
            Ok(()) = members.changed() => supervisor.members_changed().await,
            _ = redial.tick() => supervisor.redial(),
        }
    }
}

impl Supervisor {
    fn next_id(&mut self, opening: Opening) -> u64 {
        self.next_id += 1;
        self.opening.insert(self.next_id, opening);
        self.next_id
    }

    /// Serves a connection accepted from `addr`, or closes it at once (dropping it) when its
    /// address, or strangers together, hold as many handshakes as they may.
    fn accepted(&mut self, stream: TcpStream, addr: SocketAddr) {
        let ip = addr.ip();
        let accepted: Vec<&Opening> = self.opening.values().filter(|o| !o.dialed).collect();
        let from_here = accepted.iter().filter(|o| o.ip == ip).count();
        let known_open = accepted.iter().filter(|o| o.known).count();
        let strangers_open = accepted.len() - known_open;
        // An address seen before takes a slot of its own, or a stranger's when those are taken.
        let known = self.known.contains(&ip) && known_open < MAX_OPENING_KNOWN;
        if from_here >= MAX_OPENING_PER_ADDRESS
            || (!known && strangers_open >= MAX_OPENING)
            || self.connections.len() + self.opening.len() >= MAX_CONNECTIONS + MAX_DIALING
        {
            self.turned_away += 1;
            if self.turned_away.is_power_of_two() {
                info!(
                    %addr,
                    turned_away = self.turned_away,
                    "LAN: too many connections in their handshake; more were closed at once"
                );
            }
            return;
        }
        let id = self.next_id(Opening {
            ip,
            dialed: false,
            known,
        });
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
            || self.dialing.len() >= MAX_DIALING
        {
            return;
        }
        self.dialing.insert(addr);
        let id = self.next_id(Opening {
            ip: addr.ip(),
            dialed: true,
            known: false,
        });
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let timeout = shared.config.handshake_timeout;
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => conn::serve(shared, id, stream, addr, Some(addr)).await,
                Ok(Err(error)) => {
                    let error = LanError::Io(error);
                    let _ = shared.internal.send(Internal::Failed {
                        id,
                        addr,
                        dialed: Some(addr),
                        error,
                    });
                }
                Err(_) => {
                    let error = LanError::TimedOut("connecting");
                    let _ = shared.internal.send(Internal::Failed {
                        id,
                        addr,
                        dialed: Some(addr),
                        error,
                    });
                }
            }
        });
    }

    /// Dials `addr`, where nothing answered, again soon: after [`FIRST_RETRY`], then twice as
    /// long each time until that reaches the regular redial, which goes on from there.
    fn retry(&mut self, addr: SocketAddr) {
        let now = Instant::now();
        let redial = self.shared.config.redial_every;
        if !self.retrying.contains_key(&addr) && self.retrying.len() >= MAX_KNOWN {
            // Addresses that failed long ago (a lease that moved on) make room.
            self.retrying
                .retain(|_, (_, failed)| now.duration_since(*failed) < redial * 2);
            if self.retrying.len() >= MAX_KNOWN {
                return;
            }
        }
        let (wait, _) = *self.retrying.entry(addr).or_insert((FIRST_RETRY, now));
        // Doubled up to the regular redial, which then goes on alone.
        self.retrying.insert(addr, ((wait * 2).min(redial), now));
        if wait >= redial {
            return;
        }
        let _ = self.shared.internal.send(Internal::Dial { addr, wait });
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
            Internal::Failed {
                id,
                addr,
                dialed,
                error,
            } => {
                self.opening.remove(&id);
                let foreign = matches!(error, LanError::Handshake | LanError::Refused);
                if foreign {
                    self.shared.refused.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(addr) = dialed {
                    self.dialing.remove(&addr);
                    if matches!(error, LanError::Io(_) | LanError::TimedOut(_)) {
                        self.retry(addr);
                    }
                    if foreign && self.said_wrong_key.insert(addr) {
                        warn!(%addr, "LAN: {error}");
                        let _ = self.shared.events.send(Event::Refused { addr }).await;
                    }
                }
                match error {
                    LanError::NotMember {
                        device,
                        listening,
                        caller: false,
                    } => {
                        let at = dialed.unwrap_or(SocketAddr::new(addr.ip(), listening));
                        let new = !self.waiting.values().any(|d| *d == device);
                        if self.waiting.len() >= MAX_WAITING
                            && let Some(oldest) = self.waiting.keys().next().copied()
                        {
                            self.waiting.remove(&oldest);
                        }
                        self.waiting.insert(at, device);
                        if new {
                            info!(%addr, "LAN: {error}");
                        }
                    }
                    LanError::Forged => warn!(%addr, "LAN: {error}"),
                    _ => {}
                }
            }
            Internal::Ready {
                id,
                peer,
                key,
                caller,
                frames,
                parts,
                dialed,
                kept,
                stop,
            } => {
                self.opening.remove(&id);
                if let Some(addr) = dialed {
                    self.dialing.remove(&addr);
                    self.retrying.remove(&addr);
                    self.reached.insert(addr, peer.device);
                }
                let connection = Connection {
                    id,
                    peer,
                    key,
                    caller,
                    stop: Some(stop),
                    welcomed: false,
                    frames,
                    parts,
                };
                let (ip, member) = (connection.peer.addr.ip(), caller.is_none());
                let keeps = self.ready(connection).await;
                // Only an address where a member's own connection was kept earns slots of its own.
                if keeps && member && self.known.len() < MAX_KNOWN {
                    self.known.insert(ip);
                }
                let _ = kept.send(keeps);
            }
            Internal::Welcomed { id, device } => {
                let Some(connection) = self.connections.get_mut(&device) else {
                    return;
                };
                if connection.id != id {
                    return;
                }
                connection.welcomed = true;
                let (peer, caller) = (connection.peer.clone(), connection.caller);
                self.publish();
                if caller.is_none() {
                    info!(%device, addr = %peer.addr, "LAN: a peer connected");
                    let _ = self.shared.events.send(Event::Connected(peer)).await;
                }
            }
            Internal::Closed { id, device, why } => {
                if self.connections.get(&device).is_some_and(|c| c.id == id) {
                    let closed = self.connections.remove(&device);
                    // A device this one dialled that went away may be starting again (an agent
                    // on a new key): dialled again in a moment rather than at the next round.
                    if let Some(closed) = closed
                        && closed.peer.dialed
                    {
                        let (addr, wait) = (closed.peer.addr, REDIAL_CLOSED);
                        let _ = self.shared.internal.send(Internal::Dial { addr, wait });
                    }
                    let listed = self.listed(&device);
                    self.publish();
                    if !listed {
                        return;
                    }
                    info!(%device, %why, "LAN: a peer disconnected");
                    let _ = self
                        .shared
                        .events
                        .send(Event::Disconnected { device, why })
                        .await;
                }
            }
        }
    }

    /// Keeps `new` unless the device has a connection already that proved another key, or one
    /// that both sides prefer: the one dialled by the device with the smaller id (of two
    /// dialled by the same device, the newer). A caller is
    /// kept beside its device's own connection, up to a few per device; nothing is kept past
    /// [`MAX_CONNECTIONS`].
    async fn ready(&mut self, new: Connection) -> bool {
        let device = new.peer.device;
        let full = self.connections.len() >= MAX_CONNECTIONS;
        if let Some(caller) = new.caller {
            let callers = self
                .connections
                .values()
                .filter_map(|c| Some((c, c.caller?)));
            let room = match caller.known {
                true => {
                    let same = callers.filter(|(c, _)| c.key == new.key).count();
                    same < MAX_CALLERS_PER_DEVICE
                }
                false => {
                    let unknown: Vec<&Connection> =
                        callers.filter(|(_, c)| !c.known).map(|(c, _)| c).collect();
                    let here = unknown
                        .iter()
                        .filter(|c| c.peer.addr.ip() == new.peer.addr.ip());
                    unknown.len() < MAX_UNKNOWN_CALLERS
                        && here.count() < MAX_UNKNOWN_CALLERS_PER_ADDRESS
                }
            };
            if full || !room || self.connections.contains_key(&device) {
                debug!(addr = %new.peer.addr, "LAN: as many callers as this device keeps: one more was closed");
                return false;
            }
            self.connections.insert(device, new);
            return true;
        }
        if let Some(old) = self.connections.get(&device) {
            if old.key != new.key {
                warn!(%device, "LAN: a connection proving another key than the device's was closed");
                return false;
            }
            let me = self.shared.config.device;
            let preferred_dialer = me.min(device);
            let dialer = |c: &Connection| if c.peer.dialed { me } else { device };
            // Dialled by the same device twice: it lost the first (a device does not dial one
            // it is connected to), so the new one takes over.
            if dialer(old) != dialer(&new)
                && (dialer(old) == preferred_dialer || dialer(&new) != preferred_dialer)
            {
                return false;
            }
        } else if full {
            debug!(%device, "LAN: as many connections as this device keeps: one more was closed");
            return false;
        }
        // Counted once the other end says it kept it too (`Internal::Welcomed`).
        self.connections.insert(device, new);
        true
    }

    /// Whether `device` is among the peers last published.
    fn listed(&self, device: &DeviceId) -> bool {
        self.peers
            .borrow()
            .iter()
            .any(|peer| peer.device == *device)
    }

    async fn send(&mut self, to: Option<DeviceId>, frame: Frame) {
        let targets: Vec<DeviceId> = match to {
            Some(device) => vec![device],
            None => self
                .connections
                .iter()
                .filter(|(_, c)| c.caller.is_none() && c.welcomed)
                .map(|(device, _)| *device)
                .collect(),
        };
        for device in targets {
            let Some(connection) = self.connections.get(&device) else {
                continue;
            };
            if let Err(mpsc::error::TrySendError::Full(_)) =
                connection.frames.try_send(frame.clone())
            {
                // It cannot keep up: closed, and it catches up from heads when it reconnects.
                self.connections.remove(&device).map(Connection::stop);
                let listed = self.listed(&device);
                self.publish();
                if !listed {
                    continue;
                }
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

    /// The roster changed: connections of devices it no longer names (or names with another
    /// key) close, and devices refused before as unknown are dialled again.
    async fn members_changed(&mut self) {
        let members = &self.shared.config.members;
        let gone: Vec<DeviceId> = self
            .connections
            .iter()
            .filter(|(device, c)| match c.caller {
                None => !members.allow(device, &c.key),
                // A holder keeps callers it does not know for their short lifetime.
                Some(caller) => {
                    caller.known
                        && !members.allow_caller(&c.key)
                        && self.shared.config.max_question == 0
                }
            })
            .map(|(device, _)| *device)
            .collect();
        for device in gone {
            let Some(connection) = self.connections.remove(&device) else {
                continue;
            };
            connection.stop();
            let listed = self.listed(&device);
            self.publish();
            if listed {
                info!(%device, "LAN: a device no longer in the roster was disconnected");
                let why = "it is no longer in the roster".to_owned();
                let _ = self
                    .shared
                    .events
                    .send(Event::Disconnected { device, why })
                    .await;
            }
        }
        for (addr, _) in std::mem::take(&mut self.waiting) {
            self.dial(addr);
        }
    }

    /// Tells the calls, then the application, who is connected now: a device the application
    /// sees connected can be called at once.
    fn publish(&self) {
        let welcomed = || self.connections.iter().filter(|(_, c)| c.welcomed);
        let links = welcomed()
            .map(|(device, c)| (*device, c.parts.clone()))
            .collect();
        self.shared.calls.connected(links);
        let mut peers: Vec<Peer> = welcomed()
            .filter(|(_, c)| c.caller.is_none())
            .map(|(_, c)| c.peer.clone())
            .collect();
        peers.sort_by_key(|p| p.device);
        self.peers.send_replace(peers);
    }
}
