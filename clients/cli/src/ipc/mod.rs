//! The agent's socket, both ends: commands on the device's data run in the agent while it holds
//! the database, and their output travels back. The client half is here; the agent serves the
//! socket (`agent::serve`) with the same types.
//!
//! ```text
//! request:  one JSON line {"command": DataCommand, "json": bool, "quiet": bool}
//! progress: while an image or file moves for it, JSON lines {"progress": {…}}
//! reply:    one JSON line {"code", "error", "stderr", "stdout_len"}, then stdout_len bytes
//! ```
//!
//! The socket sits in the Ferry home (mode 0700), so only the user reaches it; on Windows it
//! is a named pipe (see [`socket`]).

pub(crate) mod socket;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tracing::debug;

use ferry_sync::transfer::Route;
use ferry_sync::{Progress, ProgressFn};

use crate::cli::DataCommand;
use crate::error::Failure;
use crate::home::Home;

/// How long the agent may stay silent on a command (a paste may fetch first; a large one
/// says how far it is as it goes).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Largest request line accepted.
pub(crate) const MAX_REQUEST: u64 = 64 * 1024 * 1024;

/// A command for the agent, as it travels.
#[derive(Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) command: DataCommand,
    /// Whether the command's report is wanted as JSON.
    pub(crate) json: bool,
    /// Whether confirmation lines are left out (`--quiet`).
    #[serde(default)]
    pub(crate) quiet: bool,
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

    /// A reply that only says why the command did not run.
    pub(crate) fn failed(failure: Failure) -> Reply {
        Reply::new(Err(failure), Vec::new(), String::new())
    }

    /// The command's result: what it printed, or its failure.
    pub(crate) fn result(self) -> Result<Vec<u8>, Failure> {
        match self.code {
            0 => Ok(self.stdout),
            code => Err(Failure {
                message: self.error,
                code,
            }),
        }
    }
}

/// A progress line, as it travels.
#[derive(Serialize, Deserialize)]
pub(crate) struct ProgressLine {
    pub(crate) progress: Moved,
}

/// [`Progress`] on the wire.
#[derive(Serialize, Deserialize)]
pub(crate) struct Moved {
    blob: ferry_protocol::BlobId,
    up: bool,
    done: u64,
    total: u64,
}

impl From<&Progress> for Moved {
    fn from(progress: &Progress) -> Moved {
        Moved {
            blob: progress.blob,
            up: progress.direction == Route::Up,
            done: progress.done,
            total: progress.total,
        }
    }
}

impl From<Moved> for Progress {
    fn from(moved: Moved) -> Progress {
        Progress {
            blob: moved.blob,
            direction: if moved.up { Route::Up } else { Route::Down },
            done: moved.done,
            total: moved.total,
        }
    }
}

/// How a command's report is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    /// Text, without confirmation lines (`--quiet`).
    Quiet,
    Json,
}

impl Format {
    /// The format `out` prints in.
    pub(crate) fn of(out: &crate::output::Output) -> Format {
        match (out.json, out.quiet) {
            (true, _) => Format::Json,
            (false, true) => Format::Quiet,
            (false, false) => Format::Text,
        }
    }
}

/// Sends `command` to the agent of `home`; `None` when no agent listens.
pub(crate) async fn send(
    home: &Home,
    command: &DataCommand,
    format: Format,
) -> Result<Option<Reply>, Failure> {
    send_watching(home, command, format, None).await
}

/// [`send`], telling `progress` how far the images or files moving for the command are.
pub(crate) async fn send_watching(
    home: &Home,
    command: &DataCommand,
    format: Format,
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
        json: format == Format::Json,
        quiet: format == Format::Quiet,
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
