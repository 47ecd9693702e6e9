//! `ferry-secrets` keeps a device's secrets — the sync key, the S3 secret access key, the WebDAV
//! password — out of config files and logs.
//!
//! ```text
//! Secrets::keychain(account)  the OS keychain (Secret Service, macOS Keychain, Windows
//!                             Credential Manager) through `keyring`: the default
//! Secrets::file(path)         a JSON file with mode 0600, chosen explicitly where no keychain
//!                             runs (servers, containers, tests), with a warning
//! ```
//!
//! Values are returned in [`Zeroizing`] strings, and no error message ever quotes one. When the
//! keychain cannot be reached, the error names both ways out: unlock or start a keychain, or
//! choose the file store.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The keychain service under which every Ferry secret is filed.
const SERVICE: &str = "ferry";

/// The secrets a device may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Secret {
    /// The repository's sync key, as its recovery code.
    SyncKey,
    /// The S3 secret access key.
    S3SecretKey,
    /// The WebDAV password.
    WebDavPassword,
    /// This device's identity: the private keys it signs with and others seal to.
    DeviceIdentity,
    /// The next sync key, as its recovery code, while this device makes a new generation of
    /// the repository (kept so that a rotation stopped half-way resumes with the same key).
    NextSyncKey,
    /// The key and storage of the next generation, while this device moves to a repository
    /// in other storage or reached with new credentials (kept so that a move stopped
    /// half-way finishes when the device opens again).
    NextStorage,
}

impl Secret {
    /// Every secret, for listing and removal.
    pub const ALL: [Secret; 6] = [
        Secret::SyncKey,
        Secret::S3SecretKey,
        Secret::WebDavPassword,
        Secret::DeviceIdentity,
        Secret::NextSyncKey,
        Secret::NextStorage,
    ];

    /// Its name in the keychain and in the file.
    pub fn name(self) -> &'static str {
        match self {
            Secret::SyncKey => "sync-key",
            Secret::S3SecretKey => "s3-secret-access-key",
            Secret::WebDavPassword => "webdav-password",
            Secret::DeviceIdentity => "device-identity",
            Secret::NextSyncKey => "next-sync-key",
            Secret::NextStorage => "next-storage",
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Secret::SyncKey => "the sync key",
            Secret::S3SecretKey => "the S3 secret access key",
            Secret::WebDavPassword => "the WebDAV password",
            Secret::DeviceIdentity => "this device's identity key",
            Secret::NextSyncKey => "the next sync key (of a rotation in progress)",
            Secret::NextStorage => "the key and storage of a move in progress",
        })
    }
}

/// Why a secret could not be read or written. Never quotes a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// No keychain answers (no Secret Service on D-Bus, or no D-Bus session).
    #[error(
        "the OS keychain is not available ({detail}); start or unlock it (on Linux a Secret \
         Service such as GNOME Keyring or KeePassXC), or keep the secrets in a 0600 file under \
         the Ferry home with `--secret-store file` (or FERRY_SECRET_STORE=file)"
    )]
    KeychainUnavailable {
        /// What the keychain said.
        detail: String,
    },
    /// The keychain refused: locked, or the user declined.
    #[error(
        "the OS keychain refused access ({detail}); unlock it and try again, or keep the secrets \
         in a 0600 file under the Ferry home with `--secret-store file` (or \
         FERRY_SECRET_STORE=file)"
    )]
    KeychainLocked {
        /// What the keychain said.
        detail: String,
    },
    /// The keychain failed otherwise.
    #[error("the OS keychain failed while handling {secret}: {detail}")]
    Keychain {
        /// Which secret.
        secret: Secret,
        /// What failed.
        detail: String,
    },
    /// The secrets file could not be read or written.
    #[error("the secrets file {path} could not be {action}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// "read" or "written".
        action: &'static str,
        /// The system error.
        detail: String,
    },
    /// The secrets file is readable by others.
    #[error(
        "the secrets file {path} can be read by other users (mode {mode:o}); make it private \
         with `chmod 600 {path}`"
    )]
    FileOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The secrets file is not what Ferry writes.
    #[error(
        "the secrets file {path} is damaged ({detail}); restore it from a backup, or remove it \
         and run `ferry join` again with the recovery code"
    )]
    FileDamaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, without quoting the content.
        detail: String,
    },
}

/// Where secrets live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The OS keychain.
    Keychain,
    /// A private file.
    File(PathBuf),
}

/// One device's secrets, in one backend.
#[derive(Debug, Clone)]
pub struct Secrets {
    backend: Backend,
    /// Tells this device's entries from another profile's in the one keychain.
    account: String,
}

impl Secrets {
    /// Secrets in the OS keychain, filed under `account` (one per Ferry home).
    pub fn keychain(account: impl Into<String>) -> Secrets {
        Secrets {
            backend: Backend::Keychain,
            account: account.into(),
        }
    }

    /// Secrets in the private file at `path`.
    pub fn file(path: impl Into<PathBuf>) -> Secrets {
        Secrets {
            backend: Backend::File(path.into()),
            account: String::new(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Where the secrets are, for messages: "the OS keychain" or the file's path.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Keychain => "the OS keychain".to_owned(),
            Backend::File(path) => format!("the file {}", path.display()),
        }
    }

    /// Reads a secret; `None` when it was never stored.
    pub fn get(&self, secret: Secret) -> Result<Option<Zeroizing<String>>, SecretsError> {
        match &self.backend {
            Backend::Keychain => match self.entry(secret)?.get_password() {
                Ok(value) => Ok(Some(Zeroizing::new(value))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(error) => Err(keychain_error(secret, error)),
            },
            Backend::File(path) => {
                let mut values = read_file(path)?;
                Ok(values.remove(secret.name()).map(Zeroizing::new))
            }
        }
    }

    /// Stores a secret, replacing any earlier value.
    pub fn set(&self, secret: Secret, value: &str) -> Result<(), SecretsError> {
        match &self.backend {
            Backend::Keychain => self
                .entry(secret)?
                .set_password(value)
                .map_err(|error| keychain_error(secret, error)),
            Backend::File(path) => {
                let mut values = read_file(path)?;
                values.insert(secret.name().to_owned(), value.to_owned());
                write_file(path, &values)
            }
        }
    }

    /// Removes a secret; removing one that is not there is not an error.
    pub fn delete(&self, secret: Secret) -> Result<(), SecretsError> {
        match &self.backend {
            Backend::Keychain => match self.entry(secret)?.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(error) => Err(keychain_error(secret, error)),
            },
            Backend::File(path) => {
                let mut values = read_file(path)?;
                if values.remove(secret.name()).is_some() {
                    write_file(path, &values)?;
                }
                Ok(())
            }
        }
    }

    fn entry(&self, secret: Secret) -> Result<keyring::Entry, SecretsError> {
        let user = format!("{}@{}", secret.name(), self.account);
        keyring::Entry::new(SERVICE, &user).map_err(|error| keychain_error(secret, error))
    }
}

fn keychain_error(secret: Secret, error: keyring::Error) -> SecretsError {
    match error {
        keyring::Error::NoDefaultStore | keyring::Error::PlatformFailure(_) => {
            SecretsError::KeychainUnavailable {
                detail: keychain_detail(&error),
            }
        }
        keyring::Error::NoStorageAccess(_) => SecretsError::KeychainLocked {
            detail: keychain_detail(&error),
        },
        // These two carry the stored bytes: name the problem, never the bytes.
        keyring::Error::BadEncoding(_) | keyring::Error::BadDataFormat(..) => {
            SecretsError::Keychain {
                secret,
                detail: "the stored value is not text Ferry wrote".to_owned(),
            }
        }
        other => SecretsError::Keychain {
            secret,
            detail: keychain_detail(&other),
        },
    }
}

fn keychain_detail(error: &keyring::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, SecretsError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => {
            return Err(SecretsError::File {
                path: path.to_owned(),
                action: "read",
                detail: error.to_string(),
            });
        }
    };
    check_private(path)?;
    serde_json::from_slice(&bytes).map_err(|error| SecretsError::FileDamaged {
        path: path.to_owned(),
        detail: damage(&error),
    })
}

/// What is wrong with the file, in words that never quote it: serde_json's own messages do
/// ("invalid type: string \"…\"", "invalid value: integer `…`"), and the file holds secrets.
fn damage(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Io => "it could not be read",
        serde_json::error::Category::Syntax => "it is not JSON",
        serde_json::error::Category::Eof => "it ends too early",
        serde_json::error::Category::Data => "it is not a map of secret names to text",
    };
    format!("{what}, at line {} column {}", error.line(), error.column())
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), SecretsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|error| SecretsError::File {
            path: path.to_owned(),
            action: "read",
            detail: error.to_string(),
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::FileOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), SecretsError> {
    Ok(())
}

/// Writes the whole file: a new private temporary file beside it (a random name, created
/// exclusively with mode 0600, so nothing already there is reused), synced, then renamed over it.
fn write_file(path: &Path, values: &BTreeMap<String, String>) -> Result<(), SecretsError> {
    let failed = |error: io::Error| SecretsError::File {
        path: path.to_owned(),
        action: "written",
        detail: error.to_string(),
    };
    let json =
        Zeroizing::new(serde_json::to_vec_pretty(values).map_err(|e| failed(io::Error::other(e)))?);
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(failed)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".secrets-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o600));
    }
    // Removed on drop if anything below fails.
    let mut temporary = builder.tempfile_in(parent).map_err(failed)?;
    temporary.write_all(&json).map_err(failed)?;
    temporary.as_file().sync_all().map_err(failed)?;
    temporary.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_and_stays_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let secrets = Secrets::file(&path);
        assert_eq!(secrets.get(Secret::SyncKey).unwrap(), None);
        secrets.set(Secret::SyncKey, "code-one").unwrap();
        secrets.set(Secret::WebDavPassword, "hunter2").unwrap();
        secrets.set(Secret::SyncKey, "code-two").unwrap();
        assert_eq!(
            secrets
                .get(Secret::SyncKey)
                .unwrap()
                .as_deref()
                .map(String::as_str),
            Some("code-two")
        );
        secrets.delete(Secret::WebDavPassword).unwrap();
        secrets.delete(Secret::WebDavPassword).unwrap();
        assert_eq!(secrets.get(Secret::WebDavPassword).unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let secrets = Secrets::file(&path);
        secrets.set(Secret::SyncKey, "very-secret-value").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = secrets.get(Secret::SyncKey).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SecretsError::FileOpen { mode: 0o644, .. }));
        assert!(message.contains("chmod 600"), "{message}");
        assert!(!message.contains("very-secret-value"));
    }

    #[test]
    fn a_damaged_file_is_named_without_its_content() {
        // Cut short, a bare string (a code pasted over the file), a value of the wrong type, a
        // list: serde_json's own messages quote the last three.
        let cases: [&[u8]; 5] = [
            b"{\"sync-key\": \"ABCD-very-secret",
            b"\"ABCD1-very-secret-EFGH2\"",
            b"{\"sync-key\": 424242424242}",
            b"{\"sync-key\": {\"very-secret\": 1}}",
            b"[\"very-secret\"]",
        ];
        for content in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("secrets.json");
            fs::write(&path, content).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            }
            let error = Secrets::file(&path).get(Secret::SyncKey).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, SecretsError::FileDamaged { .. }),
                "{message}"
            );
            assert!(
                !message.contains("very-secret") && !message.contains("424242"),
                "{message}"
            );
            assert!(message.contains("at line 1 column"), "{message}");
        }
    }

    /// A temporary file someone left (or planted) where an older version wrote its own is never
    /// reused: its mode would become the secrets file's.
    #[cfg(unix)]
    #[test]
    fn a_leftover_temporary_file_does_not_leak_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let planted = dir.path().join("secrets.tmp");
        fs::write(&planted, b"").unwrap();
        fs::set_permissions(&planted, fs::Permissions::from_mode(0o666)).unwrap();
        Secrets::file(&path)
            .set(Secret::SyncKey, "very-secret-value")
            .unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read(&planted).unwrap(),
            b"",
            "the planted file was used"
        );
        // Nothing else is left beside the file.
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["secrets.json", "secrets.tmp"]);
    }
}
