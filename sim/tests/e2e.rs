//! Real-TCP tests against an in-process simulator (and one against the binary).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use apiframe_sim::sign::{self, KeyMode};
use apiframe_sim::{start, Options};
use serde_json::{json, Value};

const KEY: &str = "afk_test_key";

/// A simulator on its own runtime; the tests talk to it over blocking sockets.
struct Sim {
    port: u16,
    _runtime: tokio::runtime::Runtime,
}

fn sim(job_ms: u64) -> Sim {
    sim_with(|o| o.job_ms = job_ms)
}

fn sim_with(set: impl FnOnce(&mut Options)) -> Sim {
    let mut o = Options::new(KEY);
    o.quiet = true;
    o.webhook_retry_ms = 50;
    set(&mut o);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(start(o)).expect("start sim");
    Sim {
        port: server.port,
        _runtime: runtime,
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON {e}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Read one response (Content-Length framed) from a buffered stream.
fn read_resp<R: BufRead>(r: &mut R) -> std::io::Result<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "eof",
        ));
    }
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut s = format!("{method} {path} HTTP/1.1\r\nHost: sim\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    s.push_str(body);
    s.into_bytes()
}

fn req(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&raw_request(method, path, headers, body))?;
    let mut r = BufReader::new(s);
    read_resp(&mut r)
}

fn gen(port: u16, body: &Value) -> Resp {
    req(
        port,
        "POST",
        "/v2/videos/generate",
        &[("X-API-Key", KEY), ("Content-Type", "application/json")],
        &body.to_string(),
    )
    .unwrap()
}

fn get(port: u16, path: &str) -> Resp {
    req(port, "GET", path, &[("X-API-Key", KEY)], "").unwrap()
}

fn stats(port: u16) -> Value {
    req(port, "GET", "/__sim/stats", &[], "").unwrap().json()
}

#[test]
fn auth_validation_and_cors() {
    let s = sim(3000);
    let body = json!({"prompt": "a cat", "model": "sora-2"}).to_string();
    let r = req(s.port, "POST", "/v2/videos/generate", &[], &body).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({"message": "API key is required"}));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let r = req(
        s.port,
        "POST",
        "/v2/videos/generate",
        &[("X-API-Key", "nope")],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({"message": "Invalid API key"}));
    let r = req(s.port, "GET", "/v2/jobs/x", &[], "").unwrap();
    assert_eq!(r.status, 401);

    let r = req(
        s.port,
        "POST",
        "/v2/videos/generate",
        &[("X-API-Key", KEY)],
        "{not json",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "invalid_request");
    assert_eq!(r.json()["error"]["field"], "body");

    let table = [
        (
            json!({"prompt": "a", "model": "sora-2", "soraParams": {"duration": 5}}),
            400,
            "soraParams.duration",
        ),
        (json!({"prompt": "", "model": "sora-2"}), 400, "prompt"),
        (
            json!({"prompt": "é".repeat(4000), "model": "sora-2"}),
            202,
            "",
        ),
        (
            json!({"prompt": "é".repeat(4001), "model": "sora-2"}),
            400,
            "prompt",
        ),
        (
            json!({"prompt": "a", "model": "sora-2", "soraParams": {"resolution": "high"}}),
            400,
            "soraParams.resolution",
        ),
        (
            json!({"prompt": "a", "model": "sora-2-pro", "soraParams": {"resolution": "high", "future_key": 1}}),
            202,
            "",
        ),
        (json!({"prompt": "a", "model": "gpt"}), 400, "model"),
        (
            json!({"prompt": "a", "model": "sora-2", "webhookUrl": "not a url"}),
            400,
            "webhookUrl",
        ),
        (
            json!({"prompt": "a", "model": "sora-2", "webhookEvents": ["x"]}),
            400,
            "webhookEvents[0]",
        ),
    ];
    for (body, status, field) in table {
        let r = gen(s.port, &body);
        assert_eq!(r.status, status, "{body}");
        if status == 400 {
            let j = r.json();
            assert_eq!(j["error"]["field"], field, "{body}");
            assert_eq!(j["error"]["code"], "invalid_request");
            assert!(j["error"]["message"].as_str().unwrap().starts_with(field));
        } else {
            let j = r.json();
            assert_eq!(j["status"], "QUEUED");
            assert_eq!(j["jobId"].as_str().unwrap().len(), 36);
        }
    }

    // Preflight, with the requested headers echoed.
    let r = req(
        s.port,
        "OPTIONS",
        "/v2/videos/generate",
        &[
            ("Origin", "http://x.test"),
            (
                "Access-Control-Request-Headers",
                "x-api-key, idempotency-key",
            ),
        ],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("*, x-api-key, idempotency-key")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, OPTIONS")
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("Retry-After")
    );
    let r = get(s.port, "/nowhere");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));

    let st = stats(s.port);
    assert_eq!(st["auth"]["missing"], 2);
    assert_eq!(st["auth"]["wrong"], 1);
    assert_eq!(st["jobsCreated"], 2);
    assert_eq!(st["requests"]["generate"], 12);
}

#[test]
fn idempotency() {
    let s = sim(3000);
    let send = |key: &str, body: &str| {
        req(
            s.port,
            "POST",
            "/v2/videos/generate",
            &[("X-API-Key", KEY), ("Idempotency-Key", key)],
            body,
        )
        .unwrap()
    };
    let a = send(
        "k1",
        r#"{"prompt":"a cat","model":"sora-2","soraParams":{"duration":8,"aspect_ratio":"9:16"}}"#,
    );
    assert_eq!(a.status, 202);
    // Same body, other key order and whitespace.
    let b = send(
        "k1",
        r#"{ "model": "sora-2", "soraParams": {"aspect_ratio":"9:16", "duration": 8}, "prompt": "a cat" }"#,
    );
    assert_eq!(b.status, 202);
    assert_eq!(a.json()["jobId"], b.json()["jobId"]);
    let c = send("k1", r#"{"prompt":"a dog","model":"sora-2"}"#);
    assert_eq!(c.status, 409);
    assert_eq!(c.json()["error"]["code"], "idempotency_conflict");
    let d = send("k2", r#"{"prompt":"a cat","model":"sora-2"}"#);
    assert_ne!(d.json()["jobId"], a.json()["jobId"]);
    let st = stats(s.port);
    assert_eq!(st["jobsCreated"], 2);
    assert_eq!(st["idempotencyKeys"], json!({"k1": 1, "k2": 1}));
    assert_eq!(st["requests"]["generate"], 4);
}

#[test]
fn lifecycle_over_time() {
    let s = sim(600);
    let t0 = Instant::now();
    let id = gen(
        s.port,
        &json!({"prompt": "a cat", "model": "sora-2", "soraParams": {"duration": 8}}),
    )
    .json()["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let obj = gen(
        s.port,
        &json!({"prompt": "[shape=object] [ms=300]", "model": "sora-2-pro"}),
    )
    .json()["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let failing = gen(
        s.port,
        &json!({"prompt": "[fail:too spicy] [ms=300]", "model": "sora-2"}),
    )
    .json()["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut seen = Vec::new();
    let mut last_progress = 0;
    let done = loop {
        let j = get(s.port, &format!("/v2/jobs/{id}")).json();
        let status = j["status"].as_str().unwrap().to_string();
        let p = j["progress"].as_u64().unwrap();
        assert!(p >= last_progress, "progress went back");
        last_progress = p;
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "COMPLETED" {
            break j;
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(seen, ["QUEUED", "PROCESSING", "COMPLETED"]);
    assert_eq!(done["progress"], 100);
    assert_eq!(done["creditCost"], 8);
    assert_eq!(done["error"], Value::Null);
    assert_eq!(done["webhookStatus"], Value::Null);
    assert_eq!(
        done["result"],
        format!("http://127.0.0.1:{}/videos/sample.mp4?job={id}", s.port)
    );
    let keys: Vec<&String> = done.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 10);
    assert!(done["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(done["createdAt"].as_str().unwrap().len(), 24);

    let o = get(s.port, &format!("/v2/jobs/{obj}")).json();
    assert_eq!(o["status"], "COMPLETED");
    assert_eq!(o["creditCost"], 12);
    assert!(o["result"]["videoUrl"].as_str().unwrap().contains(&obj));
    let f = get(s.port, &format!("/v2/jobs/{failing}")).json();
    assert_eq!(f["status"], "FAILED");
    assert_eq!(f["error"], "too spicy");
    assert_eq!(f["creditCost"], 0);
    assert_eq!(f["result"], Value::Null);

    let me = get(s.port, "/v2/me").json();
    assert_eq!(me["credits"], 1000 - 8 - 12);

    // Listing: newest first, paged.
    let p1 = get(s.port, "/v2/jobs?limit=2").json();
    assert_eq!(p1["hasMore"], true);
    assert_eq!(p1["jobs"][0]["id"], failing.as_str());
    assert_eq!(p1["jobs"][1]["id"], obj.as_str());
    let cur = p1["nextCursor"].as_str().unwrap();
    let p2 = get(s.port, &format!("/v2/jobs?limit=2&cursor={cur}")).json();
    assert_eq!(p2["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(p2["jobs"][0]["id"], id.as_str());
    assert_eq!(p2["hasMore"], false);
    assert_eq!(p2["nextCursor"], Value::Null);
    let failed = get(s.port, "/v2/jobs?status=FAILED").json();
    assert_eq!(failed["jobs"].as_array().unwrap().len(), 1);
    let pro = get(s.port, "/v2/jobs?model=sora-2-pro").json();
    assert_eq!(pro["jobs"][0]["id"], obj.as_str());
    assert_eq!(get(s.port, "/v2/jobs?limit=0").status, 400);
    assert_eq!(get(s.port, "/v2/jobs?limit=101").status, 400);

    let nf = get(s.port, "/v2/jobs/does-not-exist");
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json(), json!({"message": "Job not found"}));
    let st = stats(s.port);
    assert!(st["statusReads"][id.as_str()].as_u64().unwrap() >= 3);
    assert_eq!(st["statusReads"]["does-not-exist"], 1);
}

#[test]
fn faults() {
    let s = sim(3000);
    let body = json!({"prompt": "a", "model": "sora-2"}).to_string();
    let with_fault = |fault: &str| {
        req(
            s.port,
            "POST",
            "/v2/videos/generate",
            &[
                ("X-API-Key", KEY),
                ("X-Sim-Fault", fault),
                ("X-Sim-Retry-After", "7"),
            ],
            &body,
        )
    };
    // reset: the client sees a connection reset, not a response.
    let e = with_fault("reset").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e:?}");
    assert_eq!(stats(s.port)["jobsCreated"], 0);
    // lost: the job is created, then the connection is reset.
    let e = with_fault("lost").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e:?}");
    assert_eq!(stats(s.port)["jobsCreated"], 1);

    for code in [500, 502, 503] {
        let r = with_fault(&code.to_string()).unwrap();
        assert_eq!(r.status, code);
        assert!(r.json()["message"].is_string());
    }
    let r = with_fault("429").unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    let r = req(
        s.port,
        "GET",
        "/v2/me",
        &[("X-API-Key", KEY), ("X-Sim-Fault", "429")],
        "",
    )
    .unwrap();
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = with_fault("429-date").unwrap();
    assert_eq!(r.status, 429);
    let date = r.header("retry-after").unwrap();
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    let r = with_fault("malformed").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"jobId\": \"");
    let r = req(
        s.port,
        "GET",
        "/v2/jobs/x",
        &[("X-API-Key", KEY), ("X-Sim-Fault", "malformed")],
        "",
    )
    .unwrap();
    assert_eq!(r.body, b"{\"id\": ");

    // hang: this connection gets nothing, others are served meanwhile.
    let mut h = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    h.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    h.write_all(&raw_request(
        "GET",
        "/v2/me",
        &[("X-API-Key", KEY), ("X-Sim-Fault", "hang")],
        "",
    ))
    .unwrap();
    assert_eq!(get(s.port, "/v2/me").status, 200);
    let mut buf = [0u8; 16];
    let e = h.read(&mut buf).unwrap_err();
    assert!(matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));

    // Queued faults are consumed in order by matching routes only.
    let r = req(
        s.port,
        "POST",
        "/__sim/faults",
        &[],
        r#"{"route":"job","faults":["503","502"]}"#,
    )
    .unwrap();
    assert_eq!(r.json()["queued"], 2);
    assert_eq!(get(s.port, "/v2/me").status, 200);
    assert_eq!(get(s.port, "/v2/jobs/x").status, 503);
    assert_eq!(get(s.port, "/v2/jobs/x").status, 502);
    assert_eq!(get(s.port, "/v2/jobs/x").status, 404);
    // Faults never apply to /__sim/* or /videos/*.
    req(
        s.port,
        "POST",
        "/__sim/faults",
        &[],
        r#"{"route":"any","faults":["500"]}"#,
    )
    .unwrap();
    let r = req(
        s.port,
        "GET",
        "/videos/sample.mp4",
        &[("X-Sim-Fault", "503")],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(stats(s.port)["requests"]["me"].as_u64().unwrap(), 4);
    assert_eq!(get(s.port, "/v2/me").status, 500);

    // Random faults are deterministic for a seed.
    let run = || {
        req(
            s.port,
            "POST",
            "/__sim/config",
            &[],
            r#"{"faultRate":0.5,"faultSet":["503","502"],"seed":42}"#,
        )
        .unwrap();
        (0..20)
            .map(|_| get(s.port, "/v2/me").status)
            .collect::<Vec<_>>()
    };
    let a = run();
    let b = run();
    assert_eq!(a, b);
    assert!(
        a.contains(&200) && (a.contains(&503) || a.contains(&502)),
        "{a:?}"
    );

    // Reset restores the flags and clears counts.
    let r = req(s.port, "POST", "/__sim/reset", &[], "").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(get(s.port, "/v2/me").status, 200);
    let st = stats(s.port);
    assert_eq!(st["jobsCreated"], 0);
    assert_eq!(st["requests"]["me"], 1);
}

#[test]
fn socket_faults_on_a_used_keep_alive_connection() {
    let s = sim(3000);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let me = |fault: &str| {
        raw_request(
            "GET",
            "/v2/me",
            &[("X-API-Key", KEY), ("X-Sim-Fault", fault)],
            "",
        )
    };
    // Two answers on the connection first, then a reset instead of the third.
    for _ in 0..2 {
        c.write_all(&me("none")).unwrap();
        assert_eq!(read_resp(&mut r).unwrap().status, 200);
    }
    c.write_all(&me("reset")).unwrap();
    let e = read_resp(&mut r).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e:?}");

    // A hang after an answer holds the connection until POST /__sim/reset,
    // then closes it cleanly (FIN, no bytes).
    let mut h = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    h.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hr = BufReader::new(h.try_clone().unwrap());
    h.write_all(&me("none")).unwrap();
    assert_eq!(read_resp(&mut hr).unwrap().status, 200);
    h.write_all(&me("hang")).unwrap();
    thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    assert_eq!(
        req(s.port, "POST", "/__sim/reset", &[], "").unwrap().status,
        200
    );
    let mut rest = Vec::new();
    assert_eq!(hr.read_to_end(&mut rest).unwrap(), 0);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn no_keep_alive_closes_after_each_answer() {
    let s = sim_with(|o| o.no_keep_alive = true);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&raw_request("GET", "/v2/me", &[("X-API-Key", KEY)], ""))
        .unwrap();
    let mut r = BufReader::new(c);
    let resp = read_resp(&mut r).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        r.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the answer"
    );
}

#[test]
fn head_and_oversized_bodies() {
    let s = sim(3000);
    let full = get(s.port, "/videos/sample.mp4");
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&raw_request("HEAD", "/videos/sample.mp4", &[], ""))
        .unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        if r.read_line(&mut head).unwrap() == 0 {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len = format!("Content-Length: {}\r\n", full.body.len());
    assert!(head.contains(&len), "{head}");
    // Then the next request on the connection: HEAD sent no body.
    c.write_all(&raw_request("GET", "/v2/me", &[("X-API-Key", KEY)], ""))
        .unwrap();
    assert_eq!(read_resp(&mut r).unwrap().status, 200);

    let big = "x".repeat(4 * 1024 * 1024 + 1);
    let r = req(
        s.port,
        "POST",
        "/v2/videos/generate",
        &[("X-API-Key", KEY)],
        &big,
    )
    .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "too_large");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn video_with_ranges() {
    let s = sim(3000);
    let full = get(s.port, "/videos/sample.mp4?job=abc");
    assert_eq!(full.status, 200);
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert!(full.body.len() > 1000 && full.body.len() < 60_000);
    assert_eq!(&full.body[4..8], b"ftyp");
    let r = req(
        s.port,
        "GET",
        "/videos/sample.mp4",
        &[("Range", "bytes=0-99")],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.body, full.body[..100]);
    assert_eq!(
        r.header("content-range").unwrap(),
        format!("bytes 0-99/{}", full.body.len())
    );
    let r = req(
        s.port,
        "GET",
        "/videos/sample.mp4",
        &[("Range", "bytes=-10")],
        "",
    )
    .unwrap();
    assert_eq!(r.body, full.body[full.body.len() - 10..]);
    let r = req(
        s.port,
        "GET",
        "/videos/sample.mp4",
        &[("Range", "bytes=99999999-")],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 416);
}

/// (status answered, X-Webhook-Event, X-Webhook-Signature, body)
type Delivery = (u16, String, String, Vec<u8>);

#[test]
fn webhook_delivery_with_retry() {
    // A receiver that fails the first delivery with 500 and accepts the rest.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let got2 = Arc::clone(&got);
    thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let mut s = conn.unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.starts_with("POST /hook?x=1 HTTP/1.1"), "{line}");
            let (mut len, mut event, mut sig) = (0, String::new(), String::new());
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap(),
                    "x-webhook-event" => event = v.trim().to_string(),
                    "x-webhook-signature" => sig = v.trim().to_string(),
                    "content-type" => assert_eq!(v.trim(), "application/json"),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let code = if n == 0 { 500 } else { 200 };
            got2.lock().unwrap().push((code, event, sig, body));
            let _ = s.write_all(
                format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });

    let s = sim(3000);
    let r = gen(
        s.port,
        &json!({"prompt": "[ms=200] hooked", "model": "sora-2",
                "webhookUrl": format!("http://127.0.0.1:{hook_port}/hook?x=1")}),
    );
    let id = r.json()["jobId"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    let job = loop {
        let j = get(s.port, &format!("/v2/jobs/{id}")).json();
        if j["webhookStatus"] == "delivered" {
            break j;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{j}");
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(job["status"], "COMPLETED");
    let got = got.lock().unwrap().clone();
    // Default events: completed and failed only (no progress).
    assert_eq!(got.len(), 2);
    let key = sign::signing_key(KEY, KeyMode::Hex);
    for (_, event, sig, body) in &got {
        assert_eq!(event, "completed");
        assert_eq!(*sig, sign::sign(&key, body));
    }
    assert_eq!(got[0].3, got[1].3, "a retry resends the same bytes");
    let b: Value = serde_json::from_slice(&got[1].3).unwrap();
    assert_eq!(b["event"], "completed");
    assert_eq!(b["jobId"], id.as_str());
    assert_eq!(b["status"], "COMPLETED");
    assert_eq!(b["progress"], 100);
    assert_eq!(b["model"], "sora-2");
    assert_eq!(b["creditCost"], 4);
    assert_eq!(b["result"], job["result"]);
    assert_eq!(b["completedAt"], job["completedAt"]);
    let st = stats(s.port);
    assert_eq!(
        st["webhooks"],
        json!({"attempted": 2, "delivered": 1, "failed": 1})
    );
}

#[test]
fn webhook_progress_events_and_give_up() {
    // Nobody listens on this port: every attempt fails; after 5 the event is dropped.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let s = sim(3000);
    let r = gen(
        s.port,
        &json!({"prompt": "[ms=100] [fail]", "model": "sora-2",
                "webhook_url": format!("http://127.0.0.1:{dead_port}/"),
                "webhookEvents": ["failed"]}),
    );
    let id = r.json()["jobId"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    loop {
        let j = get(s.port, &format!("/v2/jobs/{id}")).json();
        if j["webhookStatus"] == "failed" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{j}");
        thread::sleep(Duration::from_millis(20));
    }
    let st = stats(s.port);
    // 50 + 100 + 200 + 400 ms of backoff between 5 attempts.
    assert_eq!(
        st["webhooks"],
        json!({"attempted": 5, "delivered": 0, "failed": 5})
    );
    assert!(t0.elapsed() >= Duration::from_millis(700));
}

#[test]
fn https_webhooks_fail_every_attempt() {
    // The simulator speaks no TLS: an https URL is accepted by validation
    // (upstream takes it) but each delivery attempt fails at once.
    let s = sim(3000);
    let r = gen(
        s.port,
        &json!({"prompt": "[ms=50]", "model": "sora-2",
                "webhookUrl": "https://127.0.0.1:9/hook"}),
    );
    let id = r.json()["jobId"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    while get(s.port, &format!("/v2/jobs/{id}")).json()["webhookStatus"] != "failed" {
        assert!(t0.elapsed() < Duration::from_secs(5));
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        stats(s.port)["webhooks"],
        json!({"attempted": 5, "delivered": 0, "failed": 5})
    );
}

#[test]
fn keep_alive_and_many_connections() {
    let s = sim(3000);
    // 50 requests on one keep-alive connection, pipelined in pairs.
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    for _ in 0..25 {
        let mut two = raw_request("GET", "/v2/me", &[("X-API-Key", KEY)], "");
        two.extend(raw_request(
            "GET",
            "/v2/jobs/nope",
            &[("X-API-Key", KEY)],
            "",
        ));
        c.write_all(&two).unwrap();
        assert_eq!(read_resp(&mut r).unwrap().status, 200);
        assert_eq!(read_resp(&mut r).unwrap().status, 404);
    }
    // 150 concurrent keep-alive clients.
    let port = s.port;
    let handles: Vec<_> = (0..150)
        .map(|_| {
            thread::spawn(move || {
                let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let mut r = BufReader::new(c.try_clone().unwrap());
                for _ in 0..3 {
                    c.write_all(&raw_request("GET", "/v2/me", &[("X-API-Key", KEY)], ""))
                        .unwrap();
                    assert_eq!(read_resp(&mut r).unwrap().status, 200);
                    thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Garbage does not take the server down.
    let mut g = TcpStream::connect(("127.0.0.1", port)).unwrap();
    g.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = g.read_to_end(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 400"));
    assert_eq!(get(port, "/v2/me").status, 200);
    assert_eq!(stats(port)["requests"]["me"], 25 + 450 + 1);
}

#[test]
fn binary_prints_sim_url() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apiframe-sim"))
        .args([
            "--port",
            "0",
            "--api-key",
            "secret-key-xyz",
            "--job-ms",
            "100",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line
        .trim_end()
        .strip_prefix("SIM_URL=http://127.0.0.1:")
        .unwrap();
    let port: u16 = url.parse().unwrap();
    let r = req(
        port,
        "GET",
        "/v2/me",
        &[("X-API-Key", "secret-key-xyz")],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let _ = req(port, "GET", "/v2/me", &[("X-API-Key", "wrong")], "").unwrap();
    child.kill().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.wait();
    assert!(err.contains("GET /v2/me -> 200"), "{err}");
    assert!(
        !err.contains("secret-key-xyz"),
        "the API key must never be printed"
    );

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_apiframe-sim"))
        .args(["--port", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2), "--api-key is required");
}
