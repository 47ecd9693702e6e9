//! `ferry`: the command-line client and the background agent.
//!
//! ```text
//! main ─▶ cli (clap) ─▶ config layers + home
//!   init / join / pair / key / doctor / service  run here (commands/)
//!   pick                                      a full-screen picker over the data commands
//!   agent                                     the first run's setup (commands/agent.rs), then
//!                                             the long-running loop (agent/)
//!   copy, paste, history, … (DataCommand)     run here under the home's lock, or, when an
//!                                             agent holds it, sent to the agent's socket
//!   every answer                              one report, as text or --json (output)
//! ```
//!
//! Layers point one way:
//!
//! ```text
//! main ─▶ commands ─▶ agent ─┐      the agent runs the data commands it is handed
//!            │               ▼      (`agent::Execute`), never importing `commands`
//!            └──────▶ shared: device (the open engine), generation (new keys: following and
//!                     making them), relay (hints), held (a repository
//!                     held on the LAN), ipc (the socket's wire and client), clipboard (clip ⇄ clipboard), pause, progress,
//!                     names (what devices are called here), config, home, output, prompt,
//!                     error, log, cli (the parsed command line)
//! ```
//!
//! Exit codes: 0 success, 1 failure, 2 usage error.

mod agent;
mod cli;
mod clipboard;
mod commands;
mod config;
mod device;
mod error;
mod generation;
mod held;
mod home;
mod ipc;
mod log;
mod names;
mod output;
mod pause;
mod progress;
mod prompt;
mod relay;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, DataCommand, DevicesAction, KeyAction, RotateArgs, StoreAction};
use crate::commands::setup;
use crate::config::Config;
use crate::error::Failure;
use crate::home::Home;
use crate::output::Output;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (default_level, log_file) = match &cli.command {
        Command::Agent(args) => (tracing::Level::INFO, args.log_file.as_deref()),
        _ => (tracing::Level::WARN, None),
    };
    let level = std::env::var("FERRY_LOG")
        .ok()
        .and_then(|level| level.parse().ok())
        .unwrap_or(default_level);
    log::init(level, log_file);
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
    // The command line describing itself needs no home and no config.
    let mut out = Output::new(global.json).quietly(global.quiet);
    match &cli.command {
        Command::Completions { shell } => {
            commands::manual::completions(*shell, &mut out);
            return out.emit();
        }
        Command::Man { output } => {
            commands::manual::man_pages(output, &mut out)?;
            return out.emit();
        }
        Command::ServeClip { png } => return commands::pick::serve_clip(*png),
        _ => {}
    }
    let home = Home::locate(global.home.as_deref(), global.config.as_deref())?;
    let mut flags = Vec::new();
    if let Some(choice) = global.secret_store {
        flags.push(("secret_store", choice.to_string()));
    }
    let config = Config::load(global.base_config.as_deref(), &home.config, &flags)?;
    let result = match cli.command {
        Command::Init(args) => setup::setup(home, config, args.into(), &mut out)
            .await
            .map(|done| out.report(&done)),
        Command::Join(args) if args.store.is_none() => {
            commands::pair::join(home, config, args, &mut out).await
        }
        Command::Join(args) => {
            if args.recovery_code.is_some() {
                out.note(
                    "warning: a recovery code given with --recovery-code is visible to every \
                     user of this machine in the process list while this runs, and stays in \
                     the shell's history: leave it out to be asked for it (or pipe it in)",
                );
            }
            setup::setup(home, config, args.into(), &mut out)
                .await
                .map(|done| out.report(&done))
        }
        Command::Pair(args) => commands::pair::offer(home, config, args, global.json).await,
        Command::Key {
            action: KeyAction::Rotate(args),
        } => {
            let rotate = DataCommand::Devices {
                action: Some(DevicesAction::Rotate(args)),
            };
            commands::run_data(home, config, rotate, &mut out).await
        }
        Command::Key { action } => commands::key::run(&home, &config, action, &mut out),
        Command::Store {
            action:
                StoreAction::Move {
                    url,
                    include,
                    passphrase,
                    yes,
                },
        } => {
            let rotate = RotateArgs {
                include,
                passphrase,
                yes,
                move_to: Some(url),
                ..RotateArgs::default()
            };
            let rotate = DataCommand::Devices {
                action: Some(DevicesAction::Rotate(rotate)),
            };
            commands::run_data(home, config, rotate, &mut out).await
        }
        Command::Agent(_) => commands::agent::run(home, config).await,
        Command::Leave(args) => commands::leave::run(home, config, args, &mut out).await,
        Command::Doctor => commands::doctor::run(&home, &config, &mut out).await,
        Command::Service { action } => {
            commands::service::run(&home, action, global.home.is_some(), &mut out)
        }
        Command::Pick(args) => commands::pick::run(home, config, args, &mut out).await,
        Command::Data(command) => commands::run_data(home, config, command, &mut out).await,
        Command::Completions { .. } | Command::Man { .. } | Command::ServeClip { .. } => Ok(()),
    };
    // What was printed before a failure is shown too (doctor's checklist, a fetch warning).
    out.emit()?;
    result
}
