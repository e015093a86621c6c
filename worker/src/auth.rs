//! Who is calling: the identity mode's checks at the edge. Every rule is
//! plain Rust in `sora_edge::edge::auth`; this module fetches the JWKS,
//! checks signatures with WebCrypto (`SubtleCrypto`, no crypto of ours),
//! asks Turnstile, and remembers per isolate what it may.

use crate::upstream::fetch_with_timeout;
use serde::Deserialize;
use sora_edge::edge::auth::{
    algorithm_allowed, anonymous_subject, bearer, check_claims, jwk_fits, parse, Mode, Refusal,
    Token,
};
use sora_edge::edge::config::Config;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Date;

/// Verified tokens remembered per isolate (by their SHA-256) before starting afresh.
const MAX_CACHED_TOKENS: usize = 10_000;
/// The JWKS is fetched again for an unknown `kid` at most this often.
const JWKS_REFETCH_MS: u64 = 60_000;
/// Per JWKS or Turnstile request.
const TIMEOUT_MS: u32 = 10_000;

/// Who a request comes from.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's `sub`, or `ip:<address>` when anonymous.
    pub subject: String,
    /// Whether jobs are bound to this subject (a token mode).
    pub bound: bool,
    /// The token's `quota_seconds` claim: this subject's daily limit.
    pub quota_seconds: Option<u64>,
}

impl Caller {
    /// The subject jobs are bound to: the caller's in a token mode, `None` when anonymous.
    pub fn bound_subject(&self) -> Option<&str> {
        self.bound.then_some(self.subject.as_str())
    }
}

/// One key of the JWKS, as the rules read it, with its JSON for WebCrypto.
#[derive(Clone)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    usage: Option<String>,
    json: String,
}

#[derive(Deserialize)]
struct JwkFields {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Default)]
struct Memory {
    /// SHA-256 of a verified token → (subject, exp in ms, its quota claim).
    tokens: HashMap<[u8; 32], (String, u64, Option<u64>)>,
    /// The JWKS, once fetched.
    jwks: Option<Vec<Jwk>>,
    /// When the JWKS was last fetched again for an unknown `kid` (ms).
    refetched_at: Option<u64>,
    /// Imported keys: HS256 secrets by index, JWKs by `kid` and alg.
    crypto_keys: HashMap<String, web_sys::CryptoKey>,
    /// Caller-scoped Idempotency-Keys whose generate passed Turnstile.
    turnstile_keys: std::collections::HashSet<String>,
}

thread_local! {
    static MEMORY: RefCell<Memory> = RefCell::new(Memory::default());
    static MODE_LOGGED: Cell<bool> = const { Cell::new(false) };
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// Logs the mode in effect, once per isolate; never a secret.
fn log_mode(config: &Config) {
    if MODE_LOGGED.with(|logged| logged.replace(true)) {
        return;
    }
    match &config.auth.mode {
        Ok(mode) => worker::console_log!("edge: identity mode {}", mode.name()),
        Err(problem) => worker::console_error!("edge: not configured: {problem}"),
    }
}

/// Who is calling, by the configured mode.
///
/// # Errors
/// The refusal: no mode or a bad one (503), no token, a bad or expired one
/// (401), the JWKS unreachable (503).
pub async fn authenticate(
    config: &Config,
    headers: &web_sys::Headers,
    address: &str,
) -> Result<Caller, Refusal> {
    log_mode(config);
    let mode = config
        .auth
        .mode
        .as_ref()
        .map_err(|problem| Refusal::NotConfigured(problem.clone()))?;
    if *mode == Mode::Anonymous {
        return Ok(Caller {
            subject: anonymous_subject(address),
            bound: false,
            quota_seconds: None,
        });
    }
    let authorization = headers.get("authorization").ok().flatten();
    let assertion = match mode {
        Mode::Jwks { .. } => headers.get("cf-access-jwt-assertion").ok().flatten(),
        _ => None,
    };
    let token = bearer(authorization.as_deref(), assertion.as_deref()).ok_or(Refusal::Required)?;
    let now = now_ms();
    let hash: [u8; 32] = sha_256(token);
    let cached = MEMORY.with(|m| m.borrow().tokens.get(&hash).cloned());
    if let Some((subject, exp_ms, quota_seconds)) = cached {
        if now < exp_ms {
            return Ok(Caller {
                subject,
                bound: true,
                quota_seconds,
            });
        }
    }
    let parsed = parse(token)?;
    if !algorithm_allowed(mode, &parsed.header.alg) {
        return Err(Refusal::Invalid(
            "its algorithm (alg) is not one this worker takes",
        ));
    }
    verify_signature(mode, &parsed).await?;
    let subject = check_claims(&parsed.claims, &config.auth, now as f64 / 1000.0)?;
    let exp_ms = parsed.claims.expires_ms().unwrap_or(now);
    let quota_seconds = parsed.claims.quota_seconds();
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.tokens.len() >= MAX_CACHED_TOKENS {
            m.tokens.retain(|_, (_, exp, _)| now < *exp);
            if m.tokens.len() >= MAX_CACHED_TOKENS {
                m.tokens.clear();
            }
        }
        m.tokens
            .insert(hash, (subject.clone(), exp_ms, quota_seconds));
    });
    Ok(Caller {
        subject,
        bound: true,
        quota_seconds,
    })
}

fn sha_256(text: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).into()
}

fn subtle() -> Result<web_sys::SubtleCrypto, JsValue> {
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(global.crypto()?.subtle())
}

/// A plain object from string pairs (WebCrypto's algorithm parameters).
fn object(pairs: &[(&str, &str)]) -> js_sys::Object {
    let object = js_sys::Object::new();
    for (name, value) in pairs {
        let _ = js_sys::Reflect::set(&object, &(*name).into(), &(*value).into());
    }
    object
}

/// The import and verify parameters of a JWS algorithm.
fn params(alg: &str) -> (js_sys::Object, js_sys::Object) {
    match alg {
        "HS256" => (
            object(&[("name", "HMAC"), ("hash", "SHA-256")]),
            object(&[("name", "HMAC")]),
        ),
        "RS256" => (
            object(&[("name", "RSASSA-PKCS1-v1_5"), ("hash", "SHA-256")]),
            object(&[("name", "RSASSA-PKCS1-v1_5")]),
        ),
        _ => (
            object(&[("name", "ECDSA"), ("namedCurve", "P-256")]),
            object(&[("name", "ECDSA"), ("hash", "SHA-256")]),
        ),
    }
}

async fn import(
    format: &str,
    data: &js_sys::Object,
    alg: &str,
) -> Result<web_sys::CryptoKey, JsValue> {
    let usages = js_sys::Array::of1(&"verify".into());
    let (import_params, _) = params(alg);
    let promise = subtle()?.import_key_with_object(format, data, &import_params, false, &usages)?;
    JsFuture::from(promise).await?.dyn_into()
}

async fn verify_with(key: &web_sys::CryptoKey, alg: &str, token: &Token) -> Result<bool, JsValue> {
    let (_, verify_params) = params(alg);
    let promise = subtle()?.verify_with_object_and_u8_array_and_u8_array(
        &verify_params,
        key,
        &token.signature,
        token.signed.as_bytes(),
    )?;
    Ok(JsFuture::from(promise).await?.as_bool().unwrap_or(false))
}

/// An imported key, remembered per isolate under `name`.
async fn key_for(
    name: &str,
    format: &str,
    data: impl FnOnce() -> Result<js_sys::Object, JsValue>,
    alg: &str,
) -> Result<web_sys::CryptoKey, JsValue> {
    if let Some(key) = MEMORY.with(|m| m.borrow().crypto_keys.get(name).cloned()) {
        return Ok(key);
    }
    let key = import(format, &data()?, alg).await?;
    MEMORY.with(|m| {
        m.borrow_mut()
            .crypto_keys
            .insert(name.to_string(), key.clone())
    });
    Ok(key)
}

async fn verify_signature(mode: &Mode, token: &Token) -> Result<(), Refusal> {
    let bad_signature = Refusal::Invalid("its signature does not verify");
    match mode {
        Mode::Hs256 { secrets } => {
            for (i, secret) in secrets.iter().enumerate() {
                let key = key_for(
                    &format!("hs256:{i}"),
                    "raw",
                    || Ok(js_sys::Uint8Array::from(secret.as_bytes()).into()),
                    "HS256",
                )
                .await
                .map_err(|_| bad_signature.clone())?;
                if verify_with(&key, "HS256", token).await.unwrap_or(false) {
                    return Ok(());
                }
            }
            Err(bad_signature)
        }
        Mode::Jwks { url } => {
            let alg = token.header.alg.as_str();
            let jwk = jwk_for(url, token.header.kid.as_deref(), alg).await?;
            let key = key_for(
                &format!("jwk:{}:{alg}", jwk.kid.as_deref().unwrap_or("")),
                "jwk",
                || js_sys::JSON::parse(&jwk.json).map(JsCast::unchecked_into),
                alg,
            )
            .await
            .map_err(|_| Refusal::Invalid("its key in the JWKS cannot be used"))?;
            match verify_with(&key, alg, token).await {
                Ok(true) => Ok(()),
                _ => Err(bad_signature),
            }
        }
        Mode::Anonymous => Err(Refusal::Invalid("this worker takes no tokens")),
    }
}

/// The JWK for a token's `kid` and `alg`: from this isolate's copy of the
/// JWKS, fetched again when the `kid` is unknown (at most once a minute).
async fn jwk_for(url: &str, kid: Option<&str>, alg: &str) -> Result<Jwk, Refusal> {
    // `Ok(Some)`: the key. `Ok(None)`: the copy has no key of that kid (or,
    // without a kid, none that fits). `Err`: the kid's key is of another kind.
    let find =
        || {
            MEMORY.with(|m| {
                let m = m.borrow();
                let keys = m.jwks.iter().flatten();
                let fits = |k: &&Jwk| {
                    jwk_fits(
                        alg,
                        &k.kty,
                        k.crv.as_deref(),
                        k.alg.as_deref(),
                        k.usage.as_deref(),
                    )
                };
                match kid {
                    Some(kid) => {
                        match keys
                            .filter(|k| k.kid.as_deref() == Some(kid))
                            .collect::<Vec<_>>()
                        {
                            named if named.is_empty() => Ok(None),
                            named => named.into_iter().find(fits).cloned().map(Some).ok_or(
                                Refusal::Invalid(
                                    "its algorithm (alg) does not fit its key in the JWKS",
                                ),
                            ),
                        }
                    }
                    None => Ok(keys.clone().find(fits).cloned()),
                }
            })
        };
    if let Some(jwk) = find()? {
        return Ok(jwk);
    }
    // The first fetch, or a refetch for a kid the copy lacks: at most once a minute.
    let now = now_ms();
    let (fetched, refetched_at) = MEMORY.with(|m| {
        let m = m.borrow();
        (m.jwks.is_some(), m.refetched_at)
    });
    if fetched {
        if refetched_at.is_some_and(|at| now < at + JWKS_REFETCH_MS) {
            return Err(Refusal::Invalid("its key id (kid) is not in the JWKS"));
        }
        MEMORY.with(|m| m.borrow_mut().refetched_at = Some(now));
    }
    match fetch_jwks(url).await {
        Ok(keys) => MEMORY.with(|m| {
            let mut m = m.borrow_mut();
            m.jwks = Some(keys);
            m.crypto_keys.retain(|name, _| !name.starts_with("jwk:"));
        }),
        Err(e) => {
            worker::console_error!("edge: the JWKS at AUTH_JWKS_URL could not be fetched: {e}");
            if !fetched {
                return Err(Refusal::Unavailable);
            }
        }
    }
    find()?.ok_or(Refusal::Invalid("its key id (kid) is not in the JWKS"))
}

async fn fetch_jwks(url: &str) -> Result<Vec<Jwk>, String> {
    let text = get_text(url).await?;
    let jwks: Jwks =
        serde_json::from_str(&text).map_err(|_| "not a JWKS (JSON with keys)".to_string())?;
    Ok(jwks
        .keys
        .into_iter()
        .filter_map(|value| {
            let fields: JwkFields = serde_json::from_value(value.clone()).ok()?;
            Some(Jwk {
                kid: fields.kid,
                kty: fields.kty,
                crv: fields.crv,
                alg: fields.alg,
                usage: fields.usage,
                json: value.to_string(),
            })
        })
        .collect())
}

/// One GET, its body as text; an error names the status, never the body.
async fn get_text(url: &str) -> Result<String, String> {
    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    let res = fetch_with_timeout(url, &init, TIMEOUT_MS)
        .await
        .0
        .map_err(|_| "unreachable".to_string())?;
    if !res.ok() {
        return Err(format!("HTTP {}", res.status()));
    }
    let text = JsFuture::from(res.text().map_err(|_| "no body".to_string())?)
        .await
        .map_err(|_| "no body".to_string())?;
    Ok(text.as_string().unwrap_or_default())
}

/// Checks generate's Turnstile token at siteverify, when Turnstile is on.
///
/// Turnstile tokens are single-use, so a retry of a generate whose token
/// was verified (the same caller-scoped Idempotency-Key, `retry_key`) needs
/// no new one. That memory is this isolate's: a retry that lands on another
/// needs a fresh token.
///
/// # Errors
/// `turnstile_required` without a token; `turnstile_failed` when siteverify
/// says no or cannot be asked.
pub async fn turnstile(
    config: &Config,
    headers: &web_sys::Headers,
    address: &str,
    retry_key: Option<&str>,
) -> Result<(), Refusal> {
    let Some((secret, verify_url)) = &config.auth.turnstile else {
        return Ok(());
    };
    let verified_before =
        retry_key.is_some_and(|key| MEMORY.with(|m| m.borrow().turnstile_keys.contains(key)));
    if verified_before {
        return Ok(());
    }
    let response = headers
        .get("cf-turnstile-response")
        .ok()
        .flatten()
        .filter(|t| !t.is_empty() && t.len() <= 2048)
        .ok_or(Refusal::TurnstileRequired)?;
    #[derive(Deserialize)]
    struct Verdict {
        success: bool,
    }
    let asked: Result<bool, JsValue> = async {
        let form = web_sys::UrlSearchParams::new()?;
        form.append("secret", secret);
        form.append("response", &response);
        form.append("remoteip", address);
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&form.into());
        let res = fetch_with_timeout(verify_url, &init, TIMEOUT_MS).await.0?;
        let text = JsFuture::from(res.text()?)
            .await?
            .as_string()
            .unwrap_or_default();
        Ok(serde_json::from_str::<Verdict>(&text).is_ok_and(|v| v.success))
    }
    .await;
    match asked {
        Ok(true) => {
            if let Some(key) = retry_key {
                MEMORY.with(|m| {
                    let mut m = m.borrow_mut();
                    if m.turnstile_keys.len() >= MAX_CACHED_TOKENS {
                        m.turnstile_keys.clear();
                    }
                    m.turnstile_keys.insert(key.to_string());
                });
            }
            Ok(())
        }
        Ok(false) => Err(Refusal::TurnstileFailed),
        Err(_) => {
            worker::console_error!("edge: Turnstile's siteverify could not be asked");
            Err(Refusal::TurnstileFailed)
        }
    }
}
