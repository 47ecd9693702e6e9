//! The agent and its nearby devices: the LAN path started from the settings; what this device
//! records, sealed and sent to connected devices at once; heads on connect; their segments
//! applied (and placed on the clipboard) as they arrive, with the images they name asked of
//! the sender and placed when whole.

use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

use ferry_lan::{Calls, Event, Events, Frame, Lan, Unanswered};
use ferry_protocol::{BlobId, DeviceId};
use ferry_sync::{ChunkReceived, NearbyChunk, NearbySegment, Received};
use tracing::{debug, info, warn};

use super::Agent;
use crate::device::{self, Device, Nearby};
use crate::held::{self, Role};

/// How many peer addresses are remembered for networks where discovery does not work.
const REMEMBERED: usize = 16;

/// Starts the LAN path when `lan.enabled`, and says how it runs; a port that cannot be opened
/// is said and the agent goes on without it (storage and relay carry everything). A device
/// holding its repository in a folder answers the others' calls; one whose repository another
/// device holds reaches it through this LAN.
pub(super) async fn start(device: &mut Device, again: Again) -> (Option<(Lan, Events)>, Nearby) {
    let settings = &device.config.settings;
    if !settings.lan_enabled {
        if let Role::Reaches(line) = &device.held {
            warn!(
                holder = %line.holder().short(),
                "this device's repository is held by another device on the LAN, and the LAN \
                 path is off (lan.enabled = false): nothing syncs until it is on"
            );
        }
        return (None, Nearby::off());
    }
    let identity = &device.identity;
    let mut config = device::lan_config(
        &device.home,
        &device.config,
        device.engine.device(),
        identity,
    );
    device::admit(&device.engine, &config.members);
    if let Role::Holds(_) = device.held {
        config.max_question = ferry_protocol::held::max_question();
        // The devices that have not moved to this key yet learn of it here.
        config.earlier = device
            .engine
            .earlier_keys()
            .await
            .map(|keys| ferry_lan::Earlier {
                key: keys.lan,
                members: device::earlier_members(&device.engine),
            });
    }
    let mut started = Lan::start(config.clone(), &device.keys.lan).await;
    // Starting again on a new key: the port the agent listened on is let go of as its tasks
    // end, a moment after.
    let mut tries = 0;
    while started.is_err() && again == Again::Yes && tries < 40 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        started = Lan::start(config.clone(), &device.keys.lan).await;
        tries += 1;
    }
    if let (Err(_), Role::Reaches(line)) = (&started, &device.held) {
        warn!(
            holder = %line.holder().short(),
            "this device's repository is held by another device on the LAN, and the LAN path \
             did not start: nothing syncs until it does"
        );
    }
    match started {
        Ok((lan, events)) => {
            info!(addr = %lan.local_addr(), discovery = lan.discovering(), "LAN: listening");
            if let Role::Reaches(line) = &device.held {
                line.attach(lan.calls());
            }
            let nearby = Nearby::running(&lan);
            (Some((lan, events)), nearby)
        }
        Err(error) => {
            warn!(%error, "LAN: off");
            (None, Nearby::failed(error.to_string()))
        }
    }
}

/// Whether the agent starts again in the same process (on a new key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Again {
    Yes,
    No,
}

/// Where peers were reached before.
fn remembered(device: &Device) -> Vec<SocketAddr> {
    device::remembered_peers(&device.home)
}

/// How many calls of other devices the holder answers at once.
pub(super) const ANSWERING: usize = 8;

impl Agent {
    /// Whether this device's repository is held by a device that is not connected now: its
    /// passes wait for the holder's connection, which starts them, rather than fail.
    pub(super) fn holder_away(&self) -> bool {
        match &self.device.held {
            Role::Reaches(line) => line.away(),
            _ => false,
        }
    }

    /// Lets in on the LAN the devices the roster knows now, when the state changed since the
    /// last time: a device paired here, or registered elsewhere, connects at once.
    pub(super) fn admit(&mut self) {
        let Some((lan, _)) = &self.lan else {
            return;
        };
        let latest = self.device.engine.state().latest();
        if self.admitted != Some(latest) {
            self.admitted = Some(latest);
            device::admit(&self.device.engine, lan.members());
        }
    }

    /// Seals what is pending and sends it to every connected device, when there is one
    /// (otherwise the upload batches it as always).
    pub(super) fn share(&mut self) {
        let Some((lan, _)) = &self.lan else {
            return;
        };
        if lan.peers().is_empty() {
            return;
        }
        match self.device.engine.seal_pending() {
            Ok(sealed) => {
                for segment in sealed {
                    lan.send(None, segment_frame(segment));
                }
            }
            Err(error) => warn!(%error, "LAN: what was recorded could not be sealed"),
        }
    }

    /// Tells every connected device how far this one is, so each sends what it lacks (after
    /// a pause).
    pub(super) fn greet_nearby(&self) {
        let Some((lan, _)) = &self.lan else {
            return;
        };
        if lan.peers().is_empty() {
            return;
        }
        match self.device.engine.heads() {
            Ok(heads) => lan.send(None, Frame::Heads(heads)),
            Err(error) => warn!(%error, "LAN: heads could not be read"),
        }
    }

    /// Reacts to what happened on the LAN; while sync is paused, only to connections coming
    /// and going.
    pub(super) async fn nearby(&mut self, event: Event) {
        let Some((lan, _)) = &self.lan else {
            return;
        };
        match event {
            Event::Connected(peer) => self.connected(peer).await,
            Event::Received { .. } if self.paused.is_some() => {
                debug!("LAN: sync is paused: a frame was ignored");
            }
            Event::Received {
                from,
                frame: Frame::Heads(heads),
            } => match self.device.engine.segments_for(&heads) {
                Ok(lacking) => {
                    for segment in lacking {
                        lan.send(Some(from), segment_frame(segment));
                    }
                }
                Err(error) => warn!(%error, "LAN: what a peer lacks could not be read"),
            },
            Event::Received {
                from,
                frame:
                    Frame::Segment {
                        device,
                        seq,
                        sealed,
                    },
            } => {
                let segment = NearbySegment {
                    device,
                    seq,
                    sealed,
                };
                self.nearby_segment(from, segment).await;
            }
            Event::Received {
                from,
                frame: Frame::Want { blob },
            } => self.send_blob(lan, from, blob),
            Event::Received {
                frame:
                    Frame::Chunk {
                        blob,
                        chunk,
                        sealed,
                    },
                ..
            } => {
                let chunk = NearbyChunk {
                    blob,
                    index: chunk,
                    sealed,
                };
                self.nearby_chunk(chunk).await;
            }
            Event::Received { frame, .. } => debug!(?frame, "LAN: ignored a frame"),
            Event::Asked {
                from,
                call,
                question,
            } => self.answer(lan.calls(), from, call, question),
            Event::Disconnected { device, .. } => self.disconnected(device),
            // A device it reached before may have moved to the repository's new key: the
            // storage shows (SPEC §11).
            Event::Refused { addr } => {
                debug!(%addr, "LAN: a device refused the handshake: a look at the storage soon");
                self.poll_soon();
            }
        }
        if let Some((lan, _)) = &self.lan {
            self.nearby.peers = lan.peers().into_iter().map(|p| p.device).collect();
        }
    }

    /// A device connected: it is told how far this one is and remembered; the device holding
    /// this device's repository starts a pass at once.
    async fn connected(&mut self, peer: ferry_lan::Peer) {
        let Some((lan, _)) = &self.lan else {
            return;
        };
        if self.paused.is_none() {
            match self.device.engine.heads() {
                Ok(heads) => lan.send(Some(peer.device), Frame::Heads(heads)),
                Err(error) => warn!(%error, "LAN: heads could not be read"),
            }
        }
        // Devices of the roster only: a command reaching the holder connects for a moment
        // under a passing id, from a port nobody will listen on again.
        if self.device.engine.state().device(&peer.device).is_some() {
            self.remember(peer.listening);
        }
        let holder =
            matches!(&self.device.held, Role::Reaches(line) if line.holder() == peer.device);
        if holder && self.paused.is_none() {
            info!("LAN: the device holding the repository is here: syncing");
            self.offline = false;
            self.fetch().await;
            self.upload_at = Some(tokio::time::Instant::now());
            self.large_at = Some(tokio::time::Instant::now());
        }
    }

    /// A device's connection ended: when it holds this device's repository, it is away.
    fn disconnected(&self, device: DeviceId) {
        if let Role::Reaches(line) = &self.device.held
            && line.holder() == device
        {
            info!("LAN: the device holding the repository went away: recording and queueing");
            line.lost();
        }
    }

    /// Answers a call of another device of the repository from this device's folder, beside
    /// everything else (at most [`ANSWERING`] at once; more are told to ask again).
    fn answer(&self, calls: Calls, from: DeviceId, call: u32, question: Vec<u8>) {
        let Role::Holds(store) = &self.device.held else {
            calls.refuse(from, call, Unanswered::NotHeld);
            return;
        };
        let Ok(permit) = Arc::clone(&self.answering).try_acquire_owned() else {
            calls.refuse(from, call, Unanswered::Busy);
            return;
        };
        let store = Arc::clone(store);
        tokio::spawn(async move {
            let reply = held::answer(&*store, &question).await;
            if let Err(error) = calls
                .answer(from, call, &reply.encode(), held::SILENCE)
                .await
            {
                debug!(%error, device = %from.short(), "LAN: an answer did not go out");
            }
            drop(permit);
        });
    }

    /// Applies a segment `from` a connected device sent, and passes it on to the others; asks
    /// the sender for the images the segment names, or for what is missing before it.
    async fn nearby_segment(&mut self, from: DeviceId, segment: NearbySegment) {
        let (seq, writer) = (segment.seq, segment.device);
        let names = &self.device.keys.names;
        let wrote_it = |device: &DeviceId| names.device_tag(device) == writer;
        let from_writer = wrote_it(&from);
        // The devices it may be new to: connected, neither its sender nor its writer. A
        // device connected to this one alone (one that reaches the repository through it)
        // then has it at once; one that has it already applies nothing and passes nothing on.
        let onward: Vec<DeviceId> = match &self.lan {
            Some((lan, _)) => lan
                .peers()
                .into_iter()
                .map(|peer| peer.device)
                .filter(|device| *device != from && !wrote_it(device))
                .collect(),
            None => Vec::new(),
        };
        let frame = (!onward.is_empty()).then(|| Frame::Segment {
            device: writer,
            seq,
            sealed: segment.sealed.clone(),
        });
        let received = self.device.engine.receive(segment);
        let Some((lan, _)) = &self.lan else {
            return;
        };
        let pass_on = || {
            if let Some(frame) = &frame {
                for device in &onward {
                    lan.send(Some(*device), frame.clone());
                }
            }
        };
        match received {
            Ok(Received::Applied { ops, blobs }) if blobs.is_empty() => {
                debug!(seq, ops, "LAN: applied a segment");
                pass_on();
                self.follow_synced_settings();
                self.apply_newest().await;
            }
            Ok(Received::Applied { ops, blobs }) => {
                // Its images come from the sender too; the newest clip is placed when they
                // are whole. A device it is passed on to asks this one, which sends what it
                // holds whole; storage has the rest.
                debug!(seq, ops, blobs = blobs.len(), "LAN: applied a segment");
                for blob in blobs {
                    lan.send(Some(from), Frame::Want { blob });
                }
                pass_on();
                self.follow_synced_settings();
            }
            Ok(Received::Ahead) => {
                // Something before it went missing (a connection replaced mid-way, or it was
                // passed on by a device that had not the ones before): the writer, told how
                // far this device is, sends them; a device passing it on sends only its own,
                // so storage fills the gap then.
                debug!(
                    seq,
                    "LAN: a segment ahead of a gap; asking for what is missing"
                );
                match self.device.engine.heads() {
                    Ok(heads) => lan.send(Some(from), Frame::Heads(heads)),
                    Err(error) => warn!(%error, "LAN: heads could not be read"),
                }
                let due = self
                    .gap_fetched_at
                    .is_none_or(|at| at.elapsed() >= GAP_FETCH);
                if !from_writer && due {
                    self.gap_fetched_at = Some(tokio::time::Instant::now());
                    self.fetch().await;
                }
            }
            Ok(other) => debug!(seq, ?other, "LAN: a segment was not applied"),
            Err(error) => warn!(%error, "LAN: a segment could not be applied"),
        }
    }

    /// Sends the chunks of `blob`, which the connected device `to` asked for.
    fn send_blob(&self, lan: &Lan, to: DeviceId, blob: BlobId) {
        match self.device.engine.blob_chunks(blob) {
            Ok(chunks) => {
                for chunk in chunks {
                    let (chunk, sealed) = (chunk.index, chunk.sealed);
                    lan.send(
                        Some(to),
                        Frame::Chunk {
                            blob,
                            chunk,
                            sealed,
                        },
                    );
                }
            }
            Err(error) => warn!(%error, "LAN: a blob a peer asked for could not be read"),
        }
    }

    /// Keeps a chunk of an image a connected device sent; places the newest clip once an
    /// image is whole.
    async fn nearby_chunk(&mut self, chunk: NearbyChunk) {
        let blob = chunk.blob;
        match self.device.engine.receive_chunk(chunk) {
            Ok(ChunkReceived::Complete) => {
                debug!(%blob, "LAN: a blob arrived whole");
                self.apply_newest().await;
            }
            Ok(other) => debug!(%blob, ?other, "LAN: a blob chunk"),
            Err(error) => warn!(%error, "LAN: a blob chunk could not be kept"),
        }
    }

    /// Keeps `addr` first among the remembered peer addresses.
    fn remember(&self, addr: SocketAddr) {
        let mut known = remembered(&self.device);
        known.retain(|a| *a != addr);
        known.insert(0, addr);
        known.truncate(REMEMBERED);
        let text: String = known.iter().map(|a| format!("{a}\n")).collect();
        if let Err(error) = std::fs::write(self.device.home.lan_peers_file(), text) {
            debug!(%error, "LAN: a peer's address could not be remembered");
        }
    }
}

fn segment_frame(segment: NearbySegment) -> Frame {
    Frame::Segment {
        device: segment.device,
        seq: segment.seq,
        sealed: segment.sealed,
    }
}

/// The least time between two fetches for a gap in segments passed on by another device.
const GAP_FETCH: Duration = Duration::from_secs(2);

pub(super) async fn recv_lan(lan: &mut Option<(Lan, Events)>) -> Option<Event> {
    match lan {
        Some((_, events)) => events.recv().await,
        None => std::future::pending().await,
    }
}
