//! Reading the options object: each option is read by name and checked here,
//! so a wrong type becomes an ordinary `invalid_request` that names the
//! option, the rule and the value, never a panic at the boundary.

use crate::core::auth::{is_apiframe_base, is_token_text};
use crate::core::request::check_idempotency_key;
use crate::core::value::shorten;
use crate::core::SoraError;
use js_sys::{Function, Object, JSON};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::AbortSignal;

const DEFAULT_BASE_URL: &str = "https://api.apiframe.ai";
const DEFAULT_TIMEOUT_MS: f64 = 30_000.0;
const DEFAULT_MAX_RETRIES: f64 = 3.0;
const DEFAULT_DEADLINE_MS: f64 = 15.0 * 60_000.0;

/// How `waitForJob` learns about changes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Events when the runtime and the server offer them, else polling.
    Auto,
    /// Status reads on the adaptive schedule.
    Poll,
    /// The event stream whenever the runtime has `EventSource`.
    Events,
}

/// The caller's bearer token for its worker: as given, or the function that
/// gives it (called once per request attempt, so a renewed token is used).
#[derive(Clone)]
pub enum Token {
    /// A string, sent as it is.
    Fixed(String),
    /// A function returning a string or a promise of one.
    Source(Function),
}

/// Every option of `ClientOptions`, `GenerateOptions` and `WaitOptions`.
#[derive(Clone)]
pub struct Options {
    pub base_url: String,
    pub api_key: Option<String>,
    /// `None` when absent, empty, or `baseUrl` is Apiframe's own host.
    pub token: Option<Token>,
    pub fetch: Function,
    pub signal: Option<AbortSignal>,
    pub timeout_ms: f64,
    pub max_retries: u32,
    pub headers: Vec<(String, String)>,
    /// The caller gave its own `fetch` or `headers`, which `EventSource` cannot use.
    pub custom_transport: bool,
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
    value: JsValue,
    key: &str,
    rule: &str,
    accepts: fn(&JsValue) -> bool,
) -> Result<Option<JsValue>, SoraError> {
    match value {
        v if v.is_undefined() => Ok(None),
        v if !accepts(&v) => Err(invalid(key, rule, &v)),
        v => Ok(Some(v)),
    }
}

fn is_string(v: &JsValue) -> bool {
    // Not `is_string`: that is one more import, `as_string` is linked anyway.
    v.as_string().is_some()
}

fn is_positive_ms(v: &JsValue) -> bool {
    v.as_f64().is_some_and(|n| n > 0.0 && n.is_finite())
}

fn string(value: JsValue, key: &str) -> Result<Option<String>, SoraError> {
    Ok(read(value, key, MUST_BE_STRING, is_string)?.and_then(|v| v.as_string()))
}

fn number(
    value: JsValue,
    key: &str,
    rule: &str,
    accepts: fn(&JsValue) -> bool,
    default: f64,
) -> Result<f64, SoraError> {
    Ok(read(value, key, rule, accepts)?
        .and_then(|v| v.as_f64())
        .unwrap_or(default))
}

fn function(value: JsValue, key: &str) -> Result<Option<Function>, SoraError> {
    Ok(read(value, key, MUST_BE_FUNCTION, JsValue::is_function)?.map(JsCast::unchecked_into))
}

/// The rule a token breaks, or `None`. Its value is never quoted, only its
/// type: a message about a wrong token must not carry it.
pub fn token_fault(value: &JsValue, rule: &str) -> Option<SoraError> {
    let fault = match value.as_string() {
        Some(text) if is_token_text(&text) => return None,
        Some(_) => "must be visible ASCII characters (no spaces or line breaks)",
        None => rule,
    };
    let kind = match value.js_typeof().as_string() {
        _ if value.is_null() => "null".to_string(),
        Some(kind) => kind,
        None => String::new(),
    };
    Some(SoraError::invalid(
        "token",
        ["token ", fault, " (got: ", &kind, ")"].concat(),
    ))
}

/// The `token` option, checked: `None` for absent or empty.
fn token(value: JsValue) -> Result<Option<Token>, SoraError> {
    if value.is_undefined() {
        return Ok(None);
    }
    if value.is_function() {
        return Ok(Some(Token::Source(value.unchecked_into())));
    }
    if let Some(fault) = token_fault(
        &value,
        "must be a string, or a function returning one or a Promise of one",
    ) {
        return Err(fault);
    }
    Ok(value
        .as_string()
        .filter(|t| !t.is_empty())
        .map(Token::Fixed))
}

impl Options {
    /// Reads `opts` (absent, or an object).
    ///
    /// # Errors
    /// `invalid_request` naming the first bad option.
    // Out of line: inlined into the export's state machine it measured
    // larger (gzip) than as a call.
    #[inline(never)]
    pub fn from_js(opts: Option<JsValue>) -> Result<Options, SoraError> {
        let opts = opts.unwrap_or_else(|| Object::new().into());
        if !opts.is_object() {
            return Err(invalid("options", "must be an object", &opts));
        }
        // Each option by name, as `Reflect.get`, not a derived serde struct
        // through serde-wasm-bindgen: that struct (its field visitor, its
        // `preserve`d members and serde-wasm-bindgen's object access) measured
        // 2,387 B gzip (4 % of the build) for eleven property reads.
        let get = |key: &str| js_sys::Reflect::get(&opts, &key.into()).unwrap_or_default();
        let custom_fetch = function(get("fetch"), "fetch")?;
        let given_headers = get("headers");
        let custom_transport = custom_fetch.is_some() || !given_headers.is_undefined();
        let fetch = match custom_fetch {
            Some(f) => f,
            None => js_sys::Reflect::get(&js_sys::global(), &"fetch".into())
                .ok()
                .filter(JsValue::is_function)
                .ok_or_else(|| {
                    SoraError::invalid(
                        "fetch",
                        "fetch is not available in this runtime; pass options.fetch",
                    )
                })?
                .unchecked_into(),
        };
        let mut headers = Vec::new();
        if let Some(h) = read(
            given_headers,
            "headers",
            "must be an object of header names to strings",
            JsValue::is_object,
        )? {
            for entry in Object::entries(h.unchecked_ref()).iter() {
                let entry: js_sys::Array = entry.unchecked_into();
                let name = entry.get(0).as_string().unwrap_or_default();
                let value = entry.get(1);
                let Some(text) = value.as_string() else {
                    return Err(invalid(
                        &["headers.", &name].concat(),
                        MUST_BE_STRING,
                        &value,
                    ));
                };
                headers.push((name, text));
            }
        }
        let idempotency_key = string(get("idempotencyKey"), "idempotencyKey")?;
        if let Some(key) = &idempotency_key {
            check_idempotency_key("idempotencyKey", key)?;
        }
        let transport = match read(
            get("transport"),
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
        let base_url = string(get("baseUrl"), "baseUrl")?
            .as_deref()
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/')
            .to_string();
        // The token is for the app's own worker: checked wherever it is
        // given, but never sent to Apiframe's own host.
        let token = token(get("token"))?.filter(|_| !is_apiframe_base(&base_url));
        Ok(Options {
            base_url,
            token,
            fetch,
            // Duck-typed, so that a polyfilled AbortSignal passes too.
            signal: read(get("signal"), "signal", "must be an AbortSignal", |s| {
                let member = |name: &str| js_sys::Reflect::get(s, &name.into()).unwrap_or_default();
                s.is_object()
                    && member("aborted").as_bool().is_some()
                    && member("addEventListener").is_function()
            })?
            .map(JsCast::unchecked_into),
            max_retries: number(
                get("maxRetries"),
                "maxRetries",
                "must be a whole number from 0 to 10",
                |v| {
                    v.as_f64()
                        .is_some_and(|n| (0.0..=10.0).contains(&n) && n.fract() == 0.0)
                },
                DEFAULT_MAX_RETRIES,
            )? as u32,
            headers,
            custom_transport,
            idempotency_key,
            on_progress: function(get("onProgress"), "onProgress")?,
            transport,
            api_key: string(get("apiKey"), "apiKey")?.filter(|k| !k.is_empty()),
            timeout_ms: number(
                get("timeoutMs"),
                "timeoutMs",
                MUST_BE_MS,
                is_positive_ms,
                DEFAULT_TIMEOUT_MS,
            )?,
            deadline_ms: number(
                get("deadlineMs"),
                "deadlineMs",
                MUST_BE_MS,
                is_positive_ms,
                DEFAULT_DEADLINE_MS,
            )?,
        })
    }
}

/// `Object.assign({}, base, extra)`: per-call options over the client's.
pub fn merge(base: &JsValue, extra: Option<JsValue>) -> JsValue {
    let target = Object::new();
    for source in [Some(base.clone()), extra].into_iter().flatten() {
        if source.is_object() {
            Object::assign(&target, source.unchecked_ref());
        }
    }
    target.into()
}
