//! The page as a device of the repository: it reads the other devices' logs from the bucket
//! (one pass at a time: `pass`) into its state, makes its own operations (a clip sent, a pin)
//! and writes them to its own log (`send`), and answers the page's questions (the history,
//! newest first; whether a relay message is news). The state lives in memory while the page is
//! open; [`Device::export`] gives it to the page to keep (sealed, in IndexedDB), and
//! [`Device::restore`] takes it back when the page opens again, so the history shows at once,
//! offline too, and a pass reads only what is new.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use ferry_core::{Action, ClipContent, ClipId, Op, Replica, State};
use ferry_protocol::{DeviceTag, Identity, Keys};
use ferry_read::Position;
use js_sys::{Array, Object, Reflect};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::pairing::Paired;
use crate::pass::{Known, Pass, SetAside, now_ms};
use crate::send::{self, Send};
use crate::storage::Storage;

/// The most bytes of text sent from the page as one clip.
const MAX_TEXT: usize = 1024 * 1024;

/// This browser as a device of its repository.
#[wasm_bindgen]
pub struct Device {
    storage: Rc<Storage>,
    keys: Rc<Keys>,
    tag: DeviceTag,
    known: Rc<RefCell<Known>>,
    /// Whether a pass or a send is running (one at a time: two would each apply or write what
    /// the other did).
    busy: Rc<Cell<bool>>,
    identity: Rc<Identity>,
    /// The name this device registers with.
    name: String,
}

/// The first byte of what [`Device::export`] writes: how the rest is laid out.
const FORMAT: u8 = 2;

/// What the page keeps of what it read, as [`Device::export`] writes it.
#[derive(Serialize, Deserialize)]
struct Kept {
    /// The key it was read with: a state read with another key is not this repository's now.
    key_id: String,
    /// The state, canonically encoded.
    state: Vec<u8>,
    /// Where this device stands with each other device's log.
    cursors: Vec<(DeviceTag, u64, u64)>,
    /// Objects set aside: store path, head, reason.
    held: Vec<(String, u64, String)>,
    /// This device's operations not yet stored, encoded.
    pending: Vec<Vec<u8>>,
    /// This device's last segment written.
    last_seq: u64,
    /// This device's heads below this seq are deleted.
    heads_pruned_to: u64,
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
                announced: BTreeMap::new(),
                checked: false,
                pending: Vec::new(),
                last_seq: 0,
                heads_pruned_to: 0,
                own_current: false,
            })),
            busy: Rc::new(Cell::new(false)),
            identity: Rc::new(paired.identity()),
            name: paired.name(),
        })
    }

    /// What this device read, as bytes for the page to keep: its state, where it stands with
    /// each other device, and what it set aside.
    pub fn export(&self) -> Vec<u8> {
        let known = self.known.borrow();
        let kept = Kept {
            key_id: self.keys.id.to_string(),
            state: known.replica.state().encode(),
            cursors: known
                .cursors
                .iter()
                .map(|(tag, at)| (*tag, at.seq, at.ops))
                .collect(),
            held: known
                .held
                .iter()
                .map(|(name, held)| (name.clone(), held.head, held.reason.clone()))
                .collect(),
            pending: known.pending.iter().map(Op::encode).collect(),
            last_seq: known.last_seq,
            heads_pruned_to: known.heads_pruned_to,
        };
        let mut bytes = vec![FORMAT];
        // Serialising plain data into a vector does not fail.
        bytes.extend(postcard::to_allocvec(&kept).unwrap_or_default());
        bytes
    }

    /// Takes back what [`export`](Self::export) wrote. What cannot be read, or was read with
    /// another key, is left out (`false`): the next pass reads everything again.
    pub fn restore(&self, bytes: &[u8]) -> bool {
        if self.busy.get() {
            return false;
        }
        let Some((&FORMAT, body)) = bytes.split_first() else {
            return false;
        };
        let Ok((kept, [])) = postcard::take_from_bytes::<Kept>(body) else {
            return false;
        };
        if kept.key_id != self.keys.id.to_string() {
            return false;
        }
        let Ok(state) = State::decode(&kept.state) else {
            return false;
        };
        let pending: Result<Vec<Op>, _> = kept
            .pending
            .iter()
            .map(|op| Op::decode_known(op, Action::KINDS))
            .collect();
        let Ok(pending) = pending else {
            return false;
        };
        let mut known = self.known.borrow_mut();
        let device = known.replica.device();
        known.replica = Replica::with_state(device, state);
        known.cursors = kept
            .cursors
            .into_iter()
            .map(|(tag, seq, ops)| (tag, Position { seq, ops }))
            .collect();
        known.held = kept
            .held
            .into_iter()
            .map(|(name, head, reason)| (name, SetAside { head, reason }))
            .collect();
        known.pending = pending;
        known.last_seq = kept.last_seq;
        known.heads_pruned_to = kept.heads_pruned_to;
        true
    }

    /// Records `text` as a clip copied on this device, to go out with the next
    /// [`send`](Self::send) (this device's registration first, the first time). Refused while
    /// this device has not read back what it wrote before (its counters must follow on).
    #[wasm_bindgen(js_name = copyText)]
    pub fn copy_text(&self, text: &str) -> Result<(), JsError> {
        if text.trim().is_empty() {
            return Err(JsError::new("there is nothing to send"));
        }
        if text.len() > MAX_TEXT {
            return Err(JsError::new(&format!(
                "the text is larger than the page sends as one clip ({} MiB)",
                MAX_TEXT / (1024 * 1024)
            )));
        }
        let content = ClipContent::Text(text.to_owned());
        let names = &self.keys.names;
        self.record(|replica, now| replica.copy(names, content, now))
    }

    /// Pins or unpins the clip `id` (hex), to go out with the next [`send`](Self::send).
    #[wasm_bindgen(js_name = setPinned)]
    pub fn set_pinned(&self, id: &str, pinned: bool) -> Result<(), JsError> {
        let clip: ClipId = id
            .parse()
            .map_err(|_| JsError::new("that is not a clip of this history"))?;
        if self.known.borrow().replica.state().clip(&clip).is_none() {
            return Err(JsError::new("that is not a clip of this history"));
        }
        self.record(|replica, now| replica.set_pinned(clip, pinned, now))
    }

    /// How many of this device's operations wait to be sent.
    pub fn pending(&self) -> usize {
        self.known.borrow().pending.len()
    }

    /// Writes this device's pending operations to its log. Resolves to what it wrote,
    /// `{segments, ops, hints}`, `hints` the relay messages that announce it (`[topic, bytes]`,
    /// for the page to publish); rejects with what to do when the storage refused, or when a
    /// pass or a send is running already.
    pub fn send(&self) -> js_sys::Promise {
        let send = Send {
            storage: self.storage.clone(),
            keys: self.keys.clone(),
            identity: self.identity.clone(),
            tag: self.tag,
            known: self.known.clone(),
        };
        let busy = self.busy.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let sent = one_at_a_time(&busy, send.run()).await?;
            let out = Object::new();
            set(&out, "segments", JsValue::from_f64(sent.segments as f64));
            set(&out, "ops", JsValue::from_f64(sent.ops as f64));
            let hints: Array = sent
                .hints
                .iter()
                .map(|(topic, bytes)| {
                    let pair = Array::new();
                    pair.push(&JsValue::from_str(topic));
                    pair.push(&js_sys::Uint8Array::from(bytes.as_slice()));
                    JsValue::from(pair)
                })
                .collect();
            set(&out, "hints", hints.into());
            Ok(out.into())
        })
    }

    /// The bucket's endpoint (scheme, host and port), for messages.
    #[wasm_bindgen(js_name = storageOrigin)]
    pub fn storage_origin(&self) -> String {
        self.storage.origin().to_owned()
    }

    /// Reads what the other devices wrote since the last pass. Resolves to what it read
    /// (`{snapshots, segments, ops, setAside, problems}`, `problems` a line for each device that
    /// could not be read this time); rejects with what to do when the storage cannot be read
    /// or the key does not open the repository, or when a pass is running already.
    pub fn sync(&self) -> js_sys::Promise {
        let pass = Pass {
            storage: self.storage.clone(),
            keys: self.keys.clone(),
            tag: self.tag,
            known: self.known.clone(),
        };
        let busy = self.busy.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let report = one_at_a_time(&busy, pass.run()).await?;
            let out = Object::new();
            for (field, value) in [
                ("snapshots", report.snapshots),
                ("segments", report.segments),
                ("ops", report.ops),
                ("setAside", report.set_aside),
            ] {
                set(&out, field, JsValue::from_f64(value as f64));
            }
            let problems: Array = report.problems.iter().map(JsValue::from).collect();
            set(&out, "problems", problems.into());
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
                    JsValue::from_str(&ferry_read::check::who(state, &clip.source())),
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
    /// roll call, an announcement already taken) is not.
    pub fn news(&self, topic: &str, data: &[u8]) -> bool {
        let Ok(topic) = topic.parse() else {
            return false;
        };
        let Ok(claimed) = self.keys.relay.open_hint(&topic, data) else {
            return false;
        };
        let hint = claimed.value;
        let mut known = self.known.borrow_mut();
        let read = known.cursors.get(&hint.device).map_or(0, |at| at.seq);
        let announced = known.announced.get(&hint.device).copied().unwrap_or(0);
        if hint.is_roll_call() || hint.device == self.tag || hint.seq <= read.max(announced) {
            return false;
        }
        known.announced.insert(hint.device, hint.seq);
        true
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

impl Device {
    /// Makes an operation with `make` (and this device's registration before it, the first
    /// time), applied here and kept until sent.
    fn record(&self, make: impl FnOnce(&mut Replica, u64) -> Op) -> Result<(), JsError> {
        let mut known = self.known.borrow_mut();
        if !known.own_current {
            return Err(JsError::new(
                "this browser has not yet read back what it sent before (the status line says \
                 why, when it cannot): it sends once it has",
            ));
        }
        let now = now_ms();
        if !send::registered(&known) {
            let op = known
                .replica
                .register(self.name.clone(), self.identity.public(), now);
            known.pending.push(op);
        }
        let op = make(&mut known.replica, now);
        known.pending.push(op);
        Ok(())
    }
}

/// Runs `work` unless a pass or a send is running already (`busy`); its failure as what the
/// page shows.
async fn one_at_a_time<T>(
    busy: &Cell<bool>,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, JsValue> {
    if busy.replace(true) {
        return Err(JsError::new("a pass is running already").into());
    }
    let ran = work.await;
    busy.set(false);
    ran.map_err(|e| JsError::new(&e).into())
}

/// How a clip's content is named on the page.
fn kind(content: &ClipContent) -> &'static str {
    match content {
        ClipContent::Text(_) | ClipContent::RichText(_) => "text",
        ClipContent::Image(_) => "image",
        ClipContent::File(_) => "file",
    }
}

fn set(object: &Object, field: &str, value: JsValue) {
    // Setting a field of a plain object does not fail.
    let _ = Reflect::set(object, &JsValue::from_str(field), &value);
}
