//! `ferry-core` is what a person's Ferry data *is*: clips, collections, aliases, settings and the
//! trash, as replicated data types that every device can change on its own and that always merge
//! to the same result.
//!
//! Data flows through it like this:
//!
//! ```text
//! person copies / pins / renames …  ─▶ Replica::copy(..) ─▶ Op ─▶ (sync engine: record, upload)
//! Op from another device            ─▶ Replica::apply(op) ─▶ State
//! snapshot from storage             ─▶ State::decode ─▶ Replica::merge(state)
//! State ─▶ newest / history / collection / alias / settings / trash / stats
//! ```
//!
//! Guarantees: applying an operation is idempotent (a duplicate changes nothing) and commutes with
//! every other device's operations; a device's own operations must come in order, and one that
//! skips ahead is refused with [`CoreError::Gap`] so the caller can buffer it. Merging two states
//! gives the state that holds both sets of operations, with the same canonical encoding
//! ([`State::encode`]) as applying them one by one. Copying the same content again on any device
//! moves the one clip with that content to the top of the history instead of adding a duplicate.
//!
//! Which replicated type holds what, and why (see [`state`] for the details):
//!
//! | data | type | why |
//! | --- | --- | --- |
//! | what each device's operations have been applied | `crdts::VClock` | counts per device: duplicates and gaps are one comparison |
//! | clip content | immutable, keyed by a hash of itself | nothing to merge; equal content is one clip |
//! | clip order | min / max registers of the copy time | recopying is a max, commutative by nature |
//! | pinned, favourite, in trash | `crdts::LWWReg` marked by [`Hlc`] | a flag has one value; the last writer wins, by a time that respects causality (a later copy also takes a clip out of the trash) |
//! | purge | max register of the purge time | hides the clip and drops its content until a later copy brings it back |
//! | collection members | `crdts::Orswot` | adding and removing clips concurrently must keep the add and remove only what the remover saw |
//! | collection name | `crdts::LWWReg` | a rename replaces the name |
//! | aliases, settings | `crdts::MVReg` per key | concurrent edits are both kept, then shown by the chosen [`Strategy`] |
//! | device roster | one entry per device id, the earliest registration wins | a device id has one set of keys; a later claim to it never replaces the first |
//!
//! What it does not do: any I/O, any async, any reading of the clock (times are passed in), any
//! encryption (operations travel inside `ferry-protocol` segments), any filtering by sync scope
//! (it only says which [`DataKind`] an operation touches; [`Scope`] answers whether it is in).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod canonical;
pub mod clip;
pub mod error;
mod find;
mod history;
pub mod hlc;
pub mod op;
pub mod query;
pub mod replica;
pub mod retention;
pub mod roster;
pub mod spelling;
pub mod state;

pub use clip::{Body, ClipContent, ClipId, CollectionId, ContentKind, FileClip, Image, RichText};
pub use error::CoreError;
pub use ferry_protocol::DeviceId;
pub use hlc::{Hlc, HlcClock};
pub use op::{Action, DataKind, Op, Scope, Versioned};
pub use query::{ClipView, CollectionView, HistoryCursor, Resolution, Resolved, Stats, Strategy};
pub use replica::Replica;
pub use retention::Retention;
pub use roster::{
    DeviceEntry, LEFT_PREFIX, Membership, NAME_PREFIX, PAIRED_PREFIX, Pairing, REMOVED_PREFIX,
    Removal, owner_of,
};
pub use spelling::UnknownWord;
pub use state::{Applied, State};
