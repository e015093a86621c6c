//! `apiframe-sim`: a local stand-in for Apiframe's v2 video API (sora-2).
//!
//! See `sim/README.md` for the command line, prompt markers, fault injection
//! and the `/__sim/*` control API. The contract it simulates is described in
//! `docs/UPSTREAM.md`; the binding command line and control API
//! are in `docs/ARCHITECTURE.md`.
//!
//! The modules stand on floors, bottom to top. A file imports only files on
//! the floors below its own (never one on its floor or above), so there is no
//! circle: each floor can be read, changed and tested knowing only the floors
//! under it. `tests/floors.rs` reads this list and checks every `crate::`
//! path in `src/` against it.
//!
//! 1. `sign`, `state`, `validate`: webhook signatures; jobs, counters and
//!    queued faults; generate-body rules and prompt markers.
//! 2. `http`, `options`, `shared`: the `Req`/`Resp`/`Reply` types and the
//!    helpers that build answers; the command line; the state every task
//!    shares (`Shared`).
//! 3. `control`, `video`, `webhook`: `/__sim/*`; the MP4 with byte ranges;
//!    webhook delivery.
//! 4. `routes`: routing, the v2 routes and fault injection.
//! 5. `server`: the accept loop, CORS and socket-level faults.
#![forbid(unsafe_code)]

pub mod control;
pub mod http;
pub mod options;
pub mod routes;
pub mod server;
pub mod shared;
pub mod sign;
pub mod state;
pub mod validate;
pub mod video;
pub mod webhook;

pub use options::Options;
pub use server::{start, Server};
