//! The page as a device of the repository: it reads the other devices' logs from the bucket as
//! every device does (`ferry_read` plans the reads and checks each object against the roster)
//! into its state, and answers the page's questions (the history, newest first).
//!
//! ```text
//! sync(): GET repo (once: the key opens it) ─▶ LIST head/ ─▶ per device behind its head:
//!   [never seen] LIST snap/<tag>/ ─▶ leading snapshots, checked together ─▶ merged
//!   plan::fetch ─▶ GET log/<tag>/<seq> ─▶ Checker::open_segment ─▶ applied, or set aside
//! ```
//!
//! An object that does not open or check is set aside with its reason (the page shows it) and
//! its device's stream waits for it; the other devices go on. The state lives in memory while
//! the page is open; `export` gives it to the page to keep.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use ferry_core::{Action, ClipContent, DeviceId, Replica, State};
use ferry_protocol::names::{HEAD_PREFIX, ROOT, SNAP_PREFIX};
use ferry_protocol::{DeviceTag, Keys, ObjectName, RepoHeader};
use ferry_read::plan::{self, Peer, Read};
use ferry_read::{Checker, Position, Refusal};
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::pairing::Paired;
use crate::storage::{Storage, StorageError};

/// The most plans made for one device in one pass (each read that finds something missing or
/// set aside plans again).
const MAX_PLANS: usize = 16;

/// An object set aside, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SetAside {
    /// Its device's newest head when it was set aside: it is tried again once the head moves.
    head: u64,
    reason: String,
}

/// What the page knows of the repository.
struct Known {
    replica: Replica,
    /// Where this device stands with each other device's log.
    cursors: BTreeMap<DeviceTag, Position>,
    /// Objects set aside, by store path.
    held: BTreeMap<String, SetAside>,
    /// Whether the repository's header was read and opens with the key.
    checked: bool,
}

/// This browser as a device of its repository.
#[wasm_bindgen]
pub struct Device {
    storage: Rc<Storage>,
    keys: Rc<Keys>,
    tag: DeviceTag,
    known: Rc<RefCell<Known>>,
}

/// What one pass read.
#[derive(Debug, Default)]
struct Report {
    snapshots: u64,
    segments: u64,
    ops: u64,
    set_aside: u64,
}

#[wasm_bindgen]
impl Device {
    /// The device `paired` is, with nothing read yet.
    #[wasm_bindgen(constructor)]
    pub fn new(paired: &Paired) -> Result<Device, JsError> {
        let storage = Storage::open(&paired.store(), paired.credentials())
            .map_err(|e| JsError::new(&e.to_string()))?;
        let keys = paired.sync_key().keys();
        let device = paired.device_id();
        Ok(Device {
            storage: Rc::new(storage),
            tag: keys.names.device_tag(&device),
            keys: Rc::new(keys),
            known: Rc::new(RefCell::new(Known {
                replica: Replica::with_state(device, State::new()),
                cursors: BTreeMap::new(),
                held: BTreeMap::new(),
                checked: false,
            })),
        })
    }

    /// The bucket's endpoint (scheme, host and port), for messages.
    #[wasm_bindgen(js_name = storageOrigin)]
    pub fn storage_origin(&self) -> String {
        self.storage.origin().to_owned()
    }

    /// Reads what the other devices wrote since the last pass. Resolves to what it read
    /// (`{snapshots, segments, ops, setAside}`); rejects with what to do when the storage
    /// cannot be read or the key does not open the repository.
    pub fn sync(&self) -> js_sys::Promise {
        let pass = Pass {
            storage: self.storage.clone(),
            keys: self.keys.clone(),
            tag: self.tag,
            known: self.known.clone(),
        };
        wasm_bindgen_futures::future_to_promise(async move {
            let report = pass
                .run()
                .await
                .map_err(|e| JsValue::from(JsError::new(&e)))?;
            let out = Object::new();
            for (field, value) in [
                ("snapshots", report.snapshots),
                ("segments", report.segments),
                ("ops", report.ops),
                ("setAside", report.set_aside),
            ] {
                set(&out, field, JsValue::from_f64(value as f64));
            }
            Ok(out.into())
        })
    }

    /// The history, newest first, at most `limit` clips; with a non-empty `query`, the clips
    /// that match it (as `ferry pick` finds them), best first. Each clip is
    /// `{id, kind, text, size, device, at, pinned}` (`text` empty for images and files; `at` in
    /// ms since the epoch).
    pub fn history(&self, query: &str, limit: usize) -> Array {
        let known = self.known.borrow();
        let state = known.replica.state();
        let clips = match query.trim().is_empty() {
            true => state.history(None, limit),
            false => state.find(query, limit),
        };
        clips
            .into_iter()
            .filter(|clip| clip.trashed_at.is_none())
            .map(|clip| {
                let out = Object::new();
                set(&out, "id", JsValue::from_str(&clip.id.to_string()));
                set(&out, "kind", JsValue::from_str(kind(clip.content)));
                set(
                    &out,
                    "text",
                    JsValue::from_str(clip.content.text().unwrap_or_default()),
                );
                set(&out, "size", JsValue::from_f64(clip.content.size() as f64));
                set(
                    &out,
                    "device",
                    JsValue::from_str(&who(state, &clip.source())),
                );
                set(
                    &out,
                    "at",
                    JsValue::from_f64(clip.last_used.wall_ms() as f64),
                );
                set(&out, "pinned", JsValue::from_bool(clip.pinned));
                JsValue::from(out)
            })
            .collect()
    }

    /// The relay topics where the repository's devices announce what they write, now (hex; one
    /// or two: near the day's boundary, both days').
    #[wasm_bindgen(js_name = listenTopics)]
    pub fn listen_topics(&self) -> Vec<String> {
        self.keys
            .relay
            .listen_topics(now_ms() / 1000)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Whether `data`, received on relay topic `topic` (hex), is news from another device of
    /// this repository that calls for a pass: it opens with the repository's key and names a
    /// segment past what this device has read of its writer. Anything else (noise, a replay, a
    /// roll call) is not.
    pub fn news(&self, topic: &str, data: &[u8]) -> bool {
        let Ok(topic) = topic.parse() else {
            return false;
        };
        let Ok(claimed) = self.keys.relay.open_hint(&topic, data) else {
            return false;
        };
        let hint = claimed.value;
        let known = self.known.borrow();
        let read = known.cursors.get(&hint.device).map_or(0, |at| at.seq);
        !hint.is_roll_call() && hint.device != self.tag && hint.seq > read
    }

    /// The objects set aside, each `{name, reason}`.
    #[wasm_bindgen(js_name = setAside)]
    pub fn set_aside(&self) -> Array {
        self.known
            .borrow()
            .held
            .iter()
            .map(|(name, held)| {
                let out = Object::new();
                set(&out, "name", JsValue::from_str(name));
                set(&out, "reason", JsValue::from_str(&held.reason));
                JsValue::from(out)
            })
            .collect()
    }
}

/// How a clip's content is named on the page.
fn kind(content: &ClipContent) -> &'static str {
    match content {
        ClipContent::Text(_) | ClipContent::RichText(_) => "text",
        ClipContent::Image(_) => "image",
        ClipContent::File(_) => "file",
    }
}

/// How the roster names `device`: its registered name, else its short id.
fn who(state: &State, device: &DeviceId) -> String {
    match state.device(device) {
        Some(entry) if !entry.name.is_empty() => entry.name.clone(),
        _ => format!("device {}", device.short()),
    }
}

fn set(object: &Object, field: &str, value: JsValue) {
    // Setting a field of a plain object does not fail.
    let _ = Reflect::set(object, &JsValue::from_str(field), &value);
}

/// The milliseconds since the epoch of the page's clock.
fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// One pass of reading, holding what it needs across its requests (never a borrow of the
/// state: the page may ask for the history meanwhile).
struct Pass {
    storage: Rc<Storage>,
    keys: Rc<Keys>,
    tag: DeviceTag,
    known: Rc<RefCell<Known>>,
}

/// An object's store path.
fn path(name: &ObjectName) -> String {
    format!("{ROOT}{name}")
}

impl Pass {
    async fn run(&self) -> Result<Report, String> {
        let failed = |e: StorageError| e.to_string();
        let mut report = Report::default();
        if !self.known.borrow().checked {
            self.check_key().await?;
        }
        let heads = self.heads().await.map_err(failed)?;
        // Tried again once their device's head moved on.
        self.known.borrow_mut().held.retain(|name, held| {
            let device = name
                .strip_prefix(ROOT)
                .and_then(|name| name.parse::<ObjectName>().ok())
                .and_then(|name| match name {
                    ObjectName::Log { device, .. } | ObjectName::Snap { device, .. } => {
                        Some(device)
                    }
                    _ => None,
                });
            device.is_none_or(|tag| heads.get(&tag).is_none_or(|&head| head <= held.head))
        });
        let mut peers = Vec::new();
        for (&tag, &head) in &heads {
            let applied = self.cursor(tag).seq;
            if tag == self.tag || head <= applied {
                continue;
            }
            let mut peer = Peer::new(tag, head, applied);
            if applied == 0 {
                peer.snapshots = self.listed_seqs(tag, true).await.map_err(failed)?;
            }
            peers.push(peer);
        }
        self.start_from_snapshots(&peers, &mut report)
            .await
            .map_err(failed)?;
        for mut peer in peers {
            peer.applied = self.cursor(peer.tag).seq;
            self.catch_up(peer, &mut report).await.map_err(failed)?;
        }
        Ok(report)
    }

    /// Reads the repository's header, and checks that the key opens it.
    async fn check_key(&self) -> Result<(), String> {
        let limit = ObjectName::Repo.kind().max_sealed() as u64;
        let bytes = match self.storage.get(&path(&ObjectName::Repo), limit).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound) => {
                return Err(
                    "the bucket holds no repository where this browser was paired to \
                            find it: it may have moved (`ferry store move`); choose \"Forget \
                            this browser\" and pair it again"
                        .into(),
                );
            }
            Err(error) => return Err(error.to_string()),
        };
        let header = RepoHeader::from_bytes(&bytes).map_err(|e| {
            format!("the repository's header cannot be read ({e}): the bucket may be damaged")
        })?;
        header.verify(&self.keys).map_err(|_| {
            "the repository has a new key since this browser was paired (a device was removed, \
             or the key rotated): choose \"Forget this browser\" and pair it again from a \
             device that has the new key"
                .to_owned()
        })?;
        self.known.borrow_mut().checked = true;
        Ok(())
    }

    fn cursor(&self, tag: DeviceTag) -> Position {
        self.known
            .borrow()
            .cursors
            .get(&tag)
            .copied()
            .unwrap_or_default()
    }

    /// The store paths of the objects set aside.
    fn held(&self) -> BTreeSet<String> {
        self.known.borrow().held.keys().cloned().collect()
    }

    fn hold(&self, name: &ObjectName, head: u64, refusal: &Refusal, report: &mut Report) {
        let reason = refusal.reason();
        report.set_aside += 1;
        self.known
            .borrow_mut()
            .held
            .insert(path(name), SetAside { head, reason });
    }

    /// The newest head of every device, from the names alone.
    async fn heads(&self) -> Result<BTreeMap<DeviceTag, u64>, StorageError> {
        let mut heads = BTreeMap::new();
        for listed in self.storage.list(&format!("{ROOT}{HEAD_PREFIX}")).await? {
            let name = listed.path.strip_prefix(ROOT).and_then(|n| n.parse().ok());
            if let Some(ObjectName::Head { device, seq }) = name {
                let newest = heads.entry(device).or_insert(seq);
                *newest = (*newest).max(seq);
            }
        }
        Ok(heads)
    }

    /// The seqs of the snapshots (`snapshots`) or segments stored for the device of `tag`.
    async fn listed_seqs(
        &self,
        tag: DeviceTag,
        snapshots: bool,
    ) -> Result<BTreeSet<u64>, StorageError> {
        let prefix = match snapshots {
            true => format!("{ROOT}{SNAP_PREFIX}{tag}/"),
            false => format!("{ROOT}{}", ObjectName::log_prefix(&tag)),
        };
        Ok(self
            .storage
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(
                |listed| match listed.path.strip_prefix(ROOT)?.parse().ok()? {
                    ObjectName::Snap { device, seq } if snapshots && device == tag => Some(seq),
                    ObjectName::Log { device, seq } if !snapshots && device == tag => Some(seq),
                    _ => None,
                },
            )
            .collect())
    }

    /// Reads the snapshot each never-seen device's plan starts with, checks them together, and
    /// merges those that agree on the roster.
    async fn start_from_snapshots(
        &self,
        peers: &[Peer],
        report: &mut Report,
    ) -> Result<(), StorageError> {
        let held = self.held();
        let mut loaded = Vec::new();
        for peer in peers {
            let Some(seq) = plan::fetch(peer, &held, ROOT).leading_snapshot() else {
                continue;
            };
            let name = ObjectName::Snap {
                device: peer.tag,
                seq,
            };
            let bytes = match self
                .storage
                .get(&path(&name), name.kind().max_sealed() as u64)
                .await
            {
                Ok(bytes) => bytes,
                // Compacted away since it was listed: the segments are read instead.
                Err(StorageError::NotFound) => continue,
                Err(StorageError::TooLarge { limit }) => {
                    let refusal =
                        Refusal::Damaged(format!("larger than a snapshot may be ({limit} bytes)"));
                    self.hold(&name, peer.head, &refusal, report);
                    continue;
                }
                Err(error) => return Err(error),
            };
            let opened = {
                let known = self.known.borrow();
                self.checker(&known)
                    .open_snapshot(&name, peer.tag, seq, &bytes)
            };
            match opened {
                Ok((snapshot, state, advanced)) => {
                    loaded.push((peer.tag, peer.head, snapshot.device, state, advanced));
                }
                Err(refusal) => self.hold(&name, peer.head, &refusal, report),
            }
        }
        let writers: Vec<(DeviceId, &State)> = loaded
            .iter()
            .map(|(_, _, device, state, _)| (*device, state))
            .collect();
        let contradicted: BTreeMap<usize, (DeviceId, String)> =
            ferry_read::check::contradicted(&writers)
                .into_iter()
                .map(|(i, device, keys)| (i, (device, keys.fingerprint())))
                .collect();
        for (i, (tag, head, device, mut state, advanced)) in loaded.into_iter().enumerate() {
            let name = ObjectName::Snap {
                device: tag,
                seq: advanced.seq,
            };
            if let Some((other, fingerprint)) = contradicted.get(&i) {
                let who = who(self.known.borrow().replica.state(), other);
                let refusal = Refusal::Forged(format!(
                    "it gives {who} another key ({fingerprint}) than that device's own snapshot \
                     registers"
                ));
                self.hold(&name, head, &refusal, report);
                continue;
            }
            state.keep_writers_word(device);
            let mut known = self.known.borrow_mut();
            known.replica.merge(state);
            known.cursors.insert(tag, advanced);
            report.snapshots += 1;
        }
        Ok(())
    }

    fn checker<'a>(&'a self, known: &'a Known) -> Checker<'a> {
        Checker {
            keys: &self.keys,
            state: known.replica.state(),
            known_actions: Action::KINDS,
            now_ms: now_ms(),
        }
    }

    /// Brings the device of `peer` up to its head, as far as its segments allow.
    async fn catch_up(&self, mut peer: Peer, report: &mut Report) -> Result<(), StorageError> {
        let tag = peer.tag;
        'plans: for _ in 0..MAX_PLANS {
            let planned = plan::fetch(&peer, &self.held(), ROOT);
            for read in planned.reads {
                let Read::Segment(seq) = read else {
                    // A snapshot further on, past a gap: the next pass starts from it.
                    break 'plans;
                };
                let name = ObjectName::Log { device: tag, seq };
                let bytes = match self
                    .storage
                    .get(&path(&name), name.kind().max_sealed() as u64)
                    .await
                {
                    Ok(bytes) => bytes,
                    Err(StorageError::NotFound) => {
                        peer.missing.insert(seq);
                        if peer.stored.is_none() {
                            peer.stored = Some(self.listed_seqs(tag, false).await?);
                        }
                        continue 'plans;
                    }
                    Err(StorageError::TooLarge { limit }) => {
                        let refusal = Refusal::Damaged(format!(
                            "larger than a segment may be ({limit} bytes)"
                        ));
                        self.hold(&name, peer.head, &refusal, report);
                        continue 'plans;
                    }
                    Err(error) => return Err(error),
                };
                let cursor = self.cursor(tag);
                let opened = {
                    let known = self.known.borrow();
                    self.checker(&known)
                        .open_segment(&name, &tag, cursor, &bytes)
                };
                match opened {
                    Ok(Some((segment, ops))) => {
                        let last_op =
                            (segment.first_op + segment.ops.len() as u64).saturating_sub(1);
                        let mut known = self.known.borrow_mut();
                        report.ops += ops.len() as u64;
                        for op in ops {
                            // In order and without gaps (checked): only a duplicate is refused.
                            let _ = known.replica.apply(op);
                        }
                        known.cursors.insert(
                            tag,
                            Position {
                                seq,
                                ops: cursor.ops.max(last_op),
                            },
                        );
                        report.segments += 1;
                        peer.applied = seq;
                    }
                    // Operations before it are not here yet: the next pass looks again.
                    Ok(None) => break 'plans,
                    Err(refusal) => {
                        self.hold(&name, peer.head, &refusal, report);
                        if peer.stored.is_none() {
                            peer.stored = Some(self.listed_seqs(tag, false).await?);
                        }
                        continue 'plans;
                    }
                }
            }
            // Read to the head, or stopped short (`planned.stop`): the next pass goes on.
            break;
        }
        Ok(())
    }
}
