//! The worker's configuration, read from its environment once per isolate.

use super::auth::{Auth, AuthEnv};
use super::generate::own_webhook_url;
use super::ledger::{QuotaEnv, Quotas};
use super::relay::fallback_first_ms;
use super::sse::HEARTBEAT_MS;
use url::Url;

/// The upstream when `APIFRAME_BASE_URL` is unset.
pub const DEFAULT_BASE_URL: &str = "https://api.apiframe.ai";

/// Event-stream subscribers per job when `RELAY_MAX_SUBSCRIBERS` is unset.
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 256;

/// Event streams one client address may hold open on one job when
/// `RELAY_STREAMS_PER_CLIENT` is unset.
pub const DEFAULT_STREAMS_PER_CLIENT: usize = 4;

/// `Retry-After` for a rate-limited client when `RATE_LIMIT_PERIOD_S` is unset.
pub const DEFAULT_RATE_LIMIT_PERIOD_S: u32 = 60;

/// The worker's environment as it comes: every value optional text.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `APIFRAME_BASE_URL`.
    pub base_url: Option<String>,
    /// `ALLOWED_ORIGINS`.
    pub allowed_origins: Option<String>,
    /// `PUBLIC_URL`.
    pub public_url: Option<String>,
    /// `RELAY_FALLBACK_MS`.
    pub fallback_ms: Option<String>,
    /// `RELAY_HEARTBEAT_MS`.
    pub heartbeat_ms: Option<String>,
    /// `RELAY_MAX_SUBSCRIBERS`.
    pub max_subscribers: Option<String>,
    /// `RELAY_STREAMS_PER_CLIENT`.
    pub streams_per_client: Option<String>,
    /// `RATE_LIMIT_PERIOD_S`.
    pub rate_limit_period_s: Option<String>,
    /// `EXTRA_SORA_PARAMS`.
    pub extra_sora_params: Option<String>,
    /// Whether the `APIFRAME_API_KEY` secret is set (its value stays out of here).
    pub has_key: bool,
    /// The identity settings (`AUTH_*`, `TURNSTILE_*`).
    pub auth: AuthEnv,
    /// The quota settings (`QUOTA_*`).
    pub quotas: QuotaEnv,
    /// `RATE_LIMIT`: `off` turns the per-minute rate-limit bindings off.
    pub rate_limit: Option<String>,
}

/// The settings the worker runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The upstream origin (and path prefix), without a trailing slash.
    pub base_url: String,
    /// `ALLOWED_ORIGINS`, comma-separated.
    pub allowed_origins: String,
    /// The origin of `PUBLIC_URL` (`scheme://host[:port]`) when it is set:
    /// then the worker's own origin, never taken from `Host`.
    pub public_origin: Option<String>,
    /// The worker's own webhook URL; `Some` exactly when relay is on.
    pub webhook_url: Option<String>,
    /// When the first fallback poll of a relayed job is due, in ms after its start.
    pub fallback_first_ms: u64,
    /// Milliseconds between heartbeat comments on the events stream.
    pub heartbeat_ms: u64,
    /// Open event streams allowed per job.
    pub max_subscribers: usize,
    /// Open event streams allowed per job and client address.
    pub streams_per_client: usize,
    /// `Retry-After` (seconds) on a 429 from a rate limiter.
    pub rate_limit_period_s: u32,
    /// The `soraParams` keys a client may send besides the documented ones:
    /// `EXTRA_SORA_PARAMS`, comma-separated, trimmed, empty entries dropped.
    pub extra_sora_params: Vec<String>,
    /// What is wrong with the configuration, if anything (never quotes the key).
    pub problem: Option<String>,
    /// Who may spend.
    pub auth: Auth,
    /// How much, or what is wrong with `QUOTA_*` (503 `not_configured`).
    pub quotas: Result<Quotas, String>,
    /// Whether the per-minute rate-limit bindings are asked (`RATE_LIMIT` is not `off`).
    pub rate_limit: bool,
}

fn number<T: std::str::FromStr>(text: Option<&str>) -> Option<T> {
    text.and_then(|t| t.trim().parse::<T>().ok())
}

fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.has_host()
}

impl Config {
    /// Decides the settings from the environment.
    pub fn from_env(env: &Env) -> Config {
        let base_url = env
            .base_url
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/')
            .to_string();
        let public_url = env.public_url.as_deref().unwrap_or("").trim();
        let public = Url::parse(public_url).ok().filter(is_http);
        let webhook_url = own_webhook_url(public_url);
        let base_ok =
            Url::parse(&base_url).is_ok_and(|u| is_http(&u)) && !base_url.contains(['?', '#']);
        let problem = if !env.has_key {
            Some("APIFRAME_API_KEY is not set (wrangler secret put APIFRAME_API_KEY)".to_string())
        } else if !base_ok {
            Some("APIFRAME_BASE_URL must be an absolute http(s) URL".to_string())
        } else if !public_url.is_empty() && public.is_none() {
            Some("PUBLIC_URL must be an absolute http(s) URL".to_string())
        } else {
            None
        };
        Config {
            base_url,
            allowed_origins: env.allowed_origins.clone().unwrap_or_default(),
            public_origin: public.map(|u| u.origin().ascii_serialization()),
            webhook_url,
            fallback_first_ms: fallback_first_ms(env.fallback_ms.as_deref()),
            heartbeat_ms: number::<u64>(env.heartbeat_ms.as_deref())
                .map_or(HEARTBEAT_MS, |ms| ms.clamp(100, 60_000)),
            max_subscribers: number::<usize>(env.max_subscribers.as_deref())
                .map_or(DEFAULT_MAX_SUBSCRIBERS, |n| n.clamp(1, 10_000)),
            streams_per_client: number::<usize>(env.streams_per_client.as_deref())
                .map_or(DEFAULT_STREAMS_PER_CLIENT, |n| n.clamp(1, 10_000)),
            rate_limit_period_s: number::<u32>(env.rate_limit_period_s.as_deref())
                .filter(|s| (1..=86_400).contains(s))
                .unwrap_or(DEFAULT_RATE_LIMIT_PERIOD_S),
            extra_sora_params: env
                .extra_sora_params
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(str::to_string)
                .collect(),
            problem,
            auth: Auth::from_env(&env.auth),
            quotas: Quotas::from_env(&env.quotas),
            rate_limit: !env
                .rate_limit
                .as_deref()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("off")),
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

    fn env(pairs: &[(&str, &str)], has_key: bool) -> Env {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        Env {
            base_url: get("base"),
            allowed_origins: get("allowed"),
            public_url: get("public"),
            fallback_ms: get("fallback"),
            heartbeat_ms: get("heartbeat"),
            max_subscribers: get("subs"),
            streams_per_client: get("per_client"),
            rate_limit_period_s: get("period"),
            extra_sora_params: get("extra"),
            has_key,
            auth: AuthEnv::default(),
            quotas: QuotaEnv::default(),
            rate_limit: get("rate_limit"),
        }
    }

    #[test]
    fn defaults() {
        let c = Config::from_env(&env(&[], true));
        assert_eq!(
            (
                c.base_url.as_str(),
                c.relay(),
                c.fallback_first_ms,
                c.problem
            ),
            (DEFAULT_BASE_URL, false, 240_000, None)
        );
        assert_eq!(
            (c.max_subscribers, c.rate_limit_period_s, c.public_origin),
            (DEFAULT_MAX_SUBSCRIBERS, 60, None)
        );
        assert_eq!(c.streams_per_client, DEFAULT_STREAMS_PER_CLIENT);
        assert!(c.rate_limit && c.quotas.as_ref().is_ok_and(|q| !q.any()));
        assert!(!Config::from_env(&env(&[("rate_limit", "OFF")], true)).rate_limit);
        assert!(c.extra_sora_params.is_empty());
    }

    #[test]
    fn values_are_read_and_clamped() {
        let c = Config::from_env(&env(
            &[
                ("base", "http://127.0.0.1:9/"),
                ("allowed", "*"),
                ("public", "http://127.0.0.1:8787/"),
                ("fallback", "4000"),
                ("heartbeat", "50"),
                ("subs", "0"),
                ("per_client", "2"),
                ("period", "30"),
                ("extra", " seed, ,style ,,"),
            ],
            true,
        ));
        assert_eq!(c.base_url, "http://127.0.0.1:9");
        assert_eq!(
            c.webhook_url.as_deref(),
            Some("http://127.0.0.1:8787/api/webhooks/apiframe")
        );
        assert_eq!(c.public_origin.as_deref(), Some("http://127.0.0.1:8787"));
        assert_eq!((c.fallback_first_ms, c.heartbeat_ms), (4_000, 100));
        assert_eq!((c.max_subscribers, c.rate_limit_period_s), (1, 30));
        assert_eq!(c.streams_per_client, 2);
        assert_eq!(c.extra_sora_params, ["seed", "style"]);
    }

    #[test]
    fn problems() {
        let cases = [
            ("no_key", env(&[], false)),
            ("ftp_base", env(&[("base", "ftp://x")], true)),
            ("base_with_query", env(&[("base", "https://x?y")], true)),
            (
                "relative_public_url",
                env(&[("public", "worker.test")], true),
            ),
            (
                "script_public_url",
                env(&[("public", "javascript:alert(1)")], true),
            ),
        ];
        for (name, e) in cases {
            assert!(Config::from_env(&e).problem.is_some(), "{name}");
        }
    }
}
