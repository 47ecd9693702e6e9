//! `ferry join` with a code: receives the settings from the device that shows it.

use std::io::IsTerminal;
use std::time::Duration;

use ferry_protocol::pairing::{AbortReason, Bundle, Message, Outcome, PairingCode, Reply, Role};
use ferry_protocol::{DeviceId, Identity, SyncKey};
use ferry_secrets::Secret;
use tokio::time::Instant;
use tracing::info;

use super::channel::{Channel, EXCHANGE, Paths};
use super::printable;
use crate::cli::JoinArgs;
use crate::commands::setup::{self, KeySource, Paired, SetUp, Setup, ShowCode};
use crate::config::Config;
use crate::device;
use crate::error::Failure;
use crate::home::Home;
use crate::output::Output;
use crate::prompt;

/// `ferry join` with a code: receives the settings from the device that shows it.
pub(crate) async fn join(
    home: Home,
    config: Config,
    args: JoinArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    setup::not_set_up(&config)?;
    // Before the code is asked for: a secret store that cannot keep the key would use the code
    // up for nothing.
    device::secrets(&home, &config).get(Secret::SyncKey)?;
    let (code, relay_in_code) = read_code(&args)?;
    let paths = Paths::choose(args.relay.as_deref(), relay_in_code, &config)?;
    let started = Instant::now();
    // Who this device will be: what the other device attests.
    let identity = Identity::generate()?;
    let joining = Reply {
        device: DeviceId::generate()?,
        name: args
            .name
            .clone()
            .or_else(|| config.settings.device_name.clone())
            .unwrap_or_else(setup::default_name),
        keys: identity.public(),
    };

    let mut channel = Channel::open(&paths, &code, Role::Join).await?;
    if std::io::stderr().is_terminal() && !out.json {
        eprintln!("Waiting for the device that shows the code…");
    }
    let bundle = receive(&mut channel, &joining, started + args.wait, &args, &paths).await?;
    let round_trips = channel.bursts;
    let relay_connected = channel.relay_connected().map(str::to_owned);

    let relay = bundle.relay.clone().or(paths.relay.clone());
    let setup = Setup {
        store: bundle.store.clone(),
        relay: relay.clone(),
        name: Some(joining.name),
        key: KeySource::Paired(SyncKey::from_bytes(bundle.sync_key)),
        code: ShowCode::Print,
        paired: Some(Paired {
            credentials: bundle.credentials.clone(),
            identity,
            device: joining.device,
            by: printable(&bundle.name),
        }),
    };
    let installed = setup::install(home, config, setup, out).await;
    let outcome = match &installed {
        Ok(_) => Outcome {
            joined: true,
            detail: match unreachable_relay(relay.as_deref(), relay_connected.as_deref()).await {
                Some(warning) => {
                    out.note(format!("warning: {warning}"));
                    warning
                }
                None => String::new(),
            },
        },
        Err(failure) => Outcome {
            joined: false,
            detail: failure.message.clone(),
        },
    };
    // The outcome goes out whatever happened; the first sync needs no answer.
    let told = channel.send(&Message::Outcome(outcome));
    let (device, done) = match installed {
        Ok(installed) => installed,
        Err(failure) => {
            // Out before this command ends: the other side ends with this device's reason.
            channel.flush().await;
            return Err(failure);
        }
    };
    told?;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        round_trips, "paired: key installed and repository opened"
    );
    channel.flush().await;
    let done: SetUp = setup::first_sync(device, done, out).await?;
    out.report(&done);
    Ok(())
}

/// Why the relay this device was given cannot be used from here, when it cannot: a device
/// that cannot reach it still syncs, at each poll instead of at once, and both sides say so.
/// The relay this device is connected to for pairing was reached already.
async fn unreachable_relay(relay: Option<&str>, connected: Option<&str>) -> Option<String> {
    let url = relay.filter(|url| Some(*url) != connected)?.to_owned();
    let checked = url.clone();
    let why = tokio::task::spawn_blocking(move || crate::relay::reachable(&checked))
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
        .err()?;
    Some(format!(
        "the relay at {url} cannot be reached from this device ({why}); it syncs at each poll \
         of the storage instead of at once: check that the relay runs and is reachable from \
         here, or set another with `ferry config set relay URL`"
    ))
}

/// The code: from the arguments, else asked for; on a terminal a code that is not one (a word
/// off the list, a digit missing) is asked for again, since nothing was used up yet.
fn read_code(args: &JoinArgs) -> Result<(PairingCode, Option<String>), Failure> {
    if let Some(code) = &args.code {
        return PairingCode::parse(code).map_err(|e| Failure::usage(e.to_string()));
    }
    loop {
        let typed = prompt::code("Pairing code: ")?;
        match PairingCode::parse(&typed) {
            Ok(parsed) => return Ok(parsed),
            Err(error) if prompt::interactive() => {
                eprintln!("{error}; type the code again (nothing was used up).");
            }
            Err(error) => return Err(Failure::usage(error.to_string())),
        }
    }
}

/// How long a joining device hears nothing from a code before it says nobody holds it.
const NOBODY: Duration = Duration::from_millis(4500);

/// [`NOBODY`] with no relay: the meeting place on the LAN is found first.
const NOBODY_ON_THE_LAN: Duration = Duration::from_secs(10);

/// Answers the device that shows the code with `joining` once the code is confirmed, and
/// waits for what it sends, until `deadline` (pushed back once the code is confirmed).
async fn receive(
    channel: &mut Channel,
    joining: &Reply,
    mut deadline: Instant,
    args: &JoinArgs,
    paths: &Paths,
) -> Result<Bundle, Failure> {
    // The device showing the code publishes every two seconds: silence for longer, on a path
    // that works, means nobody holds the code any more.
    // On the LAN alone, finding the other device by mDNS takes part of that time.
    let nobody = match paths.relay {
        Some(_) => NOBODY,
        None => NOBODY_ON_THE_LAN,
    };
    let mut quiet_by = Instant::now() + nobody;
    loop {
        let waiting_for_first = !channel.session.answered();
        let until = match waiting_for_first {
            true => deadline.min(quiet_by),
            false => deadline,
        };
        let Some(progress) = channel.next_unless_cancelled(until).await? else {
            if waiting_for_first && Instant::now() < deadline {
                if !channel.listening() {
                    // The relay has not taken the connection yet: silence says nothing.
                    quiet_by = Instant::now() + nobody;
                    continue;
                }
                channel.abort(AbortReason::Cancelled).await;
                return Err(Failure::new(format!(
                    "no device answered the code within {} ({}): nobody shows it any more (it \
                     expired, was cancelled, or its `ferry pair` ended) or the other device is \
                     elsewhere (another relay, another network); run `ferry pair` there again",
                    humantime::format_duration(nobody),
                    paths.described(),
                )));
            }
            channel.abort(AbortReason::Cancelled).await;
            return Err(Failure::new(if channel.session.answered() {
                "the other device stopped answering; run `ferry pair` there again".to_owned()
            } else {
                format!(
                    "no device answered the code within {} ({}): it may have expired or been \
                     used already, or the other device is elsewhere (another relay, another \
                     network); run `ferry pair` there again",
                    humantime::format_duration(args.wait),
                    paths.described(),
                )
            }));
        };
        if progress.confirmed {
            deadline = Instant::now() + EXCHANGE;
            channel.send(&Message::Reply(joining.clone()))?;
        }
        if let Some(Message::Bundle(bundle)) = progress.message {
            return Ok(bundle);
        }
    }
}
