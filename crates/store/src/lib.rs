//! `ferry-store` keeps a Ferry repository's sealed objects in storage the person owns, behind one
//! [`Store`] trait that every kind of storage implements the same way.
//!
//! The sync engine asks for exactly what it needs: write an object once ([`Store::put_new`]),
//! replace one ([`Store::put`]: tools and tests only; Ferry writes each object once), read one, list a prefix in name order a page
//! at a time, delete one, and [`Store::probe`] whether each of those is allowed. Names are the
//! `ferry/v1/…` names of `ferry-protocol`, below the root the store was opened at. Objects are
//! opaque ciphertext here: this crate never sees a key.
//!
//! ```text
//! StoreUrl::parse("file:///…" | "s3://…" | "webdav+https://…") ─▶ open(url, access) ─▶ dyn Store
//!   RetryPolicy::run around each call
//! ```
//!
//! Backends: [`folder::FolderStore`] (the embedded default; atomic writes, safe on a folder that
//! another tool syncs), [`s3::S3Store`] (any S3-compatible bucket) and
//! [`webdav::WebDavStore`] (any WebDAV server). Every backend passes the same conformance suite
//! (`tests/conformance/`), against real servers (`ferry-test-kit`).
//!
//! Errors are classified ([`StoreError`]) so that callers retry what can pass (timeouts,
//! throttling, server errors) with [`RetryPolicy`], and tell the person what to fix otherwise.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod url;

#[cfg(feature = "backends")]
pub mod cors;
#[cfg(feature = "backends")]
pub mod folder;
#[cfg(feature = "backends")]
pub mod retry;
#[cfg(feature = "backends")]
pub mod s3;
#[cfg(feature = "backends")]
mod store;
#[cfg(feature = "backends")]
pub mod webdav;

pub use error::StoreError;
pub use url::StoreUrl;

#[cfg(feature = "backends")]
pub use {
    folder::FolderStore,
    retry::RetryPolicy,
    s3::{S3Credentials, S3Store},
    store::{ANY_SIZE, Access, ListPage, MAX_PAGE, ObjectMeta, ProbeReport, Store, open},
    webdav::{WebDavCredentials, WebDavStore},
};
