//! The agent's socket: commands on the device's data run in the agent while it holds the
//! database, and their output travels back.
//!
//! ```text
//! request:  one JSON line {"command": DataCommand, "json": bool}
//! progress: while an image or file moves for it, JSON lines {"progress": {…}}
//! reply:    one JSON line {"code", "error", "stderr", "stdout_len"}, then stdout_len bytes
//! ```
//!
//! The socket sits in the Ferry home (mode 0700), so only the user reaches it; on Windows it
//! is a named pipe (see [`super::socket`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use ferry_sync::transfer::Direction;
use ferry_sync::{Progress, ProgressFn};

use super::socket::{self, Listener};
use crate::cli::DataCommand;
use crate::error::Failure;
use crate::home::Home;

/// How long the agent may stay silent on a command (a paste may fetch first; a large one
/// says how far it is as it goes).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Largest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Request {
    command: DataCommand,
    json: bool,
}

/// What the agent answered.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Reply {
    pub(crate) code: u8,
    pub(crate) error: String,
    pub(crate) stderr: String,
    #[serde(skip)]
    pub(crate) stdout: Vec<u8>,
    stdout_len: u64,
}

impl Reply {
    pub(crate) fn new(result: Result<(), Failure>, stdout: Vec<u8>, stderr: String) -> Reply {
        let (code, error) = match result {
            Ok(()) => (0, String::new()),
            Err(failure) => (failure.code, failure.message),
        };
        Reply {
            code,
            error,
            stderr,
            stdout_len: stdout.len() as u64,
            stdout,
        }
    }
}

/// A command for the agent's loop, with where to send the answer.
pub(crate) struct Job {
    pub(crate) command: DataCommand,
    pub(crate) json: bool,
    pub(crate) reply: oneshot::Sender<Reply>,
    /// How far an image or file moving for the command is.
    pub(crate) progress: mpsc::UnboundedSender<Progress>,
    /// Ends once the reply was written out (or could not be): an agent told to stop waits
    /// for it, so that `ferry stop` hears back.
    pub(crate) delivered: oneshot::Receiver<()>,
}

/// A progress line, as it travels.
#[derive(Serialize, Deserialize)]
struct ProgressLine {
    progress: Moved,
}

/// [`Progress`] on the wire.
#[derive(Serialize, Deserialize)]
struct Moved {
    blob: ferry_protocol::BlobId,
    up: bool,
    done: u64,
    total: u64,
}

impl From<&Progress> for Moved {
    fn from(progress: &Progress) -> Moved {
        Moved {
            blob: progress.blob,
            up: progress.direction == Direction::Up,
            done: progress.done,
            total: progress.total,
        }
    }
}

impl From<Moved> for Progress {
    fn from(moved: Moved) -> Progress {
        Progress {
            blob: moved.blob,
            direction: if moved.up {
                Direction::Up
            } else {
                Direction::Down
            },
            done: moved.done,
            total: moved.total,
        }
    }
}

/// Sends `command` to the agent of `home`; `None` when no agent listens.
pub(crate) async fn send(
    home: &Home,
    command: &DataCommand,
    json: bool,
) -> Result<Option<Reply>, Failure> {
    send_watching(home, command, json, None).await
}

/// [`send`], telling `progress` how far the images or files moving for the command are.
pub(crate) async fn send_watching(
    home: &Home,
    command: &DataCommand,
    json: bool,
    progress: Option<ProgressFn>,
) -> Result<Option<Reply>, Failure> {
    let stream = match socket::connect(home).await {
        Ok(stream) => stream,
        // Only something other than Ferry writes that: waiting for the lock would not help.
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
            return Err(Failure::new(format!(
                "{} cannot lead to the agent ({error}); end the running agent and start \
                 it again: it writes the file anew",
                home.socket().display()
            )));
        }
        Err(error) => {
            debug!(%error, "no agent answers");
            return Ok(None);
        }
    };
    let failed = |e: std::io::Error| {
        Failure::new(format!(
            "the agent did not answer ({e}); see its log, or stop it and try again"
        ))
    };
    let silent = || Failure::new("the agent did not answer within 2 minutes; see its log");
    let (read, mut write) = tokio::io::split(stream);
    let mut line = serde_json::to_vec(&Request {
        command: command.clone(),
        json,
    })
    .map_err(|e| failed(std::io::Error::other(e)))?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(failed)?;
    write.shutdown().await.map_err(failed)?;
    let mut read = BufReader::new(read);
    let mut reply: Reply = loop {
        let mut header = String::new();
        tokio::time::timeout(TIMEOUT, read.read_line(&mut header))
            .await
            .map_err(|_| silent())?
            .map_err(failed)?;
        match serde_json::from_str::<ProgressLine>(&header) {
            Ok(line) => {
                if let Some(progress) = &progress {
                    progress(&line.progress.into());
                }
            }
            Err(_) => {
                break serde_json::from_str(&header)
                    .map_err(|e| failed(std::io::Error::other(e)))?;
            }
        }
    };
    let mut stdout = Vec::new();
    tokio::time::timeout(
        TIMEOUT,
        (&mut read).take(reply.stdout_len).read_to_end(&mut stdout),
    )
    .await
    .map_err(|_| silent())?
    .map_err(failed)?;
    reply.stdout = stdout;
    Ok(Some(reply))
}

/// The first wait after a failed accept (out of file descriptors, say); it doubles up to
/// [`ACCEPT_BACKOFF_MAX`] while accepting keeps failing.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Accepts connections on `listener` and hands each command to the agent's loop through
/// `jobs`, until the task running it is dropped (with the connections it serves).
pub(crate) async fn accept(mut listener: Listener, jobs: mpsc::Sender<Job>) {
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok(stream) => {
                backoff = ACCEPT_BACKOFF;
                let jobs = jobs.clone();
                connections.spawn(async move {
                    if let Err(error) = serve(stream, jobs).await {
                        debug!(%error, "a command on the agent's socket failed");
                    }
                });
            }
            Err(error) => {
                warn!(%error, retry_in = ?backoff, "the agent's socket could not accept");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

async fn serve(stream: impl socket::Stream, jobs: mpsc::Sender<Job>) -> std::io::Result<()> {
    // Dropped when this returns, reply written or not.
    let (_delivered, delivered_rx) = oneshot::channel::<()>();
    let (read, mut write) = tokio::io::split(stream);
    let mut line = Vec::new();
    BufReader::new(read)
        .take(MAX_REQUEST)
        .read_until(b'\n', &mut line)
        .await?;
    let reply = match serde_json::from_slice::<Request>(&line) {
        Ok(request) => {
            let (tx, mut rx) = oneshot::channel();
            let (progress, mut moved) = mpsc::unbounded_channel();
            let job = Job {
                command: request.command,
                json: request.json,
                reply: tx,
                progress,
                delivered: delivered_rx,
            };
            if jobs.send(job).await.is_err() {
                Reply::new(
                    Err(Failure::new("the agent is stopping; try again")),
                    Vec::new(),
                    String::new(),
                )
            } else {
                loop {
                    tokio::select! {
                        reply = &mut rx => break reply.unwrap_or_else(|_| {
                            Reply::new(
                                Err(Failure::new("the agent stopped before answering")),
                                Vec::new(),
                                String::new(),
                            )
                        }),
                        Some(progress) = moved.recv() => {
                            let mut line = serde_json::to_vec(&ProgressLine {
                                progress: Moved::from(&progress),
                            })
                            .map_err(std::io::Error::other)?;
                            line.push(b'\n');
                            write.write_all(&line).await?;
                        }
                    }
                }
            }
        }
        Err(error) => Reply::new(
            Err(Failure::usage(format!(
                "the agent could not read the command ({error}): use the same Ferry version for both"
            ))),
            Vec::new(),
            String::new(),
        ),
    };
    let mut header = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    header.push(b'\n');
    write.write_all(&header).await?;
    write.write_all(&reply.stdout).await?;
    write.shutdown().await
}
