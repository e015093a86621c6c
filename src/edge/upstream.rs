//! What a client gets back from an upstream answer: never the upstream's
//! text as it came. Every body is rebuilt from the fields the library
//! knows, every string in it redacted ([`Secrets`]), and only headers that
//! pass their rule ([`pass_response`]). Redirects are refused (the worker
//! fetches with `redirect: "manual"`, so the key never goes to a second host).
//!
//! An upstream that echoes the key in a debug field, a support id, an error
//! message or a header cannot make the worker hand it out: unknown fields
//! are dropped, and the known ones are redacted in every encoding.

use super::headers::pass_response;
use super::relay::JobMap;
use super::reply::Reply;
use super::route::is_uuid;
use crate::core::http::UpstreamErrorBody;
use crate::core::job::{normalise_result, UpstreamJob};
use crate::core::redact::Secrets;
use crate::core::url::parse_http_url;
use crate::core::value::shorten;
use crate::core::{Job, JobStatus};
use serde::Deserialize;
use serde_json::Value;

/// The longest upstream string kept in a job or an error message.
pub const MAX_TEXT_CHARS: usize = 1_000;

/// What a successful answer should hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected<'a> {
    /// Generate's acceptance: `{"jobId","status"}`.
    Submitted,
    /// A status read of this job.
    Job(&'a str),
}

fn bad(message: &str) -> Reply {
    Reply::error(502, "bad_response", message)
}

/// An upstream string as a client may see it: redacted, then bounded (so a
/// cut never leaves part of a key).
fn text(secrets: &Secrets, value: &str) -> Value {
    Value::String(shorten(secrets.redact(value).into_owned(), MAX_TEXT_CHARS))
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

/// The reply for an upstream answer `status`/`headers`/`body`.
pub fn reply(
    expected: Expected,
    status: u16,
    headers: &[(String, String)],
    body: &str,
    secrets: &Secrets,
) -> Reply {
    if (300..400).contains(&status) {
        return Reply::error(
            502,
            "upstream",
            &format!("the upstream answered with a redirect (HTTP {status}), which this worker does not follow"),
        );
    }
    if !(200..=599).contains(&status) {
        return Reply::error(
            502,
            "upstream",
            &format!("the upstream answered with HTTP {status}"),
        );
    }
    let headers = pass_response(headers, secrets);
    if !(200..300).contains(&status) {
        return Reply {
            status,
            headers,
            body: refusal_body(status, body, secrets),
        };
    }
    let rebuilt = match expected {
        Expected::Submitted => submitted(body, secrets),
        Expected::Job(id) => job_text(body, id, secrets),
    };
    match rebuilt {
        Ok(body) => Reply {
            status,
            headers,
            body,
        },
        Err(reply) => reply,
    }
}

/// An upstream refusal as the worker's own error JSON: the upstream's
/// message only when it is a JSON string, redacted; else a generic one.
/// `source` stays `"upstream"`: the client library tells the worker's own
/// refusals (`"edge"`) from the upstream's by it.
fn refusal_body(status: u16, body: &str, secrets: &Secrets) -> String {
    let parsed = serde_json::from_str::<UpstreamErrorBody>(body).ok();
    let message = parsed
        .as_ref()
        .and_then(UpstreamErrorBody::message)
        .map(|m| shorten(secrets.redact(&m).into_owned(), MAX_TEXT_CHARS))
        .unwrap_or_else(|| format!("the upstream answered HTTP {status} without a JSON message"));
    // A field name is only ever an identifier; anything else is dropped.
    let field = parsed
        .as_ref()
        .and_then(UpstreamErrorBody::field)
        .filter(|f| {
            (1..=64).contains(&f.len())
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-[]".contains(&b))
                && !secrets.holds(f)
        });
    let mut detail = serde_json::Map::new();
    detail.insert("message".into(), Value::String(message));
    if let Some(field) = field {
        detail.insert("field".into(), Value::String(field));
    }
    detail.insert("source".into(), Value::String("upstream".into()));
    serde_json::json!({ "error": detail }).to_string()
}

#[derive(Deserialize)]
struct Accepted {
    #[serde(rename = "jobId", alias = "id")]
    job_id: Option<String>,
    status: Option<String>,
}

/// Generate's acceptance, rebuilt: `{"jobId","status"}`.
fn submitted(body: &str, secrets: &Secrets) -> Result<String, Reply> {
    let accepted: Accepted = serde_json::from_str(body)
        .map_err(|_| bad("the upstream accepted the request, but its answer is not JSON"))?;
    let id = accepted.job_id.filter(|id| is_uuid(id)).ok_or_else(|| {
        bad("the upstream accepted the request, but its answer has no job id (a UUID)")
    })?;
    let status = accepted
        .status
        .map_or(JobStatus::Queued, |s| JobStatus::parse(&s));
    Ok(serde_json::json!({ "jobId": id, "status": text(secrets, status.as_str()) }).to_string())
}

/// The job id of the worker's own rebuilt acceptance ([`Expected::Submitted`]).
pub fn submitted_job_id(body: &str) -> Option<String> {
    let accepted: Accepted = serde_json::from_str(body).ok()?;
    accepted.job_id.filter(|id| is_uuid(id))
}

/// A status read of job `id`, rebuilt, as JSON text.
fn job_text(body: &str, id: &str, secrets: &Secrets) -> Result<String, Reply> {
    let value: Value = serde_json::from_str(body)
        .map_err(|_| bad("the upstream's answer to a status read is not JSON"))?;
    let job = client_job(&value, secrets)?;
    let same = job
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|got| got.eq_ignore_ascii_case(id));
    if !same {
        return Err(bad("the upstream answered a status read with another job"));
    }
    Ok(serde_json::to_string(&job).unwrap_or_default())
}

/// The scheme of `url` as a client would read it (`data:`), if it has one.
fn scheme_of(url: &str) -> Option<String> {
    let (scheme, _) = url.trim().split_once(':')?;
    let ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    ok.then(|| format!("{}:", scheme.to_ascii_lowercase()))
}

/// A job (a status read, or a webhook body in that shape) rebuilt from the
/// fields the library knows: `id`, `status`, `model`, `progress`, `result`
/// (the video URL, after the library's result-URL rule), `error`,
/// `creditCost`, `createdAt`, `completedAt`. Every other field is dropped
/// and every string redacted. A job whose result URL breaks the rule
/// becomes FAILED and says why, without quoting the URL.
///
/// # Errors
/// 502 `bad_response` when `upstream` is not a job with a UUID id and a status.
pub fn client_job(upstream: &Value, secrets: &Secrets) -> Result<JobMap, Reply> {
    let value = crate::core::Value::deserialize(upstream)
        .map_err(|_| bad("the upstream's job is not JSON"))?;
    let mut upstream = UpstreamJob::try_from(value).map_err(|why| {
        bad(&format!(
            "the upstream's job is not the documented shape: {why}"
        ))
    })?;
    if let Some(url) = normalise_result(upstream.result.as_ref()) {
        if let Err(why) = parse_http_url(&url) {
            let scheme = scheme_of(&url).map_or(String::new(), |s| format!(" (scheme {s})"));
            upstream.result = None;
            upstream.status = Some(JobStatus::Failed);
            upstream.error = Some(crate::core::Value::String(format!(
                "the upstream returned a result URL that {why}{scheme}; only http: and https: result URLs are relayed"
            )));
        }
    }
    let job = Job::from_upstream(upstream).map_err(|e| bad(&e.message))?;
    if !is_uuid(&job.id) {
        return Err(bad("the upstream's job id is not a UUID"));
    }
    let string = |s: Option<&String>| s.map_or(Value::Null, |s| text(secrets, s));
    let mut out = JobMap::new();
    out.insert("id".into(), Value::String(job.id.clone()));
    out.insert("status".into(), text(secrets, job.status.as_str()));
    out.insert("model".into(), string(job.model.as_ref()));
    out.insert("progress".into(), number(job.progress));
    out.insert("result".into(), string(job.video_url.as_ref()));
    out.insert("error".into(), string(job.error.as_ref()));
    out.insert(
        "creditCost".into(),
        job.credit_cost.map_or(Value::Null, number),
    );
    out.insert("createdAt".into(), string(job.created_at.as_ref()));
    out.insert(
        "completedAt".into(),
        string(job.completed_at.as_ref().and_then(Option::as_ref)),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "afk_secret_key_123456";
    const ID: &str = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";

    use crate::edge::headers::owned_pairs as h;

    fn secrets() -> Secrets {
        Secrets::new(&[KEY])
    }

    #[test]
    fn upstream_answers_table() {
        let headers = h(&[
            ("content-type", "application/json"),
            ("location", "https://evil.test"),
            ("set-cookie", "a=1"),
        ]);
        let cases: [(&str, Expected, u16, &str, u16, &str); 9] = [
            (
                "accepted",
                Expected::Submitted,
                202,
                r#"{"jobId":"0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d","status":"QUEUED","debug":"x"}"#,
                202,
                r#"{"jobId":"0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d","status":"QUEUED"}"#,
            ),
            (
                "accepted_without_id",
                Expected::Submitted,
                202,
                r#"{"status":"QUEUED"}"#,
                502,
                "no job id",
            ),
            (
                "not_found",
                Expected::Job(ID),
                404,
                r#"{"error":"Job not found","trace":"afk_secret_key_123456"}"#,
                404,
                r#"{"error":{"message":"Job not found","source":"upstream"}}"#,
            ),
            (
                "key_echoed_in_message",
                Expected::Submitted,
                401,
                r#"{"message":"Invalid API key afk_secret_key_123456"}"#,
                401,
                r#"{"error":{"message":"Invalid API key [redacted]","source":"upstream"}}"#,
            ),
            (
                "message_not_a_string",
                Expected::Submitted,
                400,
                r#"{"message":{"key":"afk_secret_key_123456"}}"#,
                400,
                "without a JSON message",
            ),
            (
                "not_json",
                Expected::Submitted,
                502,
                "<html>afk_secret_key_123456</html>",
                502,
                r#"{"error":{"message":"the upstream answered HTTP 502 without a JSON message","source":"upstream"}}"#,
            ),
            ("redirect", Expected::Submitted, 302, "", 502, "redirect"),
            ("informational", Expected::Job(ID), 101, "", 502, "HTTP 101"),
            (
                "another_job",
                Expected::Job("11111111-1f7e-4a8e-9c1d-2f3e4a5b6c7d"),
                200,
                r#"{"id":"0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d","status":"QUEUED"}"#,
                502,
                "another job",
            ),
        ];
        for (name, expected, status, body, want_status, needle) in cases {
            let r = reply(expected, status, &headers, body, &secrets());
            assert_eq!(r.status, want_status, "{name}");
            assert!(r.body.contains(needle), "{name}: {}", r.body);
            assert!(!r.body.contains(KEY), "{name}");
            assert!(r.headers.is_empty(), "{name}: {:?}", r.headers);
        }
    }

    #[test]
    fn jobs_are_rebuilt_from_known_fields() {
        let upstream = json!({
            "id": ID, "status": "COMPLETED", "model": "sora-2", "progress": 100,
            "result": {"videoUrl": "https://cdn.test/v.mp4", "debug": KEY},
            "error": null, "creditCost": 8, "webhookStatus": "sent",
            "createdAt": "2026-03-15T10:00:00.000Z", "completedAt": null,
            "debug": {"key": KEY}, "supportId": KEY,
        });
        let job = client_job(&upstream, &secrets()).unwrap();
        assert_eq!(
            Value::Object(job),
            json!({
                "id": ID, "status": "COMPLETED", "model": "sora-2", "progress": 100,
                "result": "https://cdn.test/v.mp4", "error": null, "creditCost": 8,
                "createdAt": "2026-03-15T10:00:00.000Z", "completedAt": null,
            })
        );
        let failed =
            json!({"jobId": ID, "status": "FAILED", "error": format!("policy violation ({KEY})")});
        let job = client_job(&failed, &secrets()).unwrap();
        assert_eq!(job["error"], "policy violation ([redacted])");
        assert_eq!(job["id"], ID);
    }

    #[test]
    fn result_urls_break_the_rule_and_fail_the_job() {
        let cases = [
            (
                "javascript",
                json!("javascript:alert(1)"),
                Some("javascript:"),
            ),
            (
                "data_in_video_url",
                json!({"videoUrl": "data:text/html,<script>x</script>"}),
                Some("data:"),
            ),
            (
                "uppercase",
                json!("JAVASCRIPT:alert(1)"),
                Some("javascript:"),
            ),
            ("relative", json!("/x.mp4"), None),
            ("protocol_relative", json!("//evil.test/x.mp4"), None),
            ("blob", json!("blob:https://x.test/1"), Some("blob:")),
            (
                "in_videos_array",
                json!({"videos": [{"url": "vbscript:x"}]}),
                Some("vbscript:"),
            ),
        ];
        for (name, result, scheme) in cases {
            let job = client_job(
                &json!({"id": ID, "status": "COMPLETED", "result": result}),
                &secrets(),
            )
            .unwrap();
            assert_eq!(job["status"], "FAILED", "{name}");
            assert!(job["result"].is_null(), "{name}");
            let error = job["error"].as_str().unwrap();
            assert!(error.contains("only http: and https:"), "{name}: {error}");
            assert!(
                !error.contains("alert") && !error.contains("evil"),
                "{name}"
            );
            if let Some(scheme) = scheme {
                assert!(error.contains(scheme), "{name}: {error}");
            }
        }
        let ok = client_job(
            &json!({"id": ID, "status": "COMPLETED", "result": "http://127.0.0.1:9/v.mp4"}),
            &secrets(),
        )
        .unwrap();
        assert_eq!(ok["status"], "COMPLETED");
    }

    #[test]
    fn jobs_without_id_or_status_are_refused() {
        for (name, upstream) in [
            ("no_id", json!({"status": "QUEUED"})),
            ("no_status", json!({"id": ID})),
            ("id_not_uuid", json!({"id": KEY, "status": "QUEUED"})),
            ("not_an_object", json!([1])),
        ] {
            let reply = client_job(&upstream, &secrets()).expect_err(name);
            assert_eq!(reply.status, 502, "{name}");
            assert!(!reply.body.contains(KEY), "{name}");
        }
    }
}
