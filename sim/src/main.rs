//! `apiframe-sim` binary: parse flags, start the server, print `SIM_URL=...`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use apiframe_sim::{start, Options};
use clap::Parser;

// One thread: on the 2-core machines the tests run on, the client under test
// holds the other core, and bench/sim-throughput.mjs measured the
// multi-threaded runtime at 0.66x to 0.78x of this one's requests/s.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Bad flags exit with status 2 (clap's usage error).
    let opts = Options::parse();
    let quiet = opts.quiet;
    let server = match start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("apiframe-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "SIM_URL={}", server.url);
    let _ = out.flush();
    drop(out);
    if !quiet {
        eprintln!("apiframe-sim: listening on {}", server.url);
    }
    // Serve until killed.
    std::future::pending().await
}
