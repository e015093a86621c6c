//! The frames of `GET /api/v2/jobs/{id}/events` (docs/ARCHITECTURE.md,
//! "Relay events stream"): a `retry` hint, then `id` + `event: job` + one
//! `data` line per change, and heartbeat comments.

/// The first bytes of every stream: the client's reconnection delay.
pub const PREAMBLE: &str = "retry: 2000\n\n";

/// A comment line that keeps idle connections open.
pub const HEARTBEAT: &str = ": heartbeat\n\n";

/// Milliseconds between heartbeats.
pub const HEARTBEAT_MS: u64 = 15_000;

/// One job event. `job_json` is one line already (the JSON writer escapes
/// newlines), but any raw line break is split into `data` lines anyway, so
/// a frame can never end early or smuggle a field.
pub fn event_frame(seq: u64, job_json: &str) -> String {
    let mut out = format!("id: {seq}\nevent: job\n");
    for line in job_json.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Whether a (re)connecting subscriber gets the current state (sequence
/// `seq`): always without `Last-Event-ID` or with an unreadable one,
/// otherwise only when it is newer than what the subscriber saw.
pub fn should_send(last_event_id: Option<&str>, seq: u64) -> bool {
    match last_event_id
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse::<u64>)
    {
        Some(Ok(seen)) => seq > seen,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sse::SseParser;

    #[test]
    fn frames_parse_back_with_the_client_parser() {
        let job = r#"{"id":"j","status":"PROCESSING","progress":40}"#;
        let mut parser = SseParser::new();
        let mut text = String::from(PREAMBLE);
        text.push_str(&event_frame(3, job));
        text.push_str(HEARTBEAT);
        text.push_str(&event_frame(7, "{\"a\":1}\r\n{\"b\":2}"));
        let events = parser.feed(&text);
        assert_eq!(events.len(), 2);
        assert_eq!(
            (
                events[0].event.as_str(),
                events[0].data.as_str(),
                events[0].id.as_deref()
            ),
            ("job", job, Some("3"))
        );
        assert_eq!(
            events[1].data, "{\"a\":1}\n{\"b\":2}",
            "raw line breaks become data lines"
        );
        assert_eq!(parser.last_event_id(), Some("7"));
    }

    #[test]
    fn resume_table() {
        let cases = [
            (None, 5, true),
            (Some(""), 5, true),
            (Some("garbage"), 5, true),
            (Some("4"), 5, true),
            (Some("5"), 5, false),
            (Some("9"), 5, false),
            (Some(" 4 "), 5, true),
        ];
        for (last, seq, send) in cases {
            assert_eq!(should_send(last, seq), send, "{last:?}");
        }
    }
}
