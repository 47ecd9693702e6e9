//! Every command, one file per group. Each answers with a report (see [`crate::output`]).
//!
//! ```text
//! setup     init, join                 before a device exists
//! agent     agent                      the first run's setup, then the agent's loop
//! pair      pair, join with a code     adding a device with a one-time code
//! key       key show|export            the recovery code
//! leave     leave                      this device forgets its repository
//! doctor    doctor                     the troubleshooting checklist
//! service   service install|…          the agent as a user service
//! clip      copy, paste, history, pin, unpin, rm, restore, trash
//! collection, alias, config            the rest of the device's data
//! sync      sync, status, log          moving data, and what moved
//! pause     pause, resume              holding sync back for a while
//! devices   devices [rename]           the roster
//! stop      stop                       (below) asks a running agent to stop
//! pick      pick                       the history in a full-screen picker
//! manual    completions, man           the command line describing itself
//! ```
//!
//! The commands on the device's data ([`DataCommand`]) run against an open engine: here, under
//! the home's lock, when no agent runs; in the agent when one holds the database (they travel
//! over its socket, see [`crate::ipc`]; the agent runs them through [`execute_in_agent`]).

pub(crate) mod agent;
pub(crate) mod alias;
pub(crate) mod clip;
pub(crate) mod collection;
pub(crate) mod config;
pub(crate) mod devices;
pub(crate) mod doctor;
pub(crate) mod key;
pub(crate) mod leave;
pub(crate) mod manual;
pub(crate) mod pair;
pub(crate) mod pause;
pub(crate) mod pick;
pub(crate) mod service;
pub(crate) mod setup;
pub(crate) mod sync;

use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use crate::cli::{DataCommand, DevicesAction, PasteArgs, RotateArgs};
use crate::commands::clip::Mark;
use crate::config::{Applies, Config};
use crate::device::{self, Changed, Device, InAgent};
use crate::error::Failure;
use crate::home::Home;
use crate::ipc::{self, Format};
use crate::output::{Done, Output};
use crate::pause::Pause;

/// Reads standard input and makes paths absolute, so the command can run in another process.
pub(crate) fn prepare(command: &mut DataCommand, config: &Config) -> Result<(), Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::new(format!("the current folder is unreadable: {e}")))?;
    match command {
        DataCommand::Copy(args) => clip::prepare_copy(args, &cwd, config.settings.place_copies),
        // Placing is what `ferry pick` does with the clip it chose.
        DataCommand::Paste(PasteArgs {
            id: Some(id),
            place: true,
            ..
        }) => {
            *command = DataCommand::Place { id: id.clone() };
            Ok(())
        }
        DataCommand::Paste(args) => {
            clip::prepare_paste(args, &cwd);
            Ok(())
        }
        // `ferry devices remove X` is `ferry key rotate --revoke X`.
        DataCommand::Devices {
            action:
                Some(DevicesAction::Remove {
                    devices,
                    include,
                    passphrase,
                    yes,
                }),
        } => {
            let mut rotate = RotateArgs {
                revoke: std::mem::take(devices),
                include: std::mem::take(include),
                passphrase: *passphrase,
                yes: *yes,
                ..RotateArgs::default()
            };
            read_new_passphrase(&mut rotate)?;
            *command = DataCommand::Devices {
                action: Some(DevicesAction::Rotate(rotate)),
            };
            Ok(())
        }
        // The storage handed to the devices is read here, where the person typed the
        // command.
        DataCommand::Devices {
            action: Some(DevicesAction::Rotate(args)),
        } => {
            if (args.move_to.is_some() || args.new_credentials) && args.storage.is_none() {
                args.storage = Some(crate::generation::storage_given(
                    args.move_to.as_deref(),
                    config,
                )?);
            }
            read_new_passphrase(args)
        }
        _ => Ok(()),
    }
}

/// Reads the new passphrase a rotation asks for, here where the person typed the command.
fn read_new_passphrase(args: &mut RotateArgs) -> Result<(), Failure> {
    if args.passphrase && args.new_passphrase.is_none() {
        let passphrase = crate::prompt::new_passphrase_in("FERRY_NEW_PASSPHRASE")?;
        args.new_passphrase = Some(crate::cli::Hidden(passphrase.to_string()));
    }
    Ok(())
}

/// [`execute`] as the agent takes it (see `crate::agent::Execute`).
pub(crate) fn execute_in_agent<'a>(
    device: &'a mut Device,
    command: DataCommand,
    out: &'a mut Output,
    agent: &'a InAgent,
) -> Pin<Box<dyn Future<Output = Result<Changed, Failure>> + 'a>> {
    Box::pin(execute(device, command, out, Some(agent)))
}

/// Runs one command on the open device; `agent` says what the agent knows when it runs it.
pub(crate) async fn execute(
    device: &mut Device,
    command: DataCommand,
    out: &mut Output,
    agent: Option<&InAgent>,
) -> Result<Changed, Failure> {
    let no_change = |result: Result<(), Failure>| result.map(|()| Changed::No);
    let mark = |device: &mut Device, id: &str, mark: Mark, out: &mut Output| {
        clip::mark(device, id, mark, out).map(|()| Changed::Yes)
    };
    let changed = match command {
        DataCommand::Copy(args) => {
            out.report(&clip::copy(device, args)?);
            Ok(Changed::Yes)
        }
        DataCommand::Paste(args) => no_change(clip::paste(device, args, out).await),
        DataCommand::History(args) => {
            out.report(&clip::history(device, args)?);
            Ok(Changed::No)
        }
        DataCommand::Trash => {
            out.report(&clip::trash(device));
            Ok(Changed::No)
        }
        DataCommand::Pin { id } => mark(device, &id, Mark::Pin, out),
        DataCommand::Unpin { id } => mark(device, &id, Mark::Unpin, out),
        DataCommand::Rm { id } => mark(device, &id, Mark::Rm, out),
        DataCommand::Restore { id } => mark(device, &id, Mark::Restore, out),
        DataCommand::Collection { action } => collection::run(device, action, out),
        DataCommand::Alias { action } => alias::run(device, action, out),
        DataCommand::Config { action } => config::run(device, action, out),
        DataCommand::Sync {
            dry_run,
            retry_quarantined,
        } => no_change(sync::sync(device, dry_run, retry_quarantined, out).await),
        DataCommand::Status => no_change(sync::status(device, agent, out)),
        DataCommand::Devices { action } => devices::run(device, action, out).await,
        DataCommand::Log(args) => no_change(sync::log(device, args, out)),
        DataCommand::Pause { duration } => no_change(pause::pause(&device.home, duration, out)),
        DataCommand::Resume => no_change(pause::resume(&device.home, out)),
        DataCommand::Matches { query, limit } => {
            out.report(&pick::matches(device, &query, limit)?);
            Ok(Changed::No)
        }
        DataCommand::Stop => {
            out.note(NO_AGENT);
            Ok(Changed::No)
        }
        DataCommand::Uploading => {
            // Without an agent nothing goes out in the background: a command uploads its own.
            out.report(&crate::progress::Uploading::default());
            Ok(Changed::No)
        }
        DataCommand::Place { id } => {
            let id = clip::reuse(device, &id)?;
            let line = format!("Placed clip {} on the clipboard.", id.short());
            out.done(&Done::new("placed", id, line));
            Ok(Changed::Yes)
        }
    }?;
    if changed == Changed::Yes {
        held_while_paused(device, out);
    }
    Ok(changed)
}

/// Says, while sync is paused, that what a command recorded stays here until it resumes.
pub(crate) fn held_while_paused(device: &Device, out: &mut Output) {
    if let Some(paused) = Pause::current(&device.home) {
        out.note(format!(
            "sync is {paused}: this is kept on this device and goes out on resume"
        ));
    }
}

/// What `ferry stop` says when it finds nothing to stop.
const NO_AGENT: &str = "no agent is running for this home";

/// How long a data command waits for another command (or a starting agent) to let go of the
/// device.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Runs a data command here, or in the agent when one holds the home.
pub(crate) async fn run_data(
    home: Home,
    config: Config,
    mut command: DataCommand,
    out: &mut Output,
) -> Result<(), Failure> {
    // Settings in files need neither the engine nor an agent, when none runs: a running agent
    // writes them itself and takes them up at once.
    if let DataCommand::Config { action } = &command
        && config::is_local(action, &config)
        && (config.settings.store.is_none() || device::try_lock(&home)?.is_some())
    {
        config::local(&config, action.clone(), out)?;
        if let Some((key, synced)) = config::changes(action) {
            let now = config.reread(&[])?;
            out.done(&now.now(key, synced, Applies::WhenTheAgentStarts));
        }
        return Ok(());
    }
    prepare(&mut command, &config)?;
    devices::confirm_vouch(&home, &config, &mut command).await?;
    devices::confirm_rotation(&home, &config, &mut command).await?;
    let meter = crate::progress::meter(out.json);
    // The lock is free, or an agent answers on its socket; else another command (or an
    // agent still starting, which opens its socket last) holds the lock: wait for either.
    let waited = std::time::Instant::now();
    let lock = loop {
        if let Some(lock) = device::try_lock(&home)? {
            break lock;
        }
        if let Some(reply) =
            ipc::send_watching(&home, &command, Format::of(out), meter.clone()).await?
        {
            out.stdout = reply.stdout;
            out.stderr = reply.stderr;
            if reply.code != 0 {
                return Err(Failure {
                    message: reply.error,
                    code: reply.code,
                });
            }
            // A large file or image goes out from the agent: the bar follows it there.
            if let (DataCommand::Copy(args), Some(meter)) = (&command, &meter)
                && (args.file.is_some() || args.image.is_some())
            {
                crate::progress::follow_agent(&home, meter).await;
            }
            return Ok(());
        }
        if waited.elapsed() >= LOCK_WAIT {
            return Err(device::held_too_long(&home, LOCK_WAIT));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Pausing needs neither the engine nor the storage (which may be why sync is paused).
    match command {
        DataCommand::Pause { duration } => return pause::pause(&home, duration, out),
        DataCommand::Resume => return pause::resume(&home, out),
        DataCommand::Stop => {
            out.note(NO_AGENT);
            return Ok(());
        }
        _ => {}
    }
    let paused = Pause::current(&home).is_some();
    let mut device = Device::open(home, config, lock, device::INTERACTIVE).await?;
    device.engine.on_progress(meter);
    // Without an agent keeping this device current, look for news first (one listing).
    let fetch_first = !paused
        && !matches!(
            command,
            DataCommand::Copy(_)
                | DataCommand::Paste(_)
                | DataCommand::Sync { .. }
                | DataCommand::Log(_)
                | DataCommand::Devices {
                    action: Some(DevicesAction::Attest { .. })
                }
        );
    if fetch_first && let Err(error) = device.engine.fetch().await {
        out.note(format!(
            "warning: could not fetch new data ({error}); showing what this device has"
        ));
    }
    // A new key that the fetch found is followed before anything else.
    match crate::generation::follow(&mut device).await {
        Ok(Some(moved)) => out.note(moved.to_string()),
        Ok(None) => {}
        Err(failure) => out.note(format!("warning: {}", failure.message)),
    }
    let setting = match &command {
        DataCommand::Config { action } => {
            config::changes(action).map(|(key, synced)| (key.to_owned(), synced))
        }
        _ => None,
    };
    // What `ferry copy` records goes on this clipboard too, once recorded.
    let copied = match &command {
        DataCommand::Copy(args) if args.place => Some(crate::clipboard::of_copy(args)),
        _ => None,
    };
    // No agent serves the clipboard: a process of its own does.
    if let DataCommand::Place { id } = &command {
        crate::clipboard::place_detached(&crate::clipboard::chosen(&mut device, id).await?)?;
    }
    let changed = execute(&mut device, command, out, None).await?;
    // A rename fetched (or made) just now.
    if let Err(failure) = device.follow_own_name() {
        out.note(format!("warning: {}", failure.message));
    }
    if let Some(clip) = copied
        && let Err(failure) = clip.and_then(|clip| match clip {
            Some(clip) => crate::clipboard::place_detached(&clip),
            None => Ok(()),
        })
    {
        out.note(format!("warning: recorded; {}", failure.message));
    }
    if changed == Changed::Yes {
        send_now(&mut device, out).await;
    }
    if let Some((key, synced)) = setting {
        let values = device::synced_settings(&device.engine, &device.config);
        let now = device.config.reread(&values)?;
        out.done(&now.now(&key, synced, Applies::WhenTheAgentStarts));
    }
    Ok(())
}

/// Sends what a command recorded now, when no agent runs: uploaded if the storage answers
/// (and announced on the relay), else kept for the next `ferry sync` or the agent; while sync
/// is paused, kept until it resumes.
pub(crate) async fn send_now(device: &mut Device, out: &mut Output) {
    if Pause::current(&device.home).is_some() {
        return;
    }
    match device.engine.upload().await {
        Ok(report) => device.announce(&report.hints).await,
        Err(error) => out.note(format!(
            "recorded on this device; it goes out with the next `ferry sync` or the agent \
             (the upload failed: {error})"
        )),
    }
}
