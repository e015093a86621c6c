//! What one worker isolate remembers of the job objects' answers to status
//! reads, so that a read the object would answer the same way does not cross
//! to the object. Each rule stays for what `bench/cpu.mjs --relay
//! [--finished]` (32 concurrent reads of one job) measured without it:
//!
//! - For [`TTL_MS`] after the object answered that a job is finished, a read
//!   is answered with that answer, reading neither upstream nor the object:
//!   without it, a read of a finished job cost 150-200 µs more CPU, each
//!   one an object call.
//! - For [`TTL_MS`] after the object merged a running job's upstream read
//!   made here, a read that gets the very same upstream answer is answered
//!   with the object's answer (merging it again would change nothing); any
//!   other read goes to the object to be merged. Without it, a read of a
//!   running job cost 180-240 µs more, each one an object call.
//! - One call to a job's object at a time: while one is out, other reads of
//!   the job are answered as the upstream gives them, as when the object
//!   cannot be reached. Without it, the reads in flight when an answer
//!   expired all asked the object: 13 to 20 times the object calls.
//!
//! What the object learns from elsewhere (a webhook at another isolate)
//! reaches a reader here at most [`TTL_MS`] late; a webhook through this
//! isolate [`forgets`](Recent::forget) the job at once.

use crate::core::JobStatus;
use std::collections::HashMap;

/// How long an object's answer stands in for the object, and the longest a
/// call to it holds other reads back (one that never settles).
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
    /// Ask the object, which reads upstream itself; then tell
    /// [`Recent::answered`].
    AskObject,
}

/// The step after a successful upstream read with the relay on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum After {
    /// The object already merged this very read: answer with its answer.
    Answer(String),
    /// Hand the read to the object to merge; then tell [`Recent::answered`].
    Merge,
    /// Another read of the job is with the object: answer the read as it is.
    AsRead,
}

struct Entry {
    /// The object's answer.
    job: String,
    terminal: bool,
    /// The upstream read the object merged into `job`, when this isolate made it.
    upstream: Option<String>,
    at_ms: u64,
}

/// The object answers this isolate has seen, and its calls out, by
/// lower-case job id.
#[derive(Default)]
pub struct Recent {
    entries: HashMap<String, Entry>,
    /// Since when a call to the job's object is out.
    calling: HashMap<String, u64>,
}

fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

fn live(since_ms: u64, now_ms: u64) -> bool {
    now_ms < since_ms.saturating_add(TTL_MS)
}

/// Inserts into a map of at most [`MAX_JOBS`]: when it is full, what is no
/// longer `live` goes first, and everything if nothing is.
fn bounded_insert<V>(
    map: &mut HashMap<String, V>,
    key: String,
    value: V,
    live: impl Fn(&V) -> bool,
) {
    if map.len() >= MAX_JOBS && !map.contains_key(&key) {
        map.retain(|_, v| live(v));
        if map.len() >= MAX_JOBS {
            map.clear();
        }
    }
    map.insert(key, value);
}

fn is_terminal(job: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(job)
        .ok()
        .and_then(|job| Some(JobStatus::parse(job.get("status")?.as_str()?).is_terminal()))
        .unwrap_or(false)
}

impl Recent {
    fn fresh(&self, id: &str, now_ms: u64) -> Option<&Entry> {
        self.entries.get(&key(id)).filter(|e| live(e.at_ms, now_ms))
    }

    /// Notes a call to job `id`'s object, unless one is out: whether to make it.
    fn call(&mut self, id: &str, now_ms: u64) -> bool {
        if self
            .calling
            .get(&key(id))
            .is_some_and(|&since| live(since, now_ms))
        {
            return false;
        }
        bounded_insert(&mut self.calling, key(id), now_ms, |&since| {
            live(since, now_ms)
        });
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
            Before::AskObject
        } else {
            Before::ReadUpstream
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

    /// The call to job `id`'s object settled: with its answer `job` when it
    /// gave one, made from the upstream read `upstream` when this isolate
    /// made that read.
    pub fn answered(
        &mut self,
        id: &str,
        job: Option<String>,
        upstream: Option<String>,
        now_ms: u64,
    ) {
        self.calling.remove(&key(id));
        let Some(job) = job else { return };
        let entry = Entry {
            terminal: is_terminal(&job),
            job,
            upstream,
            at_ms: now_ms,
        };
        bounded_insert(&mut self.entries, key(id), entry, |e| live(e.at_ms, now_ms));
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
                    recent.answered(ID, Some(job.into()), upstream.map(String::from), at);
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
        recent.answered(ID, None, None, 6);
        assert_eq!(recent.before_read(ID, 6), Before::AskObject);
        // An answer settles the call too.
        recent.answered(ID, Some(RUNNING.into()), None, 10);
        assert_eq!(recent.before_read(ID, 20), Before::ReadUpstream);
        assert_eq!(recent.after_read(ID, RUNNING, 20), After::Merge);
        assert_eq!(recent.after_read(ID, RUNNING, 21), After::AsRead);
        recent.answered(ID, Some(RUNNING.into()), Some(RUNNING.into()), 30);
        assert_eq!(
            recent.after_read(ID, RUNNING, 40),
            After::Answer(RUNNING.into())
        );
        // A call that never settles holds reads back for TTL_MS at most.
        assert_eq!(recent.before_read(ID, 1_030), Before::AskObject);
        assert_eq!(recent.before_read(ID, 2_029), Before::ReadUpstream);
        assert_eq!(recent.before_read(ID, 2_030), Before::AskObject);
    }

    #[test]
    fn ids_compare_case_insensitively_and_forget_drops() {
        let mut recent = Recent::default();
        recent.answered(&ID.to_uppercase(), Some(DONE.into()), None, 0);
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
        // Full, some answers expired: those go.
        let mut recent = Recent::default();
        for i in 0..MAX_JOBS {
            recent.answered(&format!("job-{i}"), Some(RUNNING.into()), None, i as u64);
        }
        recent.answered("one more", Some(RUNNING.into()), None, 1_100);
        assert_eq!(recent.before_read("job-0", 1_100), Before::AskObject);
        let last = format!("job-{}", MAX_JOBS - 1);
        assert_eq!(recent.before_read(&last, 1_100), Before::ReadUpstream);
        // Full of fresh answers, and of calls out: all go.
        let mut recent = Recent::default();
        for i in 0..=MAX_JOBS {
            recent.answered(&format!("job-{i}"), Some(RUNNING.into()), None, 0);
            recent.before_read(&format!("call-{i}"), 0);
        }
        assert_eq!(recent.entries.len(), 1);
        assert_eq!(recent.calling.len(), 1);
    }
}
