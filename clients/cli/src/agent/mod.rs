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
//! Here: the loop and the commands; `transfer` (uploads, fetches, large content, retention),
//! `clipboard` (copies seen, clips placed), `relay` (hints heard and answered, the connection's state), `lan` (nearby
//! devices), `serve` (the socket's end), `watch` (a shared folder's events), `notify` (desktop
//! notifications). The agent stands on the layer the commands share (device, relay hints,
//! socket wire, clipboard conversion) and never on the commands: those it runs come as an
//! [`Execute`].

mod clipboard;
mod lan;
mod notify;
mod relay;
mod serve;
mod settings;
mod transfer;
mod watch;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_clipboard::{Clip, Observed, Watcher, Writer};
use ferry_core::ClipId;
use ferry_relay_client::Status as RelayStatus;
use ferry_store::RetryPolicy;
use tokio::sync::{mpsc, watch as state};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use clipboard::start_clipboard;
pub(crate) use lan::Again;
use lan::recv_lan;
use relay::{next_hint, relay_changed, relay_news};

use crate::cli::{ConfigAction, DataCommand};
use crate::config::Applies;
use crate::device::{Changed, Device, InAgent, Nearby};
use crate::error::Failure;
use crate::ipc::{Reply, socket};
use crate::output::{Done, Output};
use crate::pause::Pause;
use crate::relay::Hints;

/// Copies closer together than this go out in one segment (the first after a quiet spell goes
/// at once).
const UPLOAD_DEBOUNCE: Duration = Duration::from_millis(20);
/// The first wait before retrying a failed upload; it doubles up to the poll interval.
const RETRY_FIRST: Duration = Duration::from_secs(2);
/// How long the last upload may take at shutdown.
const SHUTDOWN_UPLOAD: Duration = Duration::from_secs(10);
/// Storage retries within one step; the loop itself tries again later (uploads back off, fetches
/// come with the next poll or hint), so a step gives up after seconds, not a minute.
pub(crate) const RETRY: RetryPolicy = RetryPolicy {
    first_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(2),
    deadline: Duration::from_secs(10),
    max_attempts: 5,
};

/// Runs a data command that came over the socket, with what only the agent knows (for `ferry
/// status`): `commands::execute`, handed down by `ferry agent`, so that the agent never
/// depends on the commands above it.
pub(crate) type Execute =
    for<'a> fn(
        &'a mut Device,
        DataCommand,
        &'a mut Output,
        &'a InAgent,
    ) -> Pin<Box<dyn Future<Output = Result<Changed, Failure>> + 'a>>;

/// Why the agent's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// SIGTERM, SIGINT or `ferry stop`.
    Stopped,
    /// The device moved to a new key: the caller opens it again and runs the agent on it
    /// (the relay's topics, the LAN's key and the repository's folder are the new key's).
    NewKey,
}

/// Runs the agent on the open `device` until SIGTERM, SIGINT or `ferry stop`, or until the
/// device moves to a new key; `again` when it runs again after such a move.
pub(crate) async fn run(device: Device, execute: Execute, again: Again) -> Result<Ended, Failure> {
    Agent::start(device, execute, again).await?.run().await
}

struct Agent {
    device: Device,
    /// The data commands that come over the socket.
    execute: Execute,
    /// The relay, where one is set: hints announced and heard.
    relay: Option<Hints>,
    /// The LAN path and its events, where `lan.enabled`.
    lan: Option<(ferry_lan::Lan, ferry_lan::Events)>,
    /// How far the state was when the LAN's members were last set from its roster.
    admitted: Option<ferry_core::Hlc>,
    /// What the LAN path is doing, for `ferry status`.
    nearby: Nearby,
    /// Room for the calls of other devices this device answers as the holder of their
    /// repository.
    answering: Arc<tokio::sync::Semaphore>,
    /// The relay connection's state, to say when the relay confirms the subscriptions.
    relay_state: Option<state::Receiver<RelayStatus>>,
    /// Tasks that live as long as the agent: the socket's accept loop and its connections,
    /// stopped before the agent's last upload.
    tasks: JoinSet<()>,
    clips: Option<mpsc::Receiver<Observed>>,
    folder: Option<mpsc::Receiver<()>>,
    jobs: mpsc::Receiver<serve::Job>,
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
    /// The synced settings in force: when a merge changes them, they are applied.
    synced_seen: Vec<(String, String)>,
    /// When a gap in segments passed on over the LAN last sent this agent to storage.
    gap_fetched_at: Option<Instant>,
    /// When hints of devices not known here send this agent to poll the storage next.
    stranger_poll_at: Option<Instant>,
    /// When they last did.
    stranger_polled_at: Option<Instant>,
    /// The generation of the repository the agent started on: once the device moves on, the
    /// agent starts again on the new key.
    generation: u32,
    /// Why this device writes nothing more (a new key removed it or left it out), said once.
    shut_out: Option<String>,
}

impl Agent {
    async fn start(mut device: Device, execute: Execute, again: Again) -> Result<Agent, Failure> {
        let (lan, nearby) = lan::start(&mut device, again).await;
        let (job_tx, jobs) = mpsc::channel(16);
        let mut tasks = JoinSet::new();
        let relay = relay::listen(&device);
        let (folder_watcher, folder) = watch::repository(&device)?.unzip();
        let (clips, watcher, writer) =
            if device.config.settings.watch_clipboard || device.config.settings.apply_remote {
                start_clipboard(&device)
            } else {
                (None, None, None)
            };
        // The socket last: whoever finds it finds the clipboard watcher started (a copy made
        // before the watcher looks is taken as already there, and not recorded).
        tasks.spawn(serve::accept(socket::Listener::bind(&device.home)?, job_tx));
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
        let synced_seen = crate::device::synced_settings(&device.engine, &device.config);
        let device_generation = device.engine.generation();
        Ok(Agent {
            notifier: notify::Notifier::new(&device),
            moving,
            device,
            execute,
            relay_state: relay.as_ref().map(Hints::watch),
            relay,
            lan,
            admitted: None,
            nearby,
            answering: Arc::new(tokio::sync::Semaphore::new(lan::ANSWERING)),
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
            synced_seen,
            gap_fetched_at: None,
            stranger_poll_at: None,
            stranger_polled_at: None,
            generation: device_generation,
            shut_out: None,
        })
    }

    async fn run(mut self) -> Result<Ended, Failure> {
        let stop = stop_requested()?;
        tokio::pin!(stop);
        let mut poll = tokio::time::interval(self.device.config.settings.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(device = %self.device.engine.device(), "agent running");
        if self.paused.is_none() {
            self.roll_call();
        }
        loop {
            let every = self.device.config.settings.poll_interval;
            if poll.period() != every {
                poll = tokio::time::interval_at(Instant::now() + every, every);
                poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            let upload_at = self.upload_at.filter(|_| self.paused.is_none());
            let large_at = self.large_at.filter(|_| self.paused.is_none());
            let topics_change = self.relay.as_ref().map(Hints::topics_change);
            let resume_at = self
                .paused
                .and_then(|paused| paused.left())
                .map(|left| Instant::now() + left);
            let stranger_poll_at = self.stranger_poll_at.filter(|_| self.paused.is_none());
            tokio::select! {
                () = &mut stop => break,
                Some(observed) = recv(&mut self.clips) => self.observed(observed),
                Some(hint) = next_hint(&mut self.relay) => match self.paused {
                    None => self.hint(hint).await,
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
                () = sleep_until(topics_change), if topics_change.is_some() => self.rotate_topics(),
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
                () = sleep_until(stranger_poll_at), if stranger_poll_at.is_some() => {
                    self.poll_for_strangers().await;
                }
            }
            self.admit();
            if self.device.engine.generation() != self.generation {
                info!(
                    generation = self.device.engine.generation(),
                    "this device moved to the repository's new key: the agent starts again on it"
                );
                break;
            }
        }
        let ended = if self.device.engine.generation() == self.generation {
            Ended::Stopped
        } else {
            Ended::NewKey
        };
        // No more commands from the socket: what they recorded goes out below.
        self.tasks.shutdown().await;
        if self.paused.is_some() {
            info!("stopping; sync is paused: what is pending goes out after `ferry resume`");
            let _ = std::fs::remove_file(self.device.home.socket());
            return Ok(ended);
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
        Ok(ended)
    }

    async fn job(&mut self, job: serve::Job) {
        let mut out = Output::new(job.json).quietly(job.quiet);
        // A clip `ferry pick` chose goes on this clipboard first; copied again only once there.
        let placed = match &job.command {
            DataCommand::Place { id } => self.place_chosen(id).await,
            _ => Ok(()),
        };
        // What `ferry copy` records goes on this clipboard too, once recorded.
        let copied = match &job.command {
            DataCommand::Copy(args) if args.place => Some(crate::clipboard::of_copy(args)),
            _ => None,
        };
        // Images and files moving for the command say how far they are, to the command.
        self.moving.lock().unwrap_or_else(|p| p.into_inner()).job = Some(job.progress.clone());
        let setting = match &job.command {
            DataCommand::Config { action } => match action {
                ConfigAction::Set { key, synced, .. } | ConfigAction::Unset { key, synced } => {
                    Some((key.clone(), *synced))
                }
                ConfigAction::Get { .. } | ConfigAction::Ls => None,
            },
            _ => None,
        };
        let result = match (placed, job.command) {
            (Err(failure), _) => Err(failure),
            (Ok(()), DataCommand::Stop) => {
                let line = "The agent stops once it has sent what is pending.";
                out.done(&Done::new("stopping", "the agent", line));
                self.stopping = true;
                Ok(Changed::No)
            }
            (Ok(()), DataCommand::Uploading) => self.uploading(&mut out),
            (Ok(()), command) => {
                let here = InAgent {
                    nearby: self.nearby.clone(),
                    relay: self
                        .relay_state
                        .as_ref()
                        .map(|state| state.borrow().clone()),
                };
                (self.execute)(&mut self.device, command, &mut out, &here).await
            }
        };
        self.moving.lock().unwrap_or_else(|p| p.into_inner()).job = None;
        if let (Ok(_), Some(clip)) = (&result, copied) {
            self.place_copied(clip, &mut out).await;
        }
        // A setting changed here is in force before the next copy is recorded.
        let result = match (result, setting) {
            (Ok(changed), Some((key, synced))) => self.reread_settings().map(|applied| {
                let applies = match applied.at_restart.contains(&key.as_str()) {
                    true => Applies::AtRestart,
                    false => Applies::Now,
                };
                out.done(&self.device.config.now(&key, synced, applies));
                changed
            }),
            (result, _) => result,
        };
        if let Ok(Changed::Yes) = result {
            if self.paused.is_none() {
                self.share();
            }
            self.upload_at = Some(Instant::now());
        }
        let _ = job
            .reply
            .send(Reply::new(result.map(drop), out.stdout, out.stderr));
        // The loop ends after this job (stopped, or moved to a new key, whose summary this
        // is): its answer reaches the caller first.
        if self.stopping || self.device.engine.generation() != self.generation {
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
        if progress.direction == ferry_sync::transfer::Route::Up {
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
