//! Where the picker reads and changes the history: the running agent, through its socket, or
//! the device opened here when no agent runs. Both run the same commands
//! ([`crate::commands::execute`]), so the picker shows what `ferry history` would.

use std::time::Duration;

use crate::cli::DataCommand;
use crate::commands;
use crate::config::Config;
use crate::device::{self, Changed, Device};
use crate::error::Failure;
use crate::home::Home;
use crate::ipc::{self, Format};
use crate::output::Output;
use crate::pause::Pause;

use super::Matches;

/// The clips one search lists at most: more than a screen holds; a longer query narrows them.
pub(super) const PAGE: usize = 200;

pub(super) enum Source {
    /// The agent holds the database: every command goes over its socket.
    Agent(Home),
    /// No agent: the device is open here, under the home's lock.
    Here(Box<Device>),
}

impl Source {
    /// The agent when one runs, else the device opened here (after a quick fetch, unless sync
    /// is paused).
    pub(super) async fn open(home: Home, config: Config) -> Result<Source, Failure> {
        let lock = match device::try_lock(&home)? {
            Some(lock) => lock,
            None => match ipc::send(&home, &DataCommand::Status, Format::Json).await? {
                Some(_) => return Ok(Source::Agent(home)),
                // Another command holds the lock: wait for it.
                None => device::lock(&home, Duration::from_secs(30))?,
            },
        };
        let mut device = Device::open(home, config, lock, device::INTERACTIVE).await?;
        if Pause::current(&device.home).is_none() {
            // Without news the picker still shows what this device has.
            let _ = device.engine.fetch().await;
        }
        Ok(Source::Here(Box::new(device)))
    }

    /// Whether the agent runs the commands.
    pub(super) fn is_agent(&self) -> bool {
        matches!(self, Source::Agent(_))
    }

    /// Runs `command` and returns what it printed (standard output).
    pub(super) async fn run(&mut self, command: DataCommand) -> Result<Vec<u8>, Failure> {
        let mut out = Output::new(true);
        match self {
            Source::Agent(home) => ipc::send(home, &command, Format::Json)
                .await?
                .ok_or_else(|| Failure::new("the agent stopped while the picker was open"))?
                .result(),
            Source::Here(device) => {
                if commands::execute(device, command, &mut out, None).await? == Changed::Yes {
                    commands::send_now(device, &mut out).await;
                }
                Ok(out.stdout)
            }
        }
    }

    /// The clips matching `query` as typed (pinned, then the newest, when it is empty).
    pub(super) async fn matches(&mut self, query: &str) -> Result<Matches, Failure> {
        let stdout = self
            .run(DataCommand::Matches {
                query: query.to_owned(),
                limit: PAGE,
            })
            .await?;
        serde_json::from_slice(&stdout)
            .map_err(|e| Failure::new(format!("the agent answered the picker oddly: {e}")))
    }

    /// The device, when it is open here.
    pub(super) fn device(&mut self) -> Option<&mut Device> {
        match self {
            Source::Agent(_) => None,
            Source::Here(device) => Some(device),
        }
    }
}
