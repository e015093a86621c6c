//! What one worker isolate remembers of the job objects' answers to status
//! reads, so that a read the object would answer the same way does not cross
//! to the object (with the relay on, that crossing was most of a status
//! read's cost: BENCHMARKS.md, issue 9).
//!
//! The object answers a finished job from its record, and merges a running
//! job's upstream read into its record. So, for [`TTL_MS`] after the object
//! answered:
//! - a finished job is answered with the object's answer, without reading
//!   upstream or asking the object;
//! - a running job is read upstream; when the read is the one the object
//!   last merged, merging it again would change nothing, and the object's
//!   answer stands; any other read goes to the object to be merged.
//!
//! What the object learns from elsewhere (a webhook at another isolate)
//! reaches a reader here at most [`TTL_MS`] late; a webhook through this
//! isolate [`forgets`](Recent::forget) the job at once.

use super::relay::JobMap;
use crate::core::JobStatus;
use std::collections::HashMap;

/// How long an object's answer stands in for the object.
pub const TTL_MS: u64 = 1_000;
/// Jobs remembered per isolate.
pub const MAX_JOBS: usize = 256;

/// The first step of a status read with the relay on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Before {
    /// The job is finished: answer with this job (the object's answer).
    Finished(String),
    /// Read upstream, then ask [`Recent::after_read`].
    ReadUpstream,
    /// Ask the object, which reads upstream itself.
    AskObject,
}

#[derive(Clone, Debug)]
struct Entry {
    /// The object's answer.
    job: String,
    terminal: bool,
    /// The upstream read the object merged into `job`, when this isolate made it.
    upstream: Option<String>,
    at_ms: u64,
}

/// The object answers this isolate has seen, by lower-case job id.
#[derive(Debug, Default)]
pub struct Recent {
    entries: HashMap<String, Entry>,
}

fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

fn is_terminal(job: &str) -> bool {
    serde_json::from_str::<JobMap>(job)
        .ok()
        .and_then(|job| match job.get("status") {
            Some(serde_json::Value::String(s)) => Some(JobStatus::parse(s).is_terminal()),
            _ => None,
        })
        .unwrap_or(false)
}

impl Recent {
    fn fresh(&self, id: &str, now_ms: u64) -> Option<&Entry> {
        self.entries
            .get(&key(id))
            .filter(|e| now_ms < e.at_ms.saturating_add(TTL_MS))
    }

    /// What to do first for a status read of job `id`.
    pub fn before_read(&self, id: &str, now_ms: u64) -> Before {
        match self.fresh(id, now_ms) {
            Some(e) if e.terminal => Before::Finished(e.job.clone()),
            Some(_) => Before::ReadUpstream,
            None => Before::AskObject,
        }
    }

    /// After a successful upstream read (`upstream`, the body as the client
    /// may see it): the object's answer when it already merged this very
    /// read, else `None` (hand the read to the object).
    pub fn after_read(&self, id: &str, upstream: &str, now_ms: u64) -> Option<String> {
        self.fresh(id, now_ms)
            .filter(|e| e.upstream.as_deref() == Some(upstream))
            .map(|e| e.job.clone())
    }

    /// Remembers the object's answer `job` to a read of `id`, made from the
    /// upstream read `upstream` when this isolate made it.
    pub fn remember(&mut self, id: &str, job: String, upstream: Option<String>, now_ms: u64) {
        if self.entries.len() >= MAX_JOBS && !self.entries.contains_key(&key(id)) {
            self.entries
                .retain(|_, e| now_ms < e.at_ms.saturating_add(TTL_MS));
            if self.entries.len() >= MAX_JOBS {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.at_ms)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        let terminal = is_terminal(&job);
        self.entries.insert(
            key(id),
            Entry {
                job,
                terminal,
                upstream,
                at_ms: now_ms,
            },
        );
    }

    /// Forgets job `id` (its object just learnt something).
    pub fn forget(&mut self, id: &str) {
        self.entries.remove(&key(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";
    const RUNNING: &str = r#"{"id":"j","status":"PROCESSING","progress":40}"#;
    const DONE: &str = r#"{"id":"j","status":"COMPLETED","progress":100}"#;

    #[test]
    fn read_steps_table() {
        // (name, remembered: (job, upstream, at), read at, upstream read, before, after)
        type Case<'a> = (
            &'a str,
            Option<(&'a str, Option<&'a str>, u64)>,
            u64,
            &'a str,
            Before,
            Option<&'a str>,
        );
        let cases: [Case; 8] = [
            ("unknown", None, 0, RUNNING, Before::AskObject, None),
            (
                "finished",
                Some((DONE, None, 0)),
                999,
                RUNNING,
                Before::Finished(DONE.into()),
                None,
            ),
            (
                "finished_expired",
                Some((DONE, None, 0)),
                1_000,
                DONE,
                Before::AskObject,
                None,
            ),
            (
                "running_same_read",
                Some((RUNNING, Some(RUNNING), 10)),
                500,
                RUNNING,
                Before::ReadUpstream,
                Some(RUNNING),
            ),
            (
                "running_new_read",
                Some((RUNNING, Some(RUNNING), 10)),
                500,
                DONE,
                Before::ReadUpstream,
                None,
            ),
            (
                "running_read_by_object",
                Some((RUNNING, None, 10)),
                500,
                RUNNING,
                Before::ReadUpstream,
                None,
            ),
            (
                "object_answer_differs_from_read",
                Some((DONE, Some(RUNNING), 10)),
                500,
                RUNNING,
                Before::Finished(DONE.into()),
                Some(DONE),
            ),
            (
                "running_expired",
                Some((RUNNING, Some(RUNNING), 10)),
                1_010,
                RUNNING,
                Before::AskObject,
                None,
            ),
        ];
        for (name, remembered, now, read, before, after) in cases {
            let mut recent = Recent::default();
            if let Some((job, upstream, at)) = remembered {
                recent.remember(ID, job.into(), upstream.map(String::from), at);
            }
            assert_eq!(recent.before_read(ID, now), before, "{name}");
            assert_eq!(recent.after_read(ID, read, now).as_deref(), after, "{name}");
        }
    }

    #[test]
    fn ids_compare_case_insensitively_and_forget_drops() {
        let mut recent = Recent::default();
        recent.remember(&ID.to_uppercase(), DONE.into(), None, 0);
        assert_eq!(recent.before_read(ID, 1), Before::Finished(DONE.into()));
        recent.forget(&ID.to_uppercase());
        assert_eq!(recent.before_read(ID, 1), Before::AskObject);
    }

    #[test]
    fn bounded() {
        let mut recent = Recent::default();
        for i in 0..MAX_JOBS + 10 {
            recent.remember(&format!("job-{i}"), RUNNING.into(), None, i as u64);
        }
        assert_eq!(recent.entries.len(), MAX_JOBS);
        // The oldest went first.
        assert_eq!(recent.before_read("job-0", 300), Before::AskObject);
        let last = format!("job-{}", MAX_JOBS + 9);
        assert_eq!(recent.before_read(&last, 300), Before::ReadUpstream);
    }
}
