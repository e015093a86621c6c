//! Turning HTTP answers into outcomes: the error body (whose shape the docs
//! never give), `Retry-After` (seconds or an HTTP date), and which statuses
//! are worth another try; and finding a header by its name.

use super::error::{ErrorCode, SoraError};
use super::platform::{number_text, parse_http_date_ms};
use super::value::{shorten, Value};
use serde::de::{Deserialize, Deserializer, Error as _};

/// Longest upstream text quoted in an error message.
const MAX_QUOTED_CHARS: usize = 300;

/// An upstream error body. The docs never give its shape; these are the
/// members seen in the wild, each of any type (a wrong type is ignored, not
/// an error: the body is only quoted).
#[derive(Debug)]
pub struct UpstreamErrorBody {
    message: Option<Value>,
    error: Option<Value>,
    detail: Option<Value>,
    field: Option<Value>,
}

/// Read from a [`Value`], not derived, as `UpstreamJob` is (and for the same
/// measured reason): every member is a `Value` anyway. `null` is absent.
impl<'de> Deserialize<'de> for UpstreamErrorBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UpstreamErrorBody, D::Error> {
        UpstreamErrorBody::try_from(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl TryFrom<Value> for UpstreamErrorBody {
    type Error = &'static str;

    fn try_from(value: Value) -> Result<UpstreamErrorBody, &'static str> {
        if !matches!(value, Value::Object(_)) {
            return Err("an error body must be an object");
        }
        let member = |key: &str| {
            value
                .get(key)
                .filter(|v| !matches!(v, Value::Null))
                .cloned()
        };
        Ok(UpstreamErrorBody {
            message: member("message"),
            error: member("error"),
            detail: member("detail"),
            field: member("field"),
        })
    }
}

impl UpstreamErrorBody {
    /// Whether the sora-edge worker wrote this body: `{"error":{…,"source":"edge"}}`.
    pub fn from_edge(&self) -> bool {
        self.error
            .as_ref()
            .and_then(|e| e.get("source"))
            .and_then(Value::as_str)
            == Some("edge")
    }

    /// The edge's own auth code, for a body the worker wrote
    /// ([`UpstreamErrorBody::from_edge`]) whose `error.code` is one of
    /// [`ErrorCode::EDGE_AUTH`]. An upstream body never decides this, even
    /// when it spells the same code.
    pub fn edge_auth_code(&self) -> Option<ErrorCode> {
        if !self.from_edge() {
            return None;
        }
        let code = self.error.as_ref()?.get("code")?.as_str()?;
        ErrorCode::edge_auth(code)
    }

    /// The human message: `{"message"}`, `{"error": "…"}`,
    /// `{"error": {"message", "code"}}` or `{"detail"}`.
    pub fn message(&self) -> Option<String> {
        let error = self.error.as_ref();
        let message = [
            self.message.as_ref(),
            error,
            error.and_then(|e| e.get("message")),
            self.detail.as_ref(),
        ]
        .into_iter()
        .flatten()
        .find_map(Value::as_str)?;
        Some(
            match error.and_then(|e| e.get("code")).and_then(Value::as_str) {
                Some(code) => [message, " (", code, ")"].concat(),
                None => message.to_string(),
            },
        )
    }

    /// The field the body names, when it names one.
    pub fn field(&self) -> Option<String> {
        let error_field = self.error.as_ref().and_then(|e| e.get("field"));
        self.field
            .as_ref()
            .or(error_field)?
            .as_str()
            .map(str::to_string)
    }
}

/// The message of an error body: its JSON message when `parsed` has one,
/// else its text. `None` for an empty body.
pub fn quoted_error_body(text: &str, parsed: Option<&UpstreamErrorBody>) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let message = parsed.and_then(UpstreamErrorBody::message);
    Some(shorten(
        message.unwrap_or_else(|| text.to_string()),
        MAX_QUOTED_CHARS,
    ))
}

/// The error for a non-2xx answer.
/// `parsed` is the body read as JSON, when it is JSON.
///
/// The code is the status's, with one exception: an edge body whose
/// `error.code` is one of the edge's auth codes ([`ErrorCode::EDGE_AUTH`])
/// gives that code, retryable as the code is by default (only
/// `auth_unavailable`), whatever the status.
pub fn error_from_status(
    status: u16,
    body: &str,
    parsed: Option<&UpstreamErrorBody>,
    retry_after_ms: Option<u64>,
) -> SoraError {
    let edge_auth = parsed.and_then(UpstreamErrorBody::edge_auth_code);
    let code = edge_auth.unwrap_or(match status {
        400 | 409 | 413 | 415 | 422 => ErrorCode::InvalidRequest,
        401 => ErrorCode::Unauthorized,
        402 => ErrorCode::InsufficientCredits,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        408 => ErrorCode::Timeout,
        429 => ErrorCode::RateLimited,
        _ => ErrorCode::Upstream,
    });
    let detail = quoted_error_body(body, parsed).unwrap_or_else(|| "no details".to_string());
    // The worker marks the refusals it makes itself (src/edge/reply.rs);
    // anything else, relayed or direct, is the upstream's.
    let source = if parsed.is_some_and(UpstreamErrorBody::from_edge) {
        "edge"
    } else {
        "upstream"
    };
    let who = if source == "edge" {
        "the sora-edge worker answered "
    } else {
        "Apiframe answered "
    };
    let message = [who, &number_text(f64::from(status)), ": ", &detail].concat();
    let mut error = SoraError::new(code, message);
    error.source = Some(source);
    error.status = Some(status);
    if edge_auth.is_none() {
        error.retryable = is_retryable_status(status);
    }
    error.retry_after_ms = retry_after_ms;
    if code == ErrorCode::InvalidRequest {
        error.field = parsed.and_then(UpstreamErrorBody::field);
    }
    error
}

/// The value of header `name` among `headers`, names compared ignoring ASCII
/// case as HTTP compares them; the first when the name appears twice.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Statuses where the same request may succeed later: 408, 429 and 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

/// Parses `Retry-After` into milliseconds from `now_ms` (Unix epoch ms):
/// delta-seconds, or an HTTP date. A date in the past means "now" (0).
/// Garbage gives `None`. The date itself is the platform's to parse.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = value
            .bytes()
            .try_fold(0u64, |n, b| {
                n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            })
            .unwrap_or(u64::MAX / 1000);
        return Some(seconds.saturating_mul(1000));
    }
    // Every HTTP-date form starts with the day's name. `Date.parse` reads
    // far more than dates ("1.5", "-5"), so nothing else reaches it.
    if !value.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let at_ms = parse_http_date_ms(value)?;
    Some((at_ms - now_ms as f64).max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_every_shape() {
        let cases = [
            (
                "message",
                r#"{"message":"Invalid API key"}"#,
                Some("Invalid API key"),
            ),
            (
                "error_string",
                r#"{"error":"API key is required"}"#,
                Some("API key is required"),
            ),
            (
                "error_object",
                r#"{"error":{"message":"prompt too long","code":"invalid_request"}}"#,
                Some("prompt too long (invalid_request)"),
            ),
            (
                "error_object_no_code",
                r#"{"error":{"message":"nope"}}"#,
                Some("nope"),
            ),
            ("detail", r#"{"detail":"Not found"}"#, Some("Not found")),
            (
                "unknown_json_kept",
                r#"{"weird":1}"#,
                Some(r#"{"weird":1}"#),
            ),
            ("plain_text", "Bad Gateway\n", Some("Bad Gateway")),
            ("html", "<html>oops</html>", Some("<html>oops</html>")),
            ("empty", "", None),
            ("whitespace", "  \n ", None),
        ];
        for (name, body, expected) in cases {
            let parsed = serde_json::from_str(body).ok();
            assert_eq!(
                quoted_error_body(body, parsed.as_ref()).as_deref(),
                expected,
                "{name}"
            );
        }
        assert!(
            quoted_error_body(&"x".repeat(10_000), None)
                .unwrap()
                .chars()
                .count()
                <= MAX_QUOTED_CHARS + 1
        );
    }

    #[test]
    fn statuses_map_to_codes() {
        let cases = [
            (400, "invalid_request", false),
            (401, "unauthorized", false),
            (402, "insufficient_credits", false),
            (403, "forbidden", false),
            (404, "not_found", false),
            (408, "timeout", true),
            (409, "invalid_request", false),
            (429, "rate_limited", true),
            (500, "upstream", true),
            (502, "upstream", true),
            (503, "upstream", true),
            (418, "upstream", false),
        ];
        for (status, code, retryable) in cases {
            let error = error_from_status(status, "", None, None);
            assert_eq!(
                (error.code.as_str(), error.retryable, error.status),
                (code, retryable, Some(status)),
                "{status}"
            );
        }
        let body =
            r#"{"error":{"code":"invalid_request","message":"bad","field":"soraParams.duration"}}"#;
        let named = error_from_status(400, body, serde_json::from_str(body).ok().as_ref(), None);
        assert_eq!(named.field.as_deref(), Some("soraParams.duration"));
        assert_eq!(named.source, Some("upstream"));
        let edge = r#"{"error":{"code":"forbidden","message":"origin","source":"edge"}}"#;
        let refused = error_from_status(403, edge, serde_json::from_str(edge).ok().as_ref(), None);
        assert_eq!(refused.source, Some("edge"));
        assert!(refused
            .message
            .starts_with("the sora-edge worker answered 403"));
    }

    /// (case, status, body, expected code, retryable, source)
    type EdgeCase = (
        &'static str,
        u16,
        &'static str,
        &'static str,
        bool,
        &'static str,
    );

    #[test]
    fn edge_auth_codes_win_over_the_status() {
        let cases: [EdgeCase; 16] = [
            (
                "auth_required",
                401,
                r#"{"error":{"code":"auth_required","message":"no token","source":"edge"}}"#,
                "auth_required",
                false,
                "edge",
            ),
            (
                "token_invalid",
                401,
                r#"{"error":{"code":"token_invalid","message":"bad signature","source":"edge"}}"#,
                "token_invalid",
                false,
                "edge",
            ),
            (
                "token_expired",
                401,
                r#"{"error":{"code":"token_expired","message":"expired","source":"edge"}}"#,
                "token_expired",
                false,
                "edge",
            ),
            (
                "not_configured_503",
                503,
                r#"{"error":{"code":"not_configured","message":"set AUTH_JWKS_URL","source":"edge"}}"#,
                "not_configured",
                false,
                "edge",
            ),
            (
                "auth_unavailable_503",
                503,
                r#"{"error":{"code":"auth_unavailable","message":"JWKS down","source":"edge"}}"#,
                "auth_unavailable",
                true,
                "edge",
            ),
            (
                "turnstile_required",
                401,
                r#"{"error":{"code":"turnstile_required","message":"no header","source":"edge"}}"#,
                "turnstile_required",
                false,
                "edge",
            ),
            (
                "turnstile_failed",
                401,
                r#"{"error":{"code":"turnstile_failed","message":"refused","source":"edge"}}"#,
                "turnstile_failed",
                false,
                "edge",
            ),
            (
                "edge_code_under_an_odd_status",
                400,
                r#"{"error":{"code":"token_invalid","message":"x","source":"edge"}}"#,
                "token_invalid",
                false,
                "edge",
            ),
            // Not the edge's: the status decides.
            (
                "upstream_spelling_an_edge_code",
                401,
                r#"{"error":{"code":"token_expired","message":"expired"}}"#,
                "unauthorized",
                false,
                "upstream",
            ),
            (
                "source_not_edge",
                503,
                r#"{"error":{"code":"auth_unavailable","message":"x","source":"upstream"}}"#,
                "upstream",
                true,
                "upstream",
            ),
            (
                "code_outside_the_object",
                401,
                r#"{"code":"token_expired","error":{"message":"x","source":"edge"}}"#,
                "unauthorized",
                false,
                "edge",
            ),
            (
                "other_edge_code",
                403,
                r#"{"error":{"code":"forbidden","message":"origin","source":"edge"}}"#,
                "forbidden",
                false,
                "edge",
            ),
            (
                "edge_rate_limited",
                429,
                r#"{"error":{"code":"rate_limited","message":"slow","source":"edge"}}"#,
                "rate_limited",
                true,
                "edge",
            ),
            (
                "code_not_a_string",
                401,
                r#"{"error":{"code":7,"message":"x","source":"edge"}}"#,
                "unauthorized",
                false,
                "edge",
            ),
            (
                "code_in_other_case",
                401,
                r#"{"error":{"code":"Token_Expired","message":"x","source":"edge"}}"#,
                "unauthorized",
                false,
                "edge",
            ),
            (
                "not_json",
                401,
                "token_expired",
                "unauthorized",
                false,
                "upstream",
            ),
        ];
        for (name, status, body, code, retryable, source) in cases {
            let parsed: Option<UpstreamErrorBody> = serde_json::from_str(body).ok();
            let error = error_from_status(status, body, parsed.as_ref(), None);
            assert_eq!(
                (
                    error.code.as_str(),
                    error.retryable,
                    error.source,
                    error.status
                ),
                (code, retryable, Some(source), Some(status)),
                "{name}"
            );
        }
    }

    #[test]
    fn headers_by_name_in_any_case() {
        let headers: Vec<(String, String)> = [("Content-Type", "a"), ("content-type", "b")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(header(&headers, "CONTENT-TYPE"), Some("a"));
        assert_eq!(header(&headers, "content-length"), None);
    }

    #[test]
    fn retry_after_forms() {
        let now = 784_111_777_000 - 10_000; // ten seconds before 1994-11-06 08:49:37 GMT
        let cases = [
            ("seconds", "3", Some(3000)),
            ("zero", "0", Some(0)),
            ("padded", " 7 ", Some(7000)),
            ("imf_fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", Some(10_000)),
            ("rfc850", "Sunday, 06-Nov-94 08:49:37 GMT", Some(10_000)),
            ("asctime", "Sun Nov  6 08:49:37 1994", Some(10_000)),
            ("date_in_past", "Sun, 06 Nov 1994 08:49:00 GMT", Some(0)),
            ("negative", "-5", None),
            ("fraction", "1.5", None),
            ("garbage", "soon", None),
            ("bad_month", "Sun, 06 Foo 1994 08:49:37 GMT", None),
            ("bad_time", "Sun, 06 Nov 1994 28:49:37 GMT", None),
            ("empty", "", None),
            (
                "huge",
                "99999999999999999999999",
                Some(u64::MAX / 1000 * 1000),
            ),
        ];
        for (name, value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{name}");
        }
    }

    #[test]
    fn http_dates_through_the_platform_parser() {
        let cases = [
            ("epoch", "Thu, 01 Jan 1970 00:00:00 GMT", Some(0.0)),
            (
                "leap_day",
                "Thu, 29 Feb 2024 00:00:00 GMT",
                Some(1_709_164_800_000.0),
            ),
            ("garbage", "soon", None),
        ];
        for (name, text, expected) in cases {
            assert_eq!(parse_http_date_ms(text), expected, "{name}");
        }
    }
}
