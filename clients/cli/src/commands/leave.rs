//! `ferry leave`: this device forgets its repository. The history is exported to a file or
//! dropped (asked on a terminal); the others are told it left (a synced `left/<device id>`
//! setting, when the storage answers); then its keys, credentials, storage and relay settings
//! and database go, so that `ferry init` or `ferry join` set it up again.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::DataKind;
use ferry_secrets::Secret;
use serde::Serialize;

use crate::cli::{DataCommand, LeaveArgs};
use crate::commands::clip::Clips;
use crate::config::{self, Config};
use crate::device::{self, Device};
use crate::error::{Failure, file_error};
use crate::held::Role;
use crate::home::Home;
use crate::ipc::{self, Format};
use crate::output::{Output, counted};
use crate::pause::now_ms;
use crate::prompt;

/// What `ferry leave` did.
#[derive(Serialize)]
pub(crate) struct Left {
    device_id: String,
    store: String,
    /// Clips in the history when it left.
    clips: usize,
    /// Where they were exported, when they were.
    exported_to: Option<PathBuf>,
    /// Whether the other devices were told (the storage answered).
    told_the_others: bool,
    /// A folder repository this device held, which stays where it is.
    kept_folder: Option<PathBuf>,
}

impl fmt::Display for Left {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "This device left the repository at {}: its keys, credentials, settings and database \
             are gone from here.",
            self.store
        )?;
        match &self.exported_to {
            Some(path) => writeln!(
                f,
                "Its history ({}) is in {}.",
                counted(self.clips as u64, "clip"),
                path.display()
            )?,
            None => writeln!(
                f,
                "Its history ({}) was dropped.",
                counted(self.clips as u64, "clip")
            )?,
        }
        match self.told_the_others {
            true => writeln!(f, "The other devices show it as left.")?,
            false => writeln!(
                f,
                "The other devices were not told (the storage did not answer): they list it as \
                 before."
            )?,
        }
        if let Some(folder) = &self.kept_folder {
            writeln!(
                f,
                "The repository itself stays in {}. The devices that reached it through this one \
                 keep their history but cannot sync with it any more: set them up on another \
                 repository (`ferry leave` there, then `ferry init` or `ferry join`).",
                folder.display()
            )?;
        }
        writeln!(
            f,
            "Set this device up again with `ferry init --store URL` or `ferry join`."
        )
    }
}

/// What happens to the history.
enum History {
    Export(PathBuf),
    Drop,
}

/// `ferry leave`.
pub(crate) async fn run(
    home: Home,
    config: Config,
    args: LeaveArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let Some(store) = config.settings.store.clone() else {
        return Err(Failure::new(format!(
            "this device is not set up (no store in {}): there is nothing to leave",
            config.user_file.display()
        )));
    };
    if ipc::send(&home, &DataCommand::Status, Format::Json)
        .await?
        .is_some()
    {
        return Err(Failure::new(
            "the agent is running on this repository: stop it first (`ferry stop`; with the \
             service installed, `ferry service uninstall`), then leave",
        ));
    }
    let lock = device::lock(&home, Duration::from_secs(30))?;
    let opened = Device::open(home.clone(), config.clone(), lock, device::INTERACTIVE).await;
    let mut device = match opened {
        Ok(device) => device,
        // The repository cannot be opened (gone from its storage, or its key replaced without
        // this device): with the history dropped, the device leaves all the same.
        Err(failure) if args.drop_history => {
            forget(&home, &config)?;
            out.note(format!(
                "the repository could not be opened ({failure}): this device left without \
                 telling the others"
            ));
            out.report(&Left {
                device_id: String::new(),
                store,
                clips: 0,
                exported_to: None,
                told_the_others: false,
                kept_folder: None,
            });
            return Ok(());
        }
        Err(failure) => {
            return Err(Failure::new(format!(
                "{failure}. To leave all the same, without this device's history (which cannot \
                 be read without its repository): `ferry leave --drop-history`"
            )));
        }
    };
    let clips = device.engine.state_for(DataKind::Clips).stats().clips;
    let history = history(&args, &home, clips)?;
    let kept_folder = match &device.held {
        Role::Holds(_) => Some(held_folder(&store, &args)?),
        _ => None,
    };
    let exported_to = match history {
        History::Export(path) => {
            export(&device, &path)?;
            Some(path)
        }
        History::Drop => None,
    };
    let told_the_others = tell_the_others(&mut device).await;
    let device_id = device.engine.device().to_string();
    drop(device);
    forget(&home, &config)?;
    out.report(&Left {
        device_id,
        store,
        clips,
        exported_to,
        told_the_others,
        kept_folder,
    });
    Ok(())
}

/// The history's fate: from the flags, else asked on a terminal.
fn history(args: &LeaveArgs, home: &Home, clips: usize) -> Result<History, Failure> {
    if let Some(path) = &args.export {
        return Ok(History::Export(path.clone()));
    }
    if args.drop_history {
        return Ok(History::Drop);
    }
    if !prompt::interactive() {
        return Err(Failure::usage(
            "say what happens to this device's history: --export FILE keeps it in FILE, \
             --drop-history drops it",
        ));
    }
    let date = chrono::Local::now().format("%Y-%m-%d");
    let suggested = home
        .data
        .parent()
        .unwrap_or(&home.data)
        .join(format!("ferry-history-{date}.json"));
    let answer = prompt::line(
        &format!(
            "Keep this device's history ({})? It is exported to {} (Enter), to another file \
             (type its path), or dropped (type `drop`): ",
            counted(clips as u64, "clip"),
            suggested.display()
        ),
        "the answer",
    )?;
    Ok(match answer.trim() {
        "" => History::Export(suggested),
        "drop" => History::Drop,
        path => History::Export(PathBuf::from(path)),
    })
}

/// The folder of a repository this device holds, once the person knows the others lose their
/// way to it.
fn held_folder(store: &str, args: &LeaveArgs) -> Result<PathBuf, Failure> {
    let folder = match device::parse_store(store)? {
        ferry_store::StoreUrl::Folder(folder) => folder,
        _ => PathBuf::from(store),
    };
    if args.yes {
        return Ok(folder);
    }
    let warning = format!(
        "this device holds the repository in {}: the devices that reach it through this one \
         cannot sync once it leaves (the folder itself stays)",
        folder.display()
    );
    if !prompt::interactive() {
        return Err(Failure::usage(format!(
            "{warning}; add --yes to leave all the same"
        )));
    }
    let answer = prompt::line(&format!("Note: {warning}. Leave? [y/N] "), "the answer")?;
    match answer.trim() {
        "y" | "Y" | "yes" => Ok(folder),
        _ => Err(Failure::new("nothing was changed")),
    }
}

/// Writes the history, as `ferry history --json` lists it, to `path` (a new file).
fn export(device: &Device, path: &Path) -> Result<(), Failure> {
    let state = device.engine.state_for(DataKind::Clips);
    let clips = Clips::new(device, &state.history(None, usize::MAX));
    let json = serde_json::to_vec_pretty(&clips)
        .map_err(|e| Failure::new(format!("the history could not be written out: {e}")))?;
    let mut file = std::fs::File::create_new(path).map_err(file_error(path, "created"))?;
    std::io::Write::write_all(&mut file, &json).map_err(file_error(path, "written"))?;
    file.sync_all().map_err(file_error(path, "written"))
}

/// Records that this device left and sends it; whether the storage took it.
async fn tell_the_others(device: &mut Device) -> bool {
    // `left/<device id>` = when (ms); only the device itself may say so.
    let key = format!("{}{}", ferry_core::LEFT_PREFIX, device.engine.device());
    let at = now_ms().to_string();
    let recorded = device.engine.record(DataKind::Settings, |r, _, now| {
        r.set_setting(key, Some(at), now)
    });
    if recorded.is_err() {
        return false;
    }
    match device.engine.upload().await {
        Ok(report) => {
            device.announce(&report.hints).await;
            true
        }
        Err(_) => false,
    }
}

/// Removes this device's part of the repository: secrets, the settings that name the
/// repository, the database and the agent's small files.
fn forget(home: &Home, config: &Config) -> Result<(), Failure> {
    let secrets = device::secrets(home, config);
    for secret in Secret::ALL {
        secrets.delete(secret)?;
    }
    for key in ["store", "relay", "s3.access_key_id"] {
        config::write_user(&config.user_file, key, None)?;
    }
    let database = home.database();
    let mut files = vec![
        home.applied_file(),
        home.pause_file(),
        home.lan_peers_file(),
        home.labels_file(),
        home.socket(),
    ];
    for suffix in ["-wal", "-shm"] {
        let mut name = database.clone().into_os_string();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files.push(database);
    for file in files {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(&file, "removed")(e)),
        }
    }
    Ok(())
}
