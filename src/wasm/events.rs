//! The events transport: the relay's `text/event-stream` through the
//! platform's `EventSource` (gloo-net's wrapper), which reconnects with
//! `Last-Event-ID` by itself. Runtimes without `EventSource` (Node, Workers)
//! poll instead.

use super::http::sleep;
use super::options::Options;
use super::{job_of, Watcher};
use crate::core::SoraError;
use futures_core::Stream;
use gloo_net::eventsource::futures::EventSource;
use js_sys::{Date, Reflect, JSON};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use wasm_bindgen::JsValue;

/// How an attempt to follow the events stream ended.
pub enum StreamEnd {
    /// The job ended (or the wait must end: aborted, deadline).
    Done(Result<JsValue, SoraError>),
    /// No `EventSource` here, no events endpoint there, or the stream
    /// closed for good: poll.
    FallBack,
}

/// Whether the runtime has `EventSource` (browsers do; Node 20 and workerd don't).
pub fn available() -> bool {
    Reflect::has(&js_sys::global(), &"EventSource".into()).unwrap_or(false)
}

/// What woke the wait: the stream, or the deadline timer (or the caller's abort).
enum Woke<T> {
    Event(Option<T>),
    Timer(Result<(), SoraError>),
}

/// Follows the job's events until it ends or the stream is unavailable.
pub async fn follow(
    job_id: &str,
    opts: &Options,
    deadline_at: f64,
    watcher: &mut Watcher<'_>,
) -> StreamEnd {
    if !available() {
        return StreamEnd::FallBack;
    }
    let url = [&opts.base_url, "/v2/jobs/", job_id, "/events"].concat();
    let Ok(mut source) = EventSource::new(&url) else {
        return StreamEnd::FallBack;
    };
    let Ok(events) = source.subscribe("job") else {
        return StreamEnd::FallBack;
    };
    let mut events = pin!(events);
    let mut timer = pin!(sleep(
        (deadline_at - Date::now()).max(0.0),
        opts.signal.as_ref()
    ));
    loop {
        let woke = poll_fn(|cx| {
            if let Poll::Ready(event) = events.as_mut().poll_next(cx) {
                return Poll::Ready(Woke::Event(event));
            }
            timer.as_mut().poll(cx).map(Woke::Timer)
        })
        .await;
        let message = match woke {
            Woke::Timer(Err(e)) => return StreamEnd::Done(Err(e)),
            Woke::Timer(Ok(())) => return StreamEnd::Done(Err(watcher.deadline_error())),
            // The source closed: a 404 or a non-stream answer, or it gave up.
            Woke::Event(None | Some(Err(_))) => return StreamEnd::FallBack,
            Woke::Event(Some(Ok((_, message)))) => message,
        };
        // A malformed event is skipped: the next one, or polling, will tell.
        let Some(raw) = message
            .data()
            .as_string()
            .and_then(|data| JSON::parse(&data).ok())
        else {
            continue;
        };
        let job = match job_of(&raw) {
            Ok(job) => job,
            // An unsafe result URL ends the wait as a status read would.
            Err(e) if !e.retryable => return StreamEnd::Done(Err(e)),
            Err(_) => continue,
        };
        if let Some(outcome) = watcher.see(&job, &raw) {
            return StreamEnd::Done(outcome);
        }
    }
}
