//! The first decision on every request: answer it at once (refusal or
//! preflight), or go on with a route, its CORS headers and the headers to
//! forward. Nothing here reads the body; its declared length is checked.

use super::config::Config;
use super::cors::decide;
use super::headers::{check_declared_length, forward_request, is_json, FORWARDED_REQUEST_HEADERS};
use super::reply::Reply;
use super::route::{route, split_url, Route, Routed};
use crate::core::http::header;

/// A request the worker goes on with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The route.
    pub route: Route,
    /// CORS headers for every response to this request.
    pub cors: Vec<(String, String)>,
    /// Client headers to forward upstream (the key is added after this).
    pub forward: Vec<(String, String)>,
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Answer with this and stop.
    Respond(Reply),
    /// Go on.
    Proceed(Plan),
}

/// The request headers [`plan`] reads for a request of `method`, lower-case:
/// a worker may read these by name instead of iterating all of a request's
/// headers (each read crosses into JavaScript, and a status read, the hot
/// path, needs three).
pub fn plan_headers(method: &str) -> &'static [&'static str] {
    const READ: [&str; 3] = [
        "origin",
        FORWARDED_REQUEST_HEADERS[0],
        FORWARDED_REQUEST_HEADERS[1],
    ];
    const PREFLIGHT: [&str; 2] = ["origin", "access-control-request-headers"];
    const WITH_BODY: [&str; 5] = [
        "origin",
        "content-length",
        "content-type",
        FORWARDED_REQUEST_HEADERS[0],
        FORWARDED_REQUEST_HEADERS[1],
    ];
    match method {
        "OPTIONS" => &PREFLIGHT,
        "POST" => &WITH_BODY,
        _ => &READ,
    }
}

/// Decides what to do with a request from its method, absolute URL and
/// headers (lower- or mixed-case names).
pub fn plan(method: &str, url: &str, headers: &[(String, String)], config: &Config) -> Decision {
    let Some((own_origin, path)) = split_url(url) else {
        return Decision::Respond(Reply::error(
            400,
            "invalid_request",
            "request URL is not absolute",
        ));
    };
    // With PUBLIC_URL set, the worker's own origin is that, never what the
    // request's Host says (a DNS-rebinding page controls Host and Origin both).
    let own = config.public_origin.as_deref().unwrap_or(own_origin);
    let cors = decide(header(headers, "origin"), &[own], &config.allowed_origins);
    if let Some(refusal) = cors.refusal() {
        return Decision::Respond(refusal);
    }
    let cors_headers = cors.response_headers();
    let with_cors = |reply: Reply| Decision::Respond(reply.with_headers(&cors_headers));
    let route = match route(method, path) {
        Ok(Routed::Preflight(route)) => {
            return Decision::Respond(cors.preflight(
                route.method(),
                header(headers, "access-control-request-headers"),
            ))
        }
        Ok(Routed::Call(route)) => route,
        Err(reply) => return with_cors(reply),
    };
    if !config.relay() && matches!(route, Route::Events(_) | Route::Webhook) {
        return with_cors(Reply::error(
            404,
            "not_found",
            "relay is off on this worker (PUBLIC_URL is not set): poll GET /api/v2/jobs/{id} instead",
        ));
    }
    if let Some(problem) = &config.problem {
        return with_cors(Reply::error(
            500,
            "misconfigured",
            &format!("the worker is not configured: {problem}"),
        ));
    }
    if matches!(route, Route::Generate | Route::Webhook) {
        if let Err(reply) = check_declared_length(header(headers, "content-length")) {
            return with_cors(reply);
        }
    }
    if route == Route::Generate && !is_json(header(headers, "content-type")) {
        return with_cors(Reply::error(
            415,
            "unsupported_media_type",
            "Content-Type must be application/json for POST /api/v2/videos/generate",
        ));
    }
    match forward_request(headers) {
        Ok(forward) => Decision::Proceed(Plan {
            route,
            cors: cors_headers,
            forward,
        }),
        Err(reply) => with_cors(reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::config::Env;

    const BASE: &str = "https://worker.test";
    const ID: &str = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";

    fn config(public_url: Option<&str>) -> Config {
        Config::from_env(&Env {
            base_url: Some("http://127.0.0.1:9".into()),
            allowed_origins: Some("https://app.test".into()),
            public_url: public_url.map(String::from),
            has_key: true,
            ..Env::default()
        })
    }

    use crate::edge::headers::owned_pairs as h;

    fn status(decision: &Decision) -> u16 {
        match decision {
            Decision::Respond(reply) => reply.status,
            Decision::Proceed(_) => 0,
        }
    }

    #[test]
    fn decision_table() {
        let json = ("content-type", "application/json");
        let relay = config(Some(BASE));
        let no_relay = config(None);
        let broken = Config::from_env(&Env::default());
        let job = format!("{BASE}/api/v2/jobs/{ID}");
        let events = format!("{job}/events");
        let gen = format!("{BASE}/api/v2/videos/generate");
        let hook = format!("{BASE}/api/webhooks/apiframe");
        type Case<'a> = (
            &'a str,
            &'a str,
            String,
            Vec<(String, String)>,
            &'a Config,
            u16,
        );
        let cases: Vec<Case> = vec![
            ("generate_ok", "POST", gen.clone(), h(&[json]), &relay, 0),
            (
                "generate_charset_ok",
                "POST",
                gen.clone(),
                h(&[("Content-Type", "application/json; charset=utf-8")]),
                &relay,
                0,
            ),
            (
                "generate_text_plain",
                "POST",
                gen.clone(),
                h(&[("content-type", "text/plain")]),
                &relay,
                415,
            ),
            ("generate_no_type", "POST", gen.clone(), h(&[]), &relay, 415),
            (
                "generate_too_long",
                "POST",
                gen.clone(),
                h(&[json, ("content-length", "20000")]),
                &relay,
                413,
            ),
            (
                "generate_allowed_origin",
                "POST",
                gen.clone(),
                h(&[json, ("origin", "https://app.test")]),
                &relay,
                0,
            ),
            (
                "generate_same_origin",
                "POST",
                gen.clone(),
                h(&[json, ("origin", BASE)]),
                &relay,
                0,
            ),
            (
                "generate_evil_origin",
                "POST",
                gen.clone(),
                h(&[json, ("origin", "https://evil.test")]),
                &relay,
                403,
            ),
            (
                "evil_origin_on_404",
                "GET",
                format!("{BASE}/nope"),
                h(&[("origin", "https://evil.test")]),
                &relay,
                403,
            ),
            (
                "host_origin_is_not_own_when_public_url_is_set",
                "POST",
                "http://attacker.test:8787/api/v2/videos/generate".into(),
                h(&[json, ("origin", "http://attacker.test:8787")]),
                &relay,
                403,
            ),
            (
                "host_origin_is_own_without_public_url",
                "POST",
                "http://127.0.0.1:8787/api/v2/videos/generate".into(),
                h(&[json, ("origin", "http://127.0.0.1:8787")]),
                &no_relay,
                0,
            ),
            (
                "preflight_allowed",
                "OPTIONS",
                gen.clone(),
                h(&[("origin", "https://app.test")]),
                &relay,
                204,
            ),
            (
                "preflight_denied",
                "OPTIONS",
                gen.clone(),
                h(&[("origin", "https://evil.test")]),
                &relay,
                403,
            ),
            ("job_ok", "GET", job.clone(), h(&[]), &relay, 0),
            // Headers outside a method's `plan_headers` change nothing.
            (
                "job_with_body_headers",
                "GET",
                job.clone(),
                h(&[
                    ("content-type", "text/plain"),
                    ("content-length", "20000"),
                    ("access-control-request-headers", "x-evil"),
                ]),
                &relay,
                0,
            ),
            (
                "preflight_with_bad_idempotency_key",
                "OPTIONS",
                gen.clone(),
                h(&[("origin", "https://app.test"), ("idempotency-key", "")]),
                &relay,
                204,
            ),
            (
                "job_ok_without_relay",
                "GET",
                job.clone(),
                h(&[]),
                &no_relay,
                0,
            ),
            ("events_ok", "GET", events.clone(), h(&[]), &relay, 0),
            (
                "events_without_relay",
                "GET",
                events.clone(),
                h(&[]),
                &no_relay,
                404,
            ),
            (
                "webhook_without_relay",
                "POST",
                hook.clone(),
                h(&[]),
                &no_relay,
                404,
            ),
            ("webhook_ok", "POST", hook.clone(), h(&[]), &relay, 0),
            ("no_key", "GET", job.clone(), h(&[]), &broken, 500),
            (
                "no_key_still_404s",
                "GET",
                format!("{BASE}/x"),
                h(&[]),
                &broken,
                404,
            ),
            (
                "bad_idempotency_key",
                "POST",
                gen.clone(),
                h(&[json, ("idempotency-key", "")]),
                &relay,
                400,
            ),
            (
                "traversal",
                "GET",
                format!("{BASE}/api/v2/jobs/../me"),
                h(&[]),
                &relay,
                400,
            ),
            (
                "relative_url",
                "GET",
                "/api/v2/me".to_string(),
                h(&[]),
                &relay,
                400,
            ),
        ];
        for (name, method, url, headers, config, expected) in cases {
            let decision = plan(method, &url, &headers, config);
            assert_eq!(status(&decision), expected, "{name}");
            // The same decision from the headers read by name only.
            let named: Vec<(String, String)> = headers
                .iter()
                .filter(|(k, _)| plan_headers(method).contains(&k.to_ascii_lowercase().as_str()))
                .cloned()
                .collect();
            assert_eq!(
                plan(method, &url, &named, config),
                decision,
                "{name}: named"
            );
        }
    }

    #[test]
    fn proceed_carries_cors_and_forwarded_headers() {
        let headers = h(&[
            ("content-type", "application/json"),
            ("origin", "https://app.test"),
            ("x-api-key", "afk_client"),
            ("idempotency-key", "k1"),
        ]);
        let Decision::Proceed(p) = plan(
            "POST",
            &format!("{BASE}/api/v2/videos/generate"),
            &headers,
            &config(Some(BASE)),
        ) else {
            panic!("should proceed");
        };
        assert_eq!(p.route, Route::Generate);
        assert_eq!(p.forward, h(&[("idempotency-key", "k1")]));
        assert!(p.cors.contains(&(
            "access-control-allow-origin".into(),
            "https://app.test".into()
        )));
        let Decision::Respond(r) = plan(
            "GET",
            &format!("{BASE}/nope"),
            &h(&[("origin", "https://app.test")]),
            &config(None),
        ) else {
            panic!("should respond");
        };
        assert!(
            r.headers
                .iter()
                .any(|(k, _)| k == "access-control-allow-origin"),
            "errors are readable cross-origin"
        );
    }
}
