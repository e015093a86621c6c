//! Relay state: merging webhooks and status reads into the job a Durable
//! Object holds, and the timing of the object's fallback polls.
//!
//! The stored job has the shape of the upstream's `GET /v2/jobs/{id}`, so
//! every reader (the events stream, a status read answered from the object,
//! the client's `Job::from_json`) sees one format. Merging is monotonic: a
//! replayed or late event never moves a job backwards. The status only moves
//! forward (QUEUED → PROCESSING → COMPLETED | FAILED), progress never
//! decreases, a terminal job never changes status again, and a `null` never
//! erases a value already known.

use super::reply::Reply;
use crate::core::json::Json;
use crate::core::schedule::PollSchedule;
use crate::core::{Job, JobStatus};

/// The first fallback check, when `RELAY_FALLBACK_MS` is unset: a bit after
/// the ~180 s that the upstream's jobs take on average.
pub const DEFAULT_FALLBACK_MS: u64 = 240_000;

/// After this many fallback reads the object stops polling (at the schedule's
/// 15 s ceiling that is about an hour; a video takes 1 to 5 minutes).
pub const MAX_FALLBACK_READS: u64 = 240;

/// Keys of the status-read shape, in the upstream's order.
const CANONICAL: [&str; 10] = [
    "id",
    "status",
    "model",
    "progress",
    "result",
    "error",
    "creditCost",
    "webhookStatus",
    "createdAt",
    "completedAt",
];

/// The outcome of a merge.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// The job to store, as JSON in the status-read shape.
    pub state: String,
    /// Whether it differs from what was stored (subscribers get an event).
    pub changed: bool,
    /// Whether the job is COMPLETED or FAILED.
    pub terminal: bool,
    /// The merged status.
    pub status: String,
    /// The merged progress, 0 to 100.
    pub progress: f64,
}

fn bad(message: &str) -> Reply {
    Reply::error(502, "bad_response", message)
}

/// Parses a job text and maps webhook spellings to the status-read shape.
fn normalised(text: &str) -> Option<Vec<(String, Json)>> {
    let json = Json::parse(text).ok()?;
    let members = json.as_object()?;
    let mut out: Vec<(String, Json)> = Vec::with_capacity(members.len());
    for (key, value) in members {
        match key.as_str() {
            "event" => {}
            "jobId" if json.get("id").is_some() => {}
            "jobId" => out.push(("id".to_string(), value.clone())),
            _ => out.push((key.clone(), value.clone())),
        }
    }
    Some(out)
}

fn get<'a>(members: &'a [(String, Json)], key: &str) -> Option<&'a Json> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn set(members: &mut Vec<(String, Json)>, key: &str, value: Json) {
    crate::core::request::set_member(members, key, value);
}

fn job_of(members: &[(String, Json)]) -> Option<Job> {
    Job::from_json(&Json::Object(members.to_vec())).ok()
}

/// Merges `incoming` (a webhook body or a status-read body) into `stored`
/// (the object's job, or `None` when it knows none yet).
///
/// # Errors
/// 502 `bad_response` when `incoming` is not a job, or is another job than `job_id`.
pub fn merge(stored: Option<&str>, incoming: &str, job_id: &str) -> Result<Merged, Reply> {
    let incoming = normalised(incoming).ok_or_else(|| bad("job is not a JSON object"))?;
    let new_job = job_of(&incoming).ok_or_else(|| bad("job has no id or no status"))?;
    if !new_job.id.eq_ignore_ascii_case(job_id) {
        return Err(bad("job id does not match the job asked for"));
    }
    let old = stored.and_then(normalised).filter(|m| job_of(m).is_some());
    let merged = match &old {
        None => fresh(&incoming),
        Some(old) => combine(old, &incoming, &new_job),
    };
    let job = job_of(&merged).ok_or_else(|| bad("merged job is not a job"))?;
    Ok(Merged {
        changed: old.as_ref() != Some(&merged),
        terminal: job.status.is_terminal(),
        status: job.status.as_str().to_string(),
        progress: job.progress,
        state: Json::Object(merged).to_json(),
    })
}

/// A first state: the canonical keys first, defaults for the essential ones.
fn fresh(incoming: &[(String, Json)]) -> Vec<(String, Json)> {
    let mut out = Vec::with_capacity(incoming.len() + 3);
    for key in CANONICAL {
        match get(incoming, key) {
            Some(value) => out.push((key.to_string(), value.clone())),
            None if key == "progress" => out.push((key.to_string(), Json::from_u64(0))),
            None if key == "result" || key == "error" => out.push((key.to_string(), Json::Null)),
            None => {}
        }
    }
    for (key, value) in incoming {
        if !CANONICAL.contains(&key.as_str()) {
            out.push((key.clone(), value.clone()));
        }
    }
    if job_of(&out).is_some_and(|j| j.status == JobStatus::Completed) {
        set(&mut out, "progress", Json::from_u64(100));
    }
    out
}

fn is_missing(value: Option<&Json>) -> bool {
    matches!(value, None | Some(Json::Null))
}

fn combine(
    old: &[(String, Json)],
    incoming: &[(String, Json)],
    new_job: &Job,
) -> Vec<(String, Json)> {
    let old_job = job_of(old).expect("checked by the caller");
    let mut out = old.to_vec();
    if old_job.status.is_terminal() {
        // Final. A later read of the same outcome may only fill in what is missing.
        if new_job.status == old_job.status {
            for (key, value) in incoming {
                if !matches!(key.as_str(), "id" | "status" | "progress")
                    && value != &Json::Null
                    && is_missing(get(&out, key))
                {
                    set(&mut out, key, value.clone());
                }
            }
        }
        return out;
    }
    if new_job.status.rank() < old_job.status.rank() {
        return out;
    }
    for (key, value) in incoming {
        match key.as_str() {
            "id" => {}
            "progress" => {
                let newer = value.as_decimal();
                let older = get(&out, "progress").and_then(Json::as_decimal);
                if newer.is_some_and(|n| older.is_none_or(|o| n > o)) {
                    set(&mut out, key, value.clone());
                }
            }
            _ if value == &Json::Null && !is_missing(get(&out, key)) => {}
            _ => set(&mut out, key, value.clone()),
        }
    }
    if new_job.status == JobStatus::Completed {
        set(&mut out, "progress", Json::from_u64(100));
    }
    out
}

/// `RELAY_FALLBACK_MS` as a number of milliseconds (default
/// [`DEFAULT_FALLBACK_MS`]; at least 100 ms, at most one day).
pub fn fallback_first_ms(config: Option<&str>) -> u64 {
    config
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(DEFAULT_FALLBACK_MS, |ms| ms.clamp(100, 86_400_000))
}

/// The delay before the next fallback read, from the adaptive poll schedule
/// fed with everything observed so far: `(ms since the job began, progress)`
/// from progress webhooks and earlier fallback reads.
pub fn fallback_delay_ms(
    observations: &[(u64, f64)],
    now_ms: u64,
    retry_after_ms: Option<u64>,
) -> u64 {
    let mut schedule = PollSchedule::new();
    for &(at, progress) in observations {
        schedule.observe(at, progress);
    }
    schedule.next_delay_ms(now_ms, retry_after_ms)
}

/// Reads observations stored as `[[ms, progress], ...]`; bad entries are skipped.
pub fn parse_observations(text: &str) -> Vec<(u64, f64)> {
    let Ok(json) = Json::parse(text) else {
        return Vec::new();
    };
    json.as_array()
        .unwrap_or(&[])
        .iter()
        .filter_map(|pair| match pair.as_array() {
            Some([at, progress]) => {
                Some((u64::try_from(at.as_i64()?).ok()?, progress.as_decimal()?))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";

    fn job(rest: &str) -> String {
        format!(r#"{{"id":"{ID}",{rest}}}"#)
    }

    fn hook(rest: &str) -> String {
        format!(r#"{{"jobId":"{ID}",{rest}}}"#)
    }

    /// Feeds a sequence of events into an empty object and returns the
    /// final (status, progress, result) and which steps changed the state.
    fn run(events: &[String]) -> (String, f64, Option<String>, Vec<bool>) {
        let mut stored: Option<String> = None;
        let mut changes = Vec::new();
        for event in events {
            let merged = merge(stored.as_deref(), event, ID).unwrap();
            changes.push(merged.changed);
            stored = Some(merged.state);
        }
        let last = Job::from_json(&Json::parse(stored.as_deref().unwrap()).unwrap()).unwrap();
        (
            last.status.as_str().to_string(),
            last.progress,
            last.video_url,
            changes,
        )
    }

    #[test]
    fn event_sequences() {
        let queued = job(r#""status":"QUEUED""#);
        let p40 = hook(r#""event":"progress","status":"PROCESSING","progress":40"#);
        let p60 = hook(r#""event":"progress","status":"PROCESSING","progress":60"#);
        let done = hook(
            r#""event":"completed","status":"COMPLETED","progress":100,"result":"https://cdn.test/v.mp4""#,
        );
        let failed = hook(r#""event":"failed","status":"FAILED","error":"boom""#);
        let read_done = job(
            r#""status":"COMPLETED","progress":100,"result":{"videoUrl":"https://cdn.test/v.mp4"},"createdAt":"2026-03-15T10:00:00.000Z""#,
        );
        let url = Some("https://cdn.test/v.mp4".to_string());
        type Case<'a> = (
            &'a str,
            Vec<String>,
            (&'a str, f64, Option<String>, Vec<bool>),
        );
        let cases: Vec<Case> = vec![
            (
                "in_order",
                vec![queued.clone(), p40.clone(), p60.clone(), done.clone()],
                ("COMPLETED", 100.0, url.clone(), vec![true; 4]),
            ),
            (
                "replayed_progress",
                vec![queued.clone(), p40.clone(), p40.clone()],
                ("PROCESSING", 40.0, None, vec![true, true, false]),
            ),
            (
                "progress_never_decreases",
                vec![p60.clone(), p40.clone()],
                ("PROCESSING", 60.0, None, vec![true, false]),
            ),
            (
                "no_progress_after_completed",
                vec![p40.clone(), done.clone(), p60.clone()],
                ("COMPLETED", 100.0, url.clone(), vec![true, true, false]),
            ),
            (
                "replayed_terminal",
                vec![done.clone(), done.clone()],
                ("COMPLETED", 100.0, url.clone(), vec![true, false]),
            ),
            (
                "queued_after_processing",
                vec![p40.clone(), queued.clone()],
                ("PROCESSING", 40.0, None, vec![true, false]),
            ),
            (
                "first_outcome_wins",
                vec![done.clone(), failed.clone()],
                ("COMPLETED", 100.0, url.clone(), vec![true, false]),
            ),
            (
                "failed_then_completed",
                vec![failed.clone(), done.clone()],
                ("FAILED", 0.0, None, vec![true, false]),
            ),
            (
                "read_fills_missing_fields",
                vec![done.clone(), read_done.clone(), read_done.clone()],
                ("COMPLETED", 100.0, url.clone(), vec![true, true, false]),
            ),
            (
                "terminal_first",
                vec![done.clone(), queued.clone(), p40.clone()],
                ("COMPLETED", 100.0, url.clone(), vec![true, false, false]),
            ),
        ];
        for (name, events, (status, progress, video, changes)) in cases {
            assert_eq!(
                run(&events),
                (status.to_string(), progress, video, changes),
                "{name}"
            );
        }
    }

    #[test]
    fn stored_shape_is_the_status_read_shape() {
        let first = merge(
            None,
            &hook(r#""event":"progress","status":"PROCESSING","progress":40,"model":"sora-2""#),
            ID,
        )
        .unwrap();
        assert_eq!(
            first.state,
            format!(
                r#"{{"id":"{ID}","status":"PROCESSING","model":"sora-2","progress":40,"result":null,"error":null}}"#
            )
        );
        let done = merge(Some(&first.state), &hook(r#""event":"completed","status":"COMPLETED","result":"https://cdn.test/v.mp4","creditCost":8,"completedAt":"2026-03-15T10:03:00.000Z""#), ID).unwrap();
        assert_eq!(
            done.state,
            format!(
                r#"{{"id":"{ID}","status":"COMPLETED","model":"sora-2","progress":100,"result":"https://cdn.test/v.mp4","error":null,"creditCost":8,"completedAt":"2026-03-15T10:03:00.000Z"}}"#
            )
        );
        assert!(done.changed && done.terminal);
        assert_eq!((done.status.as_str(), done.progress), ("COMPLETED", 100.0));
    }

    #[test]
    fn a_null_does_not_erase_and_other_jobs_are_refused() {
        let a = merge(
            None,
            &job(r#""status":"PROCESSING","progress":10,"model":"sora-2""#),
            ID,
        )
        .unwrap();
        let b = merge(
            Some(&a.state),
            &job(r#""status":"PROCESSING","progress":20,"model":null"#),
            ID,
        )
        .unwrap();
        assert!(b.state.contains("\"model\":\"sora-2\""), "{}", b.state);
        let other = r#"{"id":"11111111-1f7e-4a8e-9c1d-2f3e4a5b6c7d","status":"QUEUED"}"#;
        assert_eq!(merge(None, other, ID).unwrap_err().status, 502);
        assert_eq!(merge(None, "[]", ID).unwrap_err().status, 502);
        assert_eq!(merge(None, r#"{"id":"x"}"#, ID).unwrap_err().status, 502);
        assert!(
            merge(None, &job(r#""status":"QUEUED""#), &ID.to_uppercase()).is_ok(),
            "ids compare case-insensitively"
        );
        let corrupt = merge(Some("not json"), &job(r#""status":"QUEUED""#), ID).unwrap();
        assert!(corrupt.changed, "a corrupt stored state is replaced");
    }

    #[test]
    fn fallback_timing() {
        let cases = [
            (None, DEFAULT_FALLBACK_MS),
            (Some("4000"), 4_000),
            (Some(" 1500 "), 1_500),
            (Some("0"), 100),
            (Some("-5"), DEFAULT_FALLBACK_MS),
            (Some("soon"), DEFAULT_FALLBACK_MS),
        ];
        for (config, ms) in cases {
            assert_eq!(fallback_first_ms(config), ms, "{config:?}");
        }
        // The fallback follows the adaptive poll schedule fed with the same observations
        // (its exact figures are the schedule's own business, tested in core::schedule).
        let obs = parse_observations("[[10000,10],[20000,20],[\"x\",1],[30000]]");
        assert_eq!(obs, vec![(10_000, 10.0), (20_000, 20.0)]);
        let histories: [&[(u64, f64)]; 3] = [&[], &[(240_000, 0.0)], &obs];
        for history in histories {
            let mut schedule = PollSchedule::new();
            for &(at, progress) in history {
                schedule.observe(at, progress);
            }
            let now = history.last().map_or(240_000, |(at, _)| *at);
            let delay = fallback_delay_ms(history, now, None);
            assert_eq!(delay, schedule.next_delay_ms(now, None), "{history:?}");
            assert!((1_000..=15_000).contains(&delay), "{history:?}: {delay}");
        }
        assert_eq!(
            fallback_delay_ms(&obs, 20_000, Some(30_000)),
            30_000,
            "Retry-After wins"
        );
    }
}
