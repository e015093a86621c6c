//! sora-edge: generate Sora 2 videos through Apiframe v2 from browsers, Node
//! and Cloudflare Workers, without ever putting the API key in a browser.
//!
//! [`core`] is plain Rust (validation, the serde types of requests, jobs and
//! errors, backoff, the poll schedule) tested on the host; only
//! `core::platform` borrows the runtime's own parsers (`URL`, `Date.parse`,
//! `Number()`) in wasm. `wasm` is the only layer that touches `JsValue`,
//! `fetch` (through gloo-net), timers, `EventSource` and `AbortSignal`.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod core;
#[cfg(feature = "edge")]
pub mod edge;
// The edge build is a library for the worker crate (worker/), whose wasm must
// not carry the browser API's exports.
#[cfg(all(target_arch = "wasm32", not(feature = "edge")))]
mod wasm;
