//! One exchange with the upstream: at the configured host only, with the
//! key added here and nowhere else, never following a redirect (so the key
//! never goes to a second host), with a timeout.

use sora_edge::edge::config::Config;
use sora_edge::edge::reply::Reply;
use worker::{AbortSignal, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

/// Per upstream request.
const TIMEOUT_MS: u32 = 30_000;

/// The secret that authenticates the worker upstream.
pub const KEY_BINDING: &str = "APIFRAME_API_KEY";

/// An upstream answer, read in full.
#[derive(Clone)]
pub struct Answer {
    /// Its status.
    pub status: u16,
    /// Its headers, lower-case names.
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

/// The API key; empty when unset (the configuration check refuses to run then).
pub fn api_key(env: &Env) -> String {
    env.var(KEY_BINDING)
        .map(|v| v.to_string())
        .unwrap_or_default()
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
    let unreachable = || Reply::error(502, "upstream", "the upstream could not be reached");
    let headers = Headers::new();
    for (name, value) in forward {
        headers.set(name, value).map_err(|_| unreachable())?;
    }
    if !headers.has("accept").unwrap_or(false) {
        let _ = headers.set("accept", "application/json");
    }
    if body.is_some() {
        let _ = headers.set("content-type", "application/json");
    }
    headers
        .set("x-api-key", &api_key(env))
        .map_err(|_| unreachable())?;
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual)
        .with_body(body.map(Into::into));
    let request = Request::new_with_init(&format!("{}{path}", config.base_url), &init)
        .map_err(|_| unreachable())?;
    // The platform's own timeout signal: no timer of ours per request.
    let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(TIMEOUT_MS));
    let send = async {
        let mut res = Fetch::Request(request).send_with_signal(&signal).await?;
        let text = res.text().await?;
        Ok::<_, worker::Error>(Answer {
            status: res.status_code(),
            headers: res.headers().entries().collect(),
            text,
        })
    };
    send.await.map_err(|_| {
        // Only the timeout aborts this signal.
        if signal.aborted() {
            Reply::error(
                504,
                "timeout",
                &format!("the upstream did not answer within {TIMEOUT_MS} ms"),
            )
        } else {
            unreachable()
        }
    })
}
