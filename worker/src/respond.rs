//! Turning the edge's replies into responses, with CORS headers.

use sora_edge::edge::reply::Reply;
use worker::{Headers, Response, ResponseBuilder, Result};

/// A response for `reply`, plus CORS headers. A CORS header replaces a
/// reply header of the same name; JSON and `no-store` are the defaults.
pub fn respond(reply: Reply, cors: &[(String, String)]) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in &reply.headers {
        if !cors.iter().any(|(c, _)| c == name) {
            headers.append(name, value)?;
        }
    }
    if !reply.body.is_empty() && !headers.has("content-type")? {
        headers.set("content-type", "application/json; charset=utf-8")?;
    }
    for (name, value) in cors {
        headers.set(name, value)?;
    }
    if !headers.has("cache-control")? {
        headers.set("cache-control", "no-store")?;
    }
    let builder = ResponseBuilder::new()
        .with_status(reply.status)
        .with_headers(headers);
    Ok(if reply.body.is_empty() || reply.status == 204 {
        builder.empty()
    } else {
        builder.fixed(reply.body.into_bytes())
    })
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
