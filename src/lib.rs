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
// Features only add (Cargo.toml): `edge` adds the worker's rules, `browser`
// (default) the JavaScript API; the worker crate builds with `edge` alone.
#[cfg(feature = "edge")]
pub mod edge;
#[cfg(all(target_arch = "wasm32", feature = "browser"))]
mod wasm;
