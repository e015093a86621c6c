//! What one worker isolate remembers of the job objects' answers to status
//! reads, so that a read the object would answer the same way does not cross
//! to the object (with the relay on, that crossing was most of a status
//! read's cost: docs/perf-notes.md, issue 9).
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
//!
//! One call to a job's object at a time per isolate: while one is out, other
//! reads of the job do not make their own. A finished job is answered from
//! the earlier answer (a finished job does not change); any other read is
//! answered as the upstream gave it, as when the object cannot be reached.
//! Without this, the readers in flight when an answer expired all asked the
//! object: 32 concurrent reads of one job for 3.5 s made 232 object calls,
//! and make 12 with it (bench/cpu.mjs --relay).

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
    /// Ask the object, which reads upstream itself; then
    /// [`Recent::remember`] its answer, or [`Recent::settled`] on failure.
    AskObject,
}

/// The step after a successful upstream read with the relay on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum After {
    /// The object already merged this very read: answer with its answer.
    Answer(String),
    /// Hand the read to the object to merge; then [`Recent::remember`] its
    /// answer, or [`Recent::settled`] on failure.
    Merge,
    /// Another read of the job is with the object: answer the read as it is.
    AsRead,
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
    /// Jobs with a call to their object out, since when.
    calling: HashMap<String, u64>,
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

    /// Whether a call to job `id`'s object is out. One that has not settled
    /// within [`TTL_MS`] no longer holds other reads back.
    fn calling(&self, id: &str, now_ms: u64) -> bool {
        self.calling
            .get(&key(id))
            .is_some_and(|&since| now_ms < since.saturating_add(TTL_MS))
    }

    /// Notes a call to job `id`'s object, unless one is out: whether to make it.
    fn call(&mut self, id: &str, now_ms: u64) -> bool {
        if self.calling(id, now_ms) {
            return false;
        }
        if self.calling.len() >= MAX_JOBS {
            self.calling
                .retain(|_, since| now_ms < since.saturating_add(TTL_MS));
        }
        self.calling.insert(key(id), now_ms);
        true
    }

    /// What to do first for a status read of job `id`.
    pub fn before_read(&mut self, id: &str, now_ms: u64) -> Before {
        if let Some(e) = self.fresh(id, now_ms) {
            return if e.terminal {
                Before::Finished(e.job.clone())
            } else {
                Before::ReadUpstream
            };
        }
        if self.call(id, now_ms) {
            return Before::AskObject;
        }
        match self.entries.get(&key(id)) {
            Some(e) if e.terminal => Before::Finished(e.job.clone()),
            _ => Before::ReadUpstream,
        }
    }

    /// What to do after a successful upstream read (`upstream`, the body as
    /// the client may see it).
    pub fn after_read(&mut self, id: &str, upstream: &str, now_ms: u64) -> After {
        let merged = self
            .fresh(id, now_ms)
            .filter(|e| e.upstream.as_deref() == Some(upstream))
            .map(|e| e.job.clone());
        match merged {
            Some(job) => After::Answer(job),
            None if self.call(id, now_ms) => After::Merge,
            None => After::AsRead,
        }
    }

    /// The call to job `id`'s object settled without an answer to remember.
    pub fn settled(&mut self, id: &str) {
        self.calling.remove(&key(id));
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
        self.settled(id);
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
        // (name, remembered: (job, upstream, at), read at, upstream read,
        // before, after: the object's answer, or None to merge)
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
            // Each step from the same memory (a read asks `after_read` only
            // when `before_read` said to read upstream).
            let recent = || {
                let mut recent = Recent::default();
                if let Some((job, upstream, at)) = remembered {
                    recent.remember(ID, job.into(), upstream.map(String::from), at);
                }
                recent
            };
            assert_eq!(recent().before_read(ID, now), before, "{name}");
            let after = after.map_or(After::Merge, |job| After::Answer(job.into()));
            assert_eq!(recent().after_read(ID, read, now), after, "{name}");
        }
    }

    #[test]
    fn one_object_call_at_a_time() {
        let mut recent = Recent::default();
        // An unknown job: the first read asks the object, the others read upstream alone.
        assert_eq!(recent.before_read(ID, 0), Before::AskObject);
        assert_eq!(recent.before_read(ID, 5), Before::ReadUpstream);
        assert_eq!(recent.after_read(ID, RUNNING, 5), After::AsRead);
        // A call that failed frees the next read to ask.
        recent.settled(ID);
        assert_eq!(recent.before_read(ID, 6), Before::AskObject);
        // An answer settles the call too.
        recent.remember(ID, RUNNING.into(), None, 10);
        assert_eq!(recent.before_read(ID, 20), Before::ReadUpstream);
        assert_eq!(recent.after_read(ID, RUNNING, 20), After::Merge);
        assert_eq!(recent.after_read(ID, RUNNING, 21), After::AsRead);
        recent.remember(ID, RUNNING.into(), Some(RUNNING.into()), 30);
        assert_eq!(
            recent.after_read(ID, RUNNING, 40),
            After::Answer(RUNNING.into())
        );
        // A finished job's expired answer still answers while the object is asked.
        recent.remember(ID, DONE.into(), None, 100);
        assert_eq!(recent.before_read(ID, 1_100), Before::AskObject);
        assert_eq!(recent.before_read(ID, 1_101), Before::Finished(DONE.into()));
        // A call that never settles holds reads back for TTL_MS at most.
        assert_eq!(recent.before_read(ID, 2_099), Before::Finished(DONE.into()));
        assert_eq!(recent.before_read(ID, 2_100), Before::AskObject);
    }

    #[test]
    fn ids_compare_case_insensitively_and_forget_drops() {
        let mut recent = Recent::default();
        recent.remember(&ID.to_uppercase(), DONE.into(), None, 0);
        assert_eq!(recent.before_read(ID, 1), Before::Finished(DONE.into()));
        recent.forget(&ID.to_uppercase());
        assert_eq!(recent.before_read(ID, 1), Before::AskObject);
        assert_eq!(
            recent.before_read(&ID.to_uppercase(), 2),
            Before::ReadUpstream
        );
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
