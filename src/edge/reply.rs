//! What the worker answers when it answers by itself: a status, headers and
//! a JSON error body `{"error":{"code","message"}}` (plus `field` for a
//! validation error), so every refusal has the same shape.

use crate::core::SoraError;
use serde::Serialize;

/// A response the worker sends without asking the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers (lower-case names), besides `Content-Type`.
    pub headers: Vec<(String, String)>,
    /// The body text (JSON), empty for none.
    pub body: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// Always "edge": tells the client library that the worker itself refused,
    /// not Apiframe, whose error bodies never carry this field.
    source: &'static str,
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

    /// A 200 with a JSON body.
    pub fn json(body: String) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body,
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
                "no route for {} (routes: POST /api/v2/videos/generate, GET /api/v2/jobs/{{uuid}}, GET /api/v2/jobs/{{uuid}}/events, POST /api/v2/jobs/{{uuid}}/ticket, GET /api/usage, POST /api/webhooks/apiframe)",
                shown(path)
            ),
        )
    }

    /// The 404 for a job id this worker did not create: the same answer
    /// whether or not the upstream knows the id, and given without asking it.
    pub fn unknown_job() -> Reply {
        Reply::error(
            404,
            "not_found",
            "no job with this id was created through this worker",
        )
    }

    /// A 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(message: &str, retry_after_s: u32) -> Reply {
        Reply::error(429, "rate_limited", message)
            .with_header("retry-after", &retry_after_s.to_string())
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
}

/// `{"error":{"code","message"[,"field"],"source":"edge"}}`.
pub fn error_body(code: &str, message: &str, field: Option<&str>) -> String {
    serde_json::to_string(&ErrorBody {
        error: ErrorDetail {
            code,
            message,
            field,
            source: "edge",
        },
    })
    .unwrap_or_default()
}

/// A client-supplied text as quoted in a message: JSON-escaped, at most 80 chars.
pub fn shown(text: &str) -> String {
    let cut = match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    };
    serde_json::to_string(&cut).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn error_bodies_have_one_shape() {
        let cases = [
            (
                Reply::error(404, "not_found", "no"),
                r#"{"error":{"code":"not_found","message":"no","source":"edge"}}"#,
            ),
            (
                Reply::invalid("prompt", "prompt \"x\" bad"),
                r#"{"error":{"code":"invalid_request","message":"prompt \"x\" bad","field":"prompt","source":"edge"}}"#,
            ),
        ];
        for (reply, body) in cases {
            assert_eq!(reply.body, body);
            let parsed: Value = serde_json::from_str(&reply.body).unwrap();
            assert!(parsed["error"]["code"].is_string());
            // The client library reads the worker's bodies as it reads Apiframe's.
            let client_view = serde_json::from_str(&reply.body).ok();
            assert!(
                crate::core::http::quoted_error_body(&reply.body, client_view.as_ref()).is_some()
            );
        }
        let limited = Reply::rate_limited("slow down", 60);
        assert_eq!(limited.status, 429);
        assert_eq!(limited.headers, vec![("retry-after".into(), "60".into())]);
    }

    #[test]
    fn quoting() {
        assert_eq!(shown("a\"b"), r#""a\"b""#);
        assert!(shown(&"x".repeat(500)).chars().count() < 90);
    }
}
