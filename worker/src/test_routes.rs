//! Routes of a test build only (feature `test-routes`; never deployed), for
//! tests/worker/panic.test.mjs:
//!
//! * `POST /api/__test/panic` panics in the fetch handler;
//! * `POST /api/__test/abort` aborts there (a trap with no panic);
//! * `POST /api/__test/panic-object?job=NAME` asks the object of job NAME
//!   (default `panic-test`) for `/panic`, where it panics (relay.rs).
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
        _ => None,
    }
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
