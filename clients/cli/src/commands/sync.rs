//! `ferry sync`, `ferry status`, `ferry log`: moving data, and what moved.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_core::DataKind;
use ferry_protocol::{DeviceId, DeviceTag};
use ferry_sync::{DryRun, FetchReport, Heard, Planned, Retry, Transfer, UploadReport};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, timeout_at};

use crate::cli::LogArgs;
use crate::commands::devices;
use crate::device::{Device, InAgent};
use crate::error::Failure;
use crate::output::{Lines, Output, age, counted, size, until};
use crate::pause::Pause;
use crate::relay::Hints;

/// What a sync moved.
#[derive(Serialize)]
struct Synced {
    uploaded: Moved,
    fetched: Moved,
}

#[derive(Serialize)]
struct Moved {
    segments: u64,
    ops: u64,
    bytes: u64,
    /// Damaged objects set aside (fetches only).
    #[serde(skip_serializing_if = "Option::is_none")]
    quarantined: Option<u64>,
}

impl fmt::Display for Synced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "uploaded {} ({}), fetched {} ({})",
            counted(self.uploaded.segments, "segment"),
            counted(self.uploaded.ops, "change"),
            counted(self.fetched.segments, "segment"),
            counted(self.fetched.ops, "change")
        )?;
        match self.fetched.quarantined {
            Some(n) if n > 0 => {
                writeln!(f, "{n} damaged objects were set aside: see `ferry status`")
            }
            _ => Ok(()),
        }
    }
}

/// What a sync would move.
#[derive(Serialize)]
struct Plan {
    upload: Vec<Object>,
    download: Vec<Object>,
}

#[derive(Serialize)]
struct Object {
    name: String,
    ops: u64,
    bytes: u64,
}

impl From<Planned> for Object {
    fn from(planned: Planned) -> Object {
        Object {
            name: planned.name,
            ops: planned.ops,
            bytes: planned.bytes,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.upload {
            writeln!(f, "upload\t{}\t{} ops\t{}", o.name, o.ops, size(o.bytes))?;
        }
        for o in &self.download {
            writeln!(f, "download\t{}\t{}", o.name, size(o.bytes))?;
        }
        if self.upload.is_empty() && self.download.is_empty() {
            writeln!(f, "nothing to sync")?;
        }
        Ok(())
    }
}

/// `ferry sync [--dry-run | --retry-quarantined]`. Devices whose data could not be read are
/// named in the failure, after the others were fetched.
pub(crate) async fn sync(
    device: &mut Device,
    dry_run: bool,
    retry_quarantined: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    if dry_run {
        let DryRun { upload, download } = device.engine.dry_run().await?;
        out.report(&Plan {
            upload: upload.into_iter().map(Object::from).collect(),
            download: download.into_iter().map(Object::from).collect(),
        });
        return Ok(());
    }
    if let Some(paused) = Pause::current(&device.home) {
        return Err(Failure::new(format!(
            "sync is {paused} on this device: `ferry resume` first (`ferry sync --dry-run` \
             shows what would move)"
        )));
    }
    if retry_quarantined {
        let due = device.engine.retry_quarantined()?;
        out.note(format!("trying {due} quarantined objects again"));
    }
    let (mut up, mut down): (UploadReport, FetchReport) = device.engine.sync().await?;
    // A new key the fetch found: followed, and what this device holds goes there.
    if let Some(moved) = crate::generation::follow(device).await? {
        out.note(moved.to_string());
        let (there_up, there_down) = device.engine.sync().await?;
        device.announce(&there_up.hints).await;
        (up.segments, up.ops, up.bytes) = (
            up.segments + there_up.segments,
            up.ops + there_up.ops,
            up.bytes + there_up.bytes,
        );
        down.segments += there_down.segments;
        down.ops += there_down.ops;
        down.bytes += there_down.bytes;
        down.quarantined += there_down.quarantined;
        down.failed = there_down.failed;
    }
    out.report(&Synced {
        uploaded: Moved {
            segments: up.segments,
            ops: up.ops,
            bytes: up.bytes,
            quarantined: None,
        },
        fetched: Moved {
            segments: down.segments,
            ops: down.ops,
            bytes: down.bytes,
            quarantined: Some(down.quarantined),
        },
    });
    if down.failed.is_empty() {
        return Ok(());
    }
    let failed: Vec<String> = down
        .failed
        .iter()
        .map(|f| {
            let name = peer_name(device, f.device.as_ref(), Some(&f.tag));
            format!("could not fetch from {name}: {}", f.error)
        })
        .collect();
    Err(Failure::new(format!(
        "{}\nthe other devices were fetched; the next sync tries again",
        failed.join("\n")
    )))
}

/// How a device is named to the person: its name once known, else the start of its tag.
fn peer_name(device: &Device, id: Option<&DeviceId>, tag: Option<&DeviceTag>) -> String {
    match (id, tag) {
        (Some(id), _) => device.device_name(id),
        (None, Some(tag)) => format!("device {}", tag.short()),
        (None, None) => "an unknown device".to_owned(),
    }
}

/// Where this device stands.
#[derive(Serialize)]
struct Status {
    device: String,
    device_name: String,
    tag: String,
    /// Whether the agent runs (the status came from it).
    agent: Agent,
    store: String,
    /// Whether the storage answered the last upload or fetch, and since when.
    storage: Option<Storage>,
    relay: String,
    /// How the agent's relay connection stands, while the agent runs and a relay is set.
    relay_state: Option<RelayState>,
    /// Whether sync is paused (`ferry pause`), and until when.
    paused: Option<Pause>,
    /// The LAN path, while the agent runs it.
    lan: Option<Lan>,
    /// A repository held on the LAN: by whom and whether it answers, or whom this device
    /// serves it to.
    held: Option<String>,
    /// The repository's key after the first: its generation, who made it, who has not moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<crate::generation::Standing>,
    clips: usize,
    pending_ops: u64,
    pending_segments: u64,
    last_seq: u64,
    last_upload_ms: Option<u64>,
    last_fetch_ms: Option<u64>,
    peers: Vec<Peer>,
    /// Devices that joined with the sync key alone, not added by a device already there.
    unpaired: Vec<String>,
    /// This device's name, when its own membership does not hold (the others flag it).
    unpaired_here: Option<String>,
    /// Devices that announced more over the relay than the storage gave this device.
    behind: Vec<Behind>,
    quarantined: Vec<Quarantined>,
    /// Recent problems, oldest first; each resolved once its cause is gone.
    problems: Vec<Problem>,
}

/// The agent, as `ferry status` sees it.
#[derive(Serialize)]
struct Agent {
    running: bool,
    pid: Option<u32>,
}

/// Whether the storage answers.
#[derive(Serialize)]
struct Storage {
    answering: bool,
    since_ms: u64,
    error: Option<String>,
}

/// How the agent's relay connection stands.
#[derive(Serialize)]
struct RelayState {
    /// `connected`, `connecting`, `waiting` (for the next attempt) or `stopped`.
    state: &'static str,
    /// Since when it is connected, or not (attempts to connect do not move it).
    since_ms: u64,
    /// The last failure, while not connected.
    error: Option<String>,
    /// When it tries again, while waiting.
    retry_at_ms: Option<u64>,
}

/// A problem, with its time and, once its cause is gone, when it was resolved.
#[derive(Serialize)]
struct Problem {
    at_ms: u64,
    message: String,
    resolved_ms: Option<u64>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resolved_ms {
            None => write!(f, "error     {} ago: {}", age(self.at_ms), self.message),
            Some(resolved) => write!(
                f,
                "resolved  {} ago: {} (fine again for {})",
                age(self.at_ms),
                self.message,
                age(resolved)
            ),
        }
    }
}

/// A device that announced more over the relay than the storage gave this one.
#[derive(Serialize)]
pub(crate) struct Behind {
    device: String,
    announced: u64,
    applied: u64,
    announced_ms: u64,
}

impl fmt::Display for Behind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} announced segment {} over the relay {} ago, but the storage has given this \
             device segment {}: it may be serving an older state; the rest arrives when the \
             storage has it",
            self.device,
            self.announced,
            age(self.announced_ms),
            self.applied
        )
    }
}

/// The agent's LAN path (read back by `ferry doctor` from the agent's status).
#[derive(Serialize, Deserialize)]
pub(crate) struct Lan {
    enabled: bool,
    listening: Option<String>,
    discovering: bool,
    error: Option<String>,
    /// The names of the devices connected now.
    pub(crate) peers: Vec<String>,
    /// How many `lan.peers` are set.
    fixed_peers: usize,
}

impl Lan {
    /// Whether it listens.
    pub(crate) fn running(&self) -> bool {
        self.listening.is_some()
    }
}

impl fmt::Display for Lan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = self
            .listening
            .as_deref()
            .map(|addr| format!(" (listening on {addr})"))
            .unwrap_or_default();
        match (&self.listening, self.peers.as_slice()) {
            _ if !self.enabled => write!(f, "off (lan.enabled = false)")?,
            (None, _) => write!(f, "off: {}", self.error.as_deref().unwrap_or("not started"))?,
            (Some(_), []) if self.discovering => write!(
                f,
                "no peers found{on}: multicast may be blocked on this network; see lan.peers"
            )?,
            (Some(_), []) => write!(
                f,
                "no peers connected{on}: discovery is off and {} lan.peers are set",
                self.fixed_peers
            )?,
            (Some(addr), peers) => write!(
                f,
                "{} peer{} connected ({}), listening on {addr}",
                peers.len(),
                if peers.len() == 1 { "" } else { "s" },
                peers.join(", ")
            )?,
        }
        if let (Some(_), Some(error)) = (&self.listening, &self.error) {
            write!(f, "; discovery is off: {error}")?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Peer {
    device: String,
    name: String,
    /// The name of the device that paired it, when one did.
    paired_by: Option<String>,
    seq: u64,
    ops: u64,
}

#[derive(Serialize)]
struct Quarantined {
    name: String,
    device: String,
    reason: String,
    since_ms: u64,
    attempts: u32,
    /// When it is tried again; absent when it waits for an upgrade of Ferry.
    retry_at_ms: Option<u64>,
    /// Operations that need a newer Ferry (0: the object is damaged or forged).
    newer_ops: u64,
    /// It opened, but was not written by the device it names.
    forged: bool,
}

impl fmt::Display for Quarantined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_at_ms {
            None => write!(
                f,
                "upgrade   upgrade Ferry to read {} operations from {} ({})",
                self.newer_ops, self.device, self.name
            ),
            Some(at) => write!(
                f,
                "{}   {} from {}: {} (since {} ago, {} tries; next try in {}, or now with \
                 `ferry sync --retry-quarantined`)",
                if self.forged { "forged " } else { "damaged" },
                self.name,
                self.device,
                self.reason,
                age(self.since_ms),
                self.attempts,
                until(at)
            ),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "device    {} ({})", self.device_name, self.device)?;
        match self.agent.pid {
            Some(pid) if self.agent.running => writeln!(f, "agent     running (pid {pid})")?,
            _ => writeln!(
                f,
                "agent     not running: copies are not recorded and nothing syncs in the \
                 background; start it with `ferry agent` (or `ferry service install`)"
            )?,
        }
        write!(f, "store     {}", self.store)?;
        let last = [
            ("upload", self.last_upload_ms),
            ("fetch", self.last_fetch_ms),
        ]
        .map(|(what, at)| match at {
            Some(at) => format!("last {what} {} ago", age(at)),
            None => format!("no {what} yet"),
        })
        .join(", ");
        // The agent has watched the storage for a while; a command has just asked it once.
        let since = |storage: &Storage| match self.agent.running {
            true => format!(" for {}", age(storage.since_ms)),
            false => " just now".to_owned(),
        };
        match &self.storage {
            None => writeln!(f, "; {last}")?,
            Some(storage) if storage.answering => {
                writeln!(f, ": answering{}; {last}", since(storage))?
            }
            Some(storage) => {
                writeln!(
                    f,
                    ": failing{}: {}",
                    since(storage),
                    storage.error.as_deref().unwrap_or("no answer")
                )?;
                writeln!(f, "          what is recorded waits on this device; {last}")?;
            }
        }
        match (self.relay.as_str(), &self.relay_state) {
            ("", _) => writeln!(f, "relay     none (polling)")?,
            (relay, _) if !self.agent.running => writeln!(
                f,
                "relay     {relay} (the agent listens to it while it runs)"
            )?,
            (relay, None) => writeln!(
                f,
                "relay     {relay}: not used by the agent (its log and `ferry doctor` say why); \
                 polling instead"
            )?,
            (relay, Some(state)) => {
                let since = age(state.since_ms);
                match state.state {
                    "connected" => writeln!(f, "relay     {relay}: connected for {since}")?,
                    "connecting" => match &state.error {
                        None => writeln!(f, "relay     {relay}: connecting for {since}")?,
                        Some(error) => writeln!(
                            f,
                            "relay     {relay}: not connected for {since} ({error}), trying \
                             again now; polling meanwhile"
                        )?,
                    },
                    _ => writeln!(
                        f,
                        "relay     {relay}: not connected for {since} ({}){}; polling meanwhile",
                        state.error.as_deref().unwrap_or("stopped"),
                        state
                            .retry_at_ms
                            .map(|at| format!(", next try in {}", until(at)))
                            .unwrap_or_default()
                    )?,
                }
            }
        }
        if let Some(paused) = &self.paused {
            writeln!(f, "sync      {paused}")?;
        }
        if let Some(lan) = &self.lan {
            writeln!(f, "lan       {lan}")?;
        }
        if let Some(held) = &self.held {
            writeln!(f, "storage   {held}")?;
        }
        if let Some(key) = &self.key {
            writeln!(f, "key       {key}")?;
        }
        writeln!(f, "clips     {}", self.clips)?;
        writeln!(
            f,
            "pending   {}, {}",
            counted(self.pending_ops, "change"),
            counted(self.pending_segments, "segment")
        )?;
        for p in &self.peers {
            let paired = p
                .paired_by
                .as_ref()
                .map(|by| format!(" (added by {by})"))
                .unwrap_or_default();
            writeln!(
                f,
                "peer      {}{paired}: segment {}, {}",
                p.name,
                p.seq,
                counted(p.ops, "change")
            )?;
        }
        if let Some(name) = &self.unpaired_here {
            writeln!(
                f,
                "unpaired  this device was not added by a known device: the others flag it \
                 until one of them vouches for it (`ferry devices vouch {}` there)",
                crate::output::shell_word(name)
            )?;
        }
        for name in &self.unpaired {
            writeln!(
                f,
                "unpaired  {name} was not added by a known device: if nobody here added it, a \
                 copy of the key is loose; if it is yours, `ferry devices vouch {}` on a device \
                 already added says so",
                crate::output::shell_word(name)
            )?;
        }
        for behind in &self.behind {
            writeln!(f, "behind    {behind}")?;
        }
        for q in &self.quarantined {
            writeln!(f, "{q}")?;
        }
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

fn time_ms(time: Option<SystemTime>) -> Option<u64> {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

/// `ferry status`; `agent` says what the agent knows when it runs the command.
pub(crate) fn status(
    device: &Device,
    agent: Option<&InAgent>,
    out: &mut Output,
) -> Result<(), Failure> {
    let status = device.engine.status()?;
    let roster = devices::roster(device)?;
    let settings = &device.config.settings;
    let nearby = agent.map(|agent| &agent.nearby);
    out.report(&Status {
        device: status.device.to_string(),
        device_name: device.device_name(&status.device),
        tag: status.tag.to_string(),
        agent: Agent {
            running: agent.is_some(),
            pid: agent.map(|_| std::process::id()),
        },
        store: settings.store.clone().unwrap_or_default(),
        storage: status.storage.map(|storage| Storage {
            answering: storage.answering,
            since_ms: time_ms(Some(storage.since)).unwrap_or(0),
            error: storage.error,
        }),
        relay: settings.relay.clone().unwrap_or_default(),
        relay_state: agent
            .and_then(|agent| agent.relay.as_ref())
            .map(relay_state),
        paused: Pause::current(&device.home),
        lan: nearby.map(|nearby| Lan {
            enabled: nearby.enabled,
            listening: nearby.listening.map(|addr| addr.to_string()),
            discovering: nearby.discovering,
            error: nearby.error.clone(),
            peers: nearby.peers.iter().map(|d| device.device_name(d)).collect(),
            fixed_peers: settings.lan_peers.len(),
        }),
        held: crate::held::status(device, nearby),
        key: crate::generation::standing(device)?,
        clips: device.engine.state_for(DataKind::Clips).stats().clips,
        pending_ops: status.pending_ops,
        pending_segments: status.pending_segments,
        last_seq: status.last_seq,
        last_upload_ms: time_ms(status.last_upload),
        last_fetch_ms: time_ms(status.last_fetch),
        peers: status
            .peers
            .iter()
            .map(|p| Peer {
                device: p.device.to_string(),
                name: device.device_name(&p.device),
                paired_by: roster.paired_by(&p.device).map(str::to_owned),
                seq: p.seq,
                ops: p.ops,
            })
            .collect(),
        unpaired: roster.unpaired().map(str::to_owned).collect(),
        unpaired_here: roster.this_device_unpaired().map(str::to_owned),
        behind: behind(device)?,
        quarantined: status
            .quarantined
            .into_iter()
            .map(|q| Quarantined {
                forged: q.is_forged(),
                device: peer_name(device, q.device.as_ref(), q.tag.as_ref()),
                since_ms: time_ms(Some(q.since)).unwrap_or(0),
                attempts: q.attempts,
                retry_at_ms: match q.retry {
                    Retry::At(at) => time_ms(Some(at)),
                    Retry::AfterUpgrade { .. } => None,
                },
                newer_ops: match q.retry {
                    Retry::At(_) => 0,
                    Retry::AfterUpgrade { ops } => ops,
                },
                reason: q.reason,
                name: q.name,
            })
            .collect(),
        problems: status
            .problems
            .into_iter()
            .map(|p| Problem {
                at_ms: time_ms(Some(p.at)).unwrap_or(0),
                message: p.message,
                resolved_ms: time_ms(p.resolved),
            })
            .collect(),
    });
    Ok(())
}

/// The relay connection's state as `ferry status` says it.
fn relay_state(status: &ferry_relay_client::Status) -> RelayState {
    use ferry_relay_client::State;
    let attempt_ms = time_ms(Some(status.since)).unwrap_or(0);
    let (state, retry_at_ms) = match status.state {
        State::Connected => ("connected", None),
        State::Connecting => ("connecting", None),
        State::Waiting { retry_in } => ("waiting", Some(attempt_ms + retry_in.as_millis() as u64)),
        State::Stopped => ("stopped", None),
    };
    RelayState {
        state,
        // Since the connection came up or was lost: the attempts in between do not move it.
        since_ms: time_ms(Some(status.changed)).unwrap_or(0),
        error: match state {
            "connected" => None,
            _ => status.last_error.clone(),
        },
        retry_at_ms,
    }
}

/// The devices that announced more over the relay than the storage gave this one.
pub(crate) fn behind(device: &Device) -> Result<Vec<Behind>, Failure> {
    Ok(device
        .engine
        .behind()?
        .iter()
        .map(|b| shown(device, b))
        .collect())
}

/// `behind` as status shows it.
fn shown(device: &Device, behind: &ferry_sync::Behind) -> Behind {
    Behind {
        device: peer_name(device, behind.device.as_ref(), Some(&behind.tag)),
        announced: behind.announced,
        applied: behind.applied,
        announced_ms: time_ms(Some(behind.at)).unwrap_or(0),
    }
}

/// How long a roll call waits for the answers of the devices that are up.
const ROLL_CALL_WAIT: Duration = Duration::from_millis(1500);

/// A roll call over the relay: the other devices' agents answer with their newest segment, so
/// that a device can tell when the storage gives it less (an older state) than they wrote.
pub(crate) struct RollCall {
    hints: Hints,
    asked: Instant,
}

impl RollCall {
    /// Asks, where a relay is set and takes the question; `None` otherwise.
    pub(crate) async fn ask(device: &Device) -> Option<RollCall> {
        let url = device.config.settings.relay.as_deref()?;
        let hints = Hints::listen(url, &device.keys, &device.identity).ok()?;
        if !hints.announce(&[device.engine.roll_call()]) {
            return None;
        }
        if !hints.flush(Duration::from_secs(2)).await {
            tracing::info!("the relay did not answer: no roll call");
            return None;
        }
        Some(RollCall {
            hints,
            asked: Instant::now(),
        })
    }

    /// Takes the answers, until every other device in the roster answered or
    /// [`ROLL_CALL_WAIT`] passed, fetching what each announces; then says which devices the
    /// storage gave less of than they announced, and which announced far more than it shows
    /// (said once, and not kept: see `ferry_sync::FAR_CLAIM`).
    pub(crate) async fn hear(mut self, device: &mut Device) -> Result<Vec<String>, Failure> {
        let own = device.engine.device();
        let others = device
            .engine
            .state()
            .devices()
            .filter(|(id, _)| **id != own)
            .count();
        let deadline = self.asked + ROLL_CALL_WAIT;
        let mut heard = HashSet::new();
        while heard.len() < others {
            let Ok(Some(message)) = timeout_at(deadline, self.hints.next()).await else {
                break;
            };
            let crate::relay::Heard::Hint(claimed) = message else {
                continue;
            };
            let hint = match device.engine.heard(&claimed) {
                Heard::Member(hint) => hint,
                Heard::Forged(forger) => {
                    self.hints.forged(&device.device_name(&forger));
                    continue;
                }
                Heard::Own | Heard::Stranger(_) => continue,
            };
            if hint.is_roll_call() || !heard.insert(hint.device) {
                continue;
            }
            if let Err(error) = device.engine.fetch_hint(hint).await {
                tracing::warn!(%error, "fetching what a roll call answer announced failed");
            }
        }
        let mut said: Vec<String> = (behind(device)?.iter()).map(ToString::to_string).collect();
        for far in device.engine.far_claims() {
            let far = shown(device, &far);
            said.push(format!(
                "{} announced segment {} over the relay, far beyond segment {} that the storage \
                 shows: the storage lost most of its log, or someone holding its own key made \
                 the claim",
                far.device, far.announced, far.applied
            ));
        }
        Ok(said)
    }
}

/// The transfer log, newest first.
#[derive(Serialize)]
#[serde(transparent)]
struct Log(Vec<Line>);

/// A line of the transfer log, with the name of the device it concerns.
#[derive(Serialize)]
struct Line {
    #[serde(flatten)]
    transfer: Transfer,
    device_name: Option<String>,
}

/// `age  direction  kind  device  size  outcome  object  detail`, tab-separated; `-` where
/// there is no device, size, object or detail, so that every line has the eight columns.
impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.transfer;
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            age(t.at_ms),
            t.direction,
            t.kind,
            self.device_name.as_deref().unwrap_or("-"),
            match t.bytes {
                0 => "-".to_owned(),
                bytes => size(bytes),
            },
            t.outcome,
            t.name.as_deref().unwrap_or("-"),
            // A server's words may hold tabs or line breaks: the line keeps its columns.
            t.detail
                .as_deref()
                .map_or("-".into(), |d| d.replace(['\t', '\n', '\r'], " ")),
        )
    }
}

impl fmt::Display for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Lines(&self.0).fmt(f)
    }
}

/// How many lines of the transfer log `ferry log` searches.
const LOG_WINDOW: usize = 100_000;

/// `ferry log`.
pub(crate) fn log(device: &Device, args: LogArgs, out: &mut Output) -> Result<(), Failure> {
    let names = transfer_names(device)?;
    let wanted = args
        .device
        .as_deref()
        .map(|which| wanted_tag(device, &names, which))
        .transpose()?;
    let matches = |t: &Transfer| {
        let device_matches = wanted
            .as_deref()
            .is_none_or(|wanted| t.device.as_deref() == Some(wanted));
        device_matches && args.kind.is_none_or(|kind| t.kind == kind)
    };
    // `--search` looks in the line as it is shown, whichever column holds the text.
    let shown =
        |line: &Line| (args.search.as_deref()).is_none_or(|query| line.to_string().contains(query));
    let lines = device
        .engine
        .transfers(LOG_WINDOW)?
        .into_iter()
        .filter(matches)
        .map(|transfer| Line {
            device_name: transfer.device.as_ref().map(|tag| match names.get(tag) {
                Some(name) => name.clone(),
                None => format!("device {}", tag.chars().take(8).collect::<String>()),
            }),
            transfer,
        })
        .filter(shown)
        .take(args.limit)
        .collect();
    out.report(&Log(lines));
    Ok(())
}

/// The names of the devices in the roster, by the tag that names their objects (as the
/// transfer log records them).
fn transfer_names(device: &Device) -> Result<HashMap<String, String>, Failure> {
    Ok(devices::roster(device)?
        .ids()
        .map(|(id, name)| (device.engine.tag_of(id).to_string(), name.to_owned()))
        .collect())
}

/// The tag of the device that `ferry log --device` names: by its name or id as `ferry
/// devices` shows them, or by the start of its tag in object names.
fn wanted_tag(
    device: &Device,
    names: &HashMap<String, String>,
    which: &str,
) -> Result<String, Failure> {
    let named = devices::find(device, which);
    if let Ok(id) = named {
        return Ok(device.engine.tag_of(&id).to_string());
    }
    // By the start of its tag: a device in the roster, or one known only by its objects (as
    // the log names it, `device 1a2b3c4d`).
    let prefix = which.trim_start_matches("device ").to_lowercase();
    let mut tags: Vec<String> = names
        .keys()
        .cloned()
        .chain(
            device
                .engine
                .transfers(LOG_WINDOW)?
                .into_iter()
                .filter_map(|t| t.device),
        )
        .filter(|tag| !prefix.is_empty() && tag.starts_with(&prefix))
        .collect();
    tags.sort();
    tags.dedup();
    match tags.as_slice() {
        [tag] => Ok(tag.clone()),
        [] => named.map(|id| device.engine.tag_of(&id).to_string()),
        _ => Err(Failure::usage(format!(
            "\"{which}\" could be several devices: give more of its id (`ferry devices` lists \
             them)"
        ))),
    }
}
