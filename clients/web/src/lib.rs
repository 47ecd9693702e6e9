//! Ferry in a browser: the WebAssembly behind the page (`clients/web/page`), so that a phone or
//! any computer with a browser is a Ferry device of its own, paired with a code and holding its
//! own identity in the roster.
//!
//! The crate is thin bindings (`wasm-bindgen`) over `ferry-protocol` and `ferry-core`: what a
//! desktop device does with them, the page does with the same code. Whatever needs a browser
//! (the relay's WebSocket, `fetch`, IndexedDB, Web Crypto) stays in the page's JavaScript,
//! which hands bytes in and takes bytes out.
//!
//! ```text
//! page (JS)                                   ferry-web (wasm)
//! #pair=417-orbit-velvet ── Join ──▶ Joining::new(code, name)
//! relay WebSocket: sub topic() ◀── frames ── outgoing()       (republished every 2 s)
//!                  messages ─────▶ receive(frame) ─▶ Paired (key, store, relay, who sent it)
//! IndexedDB ◀── sealed with a Web Crypto key ── Paired::export() / Paired::import()
//! ```
//!
//! Built by `scripts/build-web.sh`; tested inside headless Chromium (`tests/browser.rs`).

mod pairing;
mod relay;

pub use pairing::{Joining, Paired, check_code};
pub use relay::{event as relay_event, publish as relay_publish, subscribe as relay_subscribe};
