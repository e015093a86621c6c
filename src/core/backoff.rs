//! When to try a request again, and how long to wait first.
//!
//! A status read is safe to repeat. A submit is not: a timeout, reset or 5xx
//! may come after the upstream created (and billed) the job, so a submit is
//! retried only when the upstream surely did not act on it.

use super::error::{ErrorCode, SoraError};

/// First retry waits about this long; each further one doubles it.
pub const BASE_DELAY_MS: u64 = 500;
/// No computed backoff waits longer than this.
pub const MAX_DELAY_MS: u64 = 8_000;
/// A `Retry-After` longer than this is handed to the caller instead of slept.
pub const MAX_RETRY_AFTER_MS: u64 = 60_000;

/// Which kind of request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET`: repeating it changes nothing upstream.
    Read,
    /// `POST /v2/videos/generate`: repeating it may create a second job.
    Submit,
}

/// Whether a failed attempt may be repeated automatically.
///
/// `refused_before_send` is true when the runtime reported that the connection
/// was refused, so no byte of the request reached the upstream.
pub fn may_retry(kind: RequestKind, error: &SoraError, refused_before_send: bool) -> bool {
    if error
        .retry_after_ms
        .is_some_and(|ms| ms > MAX_RETRY_AFTER_MS)
    {
        return false;
    }
    match kind {
        RequestKind::Read => {
            matches!(
                error.code,
                ErrorCode::Network
                    | ErrorCode::Timeout
                    | ErrorCode::RateLimited
                    | ErrorCode::Upstream
                    | ErrorCode::BadResponse
                    | ErrorCode::AuthUnavailable
            ) && error.retryable
        }
        // The edge answers `auth_unavailable` before it forwards anything.
        RequestKind::Submit => {
            matches!(
                error.code,
                ErrorCode::RateLimited | ErrorCode::AuthUnavailable
            ) || (error.code == ErrorCode::Network && refused_before_send)
        }
    }
}

/// The wait before retry number `attempt` (0-based): exponential with equal
/// jitter (`jitter` in 0..1 from the caller's random source), or exactly the
/// upstream's `Retry-After` when it gave one.
pub fn retry_delay_ms(attempt: u32, retry_after_ms: Option<u64>, jitter: f64) -> u64 {
    if let Some(ms) = retry_after_ms {
        return ms;
    }
    let exponential = BASE_DELAY_MS
        .saturating_mul(1u64 << attempt.min(20))
        .min(MAX_DELAY_MS);
    let half = exponential / 2;
    half + (half as f64 * jitter.clamp(0.0, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: ErrorCode) -> SoraError {
        SoraError::new(code, "x")
    }

    #[test]
    fn retry_decisions() {
        use ErrorCode::*;
        use RequestKind::*;
        let cases = [
            ("read_network", Read, Network, false, true),
            ("read_timeout", Read, Timeout, false, true),
            ("read_429", Read, RateLimited, false, true),
            ("read_5xx", Read, Upstream, false, true),
            ("read_malformed", Read, BadResponse, false, true),
            ("read_401", Read, Unauthorized, false, false),
            ("read_404", Read, NotFound, false, false),
            ("read_aborted", Read, Aborted, false, false),
            ("submit_429", Submit, RateLimited, false, true),
            ("submit_refused", Submit, Network, true, true),
            ("submit_reset_is_ambiguous", Submit, Network, false, false),
            ("submit_timeout_is_ambiguous", Submit, Timeout, false, false),
            ("submit_5xx_is_ambiguous", Submit, Upstream, false, false),
            (
                "submit_malformed_is_ambiguous",
                Submit,
                BadResponse,
                false,
                false,
            ),
            ("submit_400", Submit, InvalidRequest, false, false),
            ("read_auth_unavailable", Read, AuthUnavailable, false, true),
            (
                "submit_auth_unavailable",
                Submit,
                AuthUnavailable,
                false,
                true,
            ),
            ("read_token_expired", Read, TokenExpired, false, false),
            ("submit_token_expired", Submit, TokenExpired, false, false),
            ("read_auth_required", Read, AuthRequired, false, false),
            ("read_token_invalid", Read, TokenInvalid, false, false),
            ("read_not_configured", Read, NotConfigured, false, false),
            (
                "submit_turnstile_failed",
                Submit,
                TurnstileFailed,
                false,
                false,
            ),
        ];
        for (name, kind, code, refused, expected) in cases {
            assert_eq!(may_retry(kind, &error(code), refused), expected, "{name}");
        }
    }

    #[test]
    fn non_retryable_upstream_status_is_not_retried() {
        let mut teapot = error(ErrorCode::Upstream);
        teapot.retryable = false;
        assert!(!may_retry(RequestKind::Read, &teapot, false));
    }

    #[test]
    fn long_retry_after_goes_back_to_the_caller() {
        let mut limited = error(ErrorCode::RateLimited);
        limited.retry_after_ms = Some(MAX_RETRY_AFTER_MS + 1);
        assert!(!may_retry(RequestKind::Read, &limited, false));
        limited.retry_after_ms = Some(2_000);
        assert!(may_retry(RequestKind::Read, &limited, false));
    }

    #[test]
    fn delays_grow_with_jitter_and_stop_at_the_cap() {
        let cases = [
            (0, 0.0, 250),
            (0, 1.0, 500),
            (1, 0.0, 500),
            (2, 0.5, 1_500),
            (4, 1.0, 8_000),
            (10, 0.0, 4_000),
            (63, 1.0, 8_000),
        ];
        for (attempt, jitter, expected) in cases {
            assert_eq!(
                retry_delay_ms(attempt, None, jitter),
                expected,
                "attempt {attempt} jitter {jitter}"
            );
        }
        assert_eq!(
            retry_delay_ms(0, Some(1_000), 0.9),
            1_000,
            "Retry-After wins"
        );
        assert_eq!(
            retry_delay_ms(3, Some(0), 0.9),
            0,
            "Retry-After 0 means now"
        );
    }
}
