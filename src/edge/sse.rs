//! The frames of `GET /api/v2/jobs/{id}/events` (docs/ARCHITECTURE.md,
//! "Relay events stream"): a `retry` hint, then `id` + `event: job` + one
//! `data` line per change, and heartbeat comments.

/// The first bytes of every stream: the client's reconnection delay.
pub const PREAMBLE: &str = "retry: 2000\n\n";

/// A comment line that keeps idle connections open.
pub const HEARTBEAT: &str = ": heartbeat\n\n";

/// A comment written to streams to learn whether their clients are still there.
pub const PROBE: &str = ": probe\n\n";

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

    #[test]
    fn frames_have_one_data_line_per_line() {
        let job = r#"{"id":"j","status":"PROCESSING","progress":40}"#;
        assert_eq!(
            event_frame(3, job),
            format!("id: 3\nevent: job\ndata: {job}\n\n")
        );
        assert_eq!(
            event_frame(7, "{\"a\":1}\r\n{\"b\":2}"),
            "id: 7\nevent: job\ndata: {\"a\":1}\ndata: {\"b\":2}\n\n",
            "raw line breaks become data lines, never a blank line that ends the frame"
        );
        assert!(PREAMBLE.ends_with("\n\n") && HEARTBEAT.starts_with(':'));
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
