//! Plain-Rust core: everything that can be decided without a JavaScript
//! runtime lives here, so `cargo test` covers it on the host in milliseconds.

pub mod backoff;
pub mod error;
pub mod http;
pub mod job;
pub mod json;
pub mod request;
pub mod schedule;
pub mod sse;
pub mod url;

pub use error::{ErrorCode, SoraError};
pub use job::{Job, JobStatus};
pub use json::Json;
pub use request::GenerateRequest;
