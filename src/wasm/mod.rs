//! The JavaScript boundary: the exported API of CONTRACT.md §1. Everything
//! that decides something is in `crate::core`; this layer converts values,
//! calls `fetch` and sleeps.

mod error;
mod events;
mod http;
mod js;
mod options;

use crate::core::backoff::RequestKind;
use crate::core::json::{u64_text, write_string};
use crate::core::schedule::PollSchedule;
use crate::core::{ErrorCode, GenerateRequest, Job, JobStatus, Json, SoraError};
use http::{check_aborted, request, sleep};
use js_sys::{Date, Function, Promise, Reflect, JSON};
use options::{merge, Options, Transport};
use std::future::Future;
use std::pin::Pin;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// Every export's future, type-erased so that the promise machinery is
/// instantiated once rather than once per export (it is most of the size).
type Task = Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>;

/// What an export does once its options are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Generate,
    Poll,
    Wait,
    Run,
}

/// Runs `call` on `arg` (the request or the job id) with parsed options and
/// turns its error into a `SoraEdgeError`. The options are read inside the
/// task, after the export has returned, as they always were.
fn start(call: Call, arg: JsValue, opts: JsValue) -> Promise {
    let task: Task = Box::pin(async move {
        let options = Options::from_js(&opts).map_err(|e| error::to_js(e, None))?;
        let result = dispatch(call, &arg, &options).await;
        result.map_err(|e| error::to_js(e, options.api_key.as_deref()))
    });
    future_to_promise(task)
}

/// All four calls as one path, so that each request kind is awaited at one
/// place only: every `.await` costs state-machine code for each caller.
async fn dispatch(call: Call, arg: &JsValue, opts: &Options) -> Result<JsValue, SoraError> {
    let job_id = match call {
        Call::Poll | Call::Wait => check_job_id(arg)?,
        Call::Generate | Call::Run => {
            let key = opts
                .idempotency_key
                .clone()
                .unwrap_or_else(new_idempotency_key);
            // Every submit error carries the key, so the caller can retry
            // without creating a second job.
            let (job_id, status) = submit(arg, opts, &key).await.map_err(|mut e| {
                e.idempotency_key = Some(key.clone());
                e
            })?;
            if call == Call::Generate {
                return Ok(submitted_to_js(&job_id, &status, &key));
            }
            job_id
        }
    };
    if call == Call::Poll {
        let (job, raw) = read_job(&job_id, opts, None).await?;
        return Ok(job_to_js(&job, &raw));
    }
    // Every wait error names the job.
    wait_loop(&job_id, opts).await.map_err(|e| {
        if e.job_id.is_none() {
            e.with_job_id(&job_id)
        } else {
            e
        }
    })
}

fn to_js_object(json: &str) -> JsValue {
    JSON::parse(json).unwrap_or(JsValue::NULL)
}

fn check_job_id(job_id: &JsValue) -> Result<String, SoraError> {
    match job_id.as_string() {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(id)
        }
        _ => Err(SoraError::invalid(
            "jobId",
            [
                "jobId must be a non-empty string of letters, digits, '-' or '_' (got ",
                &options::shown(job_id),
                ")",
            ]
            .concat(),
        )),
    }
}

/// A version 4 UUID: `crypto.randomUUID()` where the runtime has it.
fn new_idempotency_key() -> String {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).unwrap_or(JsValue::UNDEFINED);
    let random_uuid = Reflect::get(&crypto, &"randomUUID".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok());
    if let Some(uuid) = random_uuid
        .and_then(|f| f.call1(&crypto, &JsValue::UNDEFINED).ok())
        .and_then(|v| v.as_string())
    {
        return uuid;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        let nibble = match i {
            12 => 4,
            16 => 8 | ((js_sys::Math::random() * 4.0) as usize),
            _ => (js_sys::Math::random() * 16.0) as usize & 15,
        };
        out.push(HEX[nibble] as char);
    }
    out
}

/// `generate`'s answer: `{jobId, status, idempotencyKey}`.
fn submitted_to_js(job_id: &str, status: &str, key: &str) -> JsValue {
    let mut out = String::from("{\"jobId\":");
    write_string(&mut out, job_id);
    out.push_str(",\"status\":");
    write_string(&mut out, status);
    out.push_str(",\"idempotencyKey\":");
    write_string(&mut out, key);
    out.push('}');
    to_js_object(&out)
}

/// Validates and sends; resolves with the job id and status.
async fn submit(req: &JsValue, opts: &Options, key: &str) -> Result<(String, String), SoraError> {
    check_aborted(opts.signal.as_ref())?;
    let request_body = wire_body(req)?;
    let url = [&opts.base_url, "/v2/videos/generate"].concat();
    let headers = [("Idempotency-Key", key)];
    let (json, _) = request(
        opts,
        RequestKind::Submit,
        "POST",
        &url,
        Some(&request_body),
        &headers,
        None,
        |json| submitted_job_id(json).map(drop),
    )
    .await?;
    let status = json
        .get("status")
        .and_then(Json::as_str)
        .unwrap_or("QUEUED");
    Ok((submitted_job_id(&json)?.to_string(), status.to_string()))
}

/// The validated upstream body for the caller's request. Out of line, as it
/// measured smaller outside the async state machine.
#[inline(never)]
fn wire_body(req: &JsValue) -> Result<String, SoraError> {
    let text = JSON::stringify(req).ok().and_then(|s| s.as_string());
    let json = text
        .as_deref()
        .and_then(|t| Json::parse(t).ok())
        .ok_or_else(|| {
            SoraError::invalid("request", "request must be a plain object of JSON values")
        })?;
    Ok(GenerateRequest::from_client_json(&json)?.wire_body())
}

fn submitted_job_id(json: &Json) -> Result<&str, SoraError> {
    match json
        .get("jobId")
        .or_else(|| json.get("id"))
        .and_then(Json::as_str)
    {
        Some(id) if !id.is_empty() => Ok(id),
        _ => Err(SoraError::new(
            ErrorCode::BadResponse,
            "the generate response has no jobId",
        )),
    }
}

/// One status read, parsed; `raw` is attached by the caller.
async fn read_job(
    job_id: &str,
    opts: &Options,
    deadline_at: Option<f64>,
) -> Result<(Job, String), SoraError> {
    let url = [&opts.base_url, "/v2/jobs/", job_id].concat();
    let (json, text) = request(
        opts,
        RequestKind::Read,
        "GET",
        &url,
        None,
        &[],
        deadline_at,
        |json| Job::from_json(json).map(drop),
    )
    .await
    .map_err(|e| e.with_job_id(job_id))?;
    Ok((Job::from_json(&json)?, text))
}

fn job_to_js(job: &Job, raw: &str) -> JsValue {
    let object = to_js_object(&job.to_client_json());
    let _ = Reflect::set(&object, &"raw".into(), &to_js_object(raw));
    object
}

/// What a wait has seen so far, shared by both transports so that
/// `onProgress` fires once per change even across a fallback.
pub(crate) struct Watcher<'a> {
    job_id: &'a str,
    opts: &'a Options,
    last_seen: Option<(JobStatus, f64)>,
}

impl Watcher<'_> {
    /// Reports a change to `onProgress`; `Some` once the job has ended.
    fn see(&mut self, job: &Job, raw: &str) -> Option<Result<JsValue, SoraError>> {
        let changed = self
            .last_seen
            .as_ref()
            .is_none_or(|(s, p)| *s != job.status || *p != job.progress);
        if changed {
            self.last_seen = Some((job.status.clone(), job.progress));
            if let Some(callback) = &self.opts.on_progress {
                // A throwing callback is the caller's bug; it must not end the wait.
                let _ = callback.call1(&JsValue::UNDEFINED, &job_to_js(job, raw));
            }
        }
        match job.status {
            JobStatus::Completed => Some(Ok(job_to_js(job, raw))),
            JobStatus::Failed => {
                let reason = job.error.as_deref().unwrap_or("no reason given");
                let mut e = SoraError::new(
                    ErrorCode::JobFailed,
                    ["job ", self.job_id, " failed: ", reason].concat(),
                );
                e.retryable = false;
                Some(Err(e))
            }
            _ => None,
        }
    }

    fn deadline_error(&self) -> SoraError {
        SoraError::new(
            ErrorCode::DeadlineExceeded,
            [
                "job ",
                self.job_id,
                " did not finish within deadlineMs (",
                &u64_text(self.opts.deadline_ms as u64),
                " ms); it may still complete",
            ]
            .concat(),
        )
    }
}

async fn wait_loop(job_id: &str, opts: &Options) -> Result<JsValue, SoraError> {
    check_aborted(opts.signal.as_ref())?;
    let started = Date::now();
    let deadline_at = started + opts.deadline_ms;
    let mut watcher = Watcher {
        job_id,
        opts,
        last_seen: None,
    };
    // Straight to the upstream (a key is set) there is no events endpoint to try.
    let try_events = match opts.transport {
        Transport::Events => true,
        Transport::Auto => opts.api_key.is_none(),
        Transport::Poll => false,
    };
    if try_events {
        if let events::StreamEnd::Done(outcome) =
            events::follow(job_id, opts, deadline_at, &mut watcher).await
        {
            return outcome;
        }
    }
    let mut schedule = PollSchedule::new();
    let mut retry_after_ms = None;
    loop {
        let now = Date::now();
        let delay = schedule.next_delay_ms((now - started) as u64, retry_after_ms.take()) as f64;
        // One sleep for both cases: each `.await` costs state-machine code.
        let past_deadline = now + delay >= deadline_at;
        let delay = if past_deadline {
            deadline_at - now
        } else {
            delay
        };
        sleep(delay, opts.signal.as_ref()).await?;
        if past_deadline {
            return Err(watcher.deadline_error());
        }
        let (job, raw) = match read_job(job_id, opts, Some(deadline_at)).await {
            Ok(read) => read,
            Err(e) if e.code == ErrorCode::Timeout && Date::now() >= deadline_at => {
                return Err(watcher.deadline_error())
            }
            // A long wait outlives a short outage: keep to the schedule,
            // and to the upstream's Retry-After.
            Err(e) if e.retryable && e.code != ErrorCode::Aborted => {
                retry_after_ms = e.retry_after_ms;
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(outcome) = watcher.see(&job, &raw) {
            return outcome;
        }
        schedule.observe((Date::now() - started) as u64, job.progress);
    }
}

/// Submits a generation; resolves with `{jobId, status, idempotencyKey}`.
#[wasm_bindgen]
pub fn generate(req: JsValue, opts: JsValue) -> Promise {
    start(Call::Generate, req, opts)
}

/// One status read of a job.
#[wasm_bindgen]
pub fn poll(job_id: JsValue, opts: JsValue) -> Promise {
    start(Call::Poll, job_id, opts)
}

/// Waits for a job on the adaptive schedule; resolves on COMPLETED.
#[wasm_bindgen(js_name = waitForJob)]
pub fn wait_for_job(job_id: JsValue, opts: JsValue) -> Promise {
    start(Call::Wait, job_id, opts)
}

/// `generate` then `waitForJob`.
#[wasm_bindgen]
pub fn run(req: JsValue, opts: JsValue) -> Promise {
    start(Call::Run, req, opts)
}

/// The four calls with options fixed once.
#[wasm_bindgen]
pub struct Client {
    opts: JsValue,
}

#[wasm_bindgen]
impl Client {
    /// Fixes `opts` for every call; per-call options override them.
    #[wasm_bindgen(constructor)]
    pub fn new(opts: JsValue) -> Client {
        Client {
            opts: merge(&JsValue::UNDEFINED, &opts),
        }
    }

    /// See `generate`.
    pub fn generate(&self, req: JsValue, opts: JsValue) -> Promise {
        start(Call::Generate, req, merge(&self.opts, &opts))
    }

    /// See `poll`.
    pub fn poll(&self, job_id: JsValue, opts: JsValue) -> Promise {
        start(Call::Poll, job_id, merge(&self.opts, &opts))
    }

    /// See `waitForJob`.
    #[wasm_bindgen(js_name = waitForJob)]
    pub fn wait_for_job(&self, job_id: JsValue, opts: JsValue) -> Promise {
        start(Call::Wait, job_id, merge(&self.opts, &opts))
    }

    /// See `run`.
    pub fn run(&self, req: JsValue, opts: JsValue) -> Promise {
        start(Call::Run, req, merge(&self.opts, &opts))
    }
}

// wasm32 runs one thread, so the single-threaded free-list allocator is sound
// here, and it is 6 KB smaller than the default dlmalloc.
#[global_allocator]
#[allow(unsafe_code)]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };
