//! Reading the options object. A wrong type becomes an ordinary
//! `invalid_request` naming the option, never a panic at the boundary.

use super::js::AbortSignal;
use crate::core::SoraError;
use js_sys::{Function, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};

const DEFAULT_BASE_URL: &str = "https://api.apiframe.ai";
const DEFAULT_TIMEOUT_MS: f64 = 30_000.0;
const DEFAULT_MAX_RETRIES: u32 = 3;
const DEFAULT_DEADLINE_MS: f64 = 15.0 * 60_000.0;

/// How `waitForJob` learns about changes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Events when the server offers them, else polling.
    Auto,
    /// Status reads on the adaptive schedule.
    Poll,
    /// Server-sent events only.
    Events,
}

/// Every option of `ClientOptions`, `GenerateOptions` and `WaitOptions`.
#[derive(Clone)]
pub struct Options {
    pub base_url: String,
    pub api_key: Option<String>,
    pub fetch: Function,
    pub signal: Option<AbortSignal>,
    pub timeout_ms: f64,
    pub max_retries: u32,
    pub headers: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    pub on_progress: Option<Function>,
    pub deadline_ms: f64,
    pub transport: Transport,
}

/// Shows a value in a message: its JSON, or its type when it has none.
pub fn shown(value: &JsValue) -> String {
    if value.is_function() {
        return "a function".to_string();
    }
    match JSON::stringify(value).ok().and_then(|s| s.as_string()) {
        Some(text) if text.chars().count() > 80 => text.chars().take(80).collect::<String>() + "…",
        Some(text) => text,
        None => "undefined".to_string(),
    }
}

fn get(object: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(object, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined())
}

fn invalid(field: &str, rule: &str, value: &JsValue) -> SoraError {
    SoraError::invalid(
        field,
        [field, " ", rule, " (got ", &shown(value), ")"].concat(),
    )
}

fn string(object: &JsValue, key: &str) -> Result<Option<String>, SoraError> {
    get(object, key)
        .map(|v| {
            v.as_string()
                .ok_or_else(|| invalid(key, "must be a string", &v))
        })
        .transpose()
}

fn positive_number(object: &JsValue, key: &str, default: f64) -> Result<f64, SoraError> {
    match get(object, key) {
        None => Ok(default),
        Some(v) => match v.as_f64() {
            Some(n) if n > 0.0 && n.is_finite() => Ok(n),
            _ => Err(invalid(
                key,
                "must be a positive number of milliseconds",
                &v,
            )),
        },
    }
}

impl Options {
    /// Reads `opts` (undefined or an object).
    ///
    /// # Errors
    /// `invalid_request` naming the first bad option.
    // Out of line: inlined into the export's state machine it measured
    // larger (gzip) than as a call.
    #[inline(never)]
    pub fn from_js(opts: &JsValue) -> Result<Options, SoraError> {
        if !opts.is_undefined() && !opts.is_null() && !opts.is_object() {
            return Err(invalid("options", "must be an object", opts));
        }
        let base_url = string(opts, "baseUrl")?.unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let fetch = match get(opts, "fetch") {
            Some(f) => f
                .dyn_into::<Function>()
                .map_err(|v| invalid("fetch", "must be a function", &v))?,
            None => get(&js_sys::global(), "fetch")
                .and_then(|f| f.dyn_into::<Function>().ok())
                .ok_or_else(|| {
                    SoraError::invalid(
                        "fetch",
                        "fetch is not available in this runtime; pass options.fetch",
                    )
                })?,
        };
        let signal = match get(opts, "signal") {
            Some(s) if s.is_object() && Reflect::has(&s, &"aborted".into()).unwrap_or(false) => {
                Some(s.unchecked_into())
            }
            Some(s) => return Err(invalid("signal", "must be an AbortSignal", &s)),
            None => None,
        };
        let max_retries = match get(opts, "maxRetries") {
            None => DEFAULT_MAX_RETRIES,
            Some(v) => match v.as_f64() {
                Some(n) if (0.0..=10.0).contains(&n) && n.fract() == 0.0 => n as u32,
                _ => {
                    return Err(invalid(
                        "maxRetries",
                        "must be a whole number from 0 to 10",
                        &v,
                    ))
                }
            },
        };
        let headers = match get(opts, "headers") {
            None => Vec::new(),
            Some(h) if h.is_object() => {
                let mut headers = Vec::new();
                for entry in Object::entries(h.unchecked_ref()).iter() {
                    let name = Reflect::get_u32(&entry, 0)
                        .ok()
                        .and_then(|n| n.as_string())
                        .unwrap_or_default();
                    let value = Reflect::get_u32(&entry, 1).unwrap_or(JsValue::UNDEFINED);
                    let value = value.as_string().ok_or_else(|| {
                        invalid(&["headers.", &name].concat(), "must be a string", &value)
                    })?;
                    headers.push((name, value));
                }
                headers
            }
            Some(h) => {
                return Err(invalid(
                    "headers",
                    "must be an object of header names to strings",
                    &h,
                ))
            }
        };
        let idempotency_key = string(opts, "idempotencyKey")?;
        if let Some(key) = &idempotency_key {
            if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    "idempotencyKey",
                    "must be 1 to 255 printable ASCII characters",
                    &JsValue::from_str(key),
                ));
            }
        }
        let on_progress = match get(opts, "onProgress") {
            Some(f) => Some(
                f.dyn_into::<Function>()
                    .map_err(|v| invalid("onProgress", "must be a function", &v))?,
            ),
            None => None,
        };
        let transport = match get(opts, "transport") {
            None => Transport::Auto,
            Some(v) => match v.as_string().as_deref() {
                Some("auto") => Transport::Auto,
                Some("poll") => Transport::Poll,
                Some("events") => Transport::Events,
                _ => {
                    return Err(invalid(
                        "transport",
                        "must be one of \"auto\", \"poll\", \"events\"",
                        &v,
                    ))
                }
            },
        };
        Ok(Options {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: string(opts, "apiKey")?.filter(|k| !k.is_empty()),
            fetch,
            signal,
            timeout_ms: positive_number(opts, "timeoutMs", DEFAULT_TIMEOUT_MS)?,
            max_retries,
            headers,
            idempotency_key,
            on_progress,
            deadline_ms: positive_number(opts, "deadlineMs", DEFAULT_DEADLINE_MS)?,
            transport,
        })
    }
}

/// `Object.assign({}, base, extra)`: per-call options over the client's.
pub fn merge(base: &JsValue, extra: &JsValue) -> JsValue {
    let target = Object::new();
    for source in [base, extra] {
        if source.is_object() {
            Object::assign(&target, source.unchecked_ref());
        }
    }
    target.into()
}
