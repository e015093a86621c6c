//! `SoraError` as a real JavaScript `Error` named `SoraEdgeError`, with its
//! serialized fields as own properties so callers can branch on `code`. Every
//! rejection is built here.

use crate::core::SoraError;
use js_sys::Object;
use wasm_bindgen::{JsCast, JsValue};

/// Builds the JavaScript error. `secret` (the API key) is scrubbed from the
/// message, whatever produced it.
pub fn to_js(error: SoraError, secret: Option<&str>) -> JsValue {
    let error = match secret {
        Some(key) => error.redact(key),
        None => error,
    };
    let js = js_sys::Error::new(&error.message);
    js.set_name("SoraEdgeError");
    let fields = super::to_js(&error);
    if fields.is_object() {
        Object::assign(&js, fields.unchecked_ref());
    }
    js.into()
}
