//! `ferry`: the command-line client and the background agent.
//!
//! ```text
//! main ─▶ cli (clap) ─▶ config layers + home
//!   init / join / key / doctor / service      run here
//!   agent                                     the long-running loop (agent/)
//!   copy, paste, history, … (DataCommand)     run here under the home's lock, or, when an
//!                                             agent holds it, sent to the agent's socket
//! ```
//!
//! Exit codes: 0 success, 1 failure, 2 usage error.

mod agent;
mod cli;
mod config;
mod data;
mod device;
mod doctor;
mod error;
mod home;
mod prompt;
mod service;
mod setup;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferry_relay_client::{ClientConfig, RelayClient};

use crate::cli::{Cli, Command, ConfigAction, DataCommand};
use crate::config::Config;
use crate::data::Output;
use crate::device::Device;
use crate::error::Failure;
use crate::home::Home;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = std::env::var("FERRY_LOG").unwrap_or_else(|_| match cli.command {
        Command::Agent => "info".into(),
        _ => "warn".into(),
    });
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(level.parse().unwrap_or(tracing::Level::WARN))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ferry: could not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("ferry: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let global = cli.global;
    let home = Home::locate(global.home.as_deref(), global.config.as_deref())?;
    let mut flags = Vec::new();
    if let Some(choice) = global.secret_store {
        flags.push(("secret_store", choice.to_string()));
    }
    let config = Config::load(global.base_config.as_deref(), &home.config, &flags)?;
    match cli.command {
        Command::Init(args) => print_setup(
            setup::setup(home, config, args.into(), global.json).await?,
            global.json,
        ),
        Command::Join(args) => print_setup(
            setup::setup(home, config, args.into(), global.json).await?,
            global.json,
        ),
        Command::Key { action } => setup::key(&home, &config, action),
        Command::Agent => agent::run(home, config).await,
        Command::Doctor => doctor::run(&home, &config, global.json).await,
        Command::Service { action } => service::run(&home, action, global.home.is_some()),
        Command::Data(command) => data_command(home, config, command, global.json).await,
    }
}

fn print_setup(result: serde_json::Value, json: bool) -> Result<(), Failure> {
    if json {
        println!("{result}");
    }
    Ok(())
}

/// Runs a data command here, or in the agent when one holds the home.
async fn data_command(
    home: Home,
    config: Config,
    mut command: DataCommand,
    json: bool,
) -> Result<(), Failure> {
    // Settings in files need neither the engine nor the agent.
    if let DataCommand::Config { action } = &command
        && (matches!(
            action,
            ConfigAction::Set { synced: false, .. } | ConfigAction::Unset { synced: false, .. }
        ) || config.settings.store.as_deref().is_none())
    {
        let mut out = Output::default();
        setup::local_config(&config, action.clone(), json, &mut out)?;
        return emit(out);
    }
    data::prepare(&mut command)?;
    let lock = match device::try_lock(&home)? {
        Some(lock) => lock,
        None => match agent::ipc::send(&home, &command, json).await {
            Ok(Some(reply)) => {
                emit(Output {
                    stdout: reply.stdout,
                    stderr: reply.stderr,
                })?;
                return match reply.code {
                    0 => Ok(()),
                    code => Err(Failure {
                        message: reply.error,
                        code,
                    }),
                };
            }
            // No agent answers: another command holds the lock; wait for it.
            Ok(None) => device::lock(&home, Duration::from_secs(30))?,
            Err(failure) => return Err(failure),
        },
    };
    let mut device = Device::open(home, config, lock, device::INTERACTIVE).await?;
    let mut out = Output::default();
    // Without an agent keeping this device current, look for news first (one listing).
    let fetch_first = !matches!(
        command,
        DataCommand::Copy(_)
            | DataCommand::Paste(_)
            | DataCommand::Sync { .. }
            | DataCommand::Log(_)
    );
    if fetch_first && let Err(error) = device.engine.fetch().await {
        out.stderr.push_str(&format!(
            "warning: could not fetch new data ({error}); showing what this device has\n"
        ));
    }
    let result = data::execute(&mut device, command, json, &mut out).await;
    if let Ok(true) = result {
        // Sync it now if storage is reachable; it stays queued otherwise.
        match device.engine.upload().await {
            Ok(report) => announce(&device, &report.hints).await,
            Err(error) => {
                out.stderr.push_str(&format!(
                    "recorded on this device; it goes out with the next `ferry sync` or the agent \
                 (the upload failed: {error})\n"
                ));
            }
        }
    }
    emit(out)?;
    result.map(drop)
}

/// Tells the other devices through the relay that a new segment is there, so their agents
/// fetch it now rather than at their next poll. The newest hint covers the ones before it.
async fn announce(device: &Device, hints: &[ferry_protocol::RelayHint]) {
    let (Some(url), Some(hint)) = (device.config.settings.relay.as_deref(), hints.last()) else {
        return;
    };
    let Ok((client, _)) = RelayClient::start(ClientConfig::new(url)) else {
        return;
    };
    let topic = device.keys.relay.publish_topic(agent::unix_now());
    if let Ok(sealed) = device.keys.relay.seal_hint(&topic, hint) {
        let _ = client.publish(topic, sealed.into_bytes());
        if !client.flush(Duration::from_secs(2)).await {
            tracing::info!("the relay did not answer: other devices see this at their next poll");
        }
    }
}

fn emit(out: Output) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out.stdout)
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::new(format!("could not write the output: {e}")))?;
    eprint!("{}", out.stderr);
    Ok(())
}
