//! Turning HTTP answers into outcomes: the error body (whose shape the docs
//! never give), `Retry-After` (seconds or an HTTP date), and which statuses
//! are worth another try.

use super::error::{ErrorCode, SoraError};
use super::json::{parse_u64, u64_text, Json};

/// Longest upstream text quoted in an error message.
const MAX_QUOTED_CHARS: usize = 300;

/// The human message in an error body: `{"message"}`, `{"error": "…"}`,
/// `{"error": {"message", "code"}}`, `{"detail"}`, or plain text. `None` for
/// an empty body.
pub fn error_body_message(body: &str) -> Option<String> {
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    let text = match Json::parse(body) {
        Ok(json) => {
            let error = json.get("error");
            let from_json = json
                .get("message")
                .and_then(Json::as_str)
                .or_else(|| error.and_then(Json::as_str))
                .or_else(|| error.and_then(|e| e.get("message")).and_then(Json::as_str))
                .or_else(|| json.get("detail").and_then(Json::as_str))
                .map(str::to_string);
            let code = error.and_then(|e| e.get("code")).and_then(Json::as_str);
            match (from_json, code) {
                (Some(message), Some(code)) => [&message, " (", code, ")"].concat(),
                (Some(message), None) => message,
                (None, _) => body.to_string(),
            }
        }
        Err(_) => body.to_string(),
    };
    Some(shorten(&text))
}

/// The field an upstream error body names, when it names one.
pub fn error_body_field(body: &str) -> Option<String> {
    let json = Json::parse(body.trim()).ok()?;
    let field = json
        .get("field")
        .or_else(|| json.get("error").and_then(|e| e.get("field")))?;
    field.as_str().map(str::to_string)
}

fn shorten(text: &str) -> String {
    super::json::shorten(text.to_string(), MAX_QUOTED_CHARS)
}

/// The error for a non-2xx answer.
pub fn error_from_status(status: u16, body: &str, retry_after_ms: Option<u64>) -> SoraError {
    let code = match status {
        400 | 409 | 413 | 415 | 422 => ErrorCode::InvalidRequest,
        401 => ErrorCode::Unauthorized,
        402 => ErrorCode::InsufficientCredits,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        408 => ErrorCode::Timeout,
        429 => ErrorCode::RateLimited,
        _ => ErrorCode::Upstream,
    };
    let detail = error_body_message(body).unwrap_or_else(|| "no details".to_string());
    let message = [
        "Apiframe answered ",
        &u64_text(status.into()),
        ": ",
        &detail,
    ]
    .concat();
    let mut error = SoraError::new(code, message);
    error.status = Some(status);
    error.retryable = is_retryable_status(status);
    error.retry_after_ms = retry_after_ms;
    if code == ErrorCode::InvalidRequest {
        error.field = error_body_field(body);
    }
    error
}

/// Statuses where the same request may succeed later: 408, 429 and 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

/// Parses `Retry-After` into milliseconds from `now_ms` (Unix epoch ms):
/// delta-seconds, or an HTTP date (IMF-fixdate, RFC 850 or asctime). A date in
/// the past means "now" (0). Garbage gives `None`.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = parse_u64(value).unwrap_or(u64::MAX / 1000);
        return Some(seconds.saturating_mul(1000));
    }
    let at_ms = parse_http_date(value)?;
    Some(at_ms.saturating_sub(now_ms))
}

/// An HTTP date as Unix epoch milliseconds.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let words: Vec<&str> = value.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    // RFC 850:     Sunday, 06-Nov-94 08:49:37 GMT
    // asctime:     Sun Nov  6 08:49:37 1994
    let (day, month, year, time) = match words.as_slice() {
        [_, day, month, year, time, "GMT"] => (*day, *month, digits(year, 4)?, *time),
        [_, date, time, "GMT"] => {
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, digits(parts.next()?, 4)?);
            (
                day,
                month,
                if year < 50 {
                    2000 + year
                } else if year < 100 {
                    1900 + year
                } else {
                    year
                },
                *time,
            )
        }
        [_, month, day, time, year] => (*day, *month, digits(year, 4)?, *time),
        _ => return None,
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == month)? as i64
        + 1;
    let day = digits(day, 2)?;
    let mut hms = time.split(':').map(|p| digits(p, 2));
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || hms.next().is_some() {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    u64::try_from(seconds).ok().map(|s| s * 1000)
}

/// A field of 1 to `max_len` ASCII digits: no sign, so no field can be
/// negative and no date can overflow the arithmetic below.
fn digits(text: &str, max_len: usize) -> Option<i64> {
    if text.is_empty() || text.len() > max_len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    parse_u64(text).and_then(|n| i64::try_from(n).ok())
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
            assert_eq!(error_body_message(body).as_deref(), expected, "{name}");
        }
        assert!(
            error_body_message(&"x".repeat(10_000))
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
            let error = error_from_status(status, "", None);
            assert_eq!(
                (error.code.as_str(), error.retryable, error.status),
                (code, retryable, Some(status)),
                "{status}"
            );
        }
        let named = error_from_status(
            400,
            r#"{"error":{"code":"invalid_request","message":"bad","field":"soraParams.duration"}}"#,
            None,
        );
        assert_eq!(named.field.as_deref(), Some("soraParams.duration"));
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
    fn epoch_and_leap_days() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(1_709_164_800_000)
        );
    }
}
