//! The events transport: the relay's `text/event-stream` through the
//! platform's `EventSource` (gloo-net's wrapper), which reconnects with
//! `Last-Event-ID` by itself. Runtimes without `EventSource` (Node, Workers)
//! poll instead.
//!
//! With a `token`: an `EventSource` cannot send headers, so each connection
//! first asks the worker for a ticket (`POST …/ticket` with the token) and
//! opens the stream with `?ticket=`. A ticket is good for a minute, so when a
//! stream that worked closes (the platform's own reconnect with the old ticket
//! is refused once it has expired), a new ticket opens a new connection.

use super::http::{request, sleep};
use super::options::Options;
use super::{job_of, value_of, Watcher};
use crate::core::auth::{events_url, ticket_of, ticket_url};
use crate::core::backoff::RequestKind;
use crate::core::{SoraError, Value};
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

/// New connections (each with a new ticket) after a stream that delivered
/// events closed, in one wait; past it, polling.
const MAX_RECONNECTS: u32 = 10;

/// The ticket of the worker's answer, as text.
fn ticket_text(json: &JsValue) -> Result<String, SoraError> {
    ticket_of(&value_of(json).unwrap_or(Value::Null)).map(str::to_string)
}

/// A ticket for the job's stream, by `POST …/ticket` with the token (a
/// request like a status read: retried, and renewed once on an expired
/// token). `None` when the worker has no such route (404): a worker without
/// auth, whose stream needs none.
async fn ticket(
    job_id: &str,
    opts: &Options,
    deadline_at: f64,
) -> Result<Option<String>, SoraError> {
    let answer = request(
        opts,
        RequestKind::Read,
        gloo_net::http::Method::POST,
        &ticket_url(&opts.base_url, job_id),
        None,
        &[],
        Some(deadline_at),
        |json| ticket_text(json).map(drop),
    )
    .await;
    match answer {
        Ok(json) => ticket_text(&json).map(Some),
        Err(e) if e.status == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
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
    let mut reconnects = 0;
    'connect: loop {
        let ticket = match &opts.token {
            None => None,
            Some(_) => match ticket(job_id, opts, deadline_at).await {
                Ok(ticket) => ticket,
                // The reads will meet a passing failure again, and outlive it.
                Err(e) if e.retryable => return StreamEnd::FallBack,
                Err(e) => return StreamEnd::Done(Err(e)),
            },
        };
        let url = events_url(&opts.base_url, job_id, ticket.as_deref());
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
        let mut saw_event = false;
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
                // The source closed: a 404 or a non-stream answer, or it gave
                // up. A stream that worked, with a ticket: a new ticket.
                Woke::Event(None | Some(Err(_))) => {
                    if saw_event && ticket.is_some() && reconnects < MAX_RECONNECTS {
                        reconnects += 1;
                        continue 'connect;
                    }
                    return StreamEnd::FallBack;
                }
                Woke::Event(Some(Ok((_, message)))) => message,
            };
            saw_event = true;
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
}
