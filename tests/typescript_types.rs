//! The TypeScript declarations in `src/wasm/types.rs` are text that wasm-bindgen
//! copies into the generated `.d.ts`. These tests hold every literal union there
//! to the Rust rule it describes, so a value added to one side and not the
//! other fails `cargo test` instead of drifting.

use sora_edge::core::request::{ASPECT_RATIOS, DURATIONS, MODELS, RESOLUTIONS, WEBHOOK_EVENTS};
use sora_edge::core::{ErrorCode, JobStatus};
use std::collections::BTreeSet;

const DECLARATIONS: &str = include_str!("../src/wasm/types.rs");

/// The members of the union written `<head> A | B | ...;`, without quotes.
fn union_after(head: &str) -> BTreeSet<String> {
    let start = DECLARATIONS
        .find(head)
        .unwrap_or_else(|| panic!("`{head}` is not declared in src/wasm/types.rs"))
        + head.len();
    let end = start
        + DECLARATIONS[start..]
            .find(';')
            .expect("a union ends with ;");
    DECLARATIONS[start..end]
        .split('|')
        .map(|member| member.trim().trim_matches('"').to_string())
        .filter(|member| !member.is_empty())
        .collect()
}

fn set<T: ToString>(items: impl IntoIterator<Item = T>) -> BTreeSet<String> {
    items.into_iter().map(|item| item.to_string()).collect()
}

/// Every error code; the match makes a new variant a compile error here.
fn every_error_code() -> Vec<ErrorCode> {
    use ErrorCode::*;
    let all = [
        InvalidRequest,
        Unauthorized,
        Forbidden,
        InsufficientCredits,
        NotFound,
        RateLimited,
        Upstream,
        Network,
        Timeout,
        Aborted,
        DeadlineExceeded,
        JobFailed,
        BadResponse,
        AuthRequired,
        TokenInvalid,
        TokenExpired,
        NotConfigured,
        AuthUnavailable,
        TurnstileRequired,
        TurnstileFailed,
        QuotaExceeded,
        LedgerUnavailable,
    ];
    for code in all {
        match code {
            InvalidRequest | Unauthorized | Forbidden | InsufficientCredits | NotFound
            | RateLimited | Upstream | Network | Timeout | Aborted | DeadlineExceeded
            | JobFailed | BadResponse | AuthRequired | TokenInvalid | TokenExpired
            | NotConfigured | AuthUnavailable | TurnstileRequired | TurnstileFailed
            | QuotaExceeded | LedgerUnavailable => {}
        }
    }
    all.to_vec()
}

#[test]
fn request_unions_match_the_validation_rules() {
    let cases: [(&str, BTreeSet<String>); 5] = [
        ("export type Duration =", set(DURATIONS)),
        ("export type AspectRatio =", set(ASPECT_RATIOS)),
        ("export type Model =", set(MODELS)),
        ("export type WebhookEvent =", set(WEBHOOK_EVENTS)),
        ("resolution?:", set(RESOLUTIONS)),
    ];
    for (head, rule) in cases {
        assert_eq!(union_after(head), rule, "{head}");
    }
}

#[test]
fn job_status_union_matches_the_known_statuses() {
    let known = [
        JobStatus::Queued,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
    ];
    assert_eq!(
        union_after("export type JobStatus ="),
        set(known.iter().map(JobStatus::as_str))
    );
}

#[test]
fn edge_auth_codes_are_codes_of_the_union() {
    let declared = union_after("export type SoraEdgeErrorCode =");
    for code in ErrorCode::EDGE_AUTH {
        assert!(declared.contains(code.as_str()), "{}", code.as_str());
        assert_eq!(ErrorCode::edge_auth(code.as_str()), Some(code));
    }
}

#[test]
fn the_token_option_is_declared_with_both_forms() {
    let start = DECLARATIONS
        .find("export interface ClientOptions")
        .expect("ClientOptions is declared");
    let end = start + DECLARATIONS[start..].find("\n}").expect("it ends");
    assert!(
        DECLARATIONS[start..end].contains("token?: string | (() => string | Promise<string>);"),
        "ClientOptions.token"
    );
}

#[test]
fn error_code_union_holds_every_code() {
    let declared = union_after("export type SoraEdgeErrorCode =");
    let codes = set(every_error_code().into_iter().map(ErrorCode::as_str));
    assert!(
        codes.is_subset(&declared),
        "codes missing from the .d.ts: {:?}",
        codes.difference(&declared).collect::<Vec<_>>()
    );
    // The one code raised in JavaScript before the wasm exists (npm/browser.js).
    let js_only: Vec<_> = declared.difference(&codes).collect();
    assert_eq!(js_only, ["not_initialized"], "codes no Rust or JS raises");
}
