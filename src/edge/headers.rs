//! Which headers cross the worker, in each direction, and the body cap.
//!
//! Both directions are allowlists: a header not named here is dropped. The
//! client's credentials (`X-API-Key`, `Authorization`, `Cookie`) never reach
//! the upstream, and the upstream's `Set-Cookie` or `Location` never reach
//! the client. The worker adds `X-API-Key` itself, after this filter.

use super::reply::Reply;

/// The largest request body the worker reads (16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Request headers forwarded upstream, lower-case.
pub const FORWARDED_REQUEST_HEADERS: [&str; 2] = ["accept", "idempotency-key"];

/// Upstream response headers passed back to the client, lower-case.
pub const PASSED_RESPONSE_HEADERS: [&str; 6] = [
    "content-type",
    "retry-after",
    "x-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// The headers to send upstream for a client request, before the key is added.
///
/// # Errors
/// 400 naming `Idempotency-Key` when it is not 1 to 255 visible ASCII characters.
pub fn forward_request(headers: &[(String, String)]) -> Result<Vec<(String, String)>, Reply> {
    let mut out = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if !FORWARDED_REQUEST_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let bad_key = name == "idempotency-key"
            && (!(1..=255).contains(&value.len())
                || value.bytes().any(|b| !(0x21..0x7f).contains(&b)));
        if bad_key {
            return Err(Reply::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ));
        }
        out.push((name, value.clone()));
    }
    Ok(out)
}

/// The upstream response headers the client may see.
pub fn pass_response(
    headers: &[(String, String)],
    _secrets: &crate::core::redact::Secrets,
) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            name != "content-type" && PASSED_RESPONSE_HEADERS.contains(&name.as_str())
        })
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect()
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
    fn response_allowlist() {
        let upstream = h(&[
            ("Content-Type", "application/json"),
            ("Retry-After", "3"),
            ("Set-Cookie", "s=1"),
            ("Location", "https://evil.test"),
            ("Access-Control-Allow-Origin", "*"),
            ("Server", "x"),
        ]);
        assert_eq!(
            pass_response(&upstream, &crate::core::redact::Secrets::new(&[])),
            h(&[("retry-after", "3")])
        );
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
