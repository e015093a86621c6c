//! `SoraError` as the JavaScript `SoraEdgeError` class of `npm/errors.js`,
//! with its serialized fields as own properties so callers can branch on
//! `code`, and its `cause`. Every rejection is built here.

use crate::core::{Secrets, SoraError};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/npm/errors.js")]
extern "C" {
    /// `new SoraEdgeError(message, fields, {cause})`.
    #[wasm_bindgen(js_name = SoraEdgeError)]
    type JsSoraEdgeError;
    #[wasm_bindgen(constructor, js_class = SoraEdgeError)]
    fn new(message: &str, fields: JsValue, options: JsValue) -> JsSoraEdgeError;
}

/// Builds the JavaScript error. `secret` (the API key) is scrubbed from the
/// message, whatever produced it.
pub fn to_js(error: SoraError, secret: Option<&str>) -> JsValue {
    let mut error = match secret {
        Some(key) => error.redact(&Secrets::new(&[key])),
        None => error,
    };
    let options = js_sys::Object::new();
    if let Some(cause) = error.cause.take() {
        let _ = js_sys::Reflect::set(&options, &"cause".into(), &cause);
    }
    JsSoraEdgeError::new(&error.message, super::to_js(&error), options.into()).into()
}
