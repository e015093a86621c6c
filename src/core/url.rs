//! The URL rules the upstream documents: absolute http(s) for images, https
//! (http only for loopback) for webhooks. A hand parser, because the browser
//! build must not carry a URL crate.

/// The parts of an absolute http(s) URL that the rules look at.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpUrl<'a> {
    /// `http` or `https`, lower-cased by the caller's comparison.
    pub secure: bool,
    /// The host, without port or brackets.
    pub host: &'a str,
}

/// Parses an absolute `http://` or `https://` URL with a host.
///
/// # Errors
/// A short reason, for the message that names the field.
pub fn parse_http_url(text: &str) -> Result<HttpUrl<'_>, &'static str> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    // By hand: `split_once("://")` links the general substring search.
    let at = text
        .as_bytes()
        .windows(3)
        .position(|w| w == b"://")
        .ok_or("must be an absolute http(s) URL")?;
    let (scheme, rest) = (&text[..at], &text[at + 3..]);
    let secure = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return Err("must be an absolute http(s) URL");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed
            .split_once(']')
            .map(|(h, _)| h)
            .ok_or("has a malformed host")?
    } else {
        let (host, port) = host_port.split_once(':').unwrap_or((host_port, ""));
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("has a malformed port");
        }
        host
    };
    if host.is_empty() {
        return Err("must have a host");
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:%".contains(&b))
    {
        return Err("has a malformed host");
    }
    Ok(HttpUrl { secure, host })
}

/// Whether `host` names this machine, where plain http is acceptable.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "::1" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (case name, input, expected (secure, host) or a rejection)
    type UrlCase = (&'static str, &'static str, Option<(bool, &'static str)>);

    #[test]
    fn url_table() {
        let cases: [UrlCase; 14] = [
            (
                "https_plain",
                "https://example.com/a.jpg",
                Some((true, "example.com")),
            ),
            (
                "http_with_port",
                "http://127.0.0.1:8080/x",
                Some((false, "127.0.0.1")),
            ),
            (
                "upper_scheme",
                "HTTPS://Example.com",
                Some((true, "Example.com")),
            ),
            ("ipv6", "http://[::1]:9/x", Some((false, "::1"))),
            (
                "query_only",
                "https://cdn.test?x=1",
                Some((true, "cdn.test")),
            ),
            (
                "userinfo_skipped",
                "https://u:p@host.test/",
                Some((true, "host.test")),
            ),
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
            let got = parse_http_url(text).ok().map(|u| (u.secure, u.host));
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for (host, expected) in [
            ("localhost", true),
            ("127.0.0.1", true),
            ("::1", true),
            ("example.com", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(is_loopback(host), expected, "{host}");
        }
    }
}
