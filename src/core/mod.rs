//! Plain-Rust core: everything that can be decided without a JavaScript
//! runtime lives here, so `cargo test` covers it on the host in milliseconds.
//! The one exception is `platform`: the parsers the runtime already has.

pub mod auth;
pub mod backoff;
pub mod error;
pub mod http;
pub mod job;
pub mod platform;
pub mod redact;
pub mod request;
pub mod schedule;
pub mod url;
pub mod value;

pub use error::{ErrorCode, SoraError};
pub use job::{Job, JobStatus};
pub use redact::Secrets;
pub use request::GenerateRequest;
pub use value::Value;
