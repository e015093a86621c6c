//! The upstream job, parsed defensively: every documented `result` shape is
//! normalised to one `video_url`, and an unknown status counts as running.

use super::error::{ErrorCode, SoraError};
use super::json::{u64_text, write_string, Json};

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

/// A job as the client library reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// The job id (`id` on status reads, `jobId` in webhooks).
    pub id: String,
    /// The lifecycle state.
    pub status: JobStatus,
    /// 0 to 100; 100 once COMPLETED.
    pub progress: f64,
    /// The video, from whichever `result` shape arrived.
    pub video_url: Option<String>,
    /// The upstream's reason, when FAILED.
    pub error: Option<String>,
    /// Fields passed on as received when present.
    pub model: Option<String>,
    /// Credits charged, as the upstream's number text.
    pub credit_cost: Option<String>,
    /// When the job was created.
    pub created_at: Option<String>,
    /// When it finished; `Some(None)` is an explicit `null`.
    pub completed_at: Option<Option<String>>,
}

impl Job {
    /// Parses a status-read body or a webhook payload.
    ///
    /// # Errors
    /// `bad_response` when there is no id or no status.
    pub fn from_json(value: &Json) -> Result<Job, SoraError> {
        let bad = |what: &str| {
            SoraError::new(
                ErrorCode::BadResponse,
                ["job response has no ", what].concat(),
            )
        };
        if value.as_object().is_none() {
            return Err(SoraError::new(
                ErrorCode::BadResponse,
                "job response is not a JSON object",
            ));
        }
        let id = value
            .get("id")
            .or_else(|| value.get("jobId"))
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("id"))?;
        let status = JobStatus::parse(
            value
                .get("status")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("status"))?,
        );
        let reported = value
            .get("progress")
            .and_then(Json::as_decimal)
            .unwrap_or(0.0);
        let progress = if status == JobStatus::Completed {
            100.0
        } else {
            reported.clamp(0.0, 100.0)
        };
        let text = |key: &str| value.get(key).and_then(Json::as_str).map(str::to_string);
        let error = match value.get("error") {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Object(_)) => value
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Json::as_str)
                .map(str::to_string),
            _ => None,
        };
        Ok(Job {
            id: id.to_string(),
            progress,
            video_url: normalise_result(value.get("result")),
            error: error.or_else(|| {
                (status == JobStatus::Failed).then(|| "the job failed without a reason".to_string())
            }),
            model: text("model"),
            credit_cost: match value.get("creditCost") {
                Some(Json::Number(n)) => Some(n.clone()),
                _ => None,
            },
            created_at: text("createdAt"),
            completed_at: value
                .get("completedAt")
                .map(|v| v.as_str().map(str::to_string)),
            status,
        })
    }

    /// The job as the JSON object the JavaScript `Job` type describes
    /// (without `raw`, which the boundary attaches as received).
    pub fn to_client_json(&self) -> String {
        let mut out = String::from("{\"id\":");
        write_string(&mut out, &self.id);
        out.push_str(",\"status\":");
        write_string(&mut out, self.status.as_str());
        out.push_str(",\"progress\":");
        write_progress(&mut out, self.progress);
        out.push_str(",\"videoUrl\":");
        write_optional(&mut out, self.video_url.as_deref());
        out.push_str(",\"error\":");
        write_optional(&mut out, self.error.as_deref());
        if let Some(model) = &self.model {
            out.push_str(",\"model\":");
            write_string(&mut out, model);
        }
        if let Some(cost) = &self.credit_cost {
            out.push_str(",\"creditCost\":");
            out.push_str(cost);
        }
        if let Some(created) = &self.created_at {
            out.push_str(",\"createdAt\":");
            write_string(&mut out, created);
        }
        if let Some(completed) = &self.completed_at {
            out.push_str(",\"completedAt\":");
            write_optional(&mut out, completed.as_deref());
        }
        out.push('}');
        out
    }
}

/// Progress with at most one decimal, written without float formatting.
fn write_progress(out: &mut String, progress: f64) {
    let tenths = (progress * 10.0).round() as u32;
    out.push_str(&u64_text(u64::from(tenths / 10)));
    if tenths % 10 != 0 {
        out.push('.');
        out.push(char::from(b'0' + (tenths % 10) as u8));
    }
}

fn write_optional(out: &mut String, value: Option<&str>) {
    match value {
        Some(s) => write_string(out, s),
        None => out.push_str("null"),
    }
}

/// The video URL from any documented `result` shape: a bare URL string,
/// `{"videoUrl": …}`, or `{"videos": [...]}` (of strings or objects), plus the
/// near variants `url` and `video_url`. `None` for null and anything else.
pub fn normalise_result(result: Option<&Json>) -> Option<String> {
    fn url_in(value: &Json) -> Option<String> {
        match value {
            Json::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Json::Object(_) => ["videoUrl", "video_url", "url"]
                .iter()
                .find_map(|k| value.get(k).and_then(Json::as_str))
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().to_string())
                .or_else(|| {
                    value
                        .get("videos")
                        .and_then(Json::as_array)
                        .and_then(|v| v.iter().find_map(url_in))
                }),
            _ => None,
        }
    }
    result.and_then(url_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Job {
        Job::from_json(&Json::parse(text).unwrap()).unwrap()
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
            let value = Json::parse(&text).unwrap();
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
            job.to_client_json(),
            r#"{"id":"a1b2c3d4-0000-4000-8000-000000000000","status":"PROCESSING","progress":65,"videoUrl":null,"error":null,"model":"sora-2","creditCost":8,"createdAt":"2026-03-15T10:00:00.000Z","completedAt":null}"#
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
            let err = Job::from_json(&Json::parse(text).unwrap()).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadResponse, "{text}");
        }
    }

    #[test]
    fn fractional_progress_is_written_with_one_decimal() {
        let job = parse(r#"{"id":"j","status":"PROCESSING","progress":45.55}"#);
        assert!(
            job.to_client_json().contains("\"progress\":45.6"),
            "{}",
            job.to_client_json()
        );
    }
}
