//! The edge worker's exports (feature `edge`): thin wrappers that take and
//! return strings, numbers and bytes, with JSON for anything structured.
//! Every decision is in `crate::edge`; `worker/index.js` only acts on them.
//!
//! The per-request calls are kept lean (issue 5): the configuration is
//! decided once and then named by a small id, and request and response
//! headers cross as one flat `name\nvalue\n...` string rather than JSON.

use crate::core::http::parse_retry_after;
use crate::core::Json;
use crate::edge::config::Config;
use crate::edge::headers::MAX_BODY_BYTES;
use crate::edge::plan::{plan, Decision};
use crate::edge::reply::{header_list, Reply};
use crate::edge::{generate, relay, sse, upstream, webhook};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

thread_local! {
    /// Every distinct configuration decided so far; `edgeConfig` returns an
    /// index into this, which the per-request calls take instead of the env.
    static CONFIGS: RefCell<Vec<Config>> = const { RefCell::new(Vec::new()) };
}

/// The id of `config` in [`CONFIGS`], adding it when it is new.
fn register(config: Config) -> u32 {
    CONFIGS.with(|configs| {
        let mut configs = configs.borrow_mut();
        let at = match configs.iter().position(|c| *c == config) {
            Some(at) => at,
            None => {
                configs.push(config);
                configs.len() - 1
            }
        };
        u32::try_from(at).unwrap_or(u32::MAX)
    })
}

/// Headers from the worker's flat form `name\nvalue\n...` (header names and
/// values never contain a line feed); names are lower-cased.
fn flat_headers(flat: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut parts = flat.split('\n');
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        out.push((name.to_ascii_lowercase(), value.to_string()));
    }
    out
}

fn s(text: &str) -> Json {
    Json::String(text.to_string())
}

fn obj(members: Vec<(&str, Json)>) -> String {
    Json::Object(
        members
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
    .to_json()
}

/// `{"reply": plan}`: what the worker sends when a step refuses.
fn refusal(reply: &Reply) -> String {
    format!("{{\"reply\":{}}}", reply.to_json())
}

/// The configuration from the worker's environment, as
/// `{"APIFRAME_BASE_URL", "ALLOWED_ORIGINS", "PUBLIC_URL", "RELAY_FALLBACK_MS",
/// "RELAY_HEARTBEAT_MS", "hasKey"}`.
fn config_of(env_json: &str) -> Config {
    let env = Json::parse(env_json).unwrap_or(Json::Null);
    let text = |key: &str| env.get(key).and_then(Json::as_str);
    Config::from_env(
        text("APIFRAME_BASE_URL"),
        text("ALLOWED_ORIGINS"),
        text("PUBLIC_URL"),
        text("RELAY_FALLBACK_MS"),
        text("RELAY_HEARTBEAT_MS"),
        env.get("hasKey") == Some(&Json::Bool(true)),
    )
}

/// The settings the worker runs with: `{id, baseUrl, webhookUrl, relay,
/// fallbackFirstMs, maxBody, problem, sse: {preamble, heartbeat, heartbeatMs}}`;
/// `id` names this configuration in [`edge_plan`].
#[wasm_bindgen(js_name = edgeConfig)]
pub fn edge_config(env_json: &str) -> String {
    let c = config_of(env_json);
    let fields = vec![
        ("baseUrl", s(&c.base_url)),
        ("webhookUrl", c.webhook_url.as_deref().map_or(Json::Null, s)),
        ("relay", Json::Bool(c.relay())),
        ("fallbackFirstMs", Json::from_u64(c.fallback_first_ms)),
        (
            "maxFallbackReads",
            Json::from_u64(relay::MAX_FALLBACK_READS),
        ),
        ("maxBody", Json::from_u64(MAX_BODY_BYTES as u64)),
        ("problem", c.problem.as_deref().map_or(Json::Null, s)),
        (
            "sse",
            Json::Object(vec![
                ("preamble".to_string(), s(sse::PREAMBLE)),
                ("heartbeat".to_string(), s(sse::HEARTBEAT)),
                ("heartbeatMs".to_string(), Json::from_u64(c.heartbeat_ms)),
            ]),
        ),
    ];
    let id = register(c);
    let mut all = vec![("id", Json::from_u64(u64::from(id)))];
    all.extend(fields);
    obj(all)
}

/// The first decision on a request: `{"reply": plan}` to answer now, or
/// `{route, jobId, cors, forward}` to go on. `config` is an id from
/// [`edge_config`]; `headers` is flat, `name\nvalue\n...`.
#[wasm_bindgen(js_name = edgePlan)]
pub fn edge_plan(config: u32, method: &str, url: &str, headers: &str) -> String {
    let headers = flat_headers(headers);
    let decided = CONFIGS.with(|configs| {
        let configs = configs.borrow();
        let index = usize::try_from(config).unwrap_or(usize::MAX);
        configs
            .get(index)
            .map(|config| plan(method, url, &headers, config))
    });
    let Some(decided) = decided else {
        return refusal(&Reply::error(
            500,
            "internal",
            "the worker asked for an unknown configuration",
        ));
    };
    match decided {
        Decision::Respond(reply) => refusal(&reply),
        Decision::Proceed(p) => obj(vec![
            ("route", s(p.route.name())),
            ("jobId", p.route.job_id().map_or(Json::Null, s)),
            ("cors", header_list(&p.cors)),
            ("forward", header_list(&p.forward)),
        ]),
    }
}

/// The body to send upstream for a generate (`{"body"}`), or `{"reply"}`.
/// `webhook_url` is the worker's own (relay on) or empty.
#[wasm_bindgen(js_name = edgeGenerateBody)]
pub fn edge_generate_body(body: &[u8], webhook_url: &str) -> String {
    let hook = Some(webhook_url).filter(|u| !u.is_empty());
    match generate::rewrite(body, hook) {
        Ok(wire) => obj(vec![("body", Json::String(wire))]),
        Err(reply) => refusal(&reply),
    }
}

/// A webhook delivery, verified and parsed: `{jobId, job}` or `{"reply"}` (401/400).
#[wasm_bindgen(js_name = edgeWebhook)]
pub fn edge_webhook(api_key: &str, body: &[u8], signature: Option<String>) -> String {
    if let Err(reply) = webhook::verify(api_key, body, signature.as_deref()) {
        return refusal(&reply);
    }
    match webhook::parse_event(body) {
        Ok((job_id, job)) => obj(vec![("jobId", s(&job_id)), ("job", s(&job))]),
        Err(reply) => refusal(&reply),
    }
}

/// Merges a webhook or status read into the stored job: `{state, changed,
/// terminal, status, progress}` or `{"reply"}` when it is not this job.
#[wasm_bindgen(js_name = edgeMerge)]
pub fn edge_merge(stored: Option<String>, incoming: &str, job_id: &str) -> String {
    match relay::merge(stored.as_deref(), incoming, job_id) {
        Ok(m) => obj(vec![
            ("state", s(&m.state)),
            ("changed", Json::Bool(m.changed)),
            ("terminal", Json::Bool(m.terminal)),
            ("status", s(&m.status)),
            (
                "progress",
                Json::Number(format!("{}", (m.progress * 10.0).round() / 10.0)),
            ),
        ]),
        Err(reply) => refusal(&reply),
    }
}

/// The reply for an upstream answer, `{status, headers[, body][, jobId]}`:
/// `body` only when it is not the upstream's `body` unchanged (the key was
/// redacted from it, or the answer is refused), so the common answer's body
/// never crosses back; `jobId` when `submitted` and the body of a 2xx names
/// a job by UUID. `headers` is flat, `name\nvalue\n...`.
#[wasm_bindgen(js_name = edgeUpstream)]
pub fn edge_upstream(
    status: u16,
    headers: &str,
    body: &str,
    api_key: &str,
    submitted: bool,
) -> String {
    let headers = flat_headers(headers);
    let reply = upstream::reply(status, &headers, body, api_key);
    let job_id = if submitted && (200..300).contains(&reply.status) {
        upstream::submitted_job_id(body)
    } else {
        None
    };
    let mut out = String::with_capacity(64);
    out.push_str("{\"status\":");
    out.push_str(&reply.status.to_string());
    out.push_str(",\"headers\":");
    out.push_str(&header_list(&reply.headers).to_json());
    if reply.body != body {
        out.push_str(",\"body\":");
        crate::core::json::write_string(&mut out, &reply.body);
    }
    if let Some(id) = job_id {
        out.push_str(",\"jobId\":");
        crate::core::json::write_string(&mut out, &id);
    }
    out.push('}');
    out
}

/// An error reply plan `{status, headers, body}` with the JSON error body.
#[wasm_bindgen(js_name = edgeError)]
pub fn edge_error(status: u16, code: &str, message: &str) -> String {
    Reply::error(status, code, message).to_json()
}

/// One events-stream frame for the job state `job` with sequence number `seq`.
#[wasm_bindgen(js_name = edgeSseEvent)]
pub fn edge_sse_event(seq: f64, job: &str) -> String {
    sse::event_frame(seq.max(0.0) as u64, job)
}

/// Whether a subscriber with this `Last-Event-ID` gets the state numbered `seq`.
#[wasm_bindgen(js_name = edgeSseShouldSend)]
pub fn edge_sse_should_send(last_event_id: Option<String>, seq: f64) -> bool {
    sse::should_send(last_event_id.as_deref(), seq.max(0.0) as u64)
}

/// Milliseconds until the next fallback read, from `[[ms, progress], ...]`
/// observations (ms since the job began), the current time on that clock,
/// and the upstream's `Retry-After` (with the wall clock, for HTTP dates).
#[wasm_bindgen(js_name = edgeFallbackDelay)]
pub fn edge_fallback_delay(
    observations_json: &str,
    now_ms: f64,
    retry_after: Option<String>,
    epoch_ms: f64,
) -> f64 {
    let observations = relay::parse_observations(observations_json);
    let retry = retry_after.and_then(|v| parse_retry_after(&v, epoch_ms.max(0.0) as u64));
    relay::fallback_delay_ms(&observations, now_ms.max(0.0) as u64, retry) as f64
}
