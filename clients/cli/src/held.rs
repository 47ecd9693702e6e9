//! A folder repository held by one device and reached by the others over the LAN
//! (`ferry_protocol::held`, SPEC §10.5).
//!
//! On a device whose store URL is `lan://<holder>`, [`HeldStore`] is its storage: each request
//! is a call to the holder through a [`Line`], the agent's LAN once it runs, or a LAN of the
//! command's own. On the holder, [`answer`] does what a call asks with its own folder store,
//! within the bounds any storage has.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use ferry_lan::{CallError, Calls, Lan, LanConfig, Members, Unanswered};
use ferry_protocol::held::{self, Question, Refusal, Reply};
use ferry_protocol::{DeviceId, Identity, Keys};
use ferry_store::{ListPage, ObjectMeta, Store, StoreError};
use tracing::debug;

use crate::config::Config;
use crate::home::Home;
use crate::output::sanitized;

/// How long either side waits for the next part of a call before giving the other up: long
/// enough for the holder to read the largest object from its disk, short enough that a
/// holder that stops answering holds nothing up for long.
pub(crate) const SILENCE: Duration = Duration::from_secs(10);

/// The longest one call may take however its answer trickles in: the largest object at a
/// slow LAN's pace.
const LONGEST_CALL: Duration = Duration::from_secs(300);

/// How the device holding the repository is named in storage errors.
const BACKEND: &str = "the device holding the repository";

/// What a device has to do with a repository held on the LAN.
#[derive(Clone)]
pub(crate) enum Role {
    /// Its storage is a folder of its own, which it serves to the others.
    Holds(Arc<dyn Store>),
    /// Its storage is another device's folder, reached through this line.
    Reaches(Line),
    /// Neither: its storage is a bucket or a WebDAV server.
    Neither,
}

/// The way to the holder: the LAN calls go through, and how the holder answered lately.
#[derive(Clone)]
pub(crate) struct Line {
    holder: DeviceId,
    state: Arc<Mutex<LineState>>,
}

struct LineState {
    calls: Option<Calls>,
    /// A LAN of this command's own, kept running while the line lives.
    own: Option<Lan>,
    /// Whom that LAN lets in.
    members: Option<Members>,
    /// How long a call waits for the holder to connect (a LAN just started is still finding it).
    patience: Duration,
    /// Since when the holder has not answered, while it does not.
    unreachable_since: Option<SystemTime>,
}

impl Line {
    /// A line to `holder`, with no LAN yet: calls fail as unreachable until one is given.
    pub(crate) fn new(holder: DeviceId) -> Line {
        let state = LineState {
            calls: None,
            own: None,
            members: None,
            patience: Duration::ZERO,
            unreachable_since: None,
        };
        Line {
            holder,
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn state(&self) -> MutexGuard<'_, LineState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device holding the repository.
    pub(crate) fn holder(&self) -> DeviceId {
        self.holder
    }

    /// Calls go through the agent's LAN from now on; the holder counts as away from now
    /// until it answers.
    pub(crate) fn attach(&self, calls: Calls) {
        let mut state = self.state();
        state.calls = Some(calls);
        state.unreachable_since.get_or_insert_with(SystemTime::now);
    }

    /// Waits, as long as the line's patience, for the holder to connect; whether it did.
    pub(crate) async fn wait_for_holder(&self) -> bool {
        let (calls, patience) = {
            let state = self.state();
            (state.calls.clone(), state.patience)
        };
        match calls {
            Some(calls) => calls.wait_for(self.holder, patience).await,
            None => false,
        }
    }

    /// Whether the holder is not connected now: asking it would only fail.
    pub(crate) fn away(&self) -> bool {
        let state = self.state();
        !state
            .calls
            .as_ref()
            .is_some_and(|calls| calls.is_connected(self.holder))
    }

    /// Calls go through a LAN of this command's own, started here as a caller under a passing
    /// device id (the agent's connection, if it runs, stays the one the holder keeps for this
    /// device); the first call waits up to `patience` for the holder to be found.
    pub(crate) async fn start_own(
        &self,
        mut config: LanConfig,
        key: &ferry_protocol::LanKey,
        patience: Duration,
    ) {
        config.device = DeviceId::generate().unwrap_or(config.device);
        config.caller = true;
        config.listen.set_port(0);
        let members = config.members.clone();
        match Lan::start(config, key).await {
            Ok((lan, mut events)) => {
                // Nothing this command does reads what peers send; only calls matter.
                tokio::spawn(async move { while events.recv().await.is_some() {} });
                let mut state = self.state();
                state.calls = Some(lan.calls());
                state.own = Some(lan);
                state.members = Some(members);
                state.patience = patience;
            }
            Err(error) => debug!(%error, "the LAN to reach the holder did not start"),
        }
    }

    /// Lets in on this command's own LAN only the devices `engine`'s roster knows, once it
    /// knows any but this one.
    pub(crate) fn admit(&self, engine: &ferry_sync::Engine) {
        if let Some(members) = &self.state().members {
            crate::device::admit(engine, members);
        }
    }

    /// Whether the holder answers: `Err(since)` while it has not.
    pub(crate) fn reachable(&self) -> Result<(), SystemTime> {
        let state = self.state();
        let connected = state
            .calls
            .as_ref()
            .is_some_and(|calls| calls.is_connected(self.holder));
        match (connected, state.unreachable_since) {
            (true, _) => Ok(()),
            (false, Some(since)) => Err(since),
            (false, None) => Err(SystemTime::now()),
        }
    }

    /// The holder's connection ended: away from now.
    pub(crate) fn lost(&self) {
        self.went(false);
    }

    fn went(&self, answered: bool) {
        let mut state = self.state();
        match answered {
            true => state.unreachable_since = None,
            false => {
                state.unreachable_since.get_or_insert_with(SystemTime::now);
            }
        }
    }
}

/// How long a command waits for the device holding its repository to be found on the LAN.
const HOLDER_PATIENCE: Duration = Duration::from_secs(5);

/// How long a call whose holder went away while answering waits for it to be back (its agent
/// starts again on a new key in well under a second, then dials the devices it knows).
const HOLDER_RETURN: Duration = Duration::from_secs(6);

/// Starts a LAN of this command's own to reach the holder, when `role` says one is needed.
pub(crate) async fn reach(
    role: &Role,
    home: &Home,
    config: &Config,
    keys: &Keys,
    identity: &Arc<Identity>,
) {
    if let Role::Reaches(line) = role {
        let device = ferry_protocol::DeviceId([0; 16]);
        let lan = crate::device::lan_config(home, config, device, identity);
        line.start_own(lan, &keys.lan, HOLDER_PATIENCE).await;
    }
}

/// Who holds a repository held on the LAN and whether it answers (`held by laptop, reached on
/// the LAN (connected)`), or whom this device serves it to while its agent runs.
pub(crate) fn status(
    device: &crate::device::Device,
    nearby: Option<&crate::device::Nearby>,
) -> Option<String> {
    match &device.held {
        Role::Reaches(line) => {
            let holder = device.device_name(&line.holder());
            if nearby.is_some_and(|nearby| !nearby.enabled) {
                return Some(format!(
                    "held by {holder} on the LAN, and the LAN path is off here (lan.enabled = \
                     false): nothing syncs until it is on"
                ));
            }
            let state = match line.reachable() {
                Ok(()) => "connected".to_owned(),
                Err(since) => {
                    let since = chrono::DateTime::<chrono::Local>::from(since);
                    format!("not reachable since {}", since.format("%H:%M"))
                }
            };
            Some(format!("held by {holder}, reached on the LAN ({state})"))
        }
        Role::Holds(_) => {
            let state = device.engine.state();
            if nearby.is_some_and(|nearby| !nearby.enabled) {
                return Some(
                    "serves this repository to no device: the LAN path is off here \
                     (lan.enabled = false), so only devices that reach the folder directly \
                     use it"
                        .to_owned(),
                );
            }
            let peers = nearby?
                .peers
                .iter()
                .filter(|peer| state.device(peer).is_some())
                .count();
            let devices = if peers == 1 { "device" } else { "devices" };
            Some(format!(
                "serving this repository to {peers} {devices} on the LAN"
            ))
        }
        Role::Neither => None,
    }
}

/// The storage of a device whose repository another device holds.
pub(crate) struct HeldStore {
    line: Line,
}

impl std::fmt::Debug for HeldStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeldStore(lan://{})", self.line.holder)
    }
}

impl HeldStore {
    pub(crate) fn new(line: Line) -> HeldStore {
        HeldStore { line }
    }

    /// Asks the holder `question`, taking an answer for a read of at most `limit` bytes.
    async fn ask(&self, question: Question, limit: u64) -> Result<Reply, StoreError> {
        let holder = self.line.holder;
        let (calls, patience) = {
            let state = self.line.state();
            (state.calls.clone(), state.patience)
        };
        let unreachable = |detail: String| StoreError::Transient {
            backend: BACKEND,
            detail,
        };
        let Some(calls) = calls else {
            self.line.went(false);
            return Err(unreachable(format!(
                "device {} is on the LAN only, and the LAN is not running here",
                holder.short()
            )));
        };
        let question = question.encode();
        let mut patience = patience;
        let asked = loop {
            if !calls.wait_for(holder, patience).await {
                self.line.went(false);
                return Err(unreachable(format!(
                    "device {} is not connected on the LAN",
                    holder.short()
                )));
            }
            let asked = tokio::time::timeout(
                LONGEST_CALL,
                calls.ask(holder, &question, held::max_reply(limit), SILENCE),
            )
            .await
            .unwrap_or(Err(CallError::TimedOut(LONGEST_CALL)));
            // The holder's connection ended during the call (its agent starting again, on a
            // new key): asked once more when it is back.
            match asked {
                Err(CallError::Disconnected) if patience < HOLDER_RETURN => {
                    patience = HOLDER_RETURN;
                }
                asked => break asked,
            }
        };
        let bytes = match asked {
            Ok(bytes) => bytes,
            Err(CallError::Unanswered(Unanswered::NotHeld)) => {
                // Unreachable for now, not a broken setting: this device still opens, works
                // offline, and can leave.
                self.line.went(false);
                return Err(unreachable(format!(
                    "device {} does not hold this repository any more (its storage is no longer \
                     a folder, or it left): set this device up on another repository",
                    holder.short()
                )));
            }
            Err(CallError::Unanswered(Unanswered::Busy)) => {
                self.line.went(true);
                return Err(StoreError::Throttled {
                    backend: BACKEND,
                    retry_after: None,
                });
            }
            Err(error) => {
                self.line.went(false);
                return Err(unreachable(format!("device {}: {error}", holder.short())));
            }
        };
        self.line.went(true);
        Reply::decode(&bytes).map_err(|error| unreachable(error.to_string()))
    }
}

/// A reply the question does not take.
fn unexpected(reply: &Reply) -> StoreError {
    let what = match reply {
        Reply::Done => "done",
        Reply::Object(_) => "an object",
        Reply::Page { .. } => "a listing",
        Reply::Refused(_) => "a refusal",
    };
    StoreError::Transient {
        backend: BACKEND,
        detail: format!("it answered {what} to another question"),
    }
}

/// A refusal as the storage error it stands for.
fn refused(refusal: Refusal, name: &str, limit: u64) -> StoreError {
    let name = name.to_owned();
    match refusal {
        Refusal::NotFound => StoreError::NotFound { name },
        Refusal::AlreadyExists => StoreError::AlreadyExists { name },
        Refusal::TooLarge { size } => StoreError::TooLarge { name, size, limit },
        Refusal::NotAnObject => StoreError::NotAnObject {
            name,
            what: "something other than a stored object in the holder's folder",
        },
        Refusal::Denied(detail) => StoreError::Forbidden {
            backend: BACKEND,
            detail: sanitized(&detail, 300),
            hint: "it serves only the objects of a Ferry repository",
        },
        Refusal::Failed(detail) => StoreError::ServerFailed {
            backend: BACKEND,
            detail: sanitized(&detail, 300),
        },
    }
}

#[async_trait]
impl Store for HeldStore {
    async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let name = name.to_owned();
        match self
            .ask(
                Question::PutNew {
                    name: name.clone(),
                    bytes,
                },
                0,
            )
            .await?
        {
            Reply::Done => Ok(()),
            Reply::Refused(refusal) => Err(refused(refusal, &name, 0)),
            other => Err(unexpected(&other)),
        }
    }

    async fn put(&self, name: &str, _bytes: Vec<u8>) -> Result<(), StoreError> {
        Err(refused(
            Refusal::Denied("a held repository offers no replacing write".into()),
            name,
            0,
        ))
    }

    async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        let question = Question::Get {
            name: name.to_owned(),
            limit,
        };
        match self.ask(question, limit).await? {
            Reply::Object(bytes) if bytes.len() as u64 <= limit => Ok(bytes),
            Reply::Object(bytes) => Err(StoreError::TooLarge {
                name: name.to_owned(),
                size: bytes.len() as u64,
                limit,
            }),
            Reply::Refused(refusal) => Err(refused(refusal, name, limit)),
            other => Err(unexpected(&other)),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        let limit = limit.clamp(1, held::MAX_LISTED as usize);
        let question = Question::List {
            prefix: prefix.to_owned(),
            start_after: start_after.map(str::to_owned),
            limit: limit as u32,
        };
        match self.ask(question, 0).await? {
            Reply::Page { objects, next } => {
                // A next page starts after this one's last name, or there is none.
                let continues = match &next {
                    None => true,
                    Some(next) => objects.last().is_some_and(|(last, _)| last == next),
                };
                let listed = continues
                    && objects.len() <= limit
                    && objects.iter().all(|(name, _)| name.starts_with(prefix))
                    && objects.windows(2).all(|w| w[0].0 < w[1].0)
                    && objects.first().is_none_or(|(name, _)| {
                        start_after.is_none_or(|after| name.as_str() > after)
                    });
                if !listed {
                    return Err(StoreError::Transient {
                        backend: BACKEND,
                        detail: "its listing is out of order, too long, off the prefix or \
                                 continues elsewhere"
                            .into(),
                    });
                }
                let objects = objects
                    .into_iter()
                    .map(|(name, size)| ObjectMeta {
                        name,
                        size,
                        etag: None,
                        modified: None,
                    })
                    .collect();
                Ok(ListPage { objects, next })
            }
            Reply::Refused(refusal) => Err(refused(refusal, prefix, 0)),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.delete_many(&[name.to_owned()]).await
    }

    async fn delete_many(&self, names: &[String]) -> Result<(), StoreError> {
        for batch in names.chunks(held::MAX_LISTED as usize) {
            let question = Question::Delete {
                names: batch.to_vec(),
            };
            match self.ask(question, 0).await? {
                Reply::Done => {}
                Reply::Refused(refusal) => {
                    return Err(refused(refusal, batch.first().map_or("", |n| n), 0));
                }
                other => return Err(unexpected(&other)),
            }
        }
        Ok(())
    }
}

/// Whether a held repository serves `name` (or lists under it): the objects of a Ferry
/// repository only, under `ferry/`, with no part that climbs out (the folder store refuses
/// those too).
fn served(name: &str) -> bool {
    name.starts_with("ferry/")
        && !name
            .split('/')
            .any(|part| part == ".." || part == "." || part.contains('\\'))
}

/// The holder's answer to `question`, asked by another device of the repository, from
/// `store` (its own folder).
pub(crate) async fn answer(store: &dyn Store, question: &[u8]) -> Reply {
    let question = match Question::decode(question) {
        Ok(question) => question,
        Err(error) => return Reply::Refused(Refusal::Denied(error.to_string())),
    };
    let outside = |name: &str| {
        Reply::Refused(Refusal::Denied(format!(
            "`{}` is not an object of a Ferry repository",
            name.escape_debug()
        )))
    };
    let result = match question {
        Question::PutNew { name, .. } if !served(&name) => {
            return outside(&name);
        }
        Question::PutNew { name, bytes } => store.put_new(&name, bytes).await.map(|()| Reply::Done),
        Question::Get { name, .. } if !served(&name) => return outside(&name),
        Question::Get { name, limit } => {
            let limit = limit.min(held::max_question() as u64);
            store.get(&name, limit).await.map(Reply::Object)
        }
        Question::List { prefix, .. } if !served(&prefix) => return outside(&prefix),
        Question::List {
            prefix,
            start_after,
            limit,
        } => {
            let limit = limit.clamp(1, held::MAX_LISTED) as usize;
            store
                .list(&prefix, start_after.as_deref(), limit)
                .await
                .map(|page| Reply::Page {
                    objects: page.objects.into_iter().map(|o| (o.name, o.size)).collect(),
                    next: page.next,
                })
        }
        Question::Delete { names } => match names.iter().find(|n| !served(n)) {
            Some(name) => return outside(name),
            None => store.delete_many(&names).await.map(|()| Reply::Done),
        },
    };
    result.unwrap_or_else(|error| Reply::Refused(refusal(error)))
}

/// A storage error of the holder's folder, as the asker hears it.
fn refusal(error: StoreError) -> Refusal {
    match error {
        StoreError::NotFound { .. } => Refusal::NotFound,
        StoreError::AlreadyExists { .. } => Refusal::AlreadyExists,
        StoreError::TooLarge { size, .. } => Refusal::TooLarge { size },
        StoreError::NotAnObject { .. } => Refusal::NotAnObject,
        StoreError::Misconfigured(detail) => Refusal::Denied(detail),
        // Its own words are about its own disk and what to do there.
        StoreError::Unreachable { .. } => Refusal::Failed(
            "the holder's folder is not there now (a drive unmounted, or the folder moved); \
             what this device records waits until it is back"
                .to_owned(),
        ),
        other => Refusal::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
