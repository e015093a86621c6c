//! One HTTP exchange through gloo-net and the caller's `fetch`, with a
//! per-request timeout and the caller's `AbortSignal`, and the retry loop
//! around it.
//!
//! No Rust closures cross into JavaScript: timers call `resolve` or
//! `controller.abort` directly, so nothing can fire after it is dropped.

use super::options::{token_fault, Options, Token};
use crate::core::auth::renews_token;
use crate::core::backoff::{may_retry, retry_delay_ms, RequestKind};
use crate::core::http::{error_from_status, parse_retry_after, UpstreamErrorBody};
use crate::core::platform::number_text;
use crate::core::{ErrorCode, Secrets, SoraError};
use gloo_net::http::{Headers, Method, RequestBuilder, Response};
use js_sys::{Array, Date, Function, Promise, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, WorkerGlobalScope};

/// The caller's abort, with the signal's `reason` as `cause`, so that
/// `controller.abort(reason)` is recoverable.
fn aborted_error(signal: &AbortSignal) -> SoraError {
    SoraError::new(
        ErrorCode::Aborted,
        "the operation was aborted by its AbortSignal",
    )
    .with_cause(Reflect::get(signal, &"reason".into()).unwrap_or_default())
}

/// Fails at once when the caller's signal has already fired.
pub fn check_aborted(signal: Option<&AbortSignal>) -> Result<(), SoraError> {
    match signal {
        Some(s) if s.aborted() => Err(aborted_error(s)),
        _ => Ok(()),
    }
}

/// The global object's timers. Every runtime has `setTimeout` on its
/// global (Window, worker scope, Node's `globalThis`); web-sys binds it on
/// the worker scope, and the binding calls it on whatever object it gets.
fn timers() -> WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// Calls `f` after `ms`; the id clears it. A JavaScript function, not a Rust closure.
fn set_timeout(f: &Function, ms: f64) -> i32 {
    timers()
        .set_timeout_with_callback_and_timeout_and_arguments_0(f, ms.min(2_147_483_647.0) as i32)
        .unwrap_or(0)
}

fn clear_timeout(id: i32) {
    timers().clear_timeout_with_handle(id);
}

/// A promise and its `resolve` function, captured from the executor.
fn deferred() -> (Promise, Function) {
    let mut resolve_fn = None;
    let promise = Promise::new(&mut |resolve, _| resolve_fn = Some(resolve));
    (
        promise,
        resolve_fn.expect("the Promise executor runs synchronously"),
    )
}

/// A pending timer, cleared when dropped: a sleep given up (the events
/// stream's deadline timer, once the stream ends the wait) must not keep a
/// runtime such as Node alive until it fires.
struct Timer(i32);

impl Drop for Timer {
    fn drop(&mut self) {
        clear_timeout(self.0);
    }
}

/// Sleeps `ms`, or until `signal` aborts (then `aborted`, and the timer is cleared).
pub async fn sleep(ms: f64, signal: Option<&AbortSignal>) -> Result<(), SoraError> {
    check_aborted(signal)?;
    let (timer, wake) = deferred();
    let _pending = Timer(set_timeout(&wake, ms));
    let Some(signal) = signal else {
        let _ = JsFuture::from(timer).await;
        return Ok(());
    };
    let (on_abort, wake_on_abort) = deferred();
    let _ = signal.add_event_listener_with_callback("abort", &wake_on_abort);
    let _ = JsFuture::from(Promise::race(&Array::of2(&timer, &on_abort))).await;
    let _ = signal.remove_event_listener_with_callback("abort", &wake_on_abort);
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
struct Exchange {
    controller: AbortController,
    abort: Function,
    timer_id: i32,
    user_signal: Option<AbortSignal>,
    label: String,
    timeout_ms: f64,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        clear_timeout(self.timer_id);
        if let Some(signal) = &self.user_signal {
            let _ = signal.remove_event_listener_with_callback("abort", &self.abort);
        }
    }
}

impl Exchange {
    /// Sends a request through the caller's `fetch` and waits for the
    /// response head, within the timeout.
    async fn send(
        opts: &Options,
        method: Method,
        url: &str,
        body: Option<&str>,
        extra_headers: &[(&str, &str)],
        token: Option<&str>,
        timeout_ms: f64,
    ) -> Result<(Exchange, Response), Failure> {
        check_aborted(opts.signal.as_ref())?;
        let controller = AbortController::new()
            .map_err(|_| SoraError::new(ErrorCode::Network, "AbortController is not available"))?;
        // `controller.abort` bound to it: a JavaScript function the timer and
        // the caller's signal can call with no Rust code behind it.
        let abort = Reflect::get(&controller, &"abort".into())
            .map(|f| f.unchecked_into::<Function>().bind0(&controller))
            .map_err(|_| SoraError::new(ErrorCode::Network, "AbortController is not available"))?;
        if let Some(signal) = &opts.signal {
            let _ = signal.add_event_listener_with_callback("abort", &abort);
        }
        let exchange = Exchange {
            timer_id: set_timeout(&abort, timeout_ms),
            controller,
            abort,
            user_signal: opts.signal.clone(),
            label: [method.as_str(), " ", url].concat(),
            timeout_ms,
        };

        let headers = Headers::new();
        headers.set("Accept", "application/json");
        if body.is_some() {
            headers.set("Content-Type", "application/json");
        }
        if let Some(key) = &opts.api_key {
            headers.set("X-API-Key", key);
        }
        for (name, value) in extra_headers {
            headers.set(name, value);
        }
        for (name, value) in &opts.headers {
            headers.set(name, value);
        }
        // After the caller's headers: `token` wins over an `Authorization` there.
        if let Some(token) = token {
            headers.set("Authorization", &["Bearer ", token].concat());
        }
        let mut builder = RequestBuilder::new(url)
            .method(method)
            .headers(headers)
            .abort_signal(Some(&exchange.controller.signal()));
        if opts.api_key.is_some() || token.is_some() {
            // A redirect must not carry the key (or the token) to a host we did not choose.
            builder = builder.redirect(web_sys::RequestRedirect::Manual);
        }
        let request = match body {
            Some(body) => builder.body(body),
            None => builder.build(),
        }
        .map_err(|_| {
            SoraError::invalid(
                "baseUrl",
                ["baseUrl gives a URL that fetch cannot request: ", url].concat(),
            )
        })?;
        let promise = opts
            .fetch
            .call1(&JsValue::UNDEFINED, &web_sys::Request::from(request))
            .map_err(|e| exchange.classify(e))?;
        match JsFuture::from(Promise::resolve(&promise)).await {
            Ok(response) => Ok((
                exchange,
                Response::from(response.unchecked_into::<web_sys::Response>()),
            )),
            Err(thrown) => Err(exchange.classify(thrown)),
        }
    }

    /// Why a promise of this exchange rejected: the caller's abort, our
    /// timeout, or the network (with `refused` from Node's `cause.code`).
    fn classify(&self, thrown: JsValue) -> Failure {
        if let Some(signal) = self.user_signal.as_ref().filter(|s| s.aborted()) {
            return aborted_error(signal).into();
        }
        if self.controller.signal().aborted() {
            let mut e = SoraError::new(
                ErrorCode::Timeout,
                [
                    &self.label,
                    " got no answer within ",
                    &number_text(self.timeout_ms.trunc()),
                    " ms",
                ]
                .concat(),
            );
            e.retryable = true;
            return e.with_cause(thrown).into();
        }
        let text = |value: &JsValue, key: &str| {
            Reflect::get(value, &key.into())
                .ok()
                .and_then(|m| m.as_string())
                .unwrap_or_default()
        };
        let detail = text(&thrown, "message");
        let cause_code = text(
            &Reflect::get(&thrown, &"cause".into()).unwrap_or_default(),
            "code",
        );
        let mut message = [&self.label, " failed: ", &detail].concat();
        if !cause_code.is_empty() {
            message = [&message, " (", &cause_code, ")"].concat();
        }
        Failure {
            error: SoraError::new(ErrorCode::Network, message).with_cause(thrown),
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

/// The token for one request attempt: the string, or what the function
/// gives now (awaited when it is a promise), so that a renewed one is used.
/// An empty one is none.
async fn bearer(opts: &Options) -> Result<Option<String>, SoraError> {
    let given = match &opts.token {
        None => return Ok(None),
        Some(Token::Fixed(token)) => return Ok(Some(token.clone())),
        Some(Token::Source(source)) => source.call0(&JsValue::UNDEFINED),
    };
    let thrown = |cause: JsValue| {
        SoraError::invalid(
            "token",
            "the token function threw, or its Promise rejected (see cause); nothing was sent",
        )
        .with_cause(cause)
    };
    let token = JsFuture::from(Promise::resolve(&given.map_err(thrown)?))
        .await
        .map_err(thrown)?;
    if let Some(fault) = token_fault(
        &token,
        "must return a string or a Promise of one, when it is a function",
    ) {
        return Err(fault);
    }
    Ok(token.as_string().filter(|t| !t.is_empty()))
}

/// One request: a 2xx body parsed by the platform's JSON parser, or the
/// error its status and body make.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    opts: &Options,
    method: Method,
    url: &str,
    body: Option<&str>,
    extra_headers: &[(&str, &str)],
    token: Option<&str>,
    deadline_at: Option<f64>,
) -> Result<JsValue, Failure> {
    let timeout = timeout_until(opts, deadline_at);
    let (exchange, response) =
        Exchange::send(opts, method, url, body, extra_headers, token, timeout).await?;
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => {
            let detail = match e {
                gloo_net::Error::JsError(e) => e.message,
                _ => String::new(),
            };
            return Err(exchange.classify(js_sys::Error::new(&detail).into()));
        }
    };
    if response.ok() {
        return JSON::parse(&text).map_err(|e| {
            SoraError::new(
                ErrorCode::BadResponse,
                ["the answer to ", &exchange.label, " is not valid JSON"].concat(),
            )
            .with_cause(e)
            .into()
        });
    }
    let parsed: Option<UpstreamErrorBody> = JSON::parse(&text)
        .ok()
        .and_then(|json| super::value_of(&json))
        .and_then(|v| UpstreamErrorBody::try_from(v).ok());
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| parse_retry_after(&v, Date::now() as u64));
    let mut error = error_from_status(response.status(), &text, parsed.as_ref(), retry_after);
    // The worker never quotes a token; should anything echo it, it is not shown.
    if let Some(token) = token {
        error = error.redact(&Secrets::new(&[token]));
    }
    error.message = [&exchange.label, ": ", &error.message].concat();
    Err(error.into())
}

/// A request with retries by `kind`'s rules, with the caller's token
/// resolved for each attempt. A 2xx body must be JSON that `check` accepts;
/// a body that is not counts as a failed attempt too.
#[allow(clippy::too_many_arguments)]
pub async fn request(
    opts: &Options,
    kind: RequestKind,
    method: Method,
    url: &str,
    body: Option<&str>,
    extra_headers: &[(&str, &str)],
    deadline_at: Option<f64>,
    check: fn(&JsValue) -> Result<(), SoraError>,
) -> Result<JsValue, SoraError> {
    let mut attempt = 0;
    let mut renewed = false;
    loop {
        let token = bearer(opts).await?;
        let failure = match exchange(
            opts,
            method.clone(),
            url,
            body,
            extra_headers,
            token.as_deref(),
            deadline_at,
        )
        .await
        {
            Ok(json) => match check(&json) {
                Ok(()) => return Ok(json),
                Err(error) => error.into(),
            },
            Err(failure) => failure,
        };
        // The worker refused an expired token before forwarding anything:
        // once, the function is asked again and the request repeated at once.
        let from_function = matches!(opts.token, Some(Token::Source(_)));
        if renews_token(&failure.error, from_function, renewed) {
            renewed = true;
            continue;
        }
        let out_of_time = deadline_at.is_some_and(|at| Date::now() >= at);
        if attempt >= opts.max_retries
            || out_of_time
            || !may_retry(kind, &failure.error, failure.refused)
        {
            let mut error = failure.error;
            error.method = Some(method.as_str().to_string());
            error.url = Some(url.to_string());
            return Err(error);
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
