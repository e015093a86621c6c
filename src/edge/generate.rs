//! The generate body: validated with the library's own wire-format rules,
//! then rewritten so that the worker, not the client, chooses where the
//! upstream's webhooks go.

use super::reply::Reply;
use crate::core::url::parse_http_url;
use crate::core::{GenerateRequest, Json};

/// Where the worker receives the upstream's webhooks, under `PUBLIC_URL`.
pub const WEBHOOK_PATH: &str = "/api/webhooks/apiframe";

/// The events the worker subscribes to for relay.
pub const RELAY_EVENTS: [&str; 3] = ["progress", "completed", "failed"];

/// The worker's own webhook URL from `PUBLIC_URL`; `None` (relay off) when
/// it is unset, empty, or not an absolute http(s) URL.
pub fn own_webhook_url(public_url: &str) -> Option<String> {
    let base = public_url.trim().trim_end_matches('/');
    if base.is_empty() || parse_http_url(base).is_err() {
        return None;
    }
    Some(format!("{base}{WEBHOOK_PATH}"))
}

/// Parses a request body as UTF-8 JSON.
///
/// # Errors
/// 400 naming `body` for bytes that are not UTF-8 or not JSON.
pub fn parse_body(body: &[u8]) -> Result<Json, Reply> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Reply::invalid(
            "body",
            &format!("body is not UTF-8 (at byte {})", e.valid_up_to()),
        )
    })?;
    Json::parse(text).map_err(|e| {
        Reply::invalid(
            "body",
            &format!(
                "body is not valid JSON (at byte {} of {})",
                e.offset,
                text.len()
            ),
        )
    })
}

/// Validates a generate body and returns the body to send upstream.
///
/// With relay on (`webhook_url` is the worker's own), the body gets that
/// `webhookUrl` and `webhookEvents` ["progress","completed","failed"].
/// Without relay, no webhook fields are sent.
///
/// # Errors
/// 400 naming the field: invalid JSON (`body`), a client-chosen webhook URL
/// (`webhookUrl` or `webhook_url`), or any rule of the wire format.
pub fn rewrite(body: &[u8], webhook_url: Option<&str>) -> Result<String, Reply> {
    let json = parse_body(body)?;
    for field in ["webhookUrl", "webhook_url"] {
        if json.get(field).is_some() {
            return Err(Reply::invalid(
                field,
                &format!("{field} may not be set by the client: this worker receives the webhooks itself and relays them (GET /api/v2/jobs/{{id}}/events); remove {field}"),
            ));
        }
    }
    let mut request =
        GenerateRequest::from_wire_json(&json).map_err(|e| Reply::from_validation(&e))?;
    match webhook_url {
        Some(url) => {
            request.webhook_url = Some(url.to_string());
            request.webhook_events = Some(RELAY_EVENTS.iter().map(|e| e.to_string()).collect());
        }
        None => {
            request.webhook_url = None;
            request.webhook_events = None;
        }
    }
    Ok(request.wire_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOOK: &str = "https://worker.test/api/webhooks/apiframe";

    #[test]
    fn own_webhook_url_from_public_url() {
        let cases = [
            ("https://worker.test", Some(HOOK)),
            ("https://worker.test/", Some(HOOK)),
            (
                "http://127.0.0.1:8787",
                Some("http://127.0.0.1:8787/api/webhooks/apiframe"),
            ),
            ("", None),
            ("  ", None),
            ("worker.test", None),
            ("javascript:alert(1)", None),
        ];
        for (public, expected) in cases {
            assert_eq!(own_webhook_url(public).as_deref(), expected, "{public:?}");
        }
    }

    #[test]
    fn refusals_name_the_field() {
        let cases: [(&str, &[u8], &str); 12] = [
            ("invalid_json", b"{\"prompt\":", "body"),
            ("not_utf8", b"{\"prompt\":\"\xff\"}", "body"),
            ("not_an_object", b"[1]", "body"),
            (
                "client_webhook_url",
                br#"{"prompt":"a","model":"sora-2","webhookUrl":"https://evil.test/h"}"#,
                "webhookUrl",
            ),
            (
                "client_webhook_url_snake",
                br#"{"prompt":"a","model":"sora-2","webhook_url":"https://evil.test/h"}"#,
                "webhook_url",
            ),
            (
                "client_webhook_url_null",
                br#"{"prompt":"a","model":"sora-2","webhookUrl":null}"#,
                "webhookUrl",
            ),
            ("missing_prompt", br#"{"model":"sora-2"}"#, "prompt"),
            ("missing_model", br#"{"prompt":"a"}"#, "model"),
            (
                "bad_duration",
                br#"{"prompt":"a","model":"sora-2","soraParams":{"duration":5}}"#,
                "soraParams.duration",
            ),
            (
                "bad_aspect",
                br#"{"prompt":"a","model":"sora-2","soraParams":{"aspect_ratio":"1:1"}}"#,
                "soraParams.aspect_ratio",
            ),
            (
                "bad_events",
                br#"{"prompt":"a","model":"sora-2","webhookEvents":["done"]}"#,
                "webhookEvents",
            ),
            (
                "unknown_model",
                b"{\"prompt\":\"aaaaaaaaaa\",\"model\":\"sora-3\"}",
                "model",
            ),
        ];
        for (name, body, field) in cases {
            let reply = rewrite(body, Some(HOOK)).expect_err(name);
            assert_eq!(reply.status, 400, "{name}");
            let json = Json::parse(&reply.body).unwrap();
            let error = json.get("error").unwrap();
            assert_eq!(
                error.get("field").and_then(Json::as_str),
                Some(field),
                "{name}: {}",
                reply.body
            );
            assert_eq!(
                error.get("code").and_then(Json::as_str),
                Some("invalid_request"),
                "{name}"
            );
        }
    }

    #[test]
    fn relay_sets_the_workers_own_webhook() {
        let body = br#"{"prompt":"a cat [ms=1500]","model":"sora-2","webhookEvents":["completed"],"soraParams":{"duration":8,"future_field":{"x":1}}}"#;
        assert_eq!(
            rewrite(body, Some(HOOK)).unwrap(),
            r#"{"prompt":"a cat [ms=1500]","model":"sora-2","webhookUrl":"https://worker.test/api/webhooks/apiframe","webhookEvents":["progress","completed","failed"],"soraParams":{"duration":8,"future_field":{"x":1}}}"#
        );
        assert_eq!(
            rewrite(body, None).unwrap(),
            r#"{"prompt":"a cat [ms=1500]","model":"sora-2","soraParams":{"duration":8,"future_field":{"x":1}}}"#
        );
    }
}
