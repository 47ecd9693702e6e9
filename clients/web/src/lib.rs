//! Ferry in a browser: the WebAssembly behind the page (`clients/web/page`), so that a phone or
//! any computer with a browser is a Ferry device of its own, paired with a code and holding its
//! own identity in the roster.
//!
//! The crate is thin bindings (`wasm-bindgen`) over `ferry-protocol`, `ferry-core` and
//! `ferry-read`: what a desktop device does with them, the page does with the same code. The
//! bucket is reached from here (`fetch`, each request signed in wasm, so the storage secret never
//! reaches JavaScript); what else needs a browser (the relay's WebSocket, IndexedDB, Web Crypto,
//! the clipboard) stays in the page's JavaScript, which hands bytes in and takes bytes out.
//!
//! ```text
//! page (JS)                                   ferry-web (wasm)
//! #pair=417-orbit-velvet ── Join ──▶ Joining::new(code, name)
//! relay WebSocket: sub topic() ◀── frames ── outgoing()       (republished every 2 s)
//!                  messages ─────▶ receive(frame) ─▶ Paired (key, store, relay, who sent it)
//! IndexedDB ◀── sealed with a Web Crypto key ── Paired::export() / Paired::import()
//! Device::new(paired).sync() ──▶ bucket: LIST head/, GET snapshots and segments (checked)
//! list ◀── Device::history(query, limit)
//! ```
//!
//! Built by `scripts/build-web.sh`; tested inside headless Chromium (`tests/browser.rs`).

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod device;
mod pairing;
mod pass;
mod relay;
mod send;
mod storage;

pub use device::Device;
pub use pairing::{Joining, Paired, check_code};
pub use relay::{event as relay_event, publish as relay_publish, subscribe as relay_subscribe};
