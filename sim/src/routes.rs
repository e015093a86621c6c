//! Routing, the Apiframe v2 routes and fault injection. Handlers are plain
//! functions from a fully read request to a `Reply`; the transport
//! (`server.rs`) writes the answer or carries out the socket-level fault.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http::{
    invalid, json, message, raw_json, respond, with_header, Abort, Reply, Req, Resp,
};
use crate::shared::Shared;
use crate::state::{now_ms, Job, Status, Webhook, FAULTS};
use crate::validate::{self, Invalid};
use crate::video::VIDEO_PATH;
use crate::{control, video, webhook};

const CURSOR_PREFIX: &str = "cur_";

/// Route one request.
pub fn dispatch(sh: &Arc<Shared>, req: &Req) -> Reply {
    if req.method == Method::OPTIONS {
        return with_header(
            respond(204, &[], Bytes::new()),
            "access-control-max-age",
            "600",
        )
        .into();
    }
    let path = req.path.as_str();
    if path == "/__sim" || path.starts_with("/__sim/") {
        return control::handle(sh, req).into();
    }
    if path == VIDEO_PATH {
        return video::serve(sh, req).into();
    }
    let (method, route) = match path {
        "/v2/videos/generate" => (Method::POST, "generate"),
        "/v2/jobs" | "/v2/jobs/" => (Method::GET, "jobs"),
        "/v2/me" => (Method::GET, "me"),
        p if p.starts_with("/v2/jobs/") && !p[9..].contains('/') => (Method::GET, "job"),
        _ => return message(404, "Not found").into(),
    };
    if req.method != method {
        let allow = format!("{method}, OPTIONS");
        return with_header(message(405, "Method not allowed"), "allow", &allow).into();
    }
    api(sh, req, route)
}

fn api(sh: &Arc<Shared>, req: &Req, route: &'static str) -> Reply {
    let job_id = (route == "job").then(|| &req.path[9..]);
    let fault = {
        let mut st = sh.lock();
        *st.stats.requests.entry(route).or_default() += 1;
        if let Some(id) = job_id {
            *st.stats.status_reads.entry(id.to_string()).or_default() += 1;
        }
        match req.header("x-sim-fault").filter(|f| !f.is_empty()) {
            Some(f) => Some(f.to_ascii_lowercase()),
            None => st.next_fault(route),
        }
    };
    match fault.as_deref() {
        None | Some("none") => normal(sh, req, route, job_id).into(),
        Some(f) => Reply {
            note: format!("fault={f}"),
            ..apply_fault(sh, req, route, job_id, f)
        },
    }
}

fn apply_fault(
    sh: &Arc<Shared>,
    req: &Req,
    route: &str,
    job_id: Option<&str>,
    fault: &str,
) -> Reply {
    match fault {
        "500" | "502" | "503" => {
            let code = StatusCode::from_bytes(fault.as_bytes()).expect("a status");
            let reason = code.canonical_reason().unwrap_or("");
            message(code.as_u16(), &format!("Simulated {fault} {reason}")).into()
        }
        "429" => {
            let secs = req
                .header("x-sim-retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            let r = message(429, "Too many requests");
            with_header(r, "retry-after", &secs.to_string()).into()
        }
        "429-date" => {
            // Now rounded to the nearest second, then 2 s ahead.
            let secs = (now_ms() + 500) / 1000 + 2;
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let r = message(429, "Too many requests");
            with_header(r, "retry-after", &httpdate::fmt_http_date(at)).into()
        }
        "reset" => Abort::Reset.into(),
        "hang" => Abort::Hang.into(),
        "malformed" => {
            let body: &'static [u8] = match route {
                "generate" => b"{\"jobId\": \"",
                "jobs" => b"{\"jobs\": [",
                _ => b"{\"id\": ",
            };
            raw_json(200, body).into()
        }
        "lost" => {
            if route == "generate" {
                // The job is created (and counted), then the answer is lost.
                normal(sh, req, route, job_id);
            }
            Abort::Reset.into()
        }
        other => {
            let msg = format!(
                "X-Sim-Fault must be one of {} (got {other:?})",
                FAULTS.join(", ")
            );
            json(
                400,
                &json!({"error": {"code": "unknown_fault", "message": msg}}),
            )
            .into()
        }
    }
}

fn normal(sh: &Arc<Shared>, req: &Req, route: &str, job_id: Option<&str>) -> Resp {
    {
        let mut st = sh.lock();
        match req.header("x-api-key") {
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
            json(
                200,
                &json!({"id": "user_sim", "email": "sim@example.test", "credits": credits}),
            )
        }
    }
}

fn generate(sh: &Arc<Shared>, req: &Req) -> Resp {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            let got = format!("a parse error: {e}");
            return invalid(&Invalid::new("body", "be valid JSON", &got));
        }
    };
    let g = match validate::validate(&body) {
        Ok(g) => g,
        Err(e) => return invalid(&e),
    };
    // Canonical JSON (sorted keys, no whitespace) is serde_json's own output:
    // its maps are sorted (no `preserve_order`; `canonical_body` tests it).
    let canon = body.to_string();
    let key = req.header("idempotency-key").filter(|k| !k.is_empty());
    let mut st = sh.lock();
    if let Some((c, id)) = key.and_then(|k| st.idem.get(k)) {
        return if *c == canon {
            let r = json(202, &json!({"jobId": id, "status": "QUEUED"}));
            with_header(r, "idempotent-replayed", "true")
        } else {
            let msg = "Idempotency-Key was already used with a different request body";
            json(
                409,
                &json!({"error": {"code": "idempotency_conflict", "message": msg}}),
            )
        };
    }
    let mk = validate::markers(&g.prompt);
    st.seq += 1;
    let id = uuid::Uuid::new_v4().to_string();
    let webhook = g.webhook_url.clone().map(|url| Webhook {
        url,
        events: g.webhook_events.clone(),
        next_step: 10,
        terminal_emitted: false,
        queue: Default::default(),
        delivered_any: false,
        failed_any: false,
    });
    let hooked = webhook.as_ref().is_some_and(|w| !w.events.is_empty());
    let job = Job {
        seq: st.seq,
        id: id.clone(),
        model: g.model.clone(),
        credit_cost: g.credit_cost(),
        created_ms: now_ms(),
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
    drop(st);
    if hooked {
        webhook::spawn(sh, id.clone());
    }
    json(202, &json!({"jobId": id, "status": "QUEUED"}))
}

fn get_job(sh: &Shared, id: &str) -> Resp {
    let st = sh.lock();
    match st.job(id) {
        Some(j) => json(200, &j.to_json(Instant::now(), sh.port)),
        None => message(404, "Job not found"),
    }
}

fn list_jobs(sh: &Shared, req: &Req) -> Resp {
    let mut status = None;
    let mut model = None;
    let mut limit = 20usize;
    let mut before = u64::MAX;
    for (k, v) in url::form_urlencoded::parse(req.query.as_bytes()) {
        if v.is_empty() {
            continue;
        }
        let bad = |field: &str, must: &str| {
            invalid(&Invalid::new(
                field,
                must,
                &validate::describe(&Value::String(v.to_string())),
            ))
        };
        match k.as_ref() {
            "status" => match Status::parse(&v) {
                Some(s) => status = Some(s),
                None => return bad("status", "be one of QUEUED, PROCESSING, COMPLETED, FAILED"),
            },
            "model" => model = Some(v.into_owned()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => limit = n,
                _ => return bad("limit", "be an integer from 1 to 100"),
            },
            "cursor" => match v
                .strip_prefix(CURSOR_PREFIX)
                .and_then(|s| u64::from_str_radix(s, 16).ok())
            {
                Some(seq) => before = seq,
                None => return bad("cursor", "be a nextCursor value from a previous page"),
            },
            _ => {}
        }
    }
    let now = Instant::now();
    let st = sh.lock();
    let mut page: Vec<&Job> = Vec::new();
    let mut has_more = false;
    let matching = st.jobs.iter().rev().filter(|j| {
        j.seq < before
            && model.as_deref().is_none_or(|m| m == j.model)
            && status.is_none_or(|s| s == j.phase(now).0)
    });
    for j in matching {
        if page.len() == limit {
            has_more = true;
            break;
        }
        page.push(j);
    }
    let next = match page.last() {
        Some(j) if has_more => Value::String(format!("{CURSOR_PREFIX}{:x}", j.seq)),
        _ => Value::Null,
    };
    let jobs: Vec<Value> = page.iter().map(|j| j.to_json(now, sh.port)).collect();
    json(
        200,
        &json!({"jobs": jobs, "nextCursor": next, "hasMore": has_more}),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_body() {
        // Idempotency compares bodies as serde_json prints them: this holds
        // only while its maps stay sorted (a `preserve_order` feature turned
        // on anywhere in the build would break it).
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#" { "a" : { "x":"s", "y":[1, 2] }, "b": 1 } "#).unwrap();
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(a.to_string(), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
    }
}
