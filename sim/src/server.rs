//! The HTTP server: one thread per connection, routing, the Apiframe v2
//! routes, fault injection, the `/__sim/*` control API and the MP4.

use std::io::{self, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{self, Action, ReadError, Request, Response};
use crate::sign::{self, KeyMode};
use crate::state::{Config, Job, State, Status, Webhook, FAULTS, FAULT_ROUTES};
use crate::util::{self, canonical_json, parse_query};
use crate::validate::{self, Invalid};

pub const HANG_FOR: Duration = Duration::from_secs(120);
const EXPOSE_API: &str = "Retry-After";
const EXPOSE_VIDEO: &str = "Retry-After, Content-Range, Accept-Ranges, Content-Length";

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    pub port: u16,
    pub api_key: String,
    pub job_ms: u64,
    pub object_shape: bool,
    pub webhook_retry_ms: u64,
    pub mp4: PathBuf,
    pub quiet: bool,
    /// Answer every request with `Connection: close`. Browsers silently resend
    /// a request whose reused keep-alive connection is reset, which would hide
    /// what the client itself did under the `reset` and `lost` faults.
    pub no_keep_alive: bool,
    pub webhook_key: KeyMode,
}

impl Options {
    pub fn new(api_key: &str) -> Options {
        Options {
            port: 0,
            api_key: api_key.to_string(),
            job_ms: 3000,
            object_shape: false,
            webhook_retry_ms: 200,
            mp4: default_mp4(),
            quiet: false,
            no_keep_alive: false,
            webhook_key: KeyMode::Hex,
        }
    }

    pub fn config(&self) -> Config {
        Config {
            job_ms: self.job_ms,
            object_shape: self.object_shape,
            drop_webhooks: false,
            fault_rate: 0.0,
            fault_set: Vec::new(),
            seed: 1,
            webhook_retry_ms: self.webhook_retry_ms,
        }
    }
}

pub fn default_mp4() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join("sample.mp4")
}

pub struct Shared {
    state: Mutex<State>,
    pub flags: Config,
    pub api_key: String,
    pub signing_key: Vec<u8>,
    pub port: u16,
    pub mp4: Vec<u8>,
    pub quiet: bool,
    pub no_keep_alive: bool,
    /// Mirrors `State::generation` for hanging connections (lock-free).
    pub generation: AtomicU64,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running simulator.
pub struct Server {
    pub port: u16,
    pub url: String,
    pub shared: Arc<Shared>,
}

/// Bind, start the accept loop and the webhook ticker, and return.
pub fn start(opts: Options) -> io::Result<Server> {
    let mp4 = std::fs::read(&opts.mp4).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read MP4 {}: {e}", opts.mp4.display()),
        )
    })?;
    let listener = TcpListener::bind(("127.0.0.1", opts.port))?;
    let port = listener.local_addr()?.port();
    let flags = opts.config();
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(flags.clone())),
        flags,
        api_key: opts.api_key.clone(),
        signing_key: sign::signing_key(&opts.api_key, opts.webhook_key),
        port,
        mp4,
        quiet: opts.quiet,
        no_keep_alive: opts.no_keep_alive,
        generation: AtomicU64::new(0),
    });
    crate::webhook::spawn_ticker(Arc::clone(&shared));
    let acc = Arc::clone(&shared);
    thread::Builder::new()
        .name("accept".into())
        .spawn(move || accept_loop(acc, listener))?;
    Ok(Server {
        port,
        url: format!("http://127.0.0.1:{port}"),
        shared,
    })
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let sh = Arc::clone(&shared);
                // A failed spawn drops the stream (the client sees a close).
                let _ = thread::Builder::new()
                    .name("conn".into())
                    .stack_size(512 * 1024)
                    .spawn(move || handle_conn(sh, stream));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn handle_conn(sh: Arc<Shared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // Idle keep-alive connections are closed after 5 minutes.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let req = match http::read_request(&mut reader, &mut writer) {
            Ok(Some(r)) => r,
            Ok(None) | Err(ReadError::Io) => return,
            Err(ReadError::Bad(msg)) => {
                let mut resp = Response::json(
                    400,
                    &json!({"error": {"code": "bad_request", "message": msg}}),
                );
                add_cors(&mut resp, None, false);
                log(&sh, "-", "-", 400, 0, "unparseable request");
                let _ = http::write_response(&mut writer, &resp, false, false);
                return;
            }
            Err(ReadError::TooLarge(code)) => {
                let mut resp = Response::json(
                    code,
                    &json!({"error": {"code": "too_large", "message": http::reason(code)}}),
                );
                add_cors(&mut resp, None, false);
                log(&sh, "-", "-", code, 0, "too large");
                let _ = http::write_response(&mut writer, &resp, false, false);
                return;
            }
        };
        let started = Instant::now();
        let mut resp = dispatch(&sh, &req);
        let target = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        let ms = started.elapsed().as_millis();
        match resp.action {
            Action::Reset => {
                log(&sh, &req.method, &target, 0, ms, &resp.note);
                reset_socket(&writer);
                return; // dropping both halves sends the RST
            }
            Action::Hang => {
                log(&sh, &req.method, &target, 0, ms, &resp.note);
                hang(&sh, &writer, &mut reader);
                return;
            }
            Action::Respond => {
                let video = req.path == "/videos/sample.mp4";
                add_cors(&mut resp, Some(&req), video);
                let keep = req.keep_alive() && !resp.close && !sh.no_keep_alive;
                log(&sh, &req.method, &target, resp.status, ms, &resp.note);
                if http::write_response(&mut writer, &resp, keep, req.method == "HEAD").is_err()
                    || !keep
                {
                    return;
                }
            }
        }
    }
}

fn log(sh: &Shared, method: &str, target: &str, status: u16, ms: u128, note: &str) {
    if sh.quiet {
        return;
    }
    let status = if status == 0 {
        "---".to_string()
    } else {
        status.to_string()
    };
    let note = if note.is_empty() {
        String::new()
    } else {
        format!(" [{note}]")
    };
    eprintln!("sim: {method} {target} -> {status} ({ms} ms){note}");
}

/// Make the close send a TCP RST instead of a FIN: SO_LINGER on, timeout 0.
pub fn reset_socket(stream: &TcpStream) {
    use std::os::unix::io::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd owned by `stream`; pointer and length describe `linger`.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Hold the connection without answering for 120 s, until the peer goes
/// away, or until `POST /__sim/reset`. Only this connection's thread waits.
fn hang(sh: &Shared, stream: &TcpStream, reader: &mut BufReader<TcpStream>) {
    let gen = sh.generation.load(Ordering::SeqCst);
    let deadline = Instant::now() + HANG_FOR;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && sh.generation.load(Ordering::SeqCst) == gen {
        match reader.get_mut().read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

fn add_cors(resp: &mut Response, req: Option<&Request>, video: bool) {
    let allow = match req
        .and_then(|r| r.header("access-control-request-headers"))
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        Some(h) => format!("*, {h}"),
        None => "*".to_string(),
    };
    let h = &mut resp.headers;
    h.push(("Access-Control-Allow-Origin".into(), "*".into()));
    h.push(("Access-Control-Allow-Headers".into(), allow));
    h.push((
        "Access-Control-Allow-Methods".into(),
        "GET, POST, OPTIONS".into(),
    ));
    h.push((
        "Access-Control-Expose-Headers".into(),
        if video { EXPOSE_VIDEO } else { EXPOSE_API }.into(),
    ));
}

fn message(status: u16, msg: &str) -> Response {
    Response::json(status, &json!({ "message": msg }))
}

fn invalid(e: &Invalid) -> Response {
    Response::json(400, &e.to_json())
}

/// Route one request.
pub fn dispatch(sh: &Shared, req: &Request) -> Response {
    if req.method == "OPTIONS" {
        return Response::new(204).header("Access-Control-Max-Age", "600");
    }
    let path = req.path.as_str();
    if path == "/__sim" || path.starts_with("/__sim/") {
        return control(sh, req);
    }
    if path == "/videos/sample.mp4" {
        return video(sh, req);
    }
    let m = req.method.as_str();
    let route = match path {
        "/v2/videos/generate" => ("POST", "generate"),
        "/v2/jobs" | "/v2/jobs/" => ("GET", "jobs"),
        "/v2/me" => ("GET", "me"),
        p if p.starts_with("/v2/jobs/") && !p[9..].contains('/') => ("GET", "job"),
        _ => return message(404, "Not found"),
    };
    if m != route.0 {
        return message(405, "Method not allowed")
            .header("Allow", &format!("{}, OPTIONS", route.0));
    }
    api(sh, req, route.1)
}

fn api(sh: &Shared, req: &Request, route: &'static str) -> Response {
    let job_id = (route == "job").then(|| req.path[9..].to_string());
    let fault = {
        let mut st = sh.lock();
        *st.stats.requests.entry(route).or_default() += 1;
        if let Some(id) = &job_id {
            *st.stats.status_reads.entry(id.clone()).or_default() += 1;
        }
        match req
            .header("x-sim-fault")
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(f) => Some(f.to_ascii_lowercase()),
            None => st.next_fault(route),
        }
    };
    match fault.as_deref() {
        None | Some("none") => normal(sh, req, route, job_id.as_deref()),
        Some(f) => {
            let mut r = apply_fault(sh, req, route, job_id.as_deref(), f);
            r.note = format!("fault={f}");
            r
        }
    }
}

fn apply_fault(
    sh: &Shared,
    req: &Request,
    route: &'static str,
    job_id: Option<&str>,
    fault: &str,
) -> Response {
    match fault {
        "500" | "502" | "503" => {
            let code: u16 = fault.parse().unwrap_or(500);
            message(code, &format!("Simulated {} {}", code, http::reason(code)))
        }
        "429" => {
            let secs = req
                .header("x-sim-retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            message(429, "Too many requests").header("Retry-After", &secs.to_string())
        }
        "429-date" => {
            // Rounded to the nearest second, then 2 s ahead.
            let secs = (util::now_ms() + 500) / 1000 + 2;
            message(429, "Too many requests").header("Retry-After", &util::http_date(secs))
        }
        "reset" => Response::with_action(Action::Reset),
        "hang" => Response::with_action(Action::Hang),
        "malformed" => {
            let body: &[u8] = match route {
                "generate" => b"{\"jobId\": \"",
                "jobs" => b"{\"jobs\": [",
                _ => b"{\"id\": ",
            };
            Response::raw_json(200, body.to_vec())
        }
        "lost" => {
            if route == "generate" {
                let mut r = normal(sh, req, route, job_id);
                r.action = Action::Reset;
                r
            } else {
                Response::with_action(Action::Reset)
            }
        }
        other => Response::json(
            400,
            &json!({"error": {"code": "unknown_fault",
                "message": format!("X-Sim-Fault must be one of {} (got {:?})", FAULTS.join(", "), other)}}),
        ),
    }
}

fn normal(sh: &Shared, req: &Request, route: &str, job_id: Option<&str>) -> Response {
    {
        let mut st = sh.lock();
        match req.header("x-api-key").map(str::trim) {
            None | Some("") => {
                st.stats.auth_missing += 1;
                return message(401, "API key is required");
            }
            Some(k) if k == sh.api_key => st.stats.auth_ok += 1,
            Some(_) => {
                st.stats.auth_wrong += 1;
                return message(401, "Invalid API key");
            }
        }
    }
    match route {
        "generate" => generate(sh, req),
        "job" => get_job(sh, job_id.unwrap_or("")),
        "jobs" => list_jobs(sh, req),
        _ => {
            let credits = sh.lock().credits(Instant::now());
            Response::json(
                200,
                &json!({"id": "user_sim", "email": "sim@example.test", "credits": credits}),
            )
        }
    }
}

fn generate(sh: &Shared, req: &Request) -> Response {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return invalid(&Invalid::new(
                "body",
                "be valid JSON",
                &format!("a parse error: {e}"),
            ))
        }
    };
    let g = match validate::validate(&body) {
        Ok(g) => g,
        Err(e) => return invalid(&e),
    };
    let canon = canonical_json(&body);
    let key = req
        .header("idempotency-key")
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let mut st = sh.lock();
    if let Some(k) = key {
        if let Some((c, id)) = st.idem.get(k) {
            return if *c == canon {
                Response::json(202, &json!({"jobId": id, "status": "QUEUED"}))
                    .header("Idempotent-Replayed", "true")
            } else {
                Response::json(
                    409,
                    &json!({"error": {"code": "idempotency_conflict",
                        "message": "Idempotency-Key was already used with a different request body"}}),
                )
            };
        }
    }
    let mk = validate::markers(&g.prompt);
    st.seq += 1;
    let id = util::uuid_v4();
    let webhook = g.webhook_url.clone().map(|url| Webhook {
        url,
        events: g.webhook_events.clone(),
        next_step: 10,
        terminal_emitted: false,
        queue: Default::default(),
        in_flight: false,
        delivered_any: false,
        failed_any: false,
    });
    let job = Job {
        seq: st.seq,
        id: id.clone(),
        model: g.model.clone(),
        credit_cost: g.credit_cost(),
        created_ms: util::now_ms(),
        started: Instant::now(),
        ms: mk.ms.unwrap_or(st.cfg.job_ms),
        fail: mk.fail,
        object_shape: mk.object_shape.unwrap_or(st.cfg.object_shape),
        webhook,
    };
    st.push_job(job);
    st.stats.jobs_created += 1;
    if let Some(k) = key {
        st.idem.insert(k.to_string(), (canon, id.clone()));
        *st.stats.idempotency_keys.entry(k.to_string()).or_default() += 1;
    }
    Response::json(202, &json!({"jobId": id, "status": "QUEUED"}))
}

fn get_job(sh: &Shared, id: &str) -> Response {
    let st = sh.lock();
    match st.job(id) {
        Some(j) => Response::json(200, &j.to_json(Instant::now(), sh.port)),
        None => message(404, "Job not found"),
    }
}

const CURSOR_PREFIX: &str = "cur_";

fn list_jobs(sh: &Shared, req: &Request) -> Response {
    let mut status = None;
    let mut model = None;
    let mut limit = 20usize;
    let mut before = u64::MAX;
    for (k, v) in parse_query(&req.query) {
        match k.as_str() {
            "status" if !v.is_empty() => match Status::parse(&v) {
                Some(s) => status = Some(s),
                None => {
                    return invalid(&Invalid::new(
                        "status",
                        "be one of QUEUED, PROCESSING, COMPLETED, FAILED",
                        &validate::describe(&Value::String(v)),
                    ))
                }
            },
            "model" if !v.is_empty() => model = Some(v),
            "limit" if !v.is_empty() => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => limit = n,
                _ => {
                    return invalid(&Invalid::new(
                        "limit",
                        "be an integer from 1 to 100",
                        &validate::describe(&Value::String(v)),
                    ))
                }
            },
            "cursor" if !v.is_empty() => {
                match v
                    .strip_prefix(CURSOR_PREFIX)
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                {
                    Some(seq) => before = seq,
                    None => {
                        return invalid(&Invalid::new(
                            "cursor",
                            "be a nextCursor value from a previous page",
                            &validate::describe(&Value::String(v)),
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    let now = Instant::now();
    let st = sh.lock();
    let mut page: Vec<&Job> = Vec::new();
    let mut has_more = false;
    for j in st.jobs.iter().rev() {
        if j.seq >= before {
            continue;
        }
        if model.as_deref().is_some_and(|m| m != j.model) {
            continue;
        }
        if status.is_some_and(|s| s != j.phase(now).0) {
            continue;
        }
        if page.len() == limit {
            has_more = true;
            break;
        }
        page.push(j);
    }
    let next = if has_more {
        page.last()
            .map(|j| Value::String(format!("{CURSOR_PREFIX}{:x}", j.seq)))
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let jobs: Vec<Value> = page.iter().map(|j| j.to_json(now, sh.port)).collect();
    Response::json(
        200,
        &json!({"jobs": jobs, "nextCursor": next, "hasMore": has_more}),
    )
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n`. `None`: ignore the header (serve 200);
/// `Some(Err(()))`: 416.
pub fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: serve the whole file
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(n), len - 1)));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        let e: u64 = b.parse().ok()?;
        if e < start {
            return None;
        }
        e.min(len.saturating_sub(1))
    };
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

fn video(sh: &Shared, req: &Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return message(405, "Method not allowed").header("Allow", "GET, HEAD, OPTIONS");
    }
    let len = sh.mp4.len() as u64;
    let base = |status: u16| {
        Response::new(status)
            .header("Content-Type", "video/mp4")
            .header("Accept-Ranges", "bytes")
            .header("Cache-Control", "no-cache")
    };
    match req.header("range").and_then(|r| parse_range(r, len)) {
        None => {
            let mut r = base(200);
            r.body = sh.mp4.clone();
            r
        }
        Some(Ok((a, b))) => {
            let mut r = base(206).header("Content-Range", &format!("bytes {a}-{b}/{len}"));
            r.body = sh.mp4[a as usize..=b as usize].to_vec();
            r
        }
        Some(Err(())) => {
            let mut r = base(416).header("Content-Range", &format!("bytes */{len}"));
            r.headers.retain(|(k, _)| k != "Content-Type");
            r
        }
    }
}

fn control(sh: &Shared, req: &Request) -> Response {
    let m = req.method.as_str();
    match (m, req.path.as_str()) {
        ("GET", "/__sim/stats") => Response::json(200, &sh.lock().stats.to_json()),
        ("GET", "/__sim/health") => Response::json(200, &json!({"ok": true, "port": sh.port})),
        ("POST", "/__sim/reset") => {
            sh.lock().reset(sh.flags.clone());
            sh.generation.fetch_add(1, Ordering::SeqCst);
            Response::json(200, &json!({"ok": true}))
        }
        ("GET", "/__sim/config") => Response::json(200, &sh.lock().cfg.to_json()),
        ("POST", "/__sim/config") => match post_config(sh, &req.body) {
            Ok(v) => Response::json(200, &v),
            Err(e) => invalid(&e),
        },
        ("GET", "/__sim/faults") => {
            let st = sh.lock();
            let q: Vec<Value> = st
                .faults
                .iter()
                .map(|(r, f)| json!({"route": r, "fault": f}))
                .collect();
            Response::json(200, &json!({ "queued": q }))
        }
        ("POST", "/__sim/faults") => match post_faults(sh, &req.body) {
            Ok(v) => Response::json(200, &v),
            Err(e) => invalid(&e),
        },
        (
            _,
            "/__sim/stats" | "/__sim/health" | "/__sim/reset" | "/__sim/config" | "/__sim/faults",
        ) => message(405, "Method not allowed"),
        _ => message(404, "Not found"),
    }
}

fn parse_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, Invalid> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Default::default());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Invalid::new(
            "body",
            "be a JSON object",
            &validate::describe(&other),
        )),
        Err(e) => Err(Invalid::new(
            "body",
            "be valid JSON",
            &format!("a parse error: {e}"),
        )),
    }
}

fn fault_list(field: &str, v: &Value) -> Result<Vec<String>, Invalid> {
    let must = format!("be an array of faults: {}", FAULTS.join(", "));
    let Value::Array(items) = v else {
        return Err(Invalid::new(field, &must, &validate::describe(v)));
    };
    items
        .iter()
        .map(|it| match it {
            Value::String(s) if FAULTS.contains(&s.to_ascii_lowercase().as_str()) => {
                Ok(s.to_ascii_lowercase())
            }
            Value::Number(n) if FAULTS.contains(&n.to_string().as_str()) => Ok(n.to_string()),
            other => Err(Invalid::new(field, &must, &validate::describe(other))),
        })
        .collect()
}

fn post_config(sh: &Shared, body: &[u8]) -> Result<Value, Invalid> {
    let m = parse_body(body)?;
    let mut st = sh.lock();
    let mut cfg = st.cfg.clone();
    let mut reseed = None;
    let u64_of = |k: &str, v: &Value| {
        v.as_u64()
            .ok_or_else(|| Invalid::new(k, "be a non-negative integer", &validate::describe(v)))
    };
    for (k, v) in &m {
        match k.as_str() {
            "jobMs" => cfg.job_ms = u64_of(k, v)?,
            "webhookRetryMs" => cfg.webhook_retry_ms = u64_of(k, v)?,
            "seed" => {
                let s = u64_of(k, v)?;
                cfg.seed = s;
                reseed = Some(s);
            }
            "resultShape" => {
                cfg.object_shape = match v.as_str() {
                    Some("object") => true,
                    Some("string") => false,
                    _ => {
                        return Err(Invalid::new(
                            k,
                            "be \"string\" or \"object\"",
                            &validate::describe(v),
                        ))
                    }
                }
            }
            "dropWebhooks" => {
                cfg.drop_webhooks = v
                    .as_bool()
                    .ok_or_else(|| Invalid::new(k, "be a boolean", &validate::describe(v)))?
            }
            "faultRate" => match v.as_f64() {
                Some(r) if (0.0..=1.0).contains(&r) => cfg.fault_rate = r,
                _ => {
                    return Err(Invalid::new(
                        k,
                        "be a number from 0 to 1",
                        &validate::describe(v),
                    ))
                }
            },
            "faultSet" => cfg.fault_set = fault_list(k, v)?,
            _ => {} // unknown keys are ignored
        }
    }
    st.cfg = cfg;
    if let Some(s) = reseed {
        st.rng = util::Rng::new(s);
    }
    Ok(st.cfg.to_json())
}

fn post_faults(sh: &Shared, body: &[u8]) -> Result<Value, Invalid> {
    let m = parse_body(body)?;
    let route = match m.get("route") {
        None | Some(Value::Null) => "any".to_string(),
        Some(Value::String(r)) if FAULT_ROUTES.contains(&r.as_str()) => r.clone(),
        Some(other) => {
            return Err(Invalid::new(
                "route",
                "be \"generate\", \"job\", \"jobs\", \"me\" or \"any\"",
                &validate::describe(other),
            ))
        }
    };
    let faults = match m.get("faults") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => fault_list("faults", v)?,
    };
    let mut st = sh.lock();
    if m.get("clear").and_then(Value::as_bool) == Some(true) {
        st.faults.clear();
    }
    for f in faults {
        st.faults.push_back((route.clone(), f));
    }
    Ok(json!({ "queued": st.faults.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=-5000", 1000), Some(Ok((0, 999))));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some(Ok((990, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
        assert_eq!(parse_range("bytes=x-y", 1000), None);
    }
}
