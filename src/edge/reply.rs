//! What the worker answers when it answers by itself: a status, headers and
//! a JSON error body `{"error":{"code","message"}}` (plus `field` for a
//! validation error), so every refusal has the same shape.

use crate::core::json::{write_string, Json};
use crate::core::SoraError;

/// A response the worker sends without asking the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (lower-case names), besides `Content-Type`.
    pub headers: Vec<(String, String)>,
    /// The body text (JSON).
    pub body: String,
}

impl Reply {
    /// An error reply with body `{"error":{"code","message"}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: error_body(code, message, None),
        }
    }

    /// A 400 `invalid_request` naming `field`.
    pub fn invalid(field: &str, message: &str) -> Reply {
        Reply {
            status: 400,
            headers: Vec::new(),
            body: error_body("invalid_request", message, Some(field)),
        }
    }

    /// A 400 from a validation error of the core rules.
    pub fn from_validation(error: &SoraError) -> Reply {
        Reply::invalid(error.field.as_deref().unwrap_or("body"), &error.message)
    }

    /// A 404 for a path that is not one of the worker's routes.
    pub fn not_found(path: &str) -> Reply {
        Reply::error(
            404,
            "not_found",
            &format!(
                "no route for {} (routes: POST /api/v2/videos/generate, GET /api/v2/jobs/{{uuid}}, GET /api/v2/jobs/{{uuid}}/events, POST /api/webhooks/apiframe)",
                shown(path)
            ),
        )
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same reply with more headers.
    pub fn with_headers(mut self, headers: &[(String, String)]) -> Reply {
        self.headers.extend_from_slice(headers);
        self
    }

    /// The plan as JSON for the worker: `{"status","headers":[[name,value]],"body"}`.
    pub fn to_json(&self) -> String {
        Json::Object(vec![
            ("status".to_string(), Json::from_u64(u64::from(self.status))),
            ("headers".to_string(), header_list(&self.headers)),
            ("body".to_string(), Json::String(self.body.clone())),
        ])
        .to_json()
    }
}

/// `{"error":{"code","message"[,"field"]}}`.
pub fn error_body(code: &str, message: &str, field: Option<&str>) -> String {
    let mut out = String::from("{\"error\":{\"code\":");
    write_string(&mut out, code);
    out.push_str(",\"message\":");
    write_string(&mut out, message);
    if let Some(field) = field {
        out.push_str(",\"field\":");
        write_string(&mut out, field);
    }
    out.push_str("}}");
    out
}

/// Headers as a JSON array of `[name, value]` pairs.
pub fn header_list(headers: &[(String, String)]) -> Json {
    Json::Array(
        headers
            .iter()
            .map(|(k, v)| Json::Array(vec![Json::String(k.clone()), Json::String(v.clone())]))
            .collect(),
    )
}

/// Reads `[[name, value], ...]`; names are lower-cased, malformed entries skipped.
pub fn parse_header_list(json: &Json) -> Vec<(String, String)> {
    json.as_array()
        .unwrap_or(&[])
        .iter()
        .filter_map(|pair| match pair.as_array() {
            Some([Json::String(k), Json::String(v)]) => Some((k.to_ascii_lowercase(), v.clone())),
            _ => None,
        })
        .collect()
}

/// A client-supplied text as quoted in a message: JSON-escaped, at most 80 chars.
pub fn shown(text: &str) -> String {
    let mut out = String::new();
    match text.char_indices().nth(80) {
        Some((cut, _)) => write_string(&mut out, &(text[..cut].to_string() + "…")),
        None => write_string(&mut out, text),
    }
    out
}

/// Replaces every occurrence of `secret` in `text`: an upstream body could
/// echo the key back, and the key must reach no client.
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) {
        return text.to_string();
    }
    text.replace(secret, "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_have_one_shape() {
        let cases = [
            (
                Reply::error(404, "not_found", "no"),
                r#"{"error":{"code":"not_found","message":"no"}}"#,
            ),
            (
                Reply::invalid("prompt", "prompt \"x\" bad"),
                r#"{"error":{"code":"invalid_request","message":"prompt \"x\" bad","field":"prompt"}}"#,
            ),
        ];
        for (reply, body) in cases {
            assert_eq!(reply.body, body);
            let parsed = Json::parse(&reply.body).unwrap();
            assert!(parsed.get("error").and_then(|e| e.get("code")).is_some());
            assert!(crate::core::http::error_body_message(&reply.body).is_some());
        }
    }

    #[test]
    fn plan_json_round_trips() {
        let reply =
            Reply::error(405, "method_not_allowed", "m").with_header("allow", "GET, OPTIONS");
        let json = Json::parse(&reply.to_json()).unwrap();
        assert_eq!(json.get("status").and_then(Json::as_i64), Some(405));
        assert_eq!(
            parse_header_list(json.get("headers").unwrap()),
            vec![("allow".to_string(), "GET, OPTIONS".to_string())]
        );
    }

    #[test]
    fn redaction_and_quoting() {
        assert_eq!(
            redact("bad key afk_1 and afk_1", "afk_1"),
            "bad key [redacted] and [redacted]"
        );
        assert_eq!(redact("nothing", ""), "nothing");
        assert_eq!(shown("a\"b"), r#""a\"b""#);
        assert!(shown(&"x".repeat(500)).chars().count() < 90);
    }
}
