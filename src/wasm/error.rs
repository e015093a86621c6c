//! `SoraError` as a real JavaScript `Error` named `SoraEdgeError`, with its
//! fields as own properties so callers can branch on `code`.

use crate::core::SoraError;
use js_sys::Reflect;
use wasm_bindgen::JsValue;

/// Builds the JavaScript error. `secret` (the API key) is scrubbed from the
/// message, whatever produced it.
pub fn to_js(error: SoraError, secret: Option<&str>) -> JsValue {
    let error = match secret {
        Some(key) => error.redact(key),
        None => error,
    };
    let js = js_sys::Error::new(&error.message);
    let set = |key: &str, value: JsValue| {
        let _ = Reflect::set(&js, &JsValue::from_str(key), &value);
    };
    // An own `name`, as `error.name = ...` makes: one import fewer than `set_name`.
    set("name", "SoraEdgeError".into());
    set("code", error.code.as_str().into());
    set("retryable", error.retryable.into());
    let optional_text = [
        ("field", error.field),
        ("jobId", error.job_id),
        ("idempotencyKey", error.idempotency_key),
    ];
    for (key, value) in optional_text {
        if let Some(value) = value {
            set(key, value.into());
        }
    }
    if let Some(status) = error.status {
        set("status", status.into());
    }
    if let Some(ms) = error.retry_after_ms {
        set("retryAfterMs", (ms as f64).into());
    }
    js.into()
}
