//! The sora-edge worker (docs/API.md, part 2) on workers-rs: routing, CORS, key
//! injection, body caps, validation and proxying in `#[event(fetch)]`; one
//! Durable Object per job ([`relay::JobRelay`]) for webhook relay.
//!
//! Every decision is plain Rust in `sora_edge::edge`, tested on the host;
//! this crate moves bytes between the client, the upstream and the objects.
//! The API key (secret `APIFRAME_API_KEY`) only ever goes into the
//! `X-API-Key` header of an upstream request and into the webhook signature
//! check. It is never logged. No upstream text reaches a client as it came:
//! bodies are rebuilt from known fields with every string redacted, headers
//! pass by rule (`sora_edge::edge::upstream`). Reads and streams are answered
//! only for jobs this worker created, without an upstream read for others.
#![forbid(unsafe_code)]

mod auth;
mod ledger;
mod relay;
mod respond;
#[cfg(feature = "test-routes")]
mod test_routes;
mod upstream;

use auth::{authenticate, turnstile, Caller};
use futures_util::StreamExt;
use ledger::LedgerCall;
use relay::RelayCall;
use respond::respond_raw;
use sora_edge::edge::auth::{
    check_ticket, may_read, mint_ticket, scoped_idempotency_key, AuthEnv, Refusal, TICKET_TTL_MS,
};
use sora_edge::edge::config::{Config, Env as EnvText};
use sora_edge::edge::headers::{too_large, MAX_BODY_BYTES, PASSED_RESPONSE_HEADERS};
use sora_edge::edge::ledger::QuotaEnv;
use sora_edge::edge::plan::{plan, plan_headers, Decision, Plan};
use sora_edge::edge::recent::{After, Before, Recent};
use sora_edge::edge::reply::Reply;
use sora_edge::edge::route::AdminChange;
use sora_edge::edge::upstream::{self as answers, Expected};
use sora_edge::edge::{generate, webhook, Route};
use std::collections::HashMap;
use upstream::{answer_reply, api_key, exchange, job_reply, named_headers, secrets, webhook_keys};
use wasm_bindgen::JsCast;
use worker::{event, Context, Date, Env, Method, Request, Response, Result};

pub use ledger::Ledger;
pub use relay::JobRelay;

/// The rate limiter on generate requests, per client (optional binding).
const GENERATE_LIMITER: &str = "RATE_LIMITER";
/// Job ids an isolate remembers as created here before it starts afresh.
const MAX_KNOWN_JOBS: usize = 10_000;

fn text(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|v| v.to_string())
}

thread_local! {
    /// The settings, decided once per isolate: an isolate runs one deployment's bindings.
    static CONFIG: std::cell::OnceCell<Config> = const { std::cell::OnceCell::new() };
    /// The job objects' recent answers to status reads.
    static RECENT: std::cell::RefCell<Recent> = std::cell::RefCell::new(Recent::default());
    /// Jobs this isolate knows were created through this worker (lower-case
    /// ids), with their owners: a job stays created and keeps its owner, so
    /// after the first lookup a status read needs no call to the job's
    /// object to know it. The owner check runs on every read all the same.
    static KNOWN: std::cell::RefCell<HashMap<String, Option<String>>> = std::cell::RefCell::new(HashMap::new());
}

fn remember_known(id: &str, owner: Option<&str>) {
    KNOWN.with(|known| {
        let mut known = known.borrow_mut();
        if known.len() >= MAX_KNOWN_JOBS {
            known.clear();
        }
        known.insert(id.to_ascii_lowercase(), owner.map(str::to_string));
    });
}

/// Whether `caller` may read job `id`: this worker created it, for them
/// (`may_read`). From this isolate's memory, else from the job's object.
async fn known(env: &Env, id: &str, caller: &Caller) -> Result<bool> {
    let subject = caller.bound_subject();
    let cached = KNOWN.with(|known| known.borrow().get(&id.to_ascii_lowercase()).cloned());
    let owner = match cached {
        Some(owner) => owner,
        None => match RelayCall::new(env, id).known().await? {
            Some(owner) => {
                remember_known(id, owner.as_deref());
                owner
            }
            None => return Ok(false),
        },
    };
    Ok(may_read(owner.as_deref(), subject))
}

/// The worker's settings from its bindings.
pub(crate) fn config_of(env: &Env) -> Config {
    CONFIG.with(|config| config.get_or_init(|| read_config(env)).clone())
}

fn read_config(env: &Env) -> Config {
    Config::from_env(&EnvText {
        base_url: text(env, "APIFRAME_BASE_URL"),
        allowed_origins: text(env, "ALLOWED_ORIGINS"),
        public_url: text(env, "PUBLIC_URL"),
        fallback_ms: text(env, "RELAY_FALLBACK_MS"),
        heartbeat_ms: text(env, "RELAY_HEARTBEAT_MS"),
        max_subscribers: text(env, "RELAY_MAX_SUBSCRIBERS"),
        streams_per_client: text(env, "RELAY_STREAMS_PER_CLIENT"),
        rate_limit_period_s: text(env, "RATE_LIMIT_PERIOD_S"),
        extra_sora_params: text(env, "EXTRA_SORA_PARAMS"),
        has_key: !api_key(env).is_empty(),
        auth: AuthEnv {
            jwks_url: text(env, "AUTH_JWKS_URL"),
            issuer: text(env, "AUTH_ISSUER"),
            audience: text(env, "AUTH_AUDIENCE"),
            hs256_secrets: [
                text(env, "AUTH_HS256_SECRET"),
                text(env, "AUTH_HS256_SECRET_PREVIOUS"),
            ],
            anonymous: text(env, "AUTH_ANONYMOUS"),
            turnstile_secret: text(env, "TURNSTILE_SECRET"),
            turnstile_verify_url: text(env, "TURNSTILE_VERIFY_URL"),
        },
        quotas: QuotaEnv {
            user_daily: text(env, "QUOTA_USER_DAILY_SECONDS"),
            global_daily: text(env, "QUOTA_GLOBAL_DAILY_SECONDS"),
            user_in_flight: text(env, "QUOTA_USER_IN_FLIGHT"),
            pro_weight: text(env, "QUOTA_PRO_WEIGHT"),
            ambiguous_ttl_ms: text(env, "QUOTA_AMBIGUOUS_TTL"),
        },
        rate_limit: text(env, "RATE_LIMIT"),
    })
}

/// The handler takes and returns the platform's `Request` and `Response`
/// (workers-rs's `FromRequest`/`IntoResponse` allow both): its own `Request`
/// conversion reads the `cf` object and re-parses the path on every request,
/// which a status read, the hot path, never uses.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    #[cfg(feature = "test-routes")]
    if let Some(res) = test_routes::route(&req, &env).await {
        return res;
    }
    let config = config_of(&env);
    // By name: iterating every header a browser sends costs crossings per
    // name and value, and `plan` reads only these.
    let raw_headers = req.headers();
    let method = req.method();
    let headers = named_headers(&raw_headers, plan_headers(&method));
    let plan = match plan(&method, &req.url(), &headers, &config) {
        Decision::Respond(reply) => return respond_raw(reply, &[]),
        Decision::Proceed(plan) => plan,
    };
    let address = raw_headers
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".to_string());
    if plan.route == Route::Webhook {
        let reply = relay_webhook(req.into(), &env).await;
        return respond_raw(internal_on_error(reply, &plan.route), &plan.cors);
    }
    if matches!(plan.route, Route::AdminLedger | Route::AdminChange(_)) {
        let reply = admin(req, &env, &plan.route).await;
        return respond_raw(internal_on_error(reply, &plan.route), &plan.cors);
    }
    let caller = match caller_of(&req, &env, &config, &plan.route, &address).await {
        Ok(caller) => caller,
        Err(refusal) => return respond_raw(refusal.reply(), &plan.cors),
    };
    let reply = match &plan.route {
        Route::Generate => generate_job(req, &env, &config, &plan, &caller, &address).await,
        Route::Job(id) => return read_job(&env, &config, &plan, id, &caller).await,
        Route::Events(id) => {
            return events(&req.into(), &env, &plan, id, &caller, &address)
                .await
                .map(Into::into)
        }
        Route::Ticket(id) => ticket(&env, id, &caller).await,
        Route::Usage => usage(&env, &config, &caller).await,
        Route::Webhook | Route::AdminLedger | Route::AdminChange(_) => {
            unreachable!("answered above")
        }
    };
    respond_raw(internal_on_error(reply, &plan.route), &plan.cors)
}

/// A handler's reply, or the worker's own 500 when it failed (logged).
fn internal_on_error(reply: Result<Reply>, route: &Route) -> Reply {
    reply.unwrap_or_else(|e| {
        worker::console_error!("edge: {route:?} failed: {e}");
        Reply::error(500, "internal", "the worker failed to handle this request")
    })
}

/// Who is calling: by the identity mode, or for an events stream by a
/// ticket in its URL (an `EventSource` sends no headers).
async fn caller_of(
    req: &web_sys::Request,
    env: &Env,
    config: &Config,
    route: &Route,
    address: &str,
) -> std::result::Result<Caller, Refusal> {
    if let (Route::Events(id), Some(ticket)) = (route, ticket_in(&req.url())) {
        if let Err(problem) = &config.auth.mode {
            return Err(Refusal::NotConfigured(problem.clone()));
        }
        let subject = check_ticket(&api_key(env), &ticket, id, Date::now().as_millis())?;
        return Ok(Caller {
            bound: config.auth.uses_tokens(),
            subject,
            quota_seconds: None,
        });
    }
    authenticate(config, &req.headers(), address).await
}

/// The `ticket` query parameter of a URL.
fn ticket_in(url: &str) -> Option<String> {
    let url = worker::Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(name, _)| name == "ticket")
        .map(|(_, value)| value.into_owned())
}

/// The operator's view of the ledger, with `Authorization: Bearer
/// $ADMIN_TOKEN` (a secret of its own, not the API key): a day's audit rows
/// as NDJSON, or a grant or block for a subject's day (itself an audit row).
async fn admin(req: web_sys::Request, env: &Env, route: &Route) -> Result<Reply> {
    let expected = env
        .secret("ADMIN_TOKEN")
        .map(|s| s.to_string())
        .unwrap_or_default();
    if expected.is_empty() {
        return Ok(Refusal::NotConfigured("ADMIN_TOKEN is not set".into()).reply());
    }
    let authorization = req.headers().get("authorization").ok().flatten();
    let given = sora_edge::edge::auth::bearer(authorization.as_deref(), None).unwrap_or("");
    // Compared as digests: equal lengths, and nothing of the token in a timing.
    let digest = |text: &str| -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes()).into()
    };
    if digest(given) != digest(&expected) {
        return Ok(Reply::error(
            401,
            "token_invalid",
            "the admin routes need Authorization: Bearer $ADMIN_TOKEN",
        ));
    }
    let ledger = LedgerCall::new(env);
    match route {
        Route::AdminLedger => {
            let day = worker::Url::parse(&req.url()).ok().and_then(|url| {
                url.query_pairs()
                    .find(|(n, _)| n == "day")
                    .map(|(_, v)| v.into_owned())
            });
            let day = match day.as_deref().map(day_number) {
                None => sora_edge::edge::ledger::day_of(Date::now().as_millis()),
                Some(Some(day)) => day,
                Some(None) => {
                    return Ok(Reply::invalid("day", "day must be a UTC date, YYYY-MM-DD"))
                }
            };
            let mut reply = Reply::json(ledger.audit(day).await?);
            reply
                .headers
                .push(("content-type".into(), "application/x-ndjson".into()));
            Ok(reply)
        }
        Route::AdminChange(change) => {
            let body = match read_body(Request::from(req)).await? {
                Ok(body) => body,
                Err(reply) => return Ok(reply),
            };
            #[derive(serde::Deserialize)]
            struct Asked {
                subject: String,
                seconds: Option<u64>,
            }
            let Ok(asked) = serde_json::from_slice::<Asked>(&body) else {
                return Ok(Reply::invalid(
                    "body",
                    "body must be {\"subject\": string, \"seconds\"?: whole number}",
                ));
            };
            let block = *change == AdminChange::Block;
            if !block && asked.seconds.is_none() {
                return Ok(Reply::invalid("seconds", "a grant names its seconds"));
            }
            ledger
                .change(&ledger::Change {
                    subject: asked.subject,
                    seconds: asked.seconds,
                    block,
                })
                .await?;
            Ok(Reply::json("{\"ok\":true}".to_string()))
        }
        _ => Ok(Reply::not_found("/api/admin")),
    }
}

/// The day number of a `YYYY-MM-DD` UTC date, by the platform's calendar.
fn day_number(text: &str) -> Option<u64> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let ms = js_sys::Date::parse(&format!("{text}T00:00:00Z"));
    (shaped && ms.is_finite() && ms >= 0.0).then(|| sora_edge::edge::ledger::day_of(ms as u64))
}

/// The caller's quota figures for the day, from the ledger.
async fn usage(env: &Env, config: &Config, caller: &Caller) -> Result<Reply> {
    if let Err(problem) = &config.quotas {
        return Ok(Refusal::NotConfigured(problem.clone()).reply());
    }
    let usage = LedgerCall::new(env)
        .usage(&caller.subject, caller.quota_seconds)
        .await?;
    Ok(Reply::json(serde_json::to_string(&usage)?))
}

/// A ticket for the caller to open job `id`'s events stream with.
async fn ticket(env: &Env, id: &str, caller: &Caller) -> Result<Reply> {
    if !known(env, id, caller).await? {
        return Ok(Reply::unknown_job());
    }
    let expires_at = Date::now().as_millis() + TICKET_TTL_MS;
    let ticket = mint_ticket(&api_key(env), id, &caller.subject, expires_at);
    Ok(Reply::json(
        serde_json::json!({ "ticket": ticket, "expiresAt": expires_at }).to_string(),
    ))
}

/// A 429 when `binding` is bound and says no for this client.
async fn limited(
    env: &Env,
    config: &Config,
    binding: &str,
    client: &str,
    what: &str,
) -> Option<Reply> {
    if !config.rate_limit {
        return None;
    }
    let limiter = env.rate_limiter(binding).ok()?;
    let outcome = limiter.limit(client.to_string()).await.ok()?;
    (!outcome.success).then(|| {
        Reply::rate_limited(
            &format!(
                "too many {what} from this client; retry after {} s",
                config.rate_limit_period_s
            ),
            config.rate_limit_period_s,
        )
    })
}

/// Reads at most [`MAX_BODY_BYTES`] of a body.
///
/// # Errors
/// The 413 reply when it is longer.
async fn read_body(mut req: Request) -> Result<std::result::Result<Vec<u8>, Reply>> {
    let mut body = Vec::new();
    let Ok(mut stream) = req.stream() else {
        return Ok(Ok(body));
    };
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk?);
        if body.len() > MAX_BODY_BYTES {
            return Ok(Err(too_large(body.len() as u64)));
        }
    }
    Ok(Ok(body))
}

/// A generate: the caller's rate limit (by subject) and Turnstile check,
/// the body's rules, then upstream with the caller's Idempotency-Key scoped
/// to them; the job is recorded as the caller's.
async fn generate_job(
    req: web_sys::Request,
    env: &Env,
    config: &Config,
    plan: &Plan,
    caller: &Caller,
    address: &str,
) -> Result<Reply> {
    if let Some(reply) = limited(
        env,
        config,
        GENERATE_LIMITER,
        &caller.subject,
        "generate requests",
    )
    .await
    {
        return Ok(reply);
    }
    let forward = scoped_forward(&plan.forward, &caller.subject);
    let retry_key = forward
        .iter()
        .find(|(name, _)| name == "idempotency-key")
        .map(|(_, key)| key.as_str());
    if let Err(refusal) = turnstile(config, &req.headers(), address, retry_key).await {
        return Ok(refusal.reply());
    }
    let body = match read_body(req.into()).await? {
        Ok(body) => body,
        Err(reply) => return Ok(reply),
    };
    let rewritten = match generate::rewrite(
        &body,
        config.webhook_url.as_deref(),
        &config.extra_sora_params,
    ) {
        Ok(body) => body,
        Err(reply) => return Ok(reply),
    };
    let forward = with_own_idempotency_key(forward);
    let rewritten_copy = rewritten.clone();
    let reservation = match reserve(env, config, caller, &forward, &rewritten).await {
        Ok(reservation) => reservation,
        Err(reply) => return Ok(reply),
    };
    let answer = exchange(
        env,
        config,
        Method::Post,
        "/v2/videos/generate",
        &forward,
        Some(rewritten),
    )
    .await;
    let reply = answer_reply(env, Expected::Submitted, answer);
    let job = (200..300)
        .contains(&reply.status)
        .then(|| answers::submitted_job_id(&reply.body))
        .flatten();
    if let Some(reservation) = &reservation {
        let replay = ledger::Replay {
            id: reservation.clone(),
            body: rewritten_copy,
            headers: forward.clone(),
            owner: caller.bound_subject().map(str::to_string),
        };
        settle_submit(env, &replay, reply.status, job.as_deref()).await;
    }
    if let Some(id) = &job {
        record_created(env, id, caller.bound_subject(), reservation.as_deref()).await;
    }
    Ok(reply)
}

/// Reserves the generate's seconds in the ledger before anything is
/// forwarded, when quotas are on: `Ok(None)` when they are off.
///
/// # Errors
/// The reply instead: 429 `quota_exceeded` past a limit, 503 when the
/// quotas are misconfigured or the ledger cannot be reached.
async fn reserve(
    env: &Env,
    config: &Config,
    caller: &Caller,
    forward: &[(String, String)],
    body: &str,
) -> std::result::Result<Option<String>, Reply> {
    let quotas = config
        .quotas
        .as_ref()
        .map_err(|problem| Refusal::NotConfigured(problem.clone()).reply())?;
    if !quotas.any() {
        return Ok(None);
    }
    let (model, duration) = generate::model_and_duration(body);
    let request = ledger::Reserve {
        subject: caller.subject.clone(),
        key: forward
            .iter()
            .find(|(name, _)| name == "idempotency-key")
            .map(|(_, key)| key.clone()),
        seconds: quotas.seconds(&model, duration),
        user_limit: caller.quota_seconds,
    };
    match LedgerCall::new(env).reserve(&request).await {
        Ok(Ok(id)) => Ok(Some(id)),
        Ok(Err(exceeded)) => Err(quota_exceeded(&exceeded)),
        Err(e) => {
            worker::console_error!("edge: the quota ledger could not be reached: {e}");
            Err(Reply::error(
                503,
                "ledger_unavailable",
                "the quota ledger cannot be reached; nothing was sent, retry shortly",
            )
            .with_header("retry-after", "5"))
        }
    }
}

/// The 429 for a generate past a limit: which one, and what is left.
fn quota_exceeded(exceeded: &sora_edge::edge::ledger::Exceeded) -> Reply {
    let unit = if exceeded.limit == "user_in_flight" {
        "jobs"
    } else {
        "s of video"
    };
    let mut reply = Reply::error(
        429,
        "quota_exceeded",
        &format!(
            "the {} quota is spent ({} {unit} left); retry after {} s",
            exceeded.limit, exceeded.left, exceeded.retry_after_s
        ),
    )
    .with_header("retry-after", &exceeded.retry_after_s.to_string());
    if let Ok(mut body) = serde_json::from_str::<serde_json::Value>(&reply.body) {
        body["error"]["limit"] = exceeded.limit.into();
        body["error"]["left"] = exceeded.left.into();
        reply.body = body.to_string();
    }
    reply
}

/// What the upstream's answer to a generate means for its reservation: a
/// job attaches to it; a refusal (4xx: no job) releases it; anything else
/// (5xx, a timeout, a reset) may or may not have made a job, so it stays
/// reserved, and the ledger keeps the request to replay it once itself
/// with the same Idempotency-Key if no client retry finds the job first;
/// failing both, it releases it after `QUOTA_AMBIGUOUS_TTL` (flagged).
async fn settle_submit(env: &Env, replay: &ledger::Replay, status: u16, job: Option<&str>) {
    let ledger = LedgerCall::new(env);
    let done = match job {
        Some(job) => ledger.attach(&replay.id, job).await,
        None if (400..500).contains(&status) => ledger.release(&replay.id).await,
        None => ledger.ambiguous(replay).await,
    };
    if let Err(e) = done {
        worker::console_error!("edge: the quota ledger did not take the generate's outcome: {e}");
    }
}

/// The headers to forward, with the client's Idempotency-Key scoped to
/// `subject`: the same key from another caller never finds this one's job.
fn scoped_forward(forward: &[(String, String)], subject: &str) -> Vec<(String, String)> {
    forward
        .iter()
        .map(|(name, value)| match name.as_str() {
            "idempotency-key" => (name.clone(), scoped_idempotency_key(subject, value)),
            _ => (name.clone(), value.clone()),
        })
        .collect()
}

/// The headers with an Idempotency-Key of the worker's own when the client
/// sent none: every generate upstream is then one the upstream can tell
/// from a retry, and its ledger reservation has a key to be found by.
fn with_own_idempotency_key(mut forward: Vec<(String, String)>) -> Vec<(String, String)> {
    if !forward.iter().any(|(name, _)| name == "idempotency-key") {
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        if let Ok(crypto) = global.crypto() {
            forward.push(("idempotency-key".into(), crypto.random_uuid()));
        }
    }
    forward
}

/// Records in its object that job `id` was created here, trying twice. The
/// job exists upstream and bills either way: the client gets its id even if
/// both tries fail (the job is then unreadable through this worker, and the
/// failure is logged).
pub(crate) async fn record_created(
    env: &Env,
    id: &str,
    owner: Option<&str>,
    reservation: Option<&str>,
) {
    remember_known(id, owner);
    for attempt in 1..=2 {
        match RelayCall::new(env, id)
            .for_subject(owner)
            .submitted(reservation)
            .await
        {
            Ok(()) => return,
            Err(e) => worker::console_error!(
                "edge: recording job {id} failed (attempt {attempt} of 2): {e}"
            ),
        }
    }
}

/// A status read of a job this worker created (any other id is the
/// unknown job's 404, with no upstream read): with the relay on, as the
/// job's object answers it (it answers a finished job itself and merges a
/// running one's read); else the upstream's answer.
async fn read_job(
    env: &Env,
    config: &Config,
    plan: &Plan,
    id: &str,
    caller: &Caller,
) -> Result<web_sys::Response> {
    match known(env, id, caller).await {
        Ok(true) => {}
        Ok(false) => return respond_raw(Reply::unknown_job(), &plan.cors),
        Err(e) => {
            worker::console_error!("edge: could not tell whether job {id} is known: {e}");
            let reply = Reply::error(
                503,
                "unavailable",
                "the worker cannot look this job up right now; retry shortly",
            )
            .with_header("retry-after", "1");
            return respond_raw(reply, &plan.cors);
        }
    }
    if config.relay() {
        match relayed_read(env, config, plan, id, caller.bound_subject()).await {
            Ok(res) => return Ok(res),
            // Relay state unavailable: the upstream still knows the answer.
            Err(e) => worker::console_error!("edge: relay read failed for job {id}: {e}"),
        }
    }
    respond_raw(job_reply(env, config, &plan.forward, id).await, &plan.cors)
}

/// A status read with the relay on, crossing to the job's object only when
/// this isolate cannot tell its answer (`sora_edge::edge::recent`).
async fn relayed_read(
    env: &Env,
    config: &Config,
    plan: &Plan,
    id: &str,
    subject: Option<&str>,
) -> Result<web_sys::Response> {
    let now = Date::now().as_millis();
    // Made only when used: addressing an object hashes its name.
    let relay = || RelayCall::new(env, id).for_subject(subject);
    match RECENT.with(|r| r.borrow_mut().before_read(id, now)) {
        Before::Finished(job) => return respond_raw(Reply::json(job), &plan.cors),
        Before::ReadUpstream => {}
        Before::AskObject => {
            let accept = plan
                .forward
                .iter()
                .find(|(name, _)| name == "accept")
                .map(|(_, value)| value.as_str());
            let asked: Result<std::result::Result<Reply, Response>> = async {
                let mut res = relay().read(accept).await?;
                if res.status_code() != 200 {
                    return Ok(Err(res));
                }
                let headers = named_headers(&res.headers().0, &PASSED_RESPONSE_HEADERS);
                Ok(Ok(Reply {
                    status: 200,
                    headers,
                    body: res.text().await?,
                }))
            }
            .await;
            let job = match &asked {
                Ok(Ok(reply)) => Some(reply.body.clone()),
                _ => None,
            };
            RECENT.with(|r| r.borrow_mut().answered(id, job, None, now));
            return match asked? {
                Ok(reply) => respond_raw(reply, &plan.cors),
                // The object's own answer (a 404 for a job it cannot find), as it is.
                Err(res) => respond::with_cors(res, &plan.cors).map(Into::into),
            };
        }
    }
    let mut reply = job_reply(env, config, &plan.forward, id).await;
    if reply.status != 200 {
        return respond_raw(reply, &plan.cors);
    }
    match RECENT.with(|r| r.borrow_mut().after_read(id, &reply.body, now)) {
        After::Answer(job) => reply.body = job,
        After::AsRead => {}
        After::Merge => match relay().merge(reply.body.clone()).await {
            Ok(job) => {
                let read = std::mem::replace(&mut reply.body, job.clone());
                RECENT.with(|r| r.borrow_mut().answered(id, Some(job), Some(read), now));
            }
            // The read stands on its own; the object learns on its next read.
            Err(e) => {
                worker::console_error!("edge: relay merge failed for job {id}: {e}");
                RECENT.with(|r| r.borrow_mut().answered(id, None, None, now));
            }
        },
    }
    respond_raw(reply, &plan.cors)
}

/// An events stream, as the job's object opens it (it refuses jobs this
/// worker did not create, and caps streams per job and per client).
async fn events(
    req: &Request,
    env: &Env,
    plan: &Plan,
    id: &str,
    caller: &Caller,
    address: &str,
) -> Result<Response> {
    let last_event_id = req.headers().get("last-event-id").ok().flatten();
    let res = RelayCall::new(env, id)
        .for_subject(caller.bound_subject())
        .events(last_event_id.as_deref(), address)
        .await?;
    respond::with_cors(res, &plan.cors)
}

async fn relay_webhook(req: Request, env: &Env) -> Result<Reply> {
    let signature = req.headers().get("x-webhook-signature").ok().flatten();
    let body = match read_body(req).await? {
        Ok(body) => body,
        Err(reply) => return Ok(reply),
    };
    let [current, previous] = webhook_keys(env);
    if let Err(reply) = webhook::verify(&[&current, &previous], &body, signature.as_deref()) {
        return Ok(reply);
    }
    let (id, job) = match webhook::parse_event(&body) {
        Ok(event) => event,
        Err(reply) => return Ok(reply),
    };
    // What the object stores and streams is rebuilt as a status read is.
    let job = match answers::client_job(&serde_json::Value::Object(job), &secrets(env)) {
        Ok(job) => job,
        Err(_) => return Ok(Reply::invalid(
            "body",
            "the webhook's job lacks a documented field (id, status) or has one of the wrong type",
        )),
    };
    let changed = RelayCall::new(env, &id).webhook(job).await?;
    RECENT.with(|r| r.borrow_mut().forget(&id));
    Ok(Reply::json(format!(
        "{{\"received\":true,\"changed\":{changed}}}"
    )))
}
