//! What the runtime already parses: URLs, HTTP dates and number text, and
//! how it prints numbers, base64 and %-decoding. In wasm these are the
//! platform's own `URL`, `Date.parse`, `Number()`, `String(n)`, `btoa` and
//! `unescape` (nothing re-implemented, nothing linked); on the host, where
//! the tests run, the `url`, `httpdate`, `base64` and `percent-encoding`
//! crates and Rust's formatting. The rules that use them (`core::url`,
//! `core::http`, `core::job`, `core::redact`) are written once, over these.

/// The parts of a parsed URL that the rules look at, as WHATWG `URL` gives them.
#[derive(Debug, PartialEq, Eq)]
pub struct UrlParts {
    /// The scheme with its colon, lower-cased: `"https:"`.
    pub protocol: String,
    /// The host without the port; IPv6 in brackets: `"[::1]"`.
    pub hostname: String,
}

pub use imp::{
    base64, encode_component, number_text, parse_http_date_ms, parse_number, parse_url,
    parse_url_with_base, percent_decode,
};

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::UrlParts;
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(catch, js_name = btoa)]
        fn js_btoa(binary: &str) -> Result<String, JsValue>;
    }

    /// `new URL(text)`, `None` when it throws.
    pub fn parse_url(text: &str) -> Option<UrlParts> {
        let url = web_sys::Url::new(text).ok()?;
        Some(UrlParts {
            protocol: url.protocol(),
            hostname: url.hostname(),
        })
    }

    /// `new URL(text, base)`: `text` resolved as `fetch` resolves a relative
    /// URL; `None` when it throws.
    pub fn parse_url_with_base(text: &str, base: &str) -> Option<UrlParts> {
        let url = web_sys::Url::new_with_base(text, base).ok()?;
        Some(UrlParts {
            protocol: url.protocol(),
            hostname: url.hostname(),
        })
    }

    /// `encodeURIComponent(text)`.
    pub fn encode_component(text: &str) -> String {
        js_sys::encode_uri_component(text).into()
    }

    /// `Date.parse(text)` in Unix epoch milliseconds, `None` for NaN.
    pub fn parse_http_date_ms(text: &str) -> Option<f64> {
        Some(js_sys::Date::parse(text)).filter(|ms| !ms.is_nan())
    }

    /// `String(n)`. Rust's float formatting (`<f64 as Display>`, flt2dec,
    /// bignum: 8.4 KB raw) would be linked for error messages only; see
    /// `wasm::value_of` for what it measured. Every number in a message goes
    /// through here, integers too: their `to_string` measured 129 B gzip more.
    pub fn number_text(n: f64) -> String {
        js_sys::Number::from(n)
            .to_string_with_radix(10)
            .map(String::from)
            .unwrap_or_default()
    }

    /// `Number(text)`, `None` for NaN. Rust's float parser would cost about 13 KB.
    pub fn parse_number(text: &str) -> Option<f64> {
        Some(js_sys::Number::from(JsValue::from_str(text)).value_of()).filter(|n| !n.is_nan())
    }

    /// `btoa` of the bytes as a binary string (one char per byte, which
    /// `btoa` never refuses). The `base64` crate's engine measured 670 B gzip.
    pub fn base64(bytes: &[u8]) -> String {
        let binary: String = bytes.iter().copied().map(char::from).collect();
        js_btoa(&binary).unwrap_or_default()
    }

    /// `unescape(text)`, `None` when it changes nothing. Unlike the host's
    /// decoder it also reads `%uXXXX` and reads bytes over `%7F` as single
    /// characters, not UTF-8: ASCII reads the same either way. The
    /// `percent-encoding` crate with its lossy UTF-8 decoding measured 790 B gzip.
    pub fn percent_decode(text: &str) -> Option<String> {
        Some(String::from(js_sys::unescape(text))).filter(|decoded| decoded != text)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::UrlParts;

    /// The WHATWG parse of the `url` crate, as `new URL(text)` does it.
    pub fn parse_url(text: &str) -> Option<UrlParts> {
        let url = url::Url::parse(text).ok()?;
        Some(UrlParts {
            protocol: [url.scheme(), ":"].concat(),
            hostname: url.host_str().unwrap_or("").to_string(),
        })
    }

    /// `text` resolved against `base`, as `new URL(text, base)` does it.
    pub fn parse_url_with_base(text: &str, base: &str) -> Option<UrlParts> {
        let url = url::Url::parse(base).ok()?.join(text).ok()?;
        Some(UrlParts {
            protocol: [url.scheme(), ":"].concat(),
            hostname: url.host_str().unwrap_or("").to_string(),
        })
    }

    /// `text` %-encoded as `encodeURIComponent` does it: everything but
    /// ASCII letters, digits and `-_.!~*'()`.
    pub fn encode_component(text: &str) -> String {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        const COMPONENT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'!')
            .remove(b'~')
            .remove(b'*')
            .remove(b'\'')
            .remove(b'(')
            .remove(b')');
        utf8_percent_encode(text, COMPONENT).to_string()
    }

    /// An HTTP date (IMF-fixdate, RFC 850 or asctime) in Unix epoch milliseconds.
    pub fn parse_http_date_ms(text: &str) -> Option<f64> {
        let at = httpdate::parse_http_date(text).ok()?;
        let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(since.as_millis() as f64)
    }

    /// A number as JavaScript's `String(n)` prints it, for messages: whole
    /// numbers without a fraction (`5`, not `5.0`).
    pub fn number_text(n: f64) -> String {
        if n.fract() == 0.0 && n.abs() < 1e15 {
            (n as i64).to_string()
        } else {
            n.to_string()
        }
    }

    /// A decimal number.
    pub fn parse_number(text: &str) -> Option<f64> {
        text.parse().ok()
    }

    /// Standard base64 with padding, as `btoa` writes it.
    pub fn base64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// `text` with every `%XX` decoded (the bytes read as UTF-8, lossily);
    /// `None` when it has none.
    pub fn percent_decode(text: &str) -> Option<String> {
        match percent_encoding::percent_decode_str(text).decode_utf8_lossy() {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(decoded) => Some(decoded),
        }
    }
}
