//! The background agent: one loop that owns the engine and reacts to everything.
//!
//! ```text
//! clipboard watcher ─ copy ─▶ filters ─▶ engine.copy ─▶ sealed ─▶ nearby devices (LAN), at once
//!                                                  └─▶ upload (at once after a quiet spell,
//!                                                      batched within 20 ms) ─▶ relay hints
//! images and files (blob chunks) ─▶ a step at a time between everything else, at the traffic
//!                                   limit: a copy never waits behind them
//! relay hint / folder event / poll tick ─▶ fetch ─┐
//! nearby device's segment ─▶ receive ─────────────┴─▶ newest clip from another device
//!                                                    ─▶ placed on this clipboard
//! agent socket ─▶ ferry copy / paste / history … run here, answered there
//!                 (a clip chosen in `ferry pick` placed on this clipboard)
//! ferry pause ─▶ no copies recorded, no uploads, fetches or nearby exchange until resumed
//! SIGTERM / SIGINT ─▶ last upload (bounded) ─▶ exit
//! ```
//!
//! No echo: a clip this agent placed is not recorded again when the watcher sees it, so two
//! agents never bounce a clip between them.
//!
//! Here: the loop, uploads, fetches, retention and commands; `clipboard` (copies seen, clips
//! placed), `relay` (topics, hints, the connection's state), `lan` (nearby devices), `ipc` (the
//! socket), `watch` (a shared folder's events), `notify` (desktop notifications).

mod clipboard;
pub(crate) mod ipc;
mod lan;
mod notify;
mod relay;
mod socket;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_clipboard::{Clip, Observed, Watcher, Writer};
use ferry_core::{ClipId, DataKind};
use ferry_protocol::TopicId;
use ferry_relay_client::{ClientConfig, Delivery, RelayClient, Status as RelayStatus};
use ferry_store::RetryPolicy;
use ferry_store::url::StoreUrl;
use ferry_sync::{LargeStep, SyncError};
use tokio::sync::{mpsc, watch as state};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use clipboard::start_clipboard;
use lan::recv_lan;
use relay::{recv_relay, relay_changed, relay_news, topics_change};

use crate::cli::DataCommand;
use crate::commands::pause::Pause;
use crate::commands::setup::{self, KeySource, Setup, ShowCode};
use crate::commands::{self, Changed};
use crate::config::Config;
use crate::device::{self, Device};
use crate::error::Failure;
use crate::home::Home;
use crate::output::Output;

/// Copies closer together than this go out in one segment (the first after a quiet spell goes
/// at once).
const UPLOAD_DEBOUNCE: Duration = Duration::from_millis(20);
/// The first wait before retrying a failed upload; it doubles up to the poll interval.
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// How long the last upload may take at shutdown.
const SHUTDOWN_UPLOAD: Duration = Duration::from_secs(10);
/// Storage retries within one step; the loop itself tries again later (uploads back off, fetches
/// come with the next poll or hint), so a step gives up after seconds, not a minute.
const RETRY: RetryPolicy = RetryPolicy {
    first_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(2),
    deadline: Duration::from_secs(10),
    max_attempts: 5,
};
/// How often the retention policy (trash age, history length) is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Seconds of Unix time now, the clock relay topics rotate by.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs the agent until SIGTERM or SIGINT.
pub(crate) async fn run(home: Home, config: Config) -> Result<(), Failure> {
    if ipc::send(&home, &crate::cli::DataCommand::Status, true)
        .await?
        .is_some()
    {
        return Err(Failure::new(format!(
            "an agent is already running for {}; stop it first (`ferry service status`)",
            home.data.display()
        )));
    }
    let config = match config.settings.store.as_deref() {
        Some(_) => config,
        None => first_run(&home, config).await?,
    };
    let lock = device::lock(&home, Duration::from_secs(30))?;
    let device = Device::open(home, config, lock, RETRY).await?;
    Agent::start(device).await?.run().await
}

/// With no configuration: a repository in the embedded default folder, then run.
async fn first_run(home: &Home, config: Config) -> Result<Config, Failure> {
    let folder = home.default_store();
    println!(
        "No Ferry configuration was found: setting this device up on a repository in {}.",
        folder.display()
    );
    let setup = Setup {
        store: StoreUrl::Folder(folder).to_string(),
        relay: config.settings.relay.as_deref().map(str::to_owned),
        name: None,
        key: KeySource::New,
        // Run as a service, standard output goes to the journal, which must not keep the code.
        code: if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            ShowCode::Print
        } else {
            ShowCode::Withhold
        },
        paired: None,
    };
    let done = setup::setup(home.clone(), config, setup).await?;
    print!("{done}");
    println!();
    println!(
        "To use a bucket or WebDAV server instead, stop the agent and run `ferry init --store URL`."
    );
    println!();
    Config::load(None, &home.config, &[])
}

struct Agent {
    device: Device,
    /// The relay topics listened on now (they rotate daily; see `ferry_protocol::relay`).
    topics: Vec<TopicId>,
    /// When they change next.
    topics_change: Instant,
    relay: Option<(RelayClient, mpsc::Receiver<Delivery>)>,
    /// The LAN path and its events, where `lan.enabled`.
    lan: Option<(ferry_lan::Lan, mpsc::Receiver<ferry_lan::Event>)>,
    /// The relay connection's state, to say when the relay confirms the subscriptions.
    relay_state: Option<state::Receiver<RelayStatus>>,
    /// Tasks that live as long as the agent: the socket's accept loop and its connections,
    /// stopped before the agent's last upload.
    tasks: JoinSet<()>,
    clips: Option<mpsc::Receiver<Observed>>,
    folder: Option<mpsc::Receiver<()>>,
    jobs: mpsc::Receiver<ipc::Job>,
    writer: Option<Arc<Mutex<Writer>>>,
    /// Keeps the folder watcher alive.
    _folder_watcher: Option<::notify::RecommendedWatcher>,
    /// Keeps the clipboard watcher's thread reachable.
    _watcher: Option<Watcher>,
    /// The clip this agent placed last: not recorded when the watcher sees it.
    placed: Option<Clip>,
    /// The clip recorded last: a repeated event for it is ignored.
    recorded: Option<Clip>,
    /// The newest remote clip already placed (or seen), kept across restarts.
    applied: Option<ClipId>,
    upload_at: Option<Instant>,
    /// When the next chunk of large content moves (see [`ferry_sync::Engine::large_step`]).
    large_at: Option<Instant>,
    /// When the last upload began: a copy within [`UPLOAD_DEBOUNCE`] of it waits to be batched.
    uploaded_at: Option<Instant>,
    retry: Duration,
    /// Whether the storage was unreachable at the last pass: then each request tries once and
    /// the upload backoff alone decides when the next pass goes, so that a pass never holds
    /// up the clipboard and the LAN for long.
    offline: bool,
    /// When the retention policy ran last.
    retained_at: Option<Instant>,
    /// When this agent last answered a roll call.
    answered_at: Option<Instant>,
    /// Sync paused (`ferry pause`): copies are not recorded; nothing goes out or comes in.
    paused: Option<Pause>,
    /// How far images and files are, as the engine tells it.
    moving: Arc<Mutex<OnTheWay>>,
    notifier: notify::Notifier,
    /// `ferry stop` asked the agent to stop.
    stopping: bool,
}

impl Agent {
    async fn start(mut device: Device) -> Result<Agent, Failure> {
        let lan = lan::start(&mut device).await;
        let (job_tx, jobs) = mpsc::channel(16);
        let mut tasks = JoinSet::new();
        tasks.spawn(ipc::accept(socket::Listener::bind(&device.home)?, job_tx));
        let topics = device.keys.relay.listen_topics(unix_now());
        let relay = match device.config.settings.relay.as_deref() {
            Some(url) => {
                let started = RelayClient::start(ClientConfig::new(url)).map_err(|e| {
                    Failure::new(format!("the relay URL `{url}` does not work: {e}"))
                })?;
                for topic in &topics {
                    started
                        .0
                        .subscribe(*topic)
                        .map_err(|e| Failure::new(e.to_string()))?;
                }
                info!(relay = url, "relay: connecting");
                Some(started)
            }
            None => {
                info!(every = ?device.config.settings.poll_interval, "no relay: polling");
                None
            }
        };
        let (folder, folder_watcher) = match device
            .config
            .settings
            .store
            .as_deref()
            .map(device::parse_store)
        {
            Some(Ok(StoreUrl::Folder(path))) => {
                let tag = device.engine.status()?.tag.to_string();
                match watch::folder(&path, tag) {
                    Ok((watcher, rx)) => (Some(rx), Some(watcher)),
                    Err(error) => {
                        warn!(%error, "the repository folder cannot be watched: polling");
                        (None, None)
                    }
                }
            }
            _ => (None, None),
        };
        let (clips, watcher, writer) =
            if device.config.settings.watch_clipboard || device.config.settings.apply_remote {
                start_clipboard(&device)
            } else {
                (None, None, None)
            };
        // Images and files move between everything else (see `large_step`).
        device.engine.set_large_in_steps(true);
        let moving = Arc::new(Mutex::new(OnTheWay::default()));
        let told = Arc::clone(&moving);
        device
            .engine
            .on_progress(Some(Arc::new(move |progress: &ferry_sync::Progress| {
                told.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .tell(progress);
            })));
        // Opened without the storage: its passes try each request once from the start.
        let offline = device.engine.opened_offline();
        if offline {
            device.engine.set_retry(RetryPolicy::NEVER);
        }
        let paused = Pause::current(&device.home);
        if let Some(paused) = paused {
            info!("sync is {paused}: copies are not recorded, nothing is uploaded or fetched");
        }
        let applied = std::fs::read_to_string(device.home.applied_file())
            .ok()
            .and_then(|text| text.trim().parse::<ferry_core::ClipId>().ok());
        Ok(Agent {
            notifier: notify::Notifier::new(&device),
            moving,
            device,
            topics_change: topics_change(),
            topics,
            relay_state: relay.as_ref().map(|(client, _)| client.watch()),
            relay,
            lan,
            tasks,
            clips,
            folder,
            jobs,
            writer,
            _folder_watcher: folder_watcher,
            _watcher: watcher,
            placed: None,
            recorded: None,
            applied,
            upload_at: Some(Instant::now()),
            large_at: Some(Instant::now()),
            uploaded_at: None,
            retry: RETRY_FIRST,
            offline,
            retained_at: None,
            answered_at: None,
            paused,
            stopping: false,
        })
    }

    async fn run(mut self) -> Result<(), Failure> {
        let stop = stop_requested()?;
        tokio::pin!(stop);
        let mut poll = tokio::time::interval(self.device.config.settings.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(device = %self.device.engine.device(), "agent running");
        if self.paused.is_none() {
            self.roll_call();
        }
        loop {
            let upload_at = self.upload_at.filter(|_| self.paused.is_none());
            let large_at = self.large_at.filter(|_| self.paused.is_none());
            let resume_at = self
                .paused
                .and_then(|paused| paused.left())
                .map(|left| Instant::now() + left);
            tokio::select! {
                () = &mut stop => break,
                Some(observed) = recv(&mut self.clips) => self.observed(observed),
                Some(delivery) = recv_relay(&mut self.relay) => match self.paused {
                    None => self.hint(delivery).await,
                    Some(_) => info!("sync is paused: a relay hint was ignored"),
                },
                Some(status) = relay_changed(&mut self.relay_state) => relay_news(&status),
                Some(event) = recv_lan(&mut self.lan) => self.nearby(event).await,
                Some(()) = recv(&mut self.folder) => {
                    if self.paused.is_none() {
                        self.fetch().await;
                    }
                }
                _ = poll.tick() => {
                    // Also here: a suspended machine's timers run late.
                    self.follow_pause().await;
                    if self.paused.is_none() {
                        self.fetch().await;
                    }
                    self.retention();
                    self.rotate_topics();
                }
                () = tokio::time::sleep_until(self.topics_change) => self.rotate_topics(),
                Some(job) = self.jobs.recv() => {
                    self.job(job).await;
                    if self.stopping {
                        info!("asked to stop (`ferry stop`)");
                        break;
                    }
                }
                () = sleep_until(upload_at), if upload_at.is_some() => self.upload().await,
                () = sleep_until(large_at), if large_at.is_some() => self.large_step().await,
                () = sleep_until(resume_at), if resume_at.is_some() => self.follow_pause().await,
            }
        }
        // No more commands from the socket: what they recorded goes out below.
        self.tasks.shutdown().await;
        if self.paused.is_some() {
            info!("stopping; sync is paused: what is pending goes out after `ferry resume`");
            let _ = std::fs::remove_file(self.device.home.socket());
            return Ok(());
        }
        info!("stopping: uploading what is pending");
        match tokio::time::timeout(SHUTDOWN_UPLOAD, self.device.engine.upload()).await {
            Ok(Ok(report)) => self.publish(&report.hints),
            Ok(Err(error)) => {
                warn!(%error, "the last upload failed; it is retried at the next start")
            }
            Err(_) => warn!("the last upload timed out; it is retried at the next start"),
        }
        let _ = std::fs::remove_file(self.device.home.socket());
        Ok(())
    }

    /// Sends what was recorded to nearby devices now, and schedules its upload: at once after
    /// a quiet spell, with the copies that follow within [`UPLOAD_DEBOUNCE`] of the last upload
    /// batched.
    fn upload_soon(&mut self) {
        if self.paused.is_some() {
            // It goes out on resume.
            return;
        }
        self.share();
        if self.offline && self.upload_at.is_some() {
            return;
        }
        let now = Instant::now();
        let at = match self.uploaded_at {
            Some(last) if now < last + UPLOAD_DEBOUNCE => last + UPLOAD_DEBOUNCE,
            _ => now,
        };
        if self.upload_at.is_none_or(|due| due > at) {
            self.upload_at = Some(at);
        }
    }

    async fn upload(&mut self) {
        self.upload_at = None;
        self.uploaded_at = Some(Instant::now());
        let result = self.device.engine.upload().await;
        // An upload with nothing to send may not have asked the storage anything.
        if result.as_ref().is_ok_and(|report| report.segments > 0) || result.is_err() {
            self.storage_answered(result.as_ref().err());
        }
        match result {
            Ok(report) => {
                debug!(segments = report.segments, "uploaded");
                self.retry = RETRY_FIRST;
                self.publish(&report.hints);
                self.large_soon();
            }
            Err(error) => {
                warn!(%error, retry_in = ?self.retry, "upload failed");
                self.upload_at = Some(Instant::now() + self.retry);
                self.retry = (self.retry * 2)
                    .min(self.device.config.settings.poll_interval.max(RETRY_FIRST));
            }
        }
    }

    async fn fetch(&mut self) {
        let result = self.device.engine.fetch().await;
        self.storage_answered(result.as_ref().err());
        match result {
            Ok(_) => {
                self.apply_newest().await;
                self.large_soon();
            }
            Err(error) => warn!(%error, "fetch failed"),
        }
        if self
            .device
            .engine
            .status()
            .is_ok_and(|s| s.pending_ops > 0 || s.pending_segments > 0)
            && self.upload_at.is_none()
        {
            self.upload_soon();
        }
    }

    /// Moves large content a step now, unless a step is due sooner.
    pub(super) fn large_soon(&mut self) {
        let now = Instant::now();
        if self.large_at.is_none_or(|at| at > now) {
            self.large_at = Some(now);
        }
    }

    /// Moves one chunk of an image or file, when its turn has come, and says when the next
    /// goes. A blob of this device's whole in storage is announced again, so that devices
    /// that looked for it too early look again.
    async fn large_step(&mut self) {
        self.large_at = None;
        match self.device.engine.large_step().await {
            Ok(LargeStep::Idle) => {}
            Ok(LargeStep::Wait(at)) => self.large_at = Some(at),
            Ok(LargeStep::Moved) => self.large_soon(),
            Ok(LargeStep::Uploaded(blob)) => {
                debug!(%blob, "a blob is whole in storage");
                if let Ok(Some(newest)) = self.device.engine.roll_call_answer() {
                    self.publish(&[newest]);
                }
                self.large_soon();
            }
            Ok(LargeStep::Arrived(blob)) => {
                debug!(%blob, "a blob arrived");
                self.apply_newest().await;
                self.large_soon();
            }
            Err(error) => {
                warn!(%error, retry_in = ?self.retry, "an image or file could not be moved");
                self.storage_answered(Some(&error));
                self.large_at = Some(Instant::now() + self.retry);
            }
        }
    }

    /// Follows whether the storage answers: while it does not, each request tries once (the
    /// passes themselves are retried, uploads with backoff, fetches at each poll or hint).
    fn storage_answered(&mut self, error: Option<&SyncError>) {
        self.notifier.pass(error);
        if error.is_none() {
            self.notifier.news(&self.device);
        }
        let offline = error.is_some_and(SyncError::is_transient);
        if offline == self.offline {
            return;
        }
        self.offline = offline;
        if offline {
            warn!(
                "the storage is unreachable: clips are kept here and go to nearby devices; \
                 what is pending is uploaded once it answers"
            );
            self.device.engine.set_retry(RetryPolicy::NEVER);
        } else {
            info!("the storage answers again");
            self.device.engine.set_retry(RETRY);
        }
    }

    /// Purges what the retention policy says is due, as ordinary purge operations that every
    /// device agrees on.
    fn retention(&mut self) {
        if self
            .retained_at
            .is_some_and(|at| at.elapsed() < RETENTION_EVERY)
        {
            return;
        }
        self.retained_at = Some(Instant::now());
        let policy = self.device.config.settings.retention;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let due = self
            .device
            .engine
            .state_for(DataKind::Clips)
            .due_for_purge(&policy, now);
        if due.is_empty() {
            return;
        }
        for clip in &due {
            if let Err(error) = self
                .device
                .engine
                .record(DataKind::Clips, |r, _, now| r.purge(*clip, now))
            {
                warn!(%error, "retention: a purge could not be recorded");
                return;
            }
        }
        info!(clips = due.len(), "retention: purged clips past the policy");
        self.upload_soon();
    }

    async fn job(&mut self, job: ipc::Job) {
        let mut out = Output::new(job.json);
        // A clip `ferry pick` chose goes on this clipboard first; copied again only once there.
        let placed = match &job.command {
            DataCommand::Place { id } => self.place_chosen(id).await,
            _ => Ok(()),
        };
        // Images and files moving for the command say how far they are, to the command.
        self.moving.lock().unwrap_or_else(|p| p.into_inner()).job = Some(job.progress.clone());
        let result = match (placed, job.command) {
            (Err(failure), _) => Err(failure),
            (Ok(()), DataCommand::Stop) => {
                out.note("the agent stops once it has sent what is pending");
                self.stopping = true;
                Ok(Changed::No)
            }
            (Ok(()), DataCommand::Uploading) => self.uploading(&mut out),
            (Ok(()), command) => commands::execute(&mut self.device, command, &mut out).await,
        };
        self.moving.lock().unwrap_or_else(|p| p.into_inner()).job = None;
        if let Ok(Changed::Yes) = result {
            if self.paused.is_none() {
                self.share();
            }
            self.upload_at = Some(Instant::now());
        }
        let _ = job
            .reply
            .send(ipc::Reply::new(result.map(drop), out.stdout, out.stderr));
        if self.stopping {
            let _ = tokio::time::timeout(Duration::from_secs(2), job.delivered).await;
        }
        // `ferry pause` and `ferry resume` come this way.
        self.follow_pause().await;
    }

    /// How far this device's images and files going out are (`ferry copy` follows it).
    fn uploading(&mut self, out: &mut Output) -> Result<Changed, Failure> {
        let moving = self.moving.lock().unwrap_or_else(|p| p.into_inner()).up;
        out.report(&crate::progress::Uploading {
            pending: self.device.engine.blobs_pending()?,
            moving,
        });
        Ok(Changed::No)
    }

    /// Follows the pause file: a pause that began stops the traffic; one that ended (resumed,
    /// or its time ran out) brings what was held back: news fetched, nearby devices told how
    /// far this one is, and what is pending sent.
    async fn follow_pause(&mut self) {
        let now = Pause::current(&self.device.home);
        let was = std::mem::replace(&mut self.paused, now);
        match (was, now) {
            (None, Some(paused)) => {
                info!("sync is {paused}: copies are not recorded, nothing is uploaded or fetched")
            }
            (Some(_), None) => {
                info!("sync resumed");
                self.fetch().await;
                self.greet_nearby();
                self.upload_soon();
            }
            _ => {}
        }
    }
}

/// What the engine says of images and files on their way.
#[derive(Default)]
struct OnTheWay {
    /// The last of this device's going out.
    up: Option<crate::progress::Moving>,
    /// The command being run, told of what moves for it.
    job: Option<mpsc::UnboundedSender<ferry_sync::Progress>>,
}

impl OnTheWay {
    fn tell(&mut self, progress: &ferry_sync::Progress) {
        if progress.direction == ferry_sync::transfer::Direction::Up {
            self.up = Some(crate::progress::Moving {
                blob: progress.blob,
                done: progress.done,
                total: progress.total,
            });
        }
        if let Some(job) = &self.job {
            let _ = job.send(*progress);
        }
    }
}

/// The watcher's copies, the watcher, and the writer: each absent where the clipboard is.
type ClipboardParts = (
    Option<mpsc::Receiver<Observed>>,
    Option<Watcher>,
    Option<Arc<Mutex<Writer>>>,
);

async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Ctrl-C, or a service manager's stop: SIGTERM on Unix; Ctrl-Break, the console closing, and
/// (where Windows tells a program, as it tells services) logoff and shutdown on Windows.
fn stop_requested() -> Result<impl Future<Output = ()>, Failure> {
    let cannot = |e: std::io::Error| Failure::new(format!("could not listen for a stop: {e}"));
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(cannot)?;
    #[cfg(unix)]
    let stopped = async move {
        terminate.recv().await;
    };
    #[cfg(windows)]
    let (mut brk, mut close, mut logoff, mut shutdown) = {
        use tokio::signal::windows::{ctrl_break, ctrl_close, ctrl_logoff, ctrl_shutdown};
        (
            ctrl_break().map_err(cannot)?,
            ctrl_close().map_err(cannot)?,
            ctrl_logoff().map_err(cannot)?,
            ctrl_shutdown().map_err(cannot)?,
        )
    };
    #[cfg(windows)]
    let stopped = async move {
        tokio::select! {
            _ = brk.recv() => {}
            _ = close.recv() => {}
            _ = logoff.recv() => {}
            _ = shutdown.recv() => {}
        }
    };
    Ok(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = stopped => {}
        }
    })
}
