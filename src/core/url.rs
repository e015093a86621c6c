//! The URL rules, written once: absolute http(s) for images and for the
//! result URLs a caller receives, https (plain http only for loopback) for
//! webhooks. The parsing is the platform's (`core::platform`); these are the
//! rules on top of it.

use super::platform::parse_url;

/// What the rules need to know about an absolute http(s) URL.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https:` rather than `http:`.
    pub secure: bool,
    /// The host names this machine, where plain http is acceptable.
    pub loopback: bool,
}

/// Checks that `text` is an absolute `http://` or `https://` URL with a host.
///
/// # Errors
/// A short reason, for the message that names the field.
pub fn parse_http_url(text: &str) -> Result<HttpUrl, &'static str> {
    // WHATWG parsing forgives what a caller should not send: it strips
    // spaces and tabs, and reads `https:///a` as `https://a/`.
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    // By bytes: `find("://")` links the general substring search.
    let after_scheme = text
        .as_bytes()
        .windows(3)
        .position(|w| w == b"://")
        .map(|at| &text[at + 3..]);
    let url = parse_url(text).ok_or("must be an absolute http(s) URL")?;
    let secure = match url.protocol.as_str() {
        "https:" => true,
        "http:" => false,
        _ => return Err("must be an absolute http(s) URL"),
    };
    match after_scheme {
        None => return Err("must be an absolute http(s) URL"),
        Some(rest) if rest.starts_with('/') || url.hostname.is_empty() => {
            return Err("must have a host")
        }
        Some(_) => {}
    }
    Ok(HttpUrl {
        secure,
        loopback: is_loopback(&url.hostname),
    })
}

/// Whether `host` (as `URL.hostname` gives it) names this machine.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "[::1]" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (case name, input, expected (secure, loopback) or a rejection)
    type UrlCase = (&'static str, &'static str, Option<(bool, bool)>);

    #[test]
    fn url_table() {
        let cases: [UrlCase; 15] = [
            (
                "https_plain",
                "https://example.com/a.jpg",
                Some((true, false)),
            ),
            (
                "http_with_port",
                "http://127.0.0.1:8080/x",
                Some((false, true)),
            ),
            ("upper_scheme", "HTTPS://Example.com", Some((true, false))),
            ("ipv6_loopback", "http://[::1]:9/x", Some((false, true))),
            ("localhost", "http://localhost:8787/h", Some((false, true))),
            ("query_only", "https://cdn.test?x=1", Some((true, false))),
            ("userinfo", "https://u:p@host.test/", Some((true, false))),
            ("relative", "/images/a.jpg", None),
            ("protocol_relative", "//example.com/a.jpg", None),
            ("javascript", "javascript:alert(1)", None),
            ("data", "data:image/png;base64,AAAA", None),
            ("ftp", "ftp://example.com/a", None),
            ("no_host", "https:///a", None),
            ("space", "https://exa mple.com", None),
            ("bad_port", "https://example.com:80a/", None),
        ];
        for (name, text, expected) in cases {
            let got = parse_http_url(text).ok().map(|u| (u.secure, u.loopback));
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for (host, expected) in [
            ("localhost", true),
            ("127.0.0.1", true),
            ("[::1]", true),
            ("example.com", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(is_loopback(host), expected, "{host}");
        }
    }
}
