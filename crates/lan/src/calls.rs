//! Calls: a device asks a connected device a question and waits for the whole answer (the asks
//! and answers of a repository held by a device, `ferry_protocol::held`).
//!
//! Questions and answers go in parts of at most [`MAX_PART`] bytes, on a queue of each
//! connection that its writer serves only when no other frame waits: a snapshot on its way
//! never holds up a new copy. A part waits for room on that queue (the asker slows down with
//! the connection) instead of filling it. Each end bounds what it joins: the asker the answer
//! it said it takes, the reader of a connection the questions it reassembles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_protocol::DeviceId;
use ferry_protocol::lan::{Frame, MAX_PART, Unanswered};
use tokio::sync::{mpsc, oneshot, watch};

/// How many questions one connection may have half-sent at once.
pub(crate) const MAX_OPEN_QUESTIONS: usize = 8;

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The device is not connected.
    #[error("it is not connected")]
    NotConnected,
    /// Its connection ended before the whole answer came.
    #[error("its connection ended before it answered")]
    Disconnected,
    /// Nothing of the answer came for a while.
    #[error("it went silent for {0:?} without answering")]
    TimedOut(Duration),
    /// The answer went past what the asker takes.
    #[error("its answer was larger than {0} bytes")]
    TooLarge(usize),
    /// The device said it will not answer.
    #[error("{}", unanswered(*.0))]
    Unanswered(Unanswered),
}

fn unanswered(why: Unanswered) -> &'static str {
    match why {
        Unanswered::TooLarge => "it takes no question that large",
        Unanswered::Busy => "it is answering as many calls as it takes",
        Unanswered::NotHeld => "it holds no repository to answer from",
    }
}

/// A call waiting for its answer.
struct Waiting {
    to: DeviceId,
    got: Vec<u8>,
    limit: usize,
    /// Bytes of the answer heard so far: an answer still coming is not given up on (empty
    /// parts do not count: a trickle of them is silence).
    heard: Arc<AtomicU64>,
    done: oneshot::Sender<Result<Vec<u8>, CallError>>,
}

/// What the LAN's handle and its connections share about calls.
pub(crate) struct Table {
    next: AtomicU32,
    waiting: Mutex<HashMap<u32, Waiting>>,
    /// The parts queue of each connected device's connection.
    links: Mutex<HashMap<DeviceId, mpsc::Sender<Frame>>>,
    /// Bumped whenever the connections change.
    changes: watch::Sender<u64>,
}

impl Default for Table {
    fn default() -> Table {
        // A random first call: a device that restarts does not take an answer meant for the
        // calls of its previous run.
        let mut first = [0; 4];
        let _ = getrandom::fill(&mut first);
        Table {
            next: AtomicU32::new(u32::from_le_bytes(first)),
            waiting: Mutex::default(),
            links: Mutex::default(),
            changes: watch::Sender::new(0),
        }
    }
}

impl Table {
    /// The connections now open: calls to a device no longer among them fail.
    pub(crate) fn connected(&self, links: HashMap<DeviceId, mpsc::Sender<Frame>>) {
        let mut waiting = lock(&self.waiting);
        let gone: Vec<u32> = waiting
            .iter()
            .filter(|(_, w)| !links.contains_key(&w.to))
            .map(|(&call, _)| call)
            .collect();
        for call in gone {
            if let Some(w) = waiting.remove(&call) {
                let _ = w.done.send(Err(CallError::Disconnected));
            }
        }
        *lock(&self.links) = links;
        self.changes.send_modify(|n| *n += 1);
    }

    /// A part of the answer to `call`, from `from`.
    pub(crate) fn answer_part(&self, from: DeviceId, call: u32, more: bool, part: &[u8]) {
        let mut waiting = lock(&self.waiting);
        let Some(w) = waiting.get_mut(&call).filter(|w| w.to == from) else {
            // A call given up on, or an answer from a device that was not asked.
            return;
        };
        if w.got.len() + part.len() > w.limit {
            let limit = w.limit;
            if let Some(w) = waiting.remove(&call) {
                let _ = w.done.send(Err(CallError::TooLarge(limit)));
            }
            return;
        }
        w.got.extend_from_slice(part);
        w.heard.fetch_add(part.len() as u64, Ordering::Relaxed);
        if !more && let Some(w) = waiting.remove(&call) {
            let _ = w.done.send(Ok(w.got));
        }
    }

    /// `from` will not answer `call`.
    pub(crate) fn unanswered(&self, from: DeviceId, call: u32, why: Unanswered) {
        let mut waiting = lock(&self.waiting);
        if waiting.get(&call).is_some_and(|w| w.to == from)
            && let Some(w) = waiting.remove(&call)
        {
            let _ = w.done.send(Err(CallError::Unanswered(why)));
        }
    }

    /// The parts queue of `device`'s connection.
    pub(crate) fn link(&self, device: DeviceId) -> Option<mpsc::Sender<Frame>> {
        lock(&self.links).get(&device).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Asks connected devices questions and answers theirs; cheap to clone, and usable while the
/// [`crate::Lan`] it came from runs.
#[derive(Clone)]
pub struct Calls {
    pub(crate) table: Arc<Table>,
}

/// Removes a call from the table when its asker stops waiting, however it stops.
struct Pending<'a> {
    table: &'a Table,
    call: u32,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        lock(&self.table.waiting).remove(&self.call);
    }
}

impl Calls {
    /// Whether `device` is connected now.
    pub fn is_connected(&self, device: DeviceId) -> bool {
        self.table.link(device).is_some()
    }

    /// Waits up to `timeout` for `device` to be connected; whether it is.
    pub async fn wait_for(&self, device: DeviceId, timeout: Duration) -> bool {
        let mut changes = self.table.changes.subscribe();
        let connected = async {
            loop {
                if self.is_connected(device) {
                    return;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, connected).await.is_ok()
    }

    /// Asks `to` `question` and waits for its whole answer, of at most `limit` bytes, as long
    /// as the question goes out and parts of the answer come with no gap of `silence`: a
    /// large answer takes the time it needs, a device that stops answering is given up on
    /// after `silence`.
    pub async fn ask(
        &self,
        to: DeviceId,
        question: &[u8],
        limit: usize,
        silence: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let link = self.table.link(to).ok_or(CallError::NotConnected)?;
        let call = self.table.next.fetch_add(1, Ordering::Relaxed);
        let (done, mut answer) = oneshot::channel();
        let heard = Arc::new(AtomicU64::new(0));
        let waiting = Waiting {
            to,
            got: Vec::new(),
            limit,
            heard: Arc::clone(&heard),
            done,
        };
        lock(&self.table.waiting).insert(call, waiting);
        let _pending = Pending {
            table: &self.table,
            call,
        };
        send_parts(&link, question, silence, |more, part| Frame::Ask {
            call,
            more,
            part,
        })
        .await?;
        let mut parts = 0;
        loop {
            match tokio::time::timeout(silence, &mut answer).await {
                Ok(answered) => return answered.unwrap_or(Err(CallError::Disconnected)),
                Err(_) => {
                    let now = heard.load(Ordering::Relaxed);
                    if now == parts {
                        return Err(CallError::TimedOut(silence));
                    }
                    parts = now;
                }
            }
        }
    }

    /// Sends `to` the answer to its `call`, giving up when the connection takes no part for
    /// `silence`.
    pub async fn answer(
        &self,
        to: DeviceId,
        call: u32,
        answer: &[u8],
        silence: Duration,
    ) -> Result<(), CallError> {
        let link = self.table.link(to).ok_or(CallError::NotConnected)?;
        send_parts(&link, answer, silence, |more, part| Frame::Answer {
            call,
            more,
            part,
        })
        .await
    }

    /// Tells `to` that its `call` will have no answer, if its connection has room now (a
    /// refusal never waits: the asker gives up on its own after its silence).
    pub fn refuse(&self, to: DeviceId, call: u32, why: Unanswered) {
        if let Some(link) = self.table.link(to) {
            let _ = link.try_send(Frame::Unanswered { call, why });
        }
    }
}

/// Sends `whole` in parts (one, empty, for nothing), each made into a frame by `frame`; a part
/// the connection does not take within `silence` ends it.
async fn send_parts(
    link: &mpsc::Sender<Frame>,
    whole: &[u8],
    silence: Duration,
    frame: impl Fn(bool, Vec<u8>) -> Frame,
) -> Result<(), CallError> {
    let count = whole.len().div_ceil(MAX_PART).max(1);
    for (index, part) in whole
        .chunks(MAX_PART)
        .chain(whole.is_empty().then_some(&[][..]))
        .enumerate()
    {
        let more = index + 1 < count;
        match tokio::time::timeout(silence, link.send(frame(more, part.to_vec()))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(CallError::Disconnected),
            Err(_) => return Err(CallError::TimedOut(silence)),
        }
    }
    Ok(())
}

/// The questions a connection's reader is joining from their parts.
#[derive(Default)]
pub(crate) struct Questions {
    open: HashMap<u32, Vec<u8>>,
    /// Calls refused while parts of them were still coming: the rest is dropped.
    refused: std::collections::HashSet<u32>,
}

/// What one part of a question makes.
pub(crate) enum Joined {
    /// More parts to come.
    Partial,
    /// The whole question.
    Whole(Vec<u8>),
    /// Refused: the question is too large, or too many are open.
    Refused(Unanswered),
}

impl Questions {
    /// Adds a part of `call`; a question may be at most `max` bytes.
    /// Refusals are said once per call: the parts after a refused one are dropped quietly.
    pub(crate) fn part(&mut self, call: u32, more: bool, part: Vec<u8>, max: usize) -> Joined {
        if self.refused.contains(&call) {
            if !more {
                self.refused.remove(&call);
            }
            return Joined::Partial;
        }
        let open_bytes: usize = self.open.values().map(Vec::len).sum();
        let why = if max == 0 {
            Some(Unanswered::NotHeld)
        } else if self.open.get(&call).map_or(0, Vec::len) + part.len() > max {
            Some(Unanswered::TooLarge)
        } else if !self.open.contains_key(&call) && self.open.len() >= MAX_OPEN_QUESTIONS
            || open_bytes + part.len() > max
        {
            // At most one largest question's worth is held half-joined per connection.
            Some(Unanswered::Busy)
        } else {
            None
        };
        if let Some(why) = why {
            self.open.remove(&call);
            if more && self.refused.len() < 4 * MAX_OPEN_QUESTIONS {
                self.refused.insert(call);
            }
            return Joined::Refused(why);
        }
        let question = self.open.entry(call).or_default();
        if !more && question.is_empty() {
            self.open.remove(&call);
            return Joined::Whole(part);
        }
        question.extend_from_slice(&part);
        match more {
            true => Joined::Partial,
            false => Joined::Whole(self.open.remove(&call).unwrap_or_default()),
        }
    }
}
