//! The generate body: validated with the library's own wire-format rules,
//! then rewritten so that the worker, not the client, chooses where the
//! upstream's webhooks go.
//!
//! Its members are an allowlist: the documented fields, and in `soraParams`
//! the documented parameters plus those the operator names in
//! `EXTRA_SORA_PARAMS`. Anything else could be a way to make the upstream
//! call out (`callbackUrl`, `notify_url`) and is refused by name.

use super::reply::{shown, Reply};
use crate::core::request::SORA_PARAMS;
use crate::core::GenerateRequest;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

/// Where the worker receives the upstream's webhooks, under `PUBLIC_URL`.
pub const WEBHOOK_PATH: &str = "/api/webhooks/apiframe";

/// The events the worker subscribes to for relay.
pub const RELAY_EVENTS: [&str; 3] = ["progress", "completed", "failed"];

/// The top-level members a client may send. `webhookEvents` is checked and
/// then replaced by the worker's own choice.
pub const ACCEPTED_FIELDS: [&str; 4] = ["prompt", "model", "soraParams", "webhookEvents"];

/// The worker's own webhook URL from `PUBLIC_URL`; `None` (relay off) when
/// it is unset, empty, or not an absolute http(s) URL.
pub fn own_webhook_url(public_url: &str) -> Option<String> {
    let base = public_url.trim().trim_end_matches('/');
    let url = Url::parse(base).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.has_host())
        .then(|| format!("{base}{WEBHOOK_PATH}"))
}

/// Parses a request body as UTF-8 JSON.
///
/// # Errors
/// 400 naming `body` for bytes that are not UTF-8 or not JSON.
pub fn parse_body(body: &[u8]) -> Result<Value, Reply> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Reply::invalid(
            "body",
            &format!("body is not UTF-8 (at byte {})", e.valid_up_to()),
        )
    })?;
    serde_json::from_str(text).map_err(|e| {
        Reply::invalid(
            "body",
            &format!(
                "body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// A key as compared for webhook fields: case, `_` and `-` do not matter.
fn folded(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn refuse(field: &str) -> Reply {
    Reply::invalid(
        field,
        &format!("{field} may not be set by the client: this worker receives the webhooks itself and relays them (GET /api/v2/jobs/{{id}}/events); remove {field}"),
    )
}

/// Refuses a client-chosen webhook anywhere the upstream might read one: a
/// top-level `webhookUrl` in any spelling, and any `webhook…` key inside
/// `soraParams`, whatever `extra_params` allows.
fn refuse_client_webhooks(body: &Map<String, Value>) -> Result<(), Reply> {
    if let Some(key) = body.keys().find(|k| folded(k) == "webhookurl") {
        return Err(refuse(key));
    }
    if let Some(Value::Object(params)) = body.get("soraParams") {
        if let Some(key) = params.keys().find(|k| folded(k).starts_with("webhook")) {
            return Err(refuse(&format!("soraParams.{key}")));
        }
    }
    Ok(())
}

/// Refuses every member that is not allowed: at the top level, any but
/// [`ACCEPTED_FIELDS`]; in `soraParams`, any but the documented parameters
/// and `extra_params`.
fn refuse_unknown_members(body: &Map<String, Value>, extra_params: &[String]) -> Result<(), Reply> {
    if let Some(key) = body.keys().find(|k| !ACCEPTED_FIELDS.contains(&k.as_str())) {
        return Err(Reply::invalid(
            key,
            &format!(
                "{} is not a field of the generate body (fields: {})",
                shown(key),
                ACCEPTED_FIELDS.join(", ")
            ),
        ));
    }
    let Some(Value::Object(params)) = body.get("soraParams") else {
        return Ok(());
    };
    let allowed: Vec<&str> = SORA_PARAMS
        .iter()
        .map(|(wire, _)| *wire)
        .chain(extra_params.iter().map(String::as_str))
        .collect();
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(Reply::invalid(
            &format!("soraParams.{key}"),
            &format!(
                "soraParams member {} is not an allowed parameter (allowed: {}); the operator of this worker can allow it by adding it to EXTRA_SORA_PARAMS",
                shown(key),
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// Validates a generate body and returns the body to send upstream.
///
/// With relay on (`webhook_url` is the worker's own), the body gets that
/// `webhookUrl` and `webhookEvents` ["progress","completed","failed"].
/// Without relay, no webhook fields are sent. `extra_params` are the
/// `soraParams` keys allowed besides the documented ones (`EXTRA_SORA_PARAMS`).
///
/// # Errors
/// 400 naming the field: invalid JSON (`body`), a client-chosen webhook URL,
/// a member not allowed, or any rule of the wire format.
pub fn rewrite(
    body: &[u8],
    webhook_url: Option<&str>,
    extra_params: &[String],
) -> Result<String, Reply> {
    let value = parse_body(body)?;
    let object = value
        .as_object()
        .ok_or_else(|| Reply::invalid("body", "body must be a JSON object"))?;
    refuse_client_webhooks(object)?;
    refuse_unknown_members(object, extra_params)?;
    // The wire-format rules are the library's (crate::core::request), read from
    // the core's serde value: one set of rules for the client and the edge.
    let core_value = crate::core::Value::deserialize(&value)
        .map_err(|_| Reply::invalid("body", "body is not valid JSON"))?;
    let mut request =
        GenerateRequest::from_wire(&core_value).map_err(|e| Reply::from_validation(&e))?;
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
    Ok(serde_json::to_string(&request.wire()).unwrap_or_default())
}

/// The model and `soraParams.duration` of a body [`rewrite`] made: what
/// the ledger counts.
pub fn model_and_duration(rewritten: &str) -> (String, Option<u64>) {
    let value: Value = serde_json::from_str(rewritten).unwrap_or_default();
    let model = value["model"].as_str().unwrap_or_default().to_string();
    (model, value["soraParams"]["duration"].as_u64())
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
        let cases: [(&str, &[u8], &str); 19] = [
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
            (
                "client_webhook_url_capitals",
                br#"{"prompt":"a","model":"sora-2","WebhookURL":"https://evil.test/h"}"#,
                "WebhookURL",
            ),
            (
                "client_webhook_url_kebab",
                br#"{"prompt":"a","model":"sora-2","webhook-url":"https://evil.test/h"}"#,
                "webhook-url",
            ),
            (
                "nested_webhook_url",
                br#"{"prompt":"a","model":"sora-2","soraParams":{"webhookUrl":"https://evil.test/h"}}"#,
                "soraParams.webhookUrl",
            ),
            (
                "nested_webhook_url_snake",
                br#"{"prompt":"a","model":"sora-2","soraParams":{"webhook_url":"https://evil.test/h"}}"#,
                "soraParams.webhook_url",
            ),
            (
                "nested_webhook_url_upper",
                br#"{"prompt":"a","model":"sora-2","soraParams":{"WEBHOOK_URL":"https://evil.test/h"}}"#,
                "soraParams.WEBHOOK_URL",
            ),
            (
                "nested_webhook_events",
                br#"{"prompt":"a","model":"sora-2","soraParams":{"webhookEvents":["completed"]}}"#,
                "soraParams.webhookEvents",
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
            (
                "webhook_in_sora_params_with_dashes",
                br#"{"prompt":"a","model":"sora-2","soraParams":{"Webhook-Url":"x"}}"#,
                "soraParams.Webhook-Url",
            ),
        ];
        for (name, body, field) in cases {
            let reply = rewrite(body, Some(HOOK), &[]).expect_err(name);
            assert_eq!(reply.status, 400, "{name}");
            let json: Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(json["error"]["field"], field, "{name}: {}", reply.body);
            assert_eq!(json["error"]["code"], "invalid_request", "{name}");
        }
    }

    #[test]
    fn members_by_allowlist() {
        const WEBHOOK: &str = "receives the webhooks itself";
        const EXTRA: &str = "adding it to EXTRA_SORA_PARAMS";
        let seed = ["seed".to_string()];
        /// A case, its body, its extra parameters, and the field it is
        /// refused for with a part of the message; `None` when accepted.
        type Row<'a> = (&'a str, &'a str, &'a [String], Option<(&'a str, &'a str)>);
        let cases: [Row; 13] = [
            (
                "every_documented_member",
                r#"{"prompt":"a","model":"sora-2-pro","webhookEvents":["completed"],"soraParams":{"duration":8,"aspect_ratio":"16:9","resolution":"high","start_image":"https://cdn.test/a.png"}}"#,
                &[],
                None,
            ),
            (
                "callback_url",
                r#"{"prompt":"a","model":"sora-2","callbackUrl":"https://evil.test/h"}"#,
                &[],
                Some(("callbackUrl", "\"callbackUrl\" is not a field")),
            ),
            (
                "notify_url",
                r#"{"prompt":"a","model":"sora-2","notify_url":"https://evil.test/h"}"#,
                &[],
                Some(("notify_url", "\"notify_url\" is not a field")),
            ),
            (
                "unknown_top_level",
                r#"{"prompt":"a","model":"sora-2","future_field":1}"#,
                &[],
                Some((
                    "future_field",
                    "fields: prompt, model, soraParams, webhookEvents",
                )),
            ),
            (
                "webhook_url_keeps_its_message",
                r#"{"prompt":"a","model":"sora-2","webhook_url":"https://evil.test/h"}"#,
                &[],
                Some(("webhook_url", WEBHOOK)),
            ),
            (
                "nested_callback_url",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"callbackUrl":"https://evil.test/h"}}"#,
                &[],
                Some(("soraParams.callbackUrl", EXTRA)),
            ),
            (
                "nested_notify_url",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"notify_url":"https://evil.test/h"}}"#,
                &[],
                Some(("soraParams.notify_url", EXTRA)),
            ),
            (
                "nested_webhook_url",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"webhook_url":"https://evil.test/h"}}"#,
                &[],
                Some(("soraParams.webhook_url", WEBHOOK)),
            ),
            (
                "extra_cannot_allow_a_webhook",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"webhook_url":"https://evil.test/h"}}"#,
                &["webhook_url".to_string()],
                Some(("soraParams.webhook_url", WEBHOOK)),
            ),
            (
                "seed_not_allowed",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"seed":7}}"#,
                &[],
                Some((
                    "soraParams.seed",
                    "member \"seed\" is not an allowed parameter",
                )),
            ),
            (
                "seed_allowed",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"seed":7}}"#,
                &seed,
                None,
            ),
            (
                "extra_is_for_sora_params_only",
                r#"{"prompt":"a","model":"sora-2","seed":7}"#,
                &seed,
                Some(("seed", "\"seed\" is not a field")),
            ),
            (
                "extra_allows_only_itself",
                r#"{"prompt":"a","model":"sora-2","soraParams":{"seed":7,"style":"x"}}"#,
                &seed,
                Some((
                    "soraParams.style",
                    "allowed: duration, aspect_ratio, resolution, start_image, seed",
                )),
            ),
        ];
        for (name, body, extra, refusal) in cases {
            let result = rewrite(body.as_bytes(), Some(HOOK), extra);
            match refusal {
                None => assert!(result.is_ok(), "{name}: {result:?}"),
                Some((field, message)) => {
                    let reply = result.expect_err(name);
                    let json: Value = serde_json::from_str(&reply.body).unwrap();
                    assert_eq!(reply.status, 400, "{name}");
                    assert_eq!(json["error"]["code"], "invalid_request", "{name}");
                    assert_eq!(json["error"]["field"], field, "{name}");
                    let text = json["error"]["message"].as_str().unwrap();
                    assert!(text.contains(message), "{name}: {text}");
                }
            }
        }
    }

    #[test]
    fn what_the_ledger_counts() {
        let body = rewrite(
            br#"{"prompt":"a","model":"sora-2-pro","soraParams":{"duration":12}}"#,
            None,
            &[],
        )
        .unwrap();
        assert_eq!(
            model_and_duration(&body),
            ("sora-2-pro".to_string(), Some(12))
        );
        let bare = rewrite(br#"{"prompt":"a","model":"sora-2"}"#, None, &[]).unwrap();
        assert_eq!(model_and_duration(&bare), ("sora-2".to_string(), None));
    }

    #[test]
    fn relay_sets_the_workers_own_webhook() {
        // An operator-allowed parameter passes through as it came.
        let extra = ["future_field".to_string()];
        let body = br#"{"prompt":"a cat [ms=1500]","model":"sora-2","webhookEvents":["completed"],"soraParams":{"duration":8,"future_field":{"x":1}}}"#;
        assert_eq!(
            rewrite(body, Some(HOOK), &extra).unwrap(),
            r#"{"prompt":"a cat [ms=1500]","model":"sora-2","webhookUrl":"https://worker.test/api/webhooks/apiframe","webhookEvents":["progress","completed","failed"],"soraParams":{"duration":8,"future_field":{"x":1}}}"#
        );
        assert_eq!(
            rewrite(body, None, &extra).unwrap(),
            r#"{"prompt":"a cat [ms=1500]","model":"sora-2","soraParams":{"duration":8,"future_field":{"x":1}}}"#
        );
    }
}
