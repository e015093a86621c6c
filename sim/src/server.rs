//! The transport: a tokio accept loop, and one task per connection that
//! serves it with hyper's HTTP/1 connection builder. The same task carries
//! out the socket-level faults a handler asks for instead of answering: it
//! takes the socket back from hyper and resets it (`SO_LINGER` 0, then drop)
//! or holds it open without a word.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::http::{self, Abort, Action, Req};
use crate::options::Options;
use crate::shared::Shared;
use crate::video::VIDEO_PATH;
use crate::{routes, sign};

/// How long a `hang` fault holds its connection at most.
pub const HANG_FOR: Duration = Duration::from_secs(120);
/// Larger request bodies get 413.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
const EXPOSE_API: &str = "Retry-After";
const EXPOSE_VIDEO: &str = "Retry-After, Content-Range, Accept-Ranges, Content-Length";

/// A running simulator.
pub struct Server {
    pub port: u16,
    pub url: String,
    pub shared: Arc<Shared>,
}

/// Bind 127.0.0.1, spawn the accept loop on the current tokio runtime, and
/// return.
///
/// # Errors
/// The MP4 cannot be read, or the port cannot be bound.
pub async fn start(opts: Options) -> io::Result<Server> {
    let mp4 = std::fs::read(&opts.mp4).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read MP4 {}: {e}", opts.mp4.display()),
        )
    })?;
    let listener = TcpListener::bind(("127.0.0.1", opts.port)).await?;
    let port = listener.local_addr()?.port();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(0)
        .user_agent("apiframe-sim")
        .build()
        .map_err(io::Error::other)?;
    let flags = opts.config();
    let shared = Arc::new(Shared::new(
        flags,
        opts.api_key.clone(),
        sign::signing_key(&opts.api_key, opts.webhook_key),
        port,
        mp4.into(),
        opts.quiet,
        http,
    ));
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(!opts.no_keep_alive)
        .title_case_headers(true);
    tokio::spawn(accept_loop(Arc::clone(&shared), listener, builder));
    Ok(Server {
        port,
        url: format!("http://127.0.0.1:{port}"),
        shared,
    })
}

async fn accept_loop(sh: Arc<Shared>, listener: TcpListener, builder: http1::Builder) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(Arc::clone(&sh), stream, builder.clone()));
            }
            // Out of file descriptors, say: back off rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_connection(sh: Arc<Shared>, stream: TcpStream, builder: http1::Builder) {
    let _ = stream.set_nodelay(true);
    let (abort_tx, mut abort_rx) = mpsc::unbounded_channel();
    let handler_sh = Arc::clone(&sh);
    let service = service_fn(move |req| handle(Arc::clone(&handler_sh), abort_tx.clone(), req));
    let mut conn = builder.serve_connection(TokioIo::new(stream), service);
    let abort = tokio::select! {
        _ = &mut conn => return,
        Some(abort) = abort_rx.recv() => abort,
    };
    // The handler's future never completes, so hyper has written nothing for
    // this request; take the socket back (dropping that future).
    let stream = conn.into_parts().io.into_inner();
    match abort {
        // Dropping a socket with SO_LINGER 0 sends a TCP RST.
        Abort::Reset => {
            let _ = stream.set_zero_linger();
        }
        Abort::Hang => hang(&sh, stream).await,
    }
}

/// Hold the connection without answering for `HANG_FOR`, until the peer goes
/// away, or until `POST /__sim/reset`; then close it.
async fn hang(sh: &Shared, mut stream: TcpStream) {
    let mut reset = sh.generation.subscribe();
    let give_up = tokio::time::sleep(HANG_FOR);
    tokio::pin!(give_up);
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            _ = &mut give_up => return,
            _ = reset.changed() => return,
            read = stream.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) { return },
        }
    }
}

async fn handle(
    sh: Arc<Shared>,
    abort: mpsc::UnboundedSender<Abort>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let req = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => Req::new(parts, body.to_bytes()),
        Err(e) => {
            let (status, code) = if e.is::<LengthLimitError>() {
                (413, "too_large")
            } else {
                (400, "bad_request")
            };
            let msg = format!("the request body could not be read: {e}");
            let mut resp = http::json(status, &json!({"error": {"code": code, "message": msg}}));
            add_cors(&mut resp, None, false);
            sh.log(format_args!("{} {} -> {status}", parts.method, parts.uri));
            return Ok(resp);
        }
    };
    let reply = routes::dispatch(&sh, &req);
    let ms = started.elapsed().as_millis();
    let note = if reply.note.is_empty() {
        String::new()
    } else {
        format!(" [{}]", reply.note)
    };
    let (method, target) = (&req.method, &req.target);
    match reply.action {
        Action::Respond(mut resp) => {
            let status = resp.status().as_u16();
            sh.log(format_args!(
                "{method} {target} -> {status} ({ms} ms){note}"
            ));
            let video = req.path == VIDEO_PATH;
            add_cors(
                &mut resp,
                req.header("access-control-request-headers"),
                video,
            );
            Ok(resp)
        }
        Action::Abort(a) => {
            sh.log(format_args!("{method} {target} -> --- ({ms} ms){note}"));
            let _ = abort.send(a);
            // Never answer: the connection's task drops this future.
            std::future::pending().await
        }
    }
}

/// Permissive CORS on every answer (browser tests call from another origin).
fn add_cors(resp: &mut Response<Full<Bytes>>, request_headers: Option<&str>, video: bool) {
    let allow = match request_headers.filter(|h| !h.is_empty()) {
        Some(h) => format!("*, {h}"),
        None => "*".to_string(),
    };
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    if let Ok(v) = HeaderValue::from_str(&allow) {
        h.insert("access-control-allow-headers", v);
    }
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static(if video { EXPOSE_VIDEO } else { EXPOSE_API }),
    );
}
