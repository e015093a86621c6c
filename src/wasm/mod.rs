//! The JavaScript boundary: the exported API of docs/API.md. Everything
//! that decides something is in `crate::core`; this layer converts values,
//! calls `fetch` and sleeps.

mod error;
mod events;
mod http;
mod options;
mod types;

use crate::core::backoff::RequestKind;
use crate::core::job::UpstreamJob;
use crate::core::platform::number_text;
use crate::core::schedule::PollSchedule;
use crate::core::{ErrorCode, GenerateRequest, Job, JobStatus, SoraError, Value};
use http::{check_aborted, request, sleep};
use js_sys::{Date, Promise, Reflect, JSON};
use options::{merge, Options, Transport};
use serde::Serialize;
use serde_wasm_bindgen::Serializer;
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
    Usage,
}

/// Runs `call` on `arg` (the request or the job id) with parsed options and
/// turns its error into a `SoraEdgeError`. The options are read inside the
/// task, after the export has returned, as they always were.
fn start(call: Call, arg: JsValue, opts: Option<JsValue>) -> Promise {
    let task: Task = Box::pin(async move {
        let options = Options::from_js(opts).map_err(|e| error::to_js(e, None))?;
        let result = dispatch(call, &arg, &options).await;
        result.map_err(|e| error::to_js(e, options.api_key.as_deref()))
    });
    future_to_promise(task)
}

/// All four calls as one path, so that each request kind is awaited at one
/// place only: every `.await` costs state-machine code for each caller.
async fn dispatch(call: Call, arg: &JsValue, opts: &Options) -> Result<JsValue, SoraError> {
    let job_id = match call {
        Call::Usage => {
            let url = [&opts.base_url, "/usage"].concat();
            return request(
                opts,
                RequestKind::Read,
                gloo_net::http::Method::GET,
                &url,
                None,
                &[],
                None,
                usage_of,
            )
            .await;
        }
        Call::Poll | Call::Wait => check_job_id(arg)?,
        Call::Generate | Call::Run => {
            // Checked before the key exists: an error raised before any
            // request has no key to reuse.
            check_aborted(opts.signal.as_ref())?;
            let body = wire_body(arg)?;
            let key = match &opts.idempotency_key {
                Some(key) => key.clone(),
                None => new_idempotency_key()?,
            };
            // Every submit error carries the key, so the caller can retry
            // without creating a second job.
            let (job_id, status) = submit(&body, opts, &key).await.map_err(|mut e| {
                e.idempotency_key = Some(key.clone());
                e
            })?;
            if call == Call::Generate {
                return Ok(to_js(&Submitted {
                    job_id: &job_id,
                    status: &status,
                    idempotency_key: &key,
                }));
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

/// A Rust value as a plain JavaScript object (`null`, not `undefined`;
/// numbers, not `BigInt`s).
fn to_js<T: Serialize>(value: &T) -> JsValue {
    value
        .serialize(&Serializer::json_compatible())
        .unwrap_or(JsValue::NULL)
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

/// A version 4 UUID from the platform's `crypto.randomUUID()`.
fn new_idempotency_key() -> Result<String, SoraError> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).unwrap_or(JsValue::UNDEFINED);
    if crypto.is_undefined() {
        return Err(SoraError::invalid(
            "idempotencyKey",
            "this runtime has no crypto.randomUUID(); pass options.idempotencyKey",
        ));
    }
    Ok(crypto.unchecked_into::<web_sys::Crypto>().random_uuid())
}

/// `generate`'s answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Submitted<'a> {
    job_id: &'a str,
    status: &'a str,
    idempotency_key: &'a str,
}

/// The job id and status of the upstream's answer to a submit (`jobId`, or
/// `id`), read as the job it describes.
fn submitted_job(json: &JsValue) -> Result<(String, String), SoraError> {
    let no_job_id = || SoraError::new(ErrorCode::BadResponse, "the generate response has no jobId");
    let answer = value_of(json)
        .and_then(|v| UpstreamJob::try_from(v).ok())
        .ok_or_else(no_job_id)?;
    match answer.job_id.or(answer.id) {
        Some(id) if !id.is_empty() => {
            let status = answer.status.as_ref().map_or("QUEUED", JobStatus::as_str);
            Ok((id, status.to_string()))
        }
        _ => Err(no_job_id()),
    }
}

/// Sends the validated body; resolves with the job id and status.
async fn submit(
    request_body: &str,
    opts: &Options,
    key: &str,
) -> Result<(String, String), SoraError> {
    let url = [&opts.base_url, "/v2/videos/generate"].concat();
    let headers = [("Idempotency-Key", key)];
    let json = request(
        opts,
        RequestKind::Submit,
        gloo_net::http::Method::POST,
        &url,
        Some(request_body),
        &headers,
        None,
        |json| submitted_job(json).map(drop),
    )
    .await?;
    submitted_job(&json)
}

/// The validated upstream body for the caller's request, as JSON text.
/// Out of line, as it measured smaller outside the async state machine.
#[inline(never)]
fn wire_body(req: &JsValue) -> Result<String, SoraError> {
    let value = value_of(req).ok_or_else(|| {
        SoraError::invalid("request", "request must be a plain object of JSON values")
    })?;
    let request = GenerateRequest::from_client(&value)?;
    Ok(JSON::stringify(&to_js(&request.wire()))
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default())
}

/// A JavaScript value as a [`Value`], `None` for what has no JSON value (a
/// function, a symbol, an iterable other than an array or a `Map`): the
/// reading of serde-wasm-bindgen's `deserialize_any`, which this replaces for
/// every input (the caller's request, status reads, error bodies, events).
/// Measured reason: any `from_value` links its `invalid_type` error path,
/// which formats `Unexpected::Float` and so keeps Rust's float formatting and
/// most of `core::fmt` alive; without it (and with `platform::number_text`)
/// the build measured 8,395 B gzip smaller (57,102 -> 48,707 B), which is
/// what brings it under issue 8's 52 KB. The serde types stay the model:
/// `UpstreamJob` and `UpstreamErrorBody` are read from this `Value`.
pub(crate) fn value_of(js: &JsValue) -> Option<Value> {
    if js.is_null() || js.is_undefined() {
        return Some(Value::Null);
    }
    if let Some(b) = js.as_bool() {
        return Some(Value::Bool(b));
    }
    if let Some(n) = js.as_f64() {
        return Some(Value::Number(n));
    }
    if let Some(s) = js.as_string() {
        return Some(Value::String(s));
    }
    if js.is_bigint() {
        let text = js.unchecked_ref::<js_sys::BigInt>().to_string(10).ok()?;
        return crate::core::platform::parse_number(&String::from(text)).map(Value::Number);
    }
    if js_sys::Array::is_array(js) {
        let mut items = Vec::new();
        for item in js.unchecked_ref::<js_sys::Array>().iter() {
            items.push(value_of(&item)?);
        }
        return Some(Value::Array(items));
    }
    if !js.is_object() {
        return None;
    }
    let entries = if js.is_instance_of::<js_sys::Map>() {
        js_sys::Array::from(js)
    } else if Reflect::has(js, &js_sys::Symbol::iterator()).unwrap_or(true) {
        return None;
    } else {
        js_sys::Object::entries(js.unchecked_ref())
    };
    let mut members = Vec::new();
    for entry in entries.iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        members.push((entry.get(0).as_string()?, value_of(&entry.get(1))?));
    }
    Some(Value::Object(members))
}

/// A job from the upstream's JSON (already parsed by the platform).
/// Checks the worker's `GET /api/usage` answer: an object with the figures.
fn usage_of(json: &JsValue) -> Result<(), SoraError> {
    match Reflect::get(json, &"usedSeconds".into())
        .ok()
        .and_then(|v| v.as_f64())
    {
        Some(_) => Ok(()),
        None => Err(SoraError::new(
            ErrorCode::BadResponse,
            "the usage response has no usedSeconds (is baseUrl the sora-edge worker?)",
        )),
    }
}

fn job_of(json: &JsValue) -> Result<Job, SoraError> {
    let upstream = value_of(json)
        .and_then(|v| UpstreamJob::try_from(v).ok())
        .ok_or_else(|| {
            SoraError::new(
                ErrorCode::BadResponse,
                "the job response is not a job object with an id and a status",
            )
        })?;
    Job::from_upstream(upstream)
}

/// One status read, parsed; resolves with the job and its raw JSON.
async fn read_job(
    job_id: &str,
    opts: &Options,
    deadline_at: Option<f64>,
) -> Result<(Job, JsValue), SoraError> {
    let url = [&opts.base_url, "/v2/jobs/", job_id].concat();
    let json = request(
        opts,
        RequestKind::Read,
        gloo_net::http::Method::GET,
        &url,
        None,
        &[],
        deadline_at,
        |json| job_of(json).map(drop),
    )
    .await
    .map_err(|e| e.with_job_id(job_id))?;
    Ok((job_of(&json)?, json))
}

/// The JavaScript `Job`: the normalised job plus `raw`, the upstream's as received.
fn job_to_js(job: &Job, raw: &JsValue) -> JsValue {
    let object = to_js(job);
    let _ = Reflect::set(&object, &"raw".into(), raw);
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
    fn see(&mut self, job: &Job, raw: &JsValue) -> Option<Result<JsValue, SoraError>> {
        let changed = self
            .last_seen
            .as_ref()
            .is_none_or(|(s, p)| *s != job.status || *p != job.progress);
        if changed {
            self.last_seen = Some((job.status.clone(), job.progress));
            if let Some(callback) = &self.opts.on_progress {
                // A throwing callback ends the wait like an abort by the
                // caller (the job itself goes on), with what it threw as `cause`.
                if let Err(thrown) = callback.call1(&JsValue::UNDEFINED, &job_to_js(job, raw)) {
                    return Some(Err(SoraError::new(
                        ErrorCode::Aborted,
                        "onProgress threw, which ended the wait (the job goes on); see cause",
                    )
                    .with_cause(thrown)));
                }
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
                &number_text(self.opts.deadline_ms.trunc()),
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
    // Straight to the upstream (a key is set) there is no events endpoint to
    // try; and `EventSource` can send neither the caller's headers nor
    // through the caller's `fetch`.
    let try_events = match opts.transport {
        Transport::Events => true,
        Transport::Auto => opts.api_key.is_none() && !opts.custom_transport,
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

// The TypeScript names below are declared beside the Rust types in `types.rs`.

/// Submits a generation; resolves with `{jobId, status, idempotencyKey}`.
#[wasm_bindgen(unchecked_return_type = "Promise<Submitted>")]
pub fn generate(
    #[wasm_bindgen(unchecked_param_type = "GenerateRequest")] req: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "GenerateOptions")] opts: Option<JsValue>,
) -> Promise {
    start(Call::Generate, req, opts)
}

/// One status read of a job.
#[wasm_bindgen(unchecked_return_type = "Promise<Job>")]
pub fn poll(
    #[wasm_bindgen(unchecked_param_type = "string")] job_id: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "ClientOptions")] opts: Option<JsValue>,
) -> Promise {
    start(Call::Poll, job_id, opts)
}

/// Waits for a job on the adaptive schedule; resolves on COMPLETED.
#[wasm_bindgen(js_name = waitForJob, unchecked_return_type = "Promise<Job>")]
pub fn wait_for_job(
    #[wasm_bindgen(unchecked_param_type = "string")] job_id: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "WaitOptions")] opts: Option<JsValue>,
) -> Promise {
    start(Call::Wait, job_id, opts)
}

/// `generate` then `waitForJob`.
#[wasm_bindgen(unchecked_return_type = "Promise<Job>")]
pub fn run(
    #[wasm_bindgen(unchecked_param_type = "GenerateRequest")] req: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "GenerateOptions & WaitOptions")] opts: Option<
        JsValue,
    >,
) -> Promise {
    start(Call::Run, req, opts)
}

/// The four calls with options fixed once; per-call options override them.
/// Its few bytes of wasm memory are released when it is garbage-collected, or
/// at once by `free()` or a `using` declaration (`[Symbol.dispose]`).
/// The caller's quota figures for the day, from the edge worker's ledger
/// (`GET {baseUrl}/usage`, with the caller's `token`).
#[wasm_bindgen(unchecked_return_type = "Promise<Usage>")]
pub fn usage(
    #[wasm_bindgen(unchecked_optional_param_type = "ClientOptions")] opts: Option<JsValue>,
) -> Promise {
    start(Call::Usage, JsValue::UNDEFINED, opts)
}

#[wasm_bindgen]
pub struct Client {
    opts: JsValue,
}

#[wasm_bindgen]
impl Client {
    /// Fixes `opts` for every call, checked now as a call would check them.
    ///
    /// # Errors
    /// `invalid_request` naming the first bad option.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_optional_param_type = "GenerateOptions & WaitOptions")]
        opts: Option<JsValue>,
    ) -> Result<Client, JsValue> {
        Options::from_js(opts.clone()).map_err(|e| error::to_js(e, None))?;
        Ok(Client {
            opts: merge(&JsValue::UNDEFINED, opts),
        })
    }

    /// See `generate`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Submitted>")]
    pub fn generate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "GenerateRequest")] req: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "GenerateOptions")] opts: Option<JsValue>,
    ) -> Promise {
        start(Call::Generate, req, Some(merge(&self.opts, opts)))
    }

    /// See `poll`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Job>")]
    pub fn poll(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] job_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "ClientOptions")] opts: Option<JsValue>,
    ) -> Promise {
        start(Call::Poll, job_id, Some(merge(&self.opts, opts)))
    }

    /// See `waitForJob`.
    #[wasm_bindgen(js_name = waitForJob, unchecked_return_type = "Promise<Job>")]
    pub fn wait_for_job(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] job_id: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WaitOptions")] opts: Option<JsValue>,
    ) -> Promise {
        start(Call::Wait, job_id, Some(merge(&self.opts, opts)))
    }

    /// See `run`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Job>")]
    pub fn run(
        &self,
        #[wasm_bindgen(unchecked_param_type = "GenerateRequest")] req: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "GenerateOptions & WaitOptions")]
        opts: Option<JsValue>,
    ) -> Promise {
        start(Call::Run, req, Some(merge(&self.opts, opts)))
    }
}

// wasm32 runs one thread, so the single-threaded free-list allocator is sound
// here, and it is 6 KB smaller than the default dlmalloc.
#[global_allocator]
#[allow(unsafe_code)]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };
