//! What the two devices tell each other once the code is confirmed, sealed: the settings the
//! new device needs ([`Bundle`]), its answer ([`Reply`]) and how installing them went
//! ([`Outcome`]). Each is encoded with postcard, then split into sealed chunks.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::identity::DeviceKeys;
use crate::names::DeviceId;

/// Everything a new device needs to join: the sync key, the storage and its credentials, the
/// relay, and who sends them. Sent by the device that shows the code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The repository's sync key.
    pub sync_key: [u8; 32],
    /// The storage URL, as the sending device has it configured.
    pub store: String,
    /// The storage's credentials.
    pub credentials: Credentials,
    /// The relay URL, if the sending device uses one.
    pub relay: Option<String>,
    /// The sending device.
    pub device: DeviceId,
    /// Its name.
    pub name: String,
}

/// The storage credentials a bundle carries.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize)]
pub enum Credentials {
    /// The storage needs none (a folder, an open WebDAV server).
    None,
    /// An S3 access key.
    S3 {
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: String,
    },
    /// A WebDAV password (the user name is in the URL).
    WebDav {
        /// The password.
        password: String,
    },
}

/// The new device's answer: who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The id it will write under.
    pub device: DeviceId,
    /// The name it chose.
    pub name: String,
    /// Its public keys, for the roster.
    pub keys: DeviceKeys,
}

/// How the new device fared with the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// It opened the repository and keeps the settings.
    pub joined: bool,
    /// What went wrong when it did not; when it did, what it could not do all the same (reach
    /// the relay it was given), or empty. Never a secret; shown after control characters are
    /// taken out.
    pub detail: String,
}

/// A message of either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The settings, from the device that shows the code.
    Bundle(Bundle),
    /// The new device's identity.
    Reply(Reply),
    /// The new device's last word.
    Outcome(Outcome),
}

impl Message {
    /// The message's number within its sender's messages, which also picks its nonces.
    pub(crate) fn number(&self) -> u8 {
        match self {
            Message::Bundle(_) | Message::Reply(_) => 0,
            Message::Outcome(_) => 1,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain data with no maps or floats: encoding into a Vec cannot fail.
        match self {
            Message::Bundle(bundle) => postcard::to_allocvec(bundle),
            Message::Reply(reply) => postcard::to_allocvec(reply),
            Message::Outcome(outcome) => postcard::to_allocvec(outcome),
        }
        .unwrap_or_default()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        self.sync_key.zeroize();
        self.credentials.zeroize();
    }
}

impl fmt::Debug for Bundle {
    /// Never the key or the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("store", &self.store)
            .field("relay", &self.relay)
            .field("device", &self.device)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credentials::None => "Credentials::None",
            Credentials::S3 { .. } => "Credentials::S3(…)",
            Credentials::WebDav { .. } => "Credentials::WebDav(…)",
        })
    }
}
