//! Reading the options object. A wrong type becomes an ordinary
//! `invalid_request` naming the option, never a panic at the boundary.

use super::js::AbortSignal;
use crate::core::json::shorten;
use crate::core::SoraError;
use js_sys::{Function, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};

const DEFAULT_BASE_URL: &str = "https://api.apiframe.ai";
const DEFAULT_TIMEOUT_MS: f64 = 30_000.0;
const DEFAULT_MAX_RETRIES: f64 = 3.0;
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
        Some(text) => shorten(text, 80),
        None => "undefined".to_string(),
    }
}

/// `object[key]`, `None` when undefined (or when `object` has no properties).
pub fn get(object: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(object, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined())
}

/// `object[index]`, `None` when undefined.
fn get_at(object: &JsValue, index: f64) -> Option<JsValue> {
    Reflect::get(object, &index.into())
        .ok()
        .filter(|v| !v.is_undefined())
}

fn invalid(field: &str, rule: &str, value: &JsValue) -> SoraError {
    SoraError::invalid(
        field,
        [field, " ", rule, " (got ", &shown(value), ")"].concat(),
    )
}

const MUST_BE_STRING: &str = "must be a string";
const MUST_BE_FUNCTION: &str = "must be a function";
const MUST_BE_MS: &str = "must be a positive number of milliseconds";

/// One option: `None` when absent, the value when `accepts` it, else the
/// `invalid_request` naming it with `rule`. Every option goes through here,
/// so its checks are data rather than code per option.
#[inline(never)]
fn read(
    opts: &JsValue,
    key: &str,
    rule: &str,
    accepts: fn(&JsValue) -> bool,
) -> Result<Option<JsValue>, SoraError> {
    match get(opts, key) {
        Some(v) if !accepts(&v) => Err(invalid(key, rule, &v)),
        found => Ok(found),
    }
}

fn is_string(v: &JsValue) -> bool {
    // Not `is_string`: that is one more import, `as_string` is linked anyway.
    v.as_string().is_some()
}

fn is_positive_ms(v: &JsValue) -> bool {
    v.as_f64().is_some_and(|n| n > 0.0 && n.is_finite())
}

fn string(opts: &JsValue, key: &str) -> Result<Option<String>, SoraError> {
    Ok(read(opts, key, MUST_BE_STRING, is_string)?.and_then(|v| v.as_string()))
}

fn number(
    opts: &JsValue,
    key: &str,
    rule: &str,
    accepts: fn(&JsValue) -> bool,
    default: f64,
) -> Result<f64, SoraError> {
    Ok(read(opts, key, rule, accepts)?
        .and_then(|v| v.as_f64())
        .unwrap_or(default))
}

fn function(opts: &JsValue, key: &str) -> Result<Option<Function>, SoraError> {
    Ok(read(opts, key, MUST_BE_FUNCTION, JsValue::is_function)?.map(JsCast::unchecked_into))
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
        // Filled in place, in the order the options are checked: an error
        // then drops one half-built value instead of a different set of
        // locals at each `?`.
        let mut out = Options {
            base_url: String::new(),
            api_key: None,
            fetch: JsValue::UNDEFINED.unchecked_into(),
            signal: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_retries: 0,
            headers: Vec::new(),
            idempotency_key: None,
            on_progress: None,
            deadline_ms: DEFAULT_DEADLINE_MS,
            transport: Transport::Auto,
        };
        out.base_url = string(opts, "baseUrl")?
            .as_deref()
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/')
            .to_string();
        out.fetch = match function(opts, "fetch")? {
            Some(f) => f,
            None => get(&js_sys::global().into(), "fetch")
                .filter(JsValue::is_function)
                .ok_or_else(|| {
                    SoraError::invalid(
                        "fetch",
                        "fetch is not available in this runtime; pass options.fetch",
                    )
                })?
                .unchecked_into(),
        };
        out.signal = read(opts, "signal", "must be an AbortSignal", |s| {
            s.is_object() && Reflect::has(s, &"aborted".into()).unwrap_or(false)
        })?
        .map(JsCast::unchecked_into);
        out.max_retries = number(
            opts,
            "maxRetries",
            "must be a whole number from 0 to 10",
            |v| {
                v.as_f64()
                    .is_some_and(|n| (0.0..=10.0).contains(&n) && n.fract() == 0.0)
            },
            DEFAULT_MAX_RETRIES,
        )? as u32;
        if let Some(h) = read(
            opts,
            "headers",
            "must be an object of header names to strings",
            JsValue::is_object,
        )? {
            // `Object.entries` never holds undefined, so the first one ends it.
            let entries = Object::entries(h.unchecked_ref());
            let mut i = 0.0;
            while let Some(entry) = get_at(&entries, i) {
                let name = get_at(&entry, 0.0)
                    .and_then(|n| n.as_string())
                    .unwrap_or_default();
                let value = get_at(&entry, 1.0).unwrap_or(JsValue::UNDEFINED);
                let Some(text) = value.as_string() else {
                    return Err(invalid(
                        &["headers.", &name].concat(),
                        MUST_BE_STRING,
                        &value,
                    ));
                };
                out.headers.push((name, text));
                i += 1.0;
            }
        }
        out.idempotency_key = string(opts, "idempotencyKey")?;
        if let Some(key) = &out.idempotency_key {
            if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    "idempotencyKey",
                    "must be 1 to 255 printable ASCII characters",
                    &JsValue::from_str(key),
                ));
            }
        }
        out.on_progress = function(opts, "onProgress")?;
        out.transport = match read(
            opts,
            "transport",
            "must be one of \"auto\", \"poll\", \"events\"",
            |v| matches!(v.as_string().as_deref(), Some("auto" | "poll" | "events")),
        )?
        .and_then(|v| v.as_string())
        .as_deref()
        {
            Some("poll") => Transport::Poll,
            Some("events") => Transport::Events,
            _ => Transport::Auto,
        };
        out.api_key = string(opts, "apiKey")?.filter(|k| !k.is_empty());
        out.timeout_ms = number(
            opts,
            "timeoutMs",
            MUST_BE_MS,
            is_positive_ms,
            DEFAULT_TIMEOUT_MS,
        )?;
        out.deadline_ms = number(
            opts,
            "deadlineMs",
            MUST_BE_MS,
            is_positive_ms,
            DEFAULT_DEADLINE_MS,
        )?;
        Ok(out)
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
