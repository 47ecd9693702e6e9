//! The agent's end of its socket ([`crate::ipc`]): each connection's command goes to the agent's
//! loop as a [`Job`], and the answer, with progress lines while content moves for it, goes back.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use ferry_sync::Progress;

use crate::cli::DataCommand;
use crate::error::Failure;
use crate::ipc::socket::{self, Listener};
use crate::ipc::{MAX_REQUEST, Moved, ProgressLine, Reply, Request};

/// A command for the agent's loop, with where to send the answer.
pub(crate) struct Job {
    pub(crate) command: DataCommand,
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) reply: oneshot::Sender<Reply>,
    /// How far an image or file moving for the command is.
    pub(crate) progress: mpsc::UnboundedSender<Progress>,
    /// Ends once the reply was written out (or could not be): an agent told to stop waits
    /// for it, so that `ferry stop` hears back.
    pub(crate) delivered: oneshot::Receiver<()>,
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
                quiet: request.quiet,
                reply: tx,
                progress,
                delivered: delivered_rx,
            };
            if jobs.send(job).await.is_err() {
                Reply::failed(Failure::new("the agent is stopping; try again"))
            } else {
                loop {
                    tokio::select! {
                        reply = &mut rx => break reply.unwrap_or_else(|_| {
                            Reply::failed(Failure::new("the agent stopped before answering"))
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
        Err(error) => Reply::failed(Failure::usage(format!(
            "the agent could not read the command ({error}): use the same Ferry version for both"
        ))),
    };
    let mut header = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    header.push(b'\n');
    write.write_all(&header).await?;
    write.write_all(&reply.stdout).await?;
    write.shutdown().await
}
