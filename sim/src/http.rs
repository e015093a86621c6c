//! A minimal HTTP/1.1 server side: request parsing (Content-Length and chunked
//! bodies, keep-alive) and response writing. Written by hand so that faults
//! (reset, hang, truncated bodies) can be injected at the socket level.

use std::io::{self, BufRead, Write};

pub const MAX_LINE: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 100;
pub const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string without the `?` (may be empty).
    pub query: String,
    pub http11: bool,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn keep_alive(&self) -> bool {
        let conn = self
            .header("connection")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_default();
        if self.http11 {
            !conn.split(',').any(|t| t.trim() == "close")
        } else {
            conn.split(',').any(|t| t.trim() == "keep-alive")
        }
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// Malformed request: answer 400 and close.
    Bad(String),
    /// Body or headers too large: answer 413/431 and close.
    TooLarge(u16),
    /// Socket error or EOF in the middle of a request: just close.
    Io,
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

/// Read one line ending in `\n` (the `\r\n` or `\n` is stripped). `Ok(None)` on
/// EOF before any byte.
fn read_line<R: BufRead>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, ReadError> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(ReadError::Io)
            };
        }
        if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buf[..pos]);
            r.consume(pos + 1);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > max {
                return Err(ReadError::TooLarge(431));
            }
            return Ok(Some(line));
        }
        let n = buf.len();
        line.extend_from_slice(buf);
        r.consume(n);
        if line.len() > max {
            return Err(ReadError::TooLarge(431));
        }
    }
}

/// Read one request. `Ok(None)` when the peer closed the connection cleanly
/// between requests. `w` receives `100 Continue` when the client sent
/// `Expect: 100-continue` (curl does for bodies over 1 KB).
pub fn read_request<R: BufRead>(
    r: &mut R,
    w: &mut dyn Write,
) -> Result<Option<Request>, ReadError> {
    // Tolerate stray empty lines before a request line (RFC 9112 2.2).
    let line = loop {
        match read_line(r, MAX_LINE)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let line =
        String::from_utf8(line).map_err(|_| ReadError::Bad("request line is not UTF-8".into()))?;
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
        _ => return Err(ReadError::Bad("malformed request line".into())),
    };
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReadError::Bad("malformed method".into()));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ReadError::Bad("unsupported HTTP version".into())),
    };
    // Absolute-form targets: keep only the path.
    let mut target = target;
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        target = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };

    let mut headers = Vec::new();
    loop {
        let l = match read_line(r, MAX_LINE)? {
            None => return Err(ReadError::Io),
            Some(l) => l,
        };
        if l.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ReadError::TooLarge(431));
        }
        let l = String::from_utf8_lossy(&l).into_owned();
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| ReadError::Bad("malformed header line".into()))?;
        if k.is_empty() || k.contains(' ') || k.contains('\t') {
            return Err(ReadError::Bad("malformed header name".into()));
        }
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path,
        query,
        http11,
        headers,
        body: Vec::new(),
    };

    let chunked = req
        .header("transfer-encoding")
        .map(|v| v.to_ascii_lowercase().contains("chunked"))
        .unwrap_or(false);
    let has_body = chunked
        || req
            .header("content-length")
            .is_some_and(|v| v.trim() != "0");
    if has_body
        && req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    if chunked {
        req.body = read_chunked(r)?;
    } else if let Some(cl) = req.header("content-length") {
        let n: usize = cl
            .trim()
            .parse()
            .map_err(|_| ReadError::Bad("bad Content-Length".into()))?;
        if n > MAX_BODY {
            return Err(ReadError::TooLarge(413));
        }
        let mut body = vec![0u8; n];
        r.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r, MAX_LINE)?.ok_or(ReadError::Io)?;
        let line = String::from_utf8_lossy(&line).into_owned();
        let size_str = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| ReadError::Bad("bad chunk size".into()))?;
        if size == 0 {
            // Trailers until an empty line.
            loop {
                match read_line(r, MAX_LINE)? {
                    None => return Err(ReadError::Io),
                    Some(l) if l.is_empty() => return Ok(body),
                    Some(_) => {}
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(ReadError::TooLarge(413));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let crlf = read_line(r, 2)?.ok_or(ReadError::Io)?;
        if !crlf.is_empty() {
            return Err(ReadError::Bad("missing CRLF after chunk".into()));
        }
    }
}

/// What the connection does after the handler returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write the response.
    Respond,
    /// Write nothing; close with a TCP RST.
    Reset,
    /// Write nothing; hold the connection open (120 s or until the peer leaves).
    Hang,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub action: Action,
    /// Force `Connection: close` after this response.
    pub close: bool,
    /// Short note for the request log (fault name etc.).
    pub note: String,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            action: Action::Respond,
            close: false,
            note: String::new(),
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response::raw_json(status, v.to_string().into_bytes())
    }

    pub fn raw_json(status: u16, body: Vec<u8>) -> Response {
        let mut r = Response::new(status);
        r.headers
            .push(("Content-Type".into(), "application/json".into()));
        r.body = body;
        r
    }

    pub fn with_action(action: Action) -> Response {
        let mut r = Response::new(0);
        r.action = action;
        r
    }

    pub fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Serialise a response. `head_only` keeps `Content-Length` but omits the body.
pub fn write_response<W: Write>(
    w: &mut W,
    resp: &Response,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    out.extend_from_slice(
        format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).as_bytes(),
    );
    for (k, v) in &resp.headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "Date: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            crate::util::http_date(crate::util::now_ms() / 1000),
            resp.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        )
        .as_bytes(),
    );
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn parse(s: &[u8]) -> Result<Option<Request>, ReadError> {
        read_request(
            &mut BufReader::new(Cursor::new(s.to_vec())),
            &mut io::sink(),
        )
    }

    #[test]
    fn parses_content_length_and_keepalive() {
        let raw = b"POST /v2/videos/generate?x=1 HTTP/1.1\r\nHost: a\r\nX-API-Key: k\r\nContent-Length: 4\r\n\r\nabcdGET / HTTP/1.1\r\n\r\n";
        let mut r = BufReader::new(Cursor::new(raw.to_vec()));
        let a = read_request(&mut r, &mut io::sink()).unwrap().unwrap();
        assert_eq!(a.method, "POST");
        assert_eq!(a.path, "/v2/videos/generate");
        assert_eq!(a.query, "x=1");
        assert_eq!(a.header("x-api-key"), Some("k"));
        assert_eq!(a.body, b"abcd");
        assert!(a.keep_alive());
        let b = read_request(&mut r, &mut io::sink()).unwrap().unwrap();
        assert_eq!(b.path, "/");
        assert!(read_request(&mut r, &mut io::sink()).unwrap().is_none());
    }

    #[test]
    fn parses_chunked() {
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n";
        let a = parse(raw).unwrap().unwrap();
        assert_eq!(a.body, b"abcde");
        assert!(!a.keep_alive());
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            parse(b"\x00\x01\x02 garbage\r\n\r\n"),
            Err(ReadError::Bad(_))
        ));
        assert!(matches!(parse(b"GET\r\n\r\n"), Err(ReadError::Bad(_))));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: zz\r\n\r\n"),
            Err(ReadError::Bad(_))
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost"),
            Err(ReadError::Io)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n"),
            Err(ReadError::TooLarge(413))
        ));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE + 10));
        assert!(matches!(
            parse(long.as_bytes()),
            Err(ReadError::TooLarge(431))
        ));
    }

    #[test]
    fn http10_defaults_to_close() {
        let a = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!a.keep_alive());
        let b = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(b.keep_alive());
    }
}
