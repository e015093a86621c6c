//! The `/__sim/*` control API: stats, config, queued faults, reset, health.

use hyper::Method;
use serde_json::{json, Map, Value};

use crate::http::{invalid, json, message, Req, Resp};
use crate::shared::Shared;
use crate::state::{State, FAULTS, FAULT_ROUTES};
use crate::validate::{describe, Invalid};

pub fn handle(sh: &Shared, req: &Req) -> Resp {
    let (get, post) = (req.method == Method::GET, req.method == Method::POST);
    match req.path.as_str() {
        "/__sim/stats" if get => json(200, &sh.lock().stats.to_json()),
        "/__sim/health" if get => json(200, &json!({"ok": true, "port": sh.port})),
        "/__sim/reset" if post => {
            let mut st = sh.lock();
            *st = State::new(sh.flags.clone());
            // Under the lock, so that a webhook task sees the new state and
            // the new generation together.
            sh.generation.send_modify(|g| *g += 1);
            json(200, &json!({"ok": true}))
        }
        "/__sim/config" if get => json(200, &sh.lock().cfg.to_json()),
        "/__sim/config" if post => match post_config(sh, &req.body) {
            Ok(v) => json(200, &v),
            Err(e) => invalid(&e),
        },
        "/__sim/faults" if get => {
            let st = sh.lock();
            let q: Vec<Value> = st
                .faults
                .iter()
                .map(|(r, f)| json!({"route": r, "fault": f}))
                .collect();
            json(200, &json!({ "queued": q }))
        }
        "/__sim/faults" if post => match post_faults(sh, &req.body) {
            Ok(v) => json(200, &v),
            Err(e) => invalid(&e),
        },
        "/__sim/stats" | "/__sim/health" | "/__sim/reset" | "/__sim/config" | "/__sim/faults" => {
            message(405, "Method not allowed")
        }
        _ => message(404, "Not found"),
    }
}

/// An empty body counts as `{}`.
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Invalid> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Invalid::new("body", "be a JSON object", &describe(&other))),
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
        return Err(Invalid::new(field, &must, &describe(v)));
    };
    items
        .iter()
        .map(|it| {
            let name = match it {
                Value::String(s) => s.to_ascii_lowercase(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            if FAULTS.contains(&name.as_str()) {
                Ok(name)
            } else {
                Err(Invalid::new(field, &must, &describe(it)))
            }
        })
        .collect()
}

fn post_config(sh: &Shared, body: &[u8]) -> Result<Value, Invalid> {
    let m = parse_body(body)?;
    let mut st = sh.lock();
    let mut cfg = st.cfg.clone();
    let u64_of = |k: &str, v: &Value| {
        v.as_u64()
            .ok_or_else(|| Invalid::new(k, "be a non-negative integer", &describe(v)))
    };
    for (k, v) in &m {
        match k.as_str() {
            "jobMs" => cfg.job_ms = u64_of(k, v)?,
            "webhookRetryMs" => cfg.webhook_retry_ms = u64_of(k, v)?,
            "seed" => cfg.seed = u64_of(k, v)?,
            "resultShape" => {
                cfg.object_shape = match v.as_str() {
                    Some("object") => true,
                    Some("string") => false,
                    _ => {
                        let must = "be \"string\" or \"object\"";
                        return Err(Invalid::new(k, must, &describe(v)));
                    }
                }
            }
            "dropWebhooks" => {
                cfg.drop_webhooks = v
                    .as_bool()
                    .ok_or_else(|| Invalid::new(k, "be a boolean", &describe(v)))?
            }
            "faultRate" => match v.as_f64() {
                Some(r) if (0.0..=1.0).contains(&r) => cfg.fault_rate = r,
                _ => return Err(Invalid::new(k, "be a number from 0 to 1", &describe(v))),
            },
            "faultSet" => cfg.fault_set = fault_list(k, v)?,
            _ => {} // unknown keys are ignored
        }
    }
    if m.contains_key("seed") {
        st.rng = fastrand::Rng::with_seed(cfg.seed);
    }
    st.cfg = cfg;
    Ok(st.cfg.to_json())
}

fn post_faults(sh: &Shared, body: &[u8]) -> Result<Value, Invalid> {
    let m = parse_body(body)?;
    let route = match m.get("route") {
        None | Some(Value::Null) => "any".to_string(),
        Some(Value::String(r)) if FAULT_ROUTES.contains(&r.as_str()) => r.clone(),
        Some(other) => {
            let must = "be \"generate\", \"job\", \"jobs\", \"me\" or \"any\"";
            return Err(Invalid::new("route", must, &describe(other)));
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
    st.faults
        .extend(faults.into_iter().map(|f| (route.clone(), f)));
    Ok(json!({ "queued": st.faults.len() }))
}
