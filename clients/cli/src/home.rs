//! Where a device keeps its state: one folder (`--home` / `FERRY_HOME`) for everything, or the
//! platform's folders by default (XDG on Linux and the BSDs, AppData on Windows, Application
//! Support on macOS).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Failure, file_error};

/// The data folder and the config file where a home is not given.
#[cfg(windows)]
fn platform_folders() -> Result<(PathBuf, PathBuf), Failure> {
    let folder = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|p| p.join("Ferry"))
            .ok_or_else(|| Failure::new(format!("{var} is not set: pass --home DIR")))
    };
    Ok((
        folder("LOCALAPPDATA")?,
        folder("APPDATA")?.join("config.toml"),
    ))
}

#[cfg(target_os = "macos")]
fn platform_folders() -> Result<(PathBuf, PathBuf), Failure> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| Failure::new("HOME is not set: pass --home DIR"))?;
    let folder = home.join("Library/Application Support/Ferry");
    Ok((folder.clone(), folder.join("config.toml")))
}

#[cfg(not(any(windows, target_os = "macos")))]
fn platform_folders() -> Result<(PathBuf, PathBuf), Failure> {
    let user_home = std::env::var_os("HOME").map(PathBuf::from);
    let xdg = |var: &str, fallback: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| user_home.as_ref().map(|h| h.join(fallback)))
    };
    let data = xdg("XDG_DATA_HOME", ".local/share")
        .ok_or_else(|| Failure::new("neither HOME nor XDG_DATA_HOME is set: pass --home DIR"))?;
    let config_dir = xdg("XDG_CONFIG_HOME", ".config")
        .ok_or_else(|| Failure::new("neither HOME nor XDG_CONFIG_HOME is set: pass --home DIR"))?;
    Ok((data.join("ferry"), config_dir.join("ferry/config.toml")))
}

/// The files of one device.
#[derive(Debug, Clone)]
pub(crate) struct Home {
    /// The folder holding the database, the lock, the agent's socket and the file secrets.
    pub(crate) data: PathBuf,
    /// The user config file.
    pub(crate) config: PathBuf,
}

impl Home {
    /// `home` when given, else the platform's folders: `$XDG_DATA_HOME/ferry` and
    /// `$XDG_CONFIG_HOME/ferry/config.toml` on Linux and the BSDs, `%LOCALAPPDATA%\Ferry` (the
    /// database stays with the machine) and `%APPDATA%\Ferry\config.toml` on Windows,
    /// `~/Library/Application Support/Ferry` on macOS.
    pub(crate) fn locate(home: Option<&Path>, config: Option<&Path>) -> Result<Home, Failure> {
        let (data, default_config) = match home {
            Some(home) => (home.to_owned(), home.join("config.toml")),
            None => platform_folders()?,
        };
        Ok(Home {
            data,
            config: config.map(Path::to_owned).unwrap_or(default_config),
        })
    }

    /// Creates the data folder, private to the user.
    pub(crate) fn create(&self) -> Result<(), Failure> {
        fs::create_dir_all(&self.data).map_err(file_error(&self.data, "created"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&self.data, fs::Permissions::from_mode(0o700));
        }
        Ok(())
    }

    pub(crate) fn database(&self) -> PathBuf {
        self.data.join("ferry.db")
    }

    pub(crate) fn secrets_file(&self) -> PathBuf {
        self.data.join("secrets.json")
    }

    /// Held by whoever has the database open: the agent for its whole run, a command for its
    /// own.
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.data.join("ferry.lock")
    }

    /// Where a running agent takes commands: its socket, or on Windows a file naming its pipe.
    pub(crate) fn socket(&self) -> PathBuf {
        self.data.join("agent.sock")
    }

    /// The embedded default repository: a folder beside the database.
    pub(crate) fn default_store(&self) -> PathBuf {
        self.data.join("store")
    }

    /// The last remote clip the agent placed or saw, so a restart does not place it again.
    pub(crate) fn applied_file(&self) -> PathBuf {
        self.data.join("applied-clip")
    }

    /// Whether sync is paused, and until when (`ferry pause`).
    pub(crate) fn pause_file(&self) -> PathBuf {
        self.data.join("paused.json")
    }

    /// Where nearby devices were reached, newest first, one address a line.
    pub(crate) fn lan_peers_file(&self) -> PathBuf {
        self.data.join("lan-peers")
    }

    /// What this device calls other devices (`ferry devices rename`), never synced.
    pub(crate) fn labels_file(&self) -> PathBuf {
        self.data.join("labels.json")
    }
}

/// Writes `bytes` to `path` whole or not at all: into a new temporary file beside it (a random
/// name, created exclusively), synced, then renamed over it. A reader sees the old file or the
/// new one, never half of one, even across a crash.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(file_error(parent, "created"))?;
    let written = tempfile::Builder::new()
        .prefix(".ferry-")
        .suffix(".tmp")
        .tempfile_in(parent)
        .and_then(|mut temporary| {
            std::io::Write::write_all(&mut temporary, bytes)?;
            temporary.as_file().sync_all()?;
            temporary.persist(path).map_err(|e| e.error)
        });
    written.map(drop).map_err(file_error(path, "written"))
}
