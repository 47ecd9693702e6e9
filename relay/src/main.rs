//! `ferry-relay`: parses flags, binds, and runs [`ferry_relay::run`] until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use ferry_relay::{Config, Secret};
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let mut config = Config::parse();
    if config.man_page {
        let page = clap_mangen::Man::new(<Config as clap::CommandFactory>::command());
        return match page.render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ferry-relay: cannot write the manual page: {error}");
                ExitCode::FAILURE
            }
        };
    }
    // Read from the environment only: a command line is visible to every user of the machine.
    config.broker_password = std::env::var("FERRY_RELAY_BROKER_PASSWORD")
        .ok()
        .filter(|password| !password.is_empty())
        .map(Secret);
    tracing_subscriber::fmt()
        .with_max_level(log_level())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Each connection is a file descriptor: allow as many as the system lets this process have.
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(%error, "could not raise the open-file limit");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ferry-relay: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = ferry_relay::check(&config) {
        eprintln!("ferry-relay: {error}");
        return ExitCode::FAILURE;
    }
    runtime.block_on(async {
        let listener = match TcpListener::bind(config.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!(
                    "ferry-relay: cannot listen on {}: {error}; choose another --listen address",
                    config.listen
                );
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(address) => println!("listening on {address}"),
            Err(error) => eprintln!("ferry-relay: {error}"),
        }
        match ferry_relay::run(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ferry-relay: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `FERRY_RELAY_LOG` = error, warn, info (default), debug or trace.
fn log_level() -> tracing::Level {
    std::env::var("FERRY_RELAY_LOG")
        .ok()
        .and_then(|level| level.parse().ok())
        .unwrap_or(tracing::Level::INFO)
}

/// Ctrl-C, or a service manager's stop: SIGTERM on Unix; Ctrl-Break, the console closing or
/// the system shutting down on Windows.
async fn shutdown_signal() {
    #[cfg(unix)]
    let stop = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => terminate.recv().await,
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(windows)]
    let stop = async {
        use tokio::signal::windows::{ctrl_break, ctrl_close, ctrl_shutdown};
        match (ctrl_break(), ctrl_close(), ctrl_shutdown()) {
            (Ok(mut brk), Ok(mut close), Ok(mut shutdown)) => tokio::select! {
                _ = brk.recv() => {}
                _ = close.recv() => {}
                _ = shutdown.recv() => {}
            },
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = stop => {}
    }
    tracing::info!("shutdown requested");
}
