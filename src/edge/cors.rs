//! CORS: an origin allowlist from `ALLOWED_ORIGINS` (comma-separated, `*`
//! for any), and the worker's own origin always. A request from any other
//! origin is refused with 403 before anything else happens, so a page on a
//! foreign site cannot spend the key's credits even with a "simple" request
//! that a browser would send without a preflight.

use super::reply::Reply;

/// The CORS outcome of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cors {
    /// No `Origin` header: not a cross-origin browser request (curl, servers).
    NoOrigin,
    /// An allowed origin; the response echoes it.
    Allowed(String),
    /// An origin that is not allowed.
    Denied(String),
}

/// Headers a browser may read from a cross-origin response.
const EXPOSED: &str = "Retry-After, Content-Type";
/// Headers a browser may send, when it asks for them in a preflight.
const MAX_PREFLIGHT_SECONDS: &str = "600";

/// `scheme://host[:port]` lower-cased, with a default port and a trailing
/// slash removed, so equal origins compare equal.
pub fn normalise_origin(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
        if origin.starts_with(scheme) && origin.ends_with(port) {
            return origin[..origin.len() - port.len()].to_string();
        }
    }
    origin
}

/// Decides a request's CORS fate from its `Origin`, the worker's own origins
/// (the request URL's and `PUBLIC_URL`'s) and `ALLOWED_ORIGINS`.
pub fn decide(origin: Option<&str>, own_origins: &[&str], allowed: &str) -> Cors {
    let Some(origin) = origin else {
        return Cors::NoOrigin;
    };
    let wanted = normalise_origin(origin);
    let is_own = own_origins
        .iter()
        .any(|own| !own.is_empty() && normalise_origin(own) == wanted);
    let is_listed = allowed
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .any(|a| {
            // "null" (sandboxed frames, file://) must be listed by name; `*` does not cover it.
            (a == "*" && wanted != "null") || normalise_origin(a) == wanted
        });
    if is_own || is_listed {
        Cors::Allowed(origin.to_string())
    } else {
        Cors::Denied(origin.to_string())
    }
}

impl Cors {
    /// Headers for an actual (non-preflight) response.
    pub fn response_headers(&self) -> Vec<(String, String)> {
        match self {
            Cors::Allowed(origin) => vec![
                ("access-control-allow-origin".into(), origin.clone()),
                ("access-control-expose-headers".into(), EXPOSED.into()),
                ("vary".into(), "Origin".into()),
            ],
            _ => vec![("vary".into(), "Origin".into())],
        }
    }

    /// The 403 for a denied origin, if this is one.
    pub fn refusal(&self) -> Option<Reply> {
        match self {
            Cors::Denied(origin) => Some(
                Reply::error(
                    403,
                    "forbidden",
                    &format!(
                        "origin {} is not allowed (set ALLOWED_ORIGINS on the worker)",
                        super::reply::shown(origin)
                    ),
                )
                .with_header("vary", "Origin"),
            ),
            _ => None,
        }
    }

    /// The 204 answer to a preflight for a route served with `method`.
    /// Requested headers are echoed when they are well-formed header names:
    /// whatever a browser sends, only the allowlisted ones go upstream.
    pub fn preflight(&self, method: &str, requested_headers: Option<&str>) -> Reply {
        let mut reply = Reply {
            status: 204,
            headers: Vec::new(),
            body: String::new(),
        };
        if let Cors::Allowed(origin) = self {
            reply
                .headers
                .push(("access-control-allow-origin".into(), origin.clone()));
            reply.headers.push((
                "access-control-allow-methods".into(),
                format!("{method}, OPTIONS"),
            ));
            let echoed = requested_headers
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|h| is_header_name(h))
                .collect::<Vec<_>>()
                .join(", ");
            let allowed = if echoed.is_empty() {
                "Content-Type, Idempotency-Key, Last-Event-ID".to_string()
            } else {
                echoed
            };
            reply
                .headers
                .push(("access-control-allow-headers".into(), allowed));
            reply.headers.push((
                "access-control-max-age".into(),
                MAX_PREFLIGHT_SECONDS.into(),
            ));
        }
        reply.headers.push((
            "vary".into(),
            "Origin, Access-Control-Request-Headers".into(),
        ));
        reply
    }
}

/// An RFC 9110 token of reasonable length.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "https://worker.test";

    #[test]
    fn decision_table() {
        let cases: [(&str, Option<&str>, &str, bool); 14] = [
            ("no_origin_is_not_cors", None, "", true),
            ("same_origin_always", Some("https://worker.test"), "", true),
            (
                "same_origin_default_port",
                Some("https://worker.test:443"),
                "",
                true,
            ),
            ("same_origin_case", Some("HTTPS://Worker.Test"), "", true),
            (
                "listed",
                Some("https://app.test"),
                "https://app.test,https://b.test",
                true,
            ),
            (
                "listed_with_spaces",
                Some("https://b.test"),
                " https://app.test , https://b.test ",
                true,
            ),
            (
                "listed_trailing_slash",
                Some("https://app.test"),
                "https://app.test/",
                true,
            ),
            ("wildcard", Some("https://any.test"), "*", true),
            (
                "not_listed",
                Some("https://evil.test"),
                "https://app.test",
                false,
            ),
            (
                "scheme_differs",
                Some("http://app.test"),
                "https://app.test",
                false,
            ),
            (
                "port_differs",
                Some("https://app.test:8443"),
                "https://app.test",
                false,
            ),
            (
                "suffix_attack",
                Some("https://app.test.evil.test"),
                "https://app.test",
                false,
            ),
            ("null_origin", Some("null"), "*", false),
            ("empty_list", Some("https://app.test"), "", false),
        ];
        for (name, origin, allowed, ok) in cases {
            let cors = decide(origin, &[OWN, ""], allowed);
            assert_eq!(!matches!(cors, Cors::Denied(_)), ok, "{name}");
            assert_eq!(
                cors.refusal().map(|r| r.status),
                (!ok).then_some(403),
                "{name}"
            );
        }
    }

    #[test]
    fn headers_for_allowed_and_preflight() {
        let cors = decide(Some("https://app.test"), &[OWN], "https://app.test");
        let headers = cors.response_headers();
        assert!(headers.contains(&(
            "access-control-allow-origin".into(),
            "https://app.test".into()
        )));
        assert!(headers
            .iter()
            .any(|(k, v)| k == "access-control-expose-headers" && v.contains("Retry-After")));
        let pre = cors.preflight(
            "POST",
            Some("content-type, idempotency-key, bad header, x-a\"b"),
        );
        assert_eq!(pre.status, 204);
        assert!(pre.headers.contains(&(
            "access-control-allow-methods".into(),
            "POST, OPTIONS".into()
        )));
        assert!(pre.headers.contains(&(
            "access-control-allow-headers".into(),
            "content-type, idempotency-key".into()
        )));
        assert!(decide(None, &[OWN], "")
            .response_headers()
            .iter()
            .all(|(k, _)| !k.starts_with("access-control")));
    }
}
