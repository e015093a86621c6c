//! The request and response types every handler speaks, and the helpers
//! that build answers: a request with its body read (`Req`), an answer
//! (`Resp`), and what the connection does with a request (`Reply`: answer,
//! or carry out a socket-level fault).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::http::request::Parts;
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::validate::Invalid;

/// A request with its body read.
pub struct Req {
    pub method: Method,
    /// The request target as sent, for the log.
    pub target: String,
    pub path: String,
    /// Query string without the `?` (may be empty).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn new(parts: Parts, body: Bytes) -> Req {
        let uri = &parts.uri;
        Req {
            target: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or("").to_string(),
            method: parts.method,
            headers: parts.headers,
            body,
        }
    }

    /// A header's value, trimmed (`None` when absent or not text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }
}

pub type Resp = Response<Full<Bytes>>;

/// What the connection does with a request.
pub enum Action {
    Respond(Resp),
    /// Write nothing: the connection's task takes the socket back from hyper.
    Abort(Abort),
}

/// A socket-level fault: what the connection's task does instead of answering.
#[derive(Debug, Clone, Copy)]
pub enum Abort {
    /// Close with a TCP RST.
    Reset,
    /// Hold the connection open without a word.
    Hang,
}

pub struct Reply {
    pub action: Action,
    /// Short note for the request log (the fault's name).
    pub note: String,
}

impl From<Resp> for Reply {
    fn from(r: Resp) -> Reply {
        Reply {
            action: Action::Respond(r),
            note: String::new(),
        }
    }
}

impl From<Abort> for Reply {
    fn from(abort: Abort) -> Reply {
        Reply {
            action: Action::Abort(abort),
            note: String::new(),
        }
    }
}

pub fn respond(status: u16, headers: &[(&'static str, &str)], body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).expect("a known status");
    for (k, v) in headers {
        r.headers_mut().append(
            *k,
            HeaderValue::from_str(v).expect("a header value we wrote"),
        );
    }
    r
}

pub fn json(status: u16, v: &Value) -> Resp {
    raw_json(status, v.to_string())
}

pub fn raw_json(status: u16, body: impl Into<Bytes>) -> Resp {
    respond(status, &[("content-type", "application/json")], body.into())
}

pub fn with_header(mut r: Resp, k: &'static str, v: &str) -> Resp {
    r.headers_mut().append(
        k,
        HeaderValue::from_str(v).expect("a header value we wrote"),
    );
    r
}

pub fn message(status: u16, msg: &str) -> Resp {
    json(status, &json!({ "message": msg }))
}

pub fn invalid(e: &Invalid) -> Resp {
    json(400, &e.to_json())
}
