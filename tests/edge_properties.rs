//! Property tests (issue 5, part 3) of the edge worker's decisions: webhook
//! verification and the proxy's routing. Built with `--features edge`
//! (`make test` runs `cargo test --workspace --all-features`).
#![cfg(feature = "edge")]

use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use sha2::{Digest, Sha256};
use sora_edge::edge::config::{Config, Env};
use sora_edge::edge::plan::{plan, Decision};
use sora_edge::edge::route::{is_uuid, route, split_url, Route, Routed};
use sora_edge::edge::webhook::{parse_event, verify};

// ------------------------------------------------------------------- webhooks

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature an upstream would send: hex HMAC-SHA256 of the body, keyed
/// with SHA-256 of the API key, as its hex text (`by_hex`) or its raw bytes.
fn sign(api_key: &str, body: &[u8], by_hex: bool) -> String {
    let digest = Sha256::digest(api_key.as_bytes());
    let key = if by_hex {
        hex(&digest).into_bytes()
    } else {
        digest.to_vec()
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn hex_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_correct_signature_verifies_in_every_accepted_spelling(
        api_key in ".{1,40}",
        body in prop::collection::vec(any::<u8>(), 0..300),
        by_hex in any::<bool>(),
        prefixed in any::<bool>(),
        upper in any::<bool>(),
    ) {
        let mut signature = sign(&api_key, &body, by_hex);
        if upper {
            signature = signature.to_uppercase();
        }
        if prefixed {
            signature = format!("sha256={signature}");
        }
        prop_assert!(verify(&[api_key.as_str()], &body, Some(&signature)).is_ok());
        let padded = format!("  {signature}\t");
        prop_assert!(verify(&[api_key.as_str()], &body, Some(&padded)).is_ok());
    }

    #[test]
    fn any_single_byte_change_to_the_body_fails(
        api_key in ".{1,40}",
        body in prop::collection::vec(any::<u8>(), 1..300),
        at in any::<usize>(),
        flip in 1u8..=255,
        by_hex in any::<bool>(),
    ) {
        let signature = sign(&api_key, &body, by_hex);
        let mut changed = body.clone();
        let i = at % changed.len();
        changed[i] ^= flip;
        let refused = verify(&[api_key.as_str()], &changed, Some(&signature));
        prop_assert_eq!(refused.map_err(|r| r.status), Err(401));
        // And a byte more or less.
        let mut longer = body.clone();
        longer.push(flip);
        prop_assert!(verify(&[api_key.as_str()], &longer, Some(&signature)).is_err());
        prop_assert!(verify(&[api_key.as_str()], &body[..body.len() - 1], Some(&signature)).is_err());
    }

    #[test]
    fn any_single_byte_change_to_the_signature_fails(
        api_key in ".{1,40}",
        body in prop::collection::vec(any::<u8>(), 0..300),
        at in 0usize..64,
        replacement in any::<u8>(),
        by_hex in any::<bool>(),
    ) {
        let signature = sign(&api_key, &body, by_hex);
        let original = signature.as_bytes()[at];
        // Upper-case hex is the same signature by design: only a different digit
        // value, or a byte that is no hex digit, changes it.
        prop_assume!(hex_value(replacement) != hex_value(original));
        let mut changed = signature.clone().into_bytes();
        changed[at] = replacement;
        let changed = String::from_utf8_lossy(&changed).into_owned();
        let refused = verify(&[api_key.as_str()], &body, Some(&changed));
        prop_assert_eq!(refused.map_err(|r| r.status), Err(401));
        // The wrong key fails too.
        let other_key = format!("{api_key}x");
        prop_assert!(verify(&[other_key.as_str()], &body, Some(&signature)).is_err());
    }

    #[test]
    fn garbage_never_panics_the_webhook_receiver(
        api_key in any::<String>(),
        body in prop::collection::vec(any::<u8>(), 0..300),
        signature in prop::option::of(prop_oneof![
            any::<String>(),
            "(sha256=|SHA256=|sha256)?[0-9a-fA-Fxé ]{0,70}",
        ]),
    ) {
        let _ = verify(&[api_key.as_str()], &body, signature.as_deref());
        let _ = parse_event(&body);
    }

    #[test]
    fn webhook_bodies_that_parse_name_a_uuid_job_and_are_json(
        id in prop_oneof![uuid(), any::<String>()],
        id_key in prop::sample::select(vec!["jobId", "id"]),
        status in prop::option::of(prop::sample::select(vec!["", "PROCESSING", "COMPLETED", "FAILED"])),
        event in prop::option::of(prop::sample::select(vec!["progress", "completed", "failed", "other"])),
        extra in ".{0,20}",
    ) {
        let mut members = vec![format!("{:?}:{:?}", id_key, id)];
        if let Some(s) = status {
            members.push(format!("\"status\":{s:?}"));
        }
        if let Some(e) = event {
            members.push(format!("\"event\":{e:?}"));
        }
        members.push(format!("\"note\":{extra:?}"));
        let body = format!("{{{}}}", members.join(","));
        if let Ok((job_id, job)) = parse_event(body.as_bytes()) {
            prop_assert!(is_uuid(&job_id));
            prop_assert_eq!(job.get("id").and_then(|v| v.as_str()), Some(job_id.as_str()));
            prop_assert!(job.get("status").and_then(|v| v.as_str()).is_some_and(|s| !s.is_empty()));
        }
    }
}

// -------------------------------------------------------------------- routing

fn uuid() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

/// Paths built from the route's own segments and every trick in the book.
fn tricky_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        prop::sample::select(vec![
            "api",
            "v2",
            "jobs",
            "events",
            "videos",
            "generate",
            "webhooks",
            "apiframe",
            "..",
            ".",
            "",
            "%2e%2e",
            "%2E%2E",
            "%2e",
            "%2f",
            "%2F",
            "%252F",
            "..%2f",
            "%2e%2e%2fme",
            "me",
            "\\",
            "..\\",
            "evil.test",
            " ",
            "?",
            "#",
            "é",
        ])
        .prop_map(str::to_string),
        uuid(),
    ];
    (prop::collection::vec(segment, 0..8), any::<bool>()).prop_map(|(segments, lead)| {
        let path = segments.join("/");
        if lead {
            format!("/{path}")
        } else {
            path
        }
    })
}

fn routes_to_a_job(routed: &Result<Routed, sora_edge::edge::Reply>) -> bool {
    matches!(
        routed,
        Ok(Routed::Call(Route::Job(_) | Route::Events(_)))
            | Ok(Routed::Preflight(Route::Job(_) | Route::Events(_)))
    )
}

fn has_dot_segment_or_encoding(path: &str) -> bool {
    path.split('/').any(|s| s == ".." || s == ".") || path.to_ascii_lowercase().contains("%2")
}

fn config() -> Config {
    Config::from_env(&Env {
        base_url: Some("http://127.0.0.1:9".into()),
        allowed_origins: Some("https://app.test".into()),
        public_url: Some("https://worker.test".into()),
        has_key: true,
        ..Env::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_method_and_path_route_without_panic(method in any::<String>(), path in any::<String>()) {
        let _ = route(&method, &path);
        let _ = split_url(&path);
    }

    #[test]
    fn dot_segments_and_encoded_dots_or_slashes_never_reach_a_job_route(
        method in prop::sample::select(vec!["GET", "POST", "OPTIONS", "get", "DELETE"]),
        path in tricky_path(),
    ) {
        let routed = route(method, &path);
        if has_dot_segment_or_encoding(&path) || path.contains('%') {
            prop_assert!(!routes_to_a_job(&routed), "{} {} -> {:?}", method, path, routed);
            prop_assert!(routed.is_err(), "{} {} -> {:?}", method, path, routed);
        }
        // Whatever routes to a job names a UUID that is in the path as given.
        if let Ok(Routed::Call(r) | Routed::Preflight(r)) = &routed {
            if let Some(id) = r.job_id() {
                prop_assert!(is_uuid(id));
                prop_assert!(path.starts_with("/api/v2/jobs/"));
                prop_assert_eq!(path.split('/').nth(4), Some(id));
            }
        }
    }

    #[test]
    fn uuid_job_paths_route(id in uuid()) {
        let job = format!("/api/v2/jobs/{id}");
        let events = format!("{job}/events");
        prop_assert_eq!(route("GET", &job), Ok(Routed::Call(Route::Job(id.clone()))));
        prop_assert_eq!(route("GET", &events), Ok(Routed::Call(Route::Events(id.clone()))));
        prop_assert_eq!(route("OPTIONS", &job), Ok(Routed::Preflight(Route::Job(id.clone()))));
        prop_assert_eq!(route("POST", &job).map_err(|r| r.status), Err(405));
        // The same id behind a dot segment or an encoded slash is refused.
        for trick in [
            format!("/api/v2/jobs/../jobs/{id}"),
            format!("/api/v2/jobs/./{id}"),
            format!("/api/v2/jobs/{id}/.."),
            format!("/api/v2/jobs%2f{id}"),
            format!("/api/v2/jobs/%2e%2e/{id}"),
            format!("/api/v2%2Fjobs/{id}"),
        ] {
            prop_assert_eq!(route("GET", &trick).map_err(|r| r.status), Err(400), "{}", trick);
        }
    }

    #[test]
    fn the_proxy_plan_never_panics_and_never_proceeds_on_a_trick(
        method in prop_oneof![
            prop::sample::select(vec!["GET", "POST", "OPTIONS"]).prop_map(str::to_string),
            any::<String>(),
        ],
        path in prop_oneof![tricky_path(), any::<String>()],
        origin in prop_oneof![
            prop::sample::select(vec!["https://app.test", "https://worker.test", "https://evil.test", "null"])
                .prop_map(str::to_string),
            any::<String>(),
        ],
        headers in prop::collection::vec((".{0,20}", ".{0,40}"), 0..5),
        scheme in prop::sample::select(vec!["https://worker.test", "http://x", "", "https://"]),
    ) {
        let url = format!("{scheme}{path}");
        let mut all_headers = headers.clone();
        all_headers.push(("Origin".to_string(), origin));
        all_headers.push(("content-type".to_string(), "application/json".to_string()));
        let decision = plan(&method, &url, &all_headers, &config());
        if let Decision::Proceed(p) = &decision {
            if let Some((_, routed_path)) = split_url(&url) {
                prop_assert!(!has_dot_segment_or_encoding(routed_path), "{} -> {:?}", url, p.route);
            }
        }
    }
}
