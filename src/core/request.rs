//! The generate request: validation by the documented rules, and the mapping
//! from the client's camelCase fields to the upstream's `soraParams`.
//!
//! Two dialects are accepted. The client dialect is `GenerateRequest` from the
//! TypeScript types (`duration`, `aspectRatio`, ...). The wire dialect is the
//! upstream's own JSON (`soraParams.duration`, ...), which the edge worker
//! receives from any Apiframe client. Both run the same rule functions, and
//! errors name the field as the caller spelled it.

use super::error::SoraError;
use super::platform::number_text;
use super::url::parse_http_url;
use super::value::Value;
use serde::Serialize;

/// The longest prompt the upstream accepts, in characters.
pub const MAX_PROMPT_CHARS: usize = 4000;
/// The documented clip lengths, in seconds.
pub const DURATIONS: [i64; 5] = [4, 8, 10, 12, 15];
/// The documented models.
pub const MODELS: [&str; 2] = ["sora-2", "sora-2-pro"];
/// The documented aspect ratios.
pub const ASPECT_RATIOS: [&str; 2] = ["16:9", "9:16"];
/// The documented resolutions; `high` only for sora-2-pro.
pub const RESOLUTIONS: [&str; 2] = ["standard", "high"];
/// The documented webhook events.
pub const WEBHOOK_EVENTS: [&str; 3] = ["progress", "completed", "failed"];

/// A validated request, ready to be sent upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateRequest {
    /// 1 to 4000 characters.
    pub prompt: String,
    /// One of [`MODELS`].
    pub model: String,
    /// Where the upstream posts job events.
    pub webhook_url: Option<String>,
    /// Which events it posts.
    pub webhook_events: Option<Vec<String>>,
    /// The upstream's `soraParams`: validated known keys plus pass-through extras.
    pub sora_params: Vec<(String, Value)>,
}

/// The `soraParams` keys with documented rules, and their client-dialect names.
pub const SORA_PARAMS: [(&str, &str); 4] = [
    ("duration", "duration"),
    ("aspect_ratio", "aspectRatio"),
    ("resolution", "resolution"),
    ("start_image", "startImage"),
];

const CLIENT_FIELDS: [&str; 9] = [
    "prompt",
    "model",
    "duration",
    "aspectRatio",
    "resolution",
    "startImage",
    "webhookUrl",
    "webhookEvents",
    "soraParams",
];

impl GenerateRequest {
    /// Validates a request in the client dialect (the TypeScript `GenerateRequest`).
    ///
    /// # Errors
    /// `invalid_request` naming the first field that breaks a rule.
    pub fn from_client(value: &Value) -> Result<GenerateRequest, SoraError> {
        let Value::Object(given) = value else {
            return Err(SoraError::invalid("request", "request must be an object"));
        };
        // An optional field left `undefined` is absent, as `JSON.stringify`
        // would have it; the browser build reads `undefined` as null.
        let members: Vec<(String, Value)> = given
            .iter()
            .filter(|(_, v)| !matches!(v, Value::Null))
            .cloned()
            .collect();
        for (key, _) in &members {
            if !CLIENT_FIELDS.contains(&key.as_str()) {
                return Err(unknown_client_field(key));
            }
        }
        let value = &Value::Object(members);
        let mut sora_params = sora_params_of(value, "soraParams")?;
        for (wire, client) in SORA_PARAMS {
            if let Some(v) = value.get(client) {
                check_sora_param(wire, v, client)?;
                set_member(&mut sora_params, wire, v.clone());
            }
        }
        Self::build(value, "model", Some("sora-2"), "webhookUrl", sora_params)
    }

    /// Validates a request in the upstream's wire dialect, as the edge worker
    /// receives it. `webhook_url` (the product page's spelling) is accepted.
    ///
    /// # Errors
    /// `invalid_request` naming the first field that breaks a rule.
    pub fn from_wire(value: &Value) -> Result<GenerateRequest, SoraError> {
        if !matches!(value, Value::Object(_)) {
            return Err(SoraError::invalid("body", "body must be a JSON object"));
        }
        let sora_params = sora_params_of(value, "soraParams")?;
        let webhook_field =
            if value.get("webhookUrl").is_none() && value.get("webhook_url").is_some() {
                "webhook_url"
            } else {
                "webhookUrl"
            };
        Self::build(value, "model", None, webhook_field, sora_params)
    }

    fn build(
        value: &Value,
        model_field: &str,
        default_model: Option<&str>,
        webhook_field: &str,
        sora_params: Vec<(String, Value)>,
    ) -> Result<GenerateRequest, SoraError> {
        let prompt = check_prompt(value.get("prompt"))?;
        let model = match (value.get(model_field), default_model) {
            (None, Some(default)) => default.to_string(),
            (v, _) => one_of(model_field, v.unwrap_or(&Value::Null), &MODELS)?.to_string(),
        };
        let resolution_is_high = sora_params
            .iter()
            .any(|(k, v)| k == "resolution" && v.as_str() == Some("high"));
        if resolution_is_high && model != "sora-2-pro" {
            let field = if value.get("resolution").is_some() {
                "resolution"
            } else {
                "soraParams.resolution"
            };
            return Err(SoraError::invalid(
                field,
                [
                    field,
                    " \"high\" is only available with model \"sora-2-pro\" (got model \"",
                    &model,
                    "\")",
                ]
                .concat(),
            ));
        }
        let webhook_url = value
            .get(webhook_field)
            .map(|v| check_webhook_url(webhook_field, v))
            .transpose()?;
        let webhook_events = value
            .get("webhookEvents")
            .map(check_webhook_events)
            .transpose()?;
        Ok(GenerateRequest {
            prompt,
            model,
            webhook_url,
            webhook_events,
            sora_params,
        })
    }

    /// The body for `POST /v2/videos/generate`.
    pub fn wire(&self) -> WireRequest<'_> {
        WireRequest {
            prompt: &self.prompt,
            model: &self.model,
            webhook_url: self.webhook_url.as_deref(),
            webhook_events: self.webhook_events.as_deref(),
            sora_params: (!self.sora_params.is_empty()).then_some(SoraParams(&self.sora_params)),
        }
    }
}

/// The upstream's generate body, in its own spelling.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRequest<'a> {
    prompt: &'a str,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_events: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sora_params: Option<SoraParams<'a>>,
}

/// `soraParams` as an object, its members in order.
pub struct SoraParams<'a>(&'a [(String, Value)]);

impl Serialize for SoraParams<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

fn unknown_client_field(key: &str) -> SoraError {
    let hint = match key {
        "aspect_ratio" => "; use aspectRatio",
        "start_image" => "; use startImage",
        "webhook_url" => "; use webhookUrl",
        "webhook_events" => "; use webhookEvents",
        "sora_params" => "; use soraParams",
        _ => "",
    };
    SoraError::invalid(
        key,
        [
            key,
            " is not a field of GenerateRequest",
            hint,
            " (fields: ",
            &CLIENT_FIELDS.join(", "),
            ")",
        ]
        .concat(),
    )
}

/// The `soraParams` object, with its documented keys checked under the wire names.
fn sora_params_of(value: &Value, field: &str) -> Result<Vec<(String, Value)>, SoraError> {
    let Some(params) = value.get(field) else {
        return Ok(Vec::new());
    };
    let Value::Object(members) = params else {
        return Err(rule_broken(field, "must be an object", params));
    };
    for (key, v) in members {
        if SORA_PARAMS.iter().any(|(wire, _)| wire == key) {
            check_sora_param(key, v, &[field, ".", key].concat())?;
        }
    }
    Ok(members.to_vec())
}

fn check_sora_param(wire_key: &str, value: &Value, field: &str) -> Result<(), SoraError> {
    match wire_key {
        "duration" => check_duration(value, field),
        "aspect_ratio" => one_of(field, value, &ASPECT_RATIOS).map(drop),
        "resolution" => one_of(field, value, &RESOLUTIONS).map(drop),
        _ => check_image_url(value, field),
    }
}

fn check_prompt(value: Option<&Value>) -> Result<String, SoraError> {
    let prompt = match value {
        None => {
            return Err(SoraError::invalid(
                "prompt",
                "prompt is required (a string of 1 to 4000 characters)",
            ))
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(rule_broken(
                "prompt",
                "must be a string of 1 to 4000 characters",
                other,
            ))
        }
    };
    let chars = prompt.chars().count();
    if chars == 0 || prompt.trim().is_empty() {
        return Err(SoraError::invalid(
            "prompt",
            "prompt must not be empty or only whitespace",
        ));
    }
    if chars > MAX_PROMPT_CHARS {
        return Err(SoraError::invalid(
            "prompt",
            [
                "prompt must be at most ",
                &number_text(MAX_PROMPT_CHARS as f64),
                " characters (got ",
                &number_text(chars as f64),
                ")",
            ]
            .concat(),
        ));
    }
    Ok(prompt.clone())
}

fn check_duration(value: &Value, field: &str) -> Result<(), SoraError> {
    match value {
        Value::Number(d) if DURATIONS.iter().any(|&allowed| allowed as f64 == *d) => Ok(()),
        _ => Err(rule_broken(field, "must be one of 4, 8, 10, 12, 15", value)),
    }
}

fn one_of<'a>(field: &str, value: &'a Value, allowed: &[&str]) -> Result<&'a str, SoraError> {
    match value.as_str() {
        Some(s) if allowed.contains(&s) => Ok(s),
        _ => {
            let mut list = String::new();
            for (i, a) in allowed.iter().enumerate() {
                if i > 0 {
                    list.push_str(", ");
                }
                list.push('"');
                list.push_str(a);
                list.push('"');
            }
            Err(rule_broken(
                field,
                &["must be one of ", &list].concat(),
                value,
            ))
        }
    }
}

fn check_image_url(value: &Value, field: &str) -> Result<(), SoraError> {
    let text = value
        .as_str()
        .ok_or_else(|| rule_broken(field, "must be an absolute http(s) URL string", value))?;
    parse_http_url(text)
        .map(drop)
        .map_err(|why| rule_broken(field, why, value))
}

fn check_webhook_url(field: &str, value: &Value) -> Result<String, SoraError> {
    let text = value
        .as_str()
        .ok_or_else(|| rule_broken(field, "must be an absolute https URL string", value))?;
    let url = parse_http_url(text).map_err(|why| rule_broken(field, why, value))?;
    if !url.secure && !url.loopback {
        return Err(rule_broken(
            field,
            "must use https (plain http is allowed only for localhost)",
            value,
        ));
    }
    Ok(text.to_string())
}

fn check_webhook_events(value: &Value) -> Result<Vec<String>, SoraError> {
    let field = "webhookEvents";
    let bad = || {
        rule_broken(
            field,
            "must be an array of \"progress\", \"completed\", \"failed\"",
            value,
        )
    };
    let Value::Array(items) = value else {
        return Err(bad());
    };
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(e) if WEBHOOK_EVENTS.contains(&e) => events.push(e.to_string()),
            _ => return Err(bad()),
        }
    }
    Ok(events)
}

/// Checks an idempotency key by the upstream's rule for its `Idempotency-Key`
/// header: 1 to 255 visible ASCII characters. `field` names the key as the
/// caller gave it: the client's `idempotencyKey` option, or the header
/// itself at the edge.
///
/// # Errors
/// `invalid_request` naming `field`.
pub fn check_idempotency_key(field: &str, key: &str) -> Result<(), SoraError> {
    if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    Err(rule_broken(
        field,
        "must be 1 to 255 visible ASCII characters",
        &Value::String(key.to_string()),
    ))
}

/// `{field} {rule} (got {value})`: the shape of most messages here, built
/// without `format!` so the wasm build links no `core::fmt`.
fn rule_broken(field: &str, rule: &str, value: &Value) -> SoraError {
    SoraError::invalid(
        field,
        [field, " ", rule, " (got ", &value.shown(), ")"].concat(),
    )
}

/// Sets `key` in an object's members, replacing an existing entry in place.
pub fn set_member<V>(members: &mut Vec<(String, V)>, key: &str, value: V) {
    match members.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => members.push((key.to_string(), value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(text: &str) -> Result<GenerateRequest, SoraError> {
        GenerateRequest::from_client(&serde_json::from_str(text).unwrap())
    }

    fn with_prompt(prompt: &str) -> String {
        serde_json::json!({ "prompt": prompt }).to_string()
    }

    fn wire_body(request: &GenerateRequest) -> String {
        serde_json::to_string(&request.wire()).unwrap()
    }

    #[test]
    fn prompt_lengths_count_characters_not_bytes() {
        let cases = [
            ("empty", String::new(), false),
            ("one_char", "a".to_string(), true),
            ("max_ascii", "a".repeat(4000), true),
            ("over_max_ascii", "a".repeat(4001), false),
            ("max_multibyte", "映".repeat(4000), true),
            ("over_max_multibyte", "映".repeat(4001), false),
            ("max_emoji", "🎬".repeat(4000), true),
            ("whitespace_only", "   \n".to_string(), false),
        ];
        for (name, prompt, ok) in cases {
            let result = client(&with_prompt(&prompt));
            assert_eq!(result.is_ok(), ok, "{name}");
            if let Err(e) = result {
                assert_eq!(e.field.as_deref(), Some("prompt"), "{name}");
            }
        }
    }

    #[test]
    fn invalid_fields_are_named_with_rule_and_value() {
        let cases = [
            ("missing_prompt", r#"{}"#, "prompt", "required"),
            ("prompt_number", r#"{"prompt":5}"#, "prompt", "got 5"),
            (
                "unknown_model",
                r#"{"prompt":"a","model":"sora-3"}"#,
                "model",
                "\"sora-2\", \"sora-2-pro\" (got \"sora-3\")",
            ),
            (
                "duration_5",
                r#"{"prompt":"a","duration":5}"#,
                "duration",
                "must be one of 4, 8, 10, 12, 15 (got 5)",
            ),
            (
                "duration_string",
                r#"{"prompt":"a","duration":"8"}"#,
                "duration",
                "(got \"8\")",
            ),
            (
                "duration_fraction",
                r#"{"prompt":"a","duration":8.5}"#,
                "duration",
                "got 8.5",
            ),
            (
                "duration_in_sora_params",
                r#"{"prompt":"a","soraParams":{"duration":7}}"#,
                "soraParams.duration",
                "got 7",
            ),
            (
                "aspect_1_1",
                r#"{"prompt":"a","aspectRatio":"1:1"}"#,
                "aspectRatio",
                "\"16:9\", \"9:16\" (got \"1:1\")",
            ),
            (
                "resolution_bad",
                r#"{"prompt":"a","resolution":"4k"}"#,
                "resolution",
                "got \"4k\"",
            ),
            (
                "high_needs_pro",
                r#"{"prompt":"a","resolution":"high"}"#,
                "resolution",
                "sora-2-pro",
            ),
            (
                "image_relative",
                r#"{"prompt":"a","startImage":"/a.jpg"}"#,
                "startImage",
                "absolute http(s) URL",
            ),
            (
                "image_javascript",
                r#"{"prompt":"a","startImage":"javascript:alert(1)"}"#,
                "startImage",
                "absolute",
            ),
            (
                "image_data",
                r#"{"prompt":"a","startImage":"data:image/png;base64,AA"}"#,
                "startImage",
                "absolute",
            ),
            (
                "image_not_string",
                r#"{"prompt":"a","startImage":{}}"#,
                "startImage",
                "got {}",
            ),
            (
                "webhook_http_remote",
                r#"{"prompt":"a","webhookUrl":"http://example.com/h"}"#,
                "webhookUrl",
                "https",
            ),
            (
                "webhook_relative",
                r#"{"prompt":"a","webhookUrl":"/hook"}"#,
                "webhookUrl",
                "absolute",
            ),
            (
                "webhook_events_bad",
                r#"{"prompt":"a","webhookEvents":["done"]}"#,
                "webhookEvents",
                "\"progress\"",
            ),
            (
                "webhook_events_not_array",
                r#"{"prompt":"a","webhookEvents":"completed"}"#,
                "webhookEvents",
                "array",
            ),
            (
                "sora_params_array",
                r#"{"prompt":"a","soraParams":[]}"#,
                "soraParams",
                "object",
            ),
            (
                "snake_case_typo",
                r#"{"prompt":"a","aspect_ratio":"16:9"}"#,
                "aspect_ratio",
                "use aspectRatio",
            ),
        ];
        for (name, text, field, needle) in cases {
            let err = client(text).expect_err(name);
            assert_eq!(err.code.as_str(), "invalid_request", "{name}");
            assert_eq!(err.field.as_deref(), Some(field), "{name}");
            assert!(err.message.contains(field), "{name}: {}", err.message);
            assert!(err.message.contains(needle), "{name}: {}", err.message);
        }
    }

    #[test]
    fn every_documented_value_is_accepted() {
        for d in DURATIONS {
            assert!(
                client(&format!(r#"{{"prompt":"a","duration":{d}}}"#)).is_ok(),
                "duration {d}"
            );
        }
        for ar in ASPECT_RATIOS {
            assert!(
                client(&format!(r#"{{"prompt":"a","aspectRatio":"{ar}"}}"#)).is_ok(),
                "{ar}"
            );
        }
        let ok = [
            r#"{"prompt":"a","model":"sora-2-pro","resolution":"high"}"#,
            r#"{"prompt":"a","resolution":"standard"}"#,
            r#"{"prompt":"a","webhookUrl":"http://localhost:8787/h"}"#,
            r#"{"prompt":"a","webhookUrl":"https://example.com/h","webhookEvents":["progress","completed","failed"]}"#,
            r#"{"prompt":"a","startImage":"https://example.com/a.jpg?x=1"}"#,
        ];
        for text in ok {
            assert!(client(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn camel_case_maps_to_sora_params_and_extras_pass_through() {
        let request = client(
            r#"{"prompt":"p","model":"sora-2-pro","duration":8,"aspectRatio":"9:16","resolution":"high",
                "startImage":"https://e.test/i.png","webhookUrl":"https://h.test/w","webhookEvents":["completed"],
                "soraParams":{"reference_image":"https://e.test/r.png","seed":42,"duration":4}}"#,
        )
        .unwrap();
        assert_eq!(
            wire_body(&request),
            r#"{"prompt":"p","model":"sora-2-pro","webhookUrl":"https://h.test/w","webhookEvents":["completed"],"soraParams":{"reference_image":"https://e.test/r.png","seed":42,"duration":8,"aspect_ratio":"9:16","resolution":"high","start_image":"https://e.test/i.png"}}"#
        );
    }

    #[test]
    fn fields_left_undefined_or_null_are_absent() {
        let request = client(r#"{"prompt":"a","duration":null,"webhookUrl":null}"#).unwrap();
        assert_eq!(wire_body(&request), r#"{"prompt":"a","model":"sora-2"}"#);
        let err = client(r#"{"prompt":null}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("prompt"));
    }

    #[test]
    fn minimal_request_defaults_the_model_and_sends_no_sora_params() {
        let request = client(r#"{"prompt":"hi \"there\""}"#).unwrap();
        assert_eq!(
            wire_body(&request),
            r#"{"prompt":"hi \"there\"","model":"sora-2"}"#
        );
    }

    #[test]
    fn wire_dialect_names_wire_fields_and_accepts_webhook_url_spelling() {
        let wire = |t: &str| GenerateRequest::from_wire(&serde_json::from_str(t).unwrap());
        let cases = [
            ("model_required", r#"{"prompt":"a"}"#, Some("model")),
            (
                "duration",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"duration":5}}"#,
                Some("soraParams.duration"),
            ),
            (
                "high",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"resolution":"high"}}"#,
                Some("soraParams.resolution"),
            ),
            ("not_object", r#"[1]"#, Some("body")),
            (
                "product_page_example",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"start_image":"https://example.com/input.jpg"}}"#,
                None,
            ),
        ];
        for (name, text, field) in cases {
            assert_eq!(
                wire(text).err().and_then(|e| e.field),
                field.map(String::from),
                "{name}"
            );
        }
        let snake =
            wire(r#"{"prompt":"a","model":"sora-2","webhook_url":"https://h.test/w"}"#).unwrap();
        assert_eq!(snake.webhook_url.as_deref(), Some("https://h.test/w"));
        assert!(wire_body(&snake).contains(r#""webhookUrl":"https://h.test/w""#));
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let err = client(&format!(
            r#"{{"prompt":"a","aspectRatio":"{}"}}"#,
            "x".repeat(500)
        ))
        .unwrap_err();
        assert!(err.message.len() < 300, "{}", err.message);
    }
}
