//! Who may spend: the worker's identity modes and every rule about a
//! caller's token that is not the signature check itself (that is
//! WebCrypto's, in the worker): the mode from the environment, reading a
//! JWT's header and claims, the claim rules, event-stream tickets, and the
//! caller-scoped Idempotency-Key.
//!
//! The algorithm always comes from the configuration, never from the token:
//! HS256 in secret mode, RS256 or ES256 (matching the JWK's key type) in
//! JWKS mode. `none`, and HS256 in JWKS mode, are refused before any key is
//! touched, so HS/RS confusion cannot happen.

use super::reply::Reply;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

/// The longest token read (8 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Leeway on `nbf` and `iat`, for clocks that disagree.
pub const LEEWAY_S: f64 = 60.0;
/// How long an event-stream ticket is good for.
pub const TICKET_TTL_MS: u64 = 60_000;
/// The shortest HS256 secret taken (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Turnstile's siteverify when `TURNSTILE_VERIFY_URL` is unset.
pub const DEFAULT_TURNSTILE_VERIFY_URL: &str =
    "https://challenges.cloudflare.com/turnstile/v0/siteverify";

/// The identity mode's settings as they come from the environment.
#[derive(Clone, Debug, Default)]
pub struct AuthEnv {
    /// `AUTH_JWKS_URL`.
    pub jwks_url: Option<String>,
    /// `AUTH_ISSUER`.
    pub issuer: Option<String>,
    /// `AUTH_AUDIENCE`.
    pub audience: Option<String>,
    /// `AUTH_HS256_SECRET` and `AUTH_HS256_SECRET_PREVIOUS`.
    pub hs256_secrets: [Option<String>; 2],
    /// `AUTH_ANONYMOUS`.
    pub anonymous: Option<String>,
    /// `TURNSTILE_SECRET`.
    pub turnstile_secret: Option<String>,
    /// `TURNSTILE_VERIFY_URL`.
    pub turnstile_verify_url: Option<String>,
}

/// How callers are known.
#[derive(Clone, PartialEq, Eq)]
pub enum Mode {
    /// Bearer JWTs checked against an identity provider's JWKS (RS256, ES256).
    Jwks {
        /// Where the keys are.
        url: String,
    },
    /// HS256 JWTs minted by the app's backend with one of these secrets.
    Hs256 {
        /// The current secret, then the previous one during a rotation.
        secrets: Vec<String>,
    },
    /// No identity: callers are keyed by their address.
    Anonymous,
}

impl std::fmt::Debug for Mode {
    // By hand: a derived Debug would print the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Mode {
    /// The mode as the worker logs it (never a secret).
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Jwks { .. } => "JWKS (AUTH_JWKS_URL)",
            Mode::Hs256 { .. } => "HS256 (AUTH_HS256_SECRET)",
            Mode::Anonymous => "anonymous (AUTH_ANONYMOUS=on)",
        }
    }
}

/// The identity settings the worker runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    /// The mode, or what is wrong with the configuration (503 `not_configured`).
    pub mode: Result<Mode, String>,
    /// `iss` every token must carry, when set.
    pub issuer: Option<String>,
    /// An `aud` every token must carry, when set.
    pub audience: Option<String>,
    /// Turnstile's secret and siteverify URL, when generate needs a Turnstile token.
    pub turnstile: Option<(String, String)>,
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Whether `text` is an absolute https URL, or http on this machine (tests).
fn is_key_url(text: &str) -> bool {
    Url::parse(text).is_ok_and(|url| match url.scheme() {
        "https" => url.has_host(),
        "http" => matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
        _ => false,
    })
}

impl Auth {
    /// Decides the mode. Fails closed: nothing set, two modes, or a value
    /// that does not parse is a problem that names the variable, never a
    /// silent default.
    pub fn from_env(env: &AuthEnv) -> Auth {
        let jwks = set(&env.jwks_url);
        let secrets: Vec<&str> = env.hs256_secrets.iter().filter_map(set).collect();
        let anonymous = match set(&env.anonymous).map(str::to_ascii_lowercase).as_deref() {
            None | Some("off") => Ok(false),
            Some("on") => Ok(true),
            Some(_) => Err("AUTH_ANONYMOUS must be \"on\" or \"off\"".to_string()),
        };
        let chosen = [jwks.is_some(), !secrets.is_empty(), anonymous == Ok(true)]
            .iter()
            .filter(|&&on| on)
            .count();
        let mode = match (jwks, anonymous) {
            (_, Err(problem)) => Err(problem),
            _ if chosen > 1 => Err(
                "more than one identity mode is set (AUTH_JWKS_URL, AUTH_HS256_SECRET, AUTH_ANONYMOUS): set exactly one"
                    .to_string(),
            ),
            _ if chosen == 0 => Err(
                "no identity mode is set: set AUTH_JWKS_URL (tokens from your identity provider), AUTH_HS256_SECRET (tokens your backend mints) or AUTH_ANONYMOUS=on (anyone may spend)"
                    .to_string(),
            ),
            (Some(url), _) if !is_key_url(url) => {
                Err("AUTH_JWKS_URL must be an absolute https URL".to_string())
            }
            (Some(url), _) => Ok(Mode::Jwks {
                url: url.to_string(),
            }),
            (None, Ok(true)) => Ok(Mode::Anonymous),
            (None, Ok(false)) if set(&env.hs256_secrets[0]).is_none() => Err(
                "AUTH_HS256_SECRET_PREVIOUS is set without AUTH_HS256_SECRET".to_string(),
            ),
            (None, Ok(false)) if secrets.iter().any(|s| s.len() < MIN_HS256_SECRET_BYTES) => {
                Err(format!(
                    "AUTH_HS256_SECRET (and AUTH_HS256_SECRET_PREVIOUS) must be at least {MIN_HS256_SECRET_BYTES} bytes"
                ))
            }
            (None, Ok(false)) => Ok(Mode::Hs256 {
                secrets: secrets.iter().map(|s| s.to_string()).collect(),
            }),
        };
        let verify_url = set(&env.turnstile_verify_url).unwrap_or(DEFAULT_TURNSTILE_VERIFY_URL);
        let turnstile = set(&env.turnstile_secret).map(|s| (s.to_string(), verify_url.to_string()));
        let mode = match mode {
            Ok(_) if turnstile.is_some() && !is_key_url(verify_url) => {
                Err("TURNSTILE_VERIFY_URL must be an absolute https URL".to_string())
            }
            mode => mode,
        };
        Auth {
            mode,
            issuer: set(&env.issuer).map(str::to_string),
            audience: set(&env.audience).map(str::to_string),
            turnstile,
        }
    }

    /// Whether callers carry tokens (and jobs are bound to their subjects).
    pub fn uses_tokens(&self) -> bool {
        matches!(self.mode, Ok(Mode::Jwks { .. } | Mode::Hs256 { .. }))
    }
}

/// Why a caller is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401 `auth_required`: no token.
    Required,
    /// 401 `token_invalid`, with what is wrong (never the token).
    Invalid(&'static str),
    /// 401 `token_expired`.
    Expired,
    /// 503 `not_configured`, with the problem.
    NotConfigured(String),
    /// 503 `auth_unavailable`: the JWKS could not be fetched.
    Unavailable,
    /// 401 `turnstile_required`.
    TurnstileRequired,
    /// 401 `turnstile_failed`.
    TurnstileFailed,
}

impl Refusal {
    /// The worker's answer.
    pub fn reply(&self) -> Reply {
        match self {
            Refusal::Required => Reply::error(
                401,
                "auth_required",
                "this worker needs a token: send Authorization: Bearer <token>",
            ),
            Refusal::Invalid(why) => Reply::error(
                401,
                "token_invalid",
                &format!("the token was refused: {why}"),
            ),
            Refusal::Expired => Reply::error(
                401,
                "token_expired",
                "the token has expired: get a new one and retry",
            ),
            Refusal::NotConfigured(problem) => Reply::error(
                503,
                "not_configured",
                &format!("this worker is not configured to spend for anyone: {problem}"),
            ),
            Refusal::Unavailable => Reply::error(
                503,
                "auth_unavailable",
                "the identity provider's keys (AUTH_JWKS_URL) could not be fetched; nothing was sent",
            )
            .with_header("retry-after", "5"),
            Refusal::TurnstileRequired => Reply::error(
                401,
                "turnstile_required",
                "this worker needs a Turnstile token: send it in the cf-turnstile-response header",
            ),
            Refusal::TurnstileFailed => Reply::error(
                401,
                "turnstile_failed",
                "the Turnstile token was refused (they are single-use): solve the challenge again",
            ),
        }
    }
}

/// A token's header, as far as the rules read it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// The algorithm the token claims; checked against the configured one.
    pub alg: String,
    /// The key id (JWKS mode).
    #[serde(default)]
    pub kid: Option<String>,
}

/// `aud`: one audience or several.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A token's claims, as far as the rules read them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Claims {
    sub: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    iss: Option<String>,
    aud: Option<Audience>,
    /// A per-subject daily quota in seconds of video: the app's plan for
    /// this user, overriding `QUOTA_USER_DAILY_SECONDS`.
    quota_seconds: Option<f64>,
}

impl Claims {
    /// The `quota_seconds` claim, when it is a whole number of seconds.
    pub fn quota_seconds(&self) -> Option<u64> {
        self.quota_seconds
            .filter(|q| q.is_finite() && *q >= 0.0 && q.fract() == 0.0)
            .map(|q| q as u64)
    }

    /// `exp` in ms since the epoch.
    pub fn expires_ms(&self) -> Option<u64> {
        self.exp.filter(|e| *e > 0.0).map(|e| (e * 1000.0) as u64)
    }
}

/// A token taken apart; its signature is not checked yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// The header.
    pub header: Header,
    /// The claims.
    pub claims: Claims,
    /// `header.payload`, the bytes the signature covers.
    pub signed: String,
    /// The signature.
    pub signature: Vec<u8>,
}

fn part<T: for<'de> Deserialize<'de>>(text: &str, what: &'static str) -> Result<T, Refusal> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Refusal::Invalid(what))?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Invalid(what))
}

/// Takes a compact JWS apart.
///
/// # Errors
/// `token_invalid` when it is over [`MAX_TOKEN_BYTES`] or not three base64url parts of JSON.
pub fn parse(token: &str) -> Result<Token, Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Invalid("it is longer than 8 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Invalid("it is not a JWT (three base64url parts)"));
    };
    Ok(Token {
        header: part(header, "its header is not base64url JSON")?,
        claims: part(payload, "its claims are not base64url JSON")?,
        signed: format!("{header}.{payload}"),
        signature: URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Refusal::Invalid("its signature is not base64url"))?,
    })
}

/// The signature algorithms a mode takes, by the JWS `alg` name.
pub fn algorithm_allowed(mode: &Mode, alg: &str) -> bool {
    match mode {
        Mode::Hs256 { .. } => alg == "HS256",
        Mode::Jwks { .. } => matches!(alg, "RS256" | "ES256"),
        Mode::Anonymous => false,
    }
}

/// Whether a JWK (its `kty`, `crv`, `alg` and `use`) fits a token's `alg`:
/// the key decides as much as the configuration.
pub fn jwk_fits(
    alg: &str,
    kty: &str,
    crv: Option<&str>,
    jwk_alg: Option<&str>,
    usage: Option<&str>,
) -> bool {
    let kind = match alg {
        "RS256" => kty == "RSA",
        "ES256" => kty == "EC" && crv == Some("P-256"),
        _ => false,
    };
    kind && jwk_alg.is_none_or(|a| a == alg) && usage.is_none_or(|u| u == "sig")
}

/// Checks the claims at `now_s` (seconds since the epoch); the subject.
///
/// # Errors
/// `token_expired` past `exp`; `token_invalid` without `exp` or `sub`, before
/// `nbf` or `iat` (with [`LEEWAY_S`]), or with another `iss` or `aud` than configured.
pub fn check_claims(claims: &Claims, auth: &Auth, now_s: f64) -> Result<String, Refusal> {
    let exp = claims.exp.ok_or(Refusal::Invalid("it has no exp"))?;
    if now_s >= exp {
        return Err(Refusal::Expired);
    }
    if claims.nbf.is_some_and(|nbf| now_s + LEEWAY_S < nbf) {
        return Err(Refusal::Invalid("it is not valid yet (nbf)"));
    }
    if claims.iat.is_some_and(|iat| now_s + LEEWAY_S < iat) {
        return Err(Refusal::Invalid("it was issued in the future (iat)"));
    }
    if let Some(issuer) = &auth.issuer {
        if claims.iss.as_deref() != Some(issuer) {
            return Err(Refusal::Invalid("its issuer (iss) is not AUTH_ISSUER"));
        }
    }
    if let Some(audience) = &auth.audience {
        let ok = match &claims.aud {
            Some(Audience::One(aud)) => aud == audience,
            Some(Audience::Many(auds)) => auds.iter().any(|a| a == audience),
            None => false,
        };
        if !ok {
            return Err(Refusal::Invalid("its audience (aud) is not AUTH_AUDIENCE"));
        }
    }
    match &claims.sub {
        Some(sub) if !sub.is_empty() => Ok(sub.clone()),
        _ => Err(Refusal::Invalid("it has no subject (sub)")),
    }
}

/// Whether a caller may read or stream a job: `subject` is the caller's in a
/// token mode (`None` when anonymous), `owner` the job's creator's (`None`
/// for a job created anonymously). A job made with a token is its
/// creator's alone; one made anonymously is no subject's, so that a mode
/// change never hands jobs to the wrong callers.
pub fn may_read(owner: Option<&str>, subject: Option<&str>) -> bool {
    owner == subject
}

/// The subject of an anonymous caller at `address`.
pub fn anonymous_subject(address: &str) -> String {
    format!("ip:{address}")
}

/// The Idempotency-Key sent upstream for a client's `key`: derived from the
/// subject, so that the same key from another caller never finds the first
/// caller's job.
pub fn scoped_idempotency_key(subject: &str, key: &str) -> String {
    hex::encode(Sha256::digest(format!("{subject}\n{key}")))
}

type HmacSha256 = Hmac<Sha256>;

fn ticket_mac(api_key: &str, payload: &str) -> HmacSha256 {
    let key = Sha256::digest(format!("sora-edge ticket\n{api_key}"));
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    mac
}

/// A ticket that lets `subject` open job `job_id`'s event stream until
/// `expires_ms`: an `EventSource` cannot send a header, and the bearer
/// token must never go in a URL. Signed with a key derived from the API key.
pub fn mint_ticket(api_key: &str, job_id: &str, subject: &str, expires_ms: u64) -> String {
    let payload = format!("{}\n{subject}\n{expires_ms}", job_id.to_ascii_lowercase());
    let tag = ticket_mac(api_key, &payload).finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The subject a ticket was minted for, when it is good for `job_id` at `now_ms`.
///
/// # Errors
/// `token_invalid` for a ticket that is malformed, forged, for another job,
/// or expired.
pub fn check_ticket(
    api_key: &str,
    ticket: &str,
    job_id: &str,
    now_ms: u64,
) -> Result<String, Refusal> {
    let bad = Refusal::Invalid("the stream ticket is not valid for this job");
    let (payload, tag) = ticket.split_once('.').ok_or(bad.clone())?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad.clone())?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| bad.clone())?;
    let payload = String::from_utf8(payload).map_err(|_| bad.clone())?;
    ticket_mac(api_key, &payload)
        .verify_slice(&tag)
        .map_err(|_| bad.clone())?;
    let mut fields = payload.split('\n');
    let (Some(id), Some(subject), Some(expires), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad);
    };
    let expires: u64 = expires.parse().map_err(|_| bad.clone())?;
    if !id.eq_ignore_ascii_case(job_id) {
        return Err(bad);
    }
    if now_ms >= expires {
        return Err(Refusal::Expired);
    }
    Ok(subject.to_string())
}

/// The bearer token of a request: `Authorization: Bearer …`, or Cloudflare
/// Access's `Cf-Access-Jwt-Assertion` in JWKS mode.
pub fn bearer<'a>(
    authorization: Option<&'a str>,
    access_assertion: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization.and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    bearer
        .or(access_assertion.map(str::trim))
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes!!";
    const ID: &str = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";

    fn env(pairs: &[(&str, &str)]) -> AuthEnv {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        AuthEnv {
            jwks_url: get("jwks"),
            issuer: get("iss"),
            audience: get("aud"),
            hs256_secrets: [get("hs"), get("hs_prev")],
            anonymous: get("anon"),
            turnstile_secret: get("ts"),
            turnstile_verify_url: get("ts_url"),
        }
    }

    #[test]
    fn modes_fail_closed() {
        let cases: [(&str, AuthEnv, Result<&str, &str>); 11] = [
            ("nothing", env(&[]), Err("no identity mode")),
            ("anonymous", env(&[("anon", "on")]), Ok("anonymous")),
            (
                "anonymous_off",
                env(&[("anon", "off")]),
                Err("no identity mode"),
            ),
            (
                "anonymous_typo",
                env(&[("anon", "yes")]),
                Err("AUTH_ANONYMOUS"),
            ),
            ("hs256", env(&[("hs", SECRET)]), Ok("HS256")),
            (
                "hs256_short",
                env(&[("hs", "short")]),
                Err("at least 32 bytes"),
            ),
            (
                "previous_alone",
                env(&[("hs_prev", SECRET)]),
                Err("AUTH_HS256_SECRET_PREVIOUS"),
            ),
            (
                "jwks",
                env(&[("jwks", "https://idp.test/.well-known/jwks.json")]),
                Ok("JWKS"),
            ),
            (
                "jwks_http",
                env(&[("jwks", "http://idp.test/jwks")]),
                Err("AUTH_JWKS_URL"),
            ),
            (
                "two_modes",
                env(&[("jwks", "https://idp.test/j"), ("hs", SECRET)]),
                Err("more than one"),
            ),
            (
                "turnstile_bad_url",
                env(&[("anon", "on"), ("ts", "x"), ("ts_url", "ftp://x")]),
                Err("TURNSTILE_VERIFY_URL"),
            ),
        ];
        for (name, e, expected) in cases {
            let auth = Auth::from_env(&e);
            match (&auth.mode, expected) {
                (Ok(mode), Ok(want)) => assert!(mode.name().contains(want), "{name}: {mode:?}"),
                (Err(problem), Err(want)) => assert!(problem.contains(want), "{name}: {problem}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
            assert!(
                !format!("{auth:?}").contains(SECRET),
                "{name}: a secret in Debug"
            );
        }
        let local = Auth::from_env(&env(&[("jwks", "http://127.0.0.1:9/jwks")]));
        assert!(local.mode.is_ok(), "plain http to this machine, for tests");
    }

    fn token(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode("sig")
        )
    }

    #[test]
    fn tokens_are_taken_apart() {
        let good = token(
            r#"{"alg":"RS256","kid":"k1"}"#,
            r#"{"sub":"alice","exp":2000000000}"#,
        );
        let t = parse(&good).unwrap();
        assert_eq!(
            t.header,
            Header {
                alg: "RS256".into(),
                kid: Some("k1".into())
            }
        );
        assert_eq!(t.signature, b"sig");
        assert!(good.starts_with(&t.signed));
        for (name, bad) in [
            ("not_a_jwt", "hello".to_string()),
            ("two_parts", "a.b".to_string()),
            ("four_parts", format!("{good}.x")),
            (
                "header_not_json",
                format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode("x")),
            ),
            ("too_long", format!("{good}{}", "A".repeat(MAX_TOKEN_BYTES))),
        ] {
            assert!(matches!(parse(&bad), Err(Refusal::Invalid(_))), "{name}");
        }
    }

    #[test]
    fn algorithms_come_from_the_configuration() {
        let hs = Mode::Hs256 {
            secrets: vec![SECRET.into()],
        };
        let jwks = Mode::Jwks {
            url: "https://idp.test/j".into(),
        };
        assert!(algorithm_allowed(&hs, "HS256"));
        for alg in ["none", "RS256", "ES256", "hs256", "HS512"] {
            assert!(!algorithm_allowed(&hs, alg), "{alg} in HS256 mode");
        }
        assert!(algorithm_allowed(&jwks, "RS256") && algorithm_allowed(&jwks, "ES256"));
        for alg in ["none", "HS256", "PS256", "ES384"] {
            assert!(!algorithm_allowed(&jwks, alg), "{alg} in JWKS mode");
        }
        assert!(jwk_fits("RS256", "RSA", None, Some("RS256"), Some("sig")));
        assert!(jwk_fits("ES256", "EC", Some("P-256"), None, None));
        assert!(!jwk_fits("ES256", "EC", Some("P-384"), None, None));
        assert!(!jwk_fits("RS256", "EC", Some("P-256"), None, None));
        assert!(!jwk_fits("RS256", "RSA", None, Some("RS512"), None));
        assert!(!jwk_fits("RS256", "RSA", None, None, Some("enc")));
    }

    #[test]
    fn claim_rules() {
        let now = 1_000_000.0;
        let auth = |iss: Option<&str>, aud: Option<&str>| Auth {
            mode: Ok(Mode::Anonymous),
            issuer: iss.map(str::to_string),
            audience: aud.map(str::to_string),
            turnstile: None,
        };
        let claims = |json: &str| serde_json::from_str::<Claims>(json).unwrap();
        // (name, claims, AUTH_ISSUER, AUTH_AUDIENCE, the subject or the refusal)
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Result<&'a str, Refusal>,
        );
        let cases: [Case; 12] = [
            (
                "good",
                r#"{"sub":"alice","exp":1000100}"#,
                None,
                None,
                Ok("alice"),
            ),
            (
                "expired",
                r#"{"sub":"alice","exp":999999}"#,
                None,
                None,
                Err(Refusal::Expired),
            ),
            (
                "no_exp",
                r#"{"sub":"alice"}"#,
                None,
                None,
                Err(Refusal::Invalid("it has no exp")),
            ),
            (
                "no_sub",
                r#"{"exp":1000100}"#,
                None,
                None,
                Err(Refusal::Invalid("it has no subject (sub)")),
            ),
            (
                "empty_sub",
                r#"{"sub":"","exp":1000100}"#,
                None,
                None,
                Err(Refusal::Invalid("it has no subject (sub)")),
            ),
            (
                "nbf_within_leeway",
                r#"{"sub":"a","exp":1000100,"nbf":1000050}"#,
                None,
                None,
                Ok("a"),
            ),
            (
                "nbf_future",
                r#"{"sub":"a","exp":1000500,"nbf":1000100}"#,
                None,
                None,
                Err(Refusal::Invalid("it is not valid yet (nbf)")),
            ),
            (
                "iat_future",
                r#"{"sub":"a","exp":1000500,"iat":1000100}"#,
                None,
                None,
                Err(Refusal::Invalid("it was issued in the future (iat)")),
            ),
            (
                "iss_ok",
                r#"{"sub":"a","exp":1000100,"iss":"https://idp"}"#,
                Some("https://idp"),
                None,
                Ok("a"),
            ),
            (
                "iss_wrong",
                r#"{"sub":"a","exp":1000100,"iss":"https://evil"}"#,
                Some("https://idp"),
                None,
                Err(Refusal::Invalid("its issuer (iss) is not AUTH_ISSUER")),
            ),
            (
                "aud_in_list",
                r#"{"sub":"a","exp":1000100,"aud":["x","app"]}"#,
                None,
                Some("app"),
                Ok("a"),
            ),
            (
                "aud_wrong",
                r#"{"sub":"a","exp":1000100,"aud":"x"}"#,
                None,
                Some("app"),
                Err(Refusal::Invalid("its audience (aud) is not AUTH_AUDIENCE")),
            ),
        ];
        for (name, json, iss, aud, expected) in cases {
            let got = check_claims(&claims(json), &auth(iss, aud), now);
            assert_eq!(got, expected.map(str::to_string), "{name}");
        }
    }

    #[test]
    fn a_plan_in_the_token() {
        let claims = |json: &str| serde_json::from_str::<Claims>(json).unwrap();
        assert_eq!(
            claims(r#"{"quota_seconds":600}"#).quota_seconds(),
            Some(600)
        );
        assert_eq!(claims(r#"{"quota_seconds":0}"#).quota_seconds(), Some(0));
        for bad in [
            r#"{"quota_seconds":-1}"#,
            r#"{"quota_seconds":1.5}"#,
            r#"{}"#,
        ] {
            assert_eq!(claims(bad).quota_seconds(), None, "{bad}");
        }
    }

    #[test]
    fn tickets_are_for_one_job_one_subject_one_minute() {
        let ticket = mint_ticket("afk_key", ID, "alice", 5_000);
        assert_eq!(
            check_ticket("afk_key", &ticket, ID, 4_999),
            Ok("alice".to_string())
        );
        assert_eq!(
            check_ticket("afk_key", &ticket, &ID.to_uppercase(), 1),
            Ok("alice".to_string())
        );
        assert_eq!(
            check_ticket("afk_key", &ticket, ID, 5_000),
            Err(Refusal::Expired)
        );
        let other = "11111111-1f7e-4a8e-9c1d-2f3e4a5b6c7d";
        assert!(matches!(
            check_ticket("afk_key", &ticket, other, 1),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            check_ticket("afk_other", &ticket, ID, 1),
            Err(Refusal::Invalid(_))
        ));
        let (payload, tag) = ticket.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(format!("{ID}\nbob\n5000"));
        assert!(matches!(
            check_ticket("afk_key", &format!("{forged}.{tag}"), ID, 1),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            check_ticket("afk_key", payload, ID, 1),
            Err(Refusal::Invalid(_))
        ));
        assert!(!ticket.contains("afk_key"));
    }

    #[test]
    fn jobs_are_their_creators() {
        assert!(may_read(Some("alice"), Some("alice")));
        assert!(!may_read(Some("alice"), Some("bob")));
        assert!(!may_read(Some("alice"), None), "an anonymous caller");
        assert!(
            !may_read(None, Some("bob")),
            "a job made anonymously, read with a token"
        );
        assert!(
            may_read(None, None),
            "anonymous mode: the id is the capability"
        );
    }

    #[test]
    fn idempotency_keys_are_scoped_and_bearers_read() {
        let alice = scoped_idempotency_key("alice", "k1");
        assert_eq!(alice, scoped_idempotency_key("alice", "k1"));
        assert_ne!(alice, scoped_idempotency_key("bob", "k1"));
        assert_ne!(alice, scoped_idempotency_key("alice", "k2"));
        assert_eq!(alice.len(), 64);
        assert_eq!(bearer(Some("Bearer abc"), None), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc "), None), Some("abc"));
        assert_eq!(bearer(Some("Basic abc"), None), None);
        assert_eq!(bearer(None, Some("jwt")), Some("jwt"));
        assert_eq!(bearer(Some("Bearer "), None), None);
    }
}
