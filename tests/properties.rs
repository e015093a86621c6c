//! Property tests (issue 5, part 3) of the plain-Rust core: no panic on any
//! input, and round-trips where they apply. Case counts are bounded so the
//! file runs in a few seconds under `cargo test`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value as Json};
use sora_edge::core::http::parse_retry_after;
use sora_edge::core::job::{Job, UpstreamJob};
use sora_edge::core::platform::parse_http_date_ms;
use sora_edge::core::request::{GenerateRequest, DURATIONS, WEBHOOK_EVENTS};
use sora_edge::core::Value;

/// The core's value of a JSON value, as serde reads it anywhere.
fn value(json: &Json) -> Value {
    serde_json::from_value(json.clone()).expect("every JSON value is a Value")
}

/// A job read the way the client reads a status-read body.
fn job_from(json: &Json) -> Option<Job> {
    let upstream: UpstreamJob = serde_json::from_value(json.clone()).ok()?;
    Job::from_upstream(upstream).ok()
}

fn parse_http_date(text: &str) -> Option<u64> {
    parse_http_date_ms(text).map(|ms| ms as u64)
}

fn number(text: &str) -> Json {
    serde_json::from_str(text).expect("a JSON number")
}

// ----------------------------------------------------------------- strategies

/// Valid JSON number texts, in the shapes the parser keeps verbatim.
fn json_number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,12})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,2})?"
}

/// Arbitrary JSON values (any Unicode in strings and keys, duplicate keys allowed).
fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        json_number().prop_map(|n| number(&n)),
        any::<String>().prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// A plausible value for a request or job field: often the right kind, sometimes not.
fn field_value(strings: &'static [&'static str]) -> impl Strategy<Value = Json> {
    prop_oneof![
        4 => prop::sample::select(strings).prop_map(|s| Json::String(s.to_string())),
        1 => json_value(),
    ]
}

const REQUEST_STRINGS: &[&str] = &[
    "",
    " ",
    "a prompt",
    "sora-2",
    "sora-2-pro",
    "16:9",
    "9:16",
    "standard",
    "high",
    "https://hooks.example.com/x",
    "http://localhost:8787/hook",
    "http://evil.test/hook",
    "ftp://x",
    "https://",
    "progress",
    "completed",
    "failed",
    "4",
];

/// Objects with the request fields of both dialects, in any mix.
fn request_like() -> impl Strategy<Value = Json> {
    let key = prop::sample::select(vec![
        "prompt",
        "model",
        "duration",
        "aspectRatio",
        "resolution",
        "startImage",
        "webhookUrl",
        "webhook_url",
        "webhookEvents",
        "soraParams",
        "aspect_ratio",
        "extra",
    ]);
    let params = prop::collection::vec(
        (
            prop::sample::select(vec![
                "duration",
                "aspect_ratio",
                "resolution",
                "start_image",
                "seed",
            ]),
            prop_oneof![
                prop::sample::select(&DURATIONS[..]).prop_map(|d| json!(d)),
                field_value(REQUEST_STRINGS),
            ],
        ),
        0..4,
    )
    .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    let value = prop_oneof![
        3 => field_value(REQUEST_STRINGS),
        1 => prop::sample::select(&DURATIONS[..]).prop_map(|d| json!(d)),
        1 => params,
        1 => prop::collection::vec(field_value(REQUEST_STRINGS), 0..4).prop_map(Json::Array),
    ];
    prop::collection::vec((key, value), 0..7)
        .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// A valid client-dialect request, as its fields.
#[derive(Clone, Debug)]
struct ValidRequest {
    prompt: String,
    pro: bool,
    duration: Option<i64>,
    aspect_ratio: Option<&'static str>,
    resolution: Option<&'static str>,
    start_image: Option<String>,
    webhook_url: Option<String>,
    webhook_events: Option<Vec<&'static str>>,
}

fn valid_request() -> impl Strategy<Value = ValidRequest> {
    (
        "[a-zA-Z0-9 映🎬,.\n]{0,60}[a-z映]",
        any::<bool>(),
        prop::option::of(prop::sample::select(&DURATIONS[..])),
        prop::option::of(prop::sample::select(vec!["16:9", "9:16"])),
        prop::option::of(prop::sample::select(vec!["standard", "high"])),
        prop::option::of("https://img\\.example\\.com/[a-z0-9]{1,12}\\.png"),
        prop::option::of(prop_oneof![
            "https://hooks\\.example\\.com/[a-z0-9/]{0,12}",
            "http://localhost:[1-9][0-9]{1,3}/hook",
        ]),
        prop::option::of(prop::sample::subsequence(WEBHOOK_EVENTS.to_vec(), 0..=3)),
    )
        .prop_map(
            |(
                prompt,
                pro,
                duration,
                aspect_ratio,
                resolution,
                start_image,
                webhook_url,
                events,
            )| {
                ValidRequest {
                    prompt,
                    pro,
                    duration,
                    aspect_ratio,
                    // "high" only with sora-2-pro.
                    resolution: resolution.filter(|r| pro || *r != "high"),
                    start_image,
                    webhook_url,
                    webhook_events: events,
                }
            },
        )
}

impl ValidRequest {
    fn model(&self) -> &'static str {
        if self.pro {
            "sora-2-pro"
        } else {
            "sora-2"
        }
    }

    fn client_json(&self) -> Json {
        let s = |v: &str| Json::String(v.to_string());
        let mut m = serde_json::Map::new();
        m.insert("prompt".to_string(), s(&self.prompt));
        if self.pro {
            m.insert("model".into(), s("sora-2-pro"));
        }
        if let Some(d) = self.duration {
            m.insert("duration".into(), json!(d));
        }
        if let Some(a) = self.aspect_ratio {
            m.insert("aspectRatio".into(), s(a));
        }
        if let Some(r) = self.resolution {
            m.insert("resolution".into(), s(r));
        }
        if let Some(i) = &self.start_image {
            m.insert("startImage".into(), s(i));
        }
        if let Some(u) = &self.webhook_url {
            m.insert("webhookUrl".into(), s(u));
        }
        if let Some(e) = &self.webhook_events {
            m.insert(
                "webhookEvents".into(),
                Json::Array(e.iter().map(|e| s(e)).collect()),
            );
        }
        Json::Object(m)
    }
}

/// Objects with the job fields, in any mix.
fn job_like() -> impl Strategy<Value = Json> {
    let key = prop::sample::select(vec![
        "id",
        "jobId",
        "status",
        "progress",
        "result",
        "error",
        "model",
        "creditCost",
        "createdAt",
        "completedAt",
    ]);
    let value = prop_oneof![
        2 => field_value(&[
            "0b6a3c52-1f7e-4a8e-9c1d-2f3e4a5b6c7d",
            "",
            "QUEUED",
            "processing",
            "COMPLETED",
            "FAILED",
            "WEIRD",
            " 42.5 ",
            "-3",
            "https://cdn.example.com/v.mp4",
            "  ",
        ]),
        1 => json_number().prop_map(|n| number(&n)),
        1 => prop::collection::vec(
            (prop::sample::select(vec!["videoUrl", "video_url", "url", "videos", "message"]), json_value()),
            0..3,
        )
        .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
    ];
    prop::collection::vec((key, value), 0..8)
        .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// An epoch second as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn imf_fixdate(epoch_s: u64) -> String {
    let days = (epoch_s / 86_400) as i64;
    let secs = epoch_s % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

// ------------------------------------------------------------------- properties

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    #[test]
    fn requests_from_any_json_never_panic(json in json_value()) {
        let _ = GenerateRequest::from_client(&value(&json));
        let _ = GenerateRequest::from_wire(&value(&json));
    }

    #[test]
    fn accepted_requests_of_either_dialect_round_trip_through_the_wire_body(json in request_like()) {
        for accepted in [
            GenerateRequest::from_client(&value(&json)),
            GenerateRequest::from_wire(&value(&json)),
        ]
        .into_iter()
        .flatten()
        {
            let wire = serde_json::to_string(&accepted.wire()).expect("the wire body serializes");
            let again = GenerateRequest::from_wire(&serde_json::from_str(&wire).unwrap());
            prop_assert_eq!(again.as_ref(), Ok(&accepted));
        }
    }

    #[test]
    fn valid_requests_are_accepted_and_keep_their_fields_on_the_wire(req in valid_request()) {
        let accepted = GenerateRequest::from_client(&value(&req.client_json()));
        prop_assert!(accepted.is_ok(), "{:?} refused: {:?}", req, accepted);
        let accepted = accepted.unwrap();
        prop_assert_eq!(&accepted.prompt, &req.prompt);
        prop_assert_eq!(accepted.model.as_str(), req.model());
        let wire = serde_json::to_value(accepted.wire()).expect("the wire body serializes");
        let text = |v: Option<&Json>| v.and_then(Json::as_str).map(str::to_string);
        prop_assert_eq!(text(wire.get("prompt")), Some(req.prompt.clone()));
        prop_assert_eq!(text(wire.get("model")), Some(req.model().to_string()));
        prop_assert_eq!(text(wire.get("webhookUrl")), req.webhook_url.clone());
        let events = wire.get("webhookEvents").and_then(Json::as_array).map(|a| {
            a.iter().filter_map(Json::as_str).map(str::to_string).collect::<Vec<_>>()
        });
        prop_assert_eq!(
            events,
            req.webhook_events.as_ref().map(|e| e.iter().map(|s| s.to_string()).collect())
        );
        let param = |k: &str| wire.get("soraParams").and_then(|p| p.get(k)).cloned();
        prop_assert_eq!(param("duration").and_then(|d| d.as_i64()), req.duration);
        prop_assert_eq!(text(param("aspect_ratio").as_ref()), req.aspect_ratio.map(str::to_string));
        prop_assert_eq!(text(param("resolution").as_ref()), req.resolution.map(str::to_string));
        prop_assert_eq!(text(param("start_image").as_ref()), req.start_image.clone());
        // The edge worker, given the wire body, accepts the same request.
        let wire_text = serde_json::to_string(&accepted.wire()).expect("the wire body serializes");
        prop_assert_eq!(GenerateRequest::from_wire(&serde_json::from_str(&wire_text).unwrap()), Ok(accepted));
    }

    #[test]
    fn jobs_from_any_json_never_panic_and_write_json(json in prop_oneof![json_value(), job_like()]) {
        if let Some(job) = job_from(&json) {
            let parsed = serde_json::to_value(&job).expect("a job serializes");
            prop_assert_eq!(parsed.get("id").and_then(Json::as_str), Some(job.id.as_str()));
            prop_assert_eq!(parsed.get("status").and_then(Json::as_str), Some(job.status.as_str()));
            let progress = parsed.get("progress").and_then(Json::as_f64);
            prop_assert!(progress.is_some_and(|p| (0.0..=100.0).contains(&p)), "{}", parsed);
            // Read back, the client JSON names the same job.
            let again = job_from(&parsed).expect("client JSON is a job");
            prop_assert_eq!(again.id, job.id);
            prop_assert_eq!(again.status, job.status);
            prop_assert_eq!(again.error, job.error);
            prop_assert_eq!(again.model, job.model);
        }
    }

    #[test]
    fn retry_after_and_http_dates_never_panic(text in any::<String>(), now in any::<u64>()) {
        let _ = parse_http_date(&text);
        let _ = parse_retry_after(&text, now);
    }

    #[test]
    fn retry_after_delta_seconds_are_milliseconds(seconds in any::<u64>(), now in any::<u64>()) {
        prop_assert_eq!(
            parse_retry_after(&seconds.to_string(), now),
            Some(seconds.saturating_mul(1000))
        );
    }

    #[test]
    fn imf_fixdates_parse_back_to_their_epoch(
        // 1970-01-01 to 9999-12-31.
        epoch_s in 0u64..253_402_300_800,
        now_s in 0u64..253_402_300_800,
    ) {
        let date = imf_fixdate(epoch_s);
        prop_assert_eq!(parse_http_date(&date), Some(epoch_s * 1000), "{}", date);
        prop_assert_eq!(
            parse_retry_after(&date, now_s * 1000),
            Some(epoch_s.saturating_sub(now_s) * 1000),
            "{}", date
        );
    }
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    /// Date-shaped text with numbers of any size in every field. This found
    /// an overflow on negative or huge fields (minimal case
    /// `Sun, 1 Jan 0 0:-153722866244837251:0 GMT`), now refused.
    #[test]
    fn date_shaped_text_never_panics(
        day in prop_oneof![1i64..=31, any::<i64>()],
        year in prop_oneof![any::<i64>(), -100_000i64..100_000, Just(i64::MAX), Just(i64::MIN)],
        h in prop_oneof![0i64..=23, any::<i64>()],
        m in prop_oneof![0i64..=59, any::<i64>()],
        s in prop_oneof![0i64..=60, any::<i64>()],
        month in prop::sample::select(vec!["Jan", "Feb", "Nov", "Dec", "xyz"]),
        shape in 0..3u8,
    ) {
        let text = match shape {
            0 => format!("Sun, {day} {month} {year} {h}:{m}:{s} GMT"),
            1 => format!("Sunday, {day}-{month}-{year} {h}:{m}:{s} GMT"),
            _ => format!("Sun {month} {day} {h}:{m}:{s} {year}"),
        };
        let _ = parse_http_date(&text);
        let _ = parse_retry_after(&text, 0);
    }
}

#[test]
fn the_imf_fixdate_formatter_matches_the_rfc_example() {
    assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777_000)
    );
}

// ------------------------------------------------- poll schedule (issue 8, item 6)

use sora_edge::core::schedule::{PollSchedule, BASE_CAP_MS, MAX_CAP_MS, MIN_INTERVAL_MS};

/// Reported progress: mostly plausible figures, sometimes anything at all.
fn reported_progress() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (0u8..=100).prop_map(f64::from),
        1 => any::<f64>(),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    /// Whatever the reads report: the cap stays within 15-60 s, doubles only on
    /// a read the prediction foresaw, falls back to 15 s on one it did not, and
    /// every delay keeps to the 1 s floor, the cap and `Retry-After`.
    #[test]
    fn the_cap_moves_only_with_the_prediction_and_the_bounds_always_hold(
        reads in prop::collection::vec((0u64..120_000, reported_progress()), 0..40),
        retry_after_ms in prop::option::of(0u64..200_000),
    ) {
        let mut schedule = PollSchedule::new();
        let mut now = 0;
        for (gap, progress) in reads {
            now += gap;
            let before = schedule.cap_ms();
            let holds = schedule.prediction_holds(now, progress);
            schedule.observe(now, progress);
            let cap = schedule.cap_ms();
            prop_assert!((BASE_CAP_MS..=MAX_CAP_MS).contains(&cap), "{cap}");
            let expected = match holds {
                _ if !progress.is_finite() => before,
                Some(true) => (before * 2).min(MAX_CAP_MS),
                Some(false) => BASE_CAP_MS,
                None => before,
            };
            prop_assert_eq!(cap, expected, "{:?} at {} ms, progress {}", holds, now, progress);
            let delay = schedule.next_delay_ms(now, None);
            prop_assert!((MIN_INTERVAL_MS..=cap).contains(&delay), "{delay} > cap {cap}");
            prop_assert_eq!(
                schedule.next_delay_ms(now, retry_after_ms),
                delay.max(retry_after_ms.unwrap_or(0))
            );
        }
    }

    /// A job that keeps to its rate (after any time queued at 0 %), polled on
    /// the schedule: no read ever misses the prediction, so the cap never
    /// shrinks, and the end is seen within two points' worth of time once a
    /// finish was predicted (within the 15 s base cap before that).
    #[test]
    fn a_job_that_keeps_to_its_rate_never_misses_the_prediction(
        duration_ms in 20_000u64..1_200_000,
        queued_share in 0.0f64..0.5,
        phase_ms in 0u64..1_000,
    ) {
        let queued_ms = (duration_ms as f64 * queued_share) as u64;
        let ends_at = duration_ms - phase_ms;
        let progress = |t: u64| {
            let job_t = t + phase_ms;
            if job_t < queued_ms {
                0.0
            } else {
                ((job_t - queued_ms) as f64 / (duration_ms - queued_ms) as f64 * 100.0)
                    .floor()
                    .min(99.0)
            }
        };
        let mut schedule = PollSchedule::new();
        let mut now = 0;
        loop {
            now += schedule.next_delay_ms(now, None);
            if now >= ends_at {
                break;
            }
            let before = schedule.cap_ms();
            prop_assert_ne!(schedule.prediction_holds(now, progress(now)), Some(false), "at {}", now);
            schedule.observe(now, progress(now));
            prop_assert!(schedule.cap_ms() >= before);
        }
        let late = now - ends_at;
        if schedule.predicted_finish_ms().is_some() {
            let point_ms = (duration_ms - queued_ms) / 100;
            prop_assert!(late <= 2 * point_ms + 2_000, "seen {} ms late", late);
        } else {
            prop_assert!(late <= BASE_CAP_MS, "seen {} ms late", late);
        }
    }
}
