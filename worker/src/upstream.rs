//! One exchange with the upstream: at the configured host only, with the
//! key added here and nowhere else, never following a redirect (so the key
//! never goes to a second host), with a timeout.
//!
//! Built on `web_sys` under workers-rs: `worker::Fetch` makes a `Request`
//! and a second init to carry the signal, `Response::text` reads the body
//! through a stream reader (one promise per chunk plus the lock calls), and
//! the `Response` conversion reads `cf` and `websocket`. Measured in workerd
//! (bench/proxy.mjs), those crossings were most of the worker's own CPU per
//! request; one `fetch(url, init)` and one `text()` do the same work.

use sora_edge::core::redact::Secrets;
use sora_edge::edge::config::Config;
use sora_edge::edge::headers::PASSED_RESPONSE_HEADERS;
use sora_edge::edge::reply::Reply;
use sora_edge::edge::upstream::{self as answers, Expected};
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Method};

/// Per upstream request.
const TIMEOUT_MS: u32 = 30_000;

// Bound with `catch`, unlike web-sys's: `AbortSignal.timeout` throws when
// the isolate holds too many timers (workerd: 10,000 active at once, which a
// Durable Object keeps across requests), and a throw through an import not
// bound with `catch` unwinds the wasm past its futures and leaves the object
// stuck for good. As errors, they become the caller's 502/503.
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = AbortSignal, js_name = timeout)]
    pub(crate) fn abort_signal_timeout(ms: u32) -> Result<web_sys::AbortSignal, JsValue>;
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(url: &str, init: &web_sys::RequestInit) -> Result<js_sys::Promise, JsValue>;
}

/// `fetch(url, init)` with an abort signal that fires after `timeout_ms`;
/// the signal is also returned, to tell a timeout from other failures.
///
/// # Errors
/// Whatever the platform threw or rejected with.
pub async fn fetch_with_timeout(
    url: &str,
    init: &web_sys::RequestInit,
    timeout_ms: u32,
) -> (
    Result<web_sys::Response, JsValue>,
    Option<web_sys::AbortSignal>,
) {
    let signal = match abort_signal_timeout(timeout_ms) {
        Ok(signal) => signal,
        Err(thrown) => return (Err(thrown), None),
    };
    init.set_signal(Some(&signal));
    let sent = async { JsFuture::from(global_fetch(url, init)?).await?.dyn_into() }.await;
    (sent, Some(signal))
}

/// The secret that authenticates the worker upstream.
pub const KEY_BINDING: &str = "APIFRAME_API_KEY";
/// The key before a rotation: still redacted, and still verifies webhooks
/// of jobs submitted with it. Never sent upstream.
pub const PREVIOUS_KEY_BINDING: &str = "APIFRAME_API_KEY_PREVIOUS";

/// An upstream answer, read in full.
#[derive(Clone)]
pub struct Answer {
    /// Its status.
    pub status: u16,
    /// Its headers that may reach a client, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub text: String,
}

impl Answer {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The keys, read once per isolate (a binding does not change within one).
struct Keys {
    current: String,
    previous: String,
    secrets: Rc<Secrets>,
}

thread_local! {
    static KEYS: std::cell::OnceCell<Keys> = const { std::cell::OnceCell::new() };
}

fn with_keys<T>(env: &Env, f: impl FnOnce(&Keys) -> T) -> T {
    KEYS.with(|keys| {
        f(keys.get_or_init(|| {
            let read = |name| env.var(name).map(|v| v.to_string()).unwrap_or_default();
            let (current, previous) = (read(KEY_BINDING), read(PREVIOUS_KEY_BINDING));
            let secrets = Rc::new(Secrets::new(&[&current, &previous]));
            Keys {
                current,
                previous,
                secrets,
            }
        }))
    })
}

/// The API key; empty when unset (the configuration check refuses to run then).
pub fn api_key(env: &Env) -> String {
    with_keys(env, |keys| keys.current.clone())
}

/// The keys a webhook signature may be made with: the current and the previous one.
pub fn webhook_keys(env: &Env) -> [String; 2] {
    with_keys(env, |keys| [keys.current.clone(), keys.previous.clone()])
}

/// What no client may see: every key, in every form.
pub fn secrets(env: &Env) -> Rc<Secrets> {
    with_keys(env, |keys| Rc::clone(&keys.secrets))
}

/// The headers of `names` that `headers` has, read by name: iterating all of
/// them costs two crossings into JavaScript per header.
pub fn named_headers(headers: &web_sys::Headers, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|&name| Some((name.to_string(), headers.get(name).ok()??)))
        .collect()
}

/// Sends `method path` upstream with the allowlisted `forward` headers and the key.
///
/// # Errors
/// 504 `timeout` when the upstream does not answer within 30 s, 502
/// `upstream` when it cannot be reached.
pub async fn exchange(
    env: &Env,
    config: &Config,
    method: Method,
    path: &str,
    forward: &[(String, String)],
    body: Option<String>,
) -> Result<Answer, Reply> {
    let headers = match request_headers(env, forward, body.is_some()) {
        Ok(headers) => headers,
        Err(_) => {
            return Err(Reply::error(
                502,
                "upstream",
                "the upstream request could not be built",
            ))
        }
    };
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(&body));
    }
    let url = format!("{}{path}", config.base_url);
    // The platform's own timeout signal: no timer of ours per request.
    let (sent, signal) = fetch_with_timeout(&url, &init, TIMEOUT_MS).await;
    let read: Result<Answer, JsValue> = async {
        let res = sent?;
        let text = JsFuture::from(res.text()?).await?;
        // By name: only these may reach a client (and `retry-after` is one).
        Ok(Answer {
            status: res.status(),
            headers: named_headers(&res.headers(), &PASSED_RESPONSE_HEADERS),
            text: text.as_string().unwrap_or_default(),
        })
    }
    .await;
    read.map_err(|_| match signal {
        // Only the timeout aborts this signal.
        Some(signal) if signal.aborted() => Reply::error(
            504,
            "timeout",
            &format!("the upstream did not answer within {TIMEOUT_MS} ms"),
        ),
        Some(_) => Reply::error(502, "upstream", "the upstream could not be reached"),
        None => Reply::error(
            503,
            "upstream",
            "the worker has too many upstream requests in flight; nothing was sent",
        ),
    })
}

/// The upstream request's headers: the allowlisted `forward` ones, JSON by
/// default, and the key.
fn request_headers(
    env: &Env,
    forward: &[(String, String)],
    has_body: bool,
) -> Result<web_sys::Headers, JsValue> {
    let headers = web_sys::Headers::new()?;
    for (name, value) in forward {
        headers.set(name, value)?;
    }
    if !forward.iter().any(|(name, _)| name == "accept") {
        headers.set("accept", "application/json")?;
    }
    if has_body {
        headers.set("content-type", "application/json")?;
    }
    headers.set("x-api-key", &api_key(env))?;
    Ok(headers)
}

/// The client's reply for an upstream answer (or the worker's own 502/504),
/// rebuilt as `expected` says ([`answers::reply`]).
pub fn answer_reply(env: &Env, expected: Expected, answer: Result<Answer, Reply>) -> Reply {
    match answer {
        Ok(a) => answers::reply(expected, a.status, &a.headers, &a.text, &secrets(env)),
        Err(reply) => reply,
    }
}

/// One upstream status read of job `id`, as the client may see it: rebuilt
/// from the known fields, redacted, a result URL that breaks the rule made FAILED.
pub async fn job_reply(
    env: &Env,
    config: &Config,
    forward: &[(String, String)],
    id: &str,
) -> Reply {
    let answer = exchange(
        env,
        config,
        Method::Get,
        &format!("/v2/jobs/{id}"),
        forward,
        None,
    )
    .await;
    answer_reply(env, Expected::Job(id), answer)
}
