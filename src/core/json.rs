//! A small JSON value with a parser and a writer.
//!
//! serde with serde-wasm-bindgen costs 15 to 19 KB gzip in the browser build;
//! this covers what the client needs in a fraction of that. Numbers keep their
//! source text, so a pass-through value is written back exactly as received
//! and no float formatting code is linked.

/// A parsed JSON value. Objects keep their key order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, as its validated source text.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, in source order.
    Object(Vec<(String, Json)>),
}

/// Why a text is not JSON, with the byte offset where parsing stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem.
    pub offset: usize,
}

/// Nesting deeper than this is refused, so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 128;

impl Json {
    /// Parses a complete JSON text (surrounding whitespace allowed).
    ///
    /// # Errors
    /// Returns the offset of the first byte that is not valid JSON.
    pub fn parse(text: &str) -> Result<Json, ParseError> {
        let mut parser = Parser {
            bytes: text.as_bytes(),
            pos: 0,
        };
        let value = parser.value(0)?;
        parser.skip_ws();
        if parser.pos != parser.bytes.len() {
            return Err(parser.error());
        }
        Ok(value)
    }

    /// The member `key` of an object; `None` for other values or a missing key.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The value as an integer, if it is a number with no fraction or exponent
    /// (`8.0` counts as 8) that fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        let Json::Number(text) = self else {
            return None;
        };
        let (int_part, frac) = match text.split_once('.') {
            Some((i, f)) => (i, f),
            None => (text.as_str(), ""),
        };
        if text.contains(['e', 'E']) || frac.bytes().any(|b| b != b'0') {
            return None;
        }
        let (negative, digits) = match int_part.as_bytes().first() {
            Some(b'-') => (true, &int_part[1..]),
            Some(b'+') => (false, &int_part[1..]),
            _ => (false, int_part),
        };
        let n = parse_u64(digits)?;
        if negative {
            // -(2^63) is i64::MIN; anything larger does not fit.
            (n <= 1 << 63).then(|| (n as i64).wrapping_neg())
        } else {
            i64::try_from(n).ok()
        }
    }

    /// The value as a decimal, for numbers and numeric strings without an
    /// exponent. Parsed by hand to keep float parsing out of the wasm build.
    pub fn as_decimal(&self) -> Option<f64> {
        let text = match self {
            Json::Number(t) => t.as_str(),
            Json::String(s) => s.trim(),
            _ => return None,
        };
        parse_decimal(text)
    }

    /// The value as a JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Appends the value as a JSON text.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Number(text) => out.push_str(text),
            Json::String(s) => write_string(out, s),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, key);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    /// A JSON number from an unsigned integer.
    pub fn from_u64(n: u64) -> Json {
        Json::Number(u64_text(n))
    }
}

/// `n` in decimal. `to_string` would link `core::fmt`, which the wasm build
/// otherwise does without.
pub fn u64_text(mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[start..].iter().map(|&d| char::from(d)).collect()
}

/// Whether `b` starts a character (is not a UTF-8 continuation byte).
fn starts_char(b: u8) -> bool {
    b & 0xC0 != 0x80
}

/// The number of characters in `text`, counted by bytes (`chars().count()`
/// links a large decoder).
pub fn char_count(text: &str) -> usize {
    text.bytes().filter(|&b| starts_char(b)).count()
}

/// `text` cut to its first `max_chars` characters, with `…` when it was cut.
/// `truncate` rather than slicing: no slice-error formatting in the wasm build.
pub fn shorten(mut text: String, max_chars: usize) -> String {
    let cut = text
        .bytes()
        .enumerate()
        .filter(|&(_, b)| starts_char(b))
        .nth(max_chars);
    if let Some((cut, _)) = cut {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// `str::parse::<u64>` without its generic machinery: an optional `+`, then
/// one or more ASCII digits; `None` on anything else or on overflow.
pub fn parse_u64(text: &str) -> Option<u64> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Parses `[-]digits[.digits]` into an `f64` without linking a float parser.
pub fn parse_decimal(text: &str) -> Option<f64> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (int_part, frac_part) = rest.split_once('.').unwrap_or((rest, ""));
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit())
        || (rest.contains('.') && frac_part.is_empty())
    {
        return None;
    }
    let mut value = 0f64;
    for b in int_part.bytes() {
        value = value * 10.0 + f64::from(b - b'0');
    }
    let mut scale = 0.1;
    for b in frac_part.bytes().take(12) {
        value += f64::from(b - b'0') * scale;
        scale /= 10.0;
    }
    Some(if negative { -value } else { value })
}

/// Appends `s` as a quoted, escaped JSON string.
pub fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let code = c as usize;
                out.push_str("\\u00");
                out.push(HEX[code >> 4] as char);
                out.push(HEX[code & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self) -> ParseError {
        ParseError { offset: self.pos }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error());
        }
        self.skip_ws();
        match self.bytes.get(self.pos) {
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.eat(b']') {
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    if self.eat(b']') {
                        return Ok(Json::Array(items));
                    }
                    if !self.eat(b',') {
                        return Err(self.error());
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if self.eat(b'}') {
                    return Ok(Json::Object(members));
                }
                loop {
                    self.skip_ws();
                    if self.bytes.get(self.pos) != Some(&b'"') {
                        return Err(self.error());
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if !self.eat(b':') {
                        return Err(self.error());
                    }
                    let value = self.value(depth + 1)?;
                    members.push((key, value));
                    self.skip_ws();
                    if self.eat(b'}') {
                        return Ok(Json::Object(members));
                    }
                    if !self.eat(b',') {
                        return Err(self.error());
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error()),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json, ParseError> {
        let start = self.pos;
        self.eat(b'-');
        if self.eat(b'0') {
            // A leading zero may not be followed by more digits.
        } else if self.digits() == 0 {
            return Err(self.error());
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.error());
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.error());
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).map_err(|_| self.error())?;
        Ok(Json::Number(text.to_string()))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error())?;
        let mut code = 0;
        for &b in digits {
            let v = (b as char).to_digit(16).ok_or_else(|| self.error())?;
            code = code * 16 + v;
        }
        self.pos += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The input is a &str, and we only stop on ASCII bytes, so this slice is valid UTF-8.
            out.push_str(
                std::str::from_utf8(&self.bytes[start..self.pos]).map_err(|_| self.error())?,
            );
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escape = *self.bytes.get(self.pos).ok_or_else(|| self.error())?;
                    self.pos += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high)
                                && self.bytes[self.pos..].starts_with(b"\\u")
                            {
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(self.error());
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            // A lone surrogate cannot be a Rust char: keep the text, lose nothing else.
                            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                        }
                        _ => return Err(self.error()),
                    }
                }
                _ => return Err(self.error()),
            }
        }
    }
}

/// The edge code's calls into the serde-typed core, through JSON text. They
/// go when the edge code moves to serde_json (issue 9).
mod serde_adapters {
    use super::Json;
    use crate::core::error::{ErrorCode, SoraError};
    use crate::core::job::{Job, UpstreamJob};
    use crate::core::request::GenerateRequest;
    use crate::core::value::Value;

    fn value_of(json: &Json) -> Value {
        serde_json::from_str(&json.to_json()).unwrap_or(Value::Null)
    }

    impl GenerateRequest {
        /// [`GenerateRequest::from_wire`] of a parsed body.
        ///
        /// # Errors
        /// `invalid_request` naming the first field that breaks a rule.
        pub fn from_wire_json(json: &Json) -> Result<GenerateRequest, SoraError> {
            GenerateRequest::from_wire(&value_of(json))
        }

        /// The body for `POST /v2/videos/generate`, as JSON text.
        pub fn wire_body(&self) -> String {
            serde_json::to_string(&self.wire()).unwrap_or_default()
        }
    }

    impl Job {
        /// [`Job::from_upstream`] of a parsed body.
        ///
        /// # Errors
        /// `bad_response` for anything that is not a job.
        pub fn from_json(json: &Json) -> Result<Job, SoraError> {
            let upstream: UpstreamJob = serde_json::from_str(&json.to_json())
                .map_err(|e| SoraError::new(ErrorCode::BadResponse, e.to_string()))?;
            Job::from_upstream(upstream)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_are_exact() {
        let cases = [
            (
                "nested_object",
                r#"{"a":[1,-2.50,3e7,{"b":null}],"c":true,"d":false}"#,
            ),
            ("escapes", r#"{"s":"q\"b\\n\nt\tc\u0001"}"#),
            ("unicode_kept_raw", r#"["日本語 🎬"]"#),
            ("empty_containers", r#"[[],{},""]"#),
        ];
        for (name, text) in cases {
            let value = Json::parse(text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(value.to_json(), text, "{name}");
        }
    }

    #[test]
    fn rejects_malformed_text() {
        let cases = [
            ("truncated_object", r#"{"jobId": ""#),
            ("truncated_after_colon", r#"{"id": "#),
            ("trailing_comma", "[1,]"),
            ("leading_zero", "012"),
            ("bare_word", "hello"),
            ("empty", ""),
            ("two_values", "1 2"),
            ("single_quotes", "{'a':1}"),
            ("raw_control_char", "\"a\u{1}b\""),
            ("bad_escape", r#""\x""#),
            ("dot_without_digits", "1."),
        ];
        for (name, text) in cases {
            assert!(Json::parse(text).is_err(), "{name} should fail");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "[".repeat(100_000);
        assert!(Json::parse(&text).is_err());
    }

    #[test]
    fn characters_are_counted_and_cut_like_chars() {
        for text in ["", "abc", "é", "aé€😀b", "😀😀😀😀", "x€"] {
            assert_eq!(char_count(text), text.chars().count(), "{text}");
            for n in 0..6 {
                let expected: String = if text.chars().count() > n {
                    text.chars().take(n).collect::<String>() + "…"
                } else {
                    text.to_string()
                };
                assert_eq!(shorten(text.to_string(), n), expected, "{text} {n}");
            }
        }
    }

    #[test]
    fn integers_are_parsed_like_str_parse() {
        for text in [
            "0",
            "7",
            "+7",
            "-7",
            "",
            "+",
            "-",
            "12a",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "-0",
            "007",
        ] {
            assert_eq!(parse_u64(text), text.parse::<u64>().ok(), "{text}");
            let json = Json::Number(text.to_string());
            assert_eq!(json.as_i64(), text.parse::<i64>().ok(), "{text}");
        }
    }

    #[test]
    fn integers_are_written_like_to_string() {
        for n in [0, 7, 10, 4000, 1_234_567_890, u64::MAX] {
            assert_eq!(u64_text(n), n.to_string(), "{n}");
        }
    }

    #[test]
    fn surrogate_pairs_decode() {
        let value = Json::parse(r#""\ud83c\udfac""#).unwrap();
        assert_eq!(value.as_str(), Some("🎬"));
    }

    #[test]
    fn integers_and_decimals() {
        let cases: [(&str, Option<i64>, Option<f64>); 6] = [
            ("8", Some(8), Some(8.0)),
            ("8.0", Some(8), Some(8.0)),
            ("8.5", None, Some(8.5)),
            ("-3", Some(-3), Some(-3.0)),
            ("1e3", None, None),
            (
                "4294967296000",
                Some(4_294_967_296_000),
                Some(4_294_967_296_000.0),
            ),
        ];
        for (text, int, dec) in cases {
            let value = Json::parse(text).unwrap();
            assert_eq!(value.as_i64(), int, "{text}");
            assert_eq!(value.as_decimal(), dec, "{text}");
        }
    }
}
