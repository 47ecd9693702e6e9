//! `ferry agent`: on the first run with no configuration, sets this device up on the embedded
//! default (a repository in a folder in the home); then hands the device to the agent's loop
//! ([`crate::agent`]) with the data commands it runs for `ferry` over its socket.

use std::time::Duration;

use ferry_secrets::{Secret, SecretsError};
use ferry_store::url::StoreUrl;

use super::setup::{self, KeySource, Setup, ShowCode};
use crate::agent::{self, RETRY};
use crate::cli::DataCommand;
use crate::config::Config;
use crate::device::{self, Device};
use crate::error::Failure;
use crate::home::Home;
use crate::ipc::{self, Format};
use crate::output::Output;

/// Runs the agent until it is told to stop.
pub(crate) async fn run(home: Home, config: Config) -> Result<(), Failure> {
    no_crash_dumps();
    if let Some(reply) = ipc::send(&home, &DataCommand::Status, Format::Json).await? {
        let status: serde_json::Value = serde_json::from_slice(&reply.stdout).unwrap_or_default();
        let pid = status["agent"]["pid"]
            .as_u64()
            .map(|pid| format!(" (pid {pid})"))
            .unwrap_or_default();
        return Err(Failure::new(format!(
            "an agent is already running for {}{pid}: there is nothing to start; to start it \
             anew, `ferry stop` first",
            home.data.display()
        )));
    }
    let config = match config.settings.store.as_deref() {
        Some(_) => config,
        None => first_run(&home, config).await?,
    };
    let mut again = agent::Again::No;
    let mut config = config;
    loop {
        let lock = device::lock(&home, Duration::from_secs(30))?;
        let device = Device::open_in_agent(home.clone(), config.clone(), lock, RETRY).await?;
        match agent::run(device, super::execute_in_agent, again).await? {
            agent::Ended::Stopped => return Ok(()),
            // On the new key, from the start: its relay topics, LAN key and folder; with the
            // settings as they are now.
            agent::Ended::NewKey => {
                again = agent::Again::Yes;
                config = config.reread(&[])?;
            }
        }
    }
}

/// The secret store of the first run: the OS keychain when it answers or was chosen; else (a
/// machine with no desktop session, as a fresh server) a 0600 file in the home, said and kept
/// in the config, so that the first command of the README works anywhere.
fn keychain_or_file(home: &Home, config: Config) -> Result<Config, Failure> {
    if config.secret_store_chosen() {
        return Ok(config);
    }
    match device::secrets(home, &config).get(Secret::SyncKey) {
        Err(SecretsError::KeychainUnavailable { detail }) => {
            println!(
                "No OS keychain answers here ({detail}): the secrets go to a file in {} \
                 (mode 0600) instead; to use a keychain later, leave and set up again with \
                 --secret-store keychain.",
                home.data.display()
            );
            crate::config::write_user(&config.user_file, "secret_store", Some("file"))?;
            Config::load(None, &config.user_file, &[])
        }
        _ => Ok(config),
    }
}

/// With no configuration: a repository in the embedded default folder, then run.
async fn first_run(home: &Home, config: Config) -> Result<Config, Failure> {
    let folder = home.default_store();
    println!(
        "No Ferry configuration was found: setting this device up on a repository in {}.",
        folder.display()
    );
    let config = keychain_or_file(home, config)?;
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
    let mut out = Output::new(false);
    let mut done = setup::setup(home.clone(), config, setup, &mut out).await;
    if let Ok(done) = &mut done {
        done.agent_starts = true;
        out.report(&*done);
    }
    out.emit()?;
    done?;
    Config::load(None, &home.config, &[])
}

/// Keeps what the agent holds in memory (the history, the keys) out of crash dumps, before it
/// reads any of it: no core file on Unix, and on Linux not dumpable at all (nor open to
/// `ptrace` by other processes of the same user). Where that fails it says so and goes on.
fn no_crash_dumps() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, setrlimit};
        let none = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        if let Err(error) = setrlimit(Resource::Core, none) {
            tracing::warn!(%error, "could not turn core files off");
        }
    }
    #[cfg(target_os = "linux")]
    if let Err(error) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(%error, "could not make the agent undumpable");
    }
}
