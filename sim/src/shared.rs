//! What every connection and webhook task shares: the state behind its lock,
//! the settings the flags fixed, and the reset generation.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::watch;

use crate::state::{Config, State};

/// What every connection and webhook task shares.
pub struct Shared {
    state: Mutex<State>,
    /// The config the flags give; `POST /__sim/reset` goes back to it.
    pub flags: Config,
    pub api_key: String,
    pub signing_key: Vec<u8>,
    pub port: u16,
    pub mp4: Bytes,
    pub quiet: bool,
    /// Bumped by `POST /__sim/reset`; hanging connections and the webhook
    /// tasks of earlier generations stop when it changes.
    pub generation: watch::Sender<u64>,
    /// Webhook client: one connection per attempt (no pool), so that a
    /// receiver closing an idle connection never fails an attempt.
    pub http: reqwest::Client,
}

impl Shared {
    /// A fresh state from `flags`, at generation 0.
    pub fn new(
        flags: Config,
        api_key: String,
        signing_key: Vec<u8>,
        port: u16,
        mp4: Bytes,
        quiet: bool,
        http: reqwest::Client,
    ) -> Shared {
        Shared {
            state: Mutex::new(State::new(flags.clone())),
            flags,
            api_key,
            signing_key,
            port,
            mp4,
            quiet,
            generation: watch::Sender::new(0),
            http,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn log(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("sim: {line}");
        }
    }
}
