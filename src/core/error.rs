//! The one error type, with codes that are stable across releases so that
//! callers can branch on them. It serializes to the fields of the
//! JavaScript `SoraEdgeError` (docs/API.md, "Errors"), so the boundary
//! builds that error in one place.

use super::redact::Secrets;
use serde::{Serialize, Serializer};
use std::borrow::Cow;

/// What went wrong, as a stable code (`SoraEdgeError.code` in JavaScript).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request (or an option) broke a documented rule; nothing was sent.
    InvalidRequest,
    /// The API key is missing or wrong (401).
    Unauthorized,
    /// The API key is inactive, or the caller may not do this (403).
    Forbidden,
    /// The account has too few credits (402).
    InsufficientCredits,
    /// No such job (404).
    NotFound,
    /// Too many requests (429); see `retry_after_ms`.
    RateLimited,
    /// The upstream failed (5xx or an unexpected status).
    Upstream,
    /// The request never got an answer: connection refused, reset, DNS.
    Network,
    /// One HTTP request took longer than `timeoutMs`.
    Timeout,
    /// The caller's `AbortSignal` fired.
    Aborted,
    /// `waitForJob` ran past `deadlineMs`; the job may still finish.
    DeadlineExceeded,
    /// The job ended FAILED; the message carries the upstream's reason.
    JobFailed,
    /// The upstream answered with something that is not the documented shape.
    BadResponse,
    /// The edge worker needs a token and the request carried none (401).
    AuthRequired,
    /// The edge worker refused the token: malformed, wrong signature,
    /// algorithm, issuer or audience (401).
    TokenInvalid,
    /// The edge worker refused the token as expired (401). With a `token`
    /// function the library has already asked it for a fresh one once.
    TokenExpired,
    /// The edge worker has no (or a malformed) auth configuration (503).
    NotConfigured,
    /// The edge worker could not verify tokens just now: its key set is
    /// unreachable (503). Nothing was forwarded.
    AuthUnavailable,
    /// The edge worker needs a Turnstile token (`cf-turnstile-response`) (401).
    TurnstileRequired,
    /// The edge worker's Turnstile check refused the token (401).
    TurnstileFailed,
    /// The edge worker's quota ledger refused the generate (429): which
    /// limit, and `retry_after_ms` until it frees. Nothing was forwarded.
    QuotaExceeded,
    /// The edge worker's quota ledger could not be reached (503). Nothing
    /// was forwarded.
    LedgerUnavailable,
}

impl ErrorCode {
    /// The code as JavaScript sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InsufficientCredits => "insufficient_credits",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Upstream => "upstream",
            ErrorCode::Network => "network",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Aborted => "aborted",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::JobFailed => "job_failed",
            ErrorCode::BadResponse => "bad_response",
            ErrorCode::AuthRequired => "auth_required",
            ErrorCode::TokenInvalid => "token_invalid",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::NotConfigured => "not_configured",
            ErrorCode::AuthUnavailable => "auth_unavailable",
            ErrorCode::TurnstileRequired => "turnstile_required",
            ErrorCode::TurnstileFailed => "turnstile_failed",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::LedgerUnavailable => "ledger_unavailable",
        }
    }

    /// The codes only the edge worker gives, by its own decision about the
    /// caller's token, challenge or quota: in an edge body
    /// (`"source":"edge"`) its `error.code` wins over the status's code.
    pub const EDGE_AUTH: [ErrorCode; 9] = [
        ErrorCode::AuthRequired,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenExpired,
        ErrorCode::NotConfigured,
        ErrorCode::AuthUnavailable,
        ErrorCode::TurnstileRequired,
        ErrorCode::TurnstileFailed,
        ErrorCode::QuotaExceeded,
        ErrorCode::LedgerUnavailable,
    ];

    /// The edge auth code spelled `code`, if it is one of [`ErrorCode::EDGE_AUTH`].
    pub fn edge_auth(code: &str) -> Option<ErrorCode> {
        ErrorCode::EDGE_AUTH
            .into_iter()
            .find(|c| c.as_str() == code)
    }

    /// Whether the same call may succeed if made again later.
    pub fn default_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::Upstream
                | ErrorCode::Network
                | ErrorCode::Timeout
                | ErrorCode::BadResponse
                | ErrorCode::DeadlineExceeded
                | ErrorCode::AuthUnavailable
                | ErrorCode::LedgerUnavailable
        )
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An error with everything a caller needs to decide what to do next.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoraError {
    /// The stable code.
    pub code: ErrorCode,
    /// What was wrong and what is allowed. Never contains the API key.
    pub message: String,
    /// Whether retrying the same call may succeed.
    pub retryable: bool,
    /// The HTTP status, when there was a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The offending field, for `InvalidRequest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// How long the upstream asked us to wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The job concerned, when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The key a failed `generate` used, so a retry cannot create a second job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Who answered with the error status: `"edge"` (the sora-edge worker
    /// refused the call itself) or `"upstream"` (Apiframe, possibly relayed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    /// The method of the request that failed, for errors of an HTTP exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Its URL. The key is a header, so it never appears here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The JavaScript value behind the error (fetch's `TypeError`, a parse
    /// error, the abort reason, what `onProgress` threw): `Error.cause`.
    #[cfg(target_arch = "wasm32")]
    #[serde(skip)]
    pub cause: Option<wasm_bindgen::JsValue>,
}

impl SoraError {
    /// An error with the code's default retryability and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> SoraError {
        SoraError {
            code,
            message: message.into(),
            retryable: code.default_retryable(),
            status: None,
            field: None,
            retry_after_ms: None,
            job_id: None,
            idempotency_key: None,
            source: None,
            method: None,
            url: None,
            #[cfg(target_arch = "wasm32")]
            cause: None,
        }
    }

    /// An `invalid_request` error naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> SoraError {
        SoraError {
            field: Some(field.to_string()),
            ..SoraError::new(ErrorCode::InvalidRequest, message)
        }
    }

    /// The same error, tagged with the job it concerns.
    pub fn with_job_id(mut self, job_id: &str) -> SoraError {
        self.job_id = Some(job_id.to_string());
        self
    }

    /// The message as a client may see it: `secrets` redacted from it
    /// ([`Secrets::redact`]). Upstream bodies are quoted in messages, and an
    /// upstream could echo the key back.
    pub fn redact(mut self, secrets: &Secrets) -> SoraError {
        if let Cow::Owned(redacted) = secrets.redact(&self.message) {
            self.message = redacted;
        }
        self
    }

    /// The same error, tagged with the JavaScript value that caused it.
    #[cfg(target_arch = "wasm32")]
    pub fn with_cause(mut self, cause: wasm_bindgen::JsValue) -> SoraError {
        self.cause = Some(cause);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_to_the_javascript_error_fields() {
        let mut e = SoraError::invalid(
            "duration",
            "duration must be one of 4, 8, 10, 12, 15 (got 5)",
        );
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"invalid_request","message":"duration must be one of 4, 8, 10, 12, 15 (got 5)","retryable":false,"field":"duration"}"#
        );
        e = SoraError::new(ErrorCode::RateLimited, "slow down");
        e.status = Some(429);
        e.retry_after_ms = Some(1000);
        e.job_id = Some("j".into());
        e.idempotency_key = Some("k".into());
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"rate_limited","message":"slow down","retryable":true,"status":429,"retryAfterMs":1000,"jobId":"j","idempotencyKey":"k"}"#
        );
    }

    #[test]
    fn edge_auth_codes_are_read_by_their_names_only() {
        let cases = [
            ("auth_required", Some(ErrorCode::AuthRequired), false),
            ("token_invalid", Some(ErrorCode::TokenInvalid), false),
            ("token_expired", Some(ErrorCode::TokenExpired), false),
            ("not_configured", Some(ErrorCode::NotConfigured), false),
            ("auth_unavailable", Some(ErrorCode::AuthUnavailable), true),
            (
                "turnstile_required",
                Some(ErrorCode::TurnstileRequired),
                false,
            ),
            ("turnstile_failed", Some(ErrorCode::TurnstileFailed), false),
            // Every other code, even a real one, comes from the status.
            ("unauthorized", None, false),
            ("forbidden", None, false),
            ("TOKEN_EXPIRED", None, false),
            ("", None, false),
        ];
        for (text, code, retryable) in cases {
            assert_eq!(ErrorCode::edge_auth(text), code, "{text}");
            if let Some(code) = code {
                assert_eq!(code.as_str(), text);
                assert_eq!(code.default_retryable(), retryable, "{text}");
            }
        }
    }

    #[test]
    fn redaction_removes_every_copy_of_the_key() {
        let secrets = Secrets::new(&["sk-test-key-1"]);
        let e = SoraError::new(
            ErrorCode::Upstream,
            "key SK-TEST-KEY-1 and again sk-test-key-1.",
        )
        .redact(&secrets);
        assert_eq!(e.message, "key [redacted] and again [redacted].");
    }
}
