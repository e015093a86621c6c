//! Which headers cross the worker, in each direction, and the body cap.
//!
//! Both directions are allowlists: a header not named here is dropped. The
//! client's credentials (`X-API-Key`, `Authorization`, `Cookie`) never reach
//! the upstream, and the upstream's `Set-Cookie` or `Location` never reach
//! the client. The worker adds `X-API-Key` itself, after this filter.
//!
//! An upstream header reaches the client only with a value of the shape its
//! name allows and with no form of the key in it, so that no header can
//! carry the key, or anything else, out by an unexpected value.

use super::reply::Reply;
use crate::core::platform::parse_http_date_ms;
use crate::core::request::check_idempotency_key;
use crate::core::Secrets;

/// The largest request body the worker reads (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Request headers forwarded upstream, lower-case.
pub const FORWARDED_REQUEST_HEADERS: [&str; 2] = ["accept", "idempotency-key"];

/// Upstream response headers the worker reads, lower-case: the names that
/// [`pass_response`] has a rule for. Not `content-type`: the worker sets its own.
pub const PASSED_RESPONSE_HEADERS: [&str; 5] = [
    "retry-after",
    "x-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// The headers to send upstream for a client request, before the key is added.
///
/// # Errors
/// 400 naming `Idempotency-Key` when it breaks
/// [`check_idempotency_key`]'s rule.
pub fn forward_request(headers: &[(String, String)]) -> Result<Vec<(String, String)>, Reply> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if !FORWARDED_REQUEST_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if name == "idempotency-key" {
            check_idempotency_key("Idempotency-Key", value)
                .map_err(|e| Reply::from_validation(&e))?;
        }
        out.push((name, value.clone()));
    }
    Ok(out)
}

/// The upstream response headers the client may see, lower-case: those of
/// [`PASSED_RESPONSE_HEADERS`] whose value has the shape its name allows and
/// holds no form of a key. A header that fails is dropped, not redacted: a
/// part of a value is worth nothing to a client.
pub fn pass_response(headers: &[(String, String)], secrets: &Secrets) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            let allowed = match name.as_str() {
                "retry-after" => is_digits(value, 10) || is_http_date(value),
                "x-ratelimit-limit" | "x-ratelimit-remaining" | "x-ratelimit-reset" => {
                    is_digits(value, 20)
                }
                "x-request-id" => is_request_id(value),
                _ => false,
            };
            (allowed && !secrets.holds(value)).then(|| (name, value.clone()))
        })
        .collect()
}

/// 1 to `max` ASCII digits, nothing else (no sign, no spaces).
fn is_digits(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
}

/// 1 to 128 characters of `A-Z a-z 0-9 . _ : -`: what request ids are made of.
fn is_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// The shape of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the one
/// HTTP-date form a sender may use (RFC 9110 §5.6.7): `a` stands for a
/// letter, `0` for a digit, any other byte for itself.
const IMF_FIXDATE: &[u8; 29] = b"aaa, 00 aaa 0000 00:00:00 GMT";

/// An IMF-fixdate that the platform's date parser accepts. The shape comes
/// first because in the worker that parser is `Date.parse`, which also
/// reads "Tue afk_… 2030" or "hello 2030" as dates.
fn is_http_date(value: &str) -> bool {
    value.len() == IMF_FIXDATE.len()
        && value
            .bytes()
            .zip(IMF_FIXDATE)
            .all(|(b, &shape)| match shape {
                b'a' => b.is_ascii_alphabetic(),
                b'0' => b.is_ascii_digit(),
                _ => b == shape,
            })
        && parse_http_date_ms(value).is_some()
}

/// Whether a `Content-Type` says JSON (`application/json`, any parameters).
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Checks a body's declared length before it is read.
///
/// # Errors
/// 413 when `Content-Length` exceeds [`MAX_BODY_BYTES`]; 400 when it is not a number.
pub fn check_declared_length(content_length: Option<&str>) -> Result<(), Reply> {
    let Some(text) = content_length else {
        return Ok(());
    };
    match text.trim().parse::<u64>() {
        Ok(n) if n <= MAX_BODY_BYTES as u64 => Ok(()),
        Ok(n) => Err(too_large(n)),
        Err(_) => Err(Reply::invalid(
            "Content-Length",
            "Content-Length must be a number of bytes",
        )),
    }
}

/// The 413 for a body of `bytes` (or more) bytes.
pub fn too_large(bytes: u64) -> Reply {
    Reply::error(
        413,
        "payload_too_large",
        &format!("request body is {bytes} bytes or more; the limit is {MAX_BODY_BYTES} bytes"),
    )
}

/// Owned header pairs from literals, for the tests of every edge module.
#[cfg(test)]
pub(crate) fn owned_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::owned_pairs as h;

    #[test]
    fn request_allowlist() {
        let incoming = h(&[
            ("Content-Type", "text/plain"),
            ("Accept", "application/json"),
            ("Idempotency-Key", "5f0c-key"),
            ("X-API-Key", "afk_client"),
            ("Authorization", "Bearer x"),
            ("Cookie", "s=1"),
            ("Host", "evil.test"),
            ("X-Forwarded-Host", "evil.test"),
            ("CF-Connecting-IP", "1.2.3.4"),
            ("Origin", "https://app.test"),
            ("X-Sim-Fault", "500"),
        ]);
        assert_eq!(
            forward_request(&incoming).unwrap(),
            h(&[
                ("accept", "application/json"),
                ("idempotency-key", "5f0c-key")
            ])
        );
    }

    #[test]
    fn idempotency_key_rules() {
        let cases = [
            (
                "uuid",
                "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d".to_string(),
                true,
            ),
            ("max_len", "k".repeat(255), true),
            ("too_long", "k".repeat(256), false),
            ("empty", String::new(), false),
            ("space", "a b".to_string(), false),
            ("control_char", "a\u{7}b".to_string(), false),
            ("non_ascii", "clé".to_string(), false),
        ];
        for (name, key, ok) in cases {
            let result = forward_request(&[("idempotency-key".to_string(), key)]);
            assert_eq!(result.is_ok(), ok, "{name}");
            if let Err(reply) = result {
                assert!(
                    reply.body.contains("\"field\":\"Idempotency-Key\""),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn response_headers_pass_by_rule() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        use base64::Engine as _;

        const KEY: &str = "afk_sim_test_key_edge_7Qm2xV9pLw4R";
        let secrets = Secrets::new(&[KEY]);
        let key_forms = [
            ("raw", KEY.to_string()),
            ("base64", STANDARD.encode(KEY)),
            ("base64url", URL_SAFE_NO_PAD.encode(KEY)),
            ("hex", hex::encode(KEY)),
        ];
        let mut cases: Vec<(String, &str, String, bool)> = [
            ("retry_after_seconds", "Retry-After", "3", true),
            ("retry_after_ten_digits", "retry-after", "1234567890", true),
            (
                "retry_after_eleven_digits",
                "retry-after",
                "12345678901",
                false,
            ),
            (
                "retry_after_date",
                "retry-after",
                "Sun, 06 Nov 1994 08:49:37 GMT",
                true,
            ),
            (
                "retry_after_no_such_month",
                "retry-after",
                "Sun, 06 Now 1994 08:49:37 GMT",
                false,
            ),
            // A valid HTTP-date, but not the IMF-fixdate a sender must use.
            (
                "retry_after_rfc850_date",
                "retry-after",
                "Sunday, 06-Nov-94 08:49:37 GMT",
                false,
            ),
            ("retry_after_words", "retry-after", "Tue please 2030", false),
            ("retry_after_negative", "retry-after", "-5", false),
            ("retry_after_fraction", "retry-after", "1.5", false),
            ("retry_after_padded", "retry-after", " 3", false),
            ("retry_after_empty", "retry-after", "", false),
            ("limit", "X-RateLimit-Limit", "100", true),
            ("reset", "x-ratelimit-reset", "1893456000", true),
            (
                "remaining_twenty_digits",
                "x-ratelimit-remaining",
                "12345678901234567890",
                true,
            ),
            (
                "reset_twenty_one_digits",
                "x-ratelimit-reset",
                "123456789012345678901",
                false,
            ),
            ("limit_fraction", "x-ratelimit-limit", "10.5", false),
            ("limit_empty", "x-ratelimit-limit", "", false),
            ("request_id", "X-Request-Id", "req_01HX:a.b-c", true),
            // Shaped like the key but not it: only the key's forms are refused.
            (
                "request_id_near_key",
                "x-request-id",
                "afk_sim_test_key_edge_8Qm2xV9pLw4R",
                true,
            ),
            ("request_id_space", "x-request-id", "a b", false),
            ("request_id_slash", "x-request-id", "a/b", false),
            ("request_id_empty", "x-request-id", "", false),
            ("content_type", "Content-Type", "application/json", false),
            ("set_cookie", "Set-Cookie", "s=1", false),
            ("location", "Location", "https://evil.test", false),
            ("cors", "Access-Control-Allow-Origin", "*", false),
            ("server", "Server", "x", false),
        ]
        .into_iter()
        .map(|(case, name, value, passes)| (case.to_string(), name, value.to_string(), passes))
        .collect();
        cases.push((
            "request_id_max_len".into(),
            "x-request-id",
            "r".repeat(128),
            true,
        ));
        cases.push((
            "request_id_too_long".into(),
            "x-request-id",
            "r".repeat(129),
            false,
        ));
        for name in PASSED_RESPONSE_HEADERS {
            for (form, value) in &key_forms {
                cases.push((format!("{name}_{form}_key"), name, value.clone(), false));
            }
        }
        for name in PASSED_RESPONSE_HEADERS {
            assert!(
                cases
                    .iter()
                    .any(|(_, n, _, passes)| *passes && n.eq_ignore_ascii_case(name)),
                "no row passes {name}"
            );
        }
        for (case, name, value, passes) in cases {
            let expected = if passes {
                vec![(name.to_ascii_lowercase(), value.clone())]
            } else {
                Vec::new()
            };
            assert_eq!(
                pass_response(&h(&[(name, &value)]), &secrets),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn content_type_and_length() {
        let types = [
            (Some("application/json"), true),
            (Some("application/json; charset=utf-8"), true),
            (Some("Application/JSON"), true),
            (Some("text/plain"), false),
            (Some("application/x-www-form-urlencoded"), false),
            (Some("multipart/form-data; boundary=x"), false),
            (Some("application/jsonp"), false),
            (None, false),
        ];
        for (ct, ok) in types {
            assert_eq!(is_json(ct), ok, "{ct:?}");
        }
        let lengths = [
            (None, None),
            (Some("16384"), None),
            (Some("16385"), Some(413)),
            (Some("x"), Some(400)),
        ];
        for (cl, status) in lengths {
            assert_eq!(
                check_declared_length(cl).err().map(|r| r.status),
                status,
                "{cl:?}"
            );
        }
    }
}
