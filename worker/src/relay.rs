//! One Durable Object per job (`idFromName(jobId)`). It records that this
//! worker created the job (so reads and streams of any other id are refused
//! without an upstream read), keeps the job's [`Record`], streams its changes
//! to subscribers, and, with the relay on, polls the upstream itself on its
//! alarm when no terminal webhook has come.
//!
//! The worker talks to an object over fetch, one path per operation
//! ([`Op`]), with the job id in `x-job-id`.

use crate::ledger::{Fate, LedgerCall};
use crate::respond::respond;
use crate::upstream::{answer_reply, exchange, job_reply, Answer};
use futures_channel::mpsc::{unbounded, UnboundedSender};
use serde::{Deserialize, Serialize};
use sora_edge::core::http::parse_retry_after;
use sora_edge::edge::auth::may_read;
use sora_edge::edge::config::Config;
use sora_edge::edge::relay::{JobMap, ReadOutcome, Record};
use sora_edge::edge::reply::Reply;
use sora_edge::edge::sse::{event_frame, should_send, HEARTBEAT, PREAMBLE, PROBE};
use sora_edge::edge::upstream::Expected;
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
/// `Retry-After` (seconds) on a stream refused for a full job or client.
const STREAM_RETRY_AFTER_S: u32 = 5;
/// How long an open at a cap waits for probed streams to report their
/// clients gone.
const PROBE_MS: u64 = 150;

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
    /// Whether this worker created the job: 204, or the 404 of an unknown job.
    Known,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Submitted => "/submitted",
            Op::Webhook => "/webhook",
            Op::Read => "/read",
            Op::Events => "/events",
            Op::Merge => "/merge",
            Op::Known => "/known",
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
    /// The caller's subject in a token mode: the object reads and streams
    /// the job only for its owner, and records it as the owner on submit.
    subject: Option<String>,
}

/// The header that carries [`RelayCall`]'s subject to the object.
const SUBJECT: &str = "x-subject";
/// The header of the object's answer to [`Op::Known`] that names the owner.
const OWNER: &str = "x-owner";
/// The header of [`Op::Submitted`] that names the job's ledger reservation.
pub const RESERVATION: &str = "x-reservation";

impl RelayCall {
    /// The object of job `id` (ids compare case-insensitively).
    pub fn new(env: &Env, id: &str) -> RelayCall {
        let stub = env
            .durable_object(BINDING)
            .and_then(|ns| ns.id_from_name(&id.to_ascii_lowercase())?.get_stub());
        RelayCall {
            stub,
            id: id.to_string(),
            subject: None,
        }
    }

    /// The same handle, calling for `subject` (a token mode's caller).
    pub fn for_subject(mut self, subject: Option<&str>) -> RelayCall {
        self.subject = subject.map(str::to_string);
        self
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
        if let Some(subject) = &self.subject {
            h.set(SUBJECT, subject)?;
        }
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

    /// Records that the upstream accepted the job here (with its ledger
    /// reservation, if any), and checks it went through.
    pub async fn submitted(&self, reservation: Option<&str>) -> Result<()> {
        let headers: Vec<(&str, &str)> =
            reservation.map(|r| (RESERVATION, r)).into_iter().collect();
        let res = self.call(Op::Submitted, None, &headers).await?;
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

    /// Whether this worker created the job: `Some(owner)` (the creator's
    /// subject in a token mode), or `None` for a job it did not create.
    ///
    /// # Errors
    /// When the object cannot be reached or answers otherwise.
    pub async fn known(&self) -> Result<Option<Option<String>>> {
        let res = self.call(Op::Known, None, &[]).await?;
        match res.status_code() {
            204 => Ok(Some(res.headers().get(OWNER)?)),
            404 => Ok(None),
            status => Err(worker::Error::RustError(format!("relay answered {status}"))),
        }
    }

    /// Opens an events stream for `client` (its address, for the per-client cap).
    pub async fn events(&self, last_event_id: Option<&str>, client: &str) -> Result<Response> {
        let mut headers = vec![("x-client", client)];
        if let Some(last) = last_event_id {
            headers.push(("last-event-id", last));
        }
        self.call(Op::Events, None, &headers).await
    }
}

/// An open events stream: who opened it, and where its frames go.
struct Subscriber {
    /// The client's address (`CF-Connecting-IP`).
    client: String,
    frames: UnboundedSender<Result<Vec<u8>>>,
}

impl Subscriber {
    /// Whether the client is still there: a disconnect cancels the
    /// response's stream, which drops the receiving end.
    fn open(&self) -> bool {
        !self.frames.is_closed()
    }
}

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
}

impl Live {
    /// Sends `bytes` to every subscriber; drops the ones that went away,
    /// and all of them (ending their streams) when `close`.
    fn broadcast(&self, bytes: &[u8], close: bool) {
        let mut subs = self.subscribers.borrow_mut();
        subs.retain(|s| s.frames.unbounded_send(Ok(bytes.to_vec())).is_ok());
        if close {
            subs.clear();
        }
    }
}

/// The error for an operation that needs the record before [`JobRelay::load`].
fn no_record() -> worker::Error {
    worker::Error::RustError("the job's record was not loaded".into())
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

    /// Loads the record once per object instance; an empty, unsaved record
    /// for `id` if none is stored (a job this worker did not create).
    async fn load(&self, id: Option<&str>) -> Result<()> {
        if self.live.record.borrow().is_some() {
            return Ok(());
        }
        let stored: Option<String> = self.state.storage().get(RECORD_KEY).await?;
        let record = stored
            .and_then(|text| serde_json::from_str::<Record>(&text).ok())
            .or_else(|| id.map(|id| Record::new(id, now_ms())));
        if self.live.record.borrow().is_none() {
            *self.live.record.borrow_mut() = record;
        }
        Ok(())
    }

    /// Reads the loaded record.
    fn with_record<T>(&self, f: impl FnOnce(&Record) -> T) -> Result<T> {
        self.live
            .record
            .borrow()
            .as_ref()
            .map(f)
            .ok_or_else(no_record)
    }

    /// Whether this worker created the job.
    fn created(&self) -> bool {
        self.with_record(|r| r.created).unwrap_or(false)
    }

    /// Whether the caller of `req` may read or stream the job: this worker
    /// created it, and for this caller (`may_read`).
    fn readable(&self, req: &Request) -> bool {
        let subject = req.headers().get(SUBJECT).ok().flatten();
        self.with_record(|r| r.created && may_read(r.owner.as_deref(), subject.as_deref()))
            .unwrap_or(false)
    }

    async fn save(&self) -> Result<()> {
        let text = self.with_record(serde_json::to_string)?;
        match text {
            Ok(text) => self.state.storage().put(RECORD_KEY, text).await,
            Err(e) => Err(worker::Error::RustError(e.to_string())),
        }
    }

    /// Merges `job` (rebuilt) into the record and tells subscribers of a
    /// change. Returns `(changed, terminal)`.
    fn apply(&self, job: JobMap) -> std::result::Result<(bool, bool), Reply> {
        let (frame, terminal) = {
            let mut record = self.live.record.borrow_mut();
            let record = record
                .as_mut()
                .ok_or_else(|| Reply::error(500, "internal", "the job's record was not loaded"))?;
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

    /// After a change to a job this worker created, with the relay on: stop
    /// the fallback when the job is over, else make sure it is armed.
    async fn arm_or_disarm(&self, terminal: bool) -> Result<()> {
        let storage = self.state.storage();
        if terminal {
            return storage.delete_alarm().await;
        }
        let reserved = self.with_record(|r| r.reservation.is_some())?;
        // The alarm polls for a relayed job's lost webhooks, and for any
        // reserved job's fate: settlement never waits for a client's read.
        if !self.created() || !(self.config().relay() || reserved) {
            return Ok(());
        }
        if storage.get_alarm().await?.is_none() {
            let started = self.with_record(|r| r.started_at)?;
            let due = started + self.config().fallback_first_ms;
            storage
                .set_alarm(due.saturating_sub(now_ms()) as i64)
                .await?;
        }
        Ok(())
    }

    /// Tells the ledger the job's fate once it has one (COMPLETED commits,
    /// FAILED refunds), once. A failure is logged and tried again on the
    /// next change or alarm; the ledger's own bound settles it in the end.
    async fn settle(&self) -> Result<()> {
        let Some(completed) = self.with_record(Record::unsettled_fate)? else {
            return Ok(());
        };
        let id = self.job_id()?;
        let fate = if completed {
            Fate::Commit
        } else {
            Fate::Refund
        };
        match LedgerCall::new(&self.env).settle(&id, fate).await {
            Ok(()) => {
                if let Some(record) = self.live.record.borrow_mut().as_mut() {
                    record.settled = true;
                }
                self.save().await
            }
            Err(e) => {
                worker::console_error!("edge: settling job {id} ({fate:?}) failed: {e}");
                Ok(())
            }
        }
    }

    /// A verified webhook's job. Kept even before the generate that made the
    /// job is recorded here (a webhook can overtake it), but such a job is
    /// read or streamed only once [`JobRelay::submitted`] marks it created.
    async fn webhook(&self, mut req: Request) -> Result<Response> {
        let job: JobMap = req.json().await?;
        let changed = match self.apply(job) {
            Ok((changed, terminal)) => {
                if changed {
                    self.arm_or_disarm(terminal).await?;
                    self.save().await?;
                    self.settle().await?;
                }
                changed
            }
            Err(_) => false,
        };
        Response::from_json(&Changed { changed })
    }

    /// The id of the job this object relays.
    fn job_id(&self) -> Result<String> {
        self.with_record(|r| r.job_id.clone())
    }

    /// The upstream accepted a generate through this worker: the job is
    /// ours, and its creator's (the subject the call carries, if any).
    async fn submitted(&self, req: &Request) -> Result<Response> {
        let id = self.job_id()?;
        let owner = req.headers().get(SUBJECT)?;
        let reservation = req.headers().get(RESERVATION)?;
        if let Some(record) = self.live.record.borrow_mut().as_mut() {
            record.created = true;
            record.owner = owner;
            record.reservation = reservation;
        }
        let mut job = JobMap::new();
        job.insert("id".into(), id.into());
        job.insert("status".into(), "QUEUED".into());
        let terminal = match self.apply(job) {
            Ok((_, terminal)) => terminal,
            Err(_) => self.with_record(|r| r.terminal)?,
        };
        self.arm_or_disarm(terminal).await?;
        self.save().await?;
        // Webhooks may have overtaken the submit: a job already over settles now.
        self.settle().await?;
        Ok(ResponseBuilder::new().with_status(204).empty())
    }

    /// 204 when this worker created the job, naming its owner if it has
    /// one; else the unknown job's 404.
    fn known(&self) -> Result<Response> {
        if !self.created() {
            return respond(Reply::unknown_job(), &[]);
        }
        let headers = Headers::new();
        if let Some(owner) = self.with_record(|r| r.owner.clone())? {
            headers.set(OWNER, &owner)?;
        }
        Ok(ResponseBuilder::new()
            .with_status(204)
            .with_headers(headers)
            .empty())
    }

    /// The record's answer when the job is over.
    fn finished(&self) -> Result<Option<Response>> {
        self.with_record(|r| r.terminal.then(|| r.job_json()).flatten())?
            .map(|job| respond(Reply::json(job), &[]))
            .transpose()
    }

    /// A status read: the record answers a finished job; a running one is
    /// read upstream and merged ([`JobRelay::merge_read`]).
    async fn read(&self, req: Request) -> Result<Response> {
        if !self.readable(&req) {
            return respond(Reply::unknown_job(), &[]);
        }
        if let Some(finished) = self.finished()? {
            return Ok(finished);
        }
        let forward: Vec<(String, String)> = req
            .headers()
            .get("accept")?
            .map(|a| ("accept".to_string(), a))
            .into_iter()
            .collect();
        let reply = job_reply(&self.env, &self.config(), &forward, &self.job_id()?).await;
        if reply.status != 200 {
            return respond(reply, &[]);
        }
        self.merge_read(reply).await
    }

    /// A status read the worker made, merged as [`JobRelay::read`] merges its own.
    async fn merge(&self, mut req: Request) -> Result<Response> {
        if !self.readable(&req) {
            return respond(Reply::unknown_job(), &[]);
        }
        if let Some(finished) = self.finished()? {
            return Ok(finished);
        }
        let job = req.text().await?;
        self.merge_read(Reply::json(job)).await
    }

    /// A running job's 200 read (rebuilt): merged, so the client gets the
    /// fresher of the two and subscribers hear of a change.
    async fn merge_read(&self, mut reply: Reply) -> Result<Response> {
        if let Ok(job) = serde_json::from_str::<JobMap>(&reply.body) {
            if let Ok((changed, terminal)) = self.apply(job) {
                if changed {
                    self.arm_or_disarm(terminal).await?;
                    self.save().await?;
                    self.settle().await?;
                }
                if let Some(job) = self.with_record(Record::job_json)? {
                    reply.body = job;
                }
            }
        }
        respond(reply, &[])
    }

    /// Why a new stream from `client` may not open, if it may not: the job
    /// is at `RELAY_MAX_SUBSCRIBERS`, or the client at `RELAY_STREAMS_PER_CLIENT`.
    ///
    /// A client that went away is seen only when a write to its stream
    /// fails (workerd cancels the stream then), so at a cap the streams that
    /// count against it are probed with a comment first, and the ones whose
    /// clients are gone let go, rather than holding a slot until the next
    /// heartbeat.
    async fn stream_refusal(&self, config: &Config, client: &str) -> Option<Reply> {
        self.count_refusal(config, client)?;
        {
            let subs = self.live.subscribers.borrow();
            let whole_job = subs.len() >= config.max_subscribers;
            for sub in subs.iter().filter(|s| whole_job || s.client == client) {
                let _ = sub.frames.unbounded_send(Ok(PROBE.as_bytes().to_vec()));
            }
        }
        Delay::from(Duration::from_millis(PROBE_MS)).await;
        self.count_refusal(config, client)
    }

    /// [`JobRelay::stream_refusal`] by the streams still open now.
    fn count_refusal(&self, config: &Config, client: &str) -> Option<Reply> {
        let mut subs = self.live.subscribers.borrow_mut();
        subs.retain(Subscriber::open);
        let mine = subs.iter().filter(|s| s.client == client).count();
        let message = if subs.len() >= config.max_subscribers {
            format!("this job already has {} event-stream subscribers, the most allowed (RELAY_MAX_SUBSCRIBERS); poll GET /api/v2/jobs/{{id}} instead", config.max_subscribers)
        } else if mine >= config.streams_per_client {
            format!("this client already has {mine} event streams open on this job, the most allowed (RELAY_STREAMS_PER_CLIENT); close one first")
        } else {
            return None;
        };
        Some(Reply::rate_limited(&message, STREAM_RETRY_AFTER_S))
    }

    async fn events(&self, req: Request) -> Result<Response> {
        if !self.readable(&req) {
            return respond(Reply::unknown_job(), &[]);
        }
        let config = self.config();
        let client = req.headers().get("x-client")?.unwrap_or_default();
        if let Some(reply) = self.stream_refusal(&config, &client).await {
            return respond(reply, &[]);
        }
        let last_event_id = req.headers().get("last-event-id")?;
        let (tx, rx) = unbounded::<Result<Vec<u8>>>();
        let _ = tx.unbounded_send(Ok(PREAMBLE.as_bytes().to_vec()));
        let terminal = self.with_record(|record| {
            if should_send(last_event_id.as_deref(), record.seq) {
                if let Some(job) = record.job_json() {
                    let _ = tx.unbounded_send(Ok(event_frame(record.seq, &job).into_bytes()));
                }
            }
            record.terminal
        })?;
        if !terminal {
            self.live
                .subscribers
                .borrow_mut()
                .push(Subscriber { client, frames: tx });
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
            "/submitted" => self.submitted(&req).await,
            "/webhook" => self.webhook(req).await,
            "/read" => self.read(req).await,
            "/events" => self.events(req).await,
            "/merge" => self.merge(req).await,
            "/known" => self.known(),
            #[cfg(feature = "test-routes")]
            "/panic" => crate::test_routes::object_panic(&self.live.record),
            _ => Response::error("no such relay operation", 404),
        }
    }

    /// The fallback: one upstream read, then the next alarm on the
    /// schedule, backing off on errors, until the job is over or the
    /// upstream keeps saying it does not know it.
    async fn alarm(&self) -> Result<Response> {
        self.load(None).await?;
        let Ok((id, terminal)) = self.with_record(|r| (r.job_id.clone(), r.terminal)) else {
            return Response::ok("no job");
        };
        if terminal || !self.created() {
            self.settle().await?;
            return Response::ok("done");
        }
        let config = self.config();
        let now = now_ms();
        let outcome = match read_job(&self.env, &config, &id).await {
            Ok(answer) if answer.status == 200 => {
                // Rebuilt and redacted as every status read is.
                let reply = answer_reply(&self.env, Expected::Job(&id), Ok(answer));
                let applied = (reply.status == 200)
                    .then(|| serde_json::from_str::<JobMap>(&reply.body).ok())
                    .flatten()
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
        self.settle().await?;
        Response::ok("polled")
    }
}
