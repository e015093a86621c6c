//! A server-sent-events parser that is fed text in arbitrary chunks, so the
//! events transport needs no `EventSource` and runs the same in Node,
//! browsers and workerd. Follows the WHATWG event-stream rules.

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// The last event id seen on the stream, if any.
    pub id: Option<String>,
    /// The reconnection delay in effect: the last `retry:` seen on the stream,
    /// even one sent in a block of its own (as the relay's first block is).
    pub retry_ms: Option<u64>,
}

/// Incremental parser state.
#[derive(Clone, Debug, Default)]
pub struct SseParser {
    pending: String,
    seen_first_chunk: bool,
    skip_lf: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds the next chunk and returns the events it completed.
    pub fn feed(&mut self, chunk: &str) -> Vec<SseEvent> {
        let mut chunk = chunk;
        if !self.seen_first_chunk && !chunk.is_empty() {
            self.seen_first_chunk = true;
            chunk = chunk.strip_prefix('\u{FEFF}').unwrap_or(chunk);
        }
        let mut events = Vec::new();
        for c in chunk.chars() {
            if self.skip_lf {
                self.skip_lf = false;
                if c == '\n' {
                    continue;
                }
            }
            match c {
                '\r' | '\n' => {
                    self.skip_lf = c == '\r';
                    let line = std::mem::take(&mut self.pending);
                    if let Some(event) = self.line(&line) {
                        events.push(event);
                    }
                }
                c => self.pending.push(c),
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = super::json::parse_u64(value);
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let retry_ms = self.retry_ms;
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
            id: self.last_id.clone(),
            retry_ms,
        })
    }

    /// The id to send as `Last-Event-ID` when reconnecting.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&str]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        chunks.iter().flat_map(|c| parser.feed(c)).collect()
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
            retry_ms: None,
        }
    }

    #[test]
    fn stream_table() {
        let cases: [(&str, Vec<&str>, Vec<SseEvent>); 9] = [
            (
                "simple",
                vec!["data: hi\n\n"],
                vec![ev("message", "hi", None)],
            ),
            (
                "named_with_id",
                vec!["id: 3\nevent: job\ndata: {}\n\n"],
                vec![ev("job", "{}", Some("3"))],
            ),
            (
                "multiline_data",
                vec!["data: a\ndata: b\n\n"],
                vec![ev("message", "a\nb", None)],
            ),
            (
                "crlf",
                vec!["data: x\r\n\r\n"],
                vec![ev("message", "x", None)],
            ),
            (
                "cr_only",
                vec!["data: x\r\r"],
                vec![ev("message", "x", None)],
            ),
            (
                "split_everywhere",
                vec!["da", "ta: he", "llo\r", "\n", "\r\n"],
                vec![ev("message", "hello", None)],
            ),
            (
                "comments_are_heartbeats",
                vec![": ping\n\n: ping\n\n"],
                vec![],
            ),
            ("no_data_no_event", vec!["event: x\n\n"], vec![]),
            (
                "bom_and_no_space",
                vec!["\u{FEFF}data:v\n\n"],
                vec![ev("message", "v", None)],
            ),
        ];
        for (name, chunks, expected) in cases {
            assert_eq!(all(&chunks), expected, "{name}");
        }
    }

    #[test]
    fn id_persists_and_retry_is_read() {
        let mut parser = SseParser::new();
        // The relay opens with a `retry:` block of its own; a bad value is ignored.
        let events = parser
            .feed("retry: 2500\n\nid: 7\ndata: a\n\ndata: b\n\nretry: x\nretry: 900\ndata: c\n\n");
        assert_eq!(
            events.iter().map(|e| e.id.as_deref()).collect::<Vec<_>>(),
            [Some("7"); 3]
        );
        assert_eq!(
            events.iter().map(|e| e.retry_ms).collect::<Vec<_>>(),
            [Some(2500), Some(2500), Some(900)]
        );
        assert_eq!(parser.last_event_id(), Some("7"));
    }

    #[test]
    fn unterminated_event_is_not_dispatched() {
        assert!(all(&["data: partial\n"]).is_empty());
    }
}
