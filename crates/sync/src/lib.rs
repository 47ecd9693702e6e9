//! `ferry-sync`: one device's sync engine over one repository.
//!
//! The engine keeps the device's side in a local SQLite database and moves sealed objects
//! through a [`ferry_store::Store`]:
//!
//! ```text
//! record(op) ──(one transaction, durable)──▶ ops + clip_text index
//! upload():  pending ops ─▶ reserve segment (sealed bytes kept) ─▶ PUT log/<tag>/<seq>
//!            ─▶ PUT head/<tag>/<seq> ─▶ hint for the relay (older heads: deleted in batches)
//! fetch():   LIST head/ ─▶ for each device past its cursor: GET log/<tag>/<seq>…, in order
//!            ─▶ open, check, apply (one transaction per segment) or quarantine
//! ```
//!
//! Images and files above a threshold travel as sealed chunks under `blob/<id>/`, uploaded after
//! the segment that names them (a copy is never held behind a large upload); others fetch them
//! with the segment (up to a size) or on demand ([`Engine::blob`]), resuming from the chunks
//! they already hold, and try again later where a chunk is not there yet. Large content keeps to
//! a byte rate where one is set ([`Throttle`]), and an agent moves it in steps between its other
//! work ([`Engine::large_step`]).
//!
//! Every object is written once and never overwritten, by the one device that owns its name,
//! so no backend needs locking or conditional overwrites. The relay and the LAN are wired in by
//! the caller: [`Engine::upload`] returns the hints to publish and [`Engine::fetch_hint`] takes
//! the ones received; [`Engine::seal_pending`] gives the segments to pass to nearby devices and
//! [`Engine::receive`] takes theirs.
//!
//! Scope: data of a kind this device does not sync (say, its settings) is recorded by a second,
//! local-only actor into a separate state that never leaves the device, so the shared log has
//! no gaps and snapshots hold only shared data; [`Engine::state_for`] gives the state to show
//! for each kind.
//!
//! A repository's key can be replaced by a new generation (SPEC §11): [`generation`] finds the
//! generation a key opens, writes the next one, and judges a record before a device follows it.
//!
//! What it does not do: watch the clipboard, hold secrets, or talk to the relay itself.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod db;
mod engine;
mod error;
pub mod generation;
mod policy;
mod remote;
pub mod repo;
mod throttle;
pub mod transfer;

pub use engine::{
    Behind, ChunkReceived, Destination, DeviceFailure, DryRun, Engine, EngineConfig, FAR_CLAIM,
    FetchReport, Finished, Heard, LargeStep, NearbyChunk, NearbySegment, NextGeneration,
    PeerStatus, Planned, Problem, Progress, ProgressFn, Quarantined, Received, Retry, RotationPlan,
    Status, StorageHealth, Succession, UploadReport,
};
pub use error::SyncError;
pub use policy::{Direction, Filters, Refusal};
pub use throttle::Throttle;
pub use transfer::Transfer;
