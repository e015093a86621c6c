//! Keeping the API key out of everything a client sees: one search for the
//! key in every spelling an upstream could echo it in, and one rule for what
//! is left of a text that holds it.
//!
//! A key is found as it is; behind %-encoding, decoded round after round
//! (`%2561` is an `a` encoded twice); as standard or URL-safe base64, at any
//! of the three byte alignments inside a longer encoded payload; and as hex.
//! Every form is found in any ASCII case.
//!
//! [`Secrets::redact`] replaces each form of the key where it stands, so
//! that a message like "Invalid API key afk_…" stays readable as "Invalid
//! API key [redacted]", and a failure reason keeps its words; a text that
//! still holds a form after that becomes "[redacted]" whole.
//!
//! The base64 forms are the characters that depend on the key's bits alone,
//! about 4/3 of its length. A very short key makes short base64 needles that
//! also match unrelated text, so it redacts too much, never too little; real
//! keys are dozens of characters.

use super::platform::{base64, percent_decode};
use std::borrow::Cow;

/// What a key, or a whole text that holds one, is replaced by.
pub const REDACTED: &str = "[redacted]";

/// Rounds of %-decoding a search goes through. An upstream echo is encoded
/// once or twice; a text still changing after this many rounds is treated
/// as holding a key, so that encoding it deeper cannot hide one.
const MAX_DECODE_ROUNDS: usize = 8;

/// The keys a worker must never show, with every form of them precomputed:
/// built once per isolate (or per key), used on every answer. No `Debug`:
/// printing it would print the keys.
#[derive(Clone, Default)]
pub struct Secrets {
    /// The keys as given, replaced in place.
    keys: Vec<String>,
    /// Their hex and base64 (standard and URL-safe, three alignments each).
    encoded: Vec<String>,
}

impl Secrets {
    /// The forms of `keys` (the current key and, during a rotation, the
    /// previous one); empty keys are ignored, so no keys redact nothing.
    pub fn new(keys: &[&str]) -> Secrets {
        let mut secrets = Secrets::default();
        for key in keys.iter().filter(|key| !key.is_empty()) {
            secrets.keys.push(key.to_string());
            secrets.encoded.push(hex::encode(key));
            for offset in 0..3 {
                let standard = base64_needle(key.as_bytes(), offset);
                // A one-byte key leaves some alignments nothing of its own.
                if !standard.is_empty() {
                    secrets.encoded.push(url_safe(&standard));
                    secrets.encoded.push(standard);
                }
            }
        }
        secrets
    }

    /// Whether `text` holds any key in any of its forms, at any depth of
    /// %-encoding up to [`MAX_DECODE_ROUNDS`] (deeper counts as holding one).
    pub fn holds(&self, text: &str) -> bool {
        if self.keys.is_empty() {
            return false;
        }
        let mut text = Cow::Borrowed(text);
        for _ in 0..MAX_DECODE_ROUNDS {
            if self.spelled_in(&text) {
                return true;
            }
            match percent_decode(&text) {
                Some(decoded) => text = Cow::Owned(decoded),
                // Nothing left to decode: no further round can find more.
                None => return false,
            }
        }
        true
    }

    /// `text` as a client may see it: every form of every key (as it is,
    /// hex, base64), in any ASCII case, replaced by [`REDACTED`] where it
    /// stands, so that the rest of a message (a job's failure reason) stays
    /// readable. A key hidden behind %-encoding is found in the decoded text,
    /// which is then what is shown, with the key replaced. If any form is
    /// still there after that, the whole text is [`REDACTED`]. Borrowed
    /// exactly when nothing was found.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let shown = self.replace_forms(text);
        if !self.holds(&shown) {
            return shown;
        }
        let mut decoded = shown.into_owned();
        for _ in 0..MAX_DECODE_ROUNDS {
            match percent_decode(&decoded) {
                Some(next) => decoded = next,
                None => break,
            }
        }
        let shown = self.replace_forms(&decoded).into_owned();
        Cow::Owned(if self.holds(&shown) {
            REDACTED.to_string()
        } else {
            shown
        })
    }

    /// `text` with every form of every key replaced where it stands.
    fn replace_forms<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut shown = Cow::Borrowed(text);
        for needle in self.keys.iter().chain(&self.encoded) {
            if let Some(replaced) = replace_ignoring_case(&shown, needle) {
                shown = Cow::Owned(replaced);
            }
        }
        shown
    }

    /// Redacts every string of a JSON tree, object member names included:
    /// an upstream could name a member after the key as well as quote it.
    /// Two names redacted to the same text keep the later member. Numbers,
    /// booleans and null are left as they are.
    #[cfg(feature = "edge")]
    pub fn redact_value(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(text) => {
                if let Cow::Owned(redacted) = self.redact(text) {
                    *text = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact_value(item)),
            Value::Object(members) => {
                *members = std::mem::take(members)
                    .into_iter()
                    .map(|(name, mut member)| {
                        self.redact_value(&mut member);
                        (self.redact(&name).into_owned(), member)
                    })
                    .collect();
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Whether `text`, as it is, spells a key in any form, in any ASCII
    /// case. For base64 that finds a little more than the key (a text equal
    /// to its base64 up to case), never less, with one search for every form.
    fn spelled_in(&self, text: &str) -> bool {
        self.keys
            .iter()
            .chain(&self.encoded)
            .any(|needle| find_ignoring_case(text.as_bytes(), needle.as_bytes(), 0).is_some())
    }
}

/// The standard base64 characters that `key` alone decides when it starts
/// `offset` bytes (0, 1 or 2) into an encoded payload: character `i` carries
/// payload bits `6i..6i+6`, and the key holds bits `8·offset..8·(offset+len)`,
/// so the characters with `6i >= 8·offset` and `6i+6 <= 8·(offset+len)`. The
/// bytes before the key are zeros here; they only decide characters left out.
fn base64_needle(key: &[u8], offset: usize) -> String {
    let mut payload = vec![0; offset];
    payload.extend_from_slice(key);
    let encoded = base64(&payload);
    let first = (8 * offset).div_ceil(6);
    let end = 8 * (offset + key.len()) / 6;
    encoded[first..end].to_string()
}

/// Standard base64 in the URL-safe alphabet (RFC 4648 §5): the same
/// characters but `-` for `+` and `_` for `/`.
fn url_safe(standard: &str) -> String {
    standard
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// Where `needle` (not empty) next occurs in `haystack` at or after `from`,
/// ASCII case ignored.
fn find_ignoring_case(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
        .map(|at| from + at)
}

/// `text` with every occurrence of `needle` (not empty) in any ASCII case
/// replaced by [`REDACTED`]; `None` when there is none. A match starts and
/// ends on character boundaries: `needle` is whole UTF-8 characters, and
/// ignoring ASCII case compares every other byte exactly.
fn replace_ignoring_case(text: &str, needle: &str) -> Option<String> {
    let mut out = String::new();
    let mut copied = 0;
    while let Some(at) = find_ignoring_case(text.as_bytes(), needle.as_bytes(), copied) {
        out.push_str(&text[copied..at]);
        out.push_str(REDACTED);
        copied = at + needle.len();
    }
    (copied > 0).then(|| out + &text[copied..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{GeneralPurpose, STANDARD, URL_SAFE};
    use base64::Engine as _;

    /// `~?~` puts a `+` or `/` into every alignment's standard base64, so
    /// that the URL-safe rows need needles of their own.
    const KEY: &str = "afk_sim_test_key_edge_7Qm2xV9pLw4R~?~";
    const PREVIOUS: &str = "afk_sim_old_key_3Jd8nB5tYh2W";
    /// [`KEY`] with one character changed (`7` to `8`).
    const NEAR_MISS: &str = "afk_sim_test_key_edge_8Qm2xV9pLw4R~?~";

    /// Every byte of `text` as `%XX`.
    fn percent_every_byte(text: &str) -> String {
        text.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    /// `KEY` inside a longer byte string, `offset` bytes in, base64-encoded.
    fn encoded_payload(engine: &GeneralPurpose, offset: usize) -> String {
        let mut payload = vec![0xfb_u8, 0xff, 0x01][..offset].to_vec();
        payload.extend_from_slice(KEY.as_bytes());
        payload.extend_from_slice(&[0xfe, 0x00, 0xff]);
        engine.encode(&payload)
    }

    #[test]
    fn every_form_of_every_key_is_redacted() {
        let both = Secrets::new(&[KEY, PREVIOUS]);
        let none = Secrets::new(&[]);
        let empty = Secrets::new(&[""]);
        // `Some(text)`: exactly this. `None`: every form replaced where it
        // stands, the words around it kept.
        let whole = || Some(REDACTED.to_string());
        let in_place = || None;
        let in_sentence = |form: &str| format!("upstream says: bad key {form}, try again");
        // The key's `a` %-encoded five times; an `A` past twice MAX_DECODE_ROUNDS
        // (a search decodes that deep, then a redaction as deep again).
        let key_five_times = format!("%{}61{}", "25".repeat(4), &KEY[1..]);
        let deep_a = format!("%{}41", "25".repeat(2 * MAX_DECODE_ROUNDS + 1));
        let cases: Vec<(&str, &Secrets, String, Option<String>)> = vec![
            (
                "raw",
                &both,
                format!("Invalid API key {KEY}"),
                Some("Invalid API key [redacted]".into()),
            ),
            (
                "raw_twice",
                &both,
                format!("{KEY} and again {KEY}."),
                Some("[redacted] and again [redacted].".into()),
            ),
            (
                "upper_case",
                &both,
                in_sentence(&KEY.to_uppercase()),
                Some(in_sentence(REDACTED)),
            ),
            (
                "lower_case",
                &both,
                in_sentence(&KEY.to_lowercase()),
                Some(in_sentence(REDACTED)),
            ),
            (
                "json_string",
                &both,
                format!(r#"{{"message":"key {KEY} is inactive"}}"#),
                Some(r#"{"message":"key [redacted] is inactive"}"#.into()),
            ),
            (
                "percent_every_byte",
                &both,
                in_sentence(&percent_every_byte(KEY)),
                in_place(),
            ),
            (
                "percent_twice",
                &both,
                in_sentence(&percent_every_byte(KEY).replace('%', "%25")),
                in_place(),
            ),
            (
                "percent_in_a_url",
                &both,
                format!("https://x.test/v?api_key={}", percent_every_byte(KEY)),
                in_place(),
            ),
            (
                "percent_then_upper_case",
                &both,
                percent_every_byte(&KEY.to_uppercase()),
                in_place(),
            ),
            ("percent_five_times", &both, key_five_times, in_place()),
            (
                "base64_offset_0",
                &both,
                encoded_payload(&STANDARD, 0),
                in_place(),
            ),
            (
                "base64_offset_1",
                &both,
                encoded_payload(&STANDARD, 1),
                in_place(),
            ),
            (
                "base64_offset_2",
                &both,
                encoded_payload(&STANDARD, 2),
                in_place(),
            ),
            (
                "base64url_offset_0",
                &both,
                encoded_payload(&URL_SAFE, 0),
                in_place(),
            ),
            (
                "base64url_offset_1",
                &both,
                encoded_payload(&URL_SAFE, 1),
                in_place(),
            ),
            (
                "base64url_offset_2",
                &both,
                encoded_payload(&URL_SAFE, 2),
                in_place(),
            ),
            (
                "base64_in_a_sentence",
                &both,
                in_sentence(&STANDARD.encode(KEY)),
                in_place(),
            ),
            (
                "base64_percent_encoded",
                &both,
                encoded_payload(&STANDARD, 1)
                    .replace('+', "%2B")
                    .replace('/', "%2F"),
                in_place(),
            ),
            (
                "hex_lower",
                &both,
                in_sentence(&hex::encode(KEY)),
                in_place(),
            ),
            (
                "hex_upper",
                &both,
                in_sentence(&hex::encode_upper(KEY)),
                in_place(),
            ),
            (
                "raw_and_base64",
                &both,
                format!("{KEY} {}", STANDARD.encode(KEY)),
                in_place(),
            ),
            (
                "previous_key",
                &both,
                in_sentence(PREVIOUS),
                Some(in_sentence(REDACTED)),
            ),
            (
                "previous_key_base64",
                &both,
                in_sentence(&STANDARD.encode(format!("xy{PREVIOUS}"))),
                in_place(),
            ),
            // Fails closed: an unrelated text encoded past the rounds goes too.
            ("unrelated_past_the_rounds", &both, deep_a.clone(), whole()),
            // Nothing to find: each stays as it is.
            (
                "unrelated",
                &both,
                r#"{"error":"Job not found","retryAfter":3}"#.into(),
                Some(r#"{"error":"Job not found","retryAfter":3}"#.into()),
            ),
            (
                "percent_signs",
                &both,
                "100% done, %zz, %4".into(),
                Some("100% done, %zz, %4".into()),
            ),
            (
                "near_miss_raw",
                &both,
                in_sentence(NEAR_MISS),
                Some(in_sentence(NEAR_MISS)),
            ),
            (
                "near_miss_base64",
                &both,
                STANDARD.encode(NEAR_MISS),
                Some(STANDARD.encode(NEAR_MISS)),
            ),
            (
                "near_miss_hex",
                &both,
                hex::encode(NEAR_MISS),
                Some(hex::encode(NEAR_MISS)),
            ),
            ("no_keys", &none, in_sentence(KEY), Some(in_sentence(KEY))),
            // Without keys even a deep encoding is left alone.
            ("no_keys_deep", &none, deep_a.clone(), Some(deep_a)),
            (
                "empty_key",
                &empty,
                in_sentence(KEY),
                Some(in_sentence(KEY)),
            ),
        ];
        for (name, secrets, text, expected) in cases {
            let shown = secrets.redact(&text);
            match expected {
                Some(expected) => assert_eq!(shown, expected, "{name}: {text}"),
                None => {
                    assert!(shown.contains(REDACTED), "{name}: {shown}");
                    if let Some(words) = text.strip_prefix("upstream says: bad key ") {
                        assert!(
                            shown.starts_with("upstream says: bad key ")
                                && shown.ends_with(", try again")
                                && words.ends_with(", try again"),
                            "{name}: the words around the key are kept: {shown}"
                        );
                    }
                }
            }
            assert_eq!(secrets.holds(&text), text != shown, "{name}: holds");
            assert!(!secrets.holds(&shown), "{name}: holds after redaction");
        }
    }

    #[cfg(feature = "edge")]
    #[test]
    fn json_trees_are_redacted_string_by_string() {
        let secrets = Secrets::new(&[KEY]);
        let mut tree = serde_json::json!({
            "status": "FAILED",
            "error": format!("Invalid API key {KEY}"),
            "echo": [1, STANDARD.encode(KEY), {"deep": hex::encode(KEY)}],
            KEY: true,
        });
        secrets.redact_value(&mut tree);
        assert_eq!(
            tree,
            serde_json::json!({
                "status": "FAILED",
                "error": "Invalid API key [redacted]",
                "echo": [1, format!("{REDACTED}g=="), {"deep": REDACTED}],
                REDACTED: true,
            })
        );
    }
}
