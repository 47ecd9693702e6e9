//! Operations: the only way the replicated state changes.
//!
//! An operation is made by one device, stamped with that device's next counter (1, 2, 3… with no
//! gaps) and a hybrid logical time, and applied everywhere. Each operation is encoded on its own
//! with postcard and carried as one opaque entry of a `ferry-protocol` segment, so the encoding
//! here is part of the wire format (pinned by `tests/vectors/ops.json`): a change to it is a format
//! change. New actions are added at the end of [`Action`] and never reorder the existing ones; a
//! build that meets an action it does not know reports it as [`CoreError::NewerAction`] and
//! stops applying that device's operations until it is upgraded, rather than skip and lose it.

use serde::{Deserialize, Serialize};

use crdts::{mvreg, orswot};
use ferry_protocol::{DeviceId, DeviceKeys};

use crate::clip::{ClipContent, ClipId, CollectionId};
use crate::error::{CoreError, decode_exact};
use crate::hlc::Hlc;

/// One change, by one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// The device's operation counter: 1 for its first operation, then one more each time.
    pub counter: u64,
    /// When, in hybrid logical time; `hlc.device` is the device that made it.
    pub hlc: Hlc,
    /// What it does.
    pub action: Action,
}

impl Op {
    /// The device that made it.
    pub fn device(&self) -> DeviceId {
        self.hlc.device
    }

    /// The postcard encoding carried in segments.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encodes every operation")
    }

    /// Decodes one operation, refusing trailing bytes. An operation of a kind added after this
    /// build is [`CoreError::NewerAction`], not malformed: a newer Ferry reads it.
    pub fn decode(bytes: &[u8]) -> Result<Op, CoreError> {
        Op::decode_known(bytes, Action::KINDS)
    }

    /// Decodes one operation as a build that knows only the first `kinds` kinds of [`Action`]
    /// would: how an older Ferry sees a newer one's operations.
    pub fn decode_known(bytes: &[u8], kinds: u32) -> Result<Op, CoreError> {
        // The encoding starts with the counter, the stamp and the action's index.
        if let Ok(((_, _, action), _)) = postcard::take_from_bytes::<(u64, Hlc, u32)>(bytes)
            && action >= kinds.min(Action::KINDS)
        {
            return Err(CoreError::NewerAction { action });
        }
        decode_exact("operation", bytes)
    }

    /// Which kind of data it changes; `None` for the device roster, which always syncs.
    pub fn data_kind(&self) -> Option<DataKind> {
        self.action.data_kind()
    }
}

/// A multi-value register's value: the value (or `None` for a deletion) and when it was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Versioned {
    /// The value; `None` records a deletion.
    pub value: Option<String>,
    /// When it was written, and by which device.
    pub hlc: Hlc,
}

/// What an operation does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Copy: creates the clip, or, when the same content was copied before, moves it to the top
    /// of the history again and takes it out of the trash.
    Copy {
        /// The clip (a keyed hash of the content).
        clip: ClipId,
        /// The content.
        content: ClipContent,
    },
    /// Pins or unpins a clip.
    SetPinned {
        /// The clip.
        clip: ClipId,
        /// Pinned or not.
        pinned: bool,
    },
    /// Marks or unmarks a clip as a favourite.
    SetFavourite {
        /// The clip.
        clip: ClipId,
        /// Favourite or not.
        favourite: bool,
    },
    /// Moves a clip to the trash.
    Delete {
        /// The clip.
        clip: ClipId,
    },
    /// Takes a clip out of the trash.
    Restore {
        /// The clip.
        clip: ClipId,
    },
    /// Removes a clip's content for good (a later copy of the same content brings it back).
    Purge {
        /// The clip.
        clip: ClipId,
    },
    /// Creates a collection.
    CollectionCreate {
        /// The new collection's id.
        collection: CollectionId,
        /// Its name.
        name: String,
    },
    /// Renames a collection.
    CollectionRename {
        /// The collection.
        collection: CollectionId,
        /// The new name.
        name: String,
    },
    /// Deletes a collection (the clips in it stay).
    CollectionDelete {
        /// The collection.
        collection: CollectionId,
    },
    /// Adds clips to or removes clips from a collection (an observed-remove set operation).
    CollectionMembers {
        /// The collection.
        collection: CollectionId,
        /// The set operation.
        op: orswot::Op<ClipId, DeviceId>,
    },
    /// Sets or deletes an alias (a named snippet).
    Alias {
        /// The alias name.
        name: String,
        /// The register write.
        op: mvreg::Op<Versioned, DeviceId>,
    },
    /// Sets or deletes a synced setting.
    Setting {
        /// The setting key.
        key: String,
        /// The register write.
        op: mvreg::Op<Versioned, DeviceId>,
    },
    /// Registers a device in the roster with its public keys (format version 2). A device
    /// registers itself in its own log; the sync engine refuses one that registers another
    /// device or a known device with other keys.
    RegisterDevice {
        /// The device.
        device: DeviceId,
        /// The name it gave itself.
        name: String,
        /// Its public keys.
        keys: DeviceKeys,
    },
}

impl Action {
    /// How many kinds of action this build knows: the encoded index of each is below this.
    pub const KINDS: u32 = 13;

    /// Which kind of data it changes; `None` for the device roster, which is not a person's
    /// data to choose: it always syncs, since readers need it to check who wrote what.
    pub fn data_kind(&self) -> Option<DataKind> {
        Some(match self {
            Action::Copy { .. }
            | Action::SetPinned { .. }
            | Action::SetFavourite { .. }
            | Action::Delete { .. }
            | Action::Restore { .. }
            | Action::Purge { .. } => DataKind::Clips,
            Action::CollectionCreate { .. }
            | Action::CollectionRename { .. }
            | Action::CollectionDelete { .. }
            | Action::CollectionMembers { .. } => DataKind::Collections,
            Action::Alias { .. } => DataKind::Aliases,
            Action::Setting { .. } => DataKind::Settings,
            Action::RegisterDevice { .. } => return None,
        })
    }
}

/// The kinds of data a device can choose to sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataKind {
    /// Clips, their flags, the trash.
    Clips,
    /// Collections and their members.
    Collections,
    /// Aliases (snippets).
    Aliases,
    /// Synced settings.
    Settings,
}

crate::spelled!(pub DataKind, "kind of data", {
    Clips = "clips",
    Collections = "collections",
    Aliases = "aliases",
    Settings = "settings",
});

/// Which kinds of data a device syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Clips.
    pub clips: bool,
    /// Collections.
    pub collections: bool,
    /// Aliases.
    pub aliases: bool,
    /// Settings.
    pub settings: bool,
}

impl Scope {
    /// Everything: the default.
    pub const ALL: Scope = Scope {
        clips: true,
        collections: true,
        aliases: true,
        settings: true,
    };

    /// Whether this kind of data is in scope.
    pub fn includes_kind(&self, kind: DataKind) -> bool {
        match kind {
            DataKind::Clips => self.clips,
            DataKind::Collections => self.collections,
            DataKind::Aliases => self.aliases,
            DataKind::Settings => self.settings,
        }
    }

    /// Whether this operation is in scope (the roster always is).
    pub fn includes(&self, op: &Op) -> bool {
        op.data_kind().is_none_or(|kind| self.includes_kind(kind))
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::ALL
    }
}
