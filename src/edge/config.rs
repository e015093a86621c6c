//! The worker's configuration, read from its environment once per request.

use super::generate::own_webhook_url;
use super::relay::fallback_first_ms;
use super::sse::HEARTBEAT_MS;
use crate::core::url::parse_http_url;

/// The upstream when `APIFRAME_BASE_URL` is unset.
pub const DEFAULT_BASE_URL: &str = "https://api.apiframe.ai";

/// The settings the worker runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The upstream origin (and path prefix), without a trailing slash.
    pub base_url: String,
    /// `ALLOWED_ORIGINS`, comma-separated.
    pub allowed_origins: String,
    /// `PUBLIC_URL`, without a trailing slash; empty when unset.
    pub public_url: String,
    /// The worker's own webhook URL; `Some` exactly when relay is on.
    pub webhook_url: Option<String>,
    /// When the first fallback poll of a relayed job is due, in ms after its start.
    pub fallback_first_ms: u64,
    /// Milliseconds between heartbeat comments on the events stream.
    pub heartbeat_ms: u64,
    /// What is wrong with the configuration, if anything (never quotes the key).
    pub problem: Option<String>,
}

impl Config {
    /// Reads the environment's values; `None` stands for unset.
    pub fn from_env(
        base_url: Option<&str>,
        allowed_origins: Option<&str>,
        public_url: Option<&str>,
        fallback_ms: Option<&str>,
        heartbeat_ms: Option<&str>,
        has_key: bool,
    ) -> Config {
        let base_url = base_url
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/')
            .to_string();
        let public_url = public_url
            .unwrap_or("")
            .trim()
            .trim_end_matches('/')
            .to_string();
        let webhook_url = own_webhook_url(&public_url);
        let problem = if !has_key {
            Some("APIFRAME_API_KEY is not set (wrangler secret put APIFRAME_API_KEY)".to_string())
        } else if parse_http_url(&base_url).is_err() || base_url.contains(['?', '#']) {
            Some("APIFRAME_BASE_URL must be an absolute http(s) URL".to_string())
        } else if !public_url.is_empty() && webhook_url.is_none() {
            Some("PUBLIC_URL must be an absolute http(s) URL".to_string())
        } else {
            None
        };
        Config {
            base_url,
            allowed_origins: allowed_origins.unwrap_or("").to_string(),
            public_url,
            webhook_url,
            fallback_first_ms: fallback_first_ms(fallback_ms),
            heartbeat_ms: heartbeat_ms
                .and_then(|t| t.trim().parse::<u64>().ok())
                .map_or(HEARTBEAT_MS, |ms| ms.clamp(100, 60_000)),
            problem,
        }
    }

    /// Whether webhook relay (and the events stream) is on.
    pub fn relay(&self) -> bool {
        self.webhook_url.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_table() {
        let c = Config::from_env(None, None, None, None, None, true);
        assert_eq!(
            (
                c.base_url.as_str(),
                c.relay(),
                c.fallback_first_ms,
                c.problem
            ),
            (DEFAULT_BASE_URL, false, 240_000, None)
        );
        let c = Config::from_env(
            Some("http://127.0.0.1:9/"),
            Some("*"),
            Some("http://127.0.0.1:8787/"),
            Some("4000"),
            Some("50"),
            true,
        );
        assert_eq!(c.base_url, "http://127.0.0.1:9");
        assert_eq!(
            c.webhook_url.as_deref(),
            Some("http://127.0.0.1:8787/api/webhooks/apiframe")
        );
        assert_eq!((c.fallback_first_ms, c.heartbeat_ms), (4_000, 100));
        let problems = [
            Config::from_env(None, None, None, None, None, false),
            Config::from_env(Some("ftp://x"), None, None, None, None, true),
            Config::from_env(Some("https://x?y"), None, None, None, None, true),
            Config::from_env(None, None, Some("worker.test"), None, None, true),
        ];
        for c in problems {
            assert!(c.problem.is_some(), "{c:?}");
        }
    }
}
