//! `ferry-test-kit`: what Ferry's tests and benchmarks share. Real storage servers on 127.0.0.1
//! ([`servers`]), the list of backends every storage test runs on ([`Backend`]), a running
//! backend with what it takes to open it ([`Served`]), and [`per_backend!`], which makes one
//! test case per backend so that one failing backend does not hide the others; and
//! [`identity_for`], a device identity that stays the same each time a test opens a database;
//! a LAN of network namespaces for the tests of nearby devices ([`netns`]); certificates for TLS
//! servers ([`tls`]); the pub/sub brokers relay instances share publishes through
//! ([`brokers`]); the failures every storage backend must report alike ([`failures`]); a
//! deterministic random generator ([`random::Rng`]); and waiting for what a
//! test caused ([`eventually`], [`eventually_async`]) instead of sleeping.
//!
//! Never a mock: the S3 server checks SigV4 signatures, the WebDAV server speaks the protocol
//! over real sockets, and the folder is a real folder.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod brokers;
pub mod failures;
pub mod netns;
pub mod random;
pub mod servers;
pub mod tls;
mod wait;

pub use wait::{eventually, eventually_async};

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use ferry_protocol::Identity;
use ferry_store::url::{S3Location, StoreUrl, WebDavLocation};
use ferry_store::{Access, Store};

/// The identity of the device whose database is at `database`: made from the path, so a test
/// that opens the same database again (or in a child process) signs as the same device, and
/// each database is a device of its own. Never for real devices: their identities are random.
pub fn identity_for(database: &Path) -> Identity {
    let mut secret = [0u8; Identity::SECRET_LEN];
    for (i, chunk) in secret.chunks_mut(8).enumerate() {
        let mut hasher = DefaultHasher::new();
        (database, i).hash(&mut hasher);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    Identity::from_secret_bytes(&secret)
}

/// A kind of storage a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A plain folder.
    Folder,
    /// An S3-compatible bucket ([`servers::s3`]).
    S3,
    /// A WebDAV server behind Basic authentication ([`servers::webdav`]).
    WebDav,
}

/// Every backend, in the order tests run them.
pub const BACKENDS: [Backend; 3] = [Backend::Folder, Backend::S3, Backend::WebDav];

/// What keeps a backend alive, held only to be dropped.
#[allow(dead_code)]
enum Guard {
    Server(servers::Running),
    Process(servers::Process),
    Folder(tempfile::TempDir),
}

/// A running backend: its URL, what it takes to open it, and what keeps it alive (dropped,
/// the server stops and the folder is deleted).
pub struct Served {
    /// Where it is.
    pub url: StoreUrl,
    /// Its credentials.
    pub access: Access,
    _guard: Guard,
}

impl Served {
    /// Starts `backend` (within a tokio runtime).
    pub async fn start(backend: Backend) -> Served {
        match backend {
            Backend::Folder => {
                let folder = tempfile::tempdir().unwrap();
                Served {
                    url: StoreUrl::Folder(folder.path().join("repo")),
                    access: Access::default(),
                    _guard: Guard::Folder(folder),
                }
            }
            Backend::S3 => Served::s3(servers::s3().await),
            Backend::WebDav => Served::webdav(servers::webdav(0).await),
        }
    }

    /// A running S3 server.
    pub fn s3((server, location): (servers::Running, S3Location)) -> Served {
        Served {
            url: StoreUrl::S3(location),
            access: Access {
                s3: Some(servers::credentials()),
                ..Access::default()
            },
            _guard: Guard::Server(server),
        }
    }

    /// A running WebDAV server that takes [`servers::dav_credentials`].
    pub fn webdav((server, location): (servers::Running, WebDavLocation)) -> Served {
        Served {
            url: StoreUrl::WebDav(location),
            access: Access {
                webdav_password: Some(servers::DAV_PASSWORD.into()),
                ..Access::default()
            },
            _guard: Guard::Server(server),
        }
    }

    /// Lets pages from `origin` call the server, as a bucket's CORS rule does (an S3 server's).
    pub fn allow_origin(&self, origin: &str) {
        match &self._guard {
            Guard::Server(server) => server.allow_origin(origin),
            _ => panic!("only a server of this process answers CORS"),
        }
    }

    /// The folder on this machine where the server keeps the store's objects, name for name
    /// (`<files>/ferry/v1/…`): what a hostile provider edits behind the protocol's back.
    pub fn files(&self) -> std::path::PathBuf {
        match (&self.url, &self._guard) {
            (StoreUrl::Folder(path), _) => path.clone(),
            (StoreUrl::S3(location), Guard::Server(server)) => {
                server.root().join(&location.bucket).join(&location.prefix)
            }
            (StoreUrl::WebDav(_), Guard::Server(server)) => server.root().join("users/me"),
            (StoreUrl::WebDav(_), Guard::Process(process)) => process.root().join("users/me"),
            _ => unreachable!("a served store has its server or folder"),
        }
    }

    /// nginx's WebDAV ([`servers::nginx`]), which ignores `If-None-Match`; `None` where nginx is
    /// not installed (outside CI).
    pub fn nginx() -> Option<Served> {
        let (process, location) = servers::nginx()?;
        Some(Served {
            url: StoreUrl::WebDav(location),
            access: Access {
                webdav_password: Some(servers::DAV_PASSWORD.into()),
                ..Access::default()
            },
            _guard: Guard::Process(process),
        })
    }

    /// The store, opened as Ferry opens it (the folder made on first use).
    pub fn open(&self) -> Arc<dyn Store> {
        let access = Access {
            create_folder: true,
            ..self.access.clone()
        };
        ferry_store::open(&self.url, access).unwrap()
    }

    /// The credentials as the environment variables `ferry init` and `ferry join` read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(s3) = &self.access.s3 {
            env.push(("AWS_ACCESS_KEY_ID", s3.access_key_id.clone()));
            env.push(("AWS_SECRET_ACCESS_KEY", s3.secret_access_key.clone()));
        }
        if let Some(password) = &self.access.webdav_password {
            env.push(("FERRY_WEBDAV_PASSWORD", password.clone()));
        }
        env
    }
}

/// One test case per backend: `per_backend! { #[tokio::test] async fn name(backend) { … } }`
/// (or `#[test] fn name(backend) { … }`) makes the module `name` with the cases `folder`, `s3`
/// and `webdav`, each running the body with its [`Backend`] under the attributes given.
#[macro_export]
macro_rules! per_backend {
    ($(#[$attr:meta])* async fn $name:ident($backend:ident) $body:block $($rest:tt)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($backend: $crate::Backend) $body

            $(#[$attr])*
            async fn folder() {
                case($crate::Backend::Folder).await
            }

            $(#[$attr])*
            async fn s3() {
                case($crate::Backend::S3).await
            }

            $(#[$attr])*
            async fn webdav() {
                case($crate::Backend::WebDav).await
            }
        }

        $crate::per_backend! { $($rest)* }
    };
    ($(#[$attr:meta])* fn $name:ident($backend:ident) $body:block $($rest:tt)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn case($backend: $crate::Backend) $body

            $(#[$attr])*
            fn folder() {
                case($crate::Backend::Folder)
            }

            $(#[$attr])*
            fn s3() {
                case($crate::Backend::S3)
            }

            $(#[$attr])*
            fn webdav() {
                case($crate::Backend::WebDav)
            }
        }

        $crate::per_backend! { $($rest)* }
    };
    () => {};
}
