//! `apiframe-sim`: a local stand-in for Apiframe's v2 video API (sora-2).
//!
//! See `sim/README.md` for the command line, prompt markers, fault injection
//! and the `/__sim/*` control API. The contract it simulates is described in
//! `docs/UPSTREAM.md`; the binding command line and control API
//! are in `docs/ARCHITECTURE.md`.
#![forbid(unsafe_code)]

pub mod control;
pub mod options;
pub mod routes;
pub mod server;
pub mod sign;
pub mod state;
pub mod validate;
pub mod video;
pub mod webhook;

pub use options::Options;
pub use server::{start, Server};
