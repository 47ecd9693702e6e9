//! `ferry-read` decides, with no I/O, what a device reads of the other devices' logs and whether
//! what it read may be applied. The sync engine reads storage through it, and so does the
//! browser page: a device in a browser refuses exactly what a desktop device refuses.
//!
//! ```text
//! LIST head/, snap/, log/ ─▶ plan::fetch(peer) ─▶ [Snapshot(seq) | Segment(seq)] ─▶ GET each
//!   ─▶ Checker::open_segment / open_snapshot ─▶ ops or a state to apply, or a Refusal
//! ```
//!
//! A [`Checker`] opens an object with the repository's keys, matches it to its name, checks
//! that its writer signed it with the keys the roster holds for it ([`check`]), and keeps out
//! what was written too far in the future; a [`Refusal`] says why an object is not applied, in
//! the words the quarantine shows.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod check;
pub mod plan;
pub mod refusal;

pub use check::{Checker, Position};
pub use refusal::Refusal;
