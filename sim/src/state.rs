//! Simulator state: runtime config, jobs and their time-based lifecycle,
//! counters, queued faults and pending webhook deliveries.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub const FAULTS: [&str; 9] = [
    "500",
    "502",
    "503",
    "429",
    "429-date",
    "reset",
    "hang",
    "malformed",
    "lost",
];
/// Routes a queued fault can target.
pub const FAULT_ROUTES: [&str; 5] = ["generate", "job", "jobs", "me", "any"];
pub const WEBHOOK_MAX_ATTEMPTS: u32 = 5;

/// Milliseconds since the Unix epoch (wall clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `2026-03-15T10:00:00.000Z` from epoch milliseconds.
pub fn iso8601_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Settings that `POST /__sim/config` can change (reset restores the flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub job_ms: u64,
    pub object_shape: bool,
    pub drop_webhooks: bool,
    pub fault_rate: f64,
    pub fault_set: Vec<String>,
    pub seed: u64,
    pub webhook_retry_ms: u64,
}

impl Config {
    pub fn to_json(&self) -> Value {
        json!({
            "jobMs": self.job_ms,
            "resultShape": if self.object_shape { "object" } else { "string" },
            "dropWebhooks": self.drop_webhooks,
            "faultRate": self.fault_rate,
            "faultSet": self.fault_set,
            "seed": self.seed,
            "webhookRetryMs": self.webhook_retry_ms,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Processing,
    Completed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "QUEUED",
            Status::Processing => "PROCESSING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        match s.to_ascii_uppercase().as_str() {
            "QUEUED" => Some(Status::Queued),
            "PROCESSING" => Some(Status::Processing),
            "COMPLETED" => Some(Status::Completed),
            "FAILED" => Some(Status::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pending {
    pub event: String,
    pub body: Vec<u8>,
    pub attempts: u32,
    pub next_at: Instant,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub events: Vec<String>,
    /// Next progress step (10, 20, ..., 90) to emit; 100 when done.
    pub next_step: u32,
    pub terminal_emitted: bool,
    /// Emitted events not yet delivered or given up on; the head is the one
    /// being attempted.
    pub queue: VecDeque<Pending>,
    pub delivered_any: bool,
    pub failed_any: bool,
}

impl Webhook {
    pub fn status(&self) -> Option<&'static str> {
        if self.events.is_empty() {
            return None;
        }
        if self.failed_any {
            Some("failed")
        } else if self.terminal_emitted && self.queue.is_empty() && self.delivered_any {
            Some("delivered")
        } else {
            Some("pending")
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub seq: u64,
    pub id: String,
    pub model: String,
    pub credit_cost: i64,
    pub created_ms: u64,
    pub started: Instant,
    pub ms: u64,
    pub fail: Option<String>,
    pub object_shape: bool,
    pub webhook: Option<Webhook>,
}

impl Job {
    /// Elapsed milliseconds (fractional) since creation.
    fn elapsed(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.started).as_secs_f64() * 1000.0
    }

    /// Milliseconds after creation at which the job ends (fails at 50 %).
    pub fn end_ms(&self) -> f64 {
        if self.fail.is_some() {
            self.ms as f64 * 0.5
        } else {
            self.ms as f64
        }
    }

    /// Progress (0..=99) at `e` ms into PROCESSING's linear ramp.
    fn ramp(&self, e: f64) -> u32 {
        let d = self.ms as f64;
        if d <= 0.0 {
            return 99;
        }
        let frac = (e - 0.1 * d) / (0.9 * d);
        ((frac * 100.0).floor().max(0.0) as u32).min(99)
    }

    /// When the ramp reaches `step` percent (ms after creation).
    fn step_at(&self, step: u32) -> f64 {
        let d = self.ms as f64;
        0.1 * d + 0.9 * d * step as f64 / 100.0
    }

    pub fn phase(&self, now: Instant) -> (Status, u32) {
        let e = self.elapsed(now);
        let d = self.ms as f64;
        if e >= self.end_ms() {
            return if self.fail.is_some() {
                (Status::Failed, self.ramp(self.end_ms()))
            } else {
                (Status::Completed, 100)
            };
        }
        if e < 0.1 * d {
            (Status::Queued, 0)
        } else {
            (Status::Processing, self.ramp(e))
        }
    }

    pub fn completed_at_ms(&self) -> u64 {
        self.created_ms + self.end_ms().round() as u64
    }

    pub fn result(&self, port: u16) -> Value {
        let url = format!("http://127.0.0.1:{port}/videos/sample.mp4?job={}", self.id);
        if self.object_shape {
            json!({ "videoUrl": url })
        } else {
            Value::String(url)
        }
    }

    pub fn to_json(&self, now: Instant, port: u16) -> Value {
        let (status, progress) = self.phase(now);
        let terminal = matches!(status, Status::Completed | Status::Failed);
        json!({
            "id": self.id,
            "status": status.as_str(),
            "model": self.model,
            "progress": progress,
            "result": if status == Status::Completed { self.result(port) } else { Value::Null },
            "error": if status == Status::Failed { Value::String(self.fail.clone().unwrap_or_default()) } else { Value::Null },
            "creditCost": if status == Status::Failed { 0 } else { self.credit_cost },
            "webhookStatus": self.webhook.as_ref().and_then(|w| w.status()),
            "createdAt": iso8601_ms(self.created_ms),
            "completedAt": if terminal { Value::String(iso8601_ms(self.completed_at_ms())) } else { Value::Null },
        })
    }

    /// Webhook bodies for events that have happened by `now` and were not yet
    /// emitted, in order. Marks them emitted.
    pub fn due_events(&mut self, now: Instant, port: u16) -> Vec<(String, Vec<u8>)> {
        let e = self.elapsed(now);
        let end = self.end_ms();
        let mut out = Vec::new();
        let Some(wh) = self.webhook.as_ref() else {
            return out;
        };
        let wants = |ev: &str| wh.events.iter().any(|x| x == ev);
        let (want_progress, want_completed, want_failed) =
            (wants("progress"), wants("completed"), wants("failed"));
        let mut step = wh.next_step;
        while step <= 90 {
            let at = self.step_at(step);
            if at > e || at >= end {
                break;
            }
            if want_progress {
                let body = json!({
                    "event": "progress", "jobId": self.id, "status": "PROCESSING",
                    "progress": step, "model": self.model,
                });
                out.push(("progress".to_string(), body.to_string().into_bytes()));
            }
            step += 10;
        }
        // Steps past the end of a failing job are never reached.
        if e >= end {
            step = 100;
        }
        let mut terminal = wh.terminal_emitted;
        if !terminal && e >= end {
            terminal = true;
            if self.fail.is_some() {
                if want_failed {
                    let body = json!({
                        "event": "failed", "jobId": self.id, "status": "FAILED",
                        "error": self.fail, "model": self.model,
                    });
                    out.push(("failed".to_string(), body.to_string().into_bytes()));
                }
            } else if want_completed {
                let body = json!({
                    "event": "completed", "jobId": self.id, "status": "COMPLETED",
                    "progress": 100, "result": self.result(port), "model": self.model,
                    "creditCost": self.credit_cost,
                    "completedAt": iso8601_ms(self.completed_at_ms()),
                });
                out.push(("completed".to_string(), body.to_string().into_bytes()));
            }
        }
        if let Some(wh) = self.webhook.as_mut() {
            wh.next_step = step;
            wh.terminal_emitted = terminal;
        }
        out
    }

    /// When `due_events` next has something to emit; `None` once the terminal
    /// event is out.
    pub fn next_event_at(&self) -> Option<Instant> {
        let wh = self.webhook.as_ref()?;
        if wh.terminal_emitted {
            return None;
        }
        let end = self.end_ms();
        let progress = wh.events.iter().any(|e| e == "progress") && wh.next_step <= 90;
        let at = match self.step_at(wh.next_step) {
            s if progress && s < end => s,
            _ => end,
        };
        // Rounded up so that the event is surely due on waking.
        Some(self.started + Duration::from_micros((at * 1000.0).ceil() as u64))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: BTreeMap<&'static str, u64>,
    pub jobs_created: u64,
    pub idempotency_keys: BTreeMap<String, u64>,
    pub status_reads: BTreeMap<String, u64>,
    pub wh_attempted: u64,
    pub wh_delivered: u64,
    pub wh_failed: u64,
    pub auth_ok: u64,
    pub auth_missing: u64,
    pub auth_wrong: u64,
}

impl Stats {
    pub fn to_json(&self) -> Value {
        let r = |k: &str| self.requests.get(k).copied().unwrap_or(0);
        json!({
            "requests": {"generate": r("generate"), "job": r("job"), "jobs": r("jobs"), "me": r("me")},
            "jobsCreated": self.jobs_created,
            "idempotencyKeys": self.idempotency_keys,
            "statusReads": self.status_reads,
            "webhooks": {"attempted": self.wh_attempted, "delivered": self.wh_delivered, "failed": self.wh_failed},
            "auth": {"ok": self.auth_ok, "missing": self.auth_missing, "wrong": self.auth_wrong},
        })
    }
}

pub struct State {
    pub cfg: Config,
    pub jobs: Vec<Job>,
    pub index: HashMap<String, usize>,
    /// Idempotency-Key -> (canonical body, job id).
    pub idem: HashMap<String, (String, String)>,
    pub stats: Stats,
    /// Queued faults: (route, fault), consumed in order by matching requests.
    pub faults: VecDeque<(String, String)>,
    /// Draws the random faults: the same sequence after each `seed` is set.
    pub rng: fastrand::Rng,
    pub seq: u64,
}

/// What a job's webhook task does next (see `webhook.rs`).
#[derive(Debug, PartialEq)]
pub enum WebhookStep {
    /// Attempt the head event now (counted as attempted).
    Send {
        url: String,
        event: String,
        body: Vec<u8>,
    },
    /// Nothing is due before then.
    WaitUntil(Instant),
    /// Every event was emitted and settled.
    Done,
}

impl State {
    pub fn new(cfg: Config) -> State {
        State {
            rng: fastrand::Rng::with_seed(cfg.seed),
            cfg,
            jobs: Vec::new(),
            index: HashMap::new(),
            idem: HashMap::new(),
            stats: Stats::default(),
            faults: VecDeque::new(),
            seq: 0,
        }
    }

    pub fn job(&self, id: &str) -> Option<&Job> {
        self.index.get(id).map(|&i| &self.jobs[i])
    }

    pub fn job_mut(&mut self, id: &str) -> Option<&mut Job> {
        self.index.get(id).map(|&i| &mut self.jobs[i])
    }

    pub fn push_job(&mut self, job: Job) {
        self.index.insert(job.id.clone(), self.jobs.len());
        self.jobs.push(job);
    }

    /// Take the next fault for `route`: queued first, then random.
    pub fn next_fault(&mut self, route: &str) -> Option<String> {
        if let Some(pos) = self
            .faults
            .iter()
            .position(|(r, _)| r == "any" || r == route)
        {
            return self.faults.remove(pos).map(|(_, f)| f);
        }
        if self.cfg.fault_rate > 0.0 && self.rng.f64() < self.cfg.fault_rate {
            let set = &self.cfg.fault_set;
            if set.is_empty() {
                return Some("503".to_string());
            }
            return Some(set[self.rng.usize(..set.len())].clone());
        }
        None
    }

    /// Credits left: 1000 minus the cost of every job that has not failed.
    pub fn credits(&self, now: Instant) -> i64 {
        let spent: i64 = self
            .jobs
            .iter()
            .filter(|j| j.phase(now).0 != Status::Failed)
            .map(|j| j.credit_cost)
            .sum();
        1000 - spent
    }

    /// Queue the job's events that have happened by `now` (or discard them
    /// under `dropWebhooks`: never sent, never counted) and say what its
    /// webhook task does next.
    pub fn webhook_step(&mut self, job_id: &str, now: Instant, port: u16) -> WebhookStep {
        let drop_all = self.cfg.drop_webhooks;
        let Some(job) = self.job_mut(job_id) else {
            return WebhookStep::Done;
        };
        let due = job.due_events(now, port);
        let next_event = job.next_event_at();
        let Some(wh) = job.webhook.as_mut() else {
            return WebhookStep::Done;
        };
        if drop_all {
            wh.queue.clear();
        } else {
            wh.queue
                .extend(due.into_iter().map(|(event, body)| Pending {
                    event,
                    body,
                    attempts: 0,
                    next_at: now,
                }));
        }
        let step = match (wh.queue.front(), next_event) {
            (Some(head), _) if head.next_at <= now => WebhookStep::Send {
                url: wh.url.clone(),
                event: head.event.clone(),
                body: head.body.clone(),
            },
            (Some(head), Some(at)) => WebhookStep::WaitUntil(head.next_at.min(at)),
            (Some(head), None) => WebhookStep::WaitUntil(head.next_at),
            (None, Some(at)) => WebhookStep::WaitUntil(at),
            (None, None) => WebhookStep::Done,
        };
        if matches!(step, WebhookStep::Send { .. }) {
            self.stats.wh_attempted += 1;
        }
        step
    }

    /// Record the outcome of the attempt that `webhook_step` started: drop the
    /// event once delivered or after its last attempt, else schedule the retry
    /// `webhookRetryMs * 2^(attempt-1)` after `now`.
    pub fn delivery_done(&mut self, job_id: &str, ok: bool, now: Instant) {
        let base = self.cfg.webhook_retry_ms;
        if ok {
            self.stats.wh_delivered += 1;
        } else {
            self.stats.wh_failed += 1;
        }
        let Some(wh) = self.job_mut(job_id).and_then(|j| j.webhook.as_mut()) else {
            return;
        };
        if ok {
            wh.queue.pop_front();
            wh.delivered_any = true;
            return;
        }
        let Some(head) = wh.queue.front_mut() else {
            return;
        };
        head.attempts += 1;
        if head.attempts >= WEBHOOK_MAX_ATTEMPTS {
            wh.queue.pop_front();
            wh.failed_any = true;
        } else {
            let delay = base.saturating_mul(1u64 << (head.attempts - 1).min(20));
            head.next_at = now + Duration::from_millis(delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(ms: u64, fail: bool) -> Job {
        Job {
            seq: 1,
            id: "j".into(),
            model: "sora-2".into(),
            credit_cost: 4,
            created_ms: 1_773_568_800_000,
            started: Instant::now(),
            ms,
            fail: fail.then(|| "boom".to_string()),
            object_shape: false,
            webhook: Some(Webhook {
                url: "http://127.0.0.1:1/".into(),
                events: vec!["progress".into(), "completed".into(), "failed".into()],
                next_step: 10,
                terminal_emitted: false,
                queue: VecDeque::new(),
                delivered_any: false,
                failed_any: false,
            }),
        }
    }

    #[test]
    fn lifecycle_by_time() {
        let j = job(1000, false);
        let at = |ms: u64| j.started + Duration::from_millis(ms);
        assert_eq!(j.phase(at(0)), (Status::Queued, 0));
        assert_eq!(j.phase(at(99)), (Status::Queued, 0));
        assert_eq!(j.phase(at(100)), (Status::Processing, 0));
        assert_eq!(j.phase(at(550)), (Status::Processing, 50));
        assert_eq!(j.phase(at(999)), (Status::Processing, 99));
        assert_eq!(j.phase(at(1000)), (Status::Completed, 100));
        let v = j.to_json(at(1000), 4000);
        assert_eq!(v["result"], "http://127.0.0.1:4000/videos/sample.mp4?job=j");
        assert_eq!(v["completedAt"], "2026-03-15T10:00:01.000Z");
        assert_eq!(v["createdAt"], "2026-03-15T10:00:00.000Z");

        let f = job(1000, true);
        let at = |ms: u64| f.started + Duration::from_millis(ms);
        assert_eq!(f.phase(at(499)).0, Status::Processing);
        assert_eq!(f.phase(at(500)), (Status::Failed, 44));
        let v = f.to_json(at(600), 4000);
        assert_eq!(v["error"], "boom");
        assert_eq!(v["creditCost"], 0);
        assert_eq!(v["result"], Value::Null);
        assert_eq!(v["completedAt"], "2026-03-15T10:00:00.500Z");
    }

    #[test]
    fn webhook_events_in_order() {
        let mut j = job(1000, false);
        let t0 = j.started;
        let evs = j.due_events(t0 + Duration::from_millis(300), 1);
        // 10 % at 190 ms, 20 % at 280 ms.
        assert_eq!(evs.len(), 2);
        let evs = j.due_events(t0 + Duration::from_millis(5000), 1);
        assert_eq!(evs.len(), 8); // 30..90 + completed
        assert_eq!(evs.last().unwrap().0, "completed");
        assert!(j.due_events(t0 + Duration::from_millis(6000), 1).is_empty());

        let mut f = job(1000, true);
        let evs = f.due_events(f.started + Duration::from_millis(5000), 1);
        let names: Vec<&str> = evs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["progress", "progress", "progress", "progress", "failed"]
        );
        let body: Value = serde_json::from_slice(&evs[4].1).unwrap();
        assert_eq!(body["error"], "boom");
        assert_eq!(body["status"], "FAILED");
    }

    fn state_with(job: Job) -> State {
        let mut st = State::new(Config {
            job_ms: 1000,
            object_shape: false,
            drop_webhooks: false,
            fault_rate: 0.0,
            fault_set: Vec::new(),
            seed: 1,
            webhook_retry_ms: 100,
        });
        st.push_job(job);
        st
    }

    fn send_event(step: WebhookStep) -> String {
        match step {
            WebhookStep::Send { event, .. } => event,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn webhook_steps_wait_send_retry_and_give_up() {
        let mut j = job(1000, false);
        j.webhook.as_mut().unwrap().events = vec!["completed".into()];
        let t0 = j.started;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut st = state_with(j);
        // Without progress events, nothing is due before the end.
        assert_eq!(
            st.webhook_step("j", at(0), 1),
            WebhookStep::WaitUntil(at(1000))
        );
        assert_eq!(send_event(st.webhook_step("j", at(1000), 1)), "completed");
        // Four failures back off 100, 200, 400, 800 ms; the fifth gives up.
        let mut now = at(1000);
        for delay in [100, 200, 400, 800] {
            st.delivery_done("j", false, now);
            let retry = now + Duration::from_millis(delay);
            assert_eq!(st.webhook_step("j", now, 1), WebhookStep::WaitUntil(retry));
            now = retry;
            assert_eq!(send_event(st.webhook_step("j", now, 1)), "completed");
        }
        st.delivery_done("j", false, now);
        assert_eq!(st.webhook_step("j", now, 1), WebhookStep::Done);
        let v = st.job("j").unwrap().to_json(now, 1);
        assert_eq!(v["webhookStatus"], "failed");
        let w = st.stats.to_json()["webhooks"].clone();
        assert_eq!(w, json!({"attempted": 5, "delivered": 0, "failed": 5}));
    }

    #[test]
    fn webhook_steps_progress_in_order_then_delivered() {
        let j = job(1000, false);
        let t0 = j.started;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut st = state_with(j);
        // 10 % of the ramp is reached at 100 + 90 = 190 ms.
        assert_eq!(
            st.webhook_step("j", at(0), 1),
            WebhookStep::WaitUntil(at(190))
        );
        let mut sent = Vec::new();
        let mut now = at(190);
        loop {
            match st.webhook_step("j", now, 1) {
                WebhookStep::Send { event, body, .. } => {
                    let b: Value = serde_json::from_slice(&body).unwrap();
                    sent.push(format!("{event}:{}", b["progress"]));
                    st.delivery_done("j", true, now);
                }
                WebhookStep::WaitUntil(t) => now = t,
                WebhookStep::Done => break,
            }
        }
        let want: Vec<String> = (1..=9)
            .map(|i| format!("progress:{}", i * 10))
            .chain(["completed:100".to_string()])
            .collect();
        assert_eq!(sent, want);
        assert_eq!(now, at(1000));
        assert_eq!(
            st.job("j").unwrap().to_json(now, 1)["webhookStatus"],
            "delivered"
        );
    }

    #[test]
    fn dropped_webhooks_are_never_sent_and_stay_pending() {
        let j = job(1000, false);
        let t0 = j.started;
        let mut st = state_with(j);
        st.cfg.drop_webhooks = true;
        let end = t0 + Duration::from_millis(1000);
        assert_eq!(st.webhook_step("j", end, 1), WebhookStep::Done);
        assert_eq!(st.stats.wh_attempted, 0);
        assert_eq!(
            st.job("j").unwrap().to_json(end, 1)["webhookStatus"],
            "pending"
        );
    }

    #[test]
    fn seeded_faults_repeat() {
        let draw = |seed| {
            let mut st = state_with(job(1000, false));
            st.cfg.fault_rate = 0.5;
            st.cfg.fault_set = vec!["503".into(), "reset".into()];
            st.rng = fastrand::Rng::with_seed(seed);
            (0..40).map(|_| st.next_fault("job")).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let d = draw(7);
        assert!(
            d.contains(&None)
                && d.contains(&Some("503".into()))
                && d.contains(&Some("reset".into()))
        );
    }
}
