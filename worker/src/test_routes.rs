//! Routes of a test build only (feature `test-routes`; never deployed), for
//! tests/worker/panic.test.mjs:
//!
//! * `POST /api/__test/panic` panics in the fetch handler;
//! * `POST /api/__test/abort` aborts there (a trap with no panic);
//! * `POST /api/__test/panic-object?job=NAME` asks the object of job NAME
//!   (default `panic-test`) for `/panic`, where it panics (relay.rs);
//! * `POST /api/__test/timers-spent` holds timers until the platform refuses
//!   another (workerd: 10,000), then makes one upstream exchange, whose answer
//!   it returns as the client would get it (tests/worker/hardening.test.mjs).
//!
//! Each panic holds a `RefCell` borrowed, as a panic in the middle of real
//! work may: the trapped instance never lets go of it, so only a fresh
//! instance answers the next status read.

use std::cell::RefCell;
use worker::{Env, Result, Url};

/// The panic on a job object's `/panic` (relay.rs): with its record borrowed.
pub fn object_panic<T>(record: &RefCell<T>) -> ! {
    panic_holding(record, "sora-edge test route: a panic in a job object")
}

/// Panics with `message` while `cell` is mutably borrowed.
fn panic_holding<T>(cell: &RefCell<T>, message: &str) -> ! {
    let _held = cell.borrow_mut();
    panic!("{message}")
}

/// The answer to a test route; `None` for every other request.
pub async fn route(req: &web_sys::Request, env: &Env) -> Option<Result<web_sys::Response>> {
    if req.method() != "POST" {
        return None;
    }
    let url = Url::parse(&req.url()).ok()?;
    match url.path() {
        "/api/__test/panic" => crate::RECENT.with(|recent| {
            panic_holding(recent, "sora-edge test route: a panic in the fetch handler")
        }),
        // A trap that is no panic (as an allocation failure aborts): no panic hook runs.
        "/api/__test/abort" => std::process::abort(),
        "/api/__test/panic-object" => {
            let job = url
                .query_pairs()
                .find(|(name, _)| name == "job")
                .map_or_else(|| "panic-test".to_string(), |(_, v)| v.into_owned());
            Some(panic_object(env, &job).await)
        }
        "/api/__test/timers-spent" => Some(timers_spent(env).await),
        _ => None,
    }
}

/// An upstream exchange made when no timer is left for its timeout.
async fn timers_spent(env: &Env) -> Result<web_sys::Response> {
    const MOST: u32 = 100_000;
    let held = (0..MOST)
        .map_while(|_| crate::upstream::abort_signal_timeout(60_000).ok())
        .count();
    let config = crate::read_config(env);
    let answer =
        crate::upstream::exchange(env, &config, worker::Method::Get, "/v2/me", &[], None).await;
    let reply = match answer {
        Ok(a) => sora_edge::edge::reply::Reply::error(a.status, "test", "the exchange was sent"),
        Err(reply) => reply,
    };
    let res = crate::respond::respond_raw(reply, &[])?;
    res.headers().set("x-timers-held", &held.to_string())?;
    Ok(res)
}

/// Job `job`'s object's answer to `/panic` (named as `relay::RelayCall` names it).
async fn panic_object(env: &Env, job: &str) -> Result<web_sys::Response> {
    let stub = env
        .durable_object("JOBS")?
        .id_from_name(&job.to_ascii_lowercase())?
        .get_stub()?;
    Ok(stub
        .fetch_with_str("https://relay.internal/panic")
        .await?
        .into())
}
