//! Edge-only plain Rust: every decision the edge worker makes, compiled into
//! the worker build only (feature `edge`) and table-tested on the host.
//!
//! The worker crate (`worker/`, on workers-rs) asks these functions what to
//! do with a request, a body, a webhook or a status read, and does it. A
//! change to a rule touches one file here:
//! - [`config`]: the worker's settings from its environment;
//! - [`plan`]: the first decision on every request (answer now, or go on);
//! - [`route`]: method + path → route, 404, 405, or 400 for path tricks;
//! - [`cors`]: the origin allowlist and the CORS headers;
//! - [`headers`]: which headers cross the worker, the body cap;
//! - [`generate`]: validating and rewriting a generate body;
//! - [`webhook`]: signature verification and webhook parsing;
//! - [`relay`]: the Durable Object's record, merging, the fallback schedule;
//! - [`recent`]: an isolate's memory of the objects' answers to status reads;
//! - [`sse`]: the events-stream frames;
//! - [`upstream`]: what the client gets back from an upstream answer;
//! - [`reply`]: the JSON error bodies and the worker's own replies.

pub mod auth;
pub mod config;
pub mod cors;
pub mod generate;
pub mod headers;
pub mod ledger;
pub mod plan;
pub mod recent;
pub mod relay;
pub mod reply;
pub mod route;
pub mod sse;
pub mod upstream;
pub mod webhook;

pub use reply::Reply;
pub use route::{Route, Routed};
