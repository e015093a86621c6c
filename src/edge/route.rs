//! Routing: the worker's routes (docs/API.md) and nothing else.
//!
//! The path is checked before it is matched. No route needs a percent
//! sign, a dot segment, an empty segment or a backslash, so a path with any
//! of them is refused outright (400) instead of being decoded or normalised:
//! there is then no second interpretation of the path for a trick to hide in
//! (`/api/v2/jobs/../me`, `%2e%2e`, `%2F`, `%252F`, `//evil.test/...`).

use super::reply::{shown, Reply};

/// A route the worker serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/v2/videos/generate`
    Generate,
    /// `GET /api/v2/jobs/{uuid}`
    Job(String),
    /// `GET /api/v2/jobs/{uuid}/events`
    Events(String),
    /// `POST /api/v2/jobs/{uuid}/ticket`: a short-lived ticket for the
    /// events stream, which an `EventSource` opens without headers.
    Ticket(String),
    /// `POST /api/webhooks/apiframe`
    Webhook,
    /// `GET /api/usage`: the caller's quota figures for the day.
    Usage,
    /// `GET /api/admin/ledger?day=YYYY-MM-DD`: the day's audit rows (NDJSON),
    /// for the operator (`ADMIN_TOKEN`).
    AdminLedger,
    /// `POST /api/admin/ledger/grant` or `.../block`: more seconds for a
    /// subject today, or none.
    AdminChange(AdminChange),
}

/// What the operator changes about a subject's day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminChange {
    /// More seconds for the day.
    Grant,
    /// No more generates for the day.
    Block,
}

impl Route {
    /// The method the route serves (besides `OPTIONS`).
    pub fn method(&self) -> &'static str {
        match self {
            Route::Generate | Route::Webhook | Route::Ticket(_) | Route::AdminChange(_) => "POST",
            Route::Job(_) | Route::Events(_) | Route::Usage | Route::AdminLedger => "GET",
        }
    }

    /// The job id in the path, if the route has one.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            Route::Job(id) | Route::Events(id) | Route::Ticket(id) => Some(id),
            _ => None,
        }
    }
}

/// What a request is, once routed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    /// A call of the route with its own method.
    Call(Route),
    /// A CORS preflight (`OPTIONS`) for the route.
    Preflight(Route),
}

/// Splits an absolute request URL into its origin (`scheme://authority`) and
/// its path (without query or fragment), as sent: a URL parser would remove
/// dot segments and decode, which is what this worker refuses to do.
pub fn split_url(url: &str) -> Option<(&str, &str)> {
    let scheme_end = url.find("://")?;
    let after = scheme_end + 3;
    let path_start = url[after..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after + i);
    let rest = &url[path_start..];
    let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let path = &rest[..path_end];
    Some((&url[..path_start], if path.is_empty() { "/" } else { path }))
}

/// Whether `id` is a UUID: 8-4-4-4-12 hex digits, either case.
pub fn is_uuid(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Why a path is refused before matching, if it is.
fn path_trick(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("must start with '/' (absolute-form request targets are not accepted)");
    }
    if path.contains('%') {
        return Some("must not contain percent-encoded characters");
    }
    if path.contains('\\') {
        return Some("must not contain backslashes");
    }
    if path.bytes().any(|b| b <= 0x20 || b >= 0x7f) {
        return Some("must contain only visible ASCII characters");
    }
    if path.contains("//") {
        return Some("must not contain empty segments ('//')");
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Some("must not contain '.' or '..' segments");
    }
    None
}

/// Routes a request.
///
/// # Errors
/// The reply to send instead: 400 for a path trick or a job id that is not
/// a UUID, 404 for an unknown path, 405 (with `Allow`) for a wrong method.
pub fn route(method: &str, path: &str) -> Result<Routed, Reply> {
    if let Some(why) = path_trick(path) {
        return Err(Reply::error(
            400,
            "invalid_request",
            &format!("request path {} {why}", shown(path)),
        ));
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let route = match segments.as_slice() {
        ["api", "v2", "videos", "generate"] => Route::Generate,
        ["api", "webhooks", "apiframe"] => Route::Webhook,
        ["api", "usage"] => Route::Usage,
        ["api", "admin", "ledger"] => Route::AdminLedger,
        ["api", "admin", "ledger", "grant"] => Route::AdminChange(AdminChange::Grant),
        ["api", "admin", "ledger", "block"] => Route::AdminChange(AdminChange::Block),
        ["api", "v2", "jobs", id] if !id.is_empty() => job_route(id, Route::Job)?,
        ["api", "v2", "jobs", id, "events"] => job_route(id, Route::Events)?,
        ["api", "v2", "jobs", id, "ticket"] => job_route(id, Route::Ticket)?,
        _ => return Err(Reply::not_found(path)),
    };
    if method == "OPTIONS" {
        return Ok(Routed::Preflight(route));
    }
    if method != route.method() {
        let allow = format!("{}, OPTIONS", route.method());
        return Err(Reply::error(
            405,
            "method_not_allowed",
            &format!(
                "{} is not allowed on {} (allowed: {allow})",
                shown(method),
                shown(path)
            ),
        )
        .with_header("allow", &allow));
    }
    Ok(Routed::Call(route))
}

fn job_route(id: &str, make: fn(String) -> Route) -> Result<Route, Reply> {
    if is_uuid(id) {
        Ok(make(id.to_string()))
    } else {
        Err(Reply::invalid(
            "jobId",
            &format!("jobId must be a UUID (got {})", shown(id)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d";

    fn outcome(method: &str, path: &str) -> Result<Routed, u16> {
        route(method, path).map_err(|r| r.status)
    }

    #[test]
    fn route_table() {
        let job = format!("/api/v2/jobs/{ID}");
        let events = format!("/api/v2/jobs/{ID}/events");
        let upper = format!("/api/v2/jobs/{}", ID.to_uppercase());
        let cases: Vec<(&str, &str, String, Result<Routed, u16>)> = vec![
            (
                "generate",
                "POST",
                "/api/v2/videos/generate".into(),
                Ok(Routed::Call(Route::Generate)),
            ),
            (
                "job",
                "GET",
                job.clone(),
                Ok(Routed::Call(Route::Job(ID.into()))),
            ),
            (
                "job_uppercase_uuid",
                "GET",
                upper.clone(),
                Ok(Routed::Call(Route::Job(ID.to_uppercase()))),
            ),
            (
                "events",
                "GET",
                events.clone(),
                Ok(Routed::Call(Route::Events(ID.into()))),
            ),
            (
                "webhook",
                "POST",
                "/api/webhooks/apiframe".into(),
                Ok(Routed::Call(Route::Webhook)),
            ),
            (
                "ticket",
                "POST",
                format!("/api/v2/jobs/{ID}/ticket"),
                Ok(Routed::Call(Route::Ticket(ID.into()))),
            ),
            (
                "ticket_get",
                "GET",
                format!("/api/v2/jobs/{ID}/ticket"),
                Err(405),
            ),
            (
                "preflight_generate",
                "OPTIONS",
                "/api/v2/videos/generate".into(),
                Ok(Routed::Preflight(Route::Generate)),
            ),
            (
                "preflight_events",
                "OPTIONS",
                events.clone(),
                Ok(Routed::Preflight(Route::Events(ID.into()))),
            ),
            (
                "generate_get",
                "GET",
                "/api/v2/videos/generate".into(),
                Err(405),
            ),
            (
                "generate_put",
                "PUT",
                "/api/v2/videos/generate".into(),
                Err(405),
            ),
            ("job_post", "POST", job.clone(), Err(405)),
            ("job_delete", "DELETE", job.clone(), Err(405)),
            ("job_head", "HEAD", job.clone(), Err(405)),
            ("events_post", "POST", events.clone(), Err(405)),
            (
                "webhook_get",
                "GET",
                "/api/webhooks/apiframe".into(),
                Err(405),
            ),
            ("lowercase_method_is_not_get", "get", job.clone(), Err(405)),
            ("root", "GET", "/".into(), Err(404)),
            ("me", "GET", "/api/v2/me".into(), Err(404)),
            ("jobs_list", "GET", "/api/v2/jobs".into(), Err(404)),
            (
                "upstream_path_without_api",
                "POST",
                "/v2/videos/generate".into(),
                Err(404),
            ),
            (
                "trailing_slash",
                "POST",
                "/api/v2/videos/generate/".into(),
                Err(404),
            ),
            (
                "jobs_trailing_slash",
                "GET",
                "/api/v2/jobs/".into(),
                Err(404),
            ),
            ("events_extra", "GET", format!("{events}/x"), Err(404)),
            (
                "case_differs",
                "POST",
                "/API/v2/videos/generate".into(),
                Err(404),
            ),
            ("not_uuid", "GET", "/api/v2/jobs/123".into(), Err(400)),
            (
                "uuid_too_long",
                "GET",
                format!("/api/v2/jobs/{ID}0"),
                Err(400),
            ),
            (
                "uuid_no_dashes",
                "GET",
                "/api/v2/jobs/0b6a3c521f7e4a8e9c1d2f3e4a5b6c7d".into(),
                Err(400),
            ),
            (
                "uuid_non_hex",
                "GET",
                "/api/v2/jobs/zb6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d".into(),
                Err(400),
            ),
            (
                "events_not_uuid",
                "GET",
                "/api/v2/jobs/me/events".into(),
                Err(400),
            ),
            ("dotdot", "GET", "/api/v2/jobs/../me".into(), Err(400)),
            ("dot", "GET", "/api/v2/./jobs".into(), Err(400)),
            ("dotdot_at_end", "GET", "/api/v2/jobs/..".into(), Err(400)),
            (
                "encoded_dotdot",
                "GET",
                "/api/v2/jobs/%2e%2e/me".into(),
                Err(400),
            ),
            (
                "encoded_dotdot_upper",
                "GET",
                "/api/v2/jobs/%2E%2E/me".into(),
                Err(400),
            ),
            (
                "encoded_slash",
                "GET",
                "/api/v2/jobs/..%2Fme".into(),
                Err(400),
            ),
            (
                "double_encoded_slash",
                "GET",
                "/api/v2/jobs/..%252Fme".into(),
                Err(400),
            ),
            (
                "encoded_uuid_chars",
                "GET",
                "/api/v2/jobs/0b6a3c52%2D1f7e-4a8e-9c1d-2f3e4a5b6c7d".into(),
                Err(400),
            ),
            ("backslash", "GET", "/api/v2/jobs\\..\\me".into(), Err(400)),
            (
                "protocol_relative",
                "GET",
                "//evil.test/api/v2/me".into(),
                Err(400),
            ),
            (
                "absolute_url_in_path",
                "GET",
                "/api/v2/jobs/http://evil.test".into(),
                Err(400),
            ),
            (
                "absolute_form",
                "GET",
                "http://evil.test/api/v2/me".into(),
                Err(400),
            ),
            (
                "empty_segment",
                "POST",
                "/api//v2/videos/generate".into(),
                Err(400),
            ),
            ("space", "GET", "/api/v2/jobs/ x".into(), Err(400)),
            ("non_ascii", "GET", "/api/v2/jobs/é".into(), Err(400)),
        ];
        for (name, method, path, expected) in cases {
            assert_eq!(outcome(method, &path), expected, "{name}");
        }
    }

    #[test]
    fn refusals_carry_json_bodies_and_allow() {
        let reply = route("GET", "/api/v2/videos/generate").unwrap_err();
        assert_eq!(
            reply.headers,
            vec![("allow".to_string(), "POST, OPTIONS".to_string())]
        );
        assert!(reply.body.contains("\"method_not_allowed\""));
        let reply = route("GET", "/api/v2/jobs/nope").unwrap_err();
        assert!(reply.body.contains("\"field\":\"jobId\""), "{}", reply.body);
        let reply = route("GET", "/nope\"<x>").unwrap_err();
        assert!(
            reply.body.starts_with("{\"error\":{\"code\":\"not_found\""),
            "{}",
            reply.body
        );
    }

    #[test]
    fn url_splitting() {
        let cases = [
            (
                "http://127.0.0.1:8787/api/v2/me?x=1",
                Some(("http://127.0.0.1:8787", "/api/v2/me")),
            ),
            ("https://w.test", Some(("https://w.test", "/"))),
            ("https://w.test?q", Some(("https://w.test", "/"))),
            ("https://w.test/a#f", Some(("https://w.test", "/a"))),
            (
                "https://w.test//evil.test/x",
                Some(("https://w.test", "//evil.test/x")),
            ),
            ("/relative", None),
        ];
        for (url, expected) in cases {
            assert_eq!(split_url(url), expected, "{url}");
        }
    }
}
