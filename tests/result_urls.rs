//! One table of result URLs (`tests/support/result-urls.json`) through the
//! client's rule (`Job::from_upstream`) and the worker's (`client_job`): both
//! keep the URLs the table keeps and refuse the others. The wasm cases
//! (tests/wasm/cases.mjs) and the worker tests (tests/worker/hardening.test.mjs)
//! read the same table in Node, Chromium and workerd.
#![cfg(feature = "edge")]

use serde_json::{json, Value};
use sora_edge::core::job::UpstreamJob;
use sora_edge::core::{ErrorCode, Job, Secrets};
use sora_edge::edge::upstream::client_job;

const ID: &str = "0b6f4d1e-8a2c-4f3b-9d7e-1c2a3b4c5d6e";

fn rows() -> Vec<(String, Value, Option<String>)> {
    let table: Value = serde_json::from_str(include_str!("support/result-urls.json")).unwrap();
    let rows = table.as_array().unwrap();
    assert!(rows.len() >= 15, "the table has its rows");
    rows.iter()
        .map(|row| {
            let video = row["video"].as_str().map(str::to_string);
            (
                row["name"].as_str().unwrap().to_string(),
                row["result"].clone(),
                video,
            )
        })
        .collect()
}

#[test]
fn client_and_worker_keep_and_refuse_the_same_result_urls() {
    for (name, result, video) in rows() {
        let upstream = json!({"id": ID, "status": "COMPLETED", "progress": 100, "result": result});

        let parsed: UpstreamJob = serde_json::from_value(upstream.clone()).unwrap();
        let client = Job::from_upstream(parsed);
        match (&client, &video) {
            (Ok(job), Some(url)) => assert_eq!(job.video_url.as_ref(), Some(url), "client: {name}"),
            (Err(e), None) => {
                assert_eq!(e.code, ErrorCode::BadResponse, "client: {name}");
                assert!(
                    e.message.contains("result URL"),
                    "client: {name}: {}",
                    e.message
                );
            }
            _ => panic!("client: {name}: got {client:?}, the table says {video:?}"),
        }

        let worker = client_job(&upstream, &Secrets::new(&["afk_test_key"])).unwrap();
        match &video {
            Some(url) => {
                assert_eq!(worker["status"], "COMPLETED", "worker: {name}");
                assert_eq!(worker["result"], url.as_str(), "worker: {name}");
            }
            None => {
                assert_eq!(worker["status"], "FAILED", "worker: {name}");
                assert!(worker["result"].is_null(), "worker: {name}");
            }
        }
    }
}
