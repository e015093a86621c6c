//! Webhook relay: one Durable Object per job (`idFromName(jobId)`) keeps
//! the job's [`Record`], streams its changes to subscribers, and polls the
//! upstream itself on its alarm when no terminal webhook has come.
//!
//! The worker talks to an object over fetch, one path per operation
//! ([`Op`]), with the job id in `x-job-id`.

use crate::respond::respond;
use crate::upstream::{api_key, exchange, job_reply, Answer};
use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use serde::{Deserialize, Serialize};
use sora_edge::core::http::parse_retry_after;
use sora_edge::edge::config::Config;
use sora_edge::edge::relay::{JobMap, ReadOutcome, Record};
use sora_edge::edge::reply::Reply;
use sora_edge::edge::sse::{event_frame, should_send, HEARTBEAT, PREAMBLE};
use sora_edge::edge::upstream as answers;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use worker::{
    durable_object, Date, Delay, DurableObject, Env, Headers, Method, Request, RequestInit,
    Response, ResponseBuilder, Result, State, Stub,
};

/// The Durable Object binding.
const BINDING: &str = "JOBS";
/// Where the record is stored.
const RECORD_KEY: &str = "record";
/// The object's answer to an events open on a job it does not know, when
/// the worker has not yet allowed the upstream read that costs.
pub const NEEDS_READ: u16 = 428;

/// An operation on a job's object.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// The upstream accepted a generate through this worker.
    Submitted,
    /// A verified webhook (body: the job).
    Webhook,
    /// A status read, answered by the object: from its record when the job
    /// is over, else read upstream and merged.
    Read,
    /// Open an events stream.
    Events,
    /// A status read the worker made (body: the job as the client may see
    /// it), merged as [`Op::Read`] merges its own.
    Merge,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Submitted => "/submitted",
            Op::Webhook => "/webhook",
            Op::Read => "/read",
            Op::Events => "/events",
            Op::Merge => "/merge",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Changed {
    changed: bool,
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// The worker's handle on one job's object.
pub struct RelayCall {
    stub: Result<Stub>,
    id: String,
}

impl RelayCall {
    /// The object of job `id` (ids compare case-insensitively).
    pub fn new(env: &Env, id: &str) -> RelayCall {
        let stub = env
            .durable_object(BINDING)
            .and_then(|ns| ns.id_from_name(&id.to_ascii_lowercase())?.get_stub());
        RelayCall {
            stub,
            id: id.to_string(),
        }
    }

    async fn call(
        &self,
        op: Op,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Result<Response> {
        let stub = self
            .stub
            .as_ref()
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        let h = Headers::new();
        h.set("x-job-id", &self.id)?;
        for (name, value) in headers {
            h.set(name, value)?;
        }
        let mut init = RequestInit::new();
        init.with_method(if body.is_some() {
            Method::Post
        } else {
            Method::Get
        })
        .with_headers(h)
        .with_body(body.map(Into::into));
        let req = Request::new_with_init(&format!("https://relay.internal{}", op.path()), &init)?;
        stub.fetch_with_request(req).await
    }

    /// Sends `op` and checks it went through.
    pub async fn send(&self, op: Op, body: Option<String>) -> Result<()> {
        let res = self.call(op, body, &[]).await?;
        if res.status_code() >= 400 {
            return Err(worker::Error::RustError(format!(
                "relay answered {}",
                res.status_code()
            )));
        }
        Ok(())
    }

    /// A status read through the object; `accept` is the client's, if any.
    pub async fn read(&self, accept: Option<&str>) -> Result<Response> {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        self.call(Op::Read, None, &headers).await
    }

    /// Hands a status read the worker made to the object; the job as the object answers it.
    pub async fn merge(&self, job: String) -> Result<String> {
        let mut res = self.call(Op::Merge, Some(job), &[]).await?;
        if res.status_code() != 200 {
            return Err(worker::Error::RustError(format!(
                "relay answered {}",
                res.status_code()
            )));
        }
        res.text().await
    }

    /// Hands a verified webhook's job to the object; whether it changed the job.
    pub async fn webhook(&self, job: JobMap) -> Result<bool> {
        let body =
            serde_json::to_string(&job).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let mut res = self.call(Op::Webhook, Some(body), &[]).await?;
        Ok(res.json::<Changed>().await?.changed)
    }

    /// Opens an events stream; `may_read` allows an upstream read for a job
    /// the object does not know (else it answers [`NEEDS_READ`]).
    pub async fn events(&self, last_event_id: Option<&str>, may_read: bool) -> Result<Response> {
        let mut headers = vec![("x-may-read", if may_read { "1" } else { "0" })];
        if let Some(last) = last_event_id {
            headers.push(("last-event-id", last));
        }
        self.call(Op::Events, None, &headers).await
    }
}

type Subscriber = UnboundedSender<Result<Vec<u8>>>;
type Fetched = std::result::Result<Answer, Reply>;

/// One upstream status read of job `id`.
async fn read_job(env: &Env, config: &Config, id: &str) -> Fetched {
    exchange(
        env,
        config,
        Method::Get,
        &format!("/v2/jobs/{id}"),
        &[],
        None,
    )
    .await
}

/// What the object holds in memory besides its record.
#[derive(Default)]
struct Live {
    record: RefCell<Option<Record>>,
    subscribers: RefCell<Vec<Subscriber>>,
    heartbeat: Cell<bool>,
    /// The upstream read in flight for an unknown job: concurrent opens share it.
    reading: RefCell<Option<Shared<LocalBoxFuture<'static, Fetched>>>>,
}

impl Live {
    /// Sends `bytes` to every subscriber; drops the ones that went away,
    /// and all of them (ending their streams) when `close`.
    fn broadcast(&self, bytes: &[u8], close: bool) {
        let mut subs = self.subscribers.borrow_mut();
        subs.retain(|s| s.unbounded_send(Ok(bytes.to_vec())).is_ok());
        if close {
            subs.clear();
        }
    }
}

/// One job's relay state.
#[durable_object]
pub struct JobRelay {
    state: State,
    env: Env,
    live: Rc<Live>,
}

impl JobRelay {
    fn config(&self) -> Config {
        crate::config_of(&self.env)
    }

    /// Loads the record once per object instance; a new record for `id` if none is stored.
    async fn load(&self, id: Option<&str>) -> Result<bool> {
        if self.live.record.borrow().is_some() {
            return Ok(true);
        }
        let stored: Option<String> = self.state.storage().get(RECORD_KEY).await?;
        let record = stored
            .and_then(|text| serde_json::from_str::<Record>(&text).ok())
            .or_else(|| id.map(|id| Record::new(id, now_ms())));
        let found = record.is_some();
        if self.live.record.borrow().is_none() {
            *self.live.record.borrow_mut() = record;
        }
        Ok(found)
    }

    async fn save(&self) -> Result<()> {
        let text = self
            .live
            .record
            .borrow()
            .as_ref()
            .and_then(|r| serde_json::to_string(r).ok());
        match text {
            Some(text) => self.state.storage().put(RECORD_KEY, text).await,
            None => Ok(()),
        }
    }

    /// Merges `job` into the record and tells subscribers of a change.
    /// Returns `(changed, terminal)`.
    fn apply(&self, job: JobMap) -> std::result::Result<(bool, bool), Reply> {
        let (frame, terminal) = {
            let mut record = self.live.record.borrow_mut();
            let record = record.as_mut().expect("loaded before use");
            let merged = record.apply(job, now_ms())?;
            if !merged.changed {
                return Ok((false, record.terminal));
            }
            let json = serde_json::to_string(&merged.job).unwrap_or_default();
            (event_frame(record.seq, &json), record.terminal)
        };
        self.live.broadcast(frame.as_bytes(), terminal);
        Ok((true, terminal))
    }

    /// After a change: stop the fallback when the job is over, else make sure it is armed.
    async fn arm_or_disarm(&self, terminal: bool) -> Result<()> {
        let storage = self.state.storage();
        if terminal {
            return storage.delete_alarm().await;
        }
        if storage.get_alarm().await?.is_none() {
            let started = self
                .live
                .record
                .borrow()
                .as_ref()
                .map_or(0, |r| r.started_at);
            let due = started + self.config().fallback_first_ms;
            storage
                .set_alarm(due.saturating_sub(now_ms()) as i64)
                .await?;
        }
        Ok(())
    }

    async fn webhook(&self, mut req: Request) -> Result<Response> {
        let job: JobMap = req.json().await?;
        let changed = match self.apply(job) {
            Ok((changed, terminal)) => {
                if changed {
                    self.arm_or_disarm(terminal).await?;
                    self.save().await?;
                }
                changed
            }
            Err(_) => false,
        };
        Response::from_json(&Changed { changed })
    }

    /// The id of the job this object relays (empty before its record exists).
    fn job_id(&self) -> String {
        self.live
            .record
            .borrow()
            .as_ref()
            .map(|r| r.job_id.clone())
            .unwrap_or_default()
    }

    async fn submitted(&self) -> Result<Response> {
        let id = self.job_id();
        let mut job = JobMap::new();
        job.insert("id".into(), id.into());
        job.insert("status".into(), "QUEUED".into());
        if let Ok((_, terminal)) = self.apply(job) {
            self.arm_or_disarm(terminal).await?;
        }
        self.save().await?;
        Ok(ResponseBuilder::new().with_status(204).empty())
    }

    /// The record's answer when the job is over.
    fn finished(&self) -> Result<Option<Response>> {
        let record = self.live.record.borrow();
        record
            .as_ref()
            .filter(|r| r.terminal)
            .and_then(Record::job_json)
            .map(|job| respond(Reply::json(job), &[]))
            .transpose()
    }

    /// A status read: the record answers a finished job; a running one is
    /// read upstream and merged ([`JobRelay::merge_read`]).
    async fn read(&self, req: Request) -> Result<Response> {
        if let Some(finished) = self.finished()? {
            return Ok(finished);
        }
        let forward: Vec<(String, String)> = req
            .headers()
            .get("accept")?
            .map(|a| ("accept".to_string(), a))
            .into_iter()
            .collect();
        let reply = job_reply(&self.env, &self.config(), &forward, &self.job_id()).await;
        if reply.status != 200 {
            return respond(reply, &[]);
        }
        self.merge_read(reply).await
    }

    /// A status read the worker made, merged as [`JobRelay::read`] merges its own.
    async fn merge(&self, mut req: Request) -> Result<Response> {
        if let Some(finished) = self.finished()? {
            return Ok(finished);
        }
        let job = req.text().await?;
        self.merge_read(Reply::json(job)).await
    }

    /// A running job's 200 read: when the object knows the job, merged (the
    /// client gets the fresher of the two, subscribers hear of a change).
    async fn merge_read(&self, mut reply: Reply) -> Result<Response> {
        let known = self
            .live
            .record
            .borrow()
            .as_ref()
            .is_some_and(|r| r.job.is_some());
        if known {
            if let Ok(job) = serde_json::from_str::<JobMap>(&reply.body) {
                if let Ok((changed, terminal)) = self.apply(job) {
                    if changed {
                        self.arm_or_disarm(terminal).await?;
                        self.save().await?;
                    }
                    if let Some(job) = self
                        .live
                        .record
                        .borrow()
                        .as_ref()
                        .and_then(Record::job_json)
                    {
                        reply.body = job;
                    }
                }
            }
        }
        respond(reply, &[])
    }

    /// One upstream read of the job, shared by every open that waits for it.
    async fn read_shared(&self) -> Fetched {
        let shared = self.live.reading.borrow().clone();
        let shared = match shared {
            Some(shared) => shared,
            None => {
                let env = self.env.clone();
                let config = self.config();
                let id = self.job_id();
                let read: LocalBoxFuture<'static, Fetched> =
                    Box::pin(async move { read_job(&env, &config, &id).await });
                let shared = read.shared();
                *self.live.reading.borrow_mut() = Some(shared.clone());
                shared
            }
        };
        let fetched = shared.await;
        self.live.reading.borrow_mut().take();
        fetched
    }

    /// Makes sure the object knows the job before a stream opens on it.
    /// `Ok(None)`: known now; `Ok(Some(response))`: answer that instead.
    async fn learn(&self, may_read: bool) -> Result<Option<Response>> {
        let now = now_ms();
        let (known, missing) = {
            let record = self.live.record.borrow();
            let record = record.as_ref().expect("loaded before use");
            (record.job.is_some(), record.known_missing(now))
        };
        if known {
            return Ok(None);
        }
        let unknown = || {
            respond(
                Reply::error(
                    404,
                    "not_found",
                    "the upstream does not know this job (asked within the last minute)",
                ),
                &[],
            )
            .map(Some)
        };
        if missing {
            return unknown();
        }
        if !may_read {
            return Ok(Some(ResponseBuilder::new().with_status(NEEDS_READ).empty()));
        }
        let answer = match self.read_shared().await {
            Ok(answer) => answer,
            Err(reply) => return respond(reply, &[]).map(Some),
        };
        if answer.status == 404 {
            if let Some(record) = self.live.record.borrow_mut().as_mut() {
                record.remember_missing(now);
            }
            return unknown();
        }
        if answer.status != 200 {
            let reply = answers::reply(
                answer.status,
                &answer.headers,
                &answer.text,
                &api_key(&self.env),
            );
            return respond(reply, &[]).map(Some);
        }
        let job = serde_json::from_str::<JobMap>(&answer.text)
            .map_err(|_| {
                Reply::error(
                    502,
                    "bad_response",
                    "the upstream's job is not a JSON object",
                )
            })
            .and_then(|job| self.apply(job));
        match job {
            Ok((_, terminal)) => {
                if !terminal {
                    let delay = {
                        let record = self.live.record.borrow();
                        record
                            .as_ref()
                            .map_or(1_000, |r| r.schedule_delay(now, None))
                    };
                    if self.state.storage().get_alarm().await?.is_none() {
                        self.state.storage().set_alarm(delay as i64).await?;
                    }
                }
                self.save().await?;
                Ok(None)
            }
            Err(reply) => respond(reply, &[]).map(Some),
        }
    }

    async fn events(&self, req: Request) -> Result<Response> {
        let may_read = req.headers().get("x-may-read")?.as_deref() == Some("1");
        if let Some(answer) = self.learn(may_read).await? {
            return Ok(answer);
        }
        let config = self.config();
        if self.live.subscribers.borrow().len() >= config.max_subscribers {
            let reply = Reply::rate_limited(
                &format!("this job already has {} event-stream subscribers, the most allowed; poll GET /api/v2/jobs/{{id}} instead", config.max_subscribers),
                5,
            );
            return respond(reply, &[]);
        }
        let last_event_id = req.headers().get("last-event-id")?;
        let (tx, rx) = unbounded::<Result<Vec<u8>>>();
        let _ = tx.unbounded_send(Ok(PREAMBLE.as_bytes().to_vec()));
        let terminal = {
            let record = self.live.record.borrow();
            let record = record.as_ref().expect("loaded before use");
            if should_send(last_event_id.as_deref(), record.seq) {
                if let Some(job) = record.job_json() {
                    let _ = tx.unbounded_send(Ok(event_frame(record.seq, &job).into_bytes()));
                }
            }
            record.terminal
        };
        if !terminal {
            self.live.subscribers.borrow_mut().push(tx);
            self.start_heartbeat(config.heartbeat_ms);
        }
        let headers = Headers::new();
        headers.set("content-type", "text/event-stream; charset=utf-8")?;
        headers.set("cache-control", "no-store")?;
        headers.set("x-accel-buffering", "no")?;
        ResponseBuilder::new().with_headers(headers).from_stream(rx)
    }

    /// Heartbeat comments while anyone listens; they also find subscribers that went away.
    fn start_heartbeat(&self, every_ms: u64) {
        if self.live.heartbeat.replace(true) {
            return;
        }
        let live = Rc::clone(&self.live);
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                Delay::from(Duration::from_millis(every_ms)).await;
                live.broadcast(HEARTBEAT.as_bytes(), false);
                if live.subscribers.borrow().is_empty() {
                    live.heartbeat.set(false);
                    break;
                }
            }
        });
    }
}

impl DurableObject for JobRelay {
    fn new(state: State, env: Env) -> Self {
        JobRelay {
            state,
            env,
            live: Rc::new(Live::default()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let id = req.headers().get("x-job-id")?;
        self.load(id.as_deref()).await?;
        match req.path().as_str() {
            "/submitted" => self.submitted().await,
            "/webhook" => self.webhook(req).await,
            "/read" => self.read(req).await,
            "/events" => self.events(req).await,
            "/merge" => self.merge(req).await,
            #[cfg(feature = "test-routes")]
            "/panic" => crate::test_routes::object_panic(&self.live.record),
            _ => Response::error("no such relay operation", 404),
        }
    }

    /// The fallback: one upstream read, then the next alarm on the
    /// schedule, backing off on errors, until the job is over or the
    /// upstream keeps saying it does not know it.
    async fn alarm(&self) -> Result<Response> {
        if !self.load(None).await? {
            return Response::ok("no job");
        }
        let (id, terminal) = {
            let record = self.live.record.borrow();
            let record = record.as_ref().expect("loaded");
            (record.job_id.clone(), record.terminal)
        };
        if terminal {
            return Response::ok("done");
        }
        let config = self.config();
        let now = now_ms();
        let outcome = match read_job(&self.env, &config, &id).await {
            Ok(answer) if answer.status == 200 => {
                let applied = serde_json::from_str::<JobMap>(&answer.text)
                    .ok()
                    .map(|job| self.apply(job));
                match applied {
                    Some(Ok((_, terminal))) => {
                        if terminal {
                            self.state.storage().delete_alarm().await?;
                        }
                        ReadOutcome::Job
                    }
                    _ => ReadOutcome::Failed {
                        retry_after_ms: None,
                    },
                }
            }
            Ok(answer) if answer.status == 404 => ReadOutcome::NotFound,
            Ok(answer) => ReadOutcome::Failed {
                retry_after_ms: answer
                    .header("retry-after")
                    .and_then(|v| parse_retry_after(v, now)),
            },
            Err(_) => ReadOutcome::Failed {
                retry_after_ms: None,
            },
        };
        let next = self
            .live
            .record
            .borrow_mut()
            .as_mut()
            .and_then(|r| r.after_read(outcome, now));
        match next {
            Some(delay) => self.state.storage().set_alarm(delay as i64).await?,
            None if outcome != ReadOutcome::Job => {
                worker::console_log!("edge: fallback for job {id} gave up ({outcome:?})")
            }
            None => {}
        }
        self.save().await?;
        Response::ok("polled")
    }
}
