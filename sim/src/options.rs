//! The command line (clap), also used to start the simulator in-process.

use std::path::PathBuf;

use clap::builder::NonEmptyStringValueParser;
use clap::{Parser, ValueEnum};

use crate::sign::KeyMode;
use crate::state::Config;

/// `--result-shape`: `result` as the bare URL or `{"videoUrl": url}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    String,
    Object,
}

/// Local stand-in for Apiframe's v2 video API (sora-2), with fault injection.
/// Prints `SIM_URL=http://127.0.0.1:<port>` once listening. See sim/README.md.
// No `Debug`: the API key must never reach a log line.
#[derive(Clone, Parser)]
#[command(name = "apiframe-sim", version)]
pub struct Options {
    /// The only accepted X-API-Key, and the source of the webhook signing key. Never printed.
    #[arg(long, value_name = "KEY", value_parser = NonEmptyStringValueParser::new())]
    pub api_key: String,
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Total duration of a job, in ms.
    #[arg(long, default_value_t = 3000)]
    pub job_ms: u64,
    /// `result` as the bare URL or as {"videoUrl": url}.
    #[arg(long, value_enum, default_value_t = Shape::String)]
    pub result_shape: Shape,
    /// Base delay of the webhook retry backoff, in ms.
    #[arg(long, default_value_t = 200)]
    pub webhook_retry_ms: u64,
    /// HMAC key for webhook signatures.
    #[arg(long, value_enum, default_value_t = KeyMode::Hex)]
    pub webhook_key: KeyMode,
    /// The video served at /videos/sample.mp4.
    #[arg(long, value_name = "PATH", default_value_os_t = default_mp4())]
    pub mp4: PathBuf,
    /// No request log on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Answer every request with `Connection: close`. Browsers silently resend
    /// a request whose reused keep-alive connection is reset, which would hide
    /// what the client itself did under the `reset` and `lost` faults.
    #[arg(long)]
    pub no_keep_alive: bool,
}

impl Options {
    /// The defaults of every flag, with this API key.
    ///
    /// # Panics
    /// If `api_key` is empty.
    pub fn new(api_key: &str) -> Options {
        Options::parse_from(["apiframe-sim", "--api-key", api_key])
    }

    /// The runtime config these flags give (and `POST /__sim/reset` restores).
    pub fn config(&self) -> Config {
        Config {
            job_ms: self.job_ms,
            object_shape: self.result_shape == Shape::Object,
            drop_webhooks: false,
            fault_rate: 0.0,
            fault_set: Vec::new(),
            seed: 1,
            webhook_retry_ms: self.webhook_retry_ms,
        }
    }
}

/// `sim/assets/sample.mp4`, resolved from the crate's directory at build time.
pub fn default_mp4() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("sample.mp4")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let o = Options::try_parse_from([
            "apiframe-sim",
            "--api-key=k",
            "--port",
            "8080",
            "--result-shape",
            "object",
            "--webhook-key",
            "raw",
            "--quiet",
            "--no-keep-alive",
        ])
        .unwrap();
        assert_eq!((o.port, o.job_ms, o.webhook_retry_ms), (8080, 3000, 200));
        assert!(o.config().object_shape && o.quiet && o.no_keep_alive);
        assert_eq!(o.webhook_key, KeyMode::Raw);
        for bad in [
            &["apiframe-sim"][..],
            &["apiframe-sim", "--api-key", ""],
            &["apiframe-sim", "--api-key", "k", "--port", "70000"],
            &["apiframe-sim", "--api-key", "k", "--result-shape", "url"],
            &["apiframe-sim", "--api-key", "k", "--job-ms", "-1"],
            &["apiframe-sim", "--api-key", "k", "--bogus"],
        ] {
            let e = Options::try_parse_from(bad).err().expect("rejected");
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
