//! The events transport: the relay's `text/event-stream`, read through
//! `fetch` and parsed by `core::sse`, so it needs no `EventSource` and works
//! in Node, browsers and workerd alike.

use super::http::{sleep, timeout_until, Exchange};
use super::js::TextDecoder;
use super::options::Options;
use super::Watcher;
use crate::core::sse::SseParser;
use crate::core::{ErrorCode, Job, Json, SoraError};
use js_sys::{Date, Object, Reflect};
use wasm_bindgen::JsValue;

/// The relay sends a heartbeat every 15 s; silence this long means a dead stream.
const IDLE_MS: f64 = 45_000.0;
/// Reconnects (with `Last-Event-ID`) before falling back to polling.
const MAX_RECONNECTS: u32 = 2;

/// How an attempt to follow the events stream ended.
pub enum StreamEnd {
    /// The job ended (or the wait must end: aborted, deadline).
    Done(Result<JsValue, SoraError>),
    /// The server has no events endpoint, or the stream kept breaking: poll.
    FallBack,
}

/// Follows the job's events until it ends, the stream is unavailable, or it
/// breaks more than [`MAX_RECONNECTS`] times.
pub async fn follow(
    job_id: &str,
    opts: &Options,
    deadline_at: f64,
    watcher: &mut Watcher<'_>,
) -> StreamEnd {
    let url = [&opts.base_url, "/v2/jobs/", job_id, "/events"].concat();
    let mut parser = SseParser::new();
    let mut reconnect_ms = 1_000.0;
    for _ in 0..=MAX_RECONNECTS {
        match read_stream(
            &url,
            opts,
            deadline_at,
            &mut parser,
            &mut reconnect_ms,
            watcher,
        )
        .await
        {
            Some(end) => return end,
            None => {
                if let Err(e) = sleep(
                    reconnect_ms.min((deadline_at - Date::now()).max(0.0)),
                    opts.signal.as_ref(),
                )
                .await
                {
                    return StreamEnd::Done(Err(e));
                }
            }
        }
    }
    StreamEnd::FallBack
}

/// One connection. `None` when it broke and a reconnect may help.
async fn read_stream(
    url: &str,
    opts: &Options,
    deadline_at: f64,
    parser: &mut SseParser,
    reconnect_ms: &mut f64,
    watcher: &mut Watcher<'_>,
) -> Option<StreamEnd> {
    let last_id = parser.last_event_id().map(str::to_string);
    let mut headers = vec![("Accept", "text/event-stream")];
    if let Some(id) = &last_id {
        headers.push(("Last-Event-ID", id));
    }
    // The deadline error is built only when needed: no `SoraError` clone.
    let stop = |e: SoraError, watcher: &Watcher<'_>| match e.code {
        ErrorCode::Aborted => Some(StreamEnd::Done(Err(e))),
        _ if Date::now() >= deadline_at => Some(StreamEnd::Done(Err(watcher.deadline_error()))),
        _ => None,
    };
    let (mut exchange, response) = match Exchange::send(
        opts,
        "GET",
        url,
        None,
        &headers,
        timeout_until(opts, Some(deadline_at)),
    )
    .await
    {
        Ok(sent) => sent,
        Err(failure) => return stop(failure.error, watcher),
    };
    let status = response.status();
    let is_stream = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("text/event-stream"));
    if matches!(status, 404 | 405 | 501) || ((200..300).contains(&status) && !is_stream) {
        return Some(StreamEnd::FallBack);
    }
    let body = response.body().filter(|_| (200..300).contains(&status))?;
    let reader = body.get_reader();
    let decoder = TextDecoder::new();
    let stream_option = Object::new();
    let _ = Reflect::set(&stream_option, &"stream".into(), &true.into());
    loop {
        exchange.rearm(IDLE_MS.min((deadline_at - Date::now()).max(0.0)));
        let chunk = match exchange.wait(reader.read()).await {
            Ok(chunk) => chunk,
            Err(failure) => return stop(failure.error, watcher),
        };
        if Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true)
        {
            return None;
        }
        let value = Reflect::get(&chunk, &"value".into()).unwrap_or(JsValue::UNDEFINED);
        for event in parser.feed(&decoder.decode(&value, &stream_option)) {
            if let Some(ms) = event.retry_ms {
                *reconnect_ms = ms as f64;
            }
            if event.event != "job" && event.event != "message" {
                continue;
            }
            // A malformed event is skipped: the next one, or polling, will tell.
            let Some(job) = Json::parse(&event.data)
                .ok()
                .and_then(|j| Job::from_json(&j).ok())
            else {
                continue;
            };
            if let Some(outcome) = watcher.see(&job, &event.data) {
                return Some(StreamEnd::Done(outcome));
            }
        }
    }
}
