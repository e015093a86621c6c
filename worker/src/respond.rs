//! Turning the edge's replies into responses, with CORS headers.

use sora_edge::edge::reply::Reply;
use worker::{Response, Result};

/// A response for `reply`, plus CORS headers. A CORS header replaces a
/// reply header of the same name; JSON and `no-store` are the defaults.
pub fn respond(reply: Reply, cors: &[(String, String)]) -> Result<Response> {
    respond_raw(reply, cors).map(Response::from)
}

/// [`respond`] as the platform's `Response`, which the fetch handler hands
/// back as it is: workers-rs's `ResponseBuilder` copies the body into a
/// `Uint8Array` and converts the response once more on the way out.
pub fn respond_raw(reply: Reply, cors: &[(String, String)]) -> Result<web_sys::Response> {
    let headers = web_sys::Headers::new()?;
    let has = |name: &str| {
        reply.headers.iter().any(|(n, _)| n == name) || cors.iter().any(|(n, _)| n == name)
    };
    for (name, value) in &reply.headers {
        if !cors.iter().any(|(c, _)| c == name) {
            headers.append(name, value)?;
        }
    }
    if !reply.body.is_empty() && !has("content-type") {
        headers.set("content-type", "application/json; charset=utf-8")?;
    }
    for (name, value) in cors {
        headers.set(name, value)?;
    }
    if !has("cache-control") {
        headers.set("cache-control", "no-store")?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(reply.status);
    init.set_headers(&headers);
    let body = (!reply.body.is_empty() && reply.status != 204).then_some(reply.body.as_str());
    Ok(web_sys::Response::new_with_opt_str_and_init(body, &init)?)
}

/// The same response with CORS headers set (on a copy of its headers: a
/// fetched response's own are immutable).
pub fn with_cors(res: Response, cors: &[(String, String)]) -> Result<Response> {
    if cors.is_empty() {
        return Ok(res);
    }
    let headers = res.headers().clone();
    for (name, value) in cors {
        headers.set(name, value)?;
    }
    Ok(res.with_headers(headers))
}
