//! The upstream job, read defensively: every documented `result` shape is
//! normalised to one `video_url` (http(s) only), and an unknown status
//! counts as running.

use super::error::{ErrorCode, SoraError};
use super::platform::parse_number;
use super::url::parse_http_url;
use super::value::Value;
use serde::de::{Deserializer, Error as _, Visitor};
use serde::Deserialize;
use serde::{Serialize, Serializer};
use std::fmt;

/// A job's lifecycle state, matching the wire spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Accepted, not started.
    Queued,
    /// Running; `progress` rises.
    Processing,
    /// Done; `result` holds the video.
    Completed,
    /// Done without a video; `error` says why.
    Failed,
    /// A status the docs do not list: treated as still running.
    Other(String),
}
impl JobStatus {
    /// Parses the wire spelling (case-insensitively, so `completed` from a
    /// look-alike upstream also works).
    pub fn parse(text: &str) -> JobStatus {
        match text.to_ascii_uppercase().as_str() {
            "QUEUED" => JobStatus::Queued,
            "PROCESSING" | "IN_PROGRESS" => JobStatus::Processing,
            "COMPLETED" => JobStatus::Completed,
            "FAILED" => JobStatus::Failed,
            _ => JobStatus::Other(text.to_string()),
        }
    }

    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::Processing => "PROCESSING",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Failed => "FAILED",
            JobStatus::Other(s) => s,
        }
    }

    /// Whether the job can change no more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
    }

    /// Orders states along the lifecycle, so a late event can be recognised.
    pub fn rank(&self) -> u8 {
        match self {
            JobStatus::Queued => 0,
            JobStatus::Processing | JobStatus::Other(_) => 1,
            JobStatus::Completed | JobStatus::Failed => 2,
        }
    }
}

impl Serialize for JobStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JobStatus, D::Error> {
        struct StatusVisitor;
        impl Visitor<'_> for StatusVisitor {
            type Value = JobStatus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a status string")
            }
            fn visit_str<E>(self, text: &str) -> Result<JobStatus, E> {
                Ok(JobStatus::parse(text))
            }
        }
        d.deserialize_str(StatusVisitor)
    }
}

/// A status-read body or a webhook payload, as the upstream sends it.
/// Members whose shape varies are kept as [`Value`]s and read by
/// [`Job::from_upstream`].
#[derive(Debug)]
pub struct UpstreamJob {
    /// On status reads.
    pub id: Option<String>,
    /// In webhook payloads (`jobId`).
    pub job_id: Option<String>,
    /// The wire status.
    pub status: Option<JobStatus>,
    /// A number, or a number in a string.
    pub progress: Option<Value>,
    /// Any documented `result` shape.
    pub result: Option<Value>,
    /// A reason string, or `{"message"}`.
    pub error: Option<Value>,
    /// The model.
    pub model: Option<String>,
    /// Credits charged (`creditCost`).
    pub credit_cost: Option<f64>,
    /// When the job was created (`createdAt`).
    pub created_at: Option<String>,
    /// When it finished (`completedAt`); `Some(None)` is an explicit `null`.
    pub completed_at: Option<Option<String>>,
}

/// Read from a [`Value`], not derived: the browser build reads every input
/// into a `Value` first (`wasm::value_of`), and a derive read through `Value`
/// as a serde `Deserializer` measured 4,743 B gzip more for this type and
/// `UpstreamErrorBody` together (2026-12-06, over the 52 KB ceiling;
/// BENCHMARKS.md "Size"). The rules are a derive's: `null` is absent, a member
/// of the wrong type refuses the whole job. On the host and in the worker,
/// serde_json reads it the same way.
impl<'de> Deserialize<'de> for UpstreamJob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UpstreamJob, D::Error> {
        UpstreamJob::try_from(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl TryFrom<Value> for UpstreamJob {
    type Error = String;

    fn try_from(value: Value) -> Result<UpstreamJob, String> {
        if !matches!(value, Value::Object(_)) {
            return Err("a job must be an object".to_string());
        }
        let member = |key: &str| value.get(key).filter(|v| !matches!(v, Value::Null));
        let text = |key: &str| match member(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(["job member ", key, " must be a string"].concat()),
        };
        Ok(UpstreamJob {
            id: text("id")?,
            job_id: text("jobId")?,
            status: text("status")?.map(|s| JobStatus::parse(&s)),
            progress: member("progress").cloned(),
            result: member("result").cloned(),
            error: member("error").cloned(),
            model: text("model")?,
            credit_cost: match member("creditCost") {
                None => None,
                Some(Value::Number(n)) => Some(*n),
                Some(_) => return Err("job member creditCost must be a number".to_string()),
            },
            created_at: text("createdAt")?,
            completed_at: match value.get("completedAt") {
                None => None,
                Some(_) => Some(text("completedAt")?),
            },
        })
    }
}

/// A job as the client library reports it: the JavaScript `Job` without
/// `raw`, which the boundary attaches as received.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job id (`id` on status reads, `jobId` in webhooks).
    pub id: String,
    /// The lifecycle state.
    pub status: JobStatus,
    /// 0 to 100; 100 once COMPLETED.
    #[serde(serialize_with = "one_decimal")]
    pub progress: f64,
    /// The video, from whichever `result` shape arrived.
    pub video_url: Option<String>,
    /// The upstream's reason, when FAILED.
    pub error: Option<String>,
    /// Fields passed on as received when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Credits charged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_cost: Option<f64>,
    /// When the job was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// When it finished; `Some(None)` is an explicit `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Option<String>>,
}

/// Progress with at most one decimal.
fn one_decimal<S: Serializer>(progress: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((progress * 10.0).round() / 10.0)
}

impl Job {
    /// Reads an upstream job.
    ///
    /// # Errors
    /// `bad_response` when there is no id or no status, or when the result
    /// URL is not http(s): pages put it straight into `<video src>`.
    pub fn from_upstream(upstream: UpstreamJob) -> Result<Job, SoraError> {
        let bad = |what: &str| SoraError::new(ErrorCode::BadResponse, what.to_string());
        let id = upstream
            .id
            .or(upstream.job_id)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("job response has no id"))?;
        let status = upstream
            .status
            .ok_or_else(|| bad("job response has no status"))?;
        let reported = match &upstream.progress {
            Some(Value::Number(n)) => *n,
            Some(Value::String(text)) => parse_number(text.trim()).unwrap_or(0.0),
            _ => 0.0,
        };
        let progress = if status == JobStatus::Completed {
            100.0
        } else if reported.is_nan() {
            0.0
        } else {
            reported.clamp(0.0, 100.0)
        };
        let video_url = normalise_result(upstream.result.as_ref());
        if let Some(url) = &video_url {
            if let Err(why) = parse_http_url(url) {
                let shown = Value::String(url.clone()).shown();
                let mut e = bad(&[
                    "job ",
                    &id,
                    " has a result URL that ",
                    why,
                    " (got ",
                    &shown,
                    ")",
                ]
                .concat());
                // Asking again will not change a finished job's result.
                e.retryable = false;
                return Err(e.with_job_id(&id));
            }
        }
        let error = match &upstream.error {
            Some(Value::String(s)) => Some(s.clone()),
            Some(e) => e.get("message").and_then(Value::as_str).map(str::to_string),
            None => None,
        };
        Ok(Job {
            id,
            progress,
            video_url,
            error: error.or_else(|| {
                (status == JobStatus::Failed).then(|| "the job failed without a reason".to_string())
            }),
            model: upstream.model,
            credit_cost: upstream.credit_cost,
            created_at: upstream.created_at,
            completed_at: upstream.completed_at,
            status,
        })
    }
}

/// The video URL from any documented `result` shape: a bare URL string,
/// `{"videoUrl": …}`, or `{"videos": [...]}` (of strings or objects), plus the
/// near variants `url` and `video_url`. `None` for null and anything else.
pub fn normalise_result(result: Option<&Value>) -> Option<String> {
    fn url_in(value: &Value) -> Option<String> {
        match value {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Object(_) => ["videoUrl", "video_url", "url"]
                .iter()
                .find_map(|k| value.get(k).and_then(Value::as_str))
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_string())
                .or_else(|| {
                    value.get("videos").and_then(|v| match v {
                        Value::Array(items) => items.iter().find_map(url_in),
                        _ => None,
                    })
                }),
            _ => None,
        }
    }
    result.and_then(url_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Job, SoraError> {
        match serde_json::from_str::<UpstreamJob>(text) {
            Ok(upstream) => Job::from_upstream(upstream),
            Err(e) => Err(SoraError::new(ErrorCode::BadResponse, e.to_string())),
        }
    }

    fn parse(text: &str) -> Job {
        read(text).unwrap()
    }

    #[test]
    fn result_shapes_normalise() {
        let url = "https://cdn2.apiframe.ai/videos/x.mp4";
        let cases = [
            ("bare_string", format!("\"{url}\""), Some(url)),
            (
                "video_url_object",
                format!("{{\"videoUrl\":\"{url}\"}}"),
                Some(url),
            ),
            (
                "videos_of_strings",
                format!("{{\"videos\":[\"{url}\"]}}"),
                Some(url),
            ),
            (
                "videos_of_objects",
                format!("{{\"videos\":[{{\"url\":\"{url}\"}}]}}"),
                Some(url),
            ),
            (
                "snake_case",
                format!("{{\"video_url\":\"{url}\"}}"),
                Some(url),
            ),
            ("null", "null".to_string(), None),
            ("empty_string", "\"\"".to_string(), None),
            ("number", "42".to_string(), None),
            ("empty_object", "{}".to_string(), None),
            ("videos_empty", "{\"videos\":[]}".to_string(), None),
            ("video_url_wrong_type", "{\"videoUrl\":7}".to_string(), None),
            ("array_garbage", "[1,2]".to_string(), None),
        ];
        for (name, text, expected) in cases {
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                normalise_result(Some(&value)).as_deref(),
                expected,
                "{name}"
            );
        }
        assert_eq!(normalise_result(None), None);
    }

    #[test]
    fn documented_status_read_parses() {
        let job = parse(
            r#"{ "id": "a1b2c3d4-0000-4000-8000-000000000000", "status": "PROCESSING", "model": "sora-2",
                "progress": 65, "result": null, "error": null, "creditCost": 8,
                "webhookStatus": null, "createdAt": "2026-03-15T10:00:00.000Z", "completedAt": null }"#,
        );
        assert_eq!(job.status, JobStatus::Processing);
        assert_eq!(job.progress, 65.0);
        assert_eq!(
            serde_json::to_string(&job).unwrap(),
            r#"{"id":"a1b2c3d4-0000-4000-8000-000000000000","status":"PROCESSING","progress":65.0,"videoUrl":null,"error":null,"model":"sora-2","creditCost":8.0,"createdAt":"2026-03-15T10:00:00.000Z","completedAt":null}"#
        );
    }

    #[test]
    fn statuses_and_progress_edge_cases() {
        let cases = [
            (
                "completed_forces_100",
                r#"{"id":"j","status":"COMPLETED","progress":97,"result":"https://v.test/a.mp4"}"#,
                "COMPLETED",
                100.0,
                true,
            ),
            (
                "over_100_clamped",
                r#"{"id":"j","status":"PROCESSING","progress":140}"#,
                "PROCESSING",
                100.0,
                false,
            ),
            (
                "negative_clamped",
                r#"{"id":"j","status":"PROCESSING","progress":-3}"#,
                "PROCESSING",
                0.0,
                false,
            ),
            (
                "string_progress",
                r#"{"id":"j","status":"PROCESSING","progress":"45.5"}"#,
                "PROCESSING",
                45.5,
                false,
            ),
            (
                "missing_progress",
                r#"{"id":"j","status":"QUEUED"}"#,
                "QUEUED",
                0.0,
                false,
            ),
            (
                "unknown_status_kept",
                r#"{"id":"j","status":"UPSCALING","progress":12}"#,
                "UPSCALING",
                12.0,
                false,
            ),
            (
                "webhook_job_id",
                r#"{"event":"failed","jobId":"j","status":"FAILED","error":"Provider returned an error: content policy violation"}"#,
                "FAILED",
                0.0,
                true,
            ),
            (
                "lowercase_status",
                r#"{"id":"j","status":"completed","result":{"videoUrl":"https://v.test/b.mp4"}}"#,
                "COMPLETED",
                100.0,
                true,
            ),
        ];
        for (name, text, status, progress, terminal) in cases {
            let job = parse(text);
            assert_eq!(job.status.as_str(), status, "{name}");
            assert_eq!(job.progress, progress, "{name}");
            assert_eq!(job.status.is_terminal(), terminal, "{name}");
        }
    }

    #[test]
    fn failure_reason_from_every_error_shape() {
        let cases = [
            (
                r#"{"id":"j","status":"FAILED","error":"content policy violation"}"#,
                "content policy violation",
            ),
            (
                r#"{"id":"j","status":"FAILED","error":{"message":"boom","code":"x"}}"#,
                "boom",
            ),
            (
                r#"{"id":"j","status":"FAILED","error":null}"#,
                "the job failed without a reason",
            ),
        ];
        for (text, reason) in cases {
            assert_eq!(parse(text).error.as_deref(), Some(reason), "{text}");
        }
    }

    #[test]
    fn garbage_is_a_bad_response() {
        for text in [
            "null",
            "[]",
            "\"x\"",
            r#"{"status":"QUEUED"}"#,
            r#"{"id":"j"}"#,
            r#"{"id":"","status":"QUEUED"}"#,
        ] {
            let err = read(text).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadResponse, "{text}");
        }
    }

    #[test]
    fn fractional_progress_is_written_with_one_decimal() {
        let job = parse(r#"{"id":"j","status":"PROCESSING","progress":45.55}"#);
        let text = serde_json::to_string(&job).unwrap();
        assert!(text.contains("\"progress\":45.6"), "{text}");
    }

    #[test]
    fn only_http_result_urls_reach_the_caller() {
        let cases = [
            ("https", r#""https://v.test/a.mp4""#, true),
            ("http", r#"{"videoUrl":"http://127.0.0.1:9/a.mp4"}"#, true),
            (
                "javascript",
                r#""javascript:alert(document.domain)""#,
                false,
            ),
            (
                "data",
                r#"{"videoUrl":"data:text/html,<script>alert(1)</script>"}"#,
                false,
            ),
            (
                "javascript_in_videos",
                r#"{"videos":[{"url":"JavaScript:alert(1)"}]}"#,
                false,
            ),
            ("relative", r#""/videos/a.mp4""#, false),
            ("ftp", r#""ftp://v.test/a.mp4""#, false),
        ];
        for (name, result, ok) in cases {
            let text = format!(r#"{{"id":"j","status":"COMPLETED","result":{result}}}"#);
            match read(&text) {
                Ok(job) => assert!(ok, "{name}: accepted {:?}", job.video_url),
                Err(e) => {
                    assert!(!ok, "{name}: {}", e.message);
                    assert_eq!(e.code, ErrorCode::BadResponse, "{name}");
                    assert!(e.message.contains("result URL"), "{name}: {}", e.message);
                    assert!(
                        !e.retryable,
                        "{name}: a finished job's result will not change"
                    );
                }
            }
        }
    }
}
