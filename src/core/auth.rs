//! The caller's bearer token (issue 20, "Who may spend"): where it may go,
//! when an expired one is renewed, and the event stream's ticket. Sending it
//! and calling the caller's token function is `wasm`'s; the rules are here.

use super::error::{ErrorCode, SoraError};
use super::platform::{encode_component, parse_url_with_base};
use super::value::Value;

/// What a relative `baseUrl` ("/api") is resolved against to find its host:
/// a name that is never Apiframe's, as the page's own origin is not.
const RELATIVE_BASE: &str = "https://relative.invalid/";

/// Whether `base_url` is Apiframe's own API (`api.apiframe.ai`, or any other
/// host under `apiframe.ai`), where the caller's token must never go: it is
/// for the app's own worker. The host is the one `fetch` would connect to,
/// so `//api.apiframe.ai`, `https://API.apiframe.ai.:443/` and userinfo
/// spellings count too; a relative `baseUrl` is the page's own origin.
pub fn is_apiframe_base(base_url: &str) -> bool {
    let Some(url) = parse_url_with_base(base_url, RELATIVE_BASE) else {
        // Nothing `fetch` could request: no token goes anywhere either.
        return true;
    };
    let host = url.hostname.trim_end_matches('.').to_ascii_lowercase();
    host == "apiframe.ai" || host.ends_with(".apiframe.ai")
}

/// The event stream's URL under `base_url`, with the ticket (%-encoded) when
/// there is one. The bearer token itself never goes in a URL.
pub fn events_url(base_url: &str, job_id: &str, ticket: Option<&str>) -> String {
    let url = [base_url, "/v2/jobs/", job_id, "/events"].concat();
    match ticket {
        Some(ticket) => [&url, "?ticket=", &encode_component(ticket)].concat(),
        None => url,
    }
}

/// The ticket route of a job: `POST` it, with the token, for a ticket.
pub fn ticket_url(base_url: &str, job_id: &str) -> String {
    [base_url, "/v2/jobs/", job_id, "/ticket"].concat()
}

/// The ticket of the worker's answer `{"ticket": "…", "expiresAt": ms}`.
///
/// # Errors
/// `bad_response` when it has no non-empty string `ticket`.
pub fn ticket_of(answer: &Value) -> Result<&str, SoraError> {
    match answer.get("ticket").and_then(Value::as_str) {
        Some(ticket) if !ticket.is_empty() => Ok(ticket),
        _ => Err(SoraError::new(
            ErrorCode::BadResponse,
            "the ticket answer has no ticket",
        )),
    }
}

/// Whether a failed request is asked again with a fresh token: the worker
/// refused the token as expired (which it does before it forwards
/// anything), the token comes from a function that can give a fresh one, and
/// this request has not been renewed already (once, never a loop).
pub fn renews_token(error: &SoraError, token_is_function: bool, renewed: bool) -> bool {
    token_is_function
        && !renewed
        && error.code == ErrorCode::TokenExpired
        && error.source == Some("edge")
}

/// Whether `token` can go in `Authorization: Bearer …`: visible ASCII
/// (RFC 6750's token characters are a subset), no spaces, no line breaks.
/// An empty token is no token, checked by the caller.
pub fn is_token_text(token: &str) -> bool {
    token.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::http::{error_from_status, UpstreamErrorBody};

    #[test]
    fn the_token_never_goes_to_apiframe() {
        let cases = [
            ("https://api.apiframe.ai", true),
            ("https://api.apiframe.ai/", true),
            ("HTTPS://API.APIFRAME.AI/v2", true),
            ("https://api.apiframe.ai:443", true),
            ("https://api.apiframe.ai.", true),
            ("http://api.apiframe.ai", true),
            ("https://user:pw@api.apiframe.ai", true),
            ("//api.apiframe.ai", true),
            ("/\\api.apiframe.ai", true),
            ("https://eu.api.apiframe.ai", true),
            ("https://apiframe.ai", true),
            ("https://not a url", true),
            // Anything else is the app's own worker.
            ("/api", false),
            ("api", false),
            ("https://app.example/api", false),
            ("http://127.0.0.1:8787/api", false),
            ("https://api.apiframe.ai.evil.example", false),
            ("https://notapiframe.ai", false),
            ("https://evil.example/api.apiframe.ai", false),
            ("https://api.apiframe.ai@evil.example", false),
        ];
        for (base, apiframe) in cases {
            assert_eq!(is_apiframe_base(base), apiframe, "{base}");
        }
    }

    #[test]
    fn stream_and_ticket_urls() {
        assert_eq!(
            events_url("https://w.example/api", "j-1", None),
            "https://w.example/api/v2/jobs/j-1/events"
        );
        assert_eq!(
            events_url("/api", "j-1", Some("eyJh.c2ln")),
            "/api/v2/jobs/j-1/events?ticket=eyJh.c2ln"
        );
        assert_eq!(
            events_url("/api", "j", Some("a+b/c=&d e")),
            "/api/v2/jobs/j/events?ticket=a%2Bb%2Fc%3D%26d%20e",
            "a ticket is one query value, whatever it holds"
        );
        assert_eq!(ticket_url("/api", "j-1"), "/api/v2/jobs/j-1/ticket");
    }

    #[test]
    fn ticket_answers() {
        let cases = [
            (r#"{"ticket":"abc.def","expiresAt":1}"#, Some("abc.def")),
            (r#"{"ticket":"t"}"#, Some("t")),
            (r#"{"ticket":""}"#, None),
            (r#"{"ticket":7}"#, None),
            (r#"{"expiresAt":1}"#, None),
            (r#"["abc"]"#, None),
        ];
        for (body, expected) in cases {
            let value: Value = serde_json::from_str(body).unwrap();
            let got = ticket_of(&value);
            assert_eq!(got.as_ref().ok().copied(), expected, "{body}");
            if let Err(e) = got {
                assert_eq!(e.code, ErrorCode::BadResponse, "{body}");
            }
        }
    }

    #[test]
    fn an_expired_token_is_renewed_once_and_only_from_a_function() {
        let edge = |code: &str, status: u16| {
            let body = [
                r#"{"error":{"code":""#,
                code,
                r#"","message":"m","source":"edge"}}"#,
            ]
            .concat();
            let parsed: Option<UpstreamErrorBody> = serde_json::from_str(&body).ok();
            error_from_status(status, &body, parsed.as_ref(), None)
        };
        let upstream_body = r#"{"error":{"code":"token_expired","message":"m"}}"#;
        let upstream = error_from_status(
            401,
            upstream_body,
            serde_json::from_str(upstream_body).ok().as_ref(),
            None,
        );
        let cases = [
            (
                "function, first time",
                edge("token_expired", 401),
                true,
                false,
                true,
            ),
            (
                "function, renewed already",
                edge("token_expired", 401),
                true,
                true,
                false,
            ),
            (
                "string token",
                edge("token_expired", 401),
                false,
                false,
                false,
            ),
            (
                "token_invalid",
                edge("token_invalid", 401),
                true,
                false,
                false,
            ),
            (
                "auth_required",
                edge("auth_required", 401),
                true,
                false,
                false,
            ),
            ("the upstream's 401", upstream, true, false, false),
        ];
        for (name, error, function, renewed, expected) in cases {
            assert_eq!(renews_token(&error, function, renewed), expected, "{name}");
        }
    }

    #[test]
    fn token_text() {
        let cases = [
            ("eyJhbGciOiJIUzI1NiJ9.e30.c2ln", true),
            ("a~b+c/d=", true),
            ("two words", false),
            ("line\nbreak", false),
            ("tab\there", false),
            ("caf\u{e9}", false),
            ("", true),
        ];
        for (token, ok) in cases {
            assert_eq!(is_token_text(token), ok, "{token:?}");
        }
    }
}
