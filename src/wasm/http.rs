//! One HTTP exchange through the runtime's `fetch`, with a per-request
//! timeout and the caller's `AbortSignal`, and the retry loop around it.
//!
//! No Rust closures cross into JavaScript: timers call `resolve` or
//! `controller.abort` directly, so nothing can fire after it is dropped.

use super::js::{clear_timeout, set_timeout, AbortController, AbortSignal, Response};
use super::options::Options;
use crate::core::backoff::{may_retry, retry_delay_ms, RequestKind};
use crate::core::http::{error_from_status, parse_retry_after};
use crate::core::json::u64_text;
use crate::core::{ErrorCode, Json, SoraError};
use js_sys::{Array, Date, Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

fn aborted_error() -> SoraError {
    SoraError::new(
        ErrorCode::Aborted,
        "the operation was aborted by its AbortSignal",
    )
}

/// Fails at once when the caller's signal has already fired.
pub fn check_aborted(signal: Option<&AbortSignal>) -> Result<(), SoraError> {
    match signal {
        Some(s) if s.aborted() => Err(aborted_error()),
        _ => Ok(()),
    }
}

/// A promise and its `resolve` function, captured from the executor.
fn deferred() -> (Promise, Function) {
    let mut resolve_fn = None;
    // `new_typed`, the constructor `future_to_promise` uses too: one import
    // and one closure shim instead of two.
    let promise: Promise = Promise::new_typed::<JsValue>(&mut |resolve, _| {
        resolve_fn = Some(resolve.unchecked_into::<Function>());
    })
    .unchecked_into();
    (
        promise,
        resolve_fn.expect("the Promise executor runs synchronously"),
    )
}

/// Sleeps `ms`, or until `signal` aborts (then `aborted`, and the timer is cleared).
pub async fn sleep(ms: f64, signal: Option<&AbortSignal>) -> Result<(), SoraError> {
    check_aborted(signal)?;
    let (timer, wake) = deferred();
    let timer_id = set_timeout(&wake, ms);
    let Some(signal) = signal else {
        let _ = JsFuture::from(timer).await;
        return Ok(());
    };
    let (on_abort, wake_on_abort) = deferred();
    signal.add_event_listener("abort", &wake_on_abort);
    let _ = JsFuture::from(Promise::race(&Array::of2(&timer, &on_abort))).await;
    signal.remove_event_listener("abort", &wake_on_abort);
    clear_timeout(&timer_id);
    check_aborted(Some(signal))
}

/// A failed exchange, and whether the connection was refused before any
/// byte was sent (the only network failure after which a submit is safe to repeat).
pub struct Failure {
    pub error: SoraError,
    pub refused: bool,
}

impl From<SoraError> for Failure {
    fn from(error: SoraError) -> Failure {
        Failure {
            error,
            refused: false,
        }
    }
}

/// One fetch in flight: its controller, its timeout timer and its link to the
/// caller's signal. Dropping it disarms the timer and unlinks the signal,
/// however the exchange ends.
pub struct Exchange {
    controller: AbortController,
    abort: Function,
    timer_id: JsValue,
    user_signal: Option<AbortSignal>,
    label: String,
    timeout_ms: f64,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        clear_timeout(&self.timer_id);
        // Closes a stream still open; a no-op once the body has been read.
        // `call1` with undefined is `abort()`; it spares `call0`'s import.
        let _ = self.abort.call1(&JsValue::UNDEFINED, &JsValue::UNDEFINED);
        if let Some(signal) = &self.user_signal {
            signal.remove_event_listener("abort", &self.abort);
        }
    }
}

impl Exchange {
    /// Sends a request and waits for the response head; the timeout covers
    /// the head only until [`Exchange::rearm`] or the body read.
    pub async fn send(
        opts: &Options,
        method: &str,
        url: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
        timeout_ms: f64,
    ) -> Result<(Exchange, Response), Failure> {
        check_aborted(opts.signal.as_ref())?;
        let controller = AbortController::new();
        let abort = Reflect::get(&controller, &"abort".into())
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok())
            .map(|f| f.bind0(&controller))
            .ok_or_else(|| {
                SoraError::new(ErrorCode::Network, "AbortController is not available")
            })?;
        if let Some(signal) = &opts.signal {
            signal.add_event_listener("abort", &abort);
        }
        let exchange = Exchange {
            timer_id: set_timeout(&abort, timeout_ms),
            controller,
            abort,
            user_signal: opts.signal.clone(),
            label: [method, " ", url].concat(),
            timeout_ms,
        };

        let header_object = Object::new();
        let set = |target: &Object, k: &str, v: &JsValue| {
            let _ = Reflect::set(target, &k.into(), v);
        };
        if body.is_some() {
            set(&header_object, "Content-Type", &"application/json".into());
        }
        if let Some(key) = &opts.api_key {
            set(&header_object, "X-API-Key", &key.into());
        }
        for (name, value) in headers {
            set(&header_object, name, &(*value).into());
        }
        for (name, value) in &opts.headers {
            set(&header_object, name, &value.into());
        }
        let init = Object::new();
        set(&init, "method", &method.into());
        set(&init, "headers", &header_object);
        set(&init, "signal", &exchange.controller.signal());
        if opts.api_key.is_some() {
            // A redirect must not carry the key to a host we did not choose.
            set(&init, "redirect", &"manual".into());
        }
        if let Some(body) = body {
            set(&init, "body", &body.into());
        }
        let promise = opts
            .fetch
            .call2(&JsValue::UNDEFINED, &url.into(), &init)
            .map_err(|e| exchange.classify(e))?;
        match JsFuture::from(Promise::resolve(&promise)).await {
            Ok(response) => Ok((exchange, response.unchecked_into())),
            Err(thrown) => Err(exchange.classify(thrown)),
        }
    }

    /// Restarts the timeout: `ms` from now.
    pub fn rearm(&mut self, ms: f64) {
        clear_timeout(&self.timer_id);
        self.timeout_ms = ms;
        self.timer_id = set_timeout(&self.abort, ms);
    }

    /// Awaits a promise of this exchange (a body read), classifying a rejection.
    pub async fn wait(&self, promise: Promise) -> Result<JsValue, Failure> {
        JsFuture::from(promise).await.map_err(|e| self.classify(e))
    }

    /// Why a promise of this exchange rejected: the caller's abort, our
    /// timeout, or the network (with `refused` from Node's `cause.code`).
    fn classify(&self, thrown: JsValue) -> Failure {
        if self.user_signal.as_ref().is_some_and(|s| s.aborted()) {
            return aborted_error().into();
        }
        if self.controller.signal().aborted() {
            let mut e = SoraError::new(
                ErrorCode::Timeout,
                [
                    &self.label,
                    " got no answer within ",
                    &u64_text(self.timeout_ms as u64),
                    " ms",
                ]
                .concat(),
            );
            e.retryable = true;
            return e.into();
        }
        let detail = Reflect::get(&thrown, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .unwrap_or_default();
        let cause = Reflect::get(&thrown, &"cause".into()).unwrap_or(JsValue::UNDEFINED);
        let cause_code = Reflect::get(&cause, &"code".into())
            .ok()
            .and_then(|c| c.as_string())
            .unwrap_or_default();
        let mut message = [&self.label, " failed: ", &detail].concat();
        if !cause_code.is_empty() {
            message = [&message, " (", &cause_code, ")"].concat();
        }
        Failure {
            error: SoraError::new(ErrorCode::Network, message),
            refused: cause_code == "ECONNREFUSED",
        }
    }
}

/// The timeout of one request: `timeoutMs`, cut short by the deadline.
pub fn timeout_until(opts: &Options, deadline_at: Option<f64>) -> f64 {
    match deadline_at {
        Some(at) => opts.timeout_ms.min((at - Date::now()).max(0.0)),
        None => opts.timeout_ms,
    }
}

/// One request and its whole body.
async fn exchange(
    opts: &Options,
    method: &str,
    url: &str,
    body: Option<&str>,
    extra_headers: &[(&str, &str)],
    deadline_at: Option<f64>,
) -> Result<(u16, String, super::js::Headers), Failure> {
    let mut headers = vec![("Accept", "application/json")];
    headers.extend_from_slice(extra_headers);
    let timeout = timeout_until(opts, deadline_at);
    let (exchange, response) = Exchange::send(opts, method, url, body, &headers, timeout).await?;
    let text = exchange.wait(response.text()).await?;
    Ok((
        response.status(),
        text.as_string().unwrap_or_default(),
        response.headers(),
    ))
}

/// A request with retries by `kind`'s rules. A 2xx body must be JSON that
/// `check` accepts; a body that is not counts as a failed attempt too.
/// Resolves with the parsed body and its text.
#[allow(clippy::too_many_arguments)]
pub async fn request(
    opts: &Options,
    kind: RequestKind,
    method: &str,
    url: &str,
    body: Option<&str>,
    extra_headers: &[(&str, &str)],
    deadline_at: Option<f64>,
    check: fn(&Json) -> Result<(), SoraError>,
) -> Result<(Json, String), SoraError> {
    let mut attempt = 0;
    loop {
        let failure = match exchange(opts, method, url, body, extra_headers, deadline_at).await {
            Ok((status, text, _)) if (200..300).contains(&status) => {
                match Json::parse(&text)
                    .map_err(|e| bad_json(&text, e.offset))
                    .and_then(|json| check(&json).map(|()| json))
                {
                    Ok(json) => return Ok((json, text)),
                    Err(error) => error.into(),
                }
            }
            Ok((status, text, headers)) => {
                let retry_after = headers
                    .get("retry-after")
                    .and_then(|v| parse_retry_after(&v, Date::now() as u64));
                error_from_status(status, &text, retry_after).into()
            }
            Err(failure) => failure,
        };
        let out_of_time = deadline_at.is_some_and(|at| Date::now() >= at);
        if attempt >= opts.max_retries
            || out_of_time
            || !may_retry(kind, &failure.error, failure.refused)
        {
            return Err(failure.error);
        }
        let mut delay = retry_delay_ms(
            attempt,
            failure.error.retry_after_ms,
            js_sys::Math::random(),
        ) as f64;
        if let Some(at) = deadline_at {
            delay = delay.min((at - Date::now()).max(0.0));
        }
        sleep(delay, opts.signal.as_ref()).await?;
        attempt += 1;
    }
}

fn bad_json(text: &str, offset: usize) -> SoraError {
    SoraError::new(
        ErrorCode::BadResponse,
        [
            "the response is not valid JSON (at byte ",
            &u64_text(offset as u64),
            " of ",
            &u64_text(text.len() as u64),
            ")",
        ]
        .concat(),
    )
}
