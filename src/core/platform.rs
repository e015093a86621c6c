//! What the runtime already parses: URLs, HTTP dates and number text, and
//! how it prints numbers. In wasm these are the platform's own `URL`,
//! `Date.parse`, `Number()` and `String(n)` (nothing re-implemented, nothing
//! linked); on the host, where the tests run, the `url` and `httpdate` crates
//! and Rust's formatting. The rules that use them
//! (`core::url`, `core::http`, `core::job`) are written once, over these.

/// The parts of a parsed URL that the rules look at, as WHATWG `URL` gives them.
#[derive(Debug, PartialEq, Eq)]
pub struct UrlParts {
    /// The scheme with its colon, lower-cased: `"https:"`.
    pub protocol: String,
    /// The host without the port; IPv6 in brackets: `"[::1]"`.
    pub hostname: String,
}

pub use imp::{number_text, parse_http_date_ms, parse_number, parse_url};

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::UrlParts;
    use wasm_bindgen::JsValue;

    /// `new URL(text)`, `None` when it throws.
    pub fn parse_url(text: &str) -> Option<UrlParts> {
        let url = web_sys::Url::new(text).ok()?;
        Some(UrlParts {
            protocol: url.protocol(),
            hostname: url.hostname(),
        })
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
}
