//! The upstream webhook receiver's decisions: the signature check and the
//! translation of a webhook body into the job shape of a status read.
//!
//! `X-Webhook-Signature` is the hex HMAC-SHA256 of the raw body, keyed with
//! SHA-256 of the API key. The docs do not say whether that key is the 32
//! raw digest bytes or the 64-character lowercase hex string of the digest,
//! so both are tried, always both (no early exit), each compared in
//! constant time. A `sha256=` prefix and upper-case hex are accepted too.

use super::relay::JobMap;
use super::reply::{shown, Reply};
use super::route::is_uuid;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The two candidate HMAC keys: the raw digest of the API key and its hex text.
fn signing_keys(api_key: &str) -> ([u8; 32], Vec<u8>) {
    let digest: [u8; 32] = Sha256::digest(api_key.as_bytes()).into();
    (digest, hex::encode(digest).into_bytes())
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn unauthorized(message: &str) -> Reply {
    Reply::error(401, "unauthorized", message)
}

/// Verifies `X-Webhook-Signature` over the raw body bytes against each of
/// `api_keys` (the current key, and the previous one during a rotation, so
/// that webhooks of jobs submitted before it still verify).
///
/// # Errors
/// 401 when the signature is missing, malformed or wrong, or no key is set.
pub fn verify(api_keys: &[&str], body: &[u8], signature: Option<&str>) -> Result<(), Reply> {
    let signature = signature.map(str::trim).filter(|s| !s.is_empty());
    let Some(signature) = signature else {
        return Err(unauthorized("X-Webhook-Signature is missing"));
    };
    let hex = match signature.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => &signature[7..],
        _ => signature,
    };
    let Some(expected) = decode_hex(hex) else {
        return Err(unauthorized(
            "X-Webhook-Signature must be 64 hex digits (HMAC-SHA256)",
        ));
    };
    let keys: Vec<&str> = api_keys.iter().copied().filter(|k| !k.is_empty()).collect();
    if keys.is_empty() {
        return Err(unauthorized(
            "webhook signatures cannot be checked: the worker has no API key",
        ));
    }
    let matches = |key: &[u8]| {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    };
    // Every candidate is always computed: which key matched must not show in the timing.
    let matched = keys.iter().fold(false, |found, key| {
        let (raw, hex_key) = signing_keys(key);
        let by_hex = matches(&hex_key);
        let by_raw = matches(&raw);
        found | by_hex | by_raw
    });
    if matched {
        Ok(())
    } else {
        Err(unauthorized("X-Webhook-Signature does not match the body"))
    }
}

/// The status a webhook event implies, when the body has no `status`.
fn status_of_event(event: &str) -> Option<&'static str> {
    match event {
        "completed" => Some("COMPLETED"),
        "failed" => Some("FAILED"),
        "progress" => Some("PROCESSING"),
        _ => None,
    }
}

/// A verified webhook body as `(job id, job)`, the job in the shape of
/// `GET /v2/jobs/{id}`: `jobId` becomes `id`, `event` is dropped.
///
/// # Errors
/// 400 naming the field when the body is not JSON, has no UUID `jobId`, or
/// no status (neither `status` nor a known `event`).
pub fn parse_event(body: &[u8]) -> Result<(String, JobMap), Reply> {
    let value = super::generate::parse_body(body)?;
    let Value::Object(mut members) = value else {
        return Err(Reply::invalid("body", "webhook body must be a JSON object"));
    };
    let id = match members.get("jobId").or_else(|| members.get("id")) {
        Some(Value::String(id)) => id.clone(),
        _ => String::new(),
    };
    if !is_uuid(&id) {
        return Err(Reply::invalid(
            "jobId",
            &format!("webhook jobId must be a UUID (got {})", shown(&id)),
        ));
    }
    let status = match members.get("status") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => members
            .get("event")
            .and_then(Value::as_str)
            .and_then(status_of_event)
            .ok_or_else(|| Reply::invalid("status", "webhook has no status and no known event"))?
            .to_string(),
    };
    for key in ["id", "jobId", "event", "status"] {
        members.remove(key);
    }
    let mut job = JobMap::new();
    job.insert("id".into(), Value::String(id.clone()));
    job.insert("status".into(), Value::String(status));
    job.extend(members);
    Ok((id, job))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently with Python's hmac module:
    //   key = b"afk_test_edge_key"; hx = hashlib.sha256(key).hexdigest()
    //   hmac.new(hx.encode(), BODY, hashlib.sha256).hexdigest()               -> BY_HEX_KEY
    //   hmac.new(hashlib.sha256(key).digest(), BODY, hashlib.sha256).hexdigest() -> BY_RAW_KEY
    const KEY: &str = "afk_test_edge_key";
    const BODY: &[u8] = br#"{"event":"completed","jobId":"0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d","status":"COMPLETED","progress":100,"result":"https://cdn.test/v.mp4"}"#;
    const BY_HEX_KEY: &str = "9940979f28a1be33f06a96bc4b2f88838323440cda9c4eb3d25e4882a781076b";
    const BY_RAW_KEY: &str = "2e49ae03a6351de696bea3c9cdc073ce69b286f589e5612c1b66f06871f73b78";

    #[test]
    fn key_derivation_matches_python() {
        let (_, hex) = signing_keys(KEY);
        assert_eq!(
            std::str::from_utf8(&hex).unwrap(),
            "1c0bd3bc1a582dc0a31a14796bd3683a1a8f15086af9af4b5a3402947a703955"
        );
    }

    #[test]
    fn signature_table() {
        let upper = BY_HEX_KEY.to_uppercase();
        let prefixed = format!("sha256={BY_RAW_KEY}");
        let mut flipped = BY_HEX_KEY.to_string();
        flipped.replace_range(63.., "a");
        let tampered = [BODY, b" "].concat();
        type Case<'a> = (&'a str, &'a str, &'a [u8], Option<&'a str>, bool);
        let cases: [Case; 12] = [
            ("hex_key", KEY, BODY, Some(BY_HEX_KEY), true),
            ("raw_key", KEY, BODY, Some(BY_RAW_KEY), true),
            ("uppercase_hex", KEY, BODY, Some(&upper), true),
            ("sha256_prefix", KEY, BODY, Some(&prefixed), true),
            (
                "padded",
                KEY,
                BODY,
                Some(" 9940979f28a1be33f06a96bc4b2f88838323440cda9c4eb3d25e4882a781076b "),
                true,
            ),
            ("missing", KEY, BODY, None, false),
            ("empty", KEY, BODY, Some(""), false),
            ("last_digit_flipped", KEY, BODY, Some(&flipped), false),
            ("body_tampered", KEY, &tampered, Some(BY_HEX_KEY), false),
            ("other_key", "afk_other", BODY, Some(BY_HEX_KEY), false),
            (
                "not_hex",
                KEY,
                BODY,
                Some("zz40979f28a1be33f06a96bc4b2f88838323440cda9c4eb3d25e4882a781076b"),
                false,
            ),
            ("truncated", KEY, BODY, Some(&BY_HEX_KEY[..62]), false),
        ];
        for (name, key, body, signature, ok) in cases {
            let result = verify(&[key], body, signature);
            assert_eq!(result.is_ok(), ok, "{name}");
            if let Err(reply) = result {
                assert_eq!(reply.status, 401, "{name}");
                assert!(!reply.body.contains(key), "{name}: the key leaked");
            }
        }
        assert!(
            verify(&[""], BODY, Some(BY_HEX_KEY)).is_err(),
            "no key, no webhook"
        );
        assert!(
            verify(&["afk_new_key", KEY], BODY, Some(BY_RAW_KEY)).is_ok(),
            "during a rotation, a webhook signed with the previous key verifies"
        );
        assert!(verify(&["afk_new_key", "afk_other"], BODY, Some(BY_HEX_KEY)).is_err());
    }

    #[test]
    fn webhook_bodies_become_status_read_shapes() {
        let id = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";
        let cases: [(&str, String, Result<String, &str>); 6] = [
            (
                "completed",
                format!(
                    r#"{{"event":"completed","jobId":"{id}","status":"COMPLETED","progress":100,"result":"https://cdn.test/v.mp4","model":"sora-2"}}"#
                ),
                Ok(format!(
                    r#"{{"id":"{id}","status":"COMPLETED","progress":100,"result":"https://cdn.test/v.mp4","model":"sora-2"}}"#
                )),
            ),
            (
                "status_from_event",
                format!(r#"{{"event":"failed","jobId":"{id}","error":"boom"}}"#),
                Ok(format!(
                    r#"{{"id":"{id}","status":"FAILED","error":"boom"}}"#
                )),
            ),
            (
                "no_uuid",
                r#"{"event":"progress","jobId":"../me","progress":5}"#.to_string(),
                Err("jobId"),
            ),
            (
                "no_status",
                format!(r#"{{"event":"weird","jobId":"{id}"}}"#),
                Err("status"),
            ),
            ("array", "[]".to_string(), Err("body")),
            ("garbage", "{".to_string(), Err("body")),
        ];
        for (name, body, expected) in cases {
            let got = parse_event(body.as_bytes());
            match expected {
                Ok(json) => {
                    let (got_id, job) = got.unwrap();
                    assert_eq!(got_id, id, "{name}");
                    let want: JobMap = serde_json::from_str(&json).unwrap();
                    assert_eq!(job, want, "{name}");
                }
                Err(field) => {
                    let reply = got.expect_err(name);
                    assert!(
                        reply.body.contains(&format!("\"field\":\"{field}\"")),
                        "{name}: {}",
                        reply.body
                    );
                }
            }
        }
    }
}
