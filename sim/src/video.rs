//! `GET /videos/sample.mp4` (and HEAD): the committed MP4, with single byte
//! ranges.

use hyper::Method;

use crate::http::{message, respond, with_header, Req, Resp};
use crate::shared::Shared;

/// The one video this simulator serves (every completed job's result).
pub const VIDEO_PATH: &str = "/videos/sample.mp4";

/// `bytes=a-b`, `bytes=a-`, `bytes=-n`. `None`: ignore the header (serve
/// 200); `Some(Err(()))`: 416.
///
/// Kept by hand (a dozen lines) because it follows RFC 9110 section 14 where
/// the `http-range-header` crate does not: a suffix longer than the file
/// selects all of it, and an invalid spec such as `bytes=5-1` is ignored;
/// that crate answers "unsatisfiable" to both.
pub fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // multiple ranges: serve the whole file
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(n), len - 1)));
    }
    let start: u64 = a.parse().ok()?;
    let end = match b {
        "" => len.saturating_sub(1),
        b => match b.parse::<u64>().ok()? {
            e if e < start => return None,
            e => e.min(len.saturating_sub(1)),
        },
    };
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

pub fn serve(sh: &Shared, req: &Req) -> Resp {
    if req.method != Method::GET && req.method != Method::HEAD {
        return with_header(
            message(405, "Method not allowed"),
            "allow",
            "GET, HEAD, OPTIONS",
        );
    }
    let len = sh.mp4.len() as u64;
    let base = [("accept-ranges", "bytes"), ("cache-control", "no-cache")];
    let video = [("content-type", "video/mp4"), base[0], base[1]];
    match req.header("range").and_then(|r| parse_range(r, len)) {
        None => respond(200, &video, sh.mp4.clone()),
        Some(Ok((a, b))) => {
            let r = respond(206, &video, sh.mp4.slice(a as usize..=b as usize));
            with_header(r, "content-range", &format!("bytes {a}-{b}/{len}"))
        }
        Some(Err(())) => {
            let r = respond(416, &base, bytes::Bytes::new());
            with_header(r, "content-range", &format!("bytes */{len}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=-5000", 1000), Some(Ok((0, 999))));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some(Ok((990, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
        assert_eq!(parse_range("bytes=x-y", 1000), None);
    }
}
