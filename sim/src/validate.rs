//! Validation of `POST /v2/videos/generate` bodies (docs/UPSTREAM.md) and the
//! simulator's prompt markers.

use serde_json::{Map, Value};

pub const DURATIONS: [i64; 5] = [4, 8, 10, 12, 15];
pub const EVENTS: [&str; 3] = ["progress", "completed", "failed"];
/// When `webhookEvents` is absent, a job with a webhook URL gets the terminal
/// events only. The docs do not say what the default is; progress events are
/// chatty, so we chose `["completed", "failed"]`.
pub const DEFAULT_EVENTS: [&str; 2] = ["completed", "failed"];
pub const DEFAULT_FAIL_REASON: &str = "Provider returned an error: content policy violation";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &str, must: &str, got: &str) -> Invalid {
        Invalid {
            field: field.to_string(),
            message: format!("{field} must {must} (got {got})"),
        }
    }
    pub fn to_json(&self) -> Value {
        serde_json::json!({"error": {"code": "invalid_request", "message": self.message, "field": self.field}})
    }
}

/// A validated generate request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generate {
    pub prompt: String,
    pub model: String,
    pub duration: i64,
    pub webhook_url: Option<String>,
    pub webhook_events: Vec<String>,
}

impl Generate {
    pub fn credit_cost(&self) -> i64 {
        if self.model == "sora-2-pro" {
            self.duration * 3
        } else {
            self.duration
        }
    }
}

/// Short description of a value for error messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let short: String = s.chars().take(60).collect();
            let q = Value::String(short).to_string();
            if s.chars().count() > 60 {
                format!("{}…\"", &q[..q.len() - 1])
            } else {
                q
            }
        }
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// `true` for an absolute http(s) URL with a host, written out in full
/// (`scheme://`, no whitespace): the WHATWG parser would also take
/// `http:host` or surrounding spaces, which a client should not send.
pub fn is_http_url(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match url::Url::parse(s) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https")
                && s[u.scheme().len()..].starts_with("://")
                && u.host_str().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

/// Optional field: absent and `null` both count as absent.
fn opt<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).filter(|v| !v.is_null())
}

pub fn validate(body: &Value) -> Result<Generate, Invalid> {
    let m = match body {
        Value::Object(m) => m,
        other => return Err(Invalid::new("body", "be a JSON object", &describe(other))),
    };

    let prompt = match m.get("prompt") {
        None | Some(Value::Null) => {
            return Err(Invalid::new(
                "prompt",
                "be a string of 1 to 4000 characters",
                "nothing",
            ))
        }
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n == 0 || n > 4000 {
                return Err(Invalid::new(
                    "prompt",
                    "be 1 to 4000 characters",
                    &format!("{n} characters"),
                ));
            }
            s.clone()
        }
        Some(other) => {
            return Err(Invalid::new(
                "prompt",
                "be a string of 1 to 4000 characters",
                &describe(other),
            ))
        }
    };

    let model = match m.get("model") {
        Some(Value::String(s)) if s == "sora-2" || s == "sora-2-pro" => s.clone(),
        None | Some(Value::Null) => {
            return Err(Invalid::new(
                "model",
                "be \"sora-2\" or \"sora-2-pro\"",
                "nothing",
            ))
        }
        Some(other) => {
            return Err(Invalid::new(
                "model",
                "be \"sora-2\" or \"sora-2-pro\"",
                &describe(other),
            ))
        }
    };

    let mut duration = 4;
    if let Some(sp) = opt(m, "soraParams") {
        let sp = match sp {
            Value::Object(sp) => sp,
            other => return Err(Invalid::new("soraParams", "be an object", &describe(other))),
        };
        if let Some(d) = opt(sp, "duration") {
            match d.as_i64() {
                Some(n) if DURATIONS.contains(&n) => duration = n,
                _ => {
                    return Err(Invalid::new(
                        "soraParams.duration",
                        "be one of 4, 8, 10, 12, 15",
                        &describe(d),
                    ))
                }
            }
        }
        if let Some(a) = opt(sp, "aspect_ratio") {
            if !matches!(a.as_str(), Some("16:9") | Some("9:16")) {
                return Err(Invalid::new(
                    "soraParams.aspect_ratio",
                    "be \"16:9\" or \"9:16\"",
                    &describe(a),
                ));
            }
        }
        if let Some(r) = opt(sp, "resolution") {
            match r.as_str() {
                Some("standard") => {}
                Some("high") if model == "sora-2-pro" => {}
                Some("high") => {
                    return Err(Invalid::new(
                        "soraParams.resolution",
                        "be \"standard\" for sora-2 (\"high\" needs sora-2-pro)",
                        &describe(r),
                    ))
                }
                _ => {
                    let must = if model == "sora-2-pro" {
                        "be \"standard\" or \"high\""
                    } else {
                        "be \"standard\""
                    };
                    return Err(Invalid::new("soraParams.resolution", must, &describe(r)));
                }
            }
        }
        if let Some(u) = opt(sp, "start_image") {
            if !u.as_str().map(is_http_url).unwrap_or(false) {
                return Err(Invalid::new(
                    "soraParams.start_image",
                    "be an absolute http(s) URL",
                    &describe(u),
                ));
            }
        }
        // Other soraParams keys pass through untouched.
    }

    let mut webhook_url = None;
    for key in ["webhookUrl", "webhook_url"] {
        if let Some(u) = opt(m, key) {
            match u.as_str() {
                Some(s) if is_http_url(s) => {
                    if webhook_url.is_none() {
                        webhook_url = Some(s.to_string());
                    }
                }
                _ => {
                    return Err(Invalid::new(
                        key,
                        "be an absolute http(s) URL",
                        &describe(u),
                    ))
                }
            }
        }
    }

    let webhook_events = match opt(m, "webhookEvents") {
        None => DEFAULT_EVENTS.iter().map(|s| s.to_string()).collect(),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                match it.as_str() {
                    Some(s) if EVENTS.contains(&s) => {
                        if !out.iter().any(|e: &String| e == s) {
                            out.push(s.to_string())
                        }
                    }
                    _ => {
                        return Err(Invalid::new(
                            &format!("webhookEvents[{i}]"),
                            "be \"progress\", \"completed\" or \"failed\"",
                            &describe(it),
                        ))
                    }
                }
            }
            out
        }
        Some(other) => {
            return Err(Invalid::new(
                "webhookEvents",
                "be an array of \"progress\", \"completed\", \"failed\"",
                &describe(other),
            ))
        }
    };

    Ok(Generate {
        prompt,
        model,
        duration,
        webhook_url,
        webhook_events,
    })
}

/// Markers parsed from a prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markers {
    /// `[fail]` or `[fail:reason]`.
    pub fail: Option<String>,
    /// `[ms=1500]`.
    pub ms: Option<u64>,
    /// `[shape=object]` -> Some(true), `[shape=string]` -> Some(false).
    pub object_shape: Option<bool>,
}

pub fn markers(prompt: &str) -> Markers {
    let mut m = Markers::default();
    let mut rest = prompt;
    while let Some(start) = rest.find('[') {
        let after = &rest[start + 1..];
        let Some(end) = after.find(']') else { break };
        let inner = &after[..end];
        if inner == "fail" {
            m.fail = Some(DEFAULT_FAIL_REASON.to_string());
        } else if let Some(reason) = inner.strip_prefix("fail:") {
            let reason = reason.trim();
            m.fail = Some(if reason.is_empty() {
                DEFAULT_FAIL_REASON.to_string()
            } else {
                reason.to_string()
            });
        } else if let Some(ms) = inner.strip_prefix("ms=") {
            if let Ok(ms) = ms.trim().parse::<u64>() {
                m.ms = Some(ms);
            }
        } else if inner == "shape=object" {
            m.object_shape = Some(true);
        } else if inner == "shape=string" {
            m.object_shape = Some(false);
        }
        // Resume right after '[' so that "[[fail]" still finds "[fail]".
        rest = after;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(v: Value) -> String {
        match validate(&v) {
            Ok(_) => "ok".into(),
            Err(e) => e.field,
        }
    }

    #[test]
    fn validation_table() {
        let long = "x".repeat(4000);
        let too_long = "x".repeat(4001);
        // 4000 three-byte characters: 12000 bytes but 4000 characters.
        let wide = "é".repeat(4000);
        let cases: Vec<(Value, &str)> = vec![
            (json!({"prompt": "a", "model": "sora-2"}), "ok"),
            (json!({"prompt": long, "model": "sora-2-pro"}), "ok"),
            (json!({"prompt": wide, "model": "sora-2"}), "ok"),
            (json!({"prompt": too_long, "model": "sora-2"}), "prompt"),
            (json!({"prompt": "", "model": "sora-2"}), "prompt"),
            (json!({"prompt": 5, "model": "sora-2"}), "prompt"),
            (json!({"model": "sora-2"}), "prompt"),
            (json!({"prompt": "a"}), "model"),
            (json!({"prompt": "a", "model": "sora-3"}), "model"),
            (json!([1, 2]), "body"),
            (json!("str"), "body"),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": 3}),
                "soraParams",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": null}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"duration": 8}}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"duration": 15}}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"duration": 5}}),
                "soraParams.duration",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"duration": "8"}}),
                "soraParams.duration",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"duration": 8.5}}),
                "soraParams.duration",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"aspect_ratio": "9:16"}}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"aspect_ratio": "1:1"}}),
                "soraParams.aspect_ratio",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"resolution": "standard"}}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"resolution": "high"}}),
                "soraParams.resolution",
            ),
            (
                json!({"prompt": "a", "model": "sora-2-pro", "soraParams": {"resolution": "high"}}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2-pro", "soraParams": {"resolution": "4k"}}),
                "soraParams.resolution",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"start_image": "https://x.test/a.png"}}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"start_image": "/a.png"}}),
                "soraParams.start_image",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"start_image": "ftp://x/a.png"}}),
                "soraParams.start_image",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "soraParams": {"reference_image": "anything", "seed": 3}}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "webhookUrl": "http://127.0.0.1:9/hook"}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "webhook_url": "https://h.test/hook"}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "webhookUrl": "hook"}),
                "webhookUrl",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "webhook_url": "http://"}),
                "webhook_url",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "webhookEvents": ["progress", "completed"]}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "webhookEvents": []}),
                "ok",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "webhookEvents": ["done"]}),
                "webhookEvents[0]",
            ),
            (
                json!({"prompt": "a", "model": "sora-2", "webhookEvents": "completed"}),
                "webhookEvents",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(field(body.clone()), want, "body: {body}");
        }
    }

    #[test]
    fn messages_and_defaults() {
        let e = validate(&json!({"prompt": "a", "model": "sora-2", "soraParams": {"duration": 5}}))
            .unwrap_err();
        assert_eq!(
            e.message,
            "soraParams.duration must be one of 4, 8, 10, 12, 15 (got 5)"
        );
        let j = e.to_json();
        assert_eq!(j["error"]["code"], "invalid_request");
        assert_eq!(j["error"]["field"], "soraParams.duration");
        let e = validate(&json!({"prompt": "x".repeat(4001), "model": "sora-2"})).unwrap_err();
        assert_eq!(
            e.message,
            "prompt must be 1 to 4000 characters (got 4001 characters)"
        );

        let g = validate(&json!({"prompt": "a", "model": "sora-2"})).unwrap();
        assert_eq!(g.duration, 4);
        assert_eq!(g.credit_cost(), 4);
        assert_eq!(g.webhook_events, vec!["completed", "failed"]);
        let g = validate(
            &json!({"prompt": "a", "model": "sora-2-pro", "soraParams": {"duration": 12}}),
        )
        .unwrap();
        assert_eq!(g.credit_cost(), 36);
        let g = validate(&json!({"prompt": "a", "model": "sora-2", "webhook_url": "http://h/x"}))
            .unwrap();
        assert_eq!(g.webhook_url.as_deref(), Some("http://h/x"));
    }

    #[test]
    fn urls() {
        assert!(is_http_url("http://127.0.0.1:8080/x?y=1"));
        assert!(is_http_url("HTTPS://example.com"));
        assert!(is_http_url("http://[::1]:80/"));
        assert!(!is_http_url("http://"));
        assert!(!is_http_url("http://:80/"));
        assert!(!is_http_url("http://a b/"));
        assert!(!is_http_url("example.com/x"));
        assert!(!is_http_url("http:example.com/x"));
        assert!(!is_http_url(" http://example.com/x"));
        assert!(!is_http_url("ftp://example.com/x"));
    }

    #[test]
    fn prompt_markers() {
        assert_eq!(markers("a cat"), Markers::default());
        let m = markers("a cat [fail] [ms=1500] [shape=object]");
        assert_eq!(m.fail.as_deref(), Some(DEFAULT_FAIL_REASON));
        assert_eq!(m.ms, Some(1500));
        assert_eq!(m.object_shape, Some(true));
        let m = markers("[fail:quota exceeded upstream] [shape=string] [ms=abc]");
        assert_eq!(m.fail.as_deref(), Some("quota exceeded upstream"));
        assert_eq!(m.ms, None);
        assert_eq!(m.object_shape, Some(false));
        assert_eq!(
            markers("[[fail]").fail.as_deref(),
            Some(DEFAULT_FAIL_REASON)
        );
        assert_eq!(markers("[unclosed").fail, None);
    }
}
