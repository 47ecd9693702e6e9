//! Pairing on the LAN: the device that shows a code waits at a meeting place named after the
//! code's nameplate ([`Meeting::host`]); the device that types the code finds it by mDNS and
//! connects ([`Meeting::seek`]); the pairing frames then travel over that TCP connection as
//! they would over the nameplate's relay topic.
//!
//! ```text
//! host: listen on a free port, announce <lan_instance(nameplate)>._ferry-pair._tcp.local.
//! seek: browse _ferry-pair._tcp.local. ─▶ that instance ─▶ connect
//! both: [len u16 BE ‖ pairing frame]*  (every frame sent so far, then each new one)
//! ```
//!
//! The frames protect themselves (SPAKE2, key confirmation, sealing), so the connection adds no
//! encryption of its own: it is a relay topic with the two devices on it. Like a topic, the
//! place is open to anyone on the network. A connection that sends anything but pairing frames
//! (of any version, so that the session can say which device to upgrade), or nothing within
//! [`FIRST_FRAME`], is closed before the session sees it; one that sends well-formed frames with
//! a wrong code gets the one guess a relay would give it.

use std::collections::HashMap;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferry_protocol::lan::DEFAULT_PORT;
use ferry_protocol::pairing::{self, LAN_SERVICE_TYPE};
use ferry_protocol::relay::wire::MAX_DATA;
use mdns_sd::{ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tracing::debug;

use crate::LanError;
use crate::discovery::daemon;

/// The port a device that shows a code listens on by default: the one after the agent's.
pub const PAIRING_PORT: u16 = DEFAULT_PORT + 1;

/// How long a new connection has to send its first well-formed frame.
pub const FIRST_FRAME: Duration = Duration::from_secs(5);

/// How many connections the host keeps at once, and from one address; more are closed as they
/// come.
const MAX_CONNECTIONS: usize = 8;
const MAX_PER_ADDRESS: usize = 2;

/// How long one connection attempt of the seeking side may take.
const CONNECT: Duration = Duration::from_secs(3);

/// How often the seeking side tries the addresses of a place it found before it gives up on
/// that announcement.
const ATTEMPTS: u32 = 5;

/// How long one write may take before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the meeting listens and runs mDNS.
#[derive(Debug, Clone)]
pub struct MeetingConfig {
    /// The port the host listens on, for firewalls ([`PAIRING_PORT`]); a free one when it is
    /// taken, or 0.
    pub port: u16,
    /// The mDNS port (5353; a test may use another so as not to meet the machine's own).
    pub mdns_port: u16,
    /// Announce, browse and listen on the loopback interface only (tests on one machine).
    pub loopback_only: bool,
}

impl Default for MeetingConfig {
    fn default() -> Self {
        MeetingConfig {
            port: PAIRING_PORT,
            mdns_port: 5353,
            loopback_only: false,
        }
    }
}

/// One side of a pairing meeting on the LAN: stops announcing or browsing and closes its
/// connections when dropped.
pub struct Meeting {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
    daemon: ServiceDaemon,
    local: Option<SocketAddr>,
}

impl Drop for Meeting {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.daemon.shutdown();
    }
}

enum Command {
    Send(Arc<[u8]>),
    Flush(oneshot::Sender<()>),
}

impl Meeting {
    /// Waits at the meeting place of `nameplate`: listens on the configured port (or a free
    /// one) and announces it.
    /// Frames from whoever connects arrive on the receiver.
    pub async fn host(
        nameplate: u16,
        config: &MeetingConfig,
    ) -> Result<(Meeting, mpsc::Receiver<Vec<u8>>), LanError> {
        let listener = listen(config).await?;
        let local = listener.local_addr()?;
        let daemon = daemon(config.mdns_port, config.loopback_only)?;
        let instance = pairing::lan_instance(nameplate);
        let host = format!("{instance}.local.");
        let no_properties = None::<HashMap<String, String>>;
        let info = if config.loopback_only {
            ServiceInfo::new(
                LAN_SERVICE_TYPE,
                &instance,
                &host,
                IpAddr::from(Ipv4Addr::LOCALHOST),
                local.port(),
                no_properties,
            )
        } else {
            ServiceInfo::new(
                LAN_SERVICE_TYPE,
                &instance,
                &host,
                (),
                local.port(),
                no_properties,
            )
            .map(ServiceInfo::enable_addr_auto)
        };
        let mut info = info.map_err(discovery_failed)?;
        // As for the devices' own names (SPEC §10.1): no probing. A second place of the same
        // nameplate on the network is a crowd, which the session ends anyway.
        info.set_requires_probe(false);
        daemon.register(info).map_err(discovery_failed)?;
        let (hub, commands, frames) = Hub::new();
        let task = tokio::spawn(hub.run(Some(listener), None));
        let meeting = Meeting {
            commands,
            task,
            daemon,
            local: Some(local),
        };
        Ok((meeting, frames))
    }

    /// Looks for the meeting place of `nameplate` and connects to it (to each, should the
    /// network hold more than one). Frames from there arrive on the receiver.
    pub fn seek(
        nameplate: u16,
        config: &MeetingConfig,
    ) -> Result<(Meeting, mpsc::Receiver<Vec<u8>>), LanError> {
        let daemon = daemon(config.mdns_port, config.loopback_only)?;
        let browse = Browse {
            events: daemon.browse(LAN_SERVICE_TYPE).map_err(discovery_failed)?,
            instance: pairing::lan_instance(nameplate),
        };
        let (hub, commands, frames) = Hub::new();
        let task = tokio::spawn(hub.run(None, Some(browse)));
        let meeting = Meeting {
            commands,
            task,
            daemon,
            local: None,
        };
        Ok((meeting, frames))
    }

    /// Sends `frame` on every connection, and on every one made later (first, with the frames
    /// sent before it).
    pub fn send(&self, frame: Vec<u8>) {
        let _ = self.commands.send(Command::Send(frame.into()));
    }

    /// Waits until every frame sent so far has been written to every connection, at most
    /// `limit`. True when they all went out: a short-lived program calls this before it exits.
    pub async fn flush(&self, limit: Duration) -> bool {
        let (done, written) = oneshot::channel();
        if self.commands.send(Command::Flush(done)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(limit, written).await, Ok(Ok(())))
    }

    /// Where the host listens (`None` for the seeking side).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }
}

/// The host's listener: on the loopback interface for tests; else on every address, IPv6 and
/// IPv4 alike where the machine has IPv6 (the seeker dials whichever address mDNS gives first),
/// IPv4 alone where it has not. On the configured port, or any free one when it is taken
/// (another pairing on this machine, or another program).
async fn listen(config: &MeetingConfig) -> Result<TcpListener, LanError> {
    let mut last = None;
    for port in [config.port, 0] {
        let bound = if config.loopback_only {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await
        } else {
            match dual_stack(port) {
                Ok(listener) => Ok(listener),
                Err(_) => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await,
            }
        };
        match bound {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
    }
    Err(LanError::Listen {
        port: config.port,
        source: last.unwrap_or_else(|| std::io::Error::other("no address to listen on")),
    })
}

/// A listener on `[::]:port` that takes IPv4 connections too, whatever the system's default.
fn dual_stack(port: u16) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v6()?;
    // The connections of a pairing that just ended may still linger on the port.
    socket.set_reuseaddr(true)?;
    socket2::SockRef::from(&socket).set_only_v6(false)?;
    socket.bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))?;
    socket.listen(16)
}

fn discovery_failed(error: mdns_sd::Error) -> LanError {
    LanError::Discovery(error.to_string())
}

/// What the seeking side browses for.
struct Browse {
    events: mdns_sd::Receiver<ServiceEvent>,
    instance: String,
}

/// A place the seeking side found: the addresses it tried, and whether one answered.
#[derive(Default)]
struct Place {
    tried: HashSet<SocketAddr>,
    connected: bool,
}

enum Internal {
    /// Some addresses of a place were tried: the connection one of them took, if any.
    Reached {
        fullname: String,
        stream: Option<TcpStream>,
    },
    Closed(u64),
}

enum Write {
    Frame(Arc<[u8]>),
    Flushed(oneshot::Sender<()>),
}

/// One connection of the meeting: where it comes from, and its writer's queue.
struct Connection {
    ip: std::net::IpAddr,
    writes: mpsc::UnboundedSender<Write>,
}

/// The frames sent so far and the connections they go to.
struct Hub {
    commands_rx: mpsc::UnboundedReceiver<Command>,
    internal: mpsc::UnboundedSender<Internal>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    frames: mpsc::Sender<Vec<u8>>,
    sent: Vec<Arc<[u8]>>,
    /// This device's own side, as its first frame carries it, once sent: a connection that
    /// sends it back is a stranger holding a place, not the other device.
    own: Arc<OnceLock<[u8; 8]>>,
    connections: HashMap<u64, Connection>,
    next_id: u64,
    /// Places found by the seeking side, by full name.
    found: HashMap<String, Place>,
    tasks: JoinSet<()>,
}

impl Hub {
    /// A hub, the sender of its commands (it stops when that is dropped), and the receiver of
    /// the frames its connections bring.
    fn new() -> (Hub, mpsc::UnboundedSender<Command>, mpsc::Receiver<Vec<u8>>) {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (internal, internal_rx) = mpsc::unbounded_channel();
        let (frames, frames_rx) = mpsc::channel(64);
        let hub = Hub {
            commands_rx,
            internal,
            internal_rx,
            frames,
            sent: Vec::new(),
            own: Arc::new(OnceLock::new()),
            connections: HashMap::new(),
            next_id: 0,
            found: HashMap::new(),
            tasks: JoinSet::new(),
        };
        (hub, commands, frames_rx)
    }

    async fn run(mut self, listener: Option<TcpListener>, mut browse: Option<Browse>) {
        let mut browsing = browse.is_some();
        loop {
            tokio::select! {
                // Commands first: a frame sent before a connection came is that connection's
                // first, and tells it this device's side.
                biased;
                command = self.commands_rx.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                Some(internal) = self.internal_rx.recv() => self.internal(internal),
                accepted = accept(listener.as_ref()) => match accepted {
                    Ok((stream, addr)) => self.serve(stream, addr),
                    Err(error) => {
                        // Out of file descriptors and the like: let connections close first.
                        debug!(%error, "pairing on the LAN: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                found = found(browse.as_mut()), if browsing => match found {
                    Some(service) => self.reach(&service),
                    // The mDNS daemon stopped: no more places will be found.
                    None => browsing = false,
                },
                Some(_) = self.tasks.join_next() => {}
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Send(frame) => {
                for connection in self.connections.values() {
                    let _ = connection.writes.send(Write::Frame(Arc::clone(&frame)));
                }
                if let Some(side) = side(&frame) {
                    let _ = self.own.set(side);
                }
                self.sent.push(frame);
            }
            Command::Flush(done) => {
                let waits: Vec<oneshot::Receiver<()>> = self
                    .connections
                    .values()
                    .filter_map(|connection| {
                        let (flushed, wait) = oneshot::channel();
                        let flushed = Write::Flushed(flushed);
                        connection.writes.send(flushed).ok().map(|()| wait)
                    })
                    .collect();
                self.tasks.spawn(async move {
                    for wait in waits {
                        let _ = wait.await;
                    }
                    let _ = done.send(());
                });
            }
        }
    }

    fn internal(&mut self, internal: Internal) {
        match internal {
            Internal::Reached {
                fullname,
                stream: Some(stream),
            } => {
                let place = self.found.entry(fullname).or_default();
                // Another address of the place may have answered first.
                if !place.connected {
                    place.connected = true;
                    let addr = stream
                        .peer_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                    self.serve(stream, addr);
                }
            }
            Internal::Reached { .. } => {}
            Internal::Closed(id) => {
                self.connections.remove(&id);
            }
        }
    }

    /// Starts trying the addresses of a place the seeking side found.
    /// Addresses a place resolves to arrive in parts (mDNS often answers with the IPv6 one
    /// first): each new one is tried until one answers.
    fn reach(&mut self, service: &ResolvedService) {
        let place = self.found.entry(service.fullname.clone()).or_default();
        if place.connected {
            return;
        }
        let addrs: Vec<SocketAddr> = service
            .get_addresses()
            .iter()
            .filter_map(|ip| socket_addr(ip, service.port))
            .filter(|addr| place.tried.insert(*addr))
            .collect();
        if addrs.is_empty() {
            return;
        }
        debug!(?addrs, "pairing on the LAN: found the meeting place");
        let internal = self.internal.clone();
        let fullname = service.fullname.clone();
        self.tasks.spawn(async move {
            let stream = connect(&addrs).await;
            let _ = internal.send(Internal::Reached { fullname, stream });
        });
    }

    /// Serves a new connection: every frame sent so far goes out first.
    fn serve(&mut self, stream: TcpStream, addr: SocketAddr) {
        let ip = addr.ip();
        let from_there = self.connections.values().filter(|c| c.ip == ip).count();
        if self.connections.len() >= MAX_CONNECTIONS || from_there >= MAX_PER_ADDRESS {
            debug!(%addr, "pairing on the LAN: too many connections, one refused");
            return;
        }
        let own = Arc::clone(&self.own);
        let _ = stream.set_nodelay(true);
        debug!(%addr, "pairing on the LAN: connected");
        let id = self.next_id;
        self.next_id += 1;
        let (writes, writes_rx) = mpsc::unbounded_channel();
        for frame in &self.sent {
            let _ = writes.send(Write::Frame(Arc::clone(frame)));
        }
        self.connections.insert(id, Connection { ip, writes });
        let frames = self.frames.clone();
        let internal = self.internal.clone();
        self.tasks.spawn(async move {
            let (reader, writer) = stream.into_split();
            let why = tokio::select! {
                why = read(reader, frames, own) => why,
                why = write(writer, writes_rx) => why,
            };
            debug!(%addr, why, "pairing on the LAN: a connection closed");
            let _ = internal.send(Internal::Closed(id));
        });
    }
}

/// A future that never completes, of a type any branch can take.
async fn idle() -> std::convert::Infallible {
    std::future::pending().await
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => match idle().await {},
    }
}

/// The next place of the wanted instance the seeking side found; `None` when mDNS stopped.
async fn found(browse: Option<&mut Browse>) -> Option<Box<ResolvedService>> {
    let Browse { events, instance } = browse?;
    loop {
        match events.recv_async().await {
            Ok(ServiceEvent::ServiceResolved(service)) => {
                let name = service
                    .fullname
                    .strip_suffix(LAN_SERVICE_TYPE)
                    .unwrap_or_default();
                // An mDNS stack may add a suffix to resolve a clash: a second place of the
                // nameplate is still that nameplate's (and a crowd).
                if name.starts_with(instance.as_str()) {
                    return Some(service);
                }
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Where to dial an address mDNS gave: an IPv6 link-local one on the interface it came from.
fn socket_addr(ip: &ScopedIp, port: u16) -> Option<SocketAddr> {
    match ip {
        ScopedIp::V4(v4) => Some(SocketAddr::new((*v4.addr()).into(), port)),
        ScopedIp::V6(v6) => {
            let scope = if v6.addr().is_unicast_link_local() {
                v6.scope_id().index
            } else {
                0
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                *v6.addr(),
                port,
                0,
                scope,
            )))
        }
        _ => None,
    }
}

/// The first of `addrs` that takes a connection, trying them all a few times.
async fn connect(addrs: &[SocketAddr]) -> Option<TcpStream> {
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
        }
        for addr in addrs {
            match tokio::time::timeout(CONNECT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => return Some(stream),
                Ok(Err(error)) => debug!(%addr, %error, "pairing on the LAN: cannot connect"),
                Err(_) => debug!(%addr, "pairing on the LAN: connecting took too long"),
            }
        }
    }
    None
}

/// The side a pairing frame names (its bytes 3 to 11), if it is long enough to.
fn side(frame: &[u8]) -> Option<[u8; 8]> {
    frame.get(3..11)?.try_into().ok()
}

/// Hands each well-formed frame to the session; returns why the connection ended. A frame of
/// `own` side (this device's, sent back; looked at as each frame comes, so that a connection
/// made before this device sent anything is checked too) ends the connection.
async fn read(
    mut reader: OwnedReadHalf,
    frames: mpsc::Sender<Vec<u8>>,
    own: Arc<OnceLock<[u8; 8]>>,
) -> &'static str {
    let mut first = true;
    loop {
        let frame = async {
            let len = usize::from(reader.read_u16().await.ok()?);
            if len == 0 || len > MAX_DATA {
                return Some(Err("a frame length out of bounds"));
            }
            let mut frame = vec![0; len];
            reader.read_exact(&mut frame).await.ok()?;
            Some(Ok(frame))
        };
        let frame = if first {
            match tokio::time::timeout(FIRST_FRAME, frame).await {
                Ok(frame) => frame,
                Err(_) => return "no frame in time",
            }
        } else {
            frame.await
        };
        let frame = match frame {
            None => return "closed by the other side",
            Some(Err(why)) => return why,
            Some(Ok(frame)) => frame,
        };
        // A frame of another version goes on: the session says which device to upgrade.
        if let Err(error) = pairing::Frame::decode(&frame)
            && !matches!(error, pairing::PairingError::Version { .. })
        {
            return "not a pairing frame";
        }
        if own.get().is_some_and(|own| side(&frame) == Some(*own)) {
            return "it sent this device's own frames back";
        }
        first = false;
        if frames.send(frame).await.is_err() {
            return "the session ended";
        }
    }
}

/// Writes what it is given; returns why the connection ended.
async fn write(
    mut writer: OwnedWriteHalf,
    mut writes: mpsc::UnboundedReceiver<Write>,
) -> &'static str {
    while let Some(write) = writes.recv().await {
        match write {
            Write::Frame(frame) => {
                let Ok(len) = u16::try_from(frame.len()) else {
                    continue;
                };
                let mut bytes = Vec::with_capacity(2 + frame.len());
                bytes.extend_from_slice(&len.to_be_bytes());
                bytes.extend_from_slice(&frame);
                match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return "a write failed",
                    Err(_) => return "a write took too long",
                }
            }
            Write::Flushed(done) => {
                let _ = done.send(());
            }
        }
    }
    "the meeting ended"
}
