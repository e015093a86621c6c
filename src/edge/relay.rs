//! Relay state: the record a job's Durable Object keeps, merging webhooks
//! and status reads into it, and the timing of the object's fallback polls.
//!
//! The stored job has the shape of the upstream's `GET /v2/jobs/{id}`, so
//! every reader (the events stream, a status read answered from the object,
//! the client library) sees one format. Merging is monotonic: a replayed or
//! late event never moves a job backwards. The status only moves forward
//! (QUEUED → PROCESSING → COMPLETED | FAILED), progress never decreases, a
//! terminal job never changes status again, and a `null` never erases a
//! value already known. Every job merged here was rebuilt first
//! (`edge::upstream::client_job`): known fields only, strings redacted and
//! bounded. So the record is bounded too, with a capped list of observations.
//!
//! A record also says whether this worker created the job
//! ([`Record::created`]): only those are read or streamed for a client.

use super::reply::Reply;
use crate::core::schedule::PollSchedule;
use crate::core::JobStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A job in the status-read shape.
pub type JobMap = Map<String, Value>;

/// The first fallback check, when `RELAY_FALLBACK_MS` is unset: a bit after
/// the ~180 s that the upstream's jobs take on average.
pub const DEFAULT_FALLBACK_MS: u64 = 240_000;
/// After this many fallback reads the object stops polling (at the schedule's
/// 15 s ceiling that is about an hour; a video takes 1 to 5 minutes).
pub const MAX_FALLBACK_READS: u32 = 240;
/// The fallback gives up after this many 404s in a row: the job is not there.
pub const MAX_NOT_FOUND_READS: u32 = 3;
/// The fallback gives up after this many failed reads (401, 5xx, network) in a row.
pub const MAX_FAILED_READS: u32 = 10;
/// The first wait after a failed fallback read; it doubles with each failure.
pub const ERROR_BACKOFF_MS: u64 = 1_000;
/// The longest wait between failed fallback reads.
pub const MAX_ERROR_BACKOFF_MS: u64 = 300_000;
/// Progress observations kept for the fallback schedule.
pub const MAX_OBSERVATIONS: usize = 32;

fn bad(message: &str) -> Reply {
    Reply::error(502, "bad_response", message)
}

fn status_of(job: &JobMap) -> Option<JobStatus> {
    match job.get("status") {
        Some(Value::String(s)) if !s.is_empty() => Some(JobStatus::parse(s)),
        _ => None,
    }
}

fn progress_of(job: &JobMap) -> Option<f64> {
    job.get("progress").and_then(Value::as_f64)
}

/// The outcome of a merge.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// The job to store.
    pub job: JobMap,
    /// Whether it differs from what was stored (subscribers get an event).
    pub changed: bool,
    /// Whether the job is COMPLETED or FAILED.
    pub terminal: bool,
    /// The merged progress, 0 to 100.
    pub progress: f64,
}

/// Merges `incoming` (a webhook or status-read job, rebuilt) into `stored`
/// (the object's job, or `None` when it knows none yet).
///
/// # Errors
/// 502 `bad_response` when `incoming` is not a job, or is another job than `job_id`.
pub fn merge(stored: Option<&JobMap>, incoming: JobMap, job_id: &str) -> Result<Merged, Reply> {
    let id_matches = match incoming.get("id") {
        Some(Value::String(id)) => id.eq_ignore_ascii_case(job_id),
        _ => return Err(bad("job has no id")),
    };
    if !id_matches {
        return Err(bad("job id does not match the job asked for"));
    }
    let new_status = status_of(&incoming).ok_or_else(|| bad("job has no status"))?;
    let merged = match stored.and_then(|s| Some((s, status_of(s)?))) {
        None => fresh(incoming),
        Some((old, old_status)) => combine(old, old_status, incoming, new_status),
    };
    let status = status_of(&merged).ok_or_else(|| bad("merged job has no status"))?;
    Ok(Merged {
        changed: stored != Some(&merged),
        terminal: status.is_terminal(),
        progress: progress_of(&merged).unwrap_or(0.0),
        job: merged,
    })
}

fn fresh(mut job: JobMap) -> JobMap {
    job.entry("progress").or_insert(Value::from(0));
    job.entry("result").or_insert(Value::Null);
    job.entry("error").or_insert(Value::Null);
    if status_of(&job) == Some(JobStatus::Completed) {
        job.insert("progress".into(), Value::from(100));
    }
    job
}

fn is_missing(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

fn combine(old: &JobMap, old_status: JobStatus, incoming: JobMap, new_status: JobStatus) -> JobMap {
    let mut out = old.clone();
    if old_status.is_terminal() {
        // Final. A later read of the same outcome may only fill in what is missing.
        if new_status == old_status {
            for (key, value) in incoming {
                if !matches!(key.as_str(), "id" | "status" | "progress")
                    && !value.is_null()
                    && is_missing(out.get(&key))
                {
                    out.insert(key, value);
                }
            }
        }
        return out;
    }
    if new_status.rank() < old_status.rank() {
        return out;
    }
    for (key, value) in incoming {
        match key.as_str() {
            "id" => {}
            "progress" => {
                let newer = value.as_f64();
                let older = progress_of(&out);
                if newer.is_some_and(|n| older.is_none_or(|o| n > o)) {
                    out.insert(key, value);
                }
            }
            _ if value.is_null() && !is_missing(out.get(&key)) => {}
            _ => {
                out.insert(key, value);
            }
        }
    }
    if new_status == JobStatus::Completed {
        out.insert("progress".into(), Value::from(100));
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

/// How a fallback read went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The upstream answered with the job.
    Job,
    /// The upstream does not know the job (404).
    NotFound,
    /// Anything else: 401, 429, 5xx, a bad body, no answer.
    Failed {
        /// The upstream's `Retry-After`, if it sent one.
        retry_after_ms: Option<u64>,
    },
}

/// What one job's Durable Object stores.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The job's id as first seen.
    pub job_id: String,
    /// The latest job, once known.
    pub job: Option<JobMap>,
    /// Bumped on every change: the events stream's `id`.
    pub seq: u64,
    /// Whether the job is COMPLETED or FAILED.
    pub terminal: bool,
    /// When the object first heard of the job (ms since the epoch).
    pub started_at: u64,
    /// `(ms since start, progress)` seen, for the fallback schedule.
    pub observations: Vec<(u64, f64)>,
    /// Fallback reads made.
    pub reads: u32,
    /// Fallback reads that got a 404, in a row.
    pub not_found_reads: u32,
    /// Fallback reads that failed otherwise, in a row.
    pub failed_reads: u32,
    /// Whether this worker created the job (its generate was accepted
    /// here). A signed webhook may teach the object a job before that, or
    /// one made elsewhere; clients read and stream created jobs only.
    /// Records of versions before this field read as not created.
    #[serde(default)]
    pub created: bool,
    /// The subject that created the job, in a token mode: no other caller
    /// reads or streams it ([`crate::edge::auth::may_read`]).
    #[serde(default)]
    pub owner: Option<String>,
    /// The job's reservation in the quota ledger, when quotas are on.
    #[serde(default)]
    pub reservation: Option<String>,
    /// Whether the ledger has heard of the job's fate.
    #[serde(default)]
    pub settled: bool,
}

impl Record {
    /// The fate the ledger has not heard of yet, if the job has one:
    /// `Some(true)` for COMPLETED (commit), `Some(false)` for FAILED (refund).
    pub fn unsettled_fate(&self) -> Option<bool> {
        if self.settled || self.reservation.is_none() || !self.terminal {
            return None;
        }
        let status = self.job.as_ref().and_then(status_of)?;
        Some(status == JobStatus::Completed)
    }
}

impl Record {
    /// A record for a job first heard of at `now_ms`.
    pub fn new(job_id: &str, now_ms: u64) -> Record {
        Record {
            job_id: job_id.to_string(),
            started_at: now_ms,
            ..Record::default()
        }
    }

    /// Merges a job into the record.
    ///
    /// # Errors
    /// As [`merge`]; the record is then unchanged.
    pub fn apply(&mut self, incoming: JobMap, now_ms: u64) -> Result<Merged, Reply> {
        let merged = merge(self.job.as_ref(), incoming, &self.job_id)?;
        if merged.changed {
            self.seq += 1;
            self.terminal = merged.terminal;
            self.job = Some(merged.job.clone());
            if !merged.terminal {
                self.observe(now_ms, merged.progress);
            }
        }
        Ok(merged)
    }

    fn observe(&mut self, now_ms: u64, progress: f64) {
        self.observations
            .push((now_ms.saturating_sub(self.started_at), progress));
        if self.observations.len() > MAX_OBSERVATIONS {
            // The first observation anchors the rate; the recent ones refine it.
            self.observations.remove(1);
        }
    }

    /// The job as JSON text, once known.
    pub fn job_json(&self) -> Option<String> {
        self.job
            .as_ref()
            .and_then(|j| serde_json::to_string(j).ok())
    }

    /// The delay before the next fallback read after one that went `outcome`,
    /// or `None` when the object should stop polling: the job is over, the
    /// upstream said 404 [`MAX_NOT_FOUND_READS`] times in a row, failed
    /// [`MAX_FAILED_READS`] times in a row, or [`MAX_FALLBACK_READS`] were made.
    /// Failures back off exponentially from [`ERROR_BACKOFF_MS`].
    pub fn after_read(&mut self, outcome: ReadOutcome, now_ms: u64) -> Option<u64> {
        self.reads += 1;
        let retry_after = match outcome {
            ReadOutcome::Job => {
                self.not_found_reads = 0;
                self.failed_reads = 0;
                None
            }
            ReadOutcome::NotFound => {
                self.not_found_reads += 1;
                self.failed_reads = 0;
                None
            }
            ReadOutcome::Failed { retry_after_ms } => {
                self.failed_reads += 1;
                self.not_found_reads = 0;
                retry_after_ms
            }
        };
        if self.terminal
            || self.reads >= MAX_FALLBACK_READS
            || self.not_found_reads >= MAX_NOT_FOUND_READS
            || self.failed_reads >= MAX_FAILED_READS
        {
            return None;
        }
        let misses = self.not_found_reads.max(self.failed_reads);
        if misses > 0 {
            let backoff = ERROR_BACKOFF_MS
                .saturating_mul(1 << (misses - 1).min(20))
                .min(MAX_ERROR_BACKOFF_MS);
            return Some(backoff.max(retry_after.unwrap_or(0)));
        }
        Some(self.schedule_delay(now_ms, retry_after))
    }

    /// The adaptive poll schedule's next delay, fed with what was observed.
    pub fn schedule_delay(&self, now_ms: u64, retry_after_ms: Option<u64>) -> u64 {
        let mut schedule = PollSchedule::new();
        for &(at, progress) in &self.observations {
            schedule.observe(at, progress);
        }
        schedule.next_delay_ms(now_ms.saturating_sub(self.started_at), retry_after_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::redact::Secrets;
    use crate::edge::upstream::client_job;
    use serde_json::json;

    const ID: &str = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";

    /// A job as the object receives it: rebuilt from an upstream shape.
    fn job(value: Value) -> JobMap {
        let Value::Object(mut map) = value else {
            panic!("not an object")
        };
        if !map.contains_key("jobId") {
            map.entry("id").or_insert(json!(ID));
        }
        client_job(&Value::Object(map), &Secrets::new(&[])).unwrap()
    }

    /// Feeds events into an empty record; the final (status, progress,
    /// result) and which steps changed the state.
    fn run(events: &[JobMap]) -> (String, f64, Value, Vec<bool>) {
        let mut rec = Record::new(ID, 0);
        let changes = events
            .iter()
            .map(|e| rec.apply(e.clone(), 1).unwrap().changed)
            .collect();
        let last = rec.job.unwrap();
        (
            last["status"].as_str().unwrap().to_string(),
            last["progress"].as_f64().unwrap(),
            last["result"].clone(),
            changes,
        )
    }

    #[test]
    fn event_sequences() {
        let queued = job(json!({"status": "QUEUED"}));
        let p40 =
            job(json!({"jobId": ID, "event": "progress", "status": "PROCESSING", "progress": 40}));
        let p60 =
            job(json!({"jobId": ID, "event": "progress", "status": "PROCESSING", "progress": 60}));
        let done = job(
            json!({"jobId": ID, "event": "completed", "status": "COMPLETED", "progress": 100, "result": "https://cdn.test/v.mp4"}),
        );
        let failed =
            job(json!({"jobId": ID, "event": "failed", "status": "FAILED", "error": "boom"}));
        let read_done = job(
            json!({"status": "COMPLETED", "progress": 100, "result": {"videoUrl": "https://cdn.test/v.mp4"}, "createdAt": "2026-03-15T10:00:00.000Z"}),
        );
        let url = json!("https://cdn.test/v.mp4");
        type Case<'a> = (&'a str, Vec<JobMap>, (&'a str, f64, Value, Vec<bool>));
        let cases: Vec<Case> = vec![
            (
                "in_order",
                vec![queued.clone(), p40.clone(), p60.clone(), done.clone()],
                ("COMPLETED", 100.0, url.clone(), vec![true; 4]),
            ),
            (
                "replayed_progress",
                vec![queued.clone(), p40.clone(), p40.clone()],
                ("PROCESSING", 40.0, Value::Null, vec![true, true, false]),
            ),
            (
                "progress_never_decreases",
                vec![p60.clone(), p40.clone()],
                ("PROCESSING", 60.0, Value::Null, vec![true, false]),
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
                ("PROCESSING", 40.0, Value::Null, vec![true, false]),
            ),
            (
                "first_outcome_wins",
                vec![done.clone(), failed.clone()],
                ("COMPLETED", 100.0, url.clone(), vec![true, false]),
            ),
            (
                "failed_then_completed",
                vec![failed.clone(), done.clone()],
                ("FAILED", 0.0, Value::Null, vec![true, false]),
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
    fn a_null_does_not_erase_and_other_jobs_are_refused() {
        let mut rec = Record::new(ID, 0);
        rec.apply(
            job(json!({"status": "PROCESSING", "progress": 10, "model": "sora-2"})),
            1,
        )
        .unwrap();
        rec.apply(
            job(json!({"status": "PROCESSING", "progress": 20, "model": null})),
            2,
        )
        .unwrap();
        assert_eq!(rec.job.as_ref().unwrap()["model"], "sora-2");
        let other = job(json!({"id": "11111111-1f7e-4a8e-9c1d-2f3e4a5b6c7d", "status": "QUEUED"}));
        assert_eq!(merge(None, other, ID).unwrap_err().status, 502);
        let no_status: JobMap = [("id".to_string(), json!(ID))].into_iter().collect();
        assert_eq!(merge(None, no_status, ID).unwrap_err().status, 502);
        assert!(
            merge(None, job(json!({"status": "QUEUED"})), &ID.to_uppercase()).is_ok(),
            "ids compare case-insensitively"
        );
    }

    #[test]
    fn state_stays_bounded() {
        let mut rec = Record::new(ID, 0);
        for i in 0..200 {
            let mut event = json!({"status": "PROCESSING", "progress": i as f64 / 2.0});
            event[format!("extra{i}")] = json!("x".repeat(1000));
            rec.apply(job(event), i).unwrap();
        }
        let size = serde_json::to_string(&rec).unwrap().len();
        assert!(size < 4096, "record of {size} bytes");
        assert!(rec.observations.len() <= MAX_OBSERVATIONS);
        assert_eq!(rec.observations[0].0, 0, "the first observation is kept");
        let huge = job(json!({"status": "FAILED", "error": "e".repeat(40_000)}));
        rec.apply(huge, 300).unwrap();
        assert!(rec.job_json().unwrap().len() < 2 * crate::edge::upstream::MAX_TEXT_CHARS);
    }

    #[test]
    fn fallback_backs_off_and_gives_up() {
        let failed = ReadOutcome::Failed {
            retry_after_ms: None,
        };
        let mut rec = Record::new(ID, 0);
        let delays: Vec<Option<u64>> = (0..MAX_FAILED_READS)
            .map(|_| rec.after_read(failed, 10))
            .collect();
        assert_eq!(
            &delays[..4],
            &[Some(1_000), Some(2_000), Some(4_000), Some(8_000)]
        );
        assert_eq!(delays[delays.len() - 2], Some(256_000));
        assert_eq!(
            delays.last(),
            Some(&None),
            "gives up after {MAX_FAILED_READS} failures"
        );

        let mut rec = Record::new(ID, 0);
        let nf: Vec<Option<u64>> = (0..MAX_NOT_FOUND_READS)
            .map(|_| rec.after_read(ReadOutcome::NotFound, 10))
            .collect();
        assert_eq!(nf, vec![Some(1_000), Some(2_000), None]);

        let mut rec = Record::new(ID, 0);
        rec.after_read(failed, 10);
        rec.after_read(failed, 10);
        let ok = rec.after_read(ReadOutcome::Job, 10).unwrap();
        assert!(
            (1_000..=15_000).contains(&ok),
            "a success returns to the schedule: {ok}"
        );
        assert_eq!(rec.failed_reads, 0);
        assert_eq!(
            rec.after_read(
                ReadOutcome::Failed {
                    retry_after_ms: Some(30_000)
                },
                10
            ),
            Some(30_000),
            "Retry-After wins over a shorter backoff"
        );
        let mut rec = Record::new(ID, 0);
        rec.reads = MAX_FALLBACK_READS - 1;
        assert_eq!(
            rec.after_read(ReadOutcome::Job, 10),
            None,
            "the read cap holds"
        );
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
    }

    #[test]
    fn the_record_round_trips_through_serde() {
        let mut rec = Record::new(ID, 5);
        rec.apply(job(json!({"status": "PROCESSING", "progress": 40})), 10)
            .unwrap();
        let text = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), rec);
    }
}
