//! What the client gets back from an upstream answer: the upstream's status
//! and body, with allowlisted headers, the key redacted wherever it might be
//! echoed, and redirects refused (the worker fetches with
//! `redirect: "manual"`, so the key is never sent to a second host).

use super::headers::pass_response;
use super::relay::{sanitise, unsafe_result_scheme, JobMap};
use super::reply::Reply;
use super::route::is_uuid;
use crate::core::Secrets;
use serde::Deserialize;

/// The reply for an upstream answer.
pub fn reply(status: u16, headers: &[(String, String)], body: &str, api_key: &str) -> Reply {
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
    let secrets = Secrets::new(&[api_key]);
    Reply {
        status,
        headers: pass_response(headers, &secrets),
        body: secrets.redact(body).into_owned(),
    }
}

#[derive(Deserialize)]
struct Submitted {
    #[serde(rename = "jobId", alias = "id")]
    job_id: String,
}

/// The job id in a successful generate answer (`jobId`, or `id`), when it is a UUID.
pub fn submitted_job_id(body: &str) -> Option<String> {
    let submitted: Submitted = serde_json::from_str(body).ok()?;
    is_uuid(&submitted.job_id).then_some(submitted.job_id)
}

/// Only the `result` of a job: the other fields are skipped, not built.
#[derive(Deserialize)]
struct ResultOnly {
    #[serde(default)]
    result: serde_json::Value,
}

/// A status read's job, as the client may see it: `None` when the body can
/// go as it came, or the job rewritten as FAILED when its result URL has a
/// scheme other than http(s).
pub fn sanitised_job(body: &str) -> Option<String> {
    let only: ResultOnly = serde_json::from_str(body).ok()?;
    unsafe_result_scheme(&only.result)?;
    let mut job: JobMap = serde_json::from_str(body).ok()?;
    if sanitise(&mut job) {
        serde_json::to_string(&job).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "afk_secret_123";

    use crate::edge::headers::owned_pairs as h;

    #[test]
    fn upstream_answers_table() {
        let headers = h(&[
            ("content-type", "application/json"),
            ("location", "https://evil.test"),
            ("set-cookie", "a=1"),
        ]);
        let cases: [(&str, u16, &str, u16, &str); 7] = [
            (
                "accepted",
                202,
                r#"{"jobId":"x","status":"QUEUED"}"#,
                202,
                r#"{"jobId":"x","status":"QUEUED"}"#,
            ),
            (
                "not_found",
                404,
                r#"{"error":"Job not found"}"#,
                404,
                r#"{"error":"Job not found"}"#,
            ),
            (
                "key_echoed",
                401,
                r#"{"message":"Invalid API key afk_secret_123"}"#,
                401,
                r#"{"message":"Invalid API key [redacted]"}"#,
            ),
            ("redirect", 302, "", 502, "redirect"),
            ("permanent_redirect", 308, "", 502, "redirect"),
            ("informational", 101, "", 502, "HTTP 101"),
            ("server_error", 503, "busy", 503, "busy"),
        ];
        for (name, status, body, expected_status, needle) in cases {
            let r = reply(status, &headers, body, KEY);
            assert_eq!(r.status, expected_status, "{name}");
            assert!(r.body.contains(needle), "{name}: {}", r.body);
            assert!(!r.body.contains(KEY), "{name}");
            assert!(
                r.headers
                    .iter()
                    .all(|(k, _)| k != "location" && k != "set-cookie"),
                "{name}"
            );
        }
    }

    #[test]
    fn submitted_ids() {
        let id = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";
        assert_eq!(
            submitted_job_id(&format!(r#"{{"jobId":"{id}","status":"QUEUED"}}"#)).as_deref(),
            Some(id)
        );
        assert_eq!(
            submitted_job_id(&format!(r#"{{"id":"{id}"}}"#)).as_deref(),
            Some(id)
        );
        assert_eq!(submitted_job_id(r#"{"jobId":"../me"}"#), None);
        assert_eq!(submitted_job_id("{"), None);
    }

    #[test]
    fn status_reads_with_unsafe_result_urls_become_failed() {
        let ok =
            r#"{"id":"j","status":"COMPLETED","result":{"videoUrl":"https://cdn.test/v.mp4"}}"#;
        assert_eq!(sanitised_job(ok), None);
        assert_eq!(sanitised_job("not json"), None);
        let bad = r#"{"id":"j","status":"COMPLETED","result":{"videoUrl":"javascript:alert(1)"}}"#;
        let job: serde_json::Value = serde_json::from_str(&sanitised_job(bad).unwrap()).unwrap();
        assert_eq!(job["status"], "FAILED");
        assert!(job["result"].is_null());
        assert!(job["error"].as_str().unwrap().contains("javascript:"));
    }
}
